#!/usr/bin/env python3
"""check-version.py [SOURCE_ROOT [VERSION]] - one version everywhere.

The project's version is meson's (`meson introspect --projectinfo`, or
VERSION when meson.build passes it). The upstream part of debian/changelog's
newest entry (0.2.0 of 0.2.0-1) and the FLAGSHM_VERSION_MAJOR/MINOR/PATCH
macros of include/flagshm.h must equal it. Exit 0 when they do, 1 naming
each file that differs.
"""
import json
import os
import re
import subprocess
import sys


def meson_version(root):
    out = subprocess.run(["meson", "introspect", "--projectinfo", "meson.build"],
                         cwd=root, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["version"]


def debian_version(root):
    with open(os.path.join(root, "debian", "changelog"), encoding="utf-8") as f:
        first = f.readline()
    m = re.match(r"^\S+ \(([^)]+)\)", first)
    if not m:
        return None
    v = m.group(1)
    v = v.split(":", 1)[-1]          # epoch
    return v.rsplit("-", 1)[0] if "-" in v else v  # Debian revision


def header_version(root):
    text = open(os.path.join(root, "include", "flagshm.h"), encoding="utf-8").read()
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"#define FLAGSHM_VERSION_%s (\d+)" % name, text)
        if not m:
            return None
        parts.append(m.group(1))
    return ".".join(parts)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    want = sys.argv[2] if len(sys.argv) > 2 else meson_version(root)
    ok = True
    for what, got in (("debian/changelog", debian_version(root)),
                      ("include/flagshm.h FLAGSHM_VERSION_*", header_version(root))):
        if got != want:
            print(f"{what}: version {got}, but meson.build says {want}", file=sys.stderr)
            ok = False
    if ok:
        print(f"version {want}: meson.build, debian/changelog and include/flagshm.h agree")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
