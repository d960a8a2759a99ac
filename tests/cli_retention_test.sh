#!/bin/bash
# tests/cli_retention_test.sh: `carechat account list|state|reactivate|hold|
# release|unlock` against the real carechatd (started with --audit-coalesce 0,
# so that every read has its own audit record).
#
# - list: an admin lists 9 accounts; `--role patient --limit 2` prints the 5
#   patients exactly once each (so the CLI followed 3 pages: the audit log has
#   exactly 3 successful account.list records of that run), each with role,
#   email and state; `--limit 3` without a role prints all 9 once; a provider
#   and a patient are refused (exit 2, forbidden); a bad --role or --limit is
#   a usage error (exit 1).
# - state: after a provider deactivates a patient, the admin's `account state`
#   says review with deactivated_at now, restricted_at 30 days and purge_at
#   365 days later, no hold (JSON), the same in words with ISO dates (text),
#   and `account list` shows that patient in review and the others active.
# - reactivate: a provider is refused (forbidden); the admin brings the
#   patient back to active (deactivated_at 0), a second time is a conflict;
#   the patient, refused while deactivated, logs in again and receives a new
#   message.
# - hold: an admin may not set or release a hold (forbidden); the sysadmin
#   sets one with a reason (legal_hold true, legal_hold_since now, state and
#   list show it), a second hold is a conflict; releasing it after 2 s moves
#   restricted_at and purge_at on by at least the held time; a second release
#   is a conflict; a missing, empty or too long reason is a usage error that
#   does not repeat the text. The reason never appears in the server's log,
#   the audit log or any CLI output.
# - unlock: after 8 wrong passwords (the last four spaced so the backoff grows
#   to 8 s) the patient's right password is refused (too many attempts); a
#   provider may not unlock (forbidden); once the admin unlocks, the same
#   login succeeds well within the 8 s. The audit log names the unlock.
# - restricted: restarted with the clock 31 days on, the deactivated patient is
#   restricted; the admin may not reactivate (forbidden), the sysadmin may.
# - no email of any account appears in the server's log; --help documents
#   every command.
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init cliret
trap lib_cleanup EXIT

for who in root adm doc doc2 pat pat2 pat3 pat4 pat5; do
    password_file "$who" "$who-secret-passphrase"
done
password_file wrong "not-the-right-passphrase"
DAY_MS=$((86400 * 1000))
ISO='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'
CANARY="CANARY-$$-$RANDOM-subpoena"
REASON="Court order 2026-117 ($CANARY), keep everything"

bootstrap_root
start_server --audit-coalesce 0
URL="ws://127.0.0.1:$PORT"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# JSON line of account $1 in $T/out (account list --json).
account_line() {
    grep "\"account\": \"$1\"" "$T/out" || true
}

# --- nine accounts -----------------------------------------------------------------------
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register adm root adm@clinic.example admin "Admin Al"
ADM_ID=$ID
register doc root doc@clinic.example provider "Dr Ada"
DOC_ID=$ID
register doc2 root doc2@clinic.example provider "Dr Bea"
DOC2_ID=$ID
register pat doc pat@clinic.example patient "Pat One"
PAT_ID=$ID
register pat2 doc pat2@clinic.example patient "Pat Two"
PAT2_ID=$ID
register pat3 doc2 pat3@clinic.example patient "Pat Three"
PAT3_ID=$ID
register pat4 doc2 pat4@clinic.example patient "Pat Four"
PAT4_ID=$ID
register pat5 doc2 pat5@clinic.example patient "Pat Five"
PAT5_ID=$ID
PATIENTS="$PAT_ID $PAT2_ID $PAT3_ID $PAT4_ID $PAT5_ID"
EVERYONE="$ADM_ID $DOC_ID $DOC2_ID $PATIENTS"
cli adm --json account list --role sysadmin
expect_rc 0 "the admin lists the sysadmins"
ROOT_ID=$(field account)
[ "$(lines)" -eq 1 ] && [[ "$ROOT_ID" =~ ^[0-9a-f]{32}$ ]] || fail "the sysadmins are not root"
EVERYONE="$ROOT_ID $EVERYONE"

