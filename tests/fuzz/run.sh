#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: builds the frame fuzzer (bazel --config=fuzz) and
# runs it for SECONDS (default 60) on a scratch copy of tests/fuzz/corpus/frame,
# so the checked-in corpus only changes when someone decides to add an input.
# Exits 0 when the run ended without a finding; otherwise non-zero, with the
# crashing input kept in $FUZZ_ARTIFACTS (default /tmp/carechat-fuzz-artifacts).
#
# Environment: BAZEL_OUTPUT_BASE (bazel --output_base, optional),
# FUZZ_MAX_LEN (largest generated input, default 32768 bytes).
set -euo pipefail

seconds=${1:-60}
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

startup=()
if [ -n "${BAZEL_OUTPUT_BASE:-}" ]; then
    startup=(--output_base="$BAZEL_OUTPUT_BASE")
fi
bazel "${startup[@]}" build --config=fuzz //tests/fuzz:frame_fuzzer
bin="$(bazel "${startup[@]}" info --config=fuzz bazel-bin 2>/dev/null)/tests/fuzz/frame_fuzzer"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r tests/fuzz/corpus/frame "$work/corpus"
artifacts=${FUZZ_ARTIFACTS:-/tmp/carechat-fuzz-artifacts}
mkdir -p "$artifacts"

# UBSan findings must stop the run like ASan's do. A decode under the default
# limits never needs a single allocation near 16 MB: anything bigger is a bug.
rc=0
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$bin" -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=16 -rss_limit_mb=2048 \
    -max_len="${FUZZ_MAX_LEN:-32768}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work/corpus" >"$work/log" 2>&1 || rc=$?

grep -E '^#[0-9]+.*(INITED|DONE)' "$work/log" || true
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
    "$work/log" || true
if [ "$rc" -ne 0 ]; then
    tail -n 60 "$work/log"
    echo "fuzz: FAILED (exit $rc); inputs kept in $artifacts" >&2
    exit 1
fi
echo "fuzz: ${seconds}s without a finding"
