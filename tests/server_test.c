/*
 * tests/server_test.c: integration tests against the real carechatd binary:
 * HTTP endpoints (on the metrics listener only), the WebSocket handshake and its limits
 * (refusals answered 400, 403, 414 or 431), close frames (bad ones get 1002), the
 * session's answers to requests and garbage, the authentication deadline, keepalive
 * (pings, hang-up of silent peers, frames as traffic), the per-address cap,
 * clean stop and restart, and the refusal to serve plaintext off loopback.
 * (TLS is covered by tls_test.sh.)
 *
 * Most tests share one server started in the group setup with
 *   --auth-timeout 2 --max-frame 4096 --allowed-origin https://app.example
 * and measure differences, so they do not depend on each other's order; tests
 * that need other flags start their own. Everything is on 127.0.0.x, and every
 * wait has a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "tests/harness.h"
#include "tests/wsclient.h"

#define TIMEOUT_MS 5000
#define SUBPROTOCOL "carechat.v1"
#define ALLOWED_ORIGIN "https://app.example"

static struct harness *shared; /* the group's server */

static int group_setup(void **state) {
    const char *args[] = {"--auth-timeout", "2", "--max-frame", "4096", "--allowed-origin",
                          ALLOWED_ORIGIN,   NULL};
    return harness_start(args, &shared);
}

