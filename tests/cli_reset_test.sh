#!/bin/bash
# tests/cli_reset_test.sh: `carechat password reset-request` and `carechat
# password reset` against the real carechatd with a real SMTP relay
# (tests/push/mailpeer.mjs) (issue 13). A request for an unknown email answers
# like one for an account and mails nothing; the patient's code comes by mail;
# a wrong code is refused (exit 2, "invalid or expired code"); the right one
# sets the new password and ends the account's sessions (the patient's profile
# gets exit 4), the old password no longer signs in, the new one does, and the
# code does not work twice; neither the code nor the passwords nor the emails
# are in the server log; --help documents both commands.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clireset
[ -n "${CARECHAT_NODE_MODULES:-}" ] ||
    fail "CARECHAT_NODE_MODULES is not set (npm ci in tests/, then --test_env=...)"
PEER_JS="$RUNFILES/tests/push/mailpeer.mjs"
[ -f "$PEER_JS" ] || PEER_JS="tests/push/mailpeer.mjs"
MAIL="$T/mail"
mkdir -p "$MAIL"
node "$PEER_JS" "$MAIL" >"$T/peer.log" 2>&1 &
PEER=$!
trap 'kill "$PEER" 2>/dev/null || true; lib_cleanup' EXIT
for _ in $(seq 200); do
    [ -f "$MAIL/ready.json" ] && break
    sleep 0.1
done
[ -f "$MAIL/ready.json" ] || { cat "$T/peer.log" >&2; fail "mailpeer did not start within 20 s"; }
SMTP=$(grep -o '"smtp":[0-9]*' "$MAIL/ready.json" | sed 's/.*://')
CA=$(grep -o '"ca":"[^"]*"' "$MAIL/ready.json" | sed 's/"ca":"\(.*\)"/\1/')

# The number of mails accepted for $1 (mail-1, mail-2, ...), and the newest
# one's file.
mails_to() {
    local n=0 i=1
    while [ -f "$MAIL/mail-$i.rcpt" ]; do
        [ "$(cat "$MAIL/mail-$i.rcpt")" = "$1" ] && n=$((n + 1))
        i=$((i + 1))
    done
    echo "$n"
}
newest_to() {
    local last="" i=1
    while [ -f "$MAIL/mail-$i.rcpt" ]; do
        [ "$(cat "$MAIL/mail-$i.rcpt")" = "$1" ] && last="$MAIL/mail-$i.eml"
        i=$((i + 1))
    done
    echo "$last"
}
wait_mails() { # EMAIL N
    for _ in $(seq 200); do
        [ "$(mails_to "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "no mail number $2 to $1 within 20 s"
}

password_file root "root-secret-passphrase"
password_file pat "pat-first-passphrase"
password_file new "pat-second-passphrase-9"
printf '%s\n' "0123456789abcdef0123" >"$T/wrong.code"

bootstrap_root
start_server --smtp-url "smtp://127.0.0.1:$SMTP" --smtp-from no-reply@clinic.example \
    --smtp-ca-file "$CA" --app-link https://clinic.example/app
URL="ws://127.0.0.1:$PORT"
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register pat root pat@clinic.example patient "Pat Canary"
wait_mails pat@clinic.example 1 # the invitation

cli other password reset-request --email nobody@clinic.example
expect_rc 0 "a request for an unknown email"
NOBODY_OUT="$OUT"
cli other password reset-request --email pat@clinic.example
expect_rc 0 "a request for the patient"
[ "$OUT" = "${NOBODY_OUT/nobody/pat}" ] || fail "the answers differ: '$NOBODY_OUT' / '$OUT'"
wait_mails pat@clinic.example 2
EML=$(newest_to pat@clinic.example)
CODE=$(sed -n 's/^Your reset code: \([0-9a-f]*\)\r*$/\1/p' "$EML")
[ ${#CODE} -eq 20 ] || fail "no code in the mail"
grep -q "Pat Canary" "$EML" && fail "the name is in the mail"
printf '%s\n' "$CODE" >"$T/right.code"

cli other password reset --email pat@clinic.example --code-file "$T/wrong.code" \
    --new-password-file "$T/new.pw"
expect_rc 2 "a wrong code"
expect_err "invalid or expired code" "a wrong code"
cli other password reset --email pat@clinic.example --code-file "$T/right.code" \
    --new-password-file "$T/new.pw"
expect_rc 0 "the reset"
[ "$OUT" = "password reset; every session of the account has ended: log in again" ] ||
    fail "text output: '$OUT'"
cli pat devices
expect_rc 4 "the patient's session has ended"
cli tablet login --email pat@clinic.example --password-file "$T/pat.pw"
expect_rc 2 "the old password"
cli tablet login --email pat@clinic.example --password-file "$T/new.pw"
expect_rc 0 "the new password"
cli other password reset --email pat@clinic.example --code-file "$T/right.code" \
    --new-password-file "$T/pat.pw"
expect_rc 2 "the code a second time"

[ "$(mails_to nobody@clinic.example)" -eq 0 ] || fail "a mail to an unknown email"
for secret in "$CODE" pat-first-passphrase pat-second-passphrase-9 pat@clinic.example \
    nobody@clinic.example; do
    grep -qF "$secret" "$T/carechatd.log" && fail "'$secret' is in the server log"
done
"$CLI" --help >"$T/help"
grep -qF "password reset-request --email E" "$T/help" || fail "--help lacks reset-request"
grep -qF "password reset --email E --code-file F --new-password-file NEW" "$T/help" ||
    fail "--help lacks reset"
echo PASS
