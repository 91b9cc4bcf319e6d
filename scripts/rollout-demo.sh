#!/usr/bin/env bash
# scripts/rollout-demo.sh [BUILD_DIR] [OUT_DIR] - two progressive rollouts on
# one machine, guarded by live outcomes, in about a minute:
#   etcd (one member), flagshm-control, a flagshm-writer syncing from it with
#   --metrics-listen, a real Prometheus scraping the writer every second, and
#   worker processes (tests/rollout_load.c) evaluating two flags and recording
#   each request's outcome with flagshm_view_outcome.
#   - new-checkout: healthy; ring "employees" -> 10 % -> 50 % -> 100 %.
#   - new-search: its treatment fails 20 % of requests (control 1 %); the
#     guard's z-test sees it at 30 % and rolls back gradually (10 %, then 0).
# Leaves OUT_DIR/new-checkout.svg and OUT_DIR/new-search.svg (flagshm-ctl
# rollout report). Everything listens on 127.0.0.1 (free ports), every wait
# is bounded, and the trap stops what this script started and removes its
# files and store. Needs etcd-server and prometheus (scripts/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=$(mkdir -p "${2:-$PWD/rollout-demo-out}" && cd "${2:-$PWD/rollout-demo-out}" && pwd)
writer=$build/writer/daemon/flagshm-writer
control=$build/control/flagshm-control
ctl=$build/control/ctl/flagshm-ctl
load=$build/tests/rollout_load
for exe in "$writer" "$control" "$ctl" "$load"; do
	[ -x "$exe" ] || { echo "rollout-demo: $exe is not built (meson setup build && ninja -C build)" >&2; exit 1; }