static int group_teardown(void **state) {
    int status = -1;
    int rc = harness_stop(shared, &status);
    harness_free(shared);
    return rc == 0 && status == 0 ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------- */

static struct wsc *open_session(struct harness *h) {
    struct wsc *c = NULL;
    struct wsc_options o = {.host = h->host, .subprotocol = SUBPROTOCOL};
    char status[128];
    assert_int_equal(wsc_connect(h->port, &o, status, sizeof status, &c), 101);
    assert_string_equal(wsc_subprotocol(c), SUBPROTOCOL);
    return c;
}

/* Sends a request with an empty body of `body` (login or list_conversations). */
static void send_request(struct wsc *c, uint64_t request_id, Carechat__V1__Frame__BodyCase body) {
    Carechat__V1__Frame frame;
    Carechat__V1__Login login;
    Carechat__V1__ListConversations list;
    carechat__v1__frame__init(&frame);
    carechat__v1__login__init(&login);
    carechat__v1__list_conversations__init(&list);
    frame.request_id = request_id;
    frame.body_case = body;
    if (body == CARECHAT__V1__FRAME__BODY_LOGIN)
        frame.login = &login;
    else
        frame.list_conversations = &list;
    struct buf out;
    buf_init(&out);
    assert_int_equal(proto_encode(&frame, &out), 0);
    assert_int_equal(wsc_send_binary(c, out.data, out.len), 0);
    buf_cleanup(&out);
}

/* Receives one message and checks it is a binary Response to `request_id` with
 * `status`; copies its detail into detail_out when given. */
static void expect_response(struct wsc *c, uint64_t request_id, int status, char *detail_out,
                            size_t detail_len) {
    int op, close_code;
    struct buf payload;
    buf_init(&payload);
    int rc = wsc_recv(c, TIMEOUT_MS, &op, &payload, &close_code);
    if (rc != 0 || op != WSC_OP_BINARY)
        fail_msg("expected a response to %llu, got rc %d op %d close %d",
                 (unsigned long long)request_id, rc, op, close_code);
    Carechat__V1__Frame *frame = NULL;
    assert_int_equal(proto_decode(NULL, payload.data, payload.len, &frame), 0);
    assert_int_equal(frame->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    assert_true(frame->request_id == request_id);
    assert_int_equal(frame->response->status, status_wire(status));
    if (detail_out)
        snprintf(detail_out, detail_len, "%s", frame->response->detail);
    proto_free(frame);
    buf_cleanup(&payload);
}

/* Nothing arrives within `ms`. */
static void expect_silence(struct wsc *c, int ms) {
    int op, close_code;
    struct buf payload;
    buf_init(&payload);
    assert_int_equal(wsc_recv(c, ms, &op, &payload, &close_code), STATUS_UNAVAILABLE);
    buf_cleanup(&payload);
}

static void expect_close(struct wsc *c, int code) {
    int got = 0;
    assert_int_equal(wsc_wait_close(c, TIMEOUT_MS, &got), 0);
    assert_int_equal(got, code);
}

/* GET `path` from the metrics listener (metrics) or the public one. */
static int get_from(struct harness *h, bool metrics, const char *path, struct buf *headers,
                    struct buf *body) {
    int status = 0;
    assert_int_equal(http_get(metrics ? h->metrics_host : h->host,
                              metrics ? h->metrics_port : h->port, path, TIMEOUT_MS, &status,
                              headers, body),
                     0);
    return status;
}

static int get(struct harness *h, const char *path, struct buf *headers, struct buf *body) {
    return get_from(h, true, path, headers, body);
}

/* The value of the Prometheus sample `name` (with its labels), or -1. */
static long long metric(struct harness *h, const char *name) {
    struct buf body;
    buf_init(&body);
    assert_int_equal(get(h, "/metrics", NULL, &body), 200);
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s ", name);
    const char *p = strstr((const char *)body.data, needle);
    long long v = p ? strtoll(p + strlen(needle), NULL, 10) : -1;
    buf_cleanup(&body);
    return v;
}

static bool contains_nocase(const char *haystack, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = haystack; *p; p++) {
        if (strncasecmp(p, needle, n) == 0)
            return true;
    }
    return false;
}

/* Reads "server_id" and "applied_pos" from /healthz. */
static void health(struct harness *h, char id[33], long long *applied_pos) {
    struct buf headers, body;
    buf_init(&headers);
    buf_init(&body);
    assert_int_equal(get(h, "/healthz", &headers, &body), 200);
    assert_true(contains_nocase((const char *)headers.data, "content-type: application/json"));
    const char *s = strstr((const char *)body.data, "\"server_id\":\"");
    assert_non_null(s);
    memcpy(id, s + 13, 32);
    id[32] = '\0';
    assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    const char *p = strstr((const char *)body.data, "\"applied_pos\":");
    assert_non_null(p);
    *applied_pos = strtoll(p + 14, NULL, 10);
    assert_non_null(strstr((const char *)body.data, "\"status\":\"ok\""));
    buf_cleanup(&headers);
    buf_cleanup(&body);
}

/* ---- HTTP ---------------------------------------------------------------- */

static void test_server_healthz_is_json_with_identity(void **state) {
    char id[33];
    long long pos;
    health(shared, id, &pos);
    assert_true(pos >= 1); /* ServerInit was applied before listening */
    struct buf body;
    buf_init(&body);
    assert_int_equal(get(shared, "/nowhere", NULL, &body), 404);
    assert_int_equal(get(shared, "/healthz/x", NULL, NULL), 404);
    buf_cleanup(&body);
}

/* /metrics and /healthz are unauthenticated: served on the metrics listener
 * only, the public listener answers them 404 (and everything else too). */
static void test_server_metrics_only_on_their_listener(void **state) {
    static const char *const paths[] = {"/metrics", "/healthz", "/"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct buf body;
        buf_init(&body);
        int status = get_from(shared, false, paths[i], NULL, &body);
        if (status != 404)
            fail_msg("GET %s on the public listener: %d", paths[i], status);
        assert_null(strstr(body.data ? (const char *)body.data : "", "carechat_"));
        buf_cleanup(&body);
    }
    assert_int_not_equal(shared->port, shared->metrics_port);
    assert_true(harness_log_contains(shared, "metrics listening on 127.0.0.1:"));
    struct buf body;
    buf_init(&body);
    assert_int_equal(get(shared, "/metrics", NULL, &body), 200);
    assert_non_null(strstr((const char *)body.data, "# TYPE carechat_responses_total"));
    buf_reset(&body);
    assert_int_equal(get(shared, "/healthz", NULL, &body), 200);
    assert_non_null(strstr((const char *)body.data, "\"server_id\""));
    buf_cleanup(&body);
    assert_int_equal(get(shared, "/", NULL, NULL), 404);
}

static void test_server_metrics_count_frames(void **state) {
    static const char *const families[] = {
        "carechat_connections_open",
        "carechat_connections_total",
        "carechat_connections_rejected_total",
        "carechat_websockets_open",
        "carechat_responses_total",
        "carechat_frames_received_total",
        "carechat_journal_batch_size",
        "carechat_journal_fsync_seconds",
        "carechat_store_size_bytes",
    };
    struct buf body;
    buf_init(&body);
    assert_int_equal(get(shared, "/metrics", NULL, &body), 200);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char type[128];
        snprintf(type, sizeof type, "# TYPE %s ", families[i]);
        if (!strstr((const char *)body.data, type))
            fail_msg("/metrics lacks %s", type);
    }
    assert_non_null(
        strstr((const char *)body.data, "# TYPE carechat_journal_fsync_seconds histogram"));
    assert_non_null(strstr((const char *)body.data, "carechat_journal_fsync_seconds_bucket{le="));
    buf_cleanup(&body);

    const char *login = "carechat_frames_received_total{body=\"login\"}";
    const char *bad_request = "carechat_responses_total{status=\"bad_request\"}";
    long long logins = metric(shared, login);
    long long bad_requests = metric(shared, bad_request);
    if (logins < 0)
        logins = 0; /* not yet rendered: no login received so far */
    struct wsc *c = open_session(shared);
    for (uint64_t id = 1; id <= 3; id++) {
        send_request(c, id, CARECHAT__V1__FRAME__BODY_LOGIN);
        expect_response(c, id, STATUS_BAD_REQUEST, NULL, 0);
    }
    assert_int_equal(metric(shared, login), logins + 3);
    assert_int_equal(metric(shared, bad_request), bad_requests + 3);
    assert_true(metric(shared, "carechat_websockets_open") >= 1);
    wsc_free(c);
}

