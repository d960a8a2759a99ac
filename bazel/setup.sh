#!/usr/bin/env bash
# bazel/setup.sh: installs everything CareChat needs to build, run and test on
# Debian 12. Idempotent and quick when nothing is missing; safe to run twice.
# Needs root (or sudo) only when a Debian package is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
    bazel-bootstrap build-essential pkg-config
    libwebsockets-dev libsodium-dev librocksdb-dev
    libev-dev libwebsockets-evlib-ev
    libprotobuf-c-dev protobuf-c-compiler
    libcurl4-openssl-dev libssl-dev openssl libcmocka-dev libjansson-dev
    clang libclang-rt-14-dev
    ca-certificates python3
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# Node.js (for test peers): the node on PATH, else Debian's. The @noble
# peers (tests/package.json) need node >= 20.19, which this machine's image
# has (20.20); Debian bookworm's own is 18: a warning below says so.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
                process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "setup: warning: node $(node --version) is older than 20.19; the @noble test" \
        "peers need 20.19 or newer (envelope_interop_test will fail)" >&2
fi

# npm test peers, pinned by tests/package-lock.json; reinstalled when the lock changes.
if [ -f "$root/tests/package-lock.json" ]; then
    stamp="$root/tests/node_modules/.carechat-lock.sha256"
    want=$(sha256sum "$root/tests/package-lock.json" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "setup: npm ci in tests/" >&2
        (cd "$root/tests" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
    fi
fi