# --- account list ------------------------------------------------------------------------
cli doc account list
expect_rc 2 "a provider lists accounts"
expect_err "forbidden" "a provider lists accounts"
cli pat account list
expect_rc 2 "a patient lists accounts"
expect_err "forbidden" "a patient lists accounts"
cli adm account list --limit 0
expect_rc 1 "--limit 0"
cli adm account list --limit 101
expect_rc 1 "--limit 101"
cli adm account list --role nurse
expect_rc 1 "--role nurse"
cli adm account list --email pat@clinic.example
expect_rc 1 "account list --email"

LIST_SINCE=$(now_ms)
cli adm --json account list --role patient --limit 2
expect_rc 0 "the admin lists the patients two at a time"
LIST_UNTIL=$(($(now_ms) + 1))
[ "$(lines)" -eq 5 ] || fail "5 patients, $(lines) lines"
for id in $PATIENTS; do
    [ "$(grep -c "\"account\": \"$id\"" "$T/out")" -eq 1 ] || fail "patient $id is not listed once"
done
[ "$(grep -c '"role": "patient"' "$T/out")" -eq 5 ] || fail "a listed account is not a patient"
[ "$(grep -c '"state": "active", "deactivated_at": 0, "restricted_at": 0, "purge_at": 0, "legal_hold": false, "legal_hold_since": 0' "$T/out")" -eq 5 ] ||
    fail "the patients are not all active without dates or holds"
account_line "$PAT3_ID" | grep -q '"display_name": "Pat Three", "email": "pat3@clinic.example", "active": true, "created_at": [1-9]' ||
    fail "pat3's name, email, active flag or creation time: $(account_line "$PAT3_ID")"
cli adm --json audit query --actor adm@clinic.example --since "$LIST_SINCE" --until "$LIST_UNTIL"
expect_rc 0 "the admin's audit records of the listing"
PAGES=$(grep '"action": "account.list"' "$T/out" | grep -c '"outcome": 0' || true)
[ "$PAGES" -eq 3 ] || fail "5 patients 2 at a time took $PAGES requests, not 3"

cli adm account list --limit 3
expect_rc 0 "the admin lists everyone three at a time (text)"
[ "$(lines)" -eq 10 ] || fail "9 accounts and a count, $(lines) lines"
[ "$(tail -1 "$T/out")" = "9 accounts" ] || fail "the last line is '$(tail -1 "$T/out")'"
for id in $EVERYONE; do
    [ "$(grep -c "^$id  " "$T/out")" -eq 1 ] || fail "account $id is not listed once"
done
grep -qx "$ROOT_ID  sysadmin  [^ ].*  root@clinic\\.example  active" "$T/out" ||
    fail "the sysadmin's line"
grep -qx "$DOC2_ID  provider  Dr Bea  doc2@clinic\\.example  active" "$T/out" ||
    fail "doc2's line"
cli adm --json account list --role admin
expect_rc 0 "the admins"
[ "$(lines)" -eq 1 ] && [ "$(field account)" = "$ADM_ID" ] || fail "the admins are not just adm"

# --- deactivation: the state is review, with its dates ------------------------------------
cli doc --json account deactivate --email pat@clinic.example
expect_rc 0 "the provider deactivates their patient"
[ "$(number legal_hold_since)" = "0" ] || fail "deactivate: legal_hold_since"
grep -q '"legal_hold": false' "$T/out" || fail "deactivate: legal_hold"
cli doc account state --email pat@clinic.example
expect_rc 2 "a provider reads the retention state"
expect_err "forbidden" "a provider reads the retention state"
cli adm --json account state --email pat@clinic.example
expect_rc 0 "the admin reads the state"
[ "$(lines)" -eq 1 ] || fail "state printed $(lines) lines"
[ "$(field account)" = "$PAT_ID" ] || fail "state names another account"
[ "$(field state)" = "review" ] || fail "the state is not review"
DEACTIVATED_AT=$(number deactivated_at)
RESTRICTED_AT=$(number restricted_at)
PURGE_AT=$(number purge_at)
NOW=$(now_ms)
[ -n "$DEACTIVATED_AT" ] && [ $((NOW - DEACTIVATED_AT)) -lt 60000 ] &&
    [ $((DEACTIVATED_AT - NOW)) -lt 60000 ] || fail "deactivated_at is not now"
