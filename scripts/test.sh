#!/usr/bin/env bash
# scripts/test.sh - the README's test command, and what CI runs (.ci/run):
#   1. install what is missing (scripts/install-deps.sh);
#   2. build/       --werror, every test (meson test);
#   3. build-asan/  ASan + UBSan, every test;
#   4. build-tsan/  TSan, the concurrency programs (tsan_stress, soak);
#   5. build-fuzz/  clang + libFuzzer, every fuzz target for a short time;
#   6. install:     build/ installed into a DESTDIR and used from there, and
#                   the .deb packages built, installed, used and purged
#                   (scripts/test-install.sh; each check counts as one test).
# Ends with one line, "N passed, N failed" (meson tests, summed over the
# builds, the fuzz run counting as one, each install check as one; a build
# that fails counts as one failure), and exits non-zero when anything
# failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
exec </dev/null

passed=0
failed=0
stages=()
failed_dirs=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-test.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

# failures DIR: the end of each failed test's record in DIR's meson log, so
# that the tail of CI's output names what failed and why.
failures() {
	local tl="$1/meson-logs/testlog.txt"
	[ -f "$tl" ] || return 0
	awk -v RS='\n=+ [0-9]+/[0-9]+ =+\n' '
		/\nresult: +(exit status [1-9]|killed|timed out|[^\n]*[Ff]ail)/ {
			n = split($0, line, "\n"); from = n > 40 ? n - 40 : 1
			print "---- failed in '"$1"':"; for (i = 1; i <= 6 && i <= n; i++) print line[i]
			print "...."; for (i = from; i <= n; i++) print line[i]
		}' "$tl" | head -n 300
}

finish() {
	echo
	for d in "${failed_dirs[@]}"; do failures "$d"; done
	echo
	for s in "${stages[@]}"; do echo "  $s"; done
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

if ! bash scripts/install-deps.sh; then
	failed=$((failed + 1))
	stages+=("install-deps: FAILED")
	finish
fi

# configure DIR ARGS...: set up DIR, or reconfigure it with ARGS if it exists.
configure() {
	local dir=$1
	shift
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		meson setup --reconfigure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

# The number on meson's summary line "NAME: N" in FILE, 0 when absent.
count() { local n; n=$(sed -n "s/^$2: *\([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1); echo "${n:-0}"; }

# stage DIR "SETUP ARGS" "TEST ARGS": configure, build, test; add up the counts.
stage() {
	local dir=$1 setup_args=$2 test_args=$3 log="$logdir/${1//\//_}.log"
	echo
	echo "==== $dir: meson setup $setup_args; meson test $test_args"
	# shellcheck disable=SC2086 # the argument strings are word lists
	if ! configure "$dir" $setup_args || ! ninja -C "$dir"; then
		failed=$((failed + 1))
		stages+=("$dir: BUILD FAILED")
		return
	fi
	# shellcheck disable=SC2086
	meson test -C "$dir" --print-errorlogs $test_args 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	local ok xfail fail xpass timeout skip
	ok=$(count "$log" 'Ok')
	xfail=$(count "$log" 'Expected Fail')
	fail=$(count "$log" 'Fail')
	xpass=$(count "$log" 'Unexpected Pass')
	timeout=$(count "$log" 'Timeout')
	skip=$(count "$log" 'Skipped')
	local bad=$((fail + xpass + timeout))
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1 # meson test failed without a summary line saying so
	fi
	passed=$((passed + ok + xfail))
	failed=$((failed + bad))
	[ "$bad" -eq 0 ] || failed_dirs+=("$dir")
	stages+=("$dir: $((ok + xfail)) passed, $bad failed, $skip skipped")
}

jobs=$(nproc 2>/dev/null || echo 2)

stage build "--werror -Dbuildtype=debugoptimized -Db_sanitize=none" ""

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1}
stage build-asan "--werror -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false" \
	"--timeout-multiplier 3 --num-processes $jobs --no-suite bench"

# Criterion cannot start under ThreadSanitizer (Snaipe/Criterion#274: its
# test arena cannot be mapped beside TSan's shadow memory), so the store and
# process suites run here as tests/tsan_stress.c, a plain program doing the
# same concurrent work: reader threads in views while the writer publishes,
# call_rcu reclaiming old maps, fork with readers running.
tsan="halt_on_error=1:second_deadlock_stack=1:die_after_fork=0"
[ -f tests/tsan.supp ] && tsan="$tsan:suppressions=$root/tests/tsan.supp"
export TSAN_OPTIONS=${TSAN_OPTIONS:-$tsan}
stage build-tsan "--werror -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false" \
	"--timeout-multiplier 3 tsan_stress soak"

# libFuzzer targets (tests/fuzz/): each runs FUZZ_SECONDS (default 10 here;
# tests/fuzz/run.sh alone defaults to 60) from its committed seed corpus.
# Counted as one test: any crash, leak or sanitizer report fails it.
echo
echo "==== build-fuzz: tests/fuzz/run.sh build-fuzz ${FUZZ_SECONDS:-10}"
if bash tests/fuzz/run.sh "$root/build-fuzz" "${FUZZ_SECONDS:-10}"; then
	passed=$((passed + 1))
	stages+=("build-fuzz: 1 passed, 0 failed")
else
	failed=$((failed + 1))
	stages+=("build-fuzz: 0 passed, 1 failed")
fi

# install-stage NAME ARGS...: scripts/test-install.sh ARGS, each PASS/FAIL
# line one test.
install_stage() {
	local name=$1 log="$logdir/install-$1.log"
	shift
	echo
	echo "==== $name: scripts/test-install.sh $*"
	bash scripts/test-install.sh "$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]} ok bad skip
	ok=$(grep -c '^PASS: ' "$log")
	bad=$(grep -c '^FAIL: ' "$log")
	skip=$(grep -c '^SKIP: ' "$log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1 # the script failed without a FAIL line saying so
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	stages+=("$name: $ok passed, $bad failed, $skip skipped")
}

install_stage install-destdir destdir build
install_stage install-deb deb

finish
