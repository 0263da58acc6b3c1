#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter (3.12 preferred): PATH first, then pyenv's versions.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
is312() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' >/dev/null 2>&1; }
root=${PYENV_ROOT:-$HOME/.pyenv}
candidates=()
for name in python3.12 python3 python python3.13 python3.14; do
  p=$(command -v "$name" 2>/dev/null) && candidates+=("$p")
done
for p in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V); do candidates+=("$p"); done
for check in is312 ok; do
  for p in "${candidates[@]}"; do
    if $check "$p"; then "$p" -c 'import sys; print(sys.executable)'; exit 0; fi
  done
done
echo "error: no Python >= 3.12 found on PATH or in $root/versions; install one (e.g. 'pyenv install 3.12')" >&2
exit 1
