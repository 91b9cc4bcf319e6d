#!/bin/sh
# Installs the peer SDKs at the versions package-lock.json pins (npm ci: exactly the lockfile,
# nothing newer), from the npm registry only. Installs Debian's nodejs and npm first if node is
# missing. Package install scripts are not run (none of these packages needs one).
set -eu
cd "$(dirname "$0")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "install.sh: node or npm missing; installing Debian's nodejs and npm" >&2
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends nodejs npm
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "install.sh: node $(node --version) found; the peers need node >= 20" >&2
	exit 1
fi

timeout 600 npm ci --ignore-scripts --no-audit --no-fund
echo "install.sh: $(npm ls --depth=0 2>/dev/null | tail -n +2 | tr -d '\n')" >&2
