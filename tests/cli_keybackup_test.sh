#!/bin/bash
# tests/cli_keybackup_test.sh: history on a new device through the account's
# end-to-end encrypted key backup (issue 13), with the `carechat` CLI against
# the real carechatd (run with --key-backup-max-segments 4, so the backup is
# compacted along the way):
#   - device A (profile pa) of the patient receives messages in a direct
#     conversation and a care-team channel, turns the backup on (the recovery
#     key is printed once), receives and sends more: each recv and send keeps
#     the backup current by itself, and the backup stays within 4 segments
#     (compacted: key_backup.delete records of the patient);
#   - a fresh profile B logs in to the same account as a new device (A lost:
#     nobody approves it): history shows (no_key) for every earlier message;
#   - a mistyped recovery key (one letter changed) and another backup's
#     recovery key are refused with a clear error, and change nothing;
#   - with the right one, B's history shows every earlier message's text, in
#     both conversations; A then approves B, and what B receives next B backs
#     up itself;
#   - neither the recovery key nor any message text is in the server's data
#     directory, log or /metrics;
#   - keys backup disable deletes the server's copy: a third profile finds no
#     backup, and B, still holding the key, stops keeping it at its next
#     upload (the server refuses the turned-off key).
# Everything runs on 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clikeybackup

password_file root 'root-secret-passphrase'
password_file doc 'doctor-secret-passphrase'
for p in pa pb pc; do password_file $p 'patient-secret-passphrase'; done
bootstrap_root
start_server --key-backup-max-segments 4
URL="ws://127.0.0.1:$PORT"
MPORT=$(grep -o 'metrics listening on 127.0.0.1:[0-9]*' "$T/carechatd.log" | head -1 | sed 's/.*://')

cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register doc root doc@clinic.example provider "Dr Ada"
register pa doc pat@example.org patient "Pat"
PAT=$ID

# The recovery key in $T/out: 9 groups of 4 letters and digits.
recovery_key() {
    grep -o '[0-9A-Z]\{4\}\(-[0-9A-Z]\{4\}\)\{8\}' "$T/out" | head -1
}

# The number value of "$1" in the one JSON object of $T/out.
json_number() {
    grep -o "\"$1\": [0-9]*" "$T/out" | head -1 | sed 's/.*: //'
}

TEXTS=()
say() { # PROFILE TEXT ARGS...: sends TEXT, remembered for the checks
    local p=$1 text=$2
    shift 2
    cli "$p" --json send "$@" --text "$text"
    expect_rc 0 "send '$text'"
    TEXTS+=("$text")
}

say doc "direct, before the backup" --to pat@example.org
DIRECT=$(field conversation)
cli doc --json channel create --patient pat@example.org --name "Ward 3 care team"
expect_rc 0 "channel create"
CH=$(field channel)
say doc "channel, before the backup" --channel "$CH"
cli pa recv
expect_rc 0 "A receives"
[ "$(lines)" -eq 2 ] || fail "A should have received 2 messages"

cli pa --json keys backup enable
expect_rc 0 "keys backup enable"
REC=$(field recovery_key)
[[ "$REC" =~ ^[0-9A-Z]{4}(-[0-9A-Z]{4}){8}$ ]] || fail "no recovery key: $OUT"
[ "$(json_number keys)" -eq 2 ] || fail "enable backs up what A can read already: $OUT"
printf '%s\n' "$REC" >"$T/rec.key"
chmod 600 "$T/rec.key"
grep -qF "$REC" "$T/pa/profile" && fail "the recovery key itself is stored in the profile"
cli pa keys backup enable
expect_rc 1 "a second enable"

# More traffic: every recv and send keeps the backup current by itself, and
# the backup is compacted to stay within 4 segments.
for i in 1 2 3; do
    say doc "direct, after the backup $i" --to pat@example.org
    say doc "channel, after the backup $i" --channel "$CH"
    cli pa recv
    expect_rc 0 "A receives round $i"
    say pa "Pat answers $i" --conversation "$DIRECT"
    cli pa --json keys backup status
    expect_rc 0 "status round $i"
    [ "$(json_number pending_keys)" -eq 0 ] || fail "keys left behind in round $i: $OUT"
    [ "$(json_number segments)" -le 2 ] || fail "not compacted in round $i: $OUT"
done
[ "$(json_number local_keys)" -eq "${#TEXTS[@]}" ] || fail "A keeps every key: $OUT"
grep -q '"enabled": true' "$T/out" || fail "status: $OUT"

# B: a new phone, A being lost. Nothing of the earlier messages opens.
cli pb login --email pat@example.org --password-file "$T/pb.pw"
expect_rc 0 "B logs in as a new device"
APPROVE=$(sed -n 's/^  carechat approve --code \([0-9-]*\)$/\1/p' "$T/out")
cli pb history --conversation "$DIRECT"
expect_rc 0 "B's history before the restore"
[ "$(grep -c '(no_key)' "$T/out")" -eq 7 ] || fail "B should see 7 messages without a key: $OUT"
cli pb history --conversation "$CH"
[ "$(grep -c '(no_key)' "$T/out")" -eq 4 ] || fail "B should see 4 channel messages without a key"

