#!/usr/bin/env bash
# bazel/run.sh: installs what is missing, builds carechatd and runs it with its
# embedded defaults (ws://127.0.0.1:8080, data in ./carechat-data). Arguments are
# passed to carechatd, e.g. `bazel/run.sh --listen 127.0.0.1:9000`.
#
# carechatd never creates a database: when the data directory (--data, or the
# `data` key of a --config file, default ./carechat-data) does not exist at all,
# this script runs `carechatd init` with the same arguments first. An existing
# directory is never initialised here, so a lost or unmounted database is
# refused by carechatd instead of being replaced by an empty one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
"$root/bazel/setup.sh"
(cd "$root" && bazel build -c opt //server:carechatd)
bin="$root/bazel-bin/server/carechatd"

data=./carechat-data
config=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
    --data) data="${args[i + 1]:-}" ;;
    --data=*) data="${args[i]#--data=}" ;;
    --config) config="${args[i + 1]:-}" ;;
    --config=*) config="${args[i]#--config=}" ;;
    esac
done
# The command line wins over the file, as in carechatd.
if [ -n "$config" ] && ! printf '%s\n' "$@" | grep -q -e '^--data$' -e '^--data='; then
    from_file=$(sed -n 's/#.*//; s/^[[:space:]]*data[[:space:]]*=[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/\1/p' "$config" | tail -1)
    [ -n "$from_file" ] && data=$from_file
fi
if [ ! -e "$data" ]; then
    echo "run.sh: $data does not exist: carechatd init" >&2
    "$bin" init "$@"
fi
exec "$bin" "$@"
