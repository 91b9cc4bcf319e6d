#!/usr/bin/env bash
# examples/demo.sh [BUILD_DIR] - flagshm's main job, end to end:
#   one flagshm-writer publishes a copy of examples/flags.json to store "demo",
#   four worker processes (examples/worker.c) read a flag from it, the flag
#   file is edited, and every worker picks the change up at the same
#   generation. Cleans up its processes and the store; bounded in time.
# BUILD_DIR defaults to build/ at the top of the repo (scripts/demo.sh builds it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
writer=$build/writer/daemon/flagshm-writer
tool=$build/tools/flagshm/flagshm
worker=$build/examples/worker
for exe in "$writer" "$tool" "$worker"; do
	[ -x "$exe" ] || { echo "demo: $exe is not built (run scripts/demo.sh)" >&2; exit 1; }
done

store=demo
flag=checkout-banner
nworkers=4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-demo.XXXXXX")
writer_pid=
worker_pids=()

cleanup() {
	for p in "${worker_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -n "$writer_pid" ]; then
		kill -TERM "$writer_pid" 2>/dev/null || true
		wait "$writer_pid" 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	"$writer" --remove --store "$store" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n==> %s\n' "$*"; }
fail() { printf 'demo: %s\n' "$*" >&2; [ -f "$tmp/writer.log" ] && sed 's/^/  writer: /' "$tmp/writer.log" >&2; exit 1; }

# wait_until SECONDS CMD...: poll CMD every 50 ms; false on timeout.
wait_until() {
	local limit=$(( $1 * 20 )) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ "$i" -lt "$limit" ] || return 1
		sleep 0.05
	done
}
lines_in() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
# The generation in a worker's last line ("pid P  generation G  flag = ...").
last_gen() { tail -n 1 "$1" | awk '{print $4}'; }
store_gen() { "$tool" --store "$store" eval "$flag" | sed -n 's/.*"generation":\([0-9]*\).*/\1/p'; }
published() { "$tool" --store "$store" status >/dev/null 2>&1; }

cp "$root/examples/flags.json" "$tmp/flags.json"

say "flagshm-writer --store $store --source flags.json   (the one writer of this host)"
"$writer" --store "$store" --source "$tmp/flags.json" >"$tmp/writer.log" 2>&1 &
writer_pid=$!
wait_until 10 published || fail "the writer did not publish within 10 s"
"$tool" --store "$store" status

say "flagshm --store $store list"
"$tool" --store "$store" list

say "$nworkers worker processes, each printing its view of '$flag' whenever the generation moves"
for i in $(seq 1 "$nworkers"); do
	"$worker" --watch 60 "$store" "$flag" u-42 >"$tmp/worker.$i.log" 2>&1 &
	worker_pids+=($!)
done
all_have() { local f; for f in "$tmp"/worker.*.log; do [ "$(lines_in "$f")" -ge "$1" ] || return 1; done; }
wait_until 10 all_have 1 || fail "the workers did not start"
cat "$tmp"/worker.*.log
before=$(store_gen)

say "editing flags.json: the banner now says 30 EUR (write to a temporary file, rename over)"
sed 's/over 50 EUR/over 30 EUR/' "$tmp/flags.json" >"$tmp/flags.json.new"
mv "$tmp/flags.json.new" "$tmp/flags.json"

# Every worker has moved once its last line shows the store's current
# generation, which must be newer than the one before the edit.
caught_up() {
	local now f
	now=$(store_gen)
	[ -n "$now" ] && [ "$now" -gt "$before" ] || return 1
	for f in "$tmp"/worker.*.log; do [ "$(last_gen "$f")" = "$now" ] || return 1; done
}
wait_until 10 caught_up || { cat "$tmp"/worker.*.log; fail "the workers did not all see the change within 10 s"; }
after=$(store_gen)

say "what each worker printed"
for f in "$tmp"/worker.*.log; do sed 's/^/  /' "$f"; done

say "flagshm --store $store eval $flag --context '{\"userId\":\"u-42\"}'"
"$tool" --store "$store" eval "$flag" --context '{"userId":"u-42"}'

say "the writer's log"
sed 's/^/  /' "$tmp/writer.log"

for f in "$tmp"/worker.*.log; do
	tail -n 1 "$f" | grep -q 'over 30 EUR' || fail "$f: the last value is not the new one"
done
say "done: all $nworkers workers serve the new value at generation $after (generation $before before the edit)"
