#!/usr/bin/env bash
# bazel/run.sh: installs what is missing, builds carechatd and runs it with its
# embedded defaults (ws://127.0.0.1:8080, data in ./carechat-data). Arguments are
# passed to carechatd, e.g. `bazel/run.sh --listen 127.0.0.1:9000`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
"$root/bazel/setup.sh"
(cd "$root" && bazel build -c opt //server:carechatd)
exec "$root/bazel-bin/server/carechatd" "$@"
