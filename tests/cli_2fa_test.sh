#!/bin/bash
# tests/cli_2fa_test.sh: `carechat 2fa enable|confirm|disable` and
# `carechat login --totp` against the real carechatd run with
# --require-2fa staff (issue 13). The codes come from an independent RFC 6238
# in Node (node:crypto HMAC-SHA1) fed with the secret the CLI printed.
#
# The sysadmin's first login gets a session that can only enrol (invite:
# exit 2); enable prints the secret and URI; a wrong code does not confirm, a
# right one does and prints 10 recovery codes; then invite works. A later
# login needs --totp: without it or with the same code again (replay): exit
# 2; a recovery code works once. Staff cannot disable; a patient can. No
# secret or code reaches the server log or the audit log.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init cli2fa
trap lib_cleanup EXIT
command -v node >/dev/null || fail "node is not on PATH"

# totp SECRET STEP: the 6-digit code of STEP ("now" for the current one).
totp() {
    node -e '
const crypto = require("crypto");
const [secret, which] = process.argv.slice(1);
const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
let acc = 0, bits = 0;
const key = [];
for (const ch of secret) {
    acc = (acc << 5) | A.indexOf(ch);
    bits += 5;
    if (bits >= 8) { key.push((acc >> (bits - 8)) & 255); bits -= 8; acc &= (1 << bits) - 1; }
}
const step = which === "now" ? Math.floor(Date.now() / 30000) : Number(which);
const msg = Buffer.alloc(8);
msg.writeBigUInt64BE(BigInt(step));
const mac = crypto.createHmac("sha1", Buffer.from(key)).update(msg).digest();
const off = mac[19] & 15;
const v = (mac.readUInt32BE(off) & 0x7fffffff) % 1000000;
console.log(step + " " + String(v).padStart(6, "0"));
' "$1" "$2"
}
# RFC 6238 appendix B, first SHA-1 row, as a 6-digit code (94287082 -> 287082).
[ "$(totp GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ 1)" = "1 287082" ] || fail "the Node TOTP is wrong"

password_file root "root-secret-passphrase"
password_file pat "pat-first-passphrase"
password_file wrong "not-the-right-passphrase"
bootstrap_root
start_server --require-2fa staff
URL="ws://127.0.0.1:$PORT"

cli root --help
for w in "2fa enable" "2fa confirm --code" "2fa disable --password-file F --code" "--totp"; do
    grep -qF -- "$w" "$T/out" || fail "--help does not document '$w'"
done

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "the sysadmin's first login"
grep -q "run carechat 2fa enable" "$T/out" || fail "login does not say to enrol: $OUT"
cli root invite --email pat@example.org --role patient
expect_rc 2 "a session that must enrol"
expect_err "two-factor sign-in required" "a session that must enrol"

cli root --json 2fa enable
expect_rc 0 "2fa enable"
SECRET=$(field secret)
[[ "$SECRET" =~ ^[A-Z2-7]{32}$ ]] || fail "no base32 secret: $OUT"
field otpauth_uri | grep -q "^otpauth://totp/CareChat:[0-9a-f]\{8\}?secret=$SECRET&issuer=CareChat" ||
    fail "otpauth URI: $OUT"
read -r STEP CODE <<<"$(totp "$SECRET" now)"
read -r _ WRONG <<<"$(totp "$SECRET" $((STEP + 9)))"
cli root 2fa confirm --code "$WRONG"
expect_rc 2 "a wrong code"
expect_err "wrong code" "a wrong code"
cli root --json 2fa confirm --code "$CODE"
expect_rc 0 "2fa confirm"
mapfile -t RECOVERY < <(grep -o '[A-Z2-7]\{4\}-[A-Z2-7]\{4\}-[A-Z2-7]\{4\}-[A-Z2-7]\{4\}' "$T/out")
[ "${#RECOVERY[@]}" -eq 10 ] || fail "10 recovery codes expected: $OUT"
cli root --json invite --email pat@example.org --role patient
expect_rc 0 "enrolled: the session does everything"
PATCODE=$(invite_code)

cli laptop login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 2 "a login without the second factor"
expect_err "second factor required" "a login without the second factor"
read -r _ NEXT <<<"$(totp "$SECRET" $((STEP + 1)))"
cli laptop login --email root@clinic.example --password-file "$T/root.pw" --totp "$NEXT"
expect_rc 0 "a login with the code"
cli laptop login --email root@clinic.example --password-file "$T/root.pw" --totp "$NEXT"
expect_rc 2 "the same code again"
expect_err "wrong second factor" "the same code again"
# A recovery code from a file (--totp-file keeps it out of the process list).
printf '%s\n' "${RECOVERY[0]}" >"$T/recovery0"
cli laptop login --email root@clinic.example --password-file "$T/root.pw" --totp "x" \
    --totp-file "$T/recovery0"
expect_rc 1 "both --totp and --totp-file"
expect_err "one of --totp and --totp-file" "both --totp and --totp-file"
cli laptop login --email root@clinic.example --password-file "$T/root.pw" --totp-file "$T/recovery0"
expect_rc 0 "a recovery code"
cli laptop login --email root@clinic.example --password-file "$T/root.pw" --totp "${RECOVERY[0]}"
expect_rc 2 "a recovery code twice"
cli root 2fa disable --password-file "$T/root.pw" --code "${RECOVERY[1]}"
expect_rc 2 "staff cannot disable"

cli pat --json register --code "$PATCODE" --email pat@example.org --password-file "$T/pat.pw" \
    --birthdate 1980-05-06 --name "Pat"
expect_rc 0 "a patient registers without a second factor"
cli pat --json 2fa enable
PSECRET=$(field secret)
read -r PSTEP PCODE <<<"$(totp "$PSECRET" now)"
cli pat 2fa confirm --code "$PCODE"
expect_rc 0 "the patient enables it"
read -r _ PNEXT <<<"$(totp "$PSECRET" $((PSTEP + 1)))"
cli pat 2fa disable --password-file "$T/wrong.pw" --code "$PNEXT"
expect_rc 2 "disable with a wrong password"
cli pat 2fa disable --password-file "$T/pat.pw" --code "$PNEXT"
expect_rc 0 "the patient disables it"
cli pat login --email pat@example.org --password-file "$T/pat.pw"
expect_rc 0 "then no second factor is needed"

cli root --json audit query
expect_rc 0 "audit query"
for action in account.2fa_enroll account.2fa_confirm account.2fa_disable \
    account.2fa_recovery_used session.2fa_refused; do
    grep -q "\"action\": \"$action\"" "$T/out" || fail "no $action record"
done
for secret in "$SECRET" "$PSECRET" "${RECOVERY[@]}" "$NEXT"; do
    grep -qF "$secret" "$T/carechatd.log" && fail "a secret or code is in the server log"
    grep -qF "$secret" "$T/out" && fail "a secret or code is in the audit log"
done
echo PASS
