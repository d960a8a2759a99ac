#!/bin/bash
# tests/cli_invites_test.sh: `carechat invite list|revoke` against the real
# carechatd (issue 13). A provider lists exactly its own pending invitations,
# named by the SHA-256 of their codes; an admin lists everyone's; the provider
# cannot revoke another's (not found) but revokes its own, whose code then no
# longer registers; a used invitation is no longer listed; a patient has none
# to list (forbidden).
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init cliinvites
trap lib_cleanup EXIT

for who in root doc pat new; do password_file "$who" "$who-secret-passphrase"; done
bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register doc root doc@clinic.example provider "Dr Ada"
register pat doc pat@clinic.example patient "Pat One"

sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
cli root --json invite --email admin2@clinic.example --role admin
ROOT_CODE=$(invite_code)
cli doc --json invite --email p2@clinic.example --role patient
P2_CODE=$(invite_code)
cli doc --json invite --email p3@clinic.example --role patient
P3_CODE=$(invite_code)

cli doc --json invite list
expect_rc 0 "the provider lists"
[ "$(lines)" -eq 2 ] || fail "the provider sees $(lines) invitations: $OUT"
grep -q "\"invite\": \"$(sha "$P2_CODE")\".*\"email\": \"p2@clinic.example\"" "$T/out" ||
    fail "p2's invitation, named by its code's SHA-256: $OUT"
grep -q "\"invite\": \"$(sha "$P3_CODE")\"" "$T/out" || fail "p3's invitation: $OUT"
grep -q "admin2@clinic.example" "$T/out" && fail "the provider sees root's invitation"
grep -q "pat@clinic.example" "$T/out" && fail "a used invitation is listed"
cli root --json invite list
expect_rc 0 "the sysadmin lists"
[ "$(lines)" -eq 3 ] || fail "the sysadmin sees $(lines) invitations: $OUT"
cli root invite list
expect_rc 0 "text output"
grep -q "^$(sha "$P2_CODE") patient p2@clinic.example expires 20[0-9-]*T" "$T/out" ||
    fail "text line: $OUT"
cli pat invite list
expect_rc 2 "a patient lists"
expect_err "forbidden" "a patient lists"

cli doc invite revoke --invite "$(sha "$ROOT_CODE")"
expect_rc 2 "the provider revokes root's invitation"
expect_err "not found" "another's invitation"
cli doc invite revoke --invite nothex
expect_rc 1 "a malformed id"
cli doc invite revoke --invite "$(sha "$P2_CODE")"
expect_rc 0 "the provider revokes its own"
cli new --json register --code "$P2_CODE" --email p2@clinic.example \
    --password-file "$T/new.pw" --birthdate 1980-05-06 --name "P Two"
expect_rc 2 "the revoked code registers"
cli doc --json invite list
[ "$(lines)" -eq 1 ] || fail "after the revocation the provider sees $(lines): $OUT"
cli root --json audit query
grep -q '"action": "account.invite_revoke"' "$T/out" || fail "no account.invite_revoke record"
echo PASS
