#!/bin/bash
# tests/tls_test.sh: carechatd with --tls-cert/--tls-key speaks TLS 1.3 and 1.2
# with ECDHE + AES-256-GCM suites only (AES-128, ChaCha20 and CBC suites are
# refused by default), refuses TLS 1.1 and 1.0, and serves
# the carechat.v1 upgrade over TLS, and /healthz over TLS on the metrics
# listener (the same certificate) while the public listener answers it 404.
#
# A self-signed P-256 certificate is made here with the openssl CLI; every
# client is `openssl s_client` or curl on 127.0.0.1 under `timeout`. The TLS 1.1
# refusal is only meaningful if this client can speak TLS 1.1 at all, so the same
# client command is first shown to work against `openssl s_server -tls1_1`.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    [ -f "$T/carechatd.log" ] && sed 's/^/  carechatd: /' "$T/carechatd.log" >&2
    exit 1
}

BIN="${CARECHATD:-}"
if [ -z "$BIN" ]; then
    BIN="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/server/carechatd"
    [ -x "$BIN" ] || BIN="server/carechatd"
fi
T=$(mktemp -d "${TEST_TMPDIR:-/tmp}/tls.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || fail "openssl req"
chmod 600 "$T/key.pem"

# Waits (at most 20 s) for "<pattern>HOST:PORT" in a file; prints PORT.
wait_port() {
    local file=$1 pattern=$2 port=""
    for _ in $(seq 200); do
        port=$(grep -o "${pattern}127.0.0.1:[0-9]*" "$file" 2>/dev/null | head -1 | sed 's/.*://')
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || return 1
    echo "$port"
}

# Handshake with s_client; prints its -brief summary. Extra args select versions.
handshake() {
    local port=$1
    shift
    echo | timeout 10 openssl s_client -brief -connect "127.0.0.1:$port" "$@" 2>&1
}

# --- the client can do TLS 1.1 (control) -----------------------------------
# s_server stops at the end of its stdin: a FIFO we hold open keeps it serving.
mkfifo "$T/hold"
timeout 20 openssl s_server -naccept 1 -accept 127.0.0.1:0 -cert "$T/cert.pem" \
    -key "$T/key.pem" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' <"$T/hold" >"$T/s_server.log" 2>&1 &
PIDS+=($!)
exec 3>"$T/hold"
CONTROL_PORT=$(wait_port "$T/s_server.log" "ACCEPT ") || fail "s_server did not start"
handshake "$CONTROL_PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' | grep -q "Protocol version: TLSv1.1" ||
    fail "control: this openssl client cannot speak TLS 1.1, the refusal test would prove nothing"
exec 3>&-

# --- carechatd with TLS -------------------------------------------------------------------
timeout 60 "$BIN" init --data "$T/data" >"$T/init.log" 2>&1 || fail "carechatd init: $(cat "$T/init.log")"
"$BIN" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data "$T/data" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" \
    --auth-timeout 5 >"$T/carechatd.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
PORT=$(wait_port "$T/carechatd.log" " ws: listening on ") || fail "carechatd did not listen"
METRICS_PORT=$(wait_port "$T/carechatd.log" "metrics listening on ") || fail "no metrics listener"
grep -q "wss, TLS" "$T/carechatd.log" || fail "log does not say TLS"

out=$(handshake "$PORT" -tls1_3)
echo "$out" | grep -q "Protocol version: TLSv1.3" || fail "TLS 1.3 handshake: $out"

echo "$out" | grep -q "Ciphersuite: TLS_AES_256_GCM_SHA384" || fail "TLS 1.3 suite: $out"
# AES-256 in transit (the privacy policy): by default no other suite.
for suite in TLS_AES_128_GCM_SHA256 TLS_CHACHA20_POLY1305_SHA256; do
    out=$(handshake "$PORT" -tls1_3 -ciphersuites "$suite") &&
        echo "$out" | grep -q "Protocol version" && fail "TLS 1.3 $suite accepted: $out"
done
out=$(handshake "$PORT" -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384)
echo "$out" | grep -q "Protocol version: TLSv1.2" || fail "TLS 1.2 AES-256-GCM: $out"
echo "$out" | grep -q "Ciphersuite: ECDHE-ECDSA-AES256-GCM-SHA384" ||
    fail "TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384 not chosen: $out"
for suite in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-CHACHA20-POLY1305; do
    out=$(handshake "$PORT" -tls1_2 -cipher "$suite") &&
        echo "$out" | grep -q "Protocol version" && fail "TLS 1.2 $suite accepted: $out"
done

for suite in ECDHE-ECDSA-AES128-SHA256 ECDHE-ECDSA-AES256-SHA; do
    out=$(handshake "$PORT" -tls1_2 -cipher "$suite:@SECLEVEL=0") &&
        echo "$out" | grep -q "Protocol version" && fail "CBC suite $suite accepted: $out"
done

out=$(handshake "$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0') &&
    echo "$out" | grep -q "Protocol version" && fail "TLS 1.1 accepted: $out"
out=$(handshake "$PORT" -tls1 -cipher 'DEFAULT:@SECLEVEL=0') &&
    echo "$out" | grep -q "Protocol version" && fail "TLS 1.0 accepted: $out"

# --- HTTP and the WebSocket upgrade over TLS ----------------------------------------
body=$(timeout 10 curl -sS --cacert "$T/cert.pem" "https://127.0.0.1:$METRICS_PORT/healthz") ||
    fail "curl https /healthz"
echo "$body" | grep -q '"server_id":"[0-9a-f]\{32\}"' || fail "healthz over TLS: $body"
code=$(timeout 10 curl -sS -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" \
    "https://127.0.0.1:$PORT/healthz") || fail "curl https /healthz on the public listener"
[ "$code" = 404 ] || fail "/healthz on the public listener answered $code"

upgrade=$( (printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: carechat.v1\r\n\r\n'
    sleep 1) | timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" 2>/dev/null || true)
echo "$upgrade" | grep -q "^HTTP/1.1 101" || fail "no 101 over TLS: $upgrade"
echo "$upgrade" | grep -qi "^Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
    fail "bad accept over TLS: $upgrade"

# --- clean stop ------------------------------------------------------------------------------
kill -TERM "$SERVER"
status=0
for _ in $(seq 100); do
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
done
wait "$SERVER" || status=$?
[ "$status" -eq 0 ] || fail "exit status $status after SIGTERM"
echo "PASS"
