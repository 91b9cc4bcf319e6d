#!/usr/bin/env bash
# tests/valgrind_writer.sh WRITER SOURCE_ROOT - the writer's load, compile
# and publish path under valgrind: --check of a valid and of an
# invalid document, --once, and the daemon republishing on a change and
# exiting on SIGTERM. Fails on any memory error or definite/indirect leak.
# Exit 77 (skipped) without valgrind.
set -u
writer=${1:?usage: valgrind_writer.sh WRITER SOURCE_ROOT}
src=${2:?usage: valgrind_writer.sh WRITER SOURCE_ROOT}
command -v valgrind >/dev/null || { echo "valgrind not installed: skipped"; exit 77; }

S=vgwriter$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flagshm-vg.XXXXXX")
cleanup() {
	[ -n "${daemon:-}" ] && kill -KILL "$daemon" 2>/dev/null
	"$writer" --remove --store "$S" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-fds=no)
fail=0
n=0
check() { # check NAME EXPECTED_STATUS CMD...
	local name=$1 want=$2
	shift 2
	n=$((n + 1))
	"$@" >"$tmp/out" 2>&1
	local rc=$?
	if [ "$rc" -ne "$want" ] || grep -q '==[0-9]*== ' "$tmp/out"; then
		echo "not ok $n - $name (exit $rc, expected $want)"
		sed 's/^/#   /' "$tmp/out" | head -40
		fail=1
	else
		echo "ok $n - $name"
	fi
}

cp "$src/examples/flags.json" "$tmp/flags.json"
printf '{"formatVersion":1,"flags":[{"key":"a b","defaultValue":true,"rolloutPercentage":200},{"key":"c","defaultValue":"x"}]}' >"$tmp/bad.json"

check "--check of examples/flags.json" 0 "${vg[@]}" "$writer" --check "$tmp/flags.json"
check "--check of an invalid document" 1 "${vg[@]}" "$writer" --check "$tmp/bad.json"
check "--once publishes" 0 "${vg[@]}" "$writer" --store "$S" --source "$tmp/flags.json" --once
check "--once rejects, the last good stays" 1 "${vg[@]}" "$writer" --store "$S" --source "$tmp/bad.json" --once

# The daemon: publish, republish on a change (twice), reject a bad one, exit on SIGTERM;
# its /metrics exporter scraped in between (a fresh render, a shared one, a 404).
"${vg[@]}" "$writer" --store "$S" --source "$tmp/flags.json" --metrics-listen 127.0.0.1:0 \
	>"$tmp/daemon" 2>&1 &
daemon=$!
wait_for() { # wait_for TEXT COUNT: up to 60 s for COUNT lines with TEXT in the daemon's log
	for _ in $(seq 600); do
		[ "$(grep -c "$1" "$tmp/daemon")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
n=$((n + 1))
ok=1
wait_for "published generation" 1 || ok=0
cp "$tmp/flags.json" "$tmp/new.json" && sed -i 's/"rolloutPercentage": *1\b/"rolloutPercentage": 2/' "$tmp/new.json"
echo " " >>"$tmp/new.json"
mv "$tmp/new.json" "$tmp/flags.json"
wait_for "published generation" 2 || ok=0
port=$(sed -n 's|.*serving metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/daemon" | head -1)
scrape() { # scrape PATH: the whole HTTP answer, over bash's /dev/tcp
	exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
	printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
	cat <&3
	exec 3<&-
}
if [ -n "$port" ]; then
	scrape /metrics | grep -q '^flagshm_snapshot_generation' || ok=0
	scrape /metrics | grep -q '^flagshm_flags' || ok=0
	scrape /nope | grep -q '404' || ok=0
else
	ok=0
fi
cp "$tmp/bad.json" "$tmp/flags.json"
wait_for "rejected" 1 || ok=0
kill -TERM "$daemon"
wait "$daemon"
rc=$?
daemon=
if [ "$ok" -ne 1 ] || [ "$rc" -ne 0 ] || grep -q '==[0-9]*== ' "$tmp/daemon"; then
	echo "not ok $n - the daemon republishes, rejects and exits cleanly (exit $rc)"
	sed 's/^/#   /' "$tmp/daemon" | head -60
	fail=1
else
	echo "ok $n - the daemon republishes, rejects and exits cleanly"
fi
exit $fail
