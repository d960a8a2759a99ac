/* server/metrics_test.c: unit tests for the counters and the Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "server/metrics.h"

static const char *test_body_name(unsigned number) {
    switch (number) {
    case 2:
        return "response";
    case 10:
        return "login";
    default:
        return NULL;
    }
}

static struct metrics *new_metrics(void) {
    struct metrics *m;
    assert_int_equal(metrics_new(&(struct metrics_config){.body_name = test_body_name}, &m), 0);
    return m;
}

/* The text of the sample line `name` (with labels), e.g. "x{a=\"b\"} 3". */
static void assert_sample(const struct buf *text, const char *line) {
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s\n", line);
    if (!strstr((const char *)text->data, needle))
        fail_msg("missing sample line: %s\n--- got ---\n%s", line, (const char *)text->data);
}

static void test_metrics_counts_and_renders(void **state) {
    struct metrics *m = new_metrics();
    metrics_conn_opened(m);
    metrics_conn_opened(m);
    metrics_conn_closed(m);
    metrics_conn_rejected(m, METRICS_REJECT_PER_IP);
    metrics_ws_opened(m);
    metrics_ws_closed_by_server(m, METRICS_CLOSE_TOO_LARGE);
    metrics_frame_in(m, 10);
    metrics_frame_in(m, 10);
    metrics_frame_in(m, METRICS_BODY_UNDECODABLE);
    metrics_frame_in(m, 77);   /* a number without a name */
    metrics_frame_in(m, 9999); /* out of range: undecodable */
    metrics_frame_out(m, 2);
    metrics_response(m, 8);
    metrics_response(m, 42); /* unknown: counted as internal */
    assert_int_equal(metrics_frames_in(m, 10), 2);
    assert_int_equal(metrics_connections_open(m), 1);

    struct buf out;
    buf_init(&out);
    metrics_render(m, NULL, 12345, &out);
    assert_non_null(strstr((char *)out.data, "# HELP carechat_connections_open "));
    assert_non_null(strstr((char *)out.data, "# TYPE carechat_connections_open gauge\n"));
    assert_non_null(strstr((char *)out.data, "# TYPE carechat_frames_received_total counter\n"));
    assert_sample(&out, "carechat_connections_open 1");
    assert_sample(&out, "carechat_connections_total 2");
    assert_sample(&out, "carechat_connections_rejected_total{reason=\"per_ip_limit\"} 1");
    assert_sample(&out, "carechat_websockets_open 1");
    assert_sample(&out, "carechat_websocket_server_closes_total{reason=\"message_too_large\"} 1");
    assert_sample(&out, "carechat_frames_received_total{body=\"login\"} 2");
    assert_sample(&out, "carechat_frames_received_total{body=\"undecodable\"} 2");
    assert_sample(&out, "carechat_frames_received_total{body=\"field_77\"} 1");
    assert_sample(&out, "carechat_frames_sent_total{body=\"response\"} 1");
    assert_sample(&out, "carechat_responses_total{status=\"unavailable\"} 1");
    assert_sample(&out, "carechat_responses_total{status=\"internal\"} 1");
    assert_sample(&out, "carechat_responses_total{status=\"ok\"} 0");
    assert_sample(&out, "carechat_store_size_bytes 12345");
    /* No journal yet: no journal families. */
    assert_null(strstr((char *)out.data, "carechat_journal_"));
    buf_cleanup(&out);
    metrics_free(m);
    metrics_free(NULL);
}

static void test_metrics_renders_journal_histograms(void **state) {
    struct metrics *m = new_metrics();
    struct journal_stats js = {
        .batches = 3,
        .entries = 7,
        .applied_pos = 7,
        .batch_size_buckets = {1, 1, 3, 3, 3, 3, 3, 3},
        .fsync_us_buckets = {0, 1, 2, 3, 3, 3, 3, 3, 3, 3},
        .fsync_us_sum = 1500250,
        .failed = 2,
    };
    struct buf out;
    buf_init(&out);
    metrics_render(m, &js, 0, &out);
    assert_non_null(strstr((char *)out.data, "# TYPE carechat_journal_batch_size histogram\n"));
    assert_non_null(strstr((char *)out.data, "# TYPE carechat_journal_fsync_seconds histogram\n"));
    assert_sample(&out, "carechat_journal_applied_position 7");
    assert_sample(&out, "carechat_journal_failed_entries_total 2");
    assert_sample(&out, "carechat_journal_batch_size_bucket{le=\"4\"} 3");
    assert_sample(&out, "carechat_journal_batch_size_bucket{le=\"+Inf\"} 3");
    assert_sample(&out, "carechat_journal_batch_size_sum 7");
    assert_sample(&out, "carechat_journal_batch_size_count 3");
    assert_sample(&out, "carechat_journal_fsync_seconds_bucket{le=\"0.00025\"} 1");
    assert_sample(&out, "carechat_journal_fsync_seconds_bucket{le=\"+Inf\"} 3");
    assert_sample(&out, "carechat_journal_fsync_seconds_sum 1.500250");
    assert_sample(&out, "carechat_journal_fsync_seconds_count 3");
    buf_cleanup(&out);
    metrics_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_counts_and_renders),
        cmocka_unit_test(test_metrics_renders_journal_histograms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