/* ---- handshake ------------------------------------------------------------ */

static void test_server_handshake_needs_carechat_subprotocol(void **state) {
    struct wsc *c = NULL;
    char status[128];
    struct wsc_options ok = {.subprotocol = SUBPROTOCOL};
    assert_int_equal(wsc_connect(shared->port, &ok, status, sizeof status, &c), 101);
    assert_string_equal(wsc_subprotocol(c), SUBPROTOCOL);
    wsc_free(c);

    /* lws binds the first protocol of the list it knows: "http" would be its
     * HTTP protocol, so carechat.v1 must come first of the two. */
    static const char *const refused[] = {NULL, "chat", "http", "carechat.v2", "http, carechat.v1",
                                          ""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        struct wsc_options o = {.subprotocol = refused[i]};
        c = NULL;
        int rc = wsc_connect(shared->port, &o, status, sizeof status, &c);
        if (rc != 400)
            fail_msg("subprotocol %s: %d (%s), expected 400", refused[i] ? refused[i] : "(none)",
                     rc, status);
        assert_null(c);
    }
    struct wsc_options second = {.subprotocol = "chat, carechat.v1"};
    assert_int_equal(wsc_connect(shared->port, &second, status, sizeof status, &c), 101);
    assert_string_equal(wsc_subprotocol(c), SUBPROTOCOL);
    wsc_free(c);
}

