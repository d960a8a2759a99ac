#!/bin/bash
# tests/cli_devices_test.sh: a person manages the devices of their account with
# the `carechat` CLI (issue 13), against the real carechatd:
#   - an account holds at most 6 devices: a 7th fresh profile is refused;
#     `logout --forget-device` on one frees its slot (its profile keeps no
#     keys) and the 7th then logs in;
#   - `devices remove --id` removes another device (a lost phone) and
#     `devices rename --id --label` renames one; `devices --json` shows both;
#   - all along, a patient who pinned the provider's signed device list keeps
#     sending without an "identity changed" refusal (exit 8): every change
#     was published as a signed successor by a device of the account;
#   - `history` names the sender and marks urgent messages.
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clidev

password_file root 'root-secret-passphrase'
for p in d1 d2 d3 d4 d5 d6 d7; do password_file $p 'doctor-secret-passphrase'; done
password_file pat 'patient-secret-passphrase'
bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register d1 root doc@clinic.example provider "Dr Ada"
register pat d1 pat@clinic.example patient "Pat"
cli pat send --to doc@clinic.example --text "hello"
expect_rc 0 "the patient pins the provider's list"

# This profile's device id, from `devices --json`.
own_id() {
    cli "$1" --json devices
    expect_rc 0 "devices on $1"
    grep '"this_device": true' "$T/out" | grep -o '"device_id": "[0-9a-f]*"' | sed 's/.*: "//; s/"//'
}

for p in d2 d3 d4 d5 d6; do
    cli $p login --email doc@clinic.example --password-file "$T/$p.pw"
    expect_rc 0 "login on $p"
    CODE=$(sed -n 's/^  carechat approve --code \([0-9-]*\)$/\1/p' "$T/out")
    [ -n "$CODE" ] || fail "$p: no approval code in '$OUT'"
    cli d1 approve --code "$CODE"
    expect_rc 0 "d1 approves $p"
done
cli pat send --to doc@clinic.example --text "to six devices"
expect_rc 0 "the patient sends to six devices"

cli d7 login --email doc@clinic.example --password-file "$T/d7.pw"
expect_rc 2 "a 7th device"
expect_err "6" "a 7th device"

D6=$(own_id d6)
cli d6 logout --forget-device
expect_rc 0 "logout --forget-device"
grep -q '^identity_seed' "$T/d6/profile" && fail "the forgotten profile keeps its keys"
cli d6 devices
expect_rc 4 "a forgotten profile has no session"
cli d1 --json devices
grep -q "$D6" "$T/out" && fail "the forgotten device is still listed: $OUT"
cli pat send --to doc@clinic.example --text "after a device was forgotten"
expect_rc 0 "the patient sends after the provider forgot a device"

cli d7 login --email doc@clinic.example --password-file "$T/d7.pw"
expect_rc 0 "the 7th profile takes the freed slot"
CODE=$(sed -n 's/^  carechat approve --code \([0-9-]*\)$/\1/p' "$T/out")
cli d1 approve --code "$CODE"
expect_rc 0 "d1 approves d7"

D5=$(own_id d5)
D2=$(own_id d2)
cli d1 devices remove --id "$D5"
expect_rc 0 "remove a lost device"
cli d5 devices
expect_rc 4 "the removed device's session ended"
cli d1 devices remove --id "$(own_id d1)"
expect_rc 1 "devices remove of this device"
expect_err "forget-device" "devices remove of this device"
cli d1 devices rename --id "$D2" --label "Ward phone"
expect_rc 0 "rename"
cli d1 devices rename --id "$D2" --label "$(printf 'bad\tlabel')"
expect_rc 2 "a label with a control character"
cli d1 --json devices
grep -q "$D5" "$T/out" && fail "the removed device is still listed: $OUT"
grep "\"device_id\": \"$D2\"" "$T/out" | grep -q '"label": "Ward phone"' || fail "rename not shown: $OUT"
[ "$(grep -c '"device_id"' "$T/out")" -eq 5 ] || fail "expected 5 devices: $OUT"

cli pat send --to doc@clinic.example --text "after a removal"
expect_rc 0 "the patient sends after a removal (no identity change)"
cli d7 --json recv --wait 1
expect_rc 0 "the new device receives"
grep -q '"text": "after a removal"' "$T/out" || fail "d7 did not receive: $OUT"
# A person reads names, not ids, and sees what is urgent (ids stay in --json).
cli pat --json send --to doc@clinic.example --text "call me" --urgent
expect_rc 0 "an urgent message"
CONV=$(field conversation)
cli d1 history --conversation "$CONV"
expect_rc 0 "history"
grep -q '\] Pat: hello$' "$T/out" || fail "history does not name the sender: $OUT"
grep -q '\] URGENT Pat: call me$' "$T/out" || fail "history does not mark the urgent message: $OUT"
stop_server
echo PASS
