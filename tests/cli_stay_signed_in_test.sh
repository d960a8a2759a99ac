#!/bin/bash
# tests/cli_stay_signed_in_test.sh: sessions that stay signed in (issue 13,
# PROTOCOL.md section 3), against carechatd with a 2 s idle expiry and a 14 s
# absolute one:
#   - a plain login's session ends at the idle expiry: a command after 3 s of
#     quiet says "run carechat login" (exit 4), and a waiting recv is ended;
#   - `login --stay-signed-in`: a waiting recv outlives the idle expiry, and a
#     command after it resumes with the device key (no password);
#   - the token alone does not resume it: a copy of the profile without the
#     stay-signed-in line (no refresh signature) is refused, and so is one
#     whose device key is another (the signature does not verify);
#   - at the absolute expiry it ends too.
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clistay

password_file root 'root-secret-passphrase'
password_file doc 'doctor-secret-passphrase'
bootstrap_root
start_server --session-idle 2 --session-max 14
URL="ws://127.0.0.1:$PORT"

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register doc root doc@clinic.example provider "Dr Ada"

# doc: a plain session; stay: the same account on a device that stays signed in.
cli doc login --email doc@clinic.example --password-file "$T/doc.pw"
expect_rc 0 "plain login"
cli stay login --email doc@clinic.example --password-file "$T/doc.pw" --stay-signed-in
expect_rc 0 "login --stay-signed-in"
STAY_AT=$(date +%s)
grep -q '^session_stay_signed_in 1$' "$T/stay/profile" || fail "profile does not keep the flag"
cp -r "$T/stay" "$T/stolen"
sed -i '/^session_stay_signed_in/d' "$T/stolen/profile"
cp -r "$T/stay" "$T/forged"
sed -i "s/^identity_seed .*/identity_seed $(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')/" \
    "$T/forged/profile"

# A recv waiting 4 s on each: the plain one is ended at the idle expiry.
timeout 60 "$CLI" --server "$URL" --profile "$T/doc" recv --wait 4 >"$T/doc.recv" 2>&1 &
DOC_RECV=$!
timeout 60 "$CLI" --server "$URL" --profile "$T/stay" recv --wait 4 >"$T/stay.recv" 2>&1 &
STAY_RECV=$!
doc_rc=0
wait "$DOC_RECV" || doc_rc=$?
stay_rc=0
wait "$STAY_RECV" || stay_rc=$?
[ "$doc_rc" -eq 4 ] || fail "plain recv outlived the idle expiry: exit $doc_rc $(cat "$T/doc.recv")"
[ "$stay_rc" -eq 0 ] || fail "stay-signed-in recv was ended: exit $stay_rc $(cat "$T/stay.recv")"

sleep 3 # past the idle expiry again, with no connection open
cli doc devices
expect_rc 4 "plain session after the idle expiry"
expect_err "carechat login" "plain session after the idle expiry"
cli stolen devices
expect_rc 4 "the token without the refresh signature"
cli forged devices
expect_rc 4 "a refresh signed by another key"
cli stay devices
expect_rc 0 "stay-signed-in session resumed after the idle expiry"

left=$((STAY_AT + 15 - $(date +%s))) # past the absolute expiry (14 s after login)
[ "$left" -le 0 ] || sleep "$left"
cli stay devices
expect_rc 4 "stay-signed-in session after the absolute expiry"
stop_server
echo PASS
