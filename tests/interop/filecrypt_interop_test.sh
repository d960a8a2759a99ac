#!/usr/bin/env bash
# tests/interop/filecrypt_interop_test.sh: runs filecrypt_interop.mjs under
# Bazel with the C tool from runfiles. Needs node on PATH and
# CARECHAT_NODE_MODULES (passed with --test_env) naming the node_modules that
# `npm ci` made in tests/ (with libsodium-wrappers); fails, never skips.
set -euo pipefail
tool="$1"
if [ -z "${CARECHAT_NODE_MODULES:-}" ] || [ ! -d "$CARECHAT_NODE_MODULES/libsodium-wrappers" ]; then
    echo "filecrypt_interop_test: no libsodium-wrappers in CARECHAT_NODE_MODULES" \
        "(${CARECHAT_NODE_MODULES:-unset}); run 'npm ci' in tests/ and pass" \
        "--test_env=CARECHAT_NODE_MODULES=/abs/path/to/tests/node_modules" >&2
    exit 1
fi
command -v node >/dev/null 2>&1 || { echo "filecrypt_interop_test: node is not on PATH" >&2; exit 1; }
exec node tests/interop/filecrypt_interop.mjs "$tool"
