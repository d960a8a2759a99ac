/* server/conn_test.c: unit tests for the session state machine, without sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/conn.h"
#include "server/metrics.h"

#define MAX_SENT 32

/* What the conn asked the transport to do. */
struct wire {
    struct buf sent[MAX_SENT];
    size_t n_sent;
    int close_code;
    int n_closes;
};

struct fixture {
    struct wire wire;
    struct metrics *metrics;
    struct conn *conn;
};

static void wire_send(void *ctx, const uint8_t *frame, size_t len) {
    struct wire *w = ctx;
    assert_true(w->n_sent < MAX_SENT);
    buf_init(&w->sent[w->n_sent]);
    buf_append(&w->sent[w->n_sent], frame, len);
    w->n_sent++;
}

static void wire_close(void *ctx, int code, const char *reason) {
    struct wire *w = ctx;
    assert_non_null(reason);
    w->close_code = code;
    w->n_closes++;
}

static const char *no_name(unsigned number) {
    return NULL;
}

static int setup_limited(void **state, size_t max_frame) {
    struct fixture *f = calloc(1, sizeof *f);
    assert_int_equal(metrics_new(&(struct metrics_config){.body_name = no_name}, &f->metrics), 0);
    struct conn_config cfg = {
        .io = {.send = wire_send, .close = wire_close, .ctx = &f->wire},
        .metrics = f->metrics,
        .max_frame = max_frame,
    };
    assert_int_equal(conn_new(&cfg, &f->conn), 0);
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_limited(state, 0);
}

static int setup_small(void **state) {
    return setup_limited(state, 1024);
}

static int teardown(void **state) {
    struct fixture *f = *state;
    for (size_t i = 0; i < f->wire.n_sent; i++)
        buf_cleanup(&f->wire.sent[i]);
    conn_free(f->conn);
    metrics_free(f->metrics);
    free(f);
    return 0;
}

/* Encodes a frame with an empty body of `body_case` and feeds it to the conn. */
static void send_request(struct fixture *f, uint64_t request_id,
                         Carechat__V1__Frame__BodyCase body) {
    Carechat__V1__Frame frame;
    Carechat__V1__Login login;
    Carechat__V1__ListConversations list;
    Carechat__V1__Delivery delivery;
    Carechat__V1__Response response;
    carechat__v1__frame__init(&frame);
    carechat__v1__login__init(&login);
    carechat__v1__list_conversations__init(&list);
    carechat__v1__delivery__init(&delivery);
    carechat__v1__response__init(&response);
    frame.request_id = request_id;
    frame.body_case = body;
    switch (body) {
    case CARECHAT__V1__FRAME__BODY_LOGIN:
        frame.login = &login;
        break;
    case CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS:
        frame.list_conversations = &list;
        break;
    case CARECHAT__V1__FRAME__BODY_DELIVERY:
        frame.delivery = &delivery;
        break;
    case CARECHAT__V1__FRAME__BODY_RESPONSE:
        frame.response = &response;
        break;
    default:
        fail_msg("body %d not supported by the test", body);
    }
    struct buf out;
    buf_init(&out);
    assert_int_equal(proto_encode(&frame, &out), 0);
    conn_on_message(f->conn, out.data, out.len);
    buf_cleanup(&out);
}

/* Decodes sent frame `i` and checks it is a Response to `request_id` with
 * wire status `status`; returns nothing, fails the test otherwise. */
