#!/bin/bash
# tests/cli_profile_test.sh: where the CLI finds its server and profile
# (issue 13), with the real carechatd:
#   - login on a profile folder whose parents do not exist creates them
#     (0700) and remembers the server: later commands need no --server;
#   - $CARECHAT_SERVER and $CARECHAT_PROFILE are honoured;
#   - the configuration file ($CARECHAT_CONFIG) gives server and profile; a
#     bad line is refused with its number (exit 1, usage);
#   - --server beats what the profile remembers.
# HOME and XDG_CONFIG_HOME point into the test's directory. Everything runs on
# 127.0.0.1 under `timeout`.
set -euo pipefail

LIB="${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-carechat}/tests/lib.sh"
[ -f "$LIB" ] || LIB="$(dirname "$0")/lib.sh"
# shellcheck source=tests/lib.sh
. "$LIB"
lib_init cliprof

password_file root 'root-secret-passphrase'
bootstrap_root
start_server
URL="ws://127.0.0.1:$PORT"
export HOME="$T/home" XDG_CONFIG_HOME="$T/xdg"
unset CARECHAT_SERVER CARECHAT_PROFILE CARECHAT_CA_FILE CARECHAT_CONFIG

# Runs the CLI with exactly the given arguments; sets OUT, ERR, RC.
run() {
    RC=0
    timeout 60 "$CLI" "$@" >"$T/out" 2>"$T/err" || RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}

DEEP="$T/new/deeper/profile"
run --server "$URL" --profile "$DEEP" login --email root@clinic.example \
    --password-file "$T/root.pw"
expect_rc 0 "login on a profile whose parents do not exist"
[ "$(stat -c %a "$DEEP")" = 700 ] || fail "profile folder mode $(stat -c %a "$DEEP")"
[ "$(stat -c %a "$T/new/deeper")" = 700 ] || fail "parent folder mode"
grep -qx "server_url $URL" "$DEEP/profile" || fail "the profile does not remember the server"

run --profile "$DEEP" --json devices
expect_rc 0 "a command without --server uses the remembered server"
run --server "ws://127.0.0.1:1" --profile "$DEEP" devices
expect_rc 3 "--server beats the remembered server"

CARECHAT_SERVER="$URL" CARECHAT_PROFILE="$T/env" run login --email root@clinic.example \
    --password-file "$T/root.pw"
expect_rc 0 "login with CARECHAT_SERVER and CARECHAT_PROFILE"
[ -f "$T/env/profile" ] || fail "CARECHAT_PROFILE not used"

printf '# the clinic\nserver %s\nprofile %s\n' "$URL" "$T/conf" >"$T/config"
CARECHAT_CONFIG="$T/config" run login --email root@clinic.example --password-file "$T/root.pw"
expect_rc 0 "login with the configuration file"
[ -f "$T/conf/profile" ] || fail "the configuration file's profile not used"
mkdir -p "$XDG_CONFIG_HOME/carechat"
printf 'server %s\nprofile %s\n' "$URL" "$T/conf" >"$XDG_CONFIG_HOME/carechat/config"
run --json devices
expect_rc 0 "the configuration file in XDG_CONFIG_HOME"

printf 'server %s\nsevrer x\n' "$URL" >"$T/bad"
CARECHAT_CONFIG="$T/bad" run devices
expect_rc 1 "a bad configuration file"
expect_err "line 2: unknown setting" "a bad configuration file"
CARECHAT_CONFIG="$T/missing" run devices
expect_rc 1 "CARECHAT_CONFIG naming no file"
stop_server
echo PASS
