#!/usr/bin/env bash
# tests/cli_test.sh WRITER TOOL SOURCE_ROOT - the command-line tools end to
# end: flagshm-writer --check/--once/--remove, the daemon's store lock, and
# every command of the flagshm tool (outputs, eval's JSON line, exit codes,
# the dump round trip). Prints one "ok N - ..." / "not ok N - ..." line per
# check and exits non-zero when any failed. Store names carry $$ so parallel
# runs do not meet.
set -u

writer=${1:?usage: cli_test.sh WRITER TOOL SOURCE_ROOT}
tool=${2:?usage: cli_test.sh WRITER TOOL SOURCE_ROOT}
src=${3:?usage: cli_test.sh WRITER TOOL SOURCE_ROOT}
flags=$src/examples/flags.json

for exe in "$writer" "$tool"; do
	[ -x "$exe" ] || { echo "not ok 1 - $exe is not an executable"; echo "1..1"; exit 1; }
done

S=clitest$$
S2=clitest$$b
S3=clitest$$c
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-cli.XXXXXX")
daemon=

cleanup() {
	if [ -n "$daemon" ]; then
		kill -TERM "$daemon" 2>/dev/null
		wait "$daemon" 2>/dev/null
	fi
	for s in "$S" "$S2" "$S3"; do "$writer" --remove --store "$s" >/dev/null 2>&1; done
	rm -rf "$tmp"
}
trap cleanup EXIT

n=0
nfail=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() {
	n=$((n + 1))
	nfail=$((nfail + 1))
	echo "not ok $n - $1"
	shift
	printf '%s\n' "$@" | sed 's/^/#   /'
}

# run CMD...: run it, keeping stdout, stderr and the exit status.
run() {
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}
detail() { printf 'exit %s\nstdout: %s\nstderr: %s' "$rc" "$out" "$err"; }

# expect_rc DESC WANT: the last run exited WANT ("nonzero" for any failure).
expect_rc() {
	if [ "$2" = nonzero ] && [ "$rc" -ne 0 ]; then pass "$1"
	elif [ "$rc" = "$2" ]; then pass "$1"
	else fail "$1" "want exit $2" "$(detail)"; fi
}
# expect_in DESC WHERE PATTERN: grep -E PATTERN in $out or $err.
expect_in() {
	local text
	if [ "$2" = out ]; then text=$out; else text=$err; fi
	if printf '%s\n' "$text" | grep -Eq -- "$3"; then pass "$1"
	else fail "$1" "want /$3/ in std$2" "$(detail)"; fi
}
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1"
	else fail "$1" "want: $3" "got:  $2"; fi
}

gen_of() { sed -n 's/^generation *\([0-9][0-9]*\).*/\1/p'; }

# ---------------------------------------------------------------- --check

run "$writer" --check "$flags"
expect_rc "--check accepts examples/flags.json" 0

cat >"$tmp/bad.json" <<'EOF'
{
  "formatVersion": 1,
  "flags": [
    {"key": "no-default"},
    {"key": "bad-op", "defaultValue": true,
     "targeting": [{"id": "r", "conditions": [{"attribute": "a", "operator": "bogus", "value": 1}], "variation": true}]}
  ]
}
EOF
run "$writer" --check "$tmp/bad.json"
expect_rc "--check rejects a bad document" nonzero
expect_in "--check names the file and the JSON path of a bad operator" err \
	"bad\.json.*flags\[1\]\.targeting\[0\]\.conditions\[0\]\.operator"
expect_in "--check reports every error (the missing defaultValue too)" err \
	"bad\.json.*flags\[0\].*defaultValue"

printf '{"formatVersion": 1,\n "flags": [}\n' >"$tmp/syntax.json"
run "$writer" --check "$tmp/syntax.json"
expect_rc "--check rejects a syntax error" nonzero
expect_in "a syntax error names file, line and column" err "syntax\.json:2:[0-9]+"

# ------------------------------------------------------- publish, status

