#!/usr/bin/env bash
# tests/push/run_peer_test.sh: runs one tests/push/*.mjs under Bazel with
# push_tool from the runfiles. Needs node on PATH and CARECHAT_NODE_MODULES
# (passed with --test_env) naming the node_modules that `npm ci` made in tests/.
set -euo pipefail
script="$1"
tool="$2"
if [ -z "${CARECHAT_NODE_MODULES:-}" ]; then
    echo "push peer test: CARECHAT_NODE_MODULES is not set; run 'npm ci' in tests/ and" \
        "pass --test_env=CARECHAT_NODE_MODULES=/abs/path/to/tests/node_modules" >&2
    exit 1
fi
for p in smtp-server mailparser jose http_ece; do
    if [ ! -d "$CARECHAT_NODE_MODULES/$p" ]; then
        echo "push peer test: no $p in CARECHAT_NODE_MODULES=$CARECHAT_NODE_MODULES" \
            "(run 'npm ci' in tests/)" >&2
        exit 1
    fi
done
if ! command -v node >/dev/null 2>&1; then
    echo "push peer test: node is not on PATH ($PATH)" >&2
    exit 1
fi
if ! command -v openssl >/dev/null 2>&1; then
    echo "push peer test: the openssl CLI is not on PATH" >&2
    exit 1
fi
exec timeout 120 node "$script" "$tool"
