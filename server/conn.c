/*
 * server/conn.c: one WebSocket session's state machine (drawn in conn.h).
 *
 * Invariants: every decoded request is answered exactly once: by the conn
 * before conn_on_message() returns, or by the handler that took it; nothing is sent once the state
 * is CLOSING; the decoded frame is freed before returning (protocol/proto.h lifetime rule). Loop
 * thread only.
 */
#include "server/conn.h"

#include <stdbool.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"

struct conn {
    struct conn_config cfg;
    struct proto_limits limits;
    enum conn_state state;
    unsigned bad_frames;      /* undecodable messages in a row */
    unsigned unauthenticated; /* requests refused for want of a session */
    uint64_t next_request_id;
    void *handler_state;
};

int conn_new(const struct conn_config *cfg, struct conn **out) {
    struct conn *c = xcalloc(1, sizeof *c);
    c->cfg = *cfg;
    c->limits = (struct proto_limits){.max_frame_bytes = cfg->max_frame};
    c->state = CONN_AWAITING_AUTH;
    if (cfg->handler.attach)
        c->handler_state = cfg->handler.attach(cfg->handler.ctx, c);
    *out = c;
    return STATUS_OK;
}

void conn_free(struct conn *c) {
    if (!c)
        return;
    if (c->cfg.handler.detach)
        c->cfg.handler.detach(c->cfg.handler.ctx, c->handler_state);
    free(c);
}

enum conn_state conn_state(const struct conn *c) {
    return c->state;
}

void conn_close(struct conn *c, int code, const char *reason, enum metrics_close why) {
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    metrics_ws_closed_by_server(c->cfg.metrics, why);
    c->cfg.io.close(c->cfg.io.ctx, code, reason);
}

void conn_send_encoded(struct conn *c, const uint8_t *frame, size_t len, unsigned body_case) {
    if (c->state == CONN_CLOSING)
        return;
    c->cfg.io.send(c->cfg.io.ctx, frame, len);
    metrics_frame_out(c->cfg.metrics, body_case);
}

void conn_send(struct conn *c, const Carechat__V1__Frame *frame) {
    if (c->state == CONN_CLOSING)
        return;
    struct buf out;
    buf_init(&out);
    if (proto_encode(frame, &out) == 0) {
        conn_send_encoded(c, out.data, out.len, (unsigned)frame->body_case);
        if (frame->body_case == CARECHAT__V1__FRAME__BODY_RESPONSE)
            metrics_response(c->cfg.metrics, (int)frame->response->status);
    }
    buf_wipe(&out);
    buf_cleanup(&out);
}

void conn_respond(struct conn *c, uint64_t request_id, int status, const char *detail) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    proto_response_frame(&frame, &resp, request_id, status, detail);
    conn_send(c, &frame);
}

uint64_t conn_next_request_id(struct conn *c) {
    return ++c->next_request_id;
}

const uint8_t *conn_peer_addr(const struct conn *c) {
    return c->cfg.peer_addr;
}

/* Reads field 1 (request_id, a varint) from the top level of an undecodable
 * frame, skipping other well-formed fields. Returns 0 when it cannot. */
static uint64_t salvage_request_id(const uint8_t *data, size_t len) {
    const uint8_t *p = data, *end = data + len;
    while (p < end) {
        uint64_t key, v;
        if (varint_read(&p, end, &key) != 0)
            return 0;
        switch (key & 7) {
        case 0:
            if (varint_read(&p, end, &v) != 0)
                return 0;
            if (key >> 3 == 1)
                return v;
            break;
        case 1:
            if ((size_t)(end - p) < 8)
                return 0;
            p += 8;
            break;
        case 2:
            if (varint_read(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                return 0;
            p += v;
            break;
        case 5:
            if ((size_t)(end - p) < 4)
                return 0;
            p += 4;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

static void on_bad_frame(struct conn *c, const uint8_t *data, size_t len, int status) {
    metrics_frame_in(c->cfg.metrics, METRICS_BODY_UNDECODABLE);
    uint64_t id = salvage_request_id(data, len);
    if (id != 0)
        conn_respond(c, id, status,
                     status == STATUS_TOO_LARGE ? "frame exceeds a size limit" : "malformed frame");
    if (++c->bad_frames >= CONN_MAX_BAD_FRAMES) {
        log_debug("conn", "closing: %u malformed frames in a row", c->bad_frames);
        conn_close(c, CONN_CLOSE_PROTOCOL_ERROR, "too many malformed frames",
                   METRICS_CLOSE_BAD_FRAMES);
    }
}

static void dispatch(struct conn *c, const Carechat__V1__Frame *frame) {
    Carechat__V1__Frame__BodyCase body = frame->body_case;
    if (body == CARECHAT__V1__FRAME__BODY_RESPONSE) {
        /* The answer to a server request: nothing to reply. */
        if (c->state == CONN_AUTHENTICATED && c->cfg.handler.response)
            c->cfg.handler.response(c->cfg.handler.ctx, c->handler_state, frame);
        return;
    }
    if (body >= CARECHAT__V1__FRAME__BODY_DELIVERY) {
        conn_respond(c, frame->request_id, STATUS_BAD_REQUEST, "not a client request");
        return;
    }
    if (!c->cfg.handler.dispatch ||
        !c->cfg.handler.dispatch(c->cfg.handler.ctx, c->handler_state, frame))
        conn_respond(c, frame->request_id, STATUS_UNAVAILABLE, CONN_NOT_IMPLEMENTED);
}

void conn_count_unauthenticated(struct conn *c) {
    if (c->state == CONN_AWAITING_AUTH && ++c->unauthenticated >= CONN_MAX_BAD_FRAMES)
        conn_close(c, CONN_CLOSE_POLICY, "authenticate first", METRICS_CLOSE_AUTH_TIMEOUT);
}

void conn_on_message(struct conn *c, const uint8_t *data, size_t len) {
    if (c->state == CONN_CLOSING)
        return;
    static const uint8_t empty[1];
    if (len == 0)
        data = empty; /* an empty message may come with no buffer at all */
    Carechat__V1__Frame *frame = NULL;
    int rc = proto_decode(&c->limits, data, len, &frame);
    if (rc != 0) {
        on_bad_frame(c, data, len, rc);
        return;
    }
    c->bad_frames = 0;
    metrics_frame_in(c->cfg.metrics, (unsigned)frame->body_case);
    dispatch(c, frame);
    proto_free(frame);
}

int conn_authenticated(struct conn *c) {
    if (c->state != CONN_AWAITING_AUTH)
        return STATUS_CONFLICT;
    c->state = CONN_AUTHENTICATED;
    return STATUS_OK;
}

void conn_on_auth_timeout(struct conn *c) {
    if (c->state != CONN_AWAITING_AUTH)
        return;
    log_debug("conn", "closing: not authenticated within the deadline");
    conn_close(c, CONN_CLOSE_POLICY, "authentication timeout", METRICS_CLOSE_AUTH_TIMEOUT);
}

void conn_on_shutdown(struct conn *c) {
    conn_close(c, CONN_CLOSE_GOING_AWAY, "server shutting down", METRICS_CLOSE_SHUTDOWN);
}
