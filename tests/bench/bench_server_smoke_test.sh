#!/bin/bash
# tests/bench/bench_server_smoke_test.sh: carechat-bench --mode server runs end
# to end with tiny counts (50 idle connections, a channel of 5 receiving
# members, 100 messages at saturation, 100 per paced run) against a carechatd
# it starts itself, and ends with the four figure lines of issue 14, each with
# a number.
set -u
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
bench="${root}/tests/bench/carechat-bench"
out="${TEST_TMPDIR}/bench-server.out"

timeout 50 "${bench}" --mode server --idle 50 --fanout 5 --messages 100 --pairs 2 \
    --fanout-messages 20 --paced 100 --timeout 40 \
    --carechatd "${root}/server/carechatd" >"${out}" 2>&1
rc=$?
cat "${out}"
if [ "${rc}" -ne 0 ]; then
    echo "FAIL: carechat-bench --mode server exited with ${rc}"
    exit 1
fi
# The last four lines, in this order, each NAME=number (a delta of RSS may
# be negative on a run this small).
names=(server_cpu_us_per_msg server_cpu_us_per_delivery idle_p99_ms kb_per_idle_conn)
mapfile -t last < <(tail -n 4 "${out}")
for i in 0 1 2 3; do
    re="^${names[$i]}=-?[0-9]+(\.[0-9]+)?$"
    if ! [[ "${last[$i]:-}" =~ ${re} ]]; then
        echo "FAIL: line $((i + 1)) of the last four is not ${names[$i]}=N: ${last[$i]:-}"
        exit 1
    fi
    if [ "$(grep -c "^${names[$i]}=" "${out}")" -ne 1 ]; then
        echo "FAIL: ${names[$i]}= is not there exactly once"
        exit 1
    fi
done
for phase in '^1:1 at saturation: 100 messages' '^fan-out 1 -> 5 members' \
    '^idle connections: 50,' '^paced, with 50 idle connections open'; do
    if ! grep -q "${phase}" "${out}"; then
        echo "FAIL: no phase matching ${phase}"
        exit 1
    fi
done
if [ "$(grep -c '^  group commit: [0-9]* entries in [1-9][0-9]* synced batches' "${out}")" -lt 5 ]; then
    echo "FAIL: a phase has no group-commit figures"
    exit 1
fi
echo "PASS"
