#!/bin/bash
# tests/cli_messaging_test.sh: end-to-end encrypted messaging through the
# `carechat` CLI against the real carechatd.
#
# A provider invites a patient, who registers and logs in on two more
# profiles (three devices of one account), each approved from the first. The provider logs out (offline);
# the patient sends to the provider, who reads the message after logging in
# again (`recv --json`: conversation, seq, message_id, sender, sent_at, state,
# text), and a second `recv` prints nothing (acknowledged). The provider's
# reply reaches all three patient devices; the patient's other two devices
# also get the patient's own message. A resend with the same --client-id
# stores one message (`history` shows it once). `conversations` lists the
# conversation. Errors exit with their documented codes and clear messages.
# CANARY: a unique message text, display name and email sent through the
# system appear in no file of the data directory (before and after the server
# stops) nor in the server's log.
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init climsg

# Unique values that must never be stored or logged in the clear.
NONCE=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
CANARY_TEXT="canary-text-$NONCE: blood pressure 140/90"
CANARY_NAME="Canaryname$NONCE"
CANARY_EMAIL="canary$NONCE@clinic.example"

password_file root 'root-secret-passphrase'
password_file doc 'doctor-secret-passphrase'
password_file pat 'patient-secret-passphrase'

bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

# --- accounts: a provider, a patient with three devices ----------------------------
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
cli root --json invite --email doc@clinic.example --role provider
expect_rc 0 "invite the provider"
DOC_CODE=$(invite_code)
cli doc --json register --code "$DOC_CODE" --email doc@clinic.example \
    --password-file "$T/doc.pw" --birthdate 1980-05-06 --name "Dr Ada"
expect_rc 0 "provider registers"
DOC_ID=$(field account_id)
cli doc --json invite --email "$CANARY_EMAIL" --role patient
expect_rc 0 "provider invites the patient"
PAT_CODE=$(invite_code)
cli pat1 --json register --code "$PAT_CODE" --email "$CANARY_EMAIL" \
    --password-file "$T/pat.pw" --birthdate 1990-02-03 --name "$CANARY_NAME"
