/*
 * server/metrics.c: atomic counters and their Prometheus text rendering.
 *
 * Every counter is a relaxed atomic: they are statistics, not synchronisation.
 * Gauges (open connections) are counters that also go down. Any thread.
 */
#include "server/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/status.h"

#define N_STATUS 10

struct metrics {
    const char *(*body_name)(unsigned number);
    _Atomic uint64_t conns_open;
    _Atomic uint64_t conns_total;
    _Atomic uint64_t ws_now_open;
    _Atomic uint64_t ws_total;
    _Atomic uint64_t rejected[METRICS_REJECT_COUNT];
    _Atomic uint64_t closed_by_server[METRICS_CLOSE_COUNT];
    _Atomic uint64_t frames_in[METRICS_MAX_BODY + 1];
    _Atomic uint64_t frames_out[METRICS_MAX_BODY + 1];
    _Atomic uint64_t responses[N_STATUS];
};

static const char *const reject_names[METRICS_REJECT_COUNT] = {
    [METRICS_REJECT_PER_IP] = "per_ip_limit",       [METRICS_REJECT_ORIGIN] = "origin",
    [METRICS_REJECT_PROTOCOL] = "subprotocol",      [METRICS_REJECT_SHUTDOWN] = "shutting_down",
    [METRICS_REJECT_HEADERS] = "headers_too_large",
};

static const char *const close_names[METRICS_CLOSE_COUNT] = {
    [METRICS_CLOSE_TOO_LARGE] = "message_too_large",
    [METRICS_CLOSE_TEXT] = "text_message",
    [METRICS_CLOSE_AUTH_TIMEOUT] = "auth_timeout",
    [METRICS_CLOSE_BAD_FRAMES] = "bad_frames",
    [METRICS_CLOSE_SEND_QUEUE] = "send_queue_full",
    [METRICS_CLOSE_SHUTDOWN] = "shutdown",
    [METRICS_CLOSE_LOGOUT] = "logout",
    [METRICS_CLOSE_REPLACED] = "replaced",
    [METRICS_CLOSE_REVOKED] = "session_revoked",
    [METRICS_CLOSE_BAD_CLOSE] = "bad_close_frame",
};

/* Lower-case wire status names, in carechat.proto's order. */
static const char *const status_names[N_STATUS] = {
    "ok",       "bad_request", "unauthenticated", "forbidden",   "not_found",
    "conflict", "too_large",   "rate_limited",    "unavailable", "internal",
};

