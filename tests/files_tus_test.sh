#!/usr/bin/env bash
# tests/files_tus_test.sh: files over the carechat CLI and over tus 1.0.0 on
# carechatd's listener (issue 10):
#   - `carechat send --file` then `carechat download --seq` by another member:
#     the same bytes; `download --file-id` too; an interrupted download resumes;
#   - tus-js-client (npm, pinned) uploads 20 MiB in 1 MiB PATCHes, cut five
#     times mid-PATCH at random offsets (once followed by kill -9 and a
#     restart of carechatd), each time resuming at an offset no lower than the
#     last one the server acknowledged; the upload completes (its declared
#     sha256 checked) and GET with Range (curl) answers 206 with the right bytes;
#   - the patient downloads the provider's WebSocket upload over HTTP (GET);
#   - refusals: wrong Upload-Offset 409, bytes past Upload-Length 413, wrong
#     Upload-Checksum 460, another Tus-Resumable 412, a missing, malformed or
#     logged-out token 401, a non-member's GET 404 and audited, an upload over
#     --file-max 413 before anything is stored; DELETE ends an upload (then 404);
#     a recalled message's file 404; an expired session's token 401;
#   - CORS for --allowed-origin only; /metrics counts file bytes out.
# Needs node on PATH and CARECHAT_NODE_MODULES with tus-js-client; fails, never
# skips.
set -euo pipefail
source tests/lib.sh
lib_init files_tus
command -v node >/dev/null || fail "node is not on PATH"
[ -d "${CARECHAT_NODE_MODULES:-}/tus-js-client" ] ||
    fail "no tus-js-client in CARECHAT_NODE_MODULES (${CARECHAT_NODE_MODULES:-unset}): npm ci in tests/"
TUS="$PWD/tests/files_tus.mjs"

password_file root root-secret-passphrase
password_file dr dr-secret-passphrase
password_file pat pat-secret-passphrase
password_file other other-secret-passphrase
bootstrap_root
FLAGS=(--file-max 32m --audit-coalesce 0)
start_server "${FLAGS[@]}"
URL="ws://127.0.0.1:$PORT"
B="http://127.0.0.1:$PORT"
cli root login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "root login"
register dr root dr@clinic.example provider "Dr Files"
register pat dr pat@example.org patient "Pat Files"
register other dr other@example.org patient "Other"
OTHER_ID=$ID

token() { grep '^session_token ' "$T/$1/profile" | cut -d' ' -f2; }
status_of() { # curl args...; prints the HTTP status
    curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@" || true
}
header() { grep -i "^$1:" "$T/headers" | head -1 | tr -d '\r' | sed 's/^[^:]*: *//'; }

# ---- the CLI: send --file, download -------------------------------------------
head -c $((2 * 1024 * 1024 + 333)) /dev/urandom >"$T/report.pdf"
cli dr --json send --to pat@example.org --file "$T/report.pdf" --type application/pdf --text "your report"
expect_rc 0 "send --file"
CONV=$(field conversation)
SEQ=$(number seq)
[[ "$CONV" =~ ^[0-9a-f]{32}$ ]] || fail "send --file: no conversation"
cli pat --json download --conversation "$CONV" --seq "$SEQ" --out "$T/got.pdf"
expect_rc 0 "download --seq"
cmp "$T/report.pdf" "$T/got.pdf" || fail "downloaded bytes differ"
FILE_ID=$(field file_id)
[ "$(field name)" = "report.pdf" ] || fail "the attachment's name"
cli pat --json download --conversation "$CONV" --file-id "$FILE_ID" --out "$T/got2.pdf"
expect_rc 0 "download --file-id"
cmp "$T/report.pdf" "$T/got2.pdf" || fail "download --file-id bytes differ"
cli pat --json download --conversation "$CONV" --seq 999999 --out "$T/none"
expect_rc 2 "download of a message that does not exist"
# The stranger: refused (exit 2: the server refused) and nothing written.
cli other --json download --conversation "$CONV" --seq "$SEQ" --out "$T/stolen"
[ "$RC" -ne 0 ] || fail "a non-member downloaded"
[ ! -e "$T/stolen" ] || fail "a non-member's download wrote a file"

