#!/usr/bin/env bash
# tests/interop/envelope_interop_test.sh: runs envelope_interop.mjs under Bazel with the
# C tool from runfiles. Needs node on PATH and CARECHAT_NODE_MODULES (passed
# with --test_env) naming the node_modules that `npm ci` made in tests/.
set -euo pipefail
tool="$1"
if [ -z "${CARECHAT_NODE_MODULES:-}" ]; then
    echo "envelope_interop_test: CARECHAT_NODE_MODULES is not set; run 'npm ci' in tests/ and" \
        "pass --test_env=CARECHAT_NODE_MODULES=/abs/path/to/tests/node_modules" >&2
    exit 1
fi
if [ ! -d "$CARECHAT_NODE_MODULES/@hpke/core" ] || [ ! -d "$CARECHAT_NODE_MODULES/@noble/curves" ]; then
    echo "envelope_interop_test: no @hpke/core or @noble/curves in CARECHAT_NODE_MODULES=$CARECHAT_NODE_MODULES" \
        "(run 'npm ci' in tests/)" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "envelope_interop_test: node is not on PATH ($PATH)" >&2
    exit 1
fi
exec node tests/interop/envelope_interop.mjs "$tool"