static void test_server_origin_allow_list(void **state) {
    struct wsc *c = NULL;
    char status[128];
    long long refused = metric(shared, "carechat_connections_rejected_total{reason=\"origin\"}");
    struct wsc_options allowed = {.subprotocol = SUBPROTOCOL, .origin = ALLOWED_ORIGIN};
    assert_int_equal(wsc_connect(shared->port, &allowed, status, sizeof status, &c), 101);
    wsc_free(c);
    /* Native apps send no Origin. */
    struct wsc_options native = {.subprotocol = SUBPROTOCOL};
    c = NULL;
    assert_int_equal(wsc_connect(shared->port, &native, status, sizeof status, &c), 101);
    wsc_free(c);
    static const char *const bad[] = {"https://evil.example", "http://app.example",
                                      "https://app.example:8443", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct wsc_options o = {.subprotocol = SUBPROTOCOL, .origin = bad[i]};
        c = NULL;
        int rc = wsc_connect(shared->port, &o, status, sizeof status, &c);
        if (rc != 403)
            fail_msg("Origin %s: %d (%s), expected 403", bad[i], rc, status);
        assert_null(c);
    }
    assert_int_equal(metric(shared, "carechat_connections_rejected_total{reason=\"origin\"}"),
                     refused + 4);
}

static void test_server_too_large_headers_get_431(void **state) {
    long long refused =
        metric(shared, "carechat_connections_rejected_total{reason=\"headers_too_large\"}");
    struct buf extra;
    buf_init(&extra);
    /* one header of 5000 bytes; three of 3000 (9000 in all) */
    buf_printf(&extra, "Cookie: ");
    for (int i = 0; i < 5000; i++)
        buf_append_u8(&extra, 'a');
    buf_printf(&extra, "\r\n");
    buf_append_u8(&extra, 0);
    struct wsc *c = NULL;
    char status[128];
    struct wsc_options big = {.subprotocol = SUBPROTOCOL, .extra = (const char *)extra.data};
    assert_int_equal(wsc_connect(shared->port, &big, status, sizeof status, &c), 431);
    assert_null(c);
    buf_reset(&extra);
    for (int k = 0; k < 3; k++) {
        buf_printf(&extra, "Cookie: c%d=", k);
        for (int i = 0; i < 3000; i++)
            buf_append_u8(&extra, 'b');
        buf_printf(&extra, "\r\n");
    }
    buf_append_u8(&extra, 0);
    big.extra = (const char *)extra.data;
    assert_int_equal(wsc_connect(shared->port, &big, status, sizeof status, &c), 431);
    assert_null(c);
    /* a URI of 5000 bytes */
    buf_reset(&extra);
    buf_printf(&extra, "/");
    for (int i = 0; i < 5000; i++)
        buf_append_u8(&extra, 'u');
    buf_append_u8(&extra, 0);
    struct wsc_options long_uri = {.subprotocol = SUBPROTOCOL, .path = (const char *)extra.data};
    assert_int_equal(wsc_connect(shared->port, &long_uri, status, sizeof status, &c), 414);
    assert_null(c);
    buf_cleanup(&extra);
    /* within the limits it is served */
    struct wsc_options fine = {.subprotocol = SUBPROTOCOL, .extra = "Cookie: small=1\r\n"};
    assert_int_equal(wsc_connect(shared->port, &fine, status, sizeof status, &c), 101);
    wsc_free(c);
    assert_int_equal(
        metric(shared, "carechat_connections_rejected_total{reason=\"headers_too_large\"}"),
        (refused < 0 ? 0 : refused) + 3);
}

/* ---- message limits -------------------------------------------------------- */