expect_rc 0 "patient registers"
PAT_ID=$(field account_id)
[ ${#PAT_ID} -eq 32 ] && [ ${#DOC_ID} -eq 32 ] || fail "no account ids"
for p in pat2 pat3; do
    cli $p login --email "$CANARY_EMAIL" --password-file "$T/pat.pw"
    expect_rc 0 "patient logs in on $p"
    # A new device receives nothing until a listed device approves its code.
    CODE=$(sed -n 's/^  carechat approve --code \([0-9-]*\)$/\1/p' "$T/out")
    [ -n "$CODE" ] || fail "$p: no approval code in '$OUT'"
    cli pat1 approve --code "$CODE"
    expect_rc 0 "pat1 approves $p"
done

# --- a message to an offline provider, read after login ------------------------------
cli doc logout
expect_rc 0 "provider logs out"
cli doc recv
expect_rc 4 "recv without a session"
expect_err "carechat login" "recv without a session"

cli pat1 --json send --to doc@clinic.example --text "$CANARY_TEXT"
expect_rc 0 "patient sends to the offline provider"
CONV=$(field conversation)
SEQ1=$(number seq)
[ ${#CONV} -eq 32 ] || fail "send --json: no conversation in '$OUT'"
[ -n "$SEQ1" ] && [ "$SEQ1" -gt 0 ] || fail "send --json: no seq"
[ "$(number device_conflicts)" = 0 ] || fail "send --json: device conflicts"

cli doc login --email doc@clinic.example --password-file "$T/doc.pw"
expect_rc 0 "provider logs in again"
cli doc --json recv --wait 1
expect_rc 0 "provider receives"
[ "$(lines)" -eq 1 ] || fail "provider recv: expected one message, got '$OUT'"
[ "$(field conversation)" = "$CONV" ] || fail "recv: conversation"
[ "$(number seq)" = "$SEQ1" ] || fail "recv: seq"
[ "$(field sender)" = "$PAT_ID" ] || fail "recv: sender"
[ "$(field state)" = ok ] || fail "recv: state"
[ "$(field text)" = "$CANARY_TEXT" ] || fail "recv: text"
[ "$(number sent_at)" -gt 1700000000000 ] || fail "recv: sent_at"
MID=$(field message_id)
[ ${#MID} -eq 32 ] || fail "recv: message_id"
grep -q '"sender_device": "[0-9a-f]\{32\}"' "$T/out" || fail "recv: sender_device"

cli doc --json recv
expect_rc 0 "provider receives again"
[ "$(lines)" -eq 0 ] || fail "recv after acknowledging printed '$OUT'"

# --- the reply reaches all three devices of the patient ------------------------------
cli doc --json send --conversation "$CONV" --text "reply to all three devices"
expect_rc 0 "provider replies"
SEQ2=$(number seq)
[ "$SEQ2" -gt "$SEQ1" ] || fail "reply seq $SEQ2 not above $SEQ1"
for p in pat1 pat2 pat3; do
    cli $p --json recv --wait 1
    expect_rc 0 "$p receives"
    [ "$(grep -c '"text": "reply to all three devices"' "$T/out")" -eq 1 ] ||
        fail "$p: the reply once: '$OUT'"
    grep -q "\"sender\": \"$DOC_ID\"" "$T/out" || fail "$p: sender of the reply"
    if [ "$p" != pat1 ]; then
        # the sender's other devices get the patient's own message too
        grep -qF "\"text\": \"$CANARY_TEXT\"" "$T/out" || fail "$p: own account's message"
    fi
    cli $p --json recv
    [ "$(lines)" -eq 0 ] || fail "$p: second recv printed '$OUT'"
done

# --- a resend with the same client id stores one message -----------------------------
CID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
cli doc --json send --conversation "$CONV" --text "stored once" --client-id "$CID"
expect_rc 0 "send with a client id"
MID1=$(field message_id)
S1=$(number seq)
[ "$(field client_id)" = "$CID" ] || fail "send: client id not echoed"
cli doc --json send --conversation "$CONV" --text "stored once" --client-id "$CID"
expect_rc 0 "resend with the same client id"
[ "$(field message_id)" = "$MID1" ] || fail "resend: another message id"
[ "$(number seq)" = "$S1" ] || fail "resend: another seq"
cli pat2 --json history --conversation "$CONV"
expect_rc 0 "history"
[ "$(grep -c '"text": "stored once"' "$T/out")" -eq 1 ] || fail "history: '$OUT'"
[ "$(lines)" -eq 3 ] || fail "history: expected 3 messages, got '$OUT'"
grep -qF "\"text\": \"$CANARY_TEXT\"" "$T/out" || fail "history: the first message"
cli pat2 --json history --conversation "$CONV" --limit 1
[ "$(lines)" -eq 1 ] && grep -q '"text": "stored once"' "$T/out" || fail "history --limit 1"
cli pat3 --json recv --wait 1
[ "$(lines)" -eq 1 ] && grep -q '"text": "stored once"' "$T/out" || fail "pat3: one copy"

cli doc --json conversations
expect_rc 0 "conversations"
[ "$(lines)" -eq 1 ] || fail "conversations: '$OUT'"
[ "$(field conversation)" = "$CONV" ] && [ "$(field kind)" = direct ] || fail "conversations"
grep -q "\"account_id\": \"$PAT_ID\"" "$T/out" || fail "conversations: the patient"
cli doc conversations
grep -q "^$CONV  direct  last seq " "$T/out" || fail "conversations text: '$OUT'"

# --- errors ------------------------------------------------------------------------------
cli doc send --to nobody@clinic.example --text "x"
expect_rc 2 "send to an unknown email"
expect_err "no account you may contact" "send to an unknown email"
cli doc send --to doc@clinic.example --conversation "$CONV" --text "x"
expect_rc 1 "send with --to and --conversation"
cli doc send --conversation "$CONV"
expect_rc 1 "send without --text"
expect_err "needs --text (or --text-file), --file or both" "send without --text"
cli doc send --conversation xyz --text "x"
expect_rc 1 "send with a malformed conversation"
cli doc send --conversation "$CID" --text "x"
expect_rc 2 "send to an unknown conversation"
cli doc history --conversation "$CID"
expect_rc 2 "history of an unknown conversation"
expect_err "not a member" "history of an unknown conversation"
# --- the text from a file or standard input ---------------------------------------------
printf 'line one\nline "two" \303\251\n' >"$T/msg.txt"
cli doc --json send --conversation "$CONV" --text-file "$T/msg.txt"
expect_rc 0 "send --text-file"
RC=0
printf 'from standard input' | timeout 60 "$CLI" --server "$URL" --profile "$T/doc" --json \
    send --conversation "$CONV" --text - >"$T/out" 2>"$T/err" || RC=$?
expect_rc 0 "send --text -"
printf 'bad \377\376 bytes' >"$T/bad.txt"
cli doc send --conversation "$CONV" --text-file "$T/bad.txt"
expect_rc 1 "a text file that is not UTF-8"
expect_err "not valid UTF-8" "a text file that is not UTF-8"
cli doc send --conversation "$CONV" --text x --text-file "$T/msg.txt"
expect_rc 1 "both --text and --text-file"
cli pat1 --json recv --wait 1
expect_rc 0 "the texts from a file and stdin arrive"
grep -qF '"text": "line one\nline \"two\" \u00e9\n"' "$T/out" ||
    grep -qF "\"text\": \"line one\\nline \\\"two\\\" $(printf '\303\251')\\n\"" "$T/out" ||
    fail "the file's text, byte for byte: '$OUT'"
grep -qF '"text": "from standard input"' "$T/out" || fail "the text from stdin: '$OUT'"
grep -qF 'bad ' "$T/out" && fail "a refused text was sent: '$OUT'"

cli doc recv --wait 99999
expect_rc 1 "recv --wait out of range"
cli nobody recv
expect_rc 4 "recv on a fresh profile"

# --- canary: nothing readable in the data directory or the log ------------------------
canary_check() { # WHEN
    for v in "$CANARY_TEXT" "$CANARY_NAME" "$CANARY_EMAIL" "canary-text-$NONCE"; do
        if grep -rqaF -- "$v" "$T/data"; then
            fail "$1: '$v' found in $(grep -rlaF -- "$v" "$T/data" | head -3)"
        fi
        if grep -qaF -- "$v" "$T/carechatd.log"; then fail "$1: '$v' in the server log"; fi
    done
}
canary_check "server running"
stop_server
canary_check "server stopped"
[ "$(find "$T/data" -type f | wc -l)" -gt 0 ] || fail "empty data directory"

echo "PASS"