static void inc(_Atomic uint64_t *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void dec(_Atomic uint64_t *c) {
    atomic_fetch_sub_explicit(c, 1, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

int metrics_new(const struct metrics_config *cfg, struct metrics **out) {
    struct metrics *m = xcalloc(1, sizeof *m);
    m->body_name = cfg->body_name;
    *out = m;
    return STATUS_OK;
}

void metrics_free(struct metrics *m) {
    free(m);
}

void metrics_conn_opened(struct metrics *m) {
    inc(&m->conns_open);
    inc(&m->conns_total);
}

void metrics_conn_closed(struct metrics *m) {
    dec(&m->conns_open);
}

void metrics_ws_opened(struct metrics *m) {
    inc(&m->ws_now_open);
    inc(&m->ws_total);
}

void metrics_ws_closed(struct metrics *m) {
    dec(&m->ws_now_open);
}

void metrics_conn_rejected(struct metrics *m, enum metrics_reject reason) {
    if ((unsigned)reason < METRICS_REJECT_COUNT)
        inc(&m->rejected[reason]);
}

void metrics_ws_closed_by_server(struct metrics *m, enum metrics_close reason) {
    if ((unsigned)reason < METRICS_CLOSE_COUNT)
        inc(&m->closed_by_server[reason]);
}

static unsigned body_index(unsigned number) {
    return number <= METRICS_MAX_BODY ? number : METRICS_BODY_UNDECODABLE;
}

void metrics_frame_in(struct metrics *m, unsigned number) {
    inc(&m->frames_in[body_index(number)]);
}

void metrics_frame_out(struct metrics *m, unsigned number) {
    inc(&m->frames_out[body_index(number)]);
}

void metrics_response(struct metrics *m, int wire_status) {
    if (wire_status < 0 || wire_status >= N_STATUS)
        wire_status = N_STATUS - 1;
    inc(&m->responses[wire_status]);
}

uint64_t metrics_frames_in(struct metrics *m, unsigned number) {
    return get(&m->frames_in[body_index(number)]);
}

uint64_t metrics_connections_open(struct metrics *m) {
    return get(&m->conns_open);
}

static void family(struct buf *out, const char *name, const char *type, const char *help) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct buf *out, const char *name, uint64_t v) {
    buf_printf(out, "%s %" PRIu64 "\n", name, v);
}

static void render_bodies(struct metrics *m, _Atomic uint64_t *counts, const char *name,
                          struct buf *out) {
    for (unsigned i = 0; i <= METRICS_MAX_BODY; i++) {
        uint64_t v = get(&counts[i]);
        if (v == 0)
            continue;
        const char *body = i == METRICS_BODY_UNDECODABLE ? "undecodable" : m->body_name(i);
        if (body)
            buf_printf(out, "%s{body=\"%s\"} %" PRIu64 "\n", name, body, v);
        else
            buf_printf(out, "%s{body=\"field_%u\"} %" PRIu64 "\n", name, i, v);
    }
}

static void render_journal(const struct journal_stats *js, struct buf *out) {
    static const char *const batch_le[8] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};
    static const char *const fsync_le[10] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                             "0.005",  "0.01",    "0.025",  "0.1",   "+Inf"};
    family(out, "carechat_journal_applied_position", "gauge",
           "Journal position of the last durable entry.");
    sample(out, "carechat_journal_applied_position", js->applied_pos);
    family(out, "carechat_journal_entries_total", "counter", "Entries written by the journal.");
    sample(out, "carechat_journal_entries_total", js->entries);
    family(out, "carechat_journal_failed_entries_total", "counter",
           "Entries not written: refused (disk reserve, queue full) or failed (I/O).");
    sample(out, "carechat_journal_failed_entries_total", js->failed);
    family(out, "carechat_journal_batch_size", "histogram",
           "Entries per synced write batch (group commit).");
    for (int i = 0; i < 8; i++)
        buf_printf(out, "carechat_journal_batch_size_bucket{le=\"%s\"} %" PRIu64 "\n", batch_le[i],
                   js->batch_size_buckets[i]);
    sample(out, "carechat_journal_batch_size_sum", js->entries);
    sample(out, "carechat_journal_batch_size_count", js->batches);
    family(out, "carechat_journal_fsync_seconds", "histogram",
           "Latency of the synced write of one batch.");
    for (int i = 0; i < 10; i++)
        buf_printf(out, "carechat_journal_fsync_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
                   fsync_le[i], js->fsync_us_buckets[i]);
    buf_printf(out, "carechat_journal_fsync_seconds_sum %" PRIu64 ".%06" PRIu64 "\n",
               js->fsync_us_sum / 1000000, js->fsync_us_sum % 1000000);
    sample(out, "carechat_journal_fsync_seconds_count", js->fsync_us_buckets[9]);
}

