#!/bin/bash
# tests/cli_reconnect_test.sh: a running `carechat recv --wait` lives through
# what a clinic's day brings (issue 13):
#   - a `send` from a second terminal of the same profile works and does not
#     end the running recv (a device may hold a sending connection beside its
#     receiving one; only a connection that syncs replaces the receiver);
#   - carechatd restarting (SIGTERM: close 1001, then a new process on the same
#     port): recv connects again, resumes from its cursor and prints every
#     message exactly once, then exits 0 after its quiet wait.
# Fails without the reconnection (recv exits on the 1001 close and misses the
# message sent after the restart) or with the old "every connection of a
# device replaces the others" rule (the send ends the recv).
# Everything runs on 127.0.0.1 under `timeout`; every wait is bounded.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clirecon

password_file root 'root-secret-passphrase'
password_file doc 'doctor-secret-passphrase'
password_file pat 'patient-secret-passphrase'
bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register doc root doc@clinic.example provider "Dr Ada"
register pat doc pat@clinic.example patient "Pat"
cli pat --json send --to doc@clinic.example --text "before"
expect_rc 0 "first message"

RECV_PID=""
stop_recv() { if [ -n "$RECV_PID" ]; then kill -9 "$RECV_PID" 2>/dev/null || true; fi; }
trap 'stop_recv; lib_cleanup' EXIT
timeout 120 "$CLI" --server "$URL" --profile "$T/doc" --json recv --wait 6 \
    >"$T/recv.out" 2>"$T/recv.err" &
RECV_PID=$!

# Waits up to 20 s for the running recv to have printed a message with text $1.
wait_printed() {
    for _ in $(seq 200); do
        grep -qF "\"text\": \"$1\"" "$T/recv.out" && return 0
        kill -0 "$RECV_PID" 2>/dev/null ||
            { cat "$T/recv.err" >&2; fail "recv ended before printing '$1'"; }
        sleep 0.1
    done
    cat "$T/recv.err" >&2
    fail "recv did not print '$1' within 20 s"
}
wait_printed before

# A second terminal of the same profile sends; the recv goes on.
cli doc --json send --to pat@clinic.example --text "beside"
expect_rc 0 "send beside a running recv"
cli pat --json send --to doc@clinic.example --text "after the send"
expect_rc 0 "message after the send"
wait_printed "after the send"

# The server restarts on the same port.
LISTEN_PORT=$PORT
stop_server
start_server
[ "$PORT" = "$LISTEN_PORT" ] || fail "restarted on another port"
cli pat --json send --to doc@clinic.example --text "after the restart"
expect_rc 0 "message after the restart"
wait_printed "after the restart"

status=0
for _ in $(seq 300); do
    kill -0 "$RECV_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$RECV_PID" 2>/dev/null && fail "recv did not end 6 s after the queue was empty"
wait "$RECV_PID" || status=$?
RECV_PID=""
[ "$status" -eq 0 ] || { cat "$T/recv.err" >&2; fail "recv exited with $status"; }
for text in before "after the send" "after the restart"; do
    n=$(grep -cF "\"text\": \"$text\"" "$T/recv.out" || true)
    [ "$n" -eq 1 ] || fail "'$text' printed $n times: $(cat "$T/recv.out")"
done
[ "$(wc -l <"$T/recv.out")" -eq 3 ] || fail "recv printed more than the three messages"

# Nothing is left to receive: each message was acknowledged.
cli doc --json recv
expect_rc 0 "recv again"
[ "$(lines)" -eq 0 ] || fail "recv again printed '$OUT'"
stop_server
echo PASS