run "$tool" --store "$S" status
expect_rc "status of a store nobody created: exit 1" 1
expect_in "... with a message on stderr" err "$S"

run "$writer" --store "$S" --source "$flags" --once
expect_rc "writer --once publishes" 0

run "$tool" --store "$S" status
expect_rc "status: exit 0" 0
gen=$(printf '%s\n' "$out" | gen_of)
expect_in "status shows the generation" out "^generation +[1-9][0-9]*$"
expect_in "status shows the publish time" out "^published +20[0-9]{2}-[0-9]{2}-[0-9]{2}T.*Z \(.* ago\)"
expect_in "status shows the flag count" out "^flags +8$"
expect_in "status shows the snapshot size" out "^snapshot +[1-9][0-9]* bytes"
expect_in "status shows the writer pid, no longer running after --once" out "^writer +pid [0-9]+, not running"
expect_in "status shows the last error" out "^last error +"

FLAGSHM_STORE=$S run "$tool" status
expect_rc "the store defaults to \$FLAGSHM_STORE" 0

# ------------------------------------------------------------------ list

run "$tool" --store "$S" list
expect_rc "list: exit 0" 0
expect_eq "list prints one line per flag" "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" 8
expect_in "list: key, type, enabled, value type, rule count" out \
	"^new-checkout +release +enabled +bool +1 rule$"
expect_in "list: a string experiment with two rules" out \
	"^checkout-button +experiment +enabled +string +2 rules$"
expect_in "list: a JSON flag" out "^search-config +operational +enabled +json +1 rule$"

# ------------------------------------------------------------------ show

run "$tool" --store "$S" show new-checkout
expect_rc "show: exit 0" 0
for want in '"key": "new-checkout"' '"type": "release"' '"rolloutPercentage": 1,' \
	'"salt": "new-checkout"' '"prerequisites": \[' '"key": "payments-v2"' \
	'"owner": "checkout-team"' '"tags": \["release"\]' '"version": 7' \
	'"expiresAt": "2027-02-01T00:00:00Z"' '"segments": \["internal"\]'; do
	expect_in "show prints $want" out "$want"
done
run "$tool" --store "$S" show no-such-flag
expect_rc "show of an unknown flag: exit 1" 1
expect_in "... naming the flag" err "no-such-flag"

# ------------------------------------------------------------------ eval

line() { # flag value reason ruleId errorCode: the whole expected JSON line
	printf '{"flag":"%s","value":%s,"reason":"%s","ruleId":%s,"errorCode":%s,"generation":%s,"stale":false}' \
		"$1" "$2" "$3" "$4" "$5" "$gen"
}
eval_is() { # DESC WANT-LINE ARGS...
	local desc=$1 want=$2
	shift 2
	run "$tool" --store "$S" eval "$@"
	if [ "$rc" -eq 0 ] && [ "$out" = "$want" ]; then pass "$desc"
	else fail "$desc" "want: $want" "$(detail)"; fi
}

eval_is "eval: a default rollout, no context" \
	"$(line recommendations true DEFAULT_ROLLOUT null null)" recommendations
eval_is "eval: a JSON flag's value is JSON, not a string" \
	"$(line search-config '{"boost":{"body":1,"title":2.5},"fuzzy":true,"maxResults":50}' RULE_MATCH '"premium"' null)" \
	search-config --context '{"userId":"u-7","country":"DE","tier":"premium"}'
eval_is "eval: a number flag, a matches condition" \
	"$(line api-rate-limit 6000 RULE_MATCH '"paid-partners"' null)" \
	api-rate-limit --context '{"plan":"pro","apiKey":"pk_live_abcdefgh1"}'
eval_is "eval: a string flag through a caseInsensitive segment" \
	"$(line checkout-banner '"[staff] Free shipping on orders over 50 EUR"' RULE_MATCH '"staff-preview"' null)" \
	checkout-banner --context '{"userId":"u-9","email":"Ann@ACME.com"}'
