#!/bin/bash
# tests/cli_notify_test.sh: `carechat notify settings` and `carechat push
# register/unregister` against the real carechatd (issue 11): the settings
# start on, change one at a time and survive a restart; a Web Push
# subscription registers and unregisters once (a second time is refused with
# exit 2); a token the server's notifier would refuse is refused (exit 2);
# malformed arguments are usage errors (exit 1); `carechatd invite` (offline,
# without mail) prints a code that registers and is audited. Everything on
# 127.0.0.1.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init notify

password_file root 'root-secret-passphrase'
bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "login"

cli root notify settings
expect_rc 0 "notify settings"
[ "$OUT" = "email notices on, push notices on" ] || fail "defaults: '$OUT'"
cli root --json notify settings --email-notices off
expect_rc 0 "email off"
[ "$OUT" = '{"email": false, "push": true, "quiet_from": 0, "quiet_until": 0, "utc_offset": 0}' ] ||
    fail "email off: '$OUT'"
cli root --json notify settings --push-notices off
[ "$OUT" = '{"email": false, "push": false, "quiet_from": 0, "quiet_until": 0, "utc_offset": 0}' ] ||
    fail "push off: '$OUT'"
cli root notify settings --email-notices maybe
expect_rc 1 "a value that is not on or off"
cli root notify settings --quiet 22:00-07:00 --utc-offset -05:00
expect_rc 0 "quiet hours"
[ "$OUT" = "email notices off, push notices off, quiet 22:00-07:00 (UTC-05:00)" ] ||
    fail "quiet hours: '$OUT'"
cli root notify settings --quiet 25:00-07:00
expect_rc 1 "an hour out of range"
cli root notify settings --utc-offset +15:00
expect_rc 1 "an offset out of range"

P256DH="B$(printf 'A%.0s' $(seq 86))"                    # base64url of 0x04 and 64 zeros
AUTH="AAAAAAAAAAAAAAAAAAAAAA"                              # base64url of 16 bytes
cli root --json push register --webpush https://push.example.org/sub/1 --p256dh "$P256DH" \
    --auth "$AUTH"
expect_rc 0 "push register"
REG=$(field registration_id)
[[ "$REG" =~ ^[0-9a-f]{32}$ ]] || fail "no registration id in '$OUT'"
cli root push unregister --id "$REG"
expect_rc 0 "push unregister"
cli root push unregister --id "$REG"
expect_rc 2 "unregister twice"
expect_err "no such registration" "unregister twice"
cli root push register --fcm 'not a token!'
expect_rc 2 "an FCM token the notifier refuses"
cli root push register --apns 00ff
expect_rc 1 "an APNs token too short"
cli root push register --fcm abc --apns "$(printf '%064d' 0)"
expect_rc 1 "two kinds at once"

stop_server
start_server
URL="ws://127.0.0.1:$PORT"
cli root --json notify settings
[ "$OUT" = '{"email": false, "push": false, "quiet_from": 1320, "quiet_until": 420, "utc_offset": -300}' ] ||
    fail "after a restart: '$OUT'"
stop_server

# A first deployment without mail: the sysadmin's offline `carechatd invite`
# prints a code that registers, and the invitation is audited as the
# sysadmin's, from "carechatd invite".
"$SERVER" invite --data "$T/data" --email offline@clinic.example --role patient \
    >"$T/inv.out" 2>"$T/inv.err" || { cat "$T/inv.err" >&2; fail "carechatd invite"; }
CODE=$(cat "$T/inv.out")
[[ "$CODE" =~ ^[0-9a-f]{40}$ ]] || fail "carechatd invite printed '$CODE'"
"$SERVER" invite --data "$T/data" --email offline@clinic.example --role nurse \
    >/dev/null 2>&1 && fail "an unknown role"
password_file off 'offline-secret-passphrase'
start_server
URL="ws://127.0.0.1:$PORT"
cli off register --code "$CODE" --email offline@clinic.example --password-file "$T/off.pw" \
    --birthdate 1990-01-01 --name Off
expect_rc 0 "register with the offline invitation"
stop_server
if "$SERVER" invite --data "$T/data" --email offline@clinic.example --role patient \
    >/dev/null 2>"$T/inv.err"; then fail "an invitation for an existing account"; fi
grep -q "an account with this email exists" "$T/inv.err" || fail "refusal: $(cat "$T/inv.err")"
start_server
URL="ws://127.0.0.1:$PORT"
cli root --json audit query
grep '"account.invite"' "$T/out" | grep -q '"carechatd invite"' ||
    fail "no account.invite record from carechatd invite"
stop_server
echo "cli_notify_test: ok"
