#!/bin/bash
# tests/cli_scenario_test.sh: the `carechat` CLI (libcarechat) against the real carechatd.
#
# A fresh data directory gets its first system administrator from
# `carechatd bootstrap`; then, through the CLI only, each person with a profile
# directory of their own: the sysadmin logs in and invites a provider (--json),
# the provider registers and logs in again (same device, then a second device),
# invites a patient, who registers; an under-13 registration fails with exit 2
# and a clear message; `carechat devices` lists the signed devices; wrong
# passwords, forbidden invitations, a dead server and --password are refused
# with their documented exit codes; after `carechat logout`, `carechat devices`
# fails with an authentication error (exit 4), and so does a copy of the
# profile whose session ended on the server. After a restart with TLS the
# stored session is resumed over wss:// (and refused without the CA).
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init cli

# lib.sh's invite_code, and the answer must be one line.
invite_code() {
    [ "$(wc -l <"$T/out")" -eq 1 ] || fail "invite --json: not one line"
    sed -n 's/^{"code": "\([!-~]*\)", "expires_at": [0-9]*}$/\1/p' "$T/out"
}

password_file root 'root-secret-passphrase'
password_file doc 'doctor-secret-passphrase'
password_file pat 'patient-secret-passphrase'
password_file kid 'kid-secret-passphrase'
password_file wrong 'not-the-password'

# --- bootstrap and start -----------------------------------------------------
bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"

# --- sysadmin ------------------------------------------------------------------
cli root login --email root@clinic.example --password-file "$T/wrong.pw"
expect_rc 2 "login with a wrong password"
expect_err "wrong email or password" "login with a wrong password"

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
grep -q "logged in as .*(sysadmin)" "$T/out" || fail "sysadmin login: no role in '$OUT'"
[ "$(stat -c %a "$T/root")" = 700 ] || fail "profile directory is not 0700"
[ "$(stat -c %a "$T/root/profile")" = 600 ] || fail "profile file is not 0600"
if grep -q "root-secret-passphrase" "$T/root/profile"; then fail "password stored in profile"; fi

cli root --json invite --email doc@clinic.example --role provider
expect_rc 0 "sysadmin invites a provider"
DOC_CODE=$(invite_code)
[ -n "$DOC_CODE" ] || fail "invite --json: no code in '$OUT'"

# --- provider ------------------------------------------------------------------
cli doc register --code "$DOC_CODE" --email doc@clinic.example --password-file "$T/doc.pw" \
    --birthdate 1980-05-06 --name "Dr Ada"
expect_rc 0 "provider registers"
grep -q "registered as Dr Ada (provider)" "$T/out" || fail "provider register: '$OUT'"

cli doc register --code "$DOC_CODE" --email doc@clinic.example --password-file "$T/doc.pw" \
    --birthdate 1980-05-06 --name "Dr Ada"
expect_rc 5 "second register on a profile that holds a device"

cli doc2 register --code "$DOC_CODE" --email doc@clinic.example --password-file "$T/doc.pw" \
    --birthdate 1980-05-06 --name "Dr Ada"
expect_rc 2 "reusing an invitation code"
expect_err "invitation code" "reusing an invitation code"

cli doc login --email doc@clinic.example --password-file "$T/doc.pw"
expect_rc 0 "provider logs in again on the same device"
cli doc2 --json login --email doc@clinic.example --password-file "$T/doc.pw"
expect_rc 0 "provider logs in from a second device"
grep -q '"role": "provider"' "$T/out" || fail "login --json: '$OUT'"
# The second device is listed only once the first approves its code.
DOC2_CODE=$(sed -n 's/.*"awaiting_approval": true, "code": "\([0-9-]*\)".*/\1/p' "$T/out")
[ -n "$DOC2_CODE" ] || fail "second device: no approval code in '$OUT'"
cli doc --json devices
[ "$(grep -c '"listed": true' "$T/out")" -eq 1 ] || fail "unapproved device listed: '$OUT'"
cli doc approve --code 00000-00000-00000-00000
expect_rc 1 "approving a code no device shows"
cli doc approve --code "$DOC2_CODE"
expect_rc 0 "provider approves the second device from the first"

