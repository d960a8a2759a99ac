#!/bin/bash
# tests/channels_test.sh: care-team channels through the `carechat` CLI against
# the real carechatd. A provider creates a channel about a patient (`channel
# create --json` prints {"channel": ID}), adds a second provider and a family
# member (pending), sends to the channel (`send --channel`); the patient reads
# it in `history`, the family member gets NOT_FOUND until the patient approves
# by email (`channel approve`), then sees only later messages. `channel
# members` shows roles and states; the patient cannot remove staff (exit 2);
# the removed provider's `history` is refused; a recall shows as "recalled" in
# history; `urgent status` lists who has acknowledged. The channel's name never
# appears in the server's log. Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init channels

for who in root doc nurse pat fam; do password_file "$who" "$who-secret-passphrase"; done

bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

# The channel's name is personal data: it must never reach the log.
NONCE=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
CHANNEL_NAME="Cardiology canary $NONCE"
# --- accounts ------------------------------------------------------------------------
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register doc root doc@clinic.example provider "Dr Ada"
register nurse root nurse@clinic.example provider "Nurse Bo"
register pat doc pat@clinic.example patient "Pat Smith"
register fam doc fam@clinic.example patient "Fam Smith"

# --- a channel ------------------------------------------------------------------------
cli pat channel create --patient pat@clinic.example --name "$CHANNEL_NAME"
expect_rc 2 "a patient cannot create a channel"
cli doc --json channel create --patient pat@clinic.example --name "$CHANNEL_NAME"
expect_rc 0 "channel create"
CH=$(field channel)
[[ "$CH" =~ ^[0-9a-f]{32}$ ]] || fail "channel create printed no id"
cli doc channel add --channel "$CH" --member nurse@clinic.example
expect_rc 0 "add the nurse"
cli doc channel add --channel "$CH" --member fam@clinic.example
expect_rc 0 "add the family member"
cli doc --json channel members --channel "$CH"
expect_rc 0 "members"
grep -q '"role": "patient", "state": "pending", "display_name": "Fam Smith"' "$T/out" ||
    fail "the family member is not pending"
[ "$(grep -c '"state": "active"' "$T/out")" -eq 3 ] || fail "three active members expected"
# For a person: the channel's name and the members' names, not their ids.
cli doc channel members --channel "$CH"
expect_rc 0 "members, plain"
grep -q "^Fam Smith  patient  pending$" "$T/out" || fail "members, plain: $(cat "$T/out")"
grep -q "^Nurse Bo  provider  active$" "$T/out" || fail "members, plain: $(cat "$T/out")"
grep -q "[0-9a-f]\{32\}" "$T/out" && fail "members, plain: an id is shown"
cli doc channel list
expect_rc 0 "channel list"
grep -qF "$CH  care_team  $CHANNEL_NAME  last seq 0  with " "$T/out" ||
    fail "channel list does not name the channel: $(cat "$T/out")"

cli doc --json send --channel "$CH" --text "first to the team"
expect_rc 0 "send to the channel"
cli pat --json history --conversation "$CH"
expect_rc 0 "patient history"
grep -q '"text": "first to the team"' "$T/out" || fail "the patient cannot read the message"
cli fam history --conversation "$CH"
expect_rc 2 "a pending member has no history"
cli fam --json recv
expect_rc 0 "pending recv"
[ "$(lines)" -eq 0 ] || fail "a pending member received something"

# --- approval by the patient, history from joining ----------------------------------
cli nurse channel approve --channel "$CH" --member fam@clinic.example
expect_rc 2 "staff cannot approve"
cli pat channel approve --channel "$CH" --member fam@clinic.example
expect_rc 0 "the patient approves"
cli doc --json send --channel "$CH" --text "second to the team"
expect_rc 0 "send after the approval"
cli fam --json history --conversation "$CH"
expect_rc 0 "family history"
[ "$(lines)" -eq 1 ] && grep -q '"text": "second to the team"' "$T/out" ||
    fail "the family member should see only the message after joining"

# --- removal --------------------------------------------------------------------------
cli pat channel remove --channel "$CH" --member nurse@clinic.example
expect_rc 2 "a patient cannot remove staff"
cli doc channel remove --channel "$CH" --member nurse@clinic.example
expect_rc 0 "remove the nurse"
cli nurse history --conversation "$CH"
expect_rc 2 "a removed member has no history"
expect_err "not found" "removed member history"

# --- recall and urgent --------------------------------------------------------------
cli doc --json send --channel "$CH" --text "recall this"
expect_rc 0 "send to recall"
MID=$(field message_id)
cli doc --json recall --channel "$CH" --message "$MID"
expect_rc 0 "recall"
cli pat --json history --conversation "$CH"
grep -q "\"message_id\": \"$MID\".*\"state\": \"recalled\"" "$T/out" ||
    fail "history does not show the recalled message as recalled"
grep -q "recall this" "$T/out" && fail "the recalled text is still readable"
cli doc --json send --channel "$CH" --text "urgent: call me" --urgent
expect_rc 0 "urgent send"
UID_=$(field message_id)
cli pat urgent ack --channel "$CH" --message "$UID_"
expect_rc 0 "urgent ack"
cli doc --json urgent status --channel "$CH" --message "$UID_"
expect_rc 0 "urgent status"
[ "$(grep -o '"acknowledged": true' "$T/out" | wc -l)" -eq 1 ] &&
    [ "$(grep -o '"acknowledged": false' "$T/out" | wc -l)" -eq 1 ] ||
    fail "urgent status should show one acknowledged, one not"

grep -qF "$CHANNEL_NAME" "$T/carechatd.log" && fail "the channel name is in the log"
kill "$PID"
wait "$PID" || true
PID=""
echo PASS
