/*
 * server/conn.h: the state of one WebSocket session, free of libwebsockets.
 *
 * ws.c creates one `struct conn` per upgraded connection and feeds it every
 * complete binary message; the conn decodes it (protocol/proto.h), answers
 * every request with exactly one Response, and tells ws.c what to send and when
 * to close through the callbacks in `struct conn_io`. Nothing here touches a
 * socket, so conn_test.c drives it directly.
 *
 *                     Login / Authenticate / Register succeed
 *                     (conn_authenticated())
 *   AWAITING_AUTH --------------------------------------> AUTHENTICATED
 *     |   |                                                  |     |
 *     |   | auth deadline (conn_on_auth_timeout): 1008       |     |
 *     |   | CONN_MAX_BAD_FRAMES undecodable in a row: 1002   |     |
 *     |   | CONN_MAX_BAD_FRAMES refused for want of a        |     |
 *     |   |   session (conn_count_unauthenticated): 1008     |     |
 *     |   | server shutdown (conn_on_shutdown): 1001          |     |
 *     v   v                                                  v     v
 *   CLOSING  <------------------------------------------------------
 *   (terminal: input ignored, nothing more is sent after the close)
 *
 * Every request goes to the handler (struct conn_handler, server/handlers.h),
 * which answers it exactly once, now or later (after the journal or the
 * password worker), through conn_respond()/conn_send(); it decides what needs
 * a session (the request table, server/requests.c) and tells the conn of each
 * request it refused for want of one (conn_count_unauthenticated()): the
 * CONN_MAX_BAD_FRAMES-th in AWAITING_AUTH closes the connection (1008), which
 * bounds what an unauthenticated peer can append to the audit log. Requests
 * the handler does not take are answered UNAVAILABLE with detail "not
 * implemented yet". A Response from the client (to a server request) is
 * accepted without a reply and handed to the handler's `response` callback
 * when it has one; a server-side request body (Delivery, ...) sent by the
 * client is BAD_REQUEST.
 *
 * A message that does not decode is answered BAD_REQUEST (TOO_LARGE when it
 * broke a codec limit) when its request id can still be read from it, and the
 * connection stays open. When no request id can be read there is nothing to
 * address: carechat.v1 forbids request_id 0 and the codec will not encode it,
 * so such a message gets no Response. Either way it counts as a bad frame; the
 * CONN_MAX_BAD_FRAMES-th in a row (a frame that decodes resets the count)
 * closes the connection with 1002 (protocol error: the peer is not speaking
 * carechat.v1) after its answer.
 *
 * Thread: the lws loop thread only.
 */
#ifndef SERVER_CONN_H
#define SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto.h"
#include "server/metrics.h"

#define CONN_MAX_BAD_FRAMES 10
/* The detail of requests no handler serves yet (answered UNAVAILABLE). */
#define CONN_NOT_IMPLEMENTED "not implemented yet"

/* WebSocket close codes the conn asks for (RFC 6455 section 7.4.1). */
#define CONN_CLOSE_NORMAL 1000
#define CONN_CLOSE_GOING_AWAY 1001
#define CONN_CLOSE_PROTOCOL_ERROR 1002
#define CONN_CLOSE_POLICY 1008

enum conn_state {
    CONN_AWAITING_AUTH = 0,
    CONN_AUTHENTICATED,
    CONN_CLOSING,
};

struct conn_io {
    /* Queues one encoded Frame for the peer, in order. `frame` is borrowed for
     * the call. */
    void (*send)(void *ctx, const uint8_t *frame, size_t len);
    /* Closes the WebSocket with `code` and a short constant `reason` after the
     * frames already queued. Called at most once per conn. */
    void (*close)(void *ctx, int code, const char *reason);
    void *ctx;
};

struct conn;

/* The request handlers (server/handlers.h). All optional: without dispatch
 * every request the conn does not answer itself gets "not implemented yet". */
struct conn_handler {
    /* Called by conn_new(); returns the per-connection state handed back to
     * dispatch and detach. */
    void *(*attach)(void *ctx, struct conn *c);
    /* Called by conn_free(): the conn is gone; the state must not use it again. */
    void (*detach)(void *ctx, void *state);
    /* Returns true when it took the request (and will answer it exactly once);
     * false to have it answered "not implemented yet". `frame` is borrowed for
     * the call. */
    bool (*dispatch)(void *ctx, void *state, const Carechat__V1__Frame *frame);
    /* Optional: a Response from the client to a server request (no reply is
     * sent for it). `frame` is borrowed for the call. */
    void (*response)(void *ctx, void *state, const Carechat__V1__Frame *frame);
    void *ctx;
};

struct conn_config {
    struct conn_io io; /* required */
    struct conn_handler handler;
    uint8_t peer_addr[16];   /* the client's address (IPv6 or IPv4-mapped), for rate limits */
    struct metrics *metrics; /* required, borrowed; counts frames, responses, closes */
    size_t max_frame;        /* decode limit in bytes; 0: the codec's default */
};

/* Creates a session in AWAITING_AUTH. Returns 0 and *out (free with
 * conn_free()). `cfg` is copied. */
int conn_new(const struct conn_config *cfg, struct conn **out);
/* Accepts NULL. Sends nothing. */
void conn_free(struct conn *c);

enum conn_state conn_state(const struct conn *c);

/* Handles one complete binary message of `len` bytes (borrowed). Every
 * request in it is answered through io.send before this returns. Ignored in
 * CLOSING. */
void conn_on_message(struct conn *c, const uint8_t *data, size_t len);

/* Moves the session to AUTHENTICATED (the session handlers call it once a
 * Login, Authenticate or Register succeeded). Returns 0, or STATUS_CONFLICT
 * when the session is not AWAITING_AUTH. */
int conn_authenticated(struct conn *c);

/* Sends a Response to `request_id` with `status` (0 or a negative STATUS_*) and
 * `detail` (a constant text free of personal data, or NULL). Nothing is sent
 * in CLOSING. */
void conn_respond(struct conn *c, uint64_t request_id, int status, const char *detail);

/* Encodes and sends `frame` (borrowed; a Response with a result, or a server
 * request numbered with conn_next_request_id()). Nothing is sent in CLOSING. */
void conn_send(struct conn *c, const Carechat__V1__Frame *frame);

/* Sends a frame encoded by the caller (`len` bytes, the encoding of a frame
 * with body `body_case`, as conn_send() would send it). Nothing is sent in
 * CLOSING. */
void conn_send_encoded(struct conn *c, const uint8_t *frame, size_t len, unsigned body_case);

/* The next id for a request the server sends on this connection. */
uint64_t conn_next_request_id(struct conn *c);

/* Closes with `code` and `reason` after the frames already sent, counting
 * `why`; does nothing in CLOSING. */
void conn_close(struct conn *c, int code, const char *reason, enum metrics_close why);

/* The client's address given in the config (16 bytes). */
const uint8_t *conn_peer_addr(const struct conn *c);

/* A request was refused for want of a session (UNAUTHENTICATED): the
 * CONN_MAX_BAD_FRAMES-th such refusal in AWAITING_AUTH closes with 1008. */
void conn_count_unauthenticated(struct conn *c);

/* The authentication deadline passed: closes with 1008 when the session is
 * still AWAITING_AUTH; otherwise does nothing. */
void conn_on_auth_timeout(struct conn *c);

/* The server is stopping: closes with 1001 unless already CLOSING. */
void conn_on_shutdown(struct conn *c);

#endif
