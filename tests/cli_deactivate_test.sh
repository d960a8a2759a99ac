#!/bin/bash
# tests/cli_deactivate_test.sh: `carechat account deactivate` against the real
# carechatd.
#
# A provider deactivates the patient they invited while the patient's `recv
# --wait` runs: the JSON answer says state "review", restricted_at 30 days and
# purge_at 365 days later; the running recv ends within 10 s with the session
# exit code (4) naming "account deactivated"; the patient's login then fails
# exactly like a wrong password (exit 2, same message). A second patient,
# invited by another provider and sharing no channel with the first, cannot be
# deactivated by the first provider (forbidden) but can by an admin (text
# output with ISO dates); a patient may deactivate nobody (forbidden); nobody
# deactivates themselves (bad request); deactivating twice is a conflict; a
# care-team channel of the deactivated patient is kept read-only for review
# (a send is refused, its provider still reads it). Every
# refusal exits 2 as --help documents. The admin's `audit query` shows one
# successful "account.deactivate" record by the provider with the patient's id
# as its object and neither patient's email anywhere.
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clideact

RPID=""
cleanup() {
    if [ -n "$RPID" ]; then kill -9 "$RPID" 2>/dev/null || true; fi
    lib_cleanup
}
trap cleanup EXIT

for who in root adm doc doc2 pat pat2; do password_file "$who" "$who-secret-passphrase"; done
password_file wrong "not-the-right-passphrase"

bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

# --- accounts: an admin, two providers, one patient of each ---------------------------
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register adm root adm@clinic.example admin "Admin Al"
register doc root doc@clinic.example provider "Dr Ada"
DOC_ID=$ID
register doc2 root doc2@clinic.example provider "Dr Bea"
register pat doc pat@clinic.example patient "Pat One"
PAT_ID=$ID
register pat2 doc2 pat2@clinic.example patient "Pat Two"
PAT2_ID=$ID

# --- refusals before anything is deactivated -------------------------------------------
cli pat2 account deactivate --email doc@clinic.example
expect_rc 2 "a patient deactivates a provider"
expect_err "forbidden" "a patient deactivates a provider"
cli doc account deactivate --email doc@clinic.example
expect_rc 2 "a provider deactivates themselves"
expect_err "bad request" "self-deactivation"
cli doc account deactivate --email nobody@clinic.example
expect_rc 2 "an unknown email"
expect_err "not found" "an unknown email"
cli doc account deactivate --email pat2@clinic.example
expect_rc 2 "a provider deactivates another provider's patient"
expect_err "forbidden" "another provider's patient"
cli doc deactivate --email pat@clinic.example
expect_rc 1 "'deactivate' without 'account'"

# --- the patient is receiving when their provider deactivates them ---------------------
cli doc --json send --to pat@clinic.example --text "see you on Monday"
expect_rc 0 "the provider writes to the patient"
timeout 40 "$CLI" --server "$URL" --profile "$T/pat" --json recv --wait 30 \
    >"$T/recv.out" 2>"$T/recv.err" &
RPID=$!
# The message arriving shows the recv is connected, authenticated and live.
for _ in $(seq 100); do
    grep -q '"text": "see you on Monday"' "$T/recv.out" && break
    kill -0 "$RPID" 2>/dev/null || break
    sleep 0.1
done
grep -q '"text": "see you on Monday"' "$T/recv.out" ||
    fail "the patient's recv did not get the message within 10 s: $(cat "$T/recv.err")"

cli doc --json account deactivate --email pat@clinic.example
expect_rc 0 "the provider deactivates their patient"
[ "$(lines)" -eq 1 ] || fail "deactivate printed $(lines) lines"
[ "$(field account)" = "$PAT_ID" ] || fail "deactivate names another account"
[ "$(field state)" = "review" ] || fail "the state is not review"
DEACTIVATED_AT=$(number deactivated_at)
RESTRICTED_AT=$(number restricted_at)
PURGE_AT=$(number purge_at)
NOW_MS=$(($(date +%s) * 1000))
[ -n "$DEACTIVATED_AT" ] && [ $((NOW_MS - DEACTIVATED_AT)) -lt 60000 ] &&
    [ $((DEACTIVATED_AT - NOW_MS)) -lt 60000 ] || fail "deactivated_at is not now"
[ $((RESTRICTED_AT - DEACTIVATED_AT)) -eq $((30 * 86400 * 1000)) ] ||
    fail "review does not last 30 days"
[ $((PURGE_AT - RESTRICTED_AT)) -eq $((365 * 86400 * 1000)) ] ||
    fail "restriction does not last 365 days"

RRC=""
for _ in $(seq 100); do
    if ! kill -0 "$RPID" 2>/dev/null; then
        RRC=0
        wait "$RPID" || RRC=$?
        break
    fi
    sleep 0.1
done
[ -n "$RRC" ] || fail "the patient's recv still runs 10 s after the deactivation"
RPID=""
[ "$RRC" -eq 4 ] || fail "recv ended with $RRC, not 4 (session): $(cat "$T/recv.err")"
grep -q "account deactivated" "$T/recv.err" ||
    fail "recv does not say why the session ended: $(cat "$T/recv.err")"

