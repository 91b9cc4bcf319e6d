#!/usr/bin/env bash
# tests/top_test.sh WRITER TOOL EVAL_LOAD - `flagshm top` in a real terminal: tmux
# (Debian's package, scripts/install-deps.sh) runs it in an 80x24 window on
# a private server socket; the test reads the screen with capture-pane and
# types with send-keys, while EVAL_LOAD (tests/eval_load.c) evaluates one
# flag in another process. Every wait polls the screen with a bound; nothing
# depends on the machine's speed. Prints "ok N - ..." / "not ok N - ..."
# lines and exits non-zero when any check failed.
set -u

writer=${1:?usage: top_test.sh WRITER TOOL EVAL_LOAD}
tool=${2:?usage: top_test.sh WRITER TOOL EVAL_LOAD}
evalload=${3:?usage: top_test.sh WRITER TOOL EVAL_LOAD}
command -v tmux >/dev/null || { echo "not ok 1 - tmux is not installed (scripts/install-deps.sh)"; exit 1; }

S=toptest$$
sock=flagshm-top-$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-top.XXXXXX")
daemon=
load=

cleanup() {
	tmux -L "$sock" kill-server >/dev/null 2>&1
	for p in $load $daemon; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	"$writer" --remove --store "$S" >/dev/null 2>&1
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

screen() { tmux -L "$sock" capture-pane -p -t top 2>/dev/null; }

# wait_screen DESC PATTERN: poll the screen (up to 30 s) for an extended
# regular expression.
wait_screen() {
	local i
	for i in $(seq 1 300); do
		if screen | grep -Eq -- "$2"; then pass "$1"; return 0; fi
		sleep 0.1
	done
	fail "$1" "no /$2/ on the screen within 30 s:" "$(screen)"
	return 1
}

cat >"$tmp/flags.json" <<'EOF'
{"formatVersion": 1, "flags": [
  {"key": "new-checkout", "defaultValue": true, "rolloutPercentage": 50},
  {"key": "color", "defaultValue": "green", "offValue": "red"},
  {"key": "quiet", "defaultValue": false}
]}
EOF

"$writer" --store "$S" --source "$tmp/flags.json" 2>"$tmp/writer.log" &
daemon=$!
for i in $(seq 1 300); do
	"$tool" --store "$S" status >/dev/null 2>&1 && break
	sleep 0.1
done

# new-checkout is evaluated for a minute (killed at the end): half the
# users in its 50 % rollout, a quarter of the outcomes errors.
"$evalload" "$S" new-checkout 60 &
load=$!

# An 80x24 terminal, as over ssh; the exit status is left on the screen.
tmux -L "$sock" -f /dev/null new-session -d -s top -x 80 -y 24 \
	"'$tool' --store '$S' top; echo \"top exited \$?\"; sleep 60"

wait_screen "the header names the store and its generation" "flagshm top +store $S +gen 1"
wait_screen "the column titles are shown" "FLAG +EVAL/S +TOTAL +ERR% +VARIANTS"
wait_screen "the footer line says how to quit" "\(q quits\)"
wait_screen "the evaluated flag is listed with its rate, total and outcome error rate" \
	"^new-checkout +[0-9]+\.[0-9] +[0-9.]+[kM]? +2[45]\.[0-9]  "
wait_screen "its variants are shown with their shares" \
	"^new-checkout .*(true [0-9]+% false [0-9]+%|false [0-9]+% true [0-9]+%)"
# Sorted by evaluations per second: the busy flag is the first row.
first=$(screen | sed -n '5p')
case "$first" in
new-checkout*) pass "the busiest flag is the first row" ;;
*) fail "the busiest flag is the first row" "$(screen)" ;;
esac
wait_screen "the header counts evaluations per second" "evaluations/s [1-9]"

# Every line fits in 80 columns (capture-pane would wrap a longer one).
lines=$(screen | wc -l)
if [ "$lines" -le 24 ]; then pass "the view fits in 24 lines"; else fail "the view fits in 24 lines" "$(screen)"; fi

# A smaller window: the view follows (SIGWINCH) and still fits.
tmux -L "$sock" resize-window -t top -x 60 -y 12 2>/dev/null
wait_screen "after a resize to 60x12 the flag is still shown" "^new-checkout "
width=$(tmux -L "$sock" display-message -p -t top '#{pane_width}x#{pane_height}')
if [ "$width" = 60x12 ]; then pass "the window was resized to 60x12"; else fail "the window was resized to 60x12" "it is $width"; fi
wait_screen "... and the view is drawn again: title, then the flag" "^FLAG +EVAL/S"

tmux -L "$sock" send-keys -t top q
wait_screen "q quits with status 0" "^top exited 0"
if screen | grep -q "FLAG .*EVAL/S"; then
	fail "the terminal is restored (alternate screen left)" "$(screen)"
else
	pass "the terminal is restored (alternate screen left)"
fi

# Not a terminal: a clear refusal, not escape sequences into a pipe.
out=$("$tool" --store "$S" top </dev/null 2>&1)
rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "needs a terminal"; then
	pass "without a terminal top refuses and says why"
else
	fail "without a terminal top refuses and says why" "exit $rc: $out"
fi

echo "1..$n"
[ $nfail -eq 0 ]