[ $((RESTRICTED_AT - DEACTIVATED_AT)) -eq $((30 * DAY_MS)) ] || fail "review is not 30 days"
[ $((PURGE_AT - RESTRICTED_AT)) -eq $((365 * DAY_MS)) ] || fail "restriction is not 365 days"
grep -q '"legal_hold": false, "legal_hold_since": 0' "$T/out" || fail "a hold out of nowhere"
cli adm account state --email pat@clinic.example
expect_rc 0 "the state in words"
TEXT_RE="^pat@clinic\\.example: review \\(deactivated $ISO\\), review until $ISO, restricted until $ISO\$"
[[ "$OUT" =~ $TEXT_RE ]] || fail "text output: '$OUT'"
REVIEW_END=$(date -u -d "@$((RESTRICTED_AT / 1000))" +%FT%TZ)
PURGE_DAY=$(date -u -d "@$((PURGE_AT / 1000))" +%FT%TZ)
grep -qF "review until $REVIEW_END, restricted until $PURGE_DAY" "$T/out" ||
    fail "the text does not show $REVIEW_END and $PURGE_DAY: '$OUT'"
cli adm --json account state --email pat2@clinic.example
expect_rc 0 "the state of an active patient"
grep -q '"state": "active", "deactivated_at": 0, "restricted_at": 0, "purge_at": 0' "$T/out" ||
    fail "an active account: '$OUT'"
cli adm --json account list --role patient
expect_rc 0 "the list after the deactivation"
account_line "$PAT_ID" | grep -q "\"state\": \"review\", \"deactivated_at\": $DEACTIVATED_AT, .*\"active\": false" ||
    fail "the list does not show pat in review: $(account_line "$PAT_ID")"
[ "$(grep -c '"state": "active"' "$T/out")" -eq 4 ] || fail "the other four are not active"

# --- reactivation --------------------------------------------------------------------------
cli pat login --email pat@clinic.example --password-file "$T/pat.pw"
expect_rc 2 "the deactivated patient logs in"
cli doc account reactivate --email pat@clinic.example
expect_rc 2 "a provider reactivates"
expect_err "forbidden" "a provider reactivates"
cli adm --json account reactivate --email pat@clinic.example
expect_rc 0 "the admin reactivates the patient in review"
[ "$(field account)" = "$PAT_ID" ] && [ "$(field state)" = "active" ] ||
    fail "reactivate does not answer active for pat"
[ "$(number deactivated_at)" = "0" ] || fail "reactivated with a deactivation date"
cli adm account reactivate --email pat@clinic.example
expect_rc 2 "reactivating an active account"
expect_err "conflict" "reactivating an active account"
cli adm account state --email pat@clinic.example
expect_rc 0 "the state after reactivation"
[ "$OUT" = "pat@clinic.example: active" ] || fail "state after reactivation: '$OUT'"
cli pat login --email pat@clinic.example --password-file "$T/pat.pw"
expect_rc 0 "the reactivated patient logs in"
cli doc send --to pat@clinic.example --text "welcome back"
expect_rc 0 "the provider writes to the reactivated patient"
cli pat --json recv --wait 1
expect_rc 0 "the reactivated patient receives"
grep -q '"text": "welcome back"' "$T/out" || fail "the reactivated patient did not get the message"

