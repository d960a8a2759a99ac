#!/bin/bash
# tests/cli_breach_test.sh: `carechat breach declare|status` against the real
# carechatd (issue 12). A provider reads two patients' conversations and not
# a third's; the sysadmin declares a breach over the audit log's window with
# that provider as the accessor: exactly those two get notices; a repeat with
# the same incident and --accounts of the third adds exactly one; the status
# lists three notices, the deadline is the end of the 7th business day after
# the discovery (a Monday: the next Thursday week), and all three are overdue
# (no mail relay here, and the deadline is past); /metrics counts them; an
# admin may not declare; the description is in no log and no output.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init clibreach
trap lib_cleanup EXIT

for who in root adm doc doc2 p1 p2 p3; do password_file "$who" "$who-secret-passphrase"; done
bootstrap_root
start_server --maintenance-interval 1
URL="ws://127.0.0.1:$PORT"
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "sysadmin login"
register adm root adm@clinic.example admin "Admin Al"
register doc root doc@clinic.example provider "Dr Ada"
register doc2 root doc2@clinic.example provider "Dr Bea"
register p1 doc p1@clinic.example patient "Pat One"
P1=$ID
register p2 doc p2@clinic.example patient "Pat Two"
P2=$ID
register p3 doc2 p3@clinic.example patient "Pat Three"
P3=$ID

FROM=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)
for p in p1 p2; do
    cli doc --json send --to "$p@clinic.example" --text "hello $p"
    expect_rc 0 "doc writes to $p"
    CONV=$(field conversation)
    cli doc history --conversation "$CONV"
    expect_rc 0 "doc reads $p's conversation"
done
cli doc2 --json send --to p3@clinic.example --text "hello p3"
CONV3=$(field conversation)
cli doc2 history --conversation "$CONV3"
expect_rc 0 "doc2 reads p3's conversation"

DESC="Dr Ada's laptop was stolen on the train"
printf '%s\n' "$DESC" >"$T/desc.txt"
cli adm breach declare --from "$FROM" --actor doc@clinic.example --description-file "$T/desc.txt"
expect_rc 2 "an admin declares"
expect_err "forbidden" "an admin declares"
cli root --json breach declare --from "$FROM" --actor doc@clinic.example \
    --discovered 2026-03-02T10:00:00Z --description-file "$T/desc.txt"
expect_rc 0 "the sysadmin declares over the window"
INCIDENT=$(field incident)
[[ "$INCIDENT" =~ ^[0-9a-f]{32}$ ]] || fail "no incident id: $OUT"
[ "$(number queued)" = 2 ] || fail "queued: $OUT"
# Monday 2026-03-02: Tue 3 .. Fri 6, Mon 9 .. Wed 11: due by the end of the 11th.
[ "$(number deadline)" = "$(($(date -u -d 2026-03-12T00:00:00Z +%s) * 1000))" ] ||
    fail "deadline: $OUT"
cli root --json breach declare --incident "$INCIDENT" --accounts p3@clinic.example,p1@clinic.example \
    --discovered 2026-03-02T10:00:00Z --description "$DESC"
expect_rc 0 "a repeat with more accounts"
[ "$(number queued)" = 1 ] || fail "the repeat queued: $OUT"
cli root breach declare --accounts p1@clinic.example --from "$FROM"
expect_rc 1 "--accounts and --from"

cli root --json breach status --incident "$INCIDENT"
expect_rc 0 "status"
[ "$(grep -c '"account"' "$T/out")" -eq 3 ] || fail "three notices: $OUT"
for id in "$P1" "$P2" "$P3"; do
    grep -q "\"account\": \"$id\", \"state\": \"\(pending\|sent\|failed\)\"" "$T/out" ||
        fail "the notice of $id: $OUT"
done
grep -q '"total": 3' "$T/out" || fail "total: $OUT"
grep -q '"overdue": 3' "$T/out" || fail "every notice is overdue: $OUT"
cli root breach status --incident "$INCIDENT"
grep -q "3 OVERDUE" "$T/out" || fail "text status: $OUT"
cli root breach status --incident 0123456789abcdef0123456789abcdef
expect_rc 2 "an unknown incident"

# The maintenance counts them on /metrics.
for _ in $(seq 100); do
    curl -s "http://127.0.0.1:$MPORT/metrics" >"$T/metrics" || true
    grep -q '^carechat_breach_notices_overdue 3$' "$T/metrics" && break
    sleep 0.1
done
grep -q '^carechat_breach_notices_overdue 3$' "$T/metrics" || fail "metrics: $(grep breach "$T/metrics")"

cli root --json audit query
grep -q '"action": "breach.start"' "$T/out" || fail "no breach.start record"
[ "$(grep -c '"action": "breach.notice"' "$T/out")" -eq 3 ] || fail "breach.notice records"
grep -q "laptop" "$T/out" && fail "the description is in the audit log"
grep -q "laptop" "$T/carechatd.log" && fail "the description is in the server log"
echo PASS