# The patient fetches the WebSocket upload over HTTP: the whole ciphertext.
st=$(status_of -H "Authorization: Bearer $(token pat)" "$B/files/$FILE_ID")
[ "$st" = 200 ] || fail "GET of a member: $st"
SIZE=$(stat -c %s "$T/body")
[ "$SIZE" -gt $((2 * 1024 * 1024 + 333)) ] || fail "GET: $SIZE bytes, less than the plaintext"

# ---- tus-js-client: 20 MiB cut five times, once by kill -9 -----------------------------
head -c $((20 * 1024 * 1024)) /dev/urandom >"$T/big.bin"
SHA=$(sha256sum "$T/big.bin" | cut -d' ' -f1)
TOTAL=$((20 * 1024 * 1024))
ACKED=0
head_offset() {
    st=$(status_of -I -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" "$B$LOC")
    [ "$st" = 200 ] || fail "HEAD: $st"
    header upload-offset
}
# Cut 1: tus-js-client creates the upload and is aborted after some progress.
out=$(node "$TUS" "$B" "$(token dr)" "$CONV" "$T/big.bin" "$SHA" $((3 * 1024 * 1024))) ||
    fail "tus-js-client: $out"
echo "cut 1 (tus-js-client abort): $out"
LOC=$(printf '%s' "$out" | sed -n 's/.*"location":"[^"]*\(\/files\/[0-9a-f]*\)".*/\1/p')
ACKED=$(printf '%s' "$out" | sed -n 's/.*"acked":\([0-9]*\).*/\1/p')
[ -n "$LOC" ] && [ "$ACKED" -gt 0 ] || fail "tus-js-client: nothing acknowledged: $out"
OFF=$(head_offset)
[ "$OFF" -ge "$ACKED" ] || fail "HEAD offset $OFF lost the acknowledged $ACKED"
# Cuts 2..5: a PATCH of the rest, sent slowly and cut mid-body after a random
# time (cut 4: carechatd is killed -9 mid-body instead, then restarted). The
# whole chunks that arrived are kept; nothing acknowledged is lost.
for cut in 2 3 4 5; do
    { tail -c +$((OFF + 1)) "$T/big.bin" || true; } | head -c $((12 * 1024 * 1024)) >"$T/rest"
    curl -s -o /dev/null -X PATCH -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" \
        -H "Content-Type: application/offset+octet-stream" -H "Upload-Offset: $OFF" \
        -H "Expect:" --limit-rate 4M --data-binary @"$T/rest" "$B$LOC" &
    CURL=$!
    sleep "0.$((3 + RANDOM % 6))"
    if [ "$cut" = 4 ]; then
        kill -9 "$PID"
        wait "$PID" 2>/dev/null || true
        PID=""
        wait "$CURL" 2>/dev/null || true
        start_server "${FLAGS[@]}"
        URL="ws://127.0.0.1:$PORT"
        B="http://127.0.0.1:$PORT"
    else
        kill "$CURL" 2>/dev/null || true
        wait "$CURL" 2>/dev/null || true
    fi
    sleep 0.2 # the chunks proposed before the cut become durable
    NEW=$(head_offset)
    echo "cut $cut: PATCH from $OFF cut mid-body; HEAD offset $NEW"
    [ "$NEW" -ge "$OFF" ] || fail "cut $cut: offset went back from $OFF to $NEW"
    [ "$NEW" -gt "$OFF" ] || fail "cut $cut: nothing of the cut PATCH was kept"
    OFF=$NEW
    ACKED=$NEW
done
[ "$OFF" -lt "$TOTAL" ] || fail "the cuts came too late: the upload completed"
# tus-js-client resumes (HEAD) and completes the upload.
out=$(node "$TUS" "$B" "$(token dr)" "$CONV" "$T/big.bin" "$SHA" 0 "$B$LOC") ||
    fail "tus upload completion: $out"
echo "resumed: $out"
from=$(printf '%s' "$out" | sed -n 's/.*"resumed_from":\(-\?[0-9]*\).*/\1/p')
[ "$from" -ge "$ACKED" ] || fail "tus-js-client resumed at $from, before the stored $ACKED"
printf '%s' "$out" | grep -q '"complete":true' || fail "tus: not complete: $out"
st=$(status_of -H "Authorization: Bearer $(token pat)" "$B$LOC")
[ "$st" = 200 ] || fail "GET of the tus upload: $st"
cmp "$T/body" "$T/big.bin" || fail "GET: other bytes than uploaded"
st=$(status_of -H "Authorization: Bearer $(token pat)" -H "Range: bytes=1000000-1999999" "$B$LOC")
[ "$st" = 206 ] || fail "Range GET: $st"
[ "$(header content-range)" = "bytes 1000000-1999999/$TOTAL" ] || fail "Content-Range: $(header content-range)"
cmp "$T/body" <(tail -c +1000001 "$T/big.bin" | head -c 1000000) || fail "Range: other bytes"
st=$(status_of -H "Authorization: Bearer $(token pat)" -H "Range: bytes=$TOTAL-" "$B$LOC")
[ "$st" = 416 ] || fail "unsatisfiable Range: $st"

# ---- refusals ----------------------------------------------------------------------------
MD="conversation $(printf %s "$CONV" | base64 -w0)"
tus_post() { # LENGTH [extra curl args]
    local len=$1
    shift
    status_of -X POST -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" \
        -H "Upload-Length: $len" -H "Upload-Metadata: $MD" "$@" "$B/files/"
}
patch() { # LOCATION OFFSET FILE [extra curl args]
    local loc=$1 off=$2 f=$3
    shift 3
    status_of -X PATCH -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" \
        -H "Content-Type: application/offset+octet-stream" -H "Upload-Offset: $off" \
        --data-binary @"$f" "$@" "$B$loc"
}
st=$(status_of -X OPTIONS "$B/files/")
[ "$st" = 204 ] || fail "OPTIONS: $st"
[ "$(header tus-version)" = "1.0.0" ] || fail "OPTIONS: Tus-Version"
[ "$(header tus-max-size)" = $((32 * 1024 * 1024)) ] || fail "OPTIONS: Tus-Max-Size"
header tus-extension | grep -q 'creation' || fail "OPTIONS: Tus-Extension"
st=$(tus_post 300000)
[ "$st" = 201 ] || fail "creation: $st"
[ "$(header tus-resumable)" = "1.0.0" ] || fail "no Tus-Resumable on an answer"
L=$(header location)
head -c 300000 /dev/urandom >"$T/small"
head -c 100000 "$T/small" >"$T/p1"
tail -c 200000 "$T/small" >"$T/p2"
st=$(patch "$L" 5 "$T/p1")
[ "$st" = 409 ] || fail "wrong offset: $st"
st=$(patch "$L" 0 "$T/p1")
[ "$st" = 204 ] || fail "PATCH: $st"
[ "$(header upload-offset)" = 100000 ] || fail "PATCH: Upload-Offset $(header upload-offset)"
cat "$T/p2" "$T/p1" >"$T/toolong"
st=$(patch "$L" 100000 "$T/toolong")
[ "$st" = 413 ] || fail "past Upload-Length: $st"
st=$(patch "$L" 100000 "$T/p2" -H "Upload-Checksum: sha256 $(sha256sum "$T/p1" | cut -d' ' -f1 | xxd -r -p | base64 -w0)")
[ "$st" = 460 ] || fail "wrong checksum: $st"
st=$(status_of -I -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" "$B$L")
[ "$(header upload-offset)" = 100000 ] || fail "a refused PATCH stored bytes"
st=$(patch "$L" 100000 "$T/p2" -H "Upload-Checksum: sha256 $(sha256sum "$T/p2" | cut -d' ' -f1 | xxd -r -p | base64 -w0)")
[ "$st" = 204 ] || fail "PATCH with the right checksum: $st"
st=$(status_of -I -H "Tus-Resumable: 0.2.2" -H "Authorization: Bearer $(token dr)" "$B$L")
[ "$st" = 412 ] || fail "another Tus-Resumable: $st"
st=$(status_of -I -H "Tus-Resumable: 1.0.0" "$B$L")
[ "$st" = 401 ] || fail "no token: $st"
GOOD=$(token dr)
case $GOOD in 0*) BAD=1${GOOD:1} ;; *) BAD=0${GOOD:1} ;; esac
st=$(status_of -I -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $BAD" "$B$L")
[ "$st" = 401 ] || fail "wrong token: $st"
st=$(tus_post $((33 * 1024 * 1024)))
[ "$st" = 413 ] || fail "creation over --file-max: $st"
st=$(status_of -H "Authorization: Bearer $(token other)" "$B$LOC")
[ "$st" = 404 ] || fail "non-member GET: $st"
# Recalling the message that carries a file stops its downloads.
cli dr --json send --conversation "$CONV" --file "$T/p1" --text "to be recalled"
expect_rc 0 "send --file to recall"
RMID=$(field message_id)
cli pat --json recv --wait 1
RFID=$(grep 'to be recalled' "$T/out" | grep -o '"file_id": "[0-9a-f]*"' | head -1 | sed 's/.*: "\(.*\)"/\1/')
[[ "$RFID" =~ ^[0-9a-f]{32}$ ]] || fail "recv: no attachment id"
st=$(status_of -H "Authorization: Bearer $(token pat)" "$B/files/$RFID")
[ "$st" = 200 ] || fail "GET before the recall: $st"
cli dr recall --conversation "$CONV" --message "$RMID"
expect_rc 0 "recall"
st=$(status_of -H "Authorization: Bearer $(token pat)" "$B/files/$RFID")
[ "$st" = 404 ] || fail "GET of a recalled file: $st"
cli root --json audit query --actor other@example.org
expect_rc 0 "audit query"
grep '"file.download"' "$T/out" | grep -q '"outcome": 4' || fail "the refused GET is not audited"
# Termination.
st=$(tus_post 5000)
L2=$(header location)
st=$(status_of -X DELETE -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" "$B$L2")
[ "$st" = 204 ] || fail "DELETE: $st"
st=$(status_of -I -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" "$B$L2")
[ "$st" = 404 ] || fail "HEAD after DELETE: $st"
# CORS: an allowed browser origin gets the tus headers exposed; another, 403.
stop_server
start_server "${FLAGS[@]}" --allowed-origin https://app.clinic.example
B="http://127.0.0.1:$PORT"
st=$(status_of -X OPTIONS -H "Origin: https://app.clinic.example" \
    -H "Access-Control-Request-Method: PATCH" "$B/files/")
[ "$st" = 204 ] || fail "CORS preflight: $st"
[ "$(header access-control-allow-origin)" = "https://app.clinic.example" ] || fail "no ACAO"
header access-control-allow-methods | grep -q PATCH || fail "preflight: methods"
header access-control-expose-headers | grep -q Upload-Offset || fail "Upload-Offset not exposed"
st=$(status_of -I -H "Origin: https://evil.example" -H "Tus-Resumable: 1.0.0" \
    -H "Authorization: Bearer $(token dr)" "$B$L")
[ "$st" = 403 ] || fail "another Origin: $st"
# /metrics counts the file bytes and uploads (of this start: none yet), and
# holds no file name.
st=$(status_of -H "Authorization: Bearer $(token pat)" "$B$LOC")
[ "$st" = 200 ] || fail "GET after restart: $st"
curl -s "http://127.0.0.1:$MPORT/metrics" >"$T/metrics"
grep -q "^carechat_file_bytes_out_total $TOTAL$" "$T/metrics" || fail "metrics: bytes out"
grep -q '^carechat_uploads_total{event="started"} 0$' "$T/metrics" || fail "metrics: started"
! grep -q 'report.pdf\|scan.bin' "$T/metrics" || fail "a file name in /metrics"
# An expired session's token is refused: 16 minutes later (--session-idle 900).
stop_server
CARECHAT_TEST_CLOCK=1 start_server "${FLAGS[@]}" --clock-offset 960000
B="http://127.0.0.1:$PORT"
st=$(status_of -I -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $(token dr)" "$B$L")
[ "$st" = 401 ] || fail "expired token: $st"
stop_server
start_server "${FLAGS[@]}"
URL="ws://127.0.0.1:$PORT"
B="http://127.0.0.1:$PORT"
# A logged-out session's token is refused.
cli dr login --email dr@clinic.example --password-file "$T/dr.pw"
expect_rc 0 "dr logs in again"
OLD=$(token dr)
cli dr logout
expect_rc 0 "logout"
st=$(status_of -I -H "Tus-Resumable: 1.0.0" -H "Authorization: Bearer $OLD" "$B$L")
[ "$st" = 401 ] || fail "logged-out token: $st"
stop_server
echo "files_tus_test: ok"
