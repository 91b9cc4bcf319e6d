#!/usr/bin/env bash
# scripts/demo.sh - the README's first Quick start command: install what is
# missing, build a release build in build/, and run examples/demo.sh (one
# writer, four worker processes, a flag change every worker picks up at the
# same generation).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh
if [ -f build/meson-private/coredata.dat ]; then
	meson setup --reconfigure build -Dbuildtype=release -Dwerror=false -Db_sanitize=none
else
	meson setup build -Dbuildtype=release
fi
ninja -C build writer/daemon/flagshm-writer tools/flagshm/flagshm examples/worker
exec timeout 120 bash examples/demo.sh "$root/build"
