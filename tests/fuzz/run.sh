#!/usr/bin/env bash
# tests/fuzz/run.sh [BUILD_DIR] [SECONDS] - build every libFuzzer target with
# clang, ASan and UBSan, and run each for SECONDS (default 60) from its
# committed seed corpus. Exits non-zero when the build fails or any target
# finds a crash, a leak, a sanitizer report, a timeout or a failed property;
# the reproducer is kept under $FUZZ_OUT (default $TMPDIR/flagshm-fuzz).
#
#   tests/fuzz/run.sh                    # 60 s per target, build in ../build-fuzz
#   tests/fuzz/run.sh 10                 # CI: 10 s per target
#   tests/fuzz/run.sh /work/build-fuzz 30
#   FUZZ_JOBS=4 tests/fuzz/run.sh 3600   # longer, 4 processes per target
#   FUZZ_MERGE=1 tests/fuzz/run.sh 600   # and merge new inputs into the corpus
#
# The build directory is set up, when it does not exist yet, with
#   CC=clang meson setup -Dfuzz=true -Db_sanitize=address,undefined \
#       -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
# (fuzzer-no-link instruments the libraries too, so libFuzzer sees their
# coverage). Targets are the executables tests/fuzz/fuzz_NAME of that build,
# whatever they are: corpus/NAME/ seeds NAME, NAME.dict is its dictionary.
# New inputs go to a scratch copy, not into the tree.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$(dirname "$src")/build-fuzz}
if [ $# -ge 1 ] && ! [[ $1 =~ ^[0-9]+$ ]]; then
	build=$1
	shift
fi
secs=${1:-${FUZZ_SECONDS:-60}}
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/flagshm-fuzz}
jobs=${FUZZ_JOBS:-1}

command -v clang >/dev/null || { echo "run.sh: clang is required (apt-get install clang)" >&2; exit 2; }
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" "$src" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link \
		>"$build.setup.log" 2>&1 || { cat "$build.setup.log" >&2; exit 1; }
fi
# Only the fuzz targets (and what they link).
targets=$(ninja -C "$build" -t targets all | sed -n 's|^\(tests/fuzz/fuzz_[A-Za-z0-9_]*\): .*|\1|p' | sort -u)
[ -n "$targets" ] || { echo "run.sh: no fuzz targets in $build (was it set up with -Dfuzz=true?)" >&2; exit 1; }
ninja -C "$build" $targets

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
mkdir -p "$out"
status=0
summary=""
for t in $targets; do
	bin=$build/$t
	[ -x "$bin" ] || continue
	name=${t##*/fuzz_}
	seeds=$here/corpus/$name
	work=$out/$name.corpus
	rm -rf "$work" "$out/$name.artifacts"
	mkdir -p "$work" "$out/$name.artifacts"
	extra=()
	[ -d "$seeds" ] && extra+=("$seeds")
	[ -f "$here/$name.dict" ] && extra+=(-dict="$here/$name.dict")
	log=$out/$name.log
	echo "== fuzz_$name: $secs s, $(ls "$seeds" 2>/dev/null | wc -l) seeds from corpus/$name"
	set +e
	(cd "$out" && "$bin" "$work" "${extra[@]}" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
		-jobs="$jobs" -workers="$jobs" -artifact_prefix="$out/$name.artifacts/") \
		>"$log" 2>&1
	rc=$?
	set -e
	if [ "$jobs" -gt 1 ]; then
		cat "$out"/fuzz-*.log >>"$log" 2>/dev/null || true
		rm -f "$out"/fuzz-*.log
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s+=$1} END {print s+0}')
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	if [ $rc -ne 0 ]; then
		status=1
		echo "FAIL fuzz_$name (exit $rc): $log" >&2
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written|FAILED|abort' "$log" | head -20 >&2 || true
	fi
	summary+="fuzz_$name: $execs executions, coverage ${cov:-?} edges, exit $rc"$'\n'
	if [ "${FUZZ_MERGE:-0}" = 1 ] && [ $rc -eq 0 ]; then
		mkdir -p "$seeds"
		"$bin" -merge=1 "$seeds" "$work" >/dev/null 2>&1 || true
	fi
done
printf '%s' "$summary"
exit $status