cli doc --json devices
expect_rc 0 "provider devices"
[ "$(wc -l <"$T/out")" -eq 2 ] || fail "provider devices: expected 2 lines, got '$OUT'"
[ "$(grep -c '"listed": true, "key_valid": true, "list_version": 2}' "$T/out")" -eq 2 ] ||
    fail "provider devices: both devices listed and valid at version 2: '$OUT'"
[ "$(grep -c '"this_device": true' "$T/out")" -eq 1 ] || fail "provider devices: this device"

cli doc --json invite --email pat@clinic.example --role patient
expect_rc 0 "provider invites a patient"
PAT_CODE=$(invite_code)
[ -n "$PAT_CODE" ] || fail "no patient code"

cli doc invite --email other@clinic.example --role admin
expect_rc 2 "provider invites an admin"
expect_err "may not invite" "provider invites an admin"

# --- patient -------------------------------------------------------------------
# A name with a terminal escape sequence is printed with '?' for the control byte.
cli pat register --code "$PAT_CODE" --email pat@clinic.example --password-file "$T/pat.pw" \
    --birthdate 2000-01-31 --name $'Pat \e[2J Q'
expect_rc 0 "patient registers"
grep -qF "registered as Pat ?[2J Q (patient)" "$T/out" || fail "patient register: '$OUT'"

cli doc invite --email kid@clinic.example --role patient
expect_rc 0 "provider invites a child"
KID_CODE=$OUT
KID_BIRTH=$(date -u -d '5 years ago' +%F)
cli kid register --code "$KID_CODE" --email kid@clinic.example --password-file "$T/kid.pw" \
    --birthdate "$KID_BIRTH" --name "Kid"
expect_rc 2 "under-13 registration"
expect_err "at least 13 years old" "under-13 registration"
[ -z "$OUT" ] || fail "under-13 registration printed '$OUT'"

cli pat invite --email x@clinic.example --role patient
expect_rc 2 "patient invites"

cli pat devices
expect_rc 0 "patient devices"
grep -q "device list version 1, 1 device" "$T/out" || fail "patient devices: '$OUT'"
grep -q "(this device)" "$T/out" || fail "patient devices: this device: '$OUT'"
if grep -q "NOT IN SIGNED LIST\|KEY INVALID" "$T/out"; then fail "patient devices: '$OUT'"; fi

# --- logout --------------------------------------------------------------------
cp -a "$T/pat" "$T/pat-copy"
cli pat logout
expect_rc 0 "patient logout"
cli pat devices
expect_rc 4 "devices after logout"
expect_err "not logged in" "devices after logout"
cli pat-copy devices
expect_rc 4 "devices with a session that ended on the server"
expect_err "run carechat login" "devices with an ended session"
cli pat login --email pat@clinic.example --password-file "$T/pat.pw"
expect_rc 0 "patient logs in again after logout"

# --- local refusals ----------------------------------------------------------
RC=0
timeout 30 "$CLI" --server ws://127.0.0.1:1 --profile "$T/pat" devices >"$T/out" 2>"$T/err" || RC=$?
expect_rc 3 "a server that is not there"
RC=0
timeout 30 "$CLI" --profile "$T/x" login --email a@b.c --password hunter2 >"$T/out" 2>"$T/err" ||
    RC=$?
expect_rc 1 "--password on the command line"
expect_err "--password-file" "--password on the command line"
chmod 755 "$T/pat"
cli pat devices
expect_rc 5 "a profile open to others"
expect_err "chmod 700" "a profile open to others"

chmod 700 "$T/pat"

# --- wss:// after a restart -------------------------------------------------------
# The stored session survives the restart and is resumed over TLS with the
# server's certificate as the only trusted CA; without it the CLI refuses.
stop_server
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || fail "openssl req"
chmod 600 "$T/key.pem"
start_server --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
URL="wss://127.0.0.1:$PORT"
cli doc --ca-file "$T/cert.pem" devices
expect_rc 0 "devices over wss:// with the server's CA"
grep -q "device list version 2, 2 devices" "$T/out" || fail "devices over wss://: '$OUT'"
cli doc devices
expect_rc 3 "wss:// to a server whose certificate is not trusted"
expect_err "certificate trusted" "wss:// with an untrusted certificate"

stop_server
echo "PASS"
