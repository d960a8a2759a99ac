#!/usr/bin/env bash
# bazel/test.sh: the README's test command. Installs what is missing, runs every
# test plainly and again under AddressSanitizer + UndefinedBehaviorSanitizer,
# builds the libFuzzer target and fuzzes the frame decoder briefly, then prints
# one line "N passed, N failed" derived from Bazel's results. Exits non-zero when
# anything failed.
#
# Environment: FUZZ_SECONDS (default 20; 0 skips the fuzz run).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/bazel/setup.sh" || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

node_modules="$root/tests/node_modules"
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs `bazel test` with the given flags over every target and adds its per-test
# results to the totals. A build that fails before any test ran counts as one
# failure, so a broken build can never look green.
run_suite() {
    local name=$1
    shift
    echo "== bazel test $* //... ($name)"
    bazel test --keep_going --test_env=CARECHAT_NODE_MODULES="$node_modules" "$@" //... 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local p f
    p=$(grep -E '^//[^ ]+ +(\(cached\) )?PASSED' "$log" | wc -l)
    f=$(grep -E '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE|FAILED TO BUILD)' "$log" | wc -l)
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "bazel exited $rc without a failing test line ($name): counted as one failure"
        f=1
    fi
    echo "-- $name: $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))
}

run_suite plain
run_suite asan --config=asan

fuzz_seconds=${FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" -gt 0 ] && [ -x tests/fuzz/run.sh ]; then
    echo "== fuzz the frame decoder for ${fuzz_seconds}s"
    if tests/fuzz/run.sh "$fuzz_seconds"; then
        passed=$((passed + 1))
    else
        echo "-- fuzz: FAILED"
        failed=$((failed + 1))
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