# --- legal hold ----------------------------------------------------------------------------
cli adm account deactivate --email pat2@clinic.example
expect_rc 0 "the admin deactivates pat2"
cli adm --json account state --email pat2@clinic.example
HELD_RESTRICTED=$(number restricted_at)
HELD_PURGE=$(number purge_at)
cli root account hold --email pat2@clinic.example
expect_rc 1 "a hold without --reason"
cli root account hold --email pat2@clinic.example --reason ""
expect_rc 1 "a hold with an empty reason"
LONG="$CANARY$(printf 'x%.0s' $(seq 257))"
cli root account hold --email pat2@clinic.example --reason "$LONG"
expect_rc 1 "a hold with a reason of 257+ bytes"
grep -qF "$CANARY" "$T/err" && fail "the usage error repeats the reason"
cli adm account hold --email pat2@clinic.example --reason "$REASON"
expect_rc 2 "an admin sets a hold"
expect_err "forbidden" "an admin sets a hold"
grep -qF "$CANARY" "$T/err" && fail "the refusal repeats the reason"
HOLD_AT=$(now_ms)
cli root --json account hold --email pat2@clinic.example --reason "$REASON"
expect_rc 0 "the sysadmin sets a hold"
[ "$(field account)" = "$PAT2_ID" ] && [ "$(field state)" = "review" ] ||
    fail "hold: account or state"
grep -q '"legal_hold": true' "$T/out" || fail "hold: legal_hold is not true"
SINCE=$(number legal_hold_since)
[ $((SINCE - HOLD_AT)) -gt -60000 ] && [ $((SINCE - HOLD_AT)) -lt 60000 ] ||
    fail "legal_hold_since $SINCE is not now ($HOLD_AT)"
grep -qF "$CANARY" "$T/out" && fail "the answer repeats the reason"
cli root account hold --email pat2@clinic.example --reason "$REASON"
expect_rc 2 "a second hold"
expect_err "conflict" "a second hold"
cli adm --json account state --email pat2@clinic.example
expect_rc 0 "the admin reads the held state"
grep -q "\"state\": \"review\", .*\"legal_hold\": true, \"legal_hold_since\": $SINCE" "$T/out" ||
    fail "the state does not show the hold: '$OUT'"
cli adm account state --email pat2@clinic.example
HOLD_RE="^pat2@clinic\\.example: review \\(deactivated $ISO\\), review until $ISO, restricted until $ISO, legal hold since $ISO\$"
[[ "$OUT" =~ $HOLD_RE ]] || fail "the held state in words: '$OUT'"
cli adm --json account list --role patient --limit 1
expect_rc 0 "the list shows the hold"
account_line "$PAT2_ID" | grep -q '"legal_hold": true' || fail "the list does not show pat2's hold"
[ "$(grep -c '"legal_hold": true' "$T/out")" -eq 1 ] || fail "more than one account is held"
cli adm account release --email pat2@clinic.example
expect_rc 2 "an admin releases a hold"
expect_err "forbidden" "an admin releases a hold"
sleep 2
cli root --json account release --email pat2@clinic.example
expect_rc 0 "the sysadmin releases the hold"
grep -q '"state": "review", .*"legal_hold": false, "legal_hold_since": 0' "$T/out" ||
    fail "release: '$OUT'"
[ $(($(number restricted_at) - HELD_RESTRICTED)) -ge 2000 ] &&
    [ $(($(number purge_at) - HELD_PURGE)) -ge 2000 ] ||
    fail "the dates did not move on by the 2 s held: $HELD_RESTRICTED $HELD_PURGE -> '$OUT'"
cli root account release --email pat2@clinic.example
expect_rc 2 "a second release"
expect_err "conflict" "a second release"
[ -z "$OUT" ] || fail "a refused release printed '$OUT'"

# --- unlock ----------------------------------------------------------------------------------
# The first five wrong passwords are free (--login-burst 5); then each one
# doubles the wait: 1 s, 2 s, 4 s, and after the eighth 8 s.
guess() {
    cli pat3 login --email pat3@clinic.example --password-file "$T/wrong.pw"
    expect_rc 2 "wrong password $1"
    expect_err "wrong email or password" "wrong password $1 was counted"
}
for i in 1 2 3 4 5; do guess "$i"; done
sleep 1.3
guess 6
sleep 2.3
guess 7
sleep 4.3
guess 8
LOCKED_AT=$(now_ms)
cli pat3 login --email pat3@clinic.example --password-file "$T/pat3.pw"
expect_rc 2 "the right password while locked"
expect_err "too many attempts" "the right password while locked"
cli doc account unlock --email pat3@clinic.example
expect_rc 2 "a provider unlocks"
expect_err "forbidden" "a provider unlocks"
cli adm --json account unlock --email pat3@clinic.example
expect_rc 0 "the admin unlocks pat3"
[ "$OUT" = "{\"account\": \"$PAT3_ID\", \"unlocked\": true}" ] || fail "unlock --json: '$OUT'"
cli pat3 login --email pat3@clinic.example --password-file "$T/pat3.pw"
expect_rc 0 "pat3 logs in after the unlock"
[ $(($(now_ms) - LOCKED_AT)) -lt 7000 ] ||
    fail "too slow to show anything: the 8 s wait may have passed by itself"
