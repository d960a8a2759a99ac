/*
 * tests/bench/wire.h: the lean load driver of carechat-bench --mode server:
 * many client WebSocket connections (RFC 6455, subprotocol carechat.v1) to
 * 127.0.0.1 on one epoll loop, non-blocking, so that thousands of open
 * connections cost the driver nothing while they are quiet and the busy ones
 * cost one read and one write per round.
 *
 * It knows WebSocket only: the upgrade, framing and masking of what it sends,
 * reassembly of what it receives, pongs to the server's pings, close frames.
 * What the binary messages mean is the caller's (its wire_handler callbacks),
 * so the caller can also send messages framed ahead of time (wire_frame() and
 * wire_send_framed()), which is how the bench replays pre-signed envelopes
 * without spending CPU on them while it measures.
 *
 *   connect() -----> CONNECTING --writable--> UPGRADING --101 carechat.v1--> OPEN
 *                        |                        |                            |
 *                        +------ error -----------+----- error, close frame ---+--> CLOSED
 *
 * Callbacks run inside wire_run() only: `open` once a connection is OPEN,
 * `message` for each complete binary message, `closed` once when it reaches
 * CLOSED from any state (the connection is freed after that round; the
 * caller forgets it in `closed`). Output is queued and written when
 * wire_run() or wire_flush() runs, one write per connection per round.
 *
 * Limits: a message above WIRE_MAX_MESSAGE closes the connection (code
 * 1009); an upgrade answer above 8 KiB, a text message or a masked frame
 * from the server closes it (1002).
 *
 * Thread: one thread owns a loop and its connections.
 */
#ifndef TESTS_BENCH_WIRE_H
#define TESTS_BENCH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define WIRE_MAX_MESSAGE (1024u * 1024u)
/* Close code reported when the connection ended without a close frame, or
 * before it was open (RFC 6455 section 7.1.5). */
#define WIRE_CLOSE_ABNORMAL 1006

struct wire;
struct wire_conn;

struct wire_handler {
    void (*open)(void *ctx, struct wire_conn *c);
    /* `data` is borrowed for the call. */
    void (*message)(void *ctx, struct wire_conn *c, const uint8_t *data, size_t len);
    /* `code`: the server's close code, or WIRE_CLOSE_ABNORMAL. */
    void (*closed)(void *ctx, struct wire_conn *c, int code);
    void *ctx;
};

/* A loop with no connections, calling `h` (copied). Stores it in *out (free
 * with wire_free()) and returns 0, or STATUS_IO when epoll is unavailable. */
int wire_new(const struct wire_handler *h, struct wire **out);

/* Closes every connection (without callbacks) and frees. Accepts NULL. */
void wire_free(struct wire *w);

/* Starts a connection to 127.0.0.1:`port`; `user` is the caller's, returned by
 * wire_user(). Returns 0 with *out, or STATUS_IO when the socket cannot be
 * made (out of descriptors). The upgrade proceeds in wire_run(). */
int wire_connect(struct wire *w, int port, void *user, struct wire_conn **out);

void *wire_user(const struct wire_conn *c);

/* Queues the `len` bytes at `data` (copied) as one masked binary message.
 * Ignored unless the connection is OPEN. */
void wire_send(struct wire_conn *c, const uint8_t *data, size_t len);

/* Appends to `out` the `len` bytes at `data` framed as one masked binary
 * message, for wire_send_framed() later. */
void wire_frame(const uint8_t *data, size_t len, struct buf *out);

/* Queues bytes wire_frame() made (copied). Ignored unless OPEN. */
void wire_send_framed(struct wire_conn *c, const uint8_t *framed, size_t len);

/* Writes what is queued on every connection, as far as the sockets take it. */
void wire_flush(struct wire *w);

/* One round: flushes, waits at most `timeout_ms` for sockets to be ready,
 * handles what they hold (running the callbacks), flushes again and frees the
 * connections that closed. Returns 0, or STATUS_IO when epoll failed. */
int wire_run(struct wire *w, int timeout_ms);

/* Connections not yet freed (any state). */
size_t wire_count(const struct wire *w);

#endif
