#!/usr/bin/env bash
# tests/call_cycles_test.sh FOLDER...: STYLE.md's "files call each other in one
# direction" as a test: runs tests/call_cycles.py over the named source folders
# of this checkout and fails when the .c files of any of them call each other in
# a circle (the checker prints which).
#
# The folders are read from the checkout the test's own runfile links to, not
# from runfiles: a folder's sources are not all exported to //tests (server/
# and storage/ have no filegroup of their .c files), and a glob cannot cross
# packages. Hence the target is tagged "external": Bazel never caches its
# result, so a circle added anywhere fails the next run.
set -euo pipefail
script=$(readlink -f tests/call_cycles.py)
root=$(dirname "$(dirname "$script")")
if [ ! -f "$root/WORKSPACE" ]; then
    echo "call_cycles_test: $script is not inside a checkout (no WORKSPACE in $root)" >&2
    exit 1
fi
cd "$root"
exec python3 tests/call_cycles.py "$@"
