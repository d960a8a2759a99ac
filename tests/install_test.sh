#!/bin/bash
# tests/install_test.sh: bazel/install.sh --root DIR installs carechatd as a
# service into a staging root (issue 13, "running it as a service"): the
# binaries, the unit, the example configuration with its paths under the root,
# the data and key directories apart (mode 0700) and a database made once by
# `carechatd init`; a second run overwrites neither the configuration nor the
# database; carechatd starts with the installed configuration, without the
# keys-in-data warning; and the unit passes `systemd-analyze verify` where
# systemd is installed.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    [ -f "$T/serve.log" ] && sed 's/^/  carechatd: /' "$T/serve.log" >&2
    exit 1
}

R="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}"
[ -x "$R/bazel/install.sh" ] || R=.
export CARECHATD_BIN="$R/server/carechatd" CARECHAT_BIN="$R/client/carechat"
T=$(mktemp -d "${TEST_TMPDIR:-/tmp}/install.XXXXXX")
ROOT="$T/root"
PID=""
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true' EXIT

timeout 120 "$R/bazel/install.sh" --root "$ROOT" --no-start >"$T/install.log" 2>&1 ||
    fail "install.sh: $(cat "$T/install.log")"
for f in usr/local/bin/carechatd usr/local/bin/carechat; do
    [ -x "$ROOT/$f" ] || fail "$f is not installed"
done
cmp -s "$R/server/carechatd.service" "$ROOT/etc/systemd/system/carechatd.service" ||
    fail "the unit is not installed"
CONF="$ROOT/etc/carechat/carechatd.conf"
[ "$(stat -c %a "$CONF")" = 640 ] || fail "the configuration is mode $(stat -c %a "$CONF")"
grep -q "^data = $ROOT/var/lib/carechat/data\$" "$CONF" || fail "data path: $(grep ^data "$CONF")"
grep -q "^key-dir = $ROOT/var/lib/carechat-keys/keys\$" "$CONF" || fail "key-dir path"
for d in var/lib/carechat var/lib/carechat-keys; do
    [ "$(stat -c %a "$ROOT/$d")" = 700 ] || fail "$d is mode $(stat -c %a "$ROOT/$d")"
done
[ -f "$ROOT/var/lib/carechat/data/db/CURRENT" ] || fail "no database was made"
[ -f "$ROOT/var/lib/carechat-keys/keys/master.key" ] || fail "no master key in the key volume"
[ ! -e "$ROOT/var/lib/carechat/data/keys" ] || fail "keys were made inside the data directory"

# Again: the operator's configuration and the database stay as they are.
echo "# edited by the operator" >>"$CONF"
manifest=$(ls "$ROOT/var/lib/carechat/data/db" | grep MANIFEST)
timeout 120 "$R/bazel/install.sh" --root "$ROOT" --no-start >"$T/install2.log" 2>&1 ||
    fail "install.sh again: $(cat "$T/install2.log")"
grep -q "edited by the operator" "$CONF" || fail "the configuration was overwritten"
[ "$(ls "$ROOT/var/lib/carechat/data/db" | grep MANIFEST)" = "$manifest" ] ||
    fail "the database was touched by the second install"

# The installed configuration serves (on free ports), with the keys apart.
"$ROOT/usr/local/bin/carechatd" --config "$CONF" --listen 127.0.0.1:0 \
    --metrics-listen 127.0.0.1:0 >"$T/serve.log" 2>&1 &
PID=$!
for _ in $(seq 200); do
    grep -q "listening on 127.0.0.1:" "$T/serve.log" && break
    kill -0 "$PID" 2>/dev/null || fail "carechatd exited"
    sleep 0.1
done
grep -q "listening on 127.0.0.1:" "$T/serve.log" || fail "carechatd did not listen"
grep -q "inside the data directory" "$T/serve.log" && fail "the keys-in-data warning"
kill -TERM "$PID"
wait "$PID" || fail "carechatd did not stop cleanly"
PID=""

if command -v systemd-analyze >/dev/null; then
    # The only complaint allowed: the binary is not at /usr/local/bin here.
    out=$(systemd-analyze verify "$ROOT/etc/systemd/system/carechatd.service" 2>&1 || true)
    other=$(printf '%s\n' "$out" | grep -v "carechatd is not executable" | grep -v '^$' || true)
    [ -z "$other" ] || fail "systemd-analyze verify: $other"
fi
echo "PASS"