done
command -v etcd >/dev/null || { echo "rollout-demo: etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "rollout-demo: prometheus is not installed (apt-get install prometheus)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-rollout-demo.XXXXXX")
store=rollout-demo-$$
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$writer" --remove --store "$store" >/dev/null 2>&1 || true
	rm -f "/dev/shm/flagshm.$store.sock" "/dev/shm/flagshm.$store.stats"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n==> %s\n' "$*"; }
fail() {
	printf 'rollout-demo: %s\n' "$*" >&2
	local f
	for f in "$tmp"/*.log; do [ -f "$f" ] && tail -n 15 "$f" | sed "s|^|  $(basename "$f"): |" >&2; done
	exit 1
}
wait_until() {
	local limit=$(( $1 * 10 )) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ "$i" -lt "$limit" ] || return 1
		sleep 0.1
	done
}
free_ports() {
	python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r etcd_c etcd_p metrics_port prom_port <<<"$(free_ports 4)"

say "etcd, flagshm-control, a writer with --metrics-listen, Prometheus (1 s scrapes), all on 127.0.0.1"
etcd --name m0 --data-dir "$tmp/etcd" \
	--listen-client-urls "http://127.0.0.1:$etcd_c" --advertise-client-urls "http://127.0.0.1:$etcd_c" \
	--listen-peer-urls "http://127.0.0.1:$etcd_p" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_p" \
	--initial-cluster "m0=http://127.0.0.1:$etcd_p" >"$tmp/etcd.log" 2>&1 &
pids+=($!)
wait_until 30 curl -sf "http://127.0.0.1:$etcd_c/health" >/dev/null || fail "etcd did not start"
head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | sed 's/^/fsh_demo_/' >"$tmp/admin.token"
"$control" --listen 127.0.0.1:0 --etcd "http://127.0.0.1:$etcd_c" --leader-ttl 5 \
	--bootstrap-token-file "$tmp/admin.token" --ready-file "$tmp/ready" >"$tmp/control.log" 2>&1 &
pids+=($!)
wait_until 30 test -s "$tmp/ready" || fail "flagshm-control did not start"
export FLAGSHM_URL=$(head -n 1 "$tmp/ready") FLAGSHM_TOKEN_FILE=$tmp/admin.token
cat >"$tmp/doc.json" <<'JSON'
{"formatVersion": 1,
 "segments": {"employees": {"conditions": [{"attribute": "userId", "operator": "endsWith", "value": "7"}]}},
 "flags": [
  {"key": "new-checkout", "defaultValue": false, "rolloutPercentage": 0, "owner": "payments"},
  {"key": "new-search", "defaultValue": false, "rolloutPercentage": 0, "owner": "search"}]}
JSON
"$ctl" import "$tmp/doc.json" --reason "rollout demo: two flags, off" >/dev/null
"$ctl" token create writer sdk --reason "the demo's writer" >"$tmp/sdk.token" 2>/dev/null
"$writer" --store "$store" --source "$FLAGSHM_URL" --stream --poll-interval 2 --key-file "$tmp/sdk.token" \
	--state-dir "$tmp/state" --metrics-listen "127.0.0.1:$metrics_port" >"$tmp/writer.log" 2>&1 &
pids+=($!)
wait_until 30 curl -sf "http://127.0.0.1:$metrics_port/metrics" -o /dev/null || fail "the writer's /metrics did not answer"
cat >"$tmp/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: flagshm
    static_configs: [{targets: ['127.0.0.1:$metrics_port']}]
YML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
	--web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
wait_until 30 curl -sf "http://127.0.0.1:$prom_port/-/ready" -o /dev/null || fail "Prometheus did not start"
echo "  control plane $FLAGSHM_URL, metrics 127.0.0.1:$metrics_port, Prometheus 127.0.0.1:$prom_port"

say "workers: 2 on new-checkout (1 % errors either way), 2 on new-search (treatment 20 %, control 1 %)"
for i in 1 2; do
	"$load" "$store" new-checkout 170 200 0.01 0.01 >>"$tmp/load.log" 2>&1 &
	pids+=($!)
	"$load" "$store" new-search 170 200 0.20 0.01 >>"$tmp/load.log" 2>&1 &
	pids+=($!)
done

prom=http://127.0.0.1:$prom_port
cat >"$tmp/new-checkout.json" <<JSON
{"variation": true,
 "stages": [{"ring": "internal", "segments": ["employees"], "soak": "10s"},
            {"percentage": 10, "duration": "10s"},
            {"percentage": 50, "duration": "10s"},
            {"percentage": 100}],
 "successCriteria": {"errorRateThreshold": 0.05, "latencyP99Threshold": 0.5,
                     "minimumSampleSize": 200, "maxRegressionVsControl": 0.02, "maxWait": "1m"},
 "rollback": {"steps": [10, 0], "interval": "5s"},
 "checkInterval": "2s", "metrics": {"prometheus": "$prom", "window": "1m"}}
JSON
cat >"$tmp/new-search.json" <<JSON
{"variation": true,
 "stages": [{"percentage": 30, "duration": "30s"}, {"percentage": 100}],
 "successCriteria": {"minimumSampleSize": 200, "maxRegressionVsControl": 0.02, "confidence": 0.99},
 "rollback": {"steps": [10, 0], "interval": "8s"},
 "checkInterval": "2s", "metrics": {"prometheus": "$prom", "window": "1m"}}
JSON
say "flagshm-ctl rollout start new-checkout / new-search"
"$ctl" rollout start new-checkout "$tmp/new-checkout.json" --reason "demo: ship the new checkout"
"$ctl" rollout start new-search "$tmp/new-search.json" --reason "demo: try the new search"

status_of() { "$ctl" rollout status "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'; }
finished() { [ "$(status_of new-checkout)" = completed ] && [ "$(status_of new-search)" = rolled-back ]; }
last=""
for i in $(seq 1 1500); do
	now="$(status_of new-checkout) / $(status_of new-search)"
	[ "$now" = "$last" ] || echo "  $(date -u +%T)  new-checkout: ${now% / *}   new-search: ${now#* / }"
	last=$now
	finished && break
	sleep 0.1
done
finished || fail "the rollouts did not finish within the demo's time"

say "flagshm-ctl rollout status"
"$ctl" rollout status
say "flagshm-ctl audit new-search (the orchestrator's decisions and their figures)"
"$ctl" audit new-search --limit 4
say "reports"
"$ctl" rollout report new-checkout --svg "$out/new-checkout.svg"
"$ctl" rollout report new-search --svg "$out/new-search.svg"
say "done: new-checkout completed, new-search rolled back; SVGs in $out"
