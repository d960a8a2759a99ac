#!/bin/bash
# tests/cli_password_test.sh: `carechat password change` against the real
# carechatd (issue 13). A provider signed in on two profiles (two devices)
# changes the password on the first: a wrong current password and a short new
# one are refused (exit 2); then the second profile's session is over (exit 4),
# the first goes on, the old password no longer signs in and the new one does;
# neither password appears in the server log or the audit log.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clipassword
trap lib_cleanup EXIT

password_file root "root-secret-passphrase"
password_file doc "doc-first-passphrase"
password_file new "doc-second-passphrase-9"
password_file short "short"
password_file wrong "not-the-right-passphrase"

bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register doc root doc@clinic.example provider "Dr Ada"
cli phone login --email doc@clinic.example --password-file "$T/doc.pw"
expect_rc 0 "a second device"

cli doc password change --password-file "$T/wrong.pw" --new-password-file "$T/new.pw"
expect_rc 2 "a wrong current password"
expect_err "current password is wrong" "a wrong current password"
cli doc password change --password-file "$T/doc.pw" --new-password-file "$T/short.pw"
expect_rc 2 "a short new password"
expect_err "bad request" "a short new password"
expect_err "passwords are 10..1024 bytes" "the server's rule, as configured"
cli doc password change --password-file "$T/doc.pw" --new-password-file "$T/new.pw"
expect_rc 0 "the change"
[ "$OUT" = "password changed; every other session of the account has ended" ] ||
    fail "text output: '$OUT'"

cli phone devices
expect_rc 4 "the other device's session has ended"
cli doc devices
expect_rc 0 "this device's session goes on"
cli tablet login --email doc@clinic.example --password-file "$T/doc.pw"
expect_rc 2 "the old password"
cli tablet login --email doc@clinic.example --password-file "$T/new.pw"
expect_rc 0 "the new password"

cli root --json audit query
expect_rc 0 "audit query"
grep -q '"action": "account.password_change"' "$T/out" || fail "no account.password_change record"
for pw in doc-first-passphrase doc-second-passphrase-9 not-the-right-passphrase; do
    grep -q "$pw" "$T/carechatd.log" && fail "a password is in the server log"
    grep -q "$pw" "$T/out" && fail "a password is in the audit log"
done
echo PASS