# A typo (one letter changed) is caught on the device; another backup's key
# is refused by what it opens. Neither changes anything.
first=${REC:0:1}
typo="$([ "$first" = "Z" ] && echo Y || echo Z)${REC:1}"
printf '%s\n' "$typo" >"$T/typo.key"
chmod 600 "$T/typo.key"
cli pb keys restore --recovery-file "$T/typo.key"
expect_rc 1 "a mistyped recovery key"
expect_err "mistyped" "a mistyped recovery key"
python3 -c '
import hashlib, secrets
s = secrets.token_bytes(20)
c = hashlib.sha256(b"carechat.v1 recovery key" + s).digest()[:3]
v = int.from_bytes(s, "big") << 20 | int.from_bytes(c, "big") >> 4
a = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
t = "".join(a[(v >> (5 * (35 - i))) & 31] for i in range(36))
print("-".join(t[i:i + 4] for i in range(0, 36, 4)))' >"$T/other.key"
chmod 600 "$T/other.key"
cli pb keys restore --recovery-file "$T/other.key"
expect_rc 1 "another backup's recovery key"
expect_err "does not open this account's key backup" "another backup's recovery key"
cli pb --json keys backup status
grep -q '"enabled": false' "$T/out" || fail "a refused restore changed the profile: $OUT"
[ "$(json_number local_keys)" -eq 0 ] || fail "a refused restore kept keys: $OUT"
[ -e "$T/pb/history_keys" ] && fail "a refused restore wrote keys"
cli pb history --conversation "$DIRECT"
[ "$(grep -c '(no_key)' "$T/out")" -eq 7 ] || fail "a refused restore changed B's history"

# The right key: every earlier message reads on B.
cli pb --json keys restore --recovery-file "$T/rec.key"
expect_rc 0 "keys restore"
[ "$(json_number restored)" -eq "${#TEXTS[@]}" ] || fail "restored count: $OUT"
cli pb history --conversation "$DIRECT"
expect_rc 0 "B's history after the restore"
grep -q '(no_key)' "$T/out" && fail "B still misses keys: $OUT"
HIST=$OUT
cli pb history --conversation "$CH"
grep -q '(no_key)' "$T/out" && fail "B still misses channel keys: $OUT"
HIST="$HIST
$OUT"
for text in "${TEXTS[@]}"; do
    grep -qF -- "$text" <<<"$HIST" || fail "B's history lacks '$text'"
done

# A approves B; what B receives next, B backs up.
cli pa approve --code "$APPROVE"
expect_rc 0 "A approves B"
say doc "direct, to both phones" --to pat@example.org
cli pb recv
expect_rc 0 "B receives"
grep -qF "direct, to both phones" "$T/out" || fail "B did not receive: $OUT"
cli pb --json keys backup status
grep -q '"enabled": true' "$T/out" || fail "B keeps the backup after the restore: $OUT"
[ "$(json_number pending_keys)" -eq 0 ] || fail "B did not back up what it received: $OUT"

# Nothing readable reaches the server: neither the recovery key (as shown,
# or without its dashes) nor any text, in the data directory, the log or
# /metrics.
curl -s "http://127.0.0.1:$MPORT/metrics" >"$T/metrics" || fail "no /metrics"
grep -q '^carechat_' "$T/metrics" || fail "/metrics is empty"
for needle in "$REC" "${REC//-/}" "${TEXTS[@]}"; do
    grep -rqaF -- "$needle" "$T/data" && fail "'$needle' is in the data directory"
    grep -qaF -- "$needle" "$T/carechatd.log" && fail "'$needle' is in the server log"
    grep -qaF -- "$needle" "$T/metrics" && fail "'$needle' is in /metrics"
done

# Every access is audited: the patient's writes, reads and compactions.
cli root audit query --patient pat@example.org
expect_rc 0 "audit query"
for action in key_backup.write key_backup.list key_backup.read key_backup.delete; do
    grep -q "$action" "$T/out" || fail "no $action record of the patient"
done

# Off: the server's copy goes; a third profile finds nothing to restore; B,
# still holding the key, stops at its next upload.
cli pa keys backup disable
expect_rc 0 "keys backup disable"
cli pa --json keys backup status
[ "$(json_number segments)" -eq 0 ] || fail "segments left after disable: $OUT"
grep -q '"enabled": false' "$T/out" || fail "A still keeps the backup: $OUT"
cli pc login --email pat@example.org --password-file "$T/pc.pw"
expect_rc 0 "a third device"
cli pc keys restore --recovery-file "$T/rec.key"
expect_rc 2 "restore after disable"
expect_err "no key backup" "restore after disable"
say doc "direct, after the disable" --to pat@example.org
cli pb recv
expect_rc 0 "B receives after the disable"
cli pb --json keys backup status
grep -q '"enabled": false' "$T/out" || fail "B still keeps a turned-off backup: $OUT"
[ "$(json_number segments)" -eq 0 ] || fail "B wrote into a turned-off backup: $OUT"
stop_server
echo PASS
