#!/bin/bash
# tests/bench/bench_smoke_test.sh: carechat-bench runs end to end (2 senders x 20
# messages of 512 bytes against a carechatd it starts itself) and ends with the
# figures line, every number above zero.
set -u
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
bench="${root}/tests/bench/carechat-bench"
out="${TEST_TMPDIR}/bench.out"

timeout 60 "${bench}" --senders 2 --messages 20 --size 512 --timeout 45 \
    --carechatd "${root}/server/carechatd" >"${out}" 2>&1
rc=$?
cat "${out}"
if [ "${rc}" -ne 0 ]; then
    echo "FAIL: carechat-bench exited with ${rc}"
    exit 1
fi
last=$(tail -n 1 "${out}")
re='^send_ack_msgs_per_s=([0-9.]+) p50_ms=([0-9.]+) p99_ms=([0-9.]+) deliveries_per_s=([0-9.]+)$'
if ! [[ "${last}" =~ ${re} ]]; then
    echo "FAIL: the last line is not the figures line: ${last}"
    exit 1
fi
if [ "$(grep -c '^send_ack_msgs_per_s=' "${out}")" -ne 1 ]; then
    echo "FAIL: the figures line is not there exactly once"
    exit 1
fi
for i in 1 2 3 4; do
    v="${BASH_REMATCH[$i]}"
    if ! awk -v v="${v}" 'BEGIN { exit !(v > 0) }'; then
        echo "FAIL: figure ${i} is not above zero: ${last}"
        exit 1
    fi
done
if ! grep -q '^journal batches during the run: [0-9]* entries in [1-9][0-9]* synced batches' "${out}"; then
    echo "FAIL: no group-commit batch figures"
    exit 1
fi
if ! grep -q '^server RSS: [0-9.]* MiB' "${out}"; then
    echo "FAIL: no server RSS"
    exit 1
fi
echo "PASS"
