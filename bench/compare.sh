#!/bin/sh
# flagshm next to the SDKs users embed, in one run, printed as one table.
#
#   bench/compare.sh [--quick] [--out DIR] [BUILD_DIR]      (BUILD_DIR defaults to build/)
#
# 1. ninja -C BUILD_DIR bench/flagshm-bench (an existing meson build dir; nothing else is built);
# 2. flagshm-bench --emit-doc/--emit-ids/--emit-context: the flag set both sides evaluate;
# 3. flagshm-bench --json (all sections), and with 10,000 flags the memory and propagation
#    sections the multi-process table compares against (--quick: 1,000 flags, one run);
# 4. bench/peers/bench.js (the four cases through each SDK) and bench/peers/multiproc.js
#    (8 workers each holding an SDK copy), installing the SDKs first if node_modules is missing;
# 5. bench/peers/report.js: the tables.
# --out DIR keeps the JSON of each step there. Exit status: 1 when a step failed (the tables
# still print what there is), 2 on a usage error.
set -u

usage() {
	echo "usage: bench/compare.sh [--quick] [--out DIR] [BUILD_DIR]" >&2
	exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
quick=
build=build
out=
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=--quick ;;
	--out) [ $# -ge 2 ] || usage; out=$2; shift ;;
	-h | --help) usage ;;
	-*) usage ;;
	*) build=$1 ;;
	esac
	shift
done

if [ ! -f "$build/build.ninja" ]; then
	echo "compare.sh: $build is not a meson build dir; first: meson setup -Dbuildtype=release $build" >&2
	exit 2
fi
command -v node >/dev/null 2>&1 || { echo "compare.sh: node not found; run bench/peers/install.sh" >&2; exit 2; }

if [ -n "$out" ]; then
	mkdir -p "$out" || exit 2
	tmp=$(cd "$out" && pwd)
else
	tmp=$(mktemp -d) || exit 1
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 130' INT TERM
fi

status=0
step() { # step NAME CMD...: run, keep going on failure
	name=$1
	shift
	echo "compare.sh: $name" >&2
	"$@" || { echo "compare.sh: $name failed (exit $?)" >&2; status=1; }
}

ninja -C "$build" bench/flagshm-bench >&2 || exit 1
bin=$build/bench/flagshm-bench

if [ -n "$quick" ]; then mpflags=1000; else mpflags=10000; fi
"$bin" --emit-doc "$tmp/doc.json" --emit-ids "$tmp/ids.txt" --emit-context "$tmp/context.json" || exit 1
"$bin" --flags "$mpflags" --emit-doc "$tmp/doc-mp.json" || exit 1

[ -d "$here/peers/node_modules" ] || sh "$here/peers/install.sh" || exit 1

step "flagshm-bench --json $quick" sh -c '"$1" --json $2 > "$3/flagshm.json"' - "$bin" "$quick" "$tmp"
mp_arg=
if [ -z "$quick" ]; then
	step "flagshm-bench --json --flags $mpflags --cases memory,propagation" \
		sh -c '"$1" --json --flags "$2" --cases memory,propagation > "$3/flagshm-mp.json"' - "$bin" "$mpflags" "$tmp"
	mp_arg="--flagshm-mp $tmp/flagshm-mp.json"
fi
step "peers: bench.js $quick" sh -c 'node "$1/peers/bench.js" --doc "$2/doc.json" --ids "$2/ids.txt" --context "$2/context.json" $3 > "$2/peers.json"' - "$here" "$tmp" "$quick"
step "peers: multiproc.js $quick" sh -c 'node --expose-gc "$1/peers/multiproc.js" --doc "$2/doc-mp.json" --ids "$2/ids.txt" --context "$2/context.json" $3 > "$2/multiproc.json"' - "$here" "$tmp" "$quick"

# shellcheck disable=SC2086 # mp_arg is two words or none
node "$here/peers/report.js" --flagshm "$tmp/flagshm.json" $mp_arg --peers "$tmp/peers.json" --multiproc "$tmp/multiproc.json" || status=1
exit $status
