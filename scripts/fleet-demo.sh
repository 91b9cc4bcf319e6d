#!/usr/bin/env bash
# scripts/fleet-demo.sh [BUILD_DIR] - a fleet on one machine, end to end:
#   a 3-member etcd cluster, two flagshm-control instances over it, two
#   "hosts" (two stores, each with its own flagshm-writer --stream failing
#   over between both instances) and two workers on each host
#   (examples/worker.c). alice changes a flag with flagshm-ctl; every worker
#   on both hosts sees it at one generation per host; `flagshm-ctl audit`
#   shows who did it and why. Then one control-plane instance is killed and
#   a second edit still reaches both hosts.
# Everything listens on 127.0.0.1 (free ports), every wait is bounded, and
# the trap stops every process this script started and removes its files
# and stores. Needs etcd-server (scripts/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
writer=$build/writer/daemon/flagshm-writer
control=$build/control/flagshm-control
ctl=$build/control/ctl/flagshm-ctl
tool=$build/tools/flagshm/flagshm
worker=$build/examples/worker
for exe in "$writer" "$control" "$ctl" "$tool" "$worker"; do
	[ -x "$exe" ] || { echo "fleet-demo: $exe is not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
command -v etcd >/dev/null || { echo "fleet-demo: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }

flag=checkout-banner
hosts=(a b)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-fleet.XXXXXX")
etcd_pids=() control_pids=() writer_pids=() worker_pids=()

cleanup() {
	local p h
	for p in "${worker_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${writer_pids[@]}" "${control_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${writer_pids[@]}" "${control_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in "${etcd_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for h in "${hosts[@]}"; do "$writer" --remove --store "fleet-$h-$$" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n==> %s\n' "$*"; }
fail() {
	printf 'fleet-demo: %s\n' "$*" >&2
	local f
	for f in "$tmp"/*.log; do [ -f "$f" ] && tail -n 20 "$f" | sed "s|^|  $(basename "$f"): |" >&2; done
	exit 1
}
# wait_until SECONDS CMD...: poll CMD every 100 ms; false on timeout.
wait_until() {
	local limit=$(( $1 * 10 )) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ "$i" -lt "$limit" ] || return 1
		sleep 0.1
	done
}
# N free TCP ports on 127.0.0.1 (bound and released at once).
free_ports() {
	python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

say "a 3-member etcd cluster on 127.0.0.1"
read -r -a ports <<<"$(free_ports 6)"
cluster=""
for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[$((3 + i))]}"; done
etcd_urls=""
for i in 0 1 2; do
	c=${ports[$i]} p=${ports[$((3 + i))]}
	etcd --name "m$i" --data-dir "$tmp/etcd-m$i" \
		--listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
		--listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
		--initial-cluster "$cluster" --initial-cluster-token "fleet-$$" \
		--initial-cluster-state new >"$tmp/etcd-m$i.log" 2>&1 &
	etcd_pids+=($!)
	etcd_urls+="${etcd_urls:+,}http://127.0.0.1:$c"
done
healthy() { local u; for u in ${etcd_urls//,/ }; do curl -sf "$u/health" | grep -q '"health":"true"' || return 1; done; }
wait_until 30 healthy || fail "etcd did not become healthy within 30 s"
echo "  members: $etcd_urls"

say "two flagshm-control instances over it (any of them serves any request)"
head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | sed 's/^/fsh_boot_/' >"$tmp/admin.token"
urls=()
for i in 1 2; do
	"$control" --listen 127.0.0.1:0 --etcd "$etcd_urls" --bootstrap-token-file "$tmp/admin.token" \
		--ready-file "$tmp/ready$i" >"$tmp/control$i.log" 2>&1 &
	control_pids+=($!)
	wait_until 30 test -s "$tmp/ready$i" || fail "flagshm-control $i did not start within 30 s"
	urls+=("$(head -n 1 "$tmp/ready$i")")
	echo "  instance $i: ${urls[$((i - 1))]}"
done

export FLAGSHM_URL=${urls[0]} FLAGSHM_TOKEN_FILE=$tmp/admin.token
say "flagshm-ctl import examples/flags.json; tokens for the writers (sdk) and for alice (editor)"
"$ctl" import "$root/examples/flags.json" --reason "fleet demo: the first document"
"$ctl" token create writers sdk --reason "the fleet's writers" >"$tmp/sdk.token"
"$ctl" token create alice editor --reason "alice edits flags" >"$tmp/alice.token"
"$ctl" token list

say "two hosts: a writer each (--stream, failing over between both instances), two workers each"
for h in "${hosts[@]}"; do
	if [ "$h" = a ]; then src="${urls[0]},${urls[1]}"; else src="${urls[1]},${urls[0]}"; fi
	"$writer" --store "fleet-$h-$$" --source "$src" --stream --poll-interval 2 \
		--key-file "$tmp/sdk.token" --state-dir "$tmp/state-$h" >"$tmp/writer-$h.log" 2>&1 &
	writer_pids+=($!)
	echo "  host $h: flagshm-writer --store fleet-$h-$$ --source $src --stream"
done
has_flag() { "$tool" --store "fleet-$1-$$" eval "$flag" >/dev/null 2>&1; }
for h in "${hosts[@]}"; do wait_until 30 has_flag "$h" || fail "host $h has no flags after 30 s"; done
for h in "${hosts[@]}"; do
	for w in 1 2; do
		"$worker" --watch 120 "fleet-$h-$$" "$flag" u-42 >"$tmp/worker-$h$w.out" 2>&1 &
		worker_pids+=($!)
	done
done
started() { local f; for f in "$tmp"/worker-*.out; do [ -s "$f" ] || return 1; done; }
wait_until 10 started || fail "the workers did not start"
for f in "$tmp"/worker-*.out; do sed "s/^/  $(basename "$f" .out): /" "$f"; done

# Every worker of every host has moved once its last line holds TEXT, and
# the workers of one host show one generation.
caught_up() {
	local h f g
	for h in "${hosts[@]}"; do
		g=""
		for f in "$tmp"/worker-"$h"?.out; do
			tail -n 1 "$f" | grep -q "$1" || return 1
			[ -z "$g" ] || [ "$g" = "$(tail -n 1 "$f" | awk '{print $4}')" ] || return 1
			g=$(tail -n 1 "$f" | awk '{print $4}')
		done
	done
}
show_workers() {
	local h f
	for h in "${hosts[@]}"; do
		for f in "$tmp"/worker-"$h"?.out; do echo "  host $h $(basename "$f" .out): $(tail -n 1 "$f")"; done
	done
}

say "alice: flagshm-ctl get $flag --json | edit | flagshm-ctl set $flag - --if-version N --reason ..."
v=$(FLAGSHM_TOKEN_FILE=$tmp/alice.token "$ctl" get "$flag" --json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
FLAGSHM_TOKEN_FILE=$tmp/alice.token "$ctl" get "$flag" --json |
	sed 's/over 50 EUR/over 30 EUR/g' |
	FLAGSHM_TOKEN_FILE=$tmp/alice.token "$ctl" set "$flag" - --if-version "$v" \
		--reason "campaign FL-7: free shipping from 30 EUR"
wait_until 20 caught_up "over 30 EUR" || { show_workers; fail "not every worker saw the edit within 20 s"; }
show_workers

say "flagshm-ctl audit $flag: who did it, and why"
"$ctl" audit "$flag"
"$ctl" audit "$flag" --json | grep -q '"actor":"alice".*"reason":"campaign FL-7' || fail "the audit lacks alice's edit"

say "kill control-plane instance 1; alice disables the banner through instance 2"
kill -KILL "${control_pids[0]}"
wait "${control_pids[0]}" 2>/dev/null || true
control_pids=("${control_pids[1]}")
FLAGSHM_URL=${urls[1]} FLAGSHM_TOKEN_FILE=$tmp/alice.token "$ctl" disable "$flag" --reason "incident 42: banner off"
wait_until 30 caught_up '= ""' || { show_workers; fail "not every worker saw the second edit within 30 s"; }
show_workers
grep -h "failing over" "$tmp"/writer-*.log | sed 's/^/  /' || true
FLAGSHM_URL=${urls[1]} "$ctl" audit "$flag" --limit 2

say "done: both edits reached both hosts, one generation per host, and the audit says who and why"