# --- the deactivated patient cannot log in: the wrong-password answer ------------------
cli pat login --email pat@clinic.example --password-file "$T/pat.pw"
expect_rc 2 "the deactivated patient logs in"
expect_err "wrong email or password" "the deactivated patient logs in"
DEACTIVATED_ERR=$ERR
cli fresh login --email pat@clinic.example --password-file "$T/pat.pw"
expect_rc 2 "the deactivated patient logs in from a new profile"
expect_err "wrong email or password" "login from a new profile"
cli stranger login --email doc@clinic.example --password-file "$T/wrong.pw"
expect_rc 2 "a wrong password"
[ "$ERR" = "$DEACTIVATED_ERR" ] ||
    fail "a deactivated account answers '$DEACTIVATED_ERR', a wrong password '$ERR'"

cli doc account deactivate --email pat@clinic.example
expect_rc 2 "deactivating twice"
expect_err "conflict" "deactivating twice"
expect_err "already deactivated" "deactivating twice"

# --- the other provider's patient: the admin may --------------------------------------
# Their care-team channel (doc2, pat2, doc) is kept read-only for review afterwards.
cli doc2 --json channel create --patient pat2@clinic.example --name "Team Two"
expect_rc 0 "doc2 creates a channel for pat2"
CH=$(field channel)
cli doc2 channel add --channel "$CH" --member doc@clinic.example
expect_rc 0 "doc2 adds doc"
cli doc2 send --channel "$CH" --text "before"
expect_rc 0 "a message to the channel while pat2 is active"
cli adm account deactivate --email pat2@clinic.example
expect_rc 0 "the admin deactivates the other patient"
ISO='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
TEXT_RE="^deactivated pat2@clinic\\.example: review until $ISO, restricted until $ISO\$"
[[ "$OUT" =~ $TEXT_RE ]] || fail "text output: '$OUT'"
REVIEW_END=$(date -u -d "@$(($(date +%s) + 30 * 86400))" +%F)
grep -q "review until ${REVIEW_END}T" "$T/out" || fail "review does not end on $REVIEW_END: '$OUT'"
cli pat2 account deactivate --email doc@clinic.example
expect_rc 4 "a deactivated patient has no session left"
# The patient's channel is kept for review: nobody can write to it, its
# providers can still read it.
cli doc2 send --channel "$CH" --text "after"
expect_rc 2 "a message to the channel after pat2's deactivation"
expect_err "read-only" "a message to the channel after pat2's deactivation"
cli doc --json history --conversation "$CH"
expect_rc 0 "doc reads the channel in review"
grep -q '"text": "before"' "$T/out" || fail "doc cannot read the message sent before: $OUT"
grep -q '"text": "after"' "$T/out" && fail "a message was added after the deactivation: $OUT"

# --- the audit log: ids, never emails --------------------------------------------------
cli adm --json audit query --actor doc@clinic.example
expect_rc 0 "audit query"
grep '"action": "account.deactivate"' "$T/out" >"$T/deact.jsonl" || true
grep '"outcome": 0' "$T/deact.jsonl" >"$T/deact_ok.jsonl" || true
[ "$(wc -l <"$T/deact_ok.jsonl")" -eq 1 ] ||
    fail "the provider has $(wc -l <"$T/deact_ok.jsonl") successful account.deactivate records"
grep -q "\"actor\": \"$DOC_ID\".*\"object\": \"$PAT_ID\"" "$T/deact_ok.jsonl" ||
    fail "the record does not name the provider and the patient: $(cat "$T/deact_ok.jsonl")"
cli adm --json audit query
expect_rc 0 "the whole audit log"
grep -q "\"action\": \"account.deactivate\".*\"object\": \"$PAT2_ID\"" "$T/out" ||
    fail "no record of the admin's deactivation"
grep -qi "pat@clinic\|pat2@clinic" "$T/out" && fail "an email is in the audit log"
# For a person, the records name people, not ids; --json adds the names too.
grep -q "\"action\": \"account.deactivate\".*\"object\": \"$PAT_ID\".*\"actor_name\": \"Dr Ada\"" "$T/out" ||
    fail "the JSON record does not carry the provider's name"
cli adm audit query --actor doc@clinic.example
expect_rc 0 "audit query, plain"
grep -q "^#[0-9]* [-0-9T:.]*Z account.deactivate OK by Dr Ada patient Pat One object $PAT_ID from " "$T/out" ||
    fail "the plain record does not name the provider and the patient: $(grep deactivate "$T/out")"
grep -q "by $DOC_ID" "$T/out" && fail "the actor is shown by id while the name is known"
grep -qi "pat@clinic\|pat2@clinic" "$T/out" && fail "an email is in the plain audit log"
grep -qi "pat@clinic\|pat2@clinic" "$T/carechatd.log" && fail "an email is in the server log"
# The operator events are in the server log at info level, by id.
grep -q "account.deactivate done: account $DOC_ID, object $PAT_ID" "$T/carechatd.log" ||
    fail "the deactivation is not in the server log"
grep -q "session.login unauthenticated: account -" "$T/carechatd.log" ||
    fail "the refused login of the deactivated patient is not in the server log"

stop_server
echo PASS