static void test_server_oversized_message_closes_1009(void **state) {
    static uint8_t big[5000];
    memset(big, 0x41, sizeof big);
    /* One frame over --max-frame 4096. */
    struct wsc *c = open_session(shared);
    assert_int_equal(wsc_send_binary(c, big, sizeof big), 0);
    expect_close(c, 1009);
    wsc_free(c);
    /* Fragments that are small alone but 6000 bytes together. */
    c = open_session(shared);
    assert_int_equal(wsc_send_frame(c, WSC_OP_BINARY, false, true, big, 2000), 0);
    assert_int_equal(wsc_send_frame(c, WSC_OP_CONTINUATION, false, true, big, 2000), 0);
    assert_int_equal(wsc_send_frame(c, WSC_OP_CONTINUATION, true, true, big, 2000), 0);
    expect_close(c, 1009);
    wsc_free(c);
    /* The server still serves others. */
    c = open_session(shared);
    send_request(c, 5, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(c, 5, STATUS_BAD_REQUEST, NULL, 0);
    wsc_free(c);
}

static void test_server_fragmented_message_within_limit_is_served(void **state) {
    Carechat__V1__Frame frame;
    Carechat__V1__Login login;
    carechat__v1__frame__init(&frame);
    carechat__v1__login__init(&login);
    frame.request_id = 44;
    frame.body_case = CARECHAT__V1__FRAME__BODY_LOGIN;
    frame.login = &login;
    struct buf out;
    buf_init(&out);
    assert_int_equal(proto_encode(&frame, &out), 0);
    assert_true(out.len >= 2);
    struct wsc *c = open_session(shared);
    assert_int_equal(wsc_send_frame(c, WSC_OP_BINARY, false, true, out.data, 1), 0);
    assert_int_equal(wsc_send_frame(c, WSC_OP_CONTINUATION, true, true, out.data + 1, out.len - 1),
                     0);
    expect_response(c, 44, STATUS_BAD_REQUEST, NULL, 0);
    buf_cleanup(&out);
    wsc_free(c);
}

/* A close frame the peer may not send (RFC 6455 sections 5.5.1 and 7.4) is
 * answered with 1002; an allowed one is echoed. */
static void test_server_bad_close_frames_get_1002(void **state) {
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    enum { N_BAD = sizeof bad / sizeof bad[0] };
    for (size_t i = 0; i <= N_BAD; i++) {
        struct wsc *c = open_session(shared);
        unsigned code_sent = i < N_BAD ? bad[i] : 1000;
        uint8_t body[2] = {(uint8_t)(code_sent >> 8), (uint8_t)code_sent};
        /* the last round: a body of one byte */
        size_t len = i < N_BAD ? 2 : 1;
        assert_int_equal(wsc_send_frame(c, WSC_OP_CLOSE, true, true, body, len), 0);
        int code = 0;
        assert_int_equal(wsc_wait_close(c, TIMEOUT_MS, &code), 0);
        if (code != 1002)
            fail_msg("a close frame %s %u: answered %d, expected 1002",
                     len == 2 ? "with code" : "of one byte,", len == 2 ? code_sent : body[0], code);
        wsc_free(c);
    }
    static const unsigned good[] = {1000, 1001, 1003, 1007, 1011, 3000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct wsc *c = open_session(shared);
        uint8_t body[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        assert_int_equal(wsc_send_frame(c, WSC_OP_CLOSE, true, true, body, 2), 0);
        int code = 0;
        assert_int_equal(wsc_wait_close(c, TIMEOUT_MS, &code), 0);
        if (code != (int)good[i])
            fail_msg("a close frame with code %u: answered %d", good[i], code);
        wsc_free(c);
    }
}

static void test_server_text_message_closes_1003(void **state) {
    struct wsc *c = open_session(shared);
    assert_int_equal(wsc_send_frame(c, WSC_OP_TEXT, true, true, "hello", 5), 0);
    expect_close(c, 1003);
    wsc_free(c);
}

/* ---- sessions ---------------------------------------------------------------- */

static void test_server_login_gets_a_clear_status(void **state) {
    struct wsc *c = open_session(shared);
    char detail[300];
    send_request(c, 1, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(c, 1, STATUS_BAD_REQUEST, detail, sizeof detail);
    assert_string_equal(detail, "email, password and device required");
    wsc_free(c);
}

static void test_server_request_before_auth_is_unauthenticated(void **state) {
    struct wsc *c = open_session(shared);
    send_request(c, 9, CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS);
    expect_response(c, 9, STATUS_UNAUTHENTICATED, NULL, 0);
    wsc_free(c);
}

static void test_server_garbage_gets_bad_request_and_no_crash(void **state) {
    struct wsc *c = open_session(shared);
    /* request_id 31, then bytes that are no protobuf. */
    static const uint8_t readable_id[] = {0x08, 31, 0xff, 0xff, 0xff, 0x07};
    assert_int_equal(wsc_send_binary(c, readable_id, sizeof readable_id), 0);
    expect_response(c, 31, STATUS_BAD_REQUEST, NULL, 0);
    /* No request id to answer: no response, and the session lives on. */
    static const uint8_t noise[] = {0xde, 0xad, 0xbe, 0xef};
    assert_int_equal(wsc_send_binary(c, noise, sizeof noise), 0);
    expect_silence(c, 300);
    send_request(c, 32, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(c, 32, STATUS_BAD_REQUEST, NULL, 0);
    /* An unmasked frame (lws accepts it) that is garbage too. */
    assert_int_equal(wsc_send_frame(c, WSC_OP_BINARY, true, false, readable_id, sizeof readable_id),
                     0);
    expect_response(c, 31, STATUS_BAD_REQUEST, NULL, 0);
    wsc_free(c);

    /* Ten undecodable messages in a row: closed with 1002. */
    c = open_session(shared);
    for (int i = 0; i < 10; i++)
        assert_int_equal(wsc_send_binary(c, noise, sizeof noise), 0);
    expect_close(c, 1002);
    wsc_free(c);

    /* Raw bytes that are not even a WebSocket frame (reserved opcode). */
    c = open_session(shared);
    static const uint8_t bad_frame[] = {0x83, 0x80, 0, 0, 0, 0};
    assert_int_equal(wsc_send_raw(c, bad_frame, sizeof bad_frame), 0);
    expect_close(c, 1002);
    wsc_free(c);

    char id[33];
    long long pos;
    health(shared, id, &pos);
}

static void test_server_closes_unauthenticated_at_deadline(void **state) {
    struct wsc *c = open_session(shared);
    int64_t t0 = clock_monotonic_ms();
    /* A request does not extend the deadline. */
    send_request(c, 2, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(c, 2, STATUS_BAD_REQUEST, NULL, 0);
    int code = 0;
    assert_int_equal(wsc_wait_close(c, 6000, &code), 0);
    int64_t elapsed = clock_monotonic_ms() - t0;
    assert_int_equal(code, 1008);
    if (elapsed < 1500 || elapsed > 4500)
        fail_msg("closed after %lld ms, expected about 2000", (long long)elapsed);
    wsc_free(c);
}

static void test_server_default_auth_deadline_is_10s(void **state) {
    struct harness *h;
    assert_int_equal(harness_start(NULL, &h), 0);
    struct wsc *c = open_session(h);
    int64_t t0 = clock_monotonic_ms();
    int code = 0;
    assert_int_equal(wsc_wait_close(c, 15000, &code), 0);
    int64_t elapsed = clock_monotonic_ms() - t0;
    assert_int_equal(code, 1008);
    if (elapsed < 9500 || elapsed > 12500)
        fail_msg("closed after %lld ms, expected about 10000", (long long)elapsed);
    wsc_free(c);
    harness_free(h);
}

static void test_server_pings_and_hangs_up_on_silent_peers(void **state) {
    const char *args[] = {"--ping-interval", "1", "--idle-timeout", "3", NULL};
    struct harness *h;
    assert_int_equal(harness_start(args, &h), 0);
    /* A peer that answers pings (wsc_recv does) outlives the idle timeout. */
    struct wsc *live = open_session(h);
    /* A peer that never reads, so never answers a ping, is hung up on. */
    struct wsc *silent = open_session(h);
    int64_t t0 = clock_monotonic_ms();
    expect_silence(live, 4500);
    send_request(live, 8, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(live, 8, STATUS_BAD_REQUEST, NULL, 0);
    int code = 0;
    /* The silent one was closed meanwhile: its close (or EOF) is already there. */
    assert_int_equal(wsc_wait_close(silent, 1000, &code), 0);
    assert_int_equal(code, WSC_CLOSE_ABNORMAL); /* dropped: the peer is presumed gone */
    assert_true(clock_monotonic_ms() - t0 < 8000);
    wsc_free(silent);
    wsc_free(live);
    harness_free(h);
}

/* Any frame from the peer is traffic, not only a pong: a peer that keeps
 * sending but never reads (so never answers a ping) is not hung up on. */
static void test_server_frames_keep_a_connection_alive(void **state) {
    const char *args[] = {"--ping-interval", "1", "--idle-timeout", "3", NULL};
    struct harness *h;
    assert_int_equal(harness_start(args, &h), 0);
    struct wsc *c = open_session(h);
    int n = 0;
    for (; n < 10; n++) {
        send_request(c, (uint64_t)n + 1, CARECHAT__V1__FRAME__BODY_LOGIN);
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* 5 s, past the idle timeout: every answer is there and it still serves. */
    for (int i = 0; i < n; i++)
        expect_response(c, (uint64_t)i + 1, STATUS_BAD_REQUEST, NULL, 0);
    send_request(c, 99, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(c, 99, STATUS_BAD_REQUEST, NULL, 0);
    wsc_free(c);
    harness_free(h);
}

/* ---- per-address cap ------------------------------------------------------------ */

static void test_server_per_ip_cap(void **state) {
    const char *args[] = {"--max-conns-per-ip", "3", NULL};
    struct harness *h;
    assert_int_equal(harness_start(args, &h), 0);
    struct wsc *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = open_session(h);
    struct wsc *extra = NULL;
    struct wsc_options o = {.subprotocol = SUBPROTOCOL};
    assert_int_equal(wsc_connect(h->port, &o, NULL, 0, &extra), 0); /* accepted, then closed */
    assert_null(extra);
    /* The open sessions still work. */
    send_request(c[0], 3, CARECHAT__V1__FRAME__BODY_LOGIN);
    expect_response(c[0], 3, STATUS_BAD_REQUEST, NULL, 0);
    /* Closing one frees a place (the server notices the close asynchronously). */
    wsc_free(c[2]);
    int rc = 0;
    for (int tries = 0; tries < 100 && rc != 101; tries++) {
        rc = wsc_connect(h->port, &o, NULL, 0, &c[2]);
        if (rc != 101) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(rc, 101);
    wsc_free(c[0]);
    wsc_free(c[1]);
    wsc_free(c[2]);
    long long rejected = -1;
    for (int tries = 0; tries < 100 && rejected < 0; tries++) {
        int status = 0;
        struct buf body;
        buf_init(&body);
        if (http_get(h->metrics_host, h->metrics_port, "/metrics", TIMEOUT_MS, &status, NULL,
                     &body) == 0 &&
            status == 200) {
            const char *p = strstr((const char *)body.data,
                                   "carechat_connections_rejected_total{reason=\"per_ip_limit\"} ");
            if (p)
                rejected = strtoll(strchr(p, '}') + 2, NULL, 10);
        }
        buf_cleanup(&body);
    }
    assert_true(rejected >= 1);
    harness_free(h);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static void test_server_sigterm_then_restart_keeps_identity(void **state) {
    struct harness *h;
    assert_int_equal(harness_start(NULL, &h), 0);
    char id[33], id2[33];
    long long pos, pos2;
    health(h, id, &pos);
    assert_int_equal(pos, 1);
    /* An open session is told the server is going away. */
    struct wsc *c = open_session(h);
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);
    int code = 0;
    assert_int_equal(wsc_wait_close(c, TIMEOUT_MS, &code), 0);
    assert_int_equal(code, 1001);
    wsc_free(c);
    assert_true(harness_log_contains(h, "stopped"));

    assert_int_equal(harness_restart(h), 0);
    health(h, id2, &pos2);
    assert_string_equal(id, id2);
    assert_int_equal(pos2, pos); /* no second ServerInit */

    /* After kill -9 the data directory still opens with the same identity. */
    harness_kill9(h);
    assert_int_equal(harness_restart(h), 0);
    health(h, id2, &pos2);
    assert_string_equal(id, id2);
    assert_int_equal(pos2, pos);
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);
    harness_free(h);
}

static void test_server_refuses_plaintext_off_loopback(void **state) {
    char dir[PATH_MAX], data[PATH_MAX + 8];
    harness_tmpdir("refuse", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    static const char *const listens[] = {"0.0.0.0:0", "[::]:0", "192.0.2.1:0"};
    for (size_t i = 0; i < sizeof listens / sizeof listens[0]; i++) {
        const char *args[] = {"--listen", listens[i], "--data", data, NULL};
        int status = -1;
        struct buf out;
        buf_init(&out);
        assert_int_equal(harness_run(args, NULL, 10000, &status, &out), 0);
        assert_int_equal(status, 2);
        if (!out.data || !strstr((const char *)out.data, "without TLS"))
            fail_msg("no clear message for %s: %s", listens[i],
                     out.data ? (const char *)out.data : "");
        buf_cleanup(&out);
        /* Refused before touching anything: no data directory was created. */
        struct stat st;
        assert_int_not_equal(stat(data, &st), 0);
    }
}

static void test_server_insecure_loopback_alias_binds_only_there(void **state) {
    /* 127.0.0.2 is loopback (so this needs no TLS); --insecure-no-tls is
     * accepted alongside. The listener must be bound to 127.0.0.2 only. */
    const char *args[] = {"--listen", "127.0.0.2:0", "--insecure-no-tls", NULL};
    struct harness *h;
    assert_int_equal(harness_start(args, &h), 0);
    assert_string_equal(h->host, "127.0.0.2");
    assert_true(harness_log_contains(h, "listening on 127.0.0.2:"));
    char id[33];
    long long pos;
    health(h, id, &pos);
    int status = 0;
    assert_int_equal(http_get("127.0.0.1", h->port, "/", 2000, &status, NULL, NULL), STATUS_IO);
    harness_free(h);
}

int main(void) {
    const struct CMUnitTest shared_tests[] = {
        cmocka_unit_test(test_server_healthz_is_json_with_identity),
        cmocka_unit_test(test_server_metrics_only_on_their_listener),
        cmocka_unit_test(test_server_metrics_count_frames),
        cmocka_unit_test(test_server_handshake_needs_carechat_subprotocol),
        cmocka_unit_test(test_server_origin_allow_list),
        cmocka_unit_test(test_server_too_large_headers_get_431),
        cmocka_unit_test(test_server_bad_close_frames_get_1002),
        cmocka_unit_test(test_server_oversized_message_closes_1009),
        cmocka_unit_test(test_server_fragmented_message_within_limit_is_served),
        cmocka_unit_test(test_server_text_message_closes_1003),
        cmocka_unit_test(test_server_login_gets_a_clear_status),
        cmocka_unit_test(test_server_request_before_auth_is_unauthenticated),
        cmocka_unit_test(test_server_garbage_gets_bad_request_and_no_crash),
        cmocka_unit_test(test_server_closes_unauthenticated_at_deadline),
    };
    const struct CMUnitTest own_server_tests[] = {
        cmocka_unit_test(test_server_default_auth_deadline_is_10s),
        cmocka_unit_test(test_server_pings_and_hangs_up_on_silent_peers),
        cmocka_unit_test(test_server_frames_keep_a_connection_alive),
        cmocka_unit_test(test_server_per_ip_cap),
        cmocka_unit_test(test_server_sigterm_then_restart_keeps_identity),
        cmocka_unit_test(test_server_refuses_plaintext_off_loopback),
        cmocka_unit_test(test_server_insecure_loopback_alias_binds_only_there),
    };
    int failed =
        cmocka_run_group_tests_name("shared server", shared_tests, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("own servers", own_server_tests, NULL, NULL);
    return failed;
}