static void assert_response(struct fixture *f, size_t i, uint64_t request_id, int status,
                            const char *detail) {
    assert_true(i < f->wire.n_sent);
    Carechat__V1__Frame *frame = NULL;
    assert_int_equal(proto_decode(NULL, f->wire.sent[i].data, f->wire.sent[i].len, &frame), 0);
    assert_int_equal(frame->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    assert_true(frame->request_id == request_id);
    assert_int_equal(frame->response->status, status_wire(status));
    if (detail)
        assert_string_equal(frame->response->detail, detail);
    proto_free(frame);
}

static void test_conn_login_before_auth_gets_a_status(void **state) {
    struct fixture *f = *state;
    assert_int_equal(conn_state(f->conn), CONN_AWAITING_AUTH);
    send_request(f, 7, CARECHAT__V1__FRAME__BODY_LOGIN);
    assert_int_equal(f->wire.n_sent, 1);
    assert_response(f, 0, 7, STATUS_UNAVAILABLE, "not implemented yet");
    assert_int_equal(conn_state(f->conn), CONN_AWAITING_AUTH);
    assert_int_equal(metrics_frames_in(f->metrics, CARECHAT__V1__FRAME__BODY_LOGIN), 1);
    assert_int_equal(f->wire.n_closes, 0);
}

/* The handler reports each request it refused for want of a session; the
 * CONN_MAX_BAD_FRAMES-th closes the connection (1008). */
static void test_conn_requests_before_auth_are_bounded(void **state) {
    struct fixture *f = *state;
    for (unsigned i = 1; i < CONN_MAX_BAD_FRAMES; i++) {
        send_request(f, i, CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS);
        conn_count_unauthenticated(f->conn);
        assert_int_equal(f->wire.n_closes, 0);
    }
    conn_count_unauthenticated(f->conn);
    assert_int_equal(f->wire.n_closes, 1);
    assert_int_equal(f->wire.close_code, CONN_CLOSE_POLICY);
    assert_int_equal(conn_state(f->conn), CONN_CLOSING);
}

/* Once authenticated, refusals are not counted. */
static void test_conn_unauthenticated_count_only_before_auth(void **state) {
    struct fixture *f = *state;
    assert_int_equal(conn_authenticated(f->conn), 0);
    for (unsigned i = 0; i < 2 * CONN_MAX_BAD_FRAMES; i++)
        conn_count_unauthenticated(f->conn);
    assert_int_equal(f->wire.n_closes, 0);
    assert_int_equal(conn_state(f->conn), CONN_AUTHENTICATED);
}

static void test_conn_authenticated_serves_other_requests(void **state) {
    struct fixture *f = *state;
    assert_int_equal(conn_authenticated(f->conn), 0);
    assert_int_equal(conn_state(f->conn), CONN_AUTHENTICATED);
    assert_int_equal(conn_authenticated(f->conn), STATUS_CONFLICT);
    send_request(f, 99, CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS);
    assert_response(f, 0, 99, STATUS_UNAVAILABLE, "not implemented yet");
    /* The deadline no longer applies. */
    conn_on_auth_timeout(f->conn);
    assert_int_equal(f->wire.n_closes, 0);
    assert_int_equal(conn_state(f->conn), CONN_AUTHENTICATED);
}

static void test_conn_client_response_gets_no_reply(void **state) {
    struct fixture *f = *state;
    send_request(f, 3, CARECHAT__V1__FRAME__BODY_RESPONSE);
    assert_int_equal(f->wire.n_sent, 0);
    assert_int_equal(f->wire.n_closes, 0);
}

static void test_conn_server_request_from_client_is_bad_request(void **state) {
    struct fixture *f = *state;
    send_request(f, 4, CARECHAT__V1__FRAME__BODY_DELIVERY);
    assert_response(f, 0, 4, STATUS_BAD_REQUEST, "not a client request");
}

static void test_conn_garbage_with_readable_id_is_bad_request(void **state) {
    struct fixture *f = *state;
    /* request_id = 77 (field 1, varint), then a field with wire type 7. */
    static const uint8_t garbage[] = {0x08, 77, 0x0f, 0x01, 0x02};
    conn_on_message(f->conn, garbage, sizeof garbage);
    assert_int_equal(f->wire.n_sent, 1);
    assert_response(f, 0, 77, STATUS_BAD_REQUEST, "malformed frame");
    /* The session survives and still answers. */
    send_request(f, 78, CARECHAT__V1__FRAME__BODY_LOGIN);
    assert_response(f, 1, 78, STATUS_UNAVAILABLE, NULL);
    assert_int_equal(f->wire.n_closes, 0);
    assert_int_equal(metrics_frames_in(f->metrics, METRICS_BODY_UNDECODABLE), 1);
}

static void test_conn_garbage_without_id_gets_no_response(void **state) {
    struct fixture *f = *state;
    static const uint8_t noise[] = {0xff, 0xff, 0xff};
    /* A Login body with request_id 0 decodes to nothing we may answer. */
    static const uint8_t no_id[] = {0x52, 0x00};
    conn_on_message(f->conn, noise, sizeof noise);
    conn_on_message(f->conn, no_id, sizeof no_id);
    conn_on_message(f->conn, NULL, 0);
    assert_int_equal(f->wire.n_sent, 0);
    assert_int_equal(f->wire.n_closes, 0);
    assert_int_equal(conn_state(f->conn), CONN_AWAITING_AUTH);
}

static void test_conn_repeated_garbage_closes_1002(void **state) {
    struct fixture *f = *state;
    static const uint8_t garbage[] = {0x08, 5, 0xff};
    for (int i = 0; i < CONN_MAX_BAD_FRAMES - 1; i++)
        conn_on_message(f->conn, garbage, sizeof garbage);
    assert_int_equal(f->wire.n_closes, 0);
    /* A frame that decodes resets the count. */
    send_request(f, 6, CARECHAT__V1__FRAME__BODY_LOGIN);
    for (int i = 0; i < CONN_MAX_BAD_FRAMES - 1; i++)
        conn_on_message(f->conn, garbage, sizeof garbage);
    assert_int_equal(f->wire.n_closes, 0);
    conn_on_message(f->conn, garbage, sizeof garbage);
    assert_int_equal(f->wire.n_closes, 1);
    assert_int_equal(f->wire.close_code, CONN_CLOSE_PROTOCOL_ERROR);
    assert_int_equal(conn_state(f->conn), CONN_CLOSING);
    /* Every bad frame before the close was answered, the last one too. */
    assert_int_equal(f->wire.n_sent, 2 * (CONN_MAX_BAD_FRAMES - 1) + 1 + 1);
    assert_response(f, f->wire.n_sent - 1, 5, STATUS_BAD_REQUEST, NULL);
    /* CLOSING is terminal: input is ignored, nothing more is sent. */
    size_t sent = f->wire.n_sent;
    send_request(f, 7, CARECHAT__V1__FRAME__BODY_LOGIN);
    conn_on_shutdown(f->conn);
    conn_on_auth_timeout(f->conn);
    assert_int_equal(f->wire.n_sent, sent);
    assert_int_equal(f->wire.n_closes, 1);
}

static void test_conn_auth_deadline_closes_1008(void **state) {
    struct fixture *f = *state;
    conn_on_auth_timeout(f->conn);
    assert_int_equal(f->wire.n_closes, 1);
    assert_int_equal(f->wire.close_code, CONN_CLOSE_POLICY);
    assert_int_equal(conn_state(f->conn), CONN_CLOSING);
    assert_int_equal(conn_authenticated(f->conn), STATUS_CONFLICT);
}

static void test_conn_shutdown_closes_1001(void **state) {
    struct fixture *f = *state;
    conn_on_shutdown(f->conn);
    assert_int_equal(f->wire.n_closes, 1);
    assert_int_equal(f->wire.close_code, CONN_CLOSE_GOING_AWAY);
}

static void test_conn_frame_over_limit_is_too_large(void **state) {
    struct fixture *f = *state;
    uint8_t big[2048];
    memset(big, 0, sizeof big);
    big[0] = 0x08; /* request_id = 12 */
    big[1] = 12;
    big[2] = 0x52; /* login, 2045 bytes (2 length bytes) */
    big[3] = 0xfb;
    big[4] = 0x0f;
    conn_on_message(f->conn, big, sizeof big);
    assert_int_equal(f->wire.n_sent, 1);
    assert_response(f, 0, 12, STATUS_TOO_LARGE, NULL);
}

/* A handler that takes ListConversations (answering later) and records
 * attach/detach. */
struct fake_handler {
    int attached, detached, taken;
    struct conn *conn;
    uint64_t pending;
};

static void *fake_attach(void *ctx, struct conn *c) {
    struct fake_handler *h = ctx;
    h->attached++;
    h->conn = c;
    return h;
}

static void fake_detach(void *ctx, void *state) {
    ((struct fake_handler *)ctx)->detached++;
}

static bool fake_dispatch(void *ctx, void *state, const Carechat__V1__Frame *frame) {
    struct fake_handler *h = state;
    if (frame->body_case != CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS)
        return false;
    h->taken++;
    h->pending = frame->request_id;
    return true;
}

static void test_conn_handler_answers_later_and_sees_detach(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    struct fake_handler h = {0};
    assert_int_equal(metrics_new(&(struct metrics_config){.body_name = no_name}, &f->metrics), 0);
    struct conn_config cfg = {
        .io = {.send = wire_send, .close = wire_close, .ctx = &f->wire},
        .handler = {.attach = fake_attach,
                    .detach = fake_detach,
                    .dispatch = fake_dispatch,
                    .ctx = &h},
        .metrics = f->metrics,
    };
    assert_int_equal(conn_new(&cfg, &f->conn), 0);
    assert_int_equal(h.attached, 1);
    assert_true(h.conn == f->conn);
    assert_int_equal(conn_authenticated(f->conn), 0);

    /* Taken by the handler: nothing is sent until it answers. */
    send_request(f, 5, CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS);
    assert_int_equal(h.taken, 1);
    assert_int_equal(f->wire.n_sent, 0);
    conn_respond(f->conn, h.pending, STATUS_NOT_FOUND, "later");
    assert_response(f, 0, 5, STATUS_NOT_FOUND, "later");

    /* Server requests are numbered by the conn; a close stops all output. */
    assert_true(conn_next_request_id(f->conn) == 1);
    assert_true(conn_next_request_id(f->conn) == 2);
    conn_close(f->conn, CONN_CLOSE_NORMAL, "bye", METRICS_CLOSE_LOGOUT);
    assert_int_equal(f->wire.close_code, CONN_CLOSE_NORMAL);
    conn_respond(f->conn, 7, STATUS_OK, NULL);
    assert_int_equal(f->wire.n_sent, 1);

    teardown((void **)&f);
    assert_int_equal(h.detached, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_handler_answers_later_and_sees_detach),
        cmocka_unit_test_setup_teardown(test_conn_login_before_auth_gets_a_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_requests_before_auth_are_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_unauthenticated_count_only_before_auth, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_authenticated_serves_other_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_client_response_gets_no_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_server_request_from_client_is_bad_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_garbage_with_readable_id_is_bad_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_garbage_without_id_gets_no_response, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_repeated_garbage_closes_1002, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_auth_deadline_closes_1008, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_shutdown_closes_1001, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_frame_over_limit_is_too_large, setup_small,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
