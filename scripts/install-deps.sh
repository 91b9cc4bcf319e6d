#!/usr/bin/env bash
# scripts/install-deps.sh - install what flagshm's build, tests and demo need
# on Debian 12 (bookworm). Skips apt entirely when everything is present, so
# it is cheap to run before every build. Needs root (or sudo) only to install.
set -euo pipefail

packages=(
	build-essential     # gcc, make, libc headers; gcc brings the ASan/UBSan/TSan runtimes
	clang               # second compiler, fuzz targets
	meson ninja-build pkg-config
	debhelper           # the .deb packages (debian/, dh with meson; scripts/test-install.sh deb)
	dpkg-dev            # dpkg-buildpackage
	fakeroot            # dpkg-buildpackage when not run as root
	lintian             # the packages are checked for errors
	man-db              # man --warnings -l renders every man page (dist/man)
	groff-base          # the formatter behind man
	bash-completion     # completion dir from bash-completion.pc; the completion test sources it
	systemd             # systemd-analyze verify on the units; systemd.pc; systemd-sysusers
	liburcu-dev         # tests: an application that uses liburcu beside libflagshm
	libjansson-dev      # writer and flagshm tool: JSON
	libpcre2-dev        # the "matches" operator
	libprotobuf-c-dev protobuf-c-compiler  # control-plane protocol (proto/)
	libcurl4-openssl-dev                   # control-plane client (writer/sync/http.c)
	libcriterion-dev    # unit and process tests
	libclang-rt-14-dev  # libFuzzer and clang's sanitizer runtimes (tests/fuzz)
	libmicrohttpd-dev   # the writer's /metrics exporter; flagshm-control (control/); the test control plane (tests/cp_server.c)
	prometheus          # tests: promtool check metrics/rules, a real Prometheus scraping the writer; rollout guards
	tmux                # tests: flagshm top driven in a terminal (send-keys, capture-pane)
	nginx-light         # the polling test serves a flags file through real nginx
	valgrind            # the writer's compile-and-publish path, checked for leaks
	openssl             # tests: a certificate for flagshm-control over https
	etcd-server etcd-client libssl-dev  # flagshm-control: its store (tests start real members), SHA-256 of tokens
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages present"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
	sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
