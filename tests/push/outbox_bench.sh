#!/usr/bin/env bash
# tests/push/outbox_bench.sh: jobs per second through carechatd's durable
# outbox to a loopback SMTP relay (tests/push/mailpeer.mjs), with carechatd's
# CPU time and its notifier thread's. Not a test; run by hand:
#
#   bazel build -c opt //server:carechatd //client:carechat
#   CARECHAT_NODE_MODULES=$PWD/tests/node_modules tests/push/outbox_bench.sh [JOBS]
#
# 1. carechatd with a relay that refuses connections: JOBS invitations (CLI)
#    each leave an outbox row whose first attempt failed (RETRY, about a
#    minute later);
# 2. carechatd restarted with the real relay and the clock 15 minutes ahead
#    (CARECHAT_TEST_CLOCK=1 --clock-offset): every row is due at once; the time
#    from "listening" to the last mail accepted is the drain: outbox sweep,
#    push_submit, SMTP with STARTTLS, the OutboxResult entry of each job.
# Everything on 127.0.0.1 under $TMPDIR.
set -euo pipefail
N=${1:-300}
root=$(cd "$(dirname "$0")/../.." && pwd)
D=${CARECHATD:-$root/bazel-bin/server/carechatd}
C=${CARECHAT:-$root/bazel-bin/client/carechat}
T=$(mktemp -d "${TMPDIR:-/tmp}/outbox-bench.XXXXXX")
PEER=""
SRV=""
cleanup() {
    [ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null || true
    [ -n "$PEER" ] && kill "$PEER" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$T/peer"
node "$root/tests/push/mailpeer.mjs" "$T/peer" >"$T/peer.log" 2>&1 &
PEER=$!
for _ in $(seq 200); do [ -f "$T/peer/ready.json" ] && break; sleep 0.1; done
SMTP=$(sed 's/.*"smtp":\([0-9]*\).*/\1/' "$T/peer/ready.json")
CA="$T/peer/ca.pem"
printf 'bench-root-passphrase\n' >"$T/root.pw"
chmod 600 "$T/root.pw"
"$D" init --data "$T/data" >"$T/init.log" 2>&1
"$D" bootstrap --data "$T/data" --email root@clinic.example --password-file "$T/root.pw" \
    >"$T/boot.log" 2>&1

start() { # SMTP-PORT LOG [FLAGS]
    local port=$1 log=$2
    shift 2
    "$D" --data "$T/data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
        --smtp-url "smtp://127.0.0.1:$port" --smtp-from no-reply@clinic.example \
        --app-link https://clinic.example/app --smtp-ca-file "$CA" \
        --invite-burst 100000 --login-burst-per-ip 100000 "$@" >"$log" 2>&1 &
    SRV=$!
    for _ in $(seq 200); do
        grep -q 'metrics listening on' "$log" 2>/dev/null && break
        sleep 0.05
    done
    PORT=$(grep -v 'metrics listening' "$log" | grep -o 'listening on 127.0.0.1:[0-9]*' |
        sed 's/.*://')
    MPORT=$(grep -o 'metrics listening on 127.0.0.1:[0-9]*' "$log" | sed 's/.*://')
}
metric() { # NAME-WITH-LABELS
    curl -s "http://127.0.0.1:$MPORT/metrics" | grep -v '^#' | grep -F "$1 " | awk '{print $2}'
}

start 1 "$T/fill.log" # port 1: connection refused
"$C" --server "ws://127.0.0.1:$PORT" --profile "$T/root" login --email root@clinic.example \
    --password-file "$T/root.pw" >/dev/null
for i in $(seq "$N"); do
    "$C" --server "ws://127.0.0.1:$PORT" --profile "$T/root" invite \
        --email "bench$i@clinic.example" --role patient >/dev/null
done
for _ in $(seq 600); do
    [ "$(metric 'carechat_outbox_settled_total{outcome="retry"}')" -ge "$N" ] && break
    sleep 0.1
done
kill -TERM "$SRV"
wait "$SRV" || true
SRV=""

CARECHAT_TEST_CLOCK=1 start "$SMTP" "$T/drain.log" --clock-offset 900000
t0=$(date +%s.%N)
for _ in $(seq 6000); do
    [ "$(find "$T/peer" -name 'mail-*.eml' | wc -l)" -ge "$N" ] && break
    sleep 0.02
done
t1=$(date +%s.%N)
got=$(find "$T/peer" -name 'mail-*.eml' | wc -l)
sleep 0.5
ticks=$(getconf CLK_TCK)
read -r ut st < <(awk '{print $14, $15}' "/proc/$SRV/stat")
read -r put pst < <(awk '{print $14, $15}' "/proc/$PEER/stat")
thread=$(metric carechat_push_thread_cpu_seconds_total)
delivered=$(metric 'carechat_outbox_settled_total{outcome="delivered"}')
kill -TERM "$SRV"
wait "$SRV" || true
SRV=""
awk -v n="$got" -v t0="$t0" -v t1="$t1" -v ut="$ut" -v st="$st" -v hz="$ticks" \
    -v th="$thread" -v del="$delivered" -v pcpu="$put $pst" 'BEGIN {
    d = t1 - t0
    printf "outbox drain: %d mails in %.2f s = %.0f jobs/s (delivered results stored: %d)\n", n, d, n / d, del
    printf "carechatd CPU: %.2f s (user %.2f, system %.2f); notifier thread: %.2f s\n", (ut + st) / hz, ut / hz, st / hz, th
    split(pcpu, pc, " ")
    printf "the Node relay (whole run, fill phase included): %.2f s CPU\n", (pc[1] + pc[2]) / hz
}'
