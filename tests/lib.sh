# tests/lib.sh: the setup shared by the shell tests that drive the `carechat`
# CLI against the real carechatd (a data dependency of each such sh_test,
# sourced after `set -euo pipefail`):
#
#   lib_init NAME     a fresh directory $T (under $TEST_TMPDIR), $SERVER and
#                     $CLI (from the runfiles, or $CARECHATD and $CARECHAT),
#                     and an EXIT trap that kills a server still running
#   password_file NAME PASSWORD   writes $T/NAME.pw (mode 600)
#   bootstrap_root    `carechatd init` of $T/data, then `carechatd bootstrap`
#                     of root@clinic.example with $T/root.pw
#   start_server [FLAGS]  carechatd on $T/data, listening on 127.0.0.1:0 (or
#                     127.0.0.1:$LISTEN_PORT when set: a restart on the same
#                     port) and its metrics on 127.0.0.1:0 (log in $T/carechatd.log),
#                     with --dev-invite-codes (no mail relay in these tests);
#                     sets PID, PORT (the WebSocket listener's) and MPORT (the
#                     metrics listener's), or fails
#                     after 20 s
#   stop_server       SIGTERM; fails unless carechatd exits with 0
#   cli PROFILE ARGS  the CLI against $URL with the profile $T/PROFILE, under
#                     a 60 s timeout; sets OUT, ERR and RC
#   expect_rc, expect_err, field, number, lines, invite_code: checks of the
#                     last cli call
#   register PROFILE INVITER EMAIL ROLE NAME   INVITER's profile invites EMAIL
#                     as ROLE and PROFILE registers it (password $T/PROFILE.pw,
#                     born 1980-05-06); sets ID to the new account's id
#   fail MESSAGE      prints the last cli call and the log's tail, exits 1
#
# Every wait is bounded; everything is on 127.0.0.1.

fail() {
    echo "FAIL: $*" >&2
    echo "  last exit: ${RC:-}  stdout: ${OUT:-}  stderr: ${ERR:-}" >&2
    [ -f "$T/carechatd.log" ] && sed 's/^/  carechatd: /' "$T/carechatd.log" | tail -40 >&2
    exit 1
}

lib_init() { # NAME
    RUNFILES="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}"
    SERVER="${CARECHATD:-$RUNFILES/server/carechatd}"
    CLI="${CARECHAT:-$RUNFILES/client/carechat}"
    [ -x "$SERVER" ] || SERVER="server/carechatd"
    [ -x "$CLI" ] || CLI="client/carechat"
    T=$(mktemp -d "${TEST_TMPDIR:-/tmp}/$1.XXXXXX")
    PID=""
    trap lib_cleanup EXIT
}

lib_cleanup() {
    if [ -n "$PID" ]; then kill -9 "$PID" 2>/dev/null || true; fi
}

password_file() { # NAME PASSWORD
    printf '%s\n' "$2" >"$T/$1.pw"
    chmod 600 "$T/$1.pw"
}

bootstrap_root() {
    timeout 60 "$SERVER" init --data "$T/data" >"$T/init.log" 2>&1 ||
        { cat "$T/init.log" >&2; fail "carechatd init"; }
    timeout 60 "$SERVER" bootstrap --data "$T/data" --email root@clinic.example \
        --password-file "$T/root.pw" >"$T/bootstrap.log" 2>&1 ||
        { cat "$T/bootstrap.log" >&2; fail "carechatd bootstrap"; }
}

# Starts carechatd on the data directory with extra flags; sets PID and PORT.
start_server() {
    "$SERVER" --listen "127.0.0.1:${LISTEN_PORT:-0}" --metrics-listen 127.0.0.1:0 --data "$T/data" \
        --dev-invite-codes "$@" \
        >"$T/carechatd.log" 2>&1 &
    PID=$!
    PORT=""
    MPORT=""
    # A line is read only once it is whole (the " (" after the port): the log
    # is read while carechatd writes it.
    for _ in $(seq 200); do
        PORT=$(grep -v 'metrics listening on' "$T/carechatd.log" 2>/dev/null |
            grep -o 'listening on 127.0.0.1:[0-9]* (' | head -1 | sed 's/.*://; s/ (//') || true
        MPORT=$(grep -o 'metrics listening on 127.0.0.1:[0-9]* (' "$T/carechatd.log" 2>/dev/null |
            head -1 | sed 's/.*://; s/ (//') || true
        [ -n "$PORT" ] && [ -n "$MPORT" ] && break
        sleep 0.1
    done
    [ -n "$PORT" ] && [ -n "$MPORT" ] || fail "carechatd did not listen within 20 s"
}

stop_server() {
    kill -TERM "$PID"
    wait "$PID" || fail "carechatd exited with $?"
    PID=""
}

# Runs the CLI against the server with the profile $T/$1; sets OUT, ERR, RC.
cli() {
    local profile=$1
    shift
    RC=0
    timeout 60 "$CLI" --server "$URL" --profile "$T/$profile" "$@" \
        >"$T/out" 2>"$T/err" || RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}

expect_rc() { # CODE WHAT
    [ "$RC" -eq "$1" ] || fail "$2: exit $RC, expected $1"
}

expect_err() { # TEXT WHAT
    grep -qF -- "$1" "$T/err" || fail "$2: stderr does not say '$1'"
}

# The string value of "$1" in the one JSON object on line $2 (default 1) of $T/out.
field() {
    sed -n "${2:-1}p" "$T/out" | grep -o "\"$1\": \"[^\"]*\"" | head -1 | sed 's/.*: "\(.*\)"/\1/'
}

# The number value of "$1" on line $2 (default 1) of $T/out.
number() {
    sed -n "${2:-1}p" "$T/out" | grep -o "\"$1\": [0-9]*" | head -1 | sed 's/.*: //'
}

# The number of lines in $T/out.
lines() {
    if [ -s "$T/out" ]; then wc -l <"$T/out"; else echo 0; fi
}

# The value of "code" in a --json invite answer.
invite_code() {
    sed -n 's/^{"code": "\([!-~]*\)", "expires_at": [0-9]*}$/\1/p' "$T/out"
}

register() { # PROFILE INVITER EMAIL ROLE NAME; sets ID
    cli "$2" --json invite --email "$3" --role "$4"
    expect_rc 0 "invite $1"
    local code
    code=$(invite_code)
    cli "$1" --json register --code "$code" --email "$3" --password-file "$T/$1.pw" \
        --birthdate 1980-05-06 --name "$5"
    expect_rc 0 "$1 registers"
    ID=$(field account_id)
    [[ "$ID" =~ ^[0-9a-f]{32}$ ]] || fail "$1: no account id"
}
