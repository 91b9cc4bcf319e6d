#!/usr/bin/env python3
"""check-exports.py LIB HEADER - the shared library exports exactly the
functions HEADER declares with FLAGSHM_API, and nothing else.

The linker version script (reader/libflagshm.map) exports flagshm_*; this
catches the two ways that can go wrong: an internal function named
flagshm_* that the header does not declare (an accidental ABI), and a
declared function the library does not define (an undefined reference in
every program that calls it). Reads the exports with `nm -D --defined-only`.
Exit 0 when both sets match, 1 (naming each difference) when not.
"""
import re
import subprocess
import sys


def declared(header):
    text = open(header, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    # FLAGSHM_API <return type> NAME(   (the name may follow a '*')
    return set(re.findall(r"\bFLAGSHM_API\b[^;(]*?\b(flagshm_\w+)\s*\(", text))


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2].split("@")[0]
        if kind == "A":  # the version node itself (FLAGSHM_0)
            continue
        names.add(name)
    return names


def main():
    if len(sys.argv) != 3:
        print("usage: check-exports.py LIB HEADER", file=sys.stderr)
        return 2
    lib, header = sys.argv[1:]
    want, have = declared(header), exported(lib)
    if not want:
        print(f"{header}: no FLAGSHM_API declarations found", file=sys.stderr)
        return 1
    ok = True
    for name in sorted(have - want):
        print(f"{lib}: exports {name}, which {header} does not declare", file=sys.stderr)
        ok = False
    for name in sorted(want - have):
        print(f"{lib}: does not export {name}, which {header} declares", file=sys.stderr)
        ok = False
    if ok:
        print(f"{lib}: exports exactly the {len(want)} functions of {header}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