eval_is "eval: a failed prerequisite serves offValue" \
	"$(line new-checkout false PREREQUISITE_FAILED null null)" \
	new-checkout --context '{"userId":"u-9"}'
eval_is "eval: a list attribute, numbers and booleans in the context" \
	"$(line payments-v2 true RULE_MATCH '"ring-1-beta"' null)" \
	payments-v2 --context '{"userId":"u-5","tier":["free","beta"],"age":41,"vip":false}'
eval_is "eval: an unknown flag gives FLAG_NOT_FOUND and value null" \
	"$(line nope null ERROR null '"FLAG_NOT_FOUND"')" nope

for bad in '{"userId":{"id":1}}' '{"userId":null}' '{"tier":["beta",1]}' '[1,2]' 'not json'; do
	run "$tool" --store "$S" eval payments-v2 --context "$bad"
	expect_rc "eval --context '$bad': usage error, exit 2" 2
done
run "$tool" --store "$S" eval payments-v2 --context '{"userId":{"id":1}}'
expect_in "a bad --context names the attribute" err '"userId"'

run "$tool" --store "nosuch$$" eval payments-v2
expect_rc "eval on a missing store: exit 1" 1
run "$tool" --store "../etc" status
expect_rc "a store name with a path in it: usage error" 2
run "$tool" --store "$S"
expect_rc "no command: usage error" 2
run "$tool" --store "$S" frobnicate
expect_rc "unknown command: usage error" 2
run "$tool" --store "$S" show
expect_rc "show without a key: usage error" 2
run "$tool" --store "$S" list --context '{}'
expect_rc "--context outside eval: usage error" 2

# ------------------------------------------------------------- dump round trip

run "$tool" --store "$S" dump
expect_rc "dump: exit 0" 0
printf '%s\n' "$out" >"$tmp/dump.json"
expect_in "dump is a format-1 document" out '^  "formatVersion": 1,$'
expect_in "dump keeps the segments" out '"internal": \{'
run "$writer" --check "$tmp/dump.json"
expect_rc "writer --check accepts the dump" 0
run "$writer" --store "$S2" --source "$tmp/dump.json" --once
expect_rc "the dump publishes" 0
run "$tool" --store "$S2" dump
expect_eq "the dump compiles to an equivalent snapshot (same dump back)" "$out" "$(cat "$tmp/dump.json")"

run "$writer" --store "$S3" --source "$flags" --environment staging --once
expect_rc "writer --environment staging publishes" 0
run "$tool" --store "$S3" status
expect_in "status shows the environment" out "^environment +staging$"
run "$tool" --store "$S3" eval new-checkout --context '{"userId":"u-1"}'
expect_in "the staging override (rollout 100) is applied" out \
	'"value":true,"reason":"DEFAULT_ROLLOUT"'

# ------------------------------------------------------ a damaged snapshot

# Flip one byte of the published object (the owner may make it writable):
# readers must refuse it, and the tool must say so and exit 1.
obj=/dev/shm/flagshm.$S.$gen
if [ -f "$obj" ] && chmod u+w "$obj" 2>/dev/null; then
	size=$(wc -c <"$obj")
	printf '\377' | dd of="$obj" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	run "$tool" --store "$S" list
	expect_rc "a damaged snapshot: list exits 1" 1
	expect_in "... and says the snapshot was refused" err "."
	run "$tool" --store "$S" eval recommendations
	expect_rc "a damaged snapshot: eval exits 1" 1
	expect_in "... with errorCode STORE_UNAVAILABLE on stdout" out '"errorCode":"STORE_UNAVAILABLE"'
else
	echo "ok $((n += 1)) - # SKIP no writable $obj"
fi

# ------------------------------------------------- republish, kill switch