cli adm account unlock --email pat3@clinic.example
expect_rc 0 "unlock in words"
[ "$OUT" = "unlocked sign-in for pat3@clinic.example: its failed sign-ins are forgotten" ] ||
    fail "unlock text: '$OUT'"

# --- the audit log: the changes by id, never the reason --------------------------------------
cli root --json audit query
expect_rc 0 "the whole audit log"
grep -q "\"action\": \"account.legal_hold\", \"outcome\": 0, \"actor\": \"$ROOT_ID\".*\"object\": \"$PAT2_ID\"" "$T/out" ||
    fail "no record of the hold"
grep -q "\"action\": \"account.reactivate\", \"outcome\": 0, \"actor\": \"$ADM_ID\".*\"object\": \"$PAT_ID\"" "$T/out" ||
    fail "no record of the reactivation"
grep -q "\"action\": \"account.unlock\", \"outcome\": 0, \"actor\": \"$ADM_ID\".*\"object\": \"$PAT3_ID\"" "$T/out" ||
    fail "no record of the unlock"
grep -qF "$CANARY" "$T/out" && fail "the hold's reason is in the audit log"
grep -qi "clinic\\.example" "$T/out" && fail "an email is in the audit log"

# --- restricted: 31 days on, only the sysadmin reactivates ------------------------------------
stop_server
cp "$T/carechatd.log" "$T/carechatd-1.log"
CARECHAT_TEST_CLOCK=1 start_server --audit-coalesce 0 --clock-offset $((31 * DAY_MS))
URL="ws://127.0.0.1:$PORT"
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login, 31 days on"
cli adm login --email adm@clinic.example --password-file "$T/adm.pw"
expect_rc 0 "admin login, 31 days on"
cli adm --json account state --email pat2@clinic.example
expect_rc 0 "pat2's state 31 days on"
[ "$(field state)" = "restricted" ] || fail "pat2 is not restricted 31 days on: '$OUT'"
cli adm account state --email pat2@clinic.example
RESTRICTED_RE="^pat2@clinic\\.example: restricted \\(deactivated $ISO\\), restricted until $ISO\$"
[[ "$OUT" =~ $RESTRICTED_RE ]] || fail "restricted in words: '$OUT'"
cli adm account reactivate --email pat2@clinic.example
expect_rc 2 "an admin reactivates a restricted account"
expect_err "forbidden" "an admin reactivates a restricted account"
cli root --json account reactivate --email pat2@clinic.example
expect_rc 0 "the sysadmin reactivates a restricted account"
[ "$(field state)" = "active" ] || fail "not active after the sysadmin's reactivation"
stop_server

# --- no email and no reason in the server's log; --help -----------------------------------
for log in "$T/carechatd-1.log" "$T/carechatd.log"; do
    for who in root adm doc doc2 pat pat2 pat3 pat4 pat5; do
        grep -qi "$who@clinic" "$log" && fail "$who's email is in the server log $log"
    done
    grep -qF "$CANARY" "$log" && fail "the hold's reason is in the server log $log"
done
timeout 10 "$CLI" --help >"$T/help"
for cmd in "account list \[--role" "account state --email" "account reactivate --email" \
    "account hold --email EMAIL --reason TEXT" "account release --email" \
    "account unlock --email"; do
    grep -q "^  $cmd" "$T/help" || fail "--help does not document '$cmd'"
done
echo PASS