void metrics_render(struct metrics *m, const struct journal_stats *journal, uint64_t store_bytes,
                    struct buf *out) {
    family(out, "carechat_connections_open", "gauge", "Open TCP connections (HTTP and WebSocket).");
    sample(out, "carechat_connections_open", get(&m->conns_open));
    family(out, "carechat_connections_total", "counter", "TCP connections accepted.");
    sample(out, "carechat_connections_total", get(&m->conns_total));
    family(out, "carechat_connections_rejected_total", "counter",
           "Connections refused before their first frame, by reason.");
    for (int i = 0; i < METRICS_REJECT_COUNT; i++)
        buf_printf(out, "carechat_connections_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
                   reject_names[i], get(&m->rejected[i]));
    family(out, "carechat_websockets_open", "gauge", "Open WebSocket sessions.");
    sample(out, "carechat_websockets_open", get(&m->ws_now_open));
    family(out, "carechat_websockets_total", "counter", "WebSocket sessions opened.");
    sample(out, "carechat_websockets_total", get(&m->ws_total));
    family(out, "carechat_websocket_server_closes_total", "counter",
           "WebSockets the server closed, by reason.");
    for (int i = 0; i < METRICS_CLOSE_COUNT; i++)
        buf_printf(out, "carechat_websocket_server_closes_total{reason=\"%s\"} %" PRIu64 "\n",
                   close_names[i], get(&m->closed_by_server[i]));
    family(out, "carechat_frames_received_total", "counter", "Frames received, by body type.");
    render_bodies(m, m->frames_in, "carechat_frames_received_total", out);
    family(out, "carechat_frames_sent_total", "counter", "Frames sent, by body type.");
    render_bodies(m, m->frames_out, "carechat_frames_sent_total", out);
    family(out, "carechat_responses_total", "counter", "Responses sent, by status.");
    for (int i = 0; i < N_STATUS; i++)
        buf_printf(out, "carechat_responses_total{status=\"%s\"} %" PRIu64 "\n", status_names[i],
                   get(&m->responses[i]));
    if (journal)
        render_journal(journal, out);
    family(out, "carechat_store_size_bytes", "gauge", "Estimated bytes of live data in RocksDB.");
    sample(out, "carechat_store_size_bytes", store_bytes);
}

void metrics_render_retention(const struct metrics_retention *r, struct buf *out) {
    family(out, "carechat_maintenance_passes_total", "counter", "Maintenance passes completed.");
    sample(out, "carechat_maintenance_passes_total", r->passes);
    family(out, "carechat_maintenance_last_pass_seconds", "gauge",
           "Wall time of the last completed maintenance pass (0: none yet).");
    sample(out, "carechat_maintenance_last_pass_seconds", (uint64_t)(r->last_pass_ms / 1000));
    family(out, "carechat_retention_transitions_total", "counter",
           "Accounts moved on by the retention clock, by the state entered.");
    buf_printf(out, "carechat_retention_transitions_total{state=\"restricted\"} %" PRIu64 "\n",
               r->restricted);
    buf_printf(out, "carechat_retention_transitions_total{state=\"purged\"} %" PRIu64 "\n",
               r->purged);
    family(out, "carechat_retention_keys_destroyed_total", "counter",
           "Data keys of purged accounts destroyed (crypto-shredding).");
    sample(out, "carechat_retention_keys_destroyed_total", r->keys_destroyed);
    family(out, "carechat_retention_compactions_total", "counter",
           "Full compactions run after a purge.");
    sample(out, "carechat_retention_compactions_total", r->compactions);
    family(out, "carechat_maintenance_swept_total", "counter",
           "Expired records deleted by the maintenance, by kind.");
    buf_printf(out, "carechat_maintenance_swept_total{kind=\"invitation\"} %" PRIu64 "\n",
               r->swept_invites);
    buf_printf(out, "carechat_maintenance_swept_total{kind=\"session\"} %" PRIu64 "\n",
               r->swept_sessions);
    family(out, "carechat_breach_notices_overdue", "gauge",
           "Breach notices not sent by their deadline (7 business days), at the last pass.");
    sample(out, "carechat_breach_notices_overdue", r->breach_overdue);
    family(out, "carechat_maintenance_failures_total", "counter",
           "Maintenance steps that failed and will be retried on the next pass.");
    sample(out, "carechat_maintenance_failures_total", r->failures);
}