sed 's/"enabled": true,/"enabled": false,/' "$flags" >"$tmp/off.json"
run "$writer" --store "$S" --source "$tmp/off.json" --once
expect_rc "a second publish" 0
run "$tool" --store "$S" status
gen2=$(printf '%s\n' "$out" | gen_of)
if [ -n "$gen2" ] && [ -n "$gen" ] && [ "$gen2" -gt "$gen" ]; then pass "the generation moved ($gen -> $gen2)"
else fail "the generation moved" "before: $gen" "after: $gen2"; fi
gen=$gen2
eval_is "the kill switch: a disabled flag serves offValue" \
	"$(line recommendations false DISABLED null null)" recommendations

# --------------------------------------------------------- one writer per store

cp "$flags" "$tmp/live.json"
"$writer" --store "$S" --source "$tmp/live.json" >"$tmp/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
	"$tool" --store "$S" status 2>/dev/null | grep -Eq "^writer +pid $daemon, running" && break
	sleep 0.05
done
run "$tool" --store "$S" status
expect_in "status shows the daemon's pid as running" out "^writer +pid $daemon, running"
run "$writer" --store "$S" --source "$flags" --once
expect_rc "a second writer on the store is refused" nonzero
expect_in "... and says which process holds it" err "$daemon"

kill -TERM "$daemon"
wait "$daemon"
rc=$?
daemon=
expect_eq "the daemon exits 0 on SIGTERM" "$rc" 0
run "$tool" --store "$S" eval recommendations
expect_rc "the snapshot keeps serving after the writer exits" 0

# ------------------------------------------------- environments, SDK key

run "$writer" --check "$flags" --environment '../x'
expect_rc "--environment outside [A-Za-z0-9._-] is a usage error" 2
expect_in "... naming the character and the rule" err "invalid character '/'.*A-Z a-z 0-9 \. _ -"
run "$writer" --check "$flags" --environment "$(printf 'x%.0s' $(seq 1 129))"
expect_rc "--environment of 129 characters is a usage error" 2
run "$writer" --check "$flags" --environment prodution
expect_rc "an environment no flag mentions still validates" 0
expect_in "... with a warning naming it" err "warning: no flag has overrides for environment 'prodution'"
run "$writer" --store "$S3" --source "$flags" --environment prodution --once
expect_rc "a writer with an unmentioned environment publishes" 0
expect_in "... and logs a warning" err "warning: no flag of .* environment 'prodution'"
"$writer" --remove --store "$S3" >/dev/null 2>&1

run env -u FLAGSHM_SDK_KEY "$writer" --store "$S3" --source http://127.0.0.1:9 --once \
	--state-dir "$tmp/state"
expect_rc "a URL writer without an SDK key exits 1" 1
expect_in "... saying where the key comes from" err "no SDK key"
if [ -e "/dev/shm/flagshm.$S3" ]; then
	fail "... before it creates the store" "/dev/shm/flagshm.$S3 exists"
else
	pass "... before it creates the store"
fi

# ---------------------------------------------------------------- --remove

# A SIGKILLed daemon leaves its counting socket and stats object (and may
# leave a half-written stats.new): --remove takes them with the store.
"$writer" --store "$S" --source "$flags" >"$tmp/killed.log" 2>&1 &
killed=$!
for _ in $(seq 1 300); do
	[ -S "/dev/shm/flagshm.$S.sock" ] && [ -f "/dev/shm/flagshm.$S.stats" ] && break
	sleep 0.1
done
kill -KILL "$killed"
wait "$killed" 2>/dev/null
: >"/dev/shm/flagshm.$S.stats.new"
run "$writer" --remove --store "$S"
expect_rc "writer --remove removes the store" 0
left=$(cd /dev/shm && ls -d "flagshm.$S" "flagshm.$S".* 2>/dev/null | tr '\n' ' ')
expect_eq "... and every object of it, the counting socket and stats too" "$left" ""
run "$tool" --store "$S" status
expect_rc "status of a removed store: exit 1" 1

echo "1..$n"
[ "$nfail" -eq 0 ] || { echo "# $nfail of $n checks failed"; exit 1; }
