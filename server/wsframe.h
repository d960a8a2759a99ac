/*
 * server/wsframe.h: the server's outgoing WebSocket frames. ws.c queues each
 * message framed as an unmasked, final, binary frame (RFC 6455 section 5.2)
 * and writes the queued frames several to a send (lws frames one message per
 * lws_write()).
 *
 *   struct wsframe_queue q;
 *   wsframe_queue_init(&q);
 *   wsframe_queue_push(&q, payload, len);        // as many as come
 *   size_t n;
 *   const uint8_t *p = wsframe_queue_peek(&q, 64 * 1024, &n);
 *   ... send n bytes at p ...
 *   wsframe_queue_consumed(&q, n);
 *   wsframe_queue_cleanup(&q);
 *
 * Invariant: the queued bytes are whole frames, oldest first. Pure; one
 * thread per queue.
 */
#ifndef SERVER_WSFRAME_H
#define SERVER_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* The longest header: the opcode byte, 127 and a 64-bit length. */
#define WSFRAME_HEADER_MAX 10
/* A drained queue whose buffer grew past this frees it, so that idle
 * connections hold little. */
#define WSFRAME_KEEP_CAP (64 * 1024)

/* Writes the header of a binary frame of `len` payload bytes into out[] (FIN
 * set, no mask, the shortest length form) and returns its length: 2 up to
 * 125 bytes, 4 up to 65535, else 10. */
size_t wsframe_header(uint8_t out[WSFRAME_HEADER_MAX], uint64_t len);

/* The length of the frame at `frame`, header and payload, whose header
 * wsframe_header() wrote (only those: nothing here is checked). */
size_t wsframe_length(const uint8_t *frame);

struct wsframe_queue {
    struct buf out; /* out.data[sent, out.len): the queued frames */
    size_t sent;
};

void wsframe_queue_init(struct wsframe_queue *q);
/* Frees the buffer; the queue is empty (and usable) afterwards. */
void wsframe_queue_cleanup(struct wsframe_queue *q);
/* Bytes queued (headers included). */
size_t wsframe_queue_len(const struct wsframe_queue *q);
/* Queues `len` bytes as one frame. */
void wsframe_queue_push(struct wsframe_queue *q, const uint8_t *payload, size_t len);
/* The oldest queued frames that fit in `max` bytes together, at least one
 * (which may be longer): their bytes at the returned pointer, *n of them (0
 * and NULL when the queue is empty). Valid until the next call on `q`. */
const uint8_t *wsframe_queue_peek(const struct wsframe_queue *q, size_t max, size_t *n);
/* Drops the `n` oldest bytes, which peek() gave (whole frames). A queue
 * drained keeps its buffer up to WSFRAME_KEEP_CAP; one that is not moves its
 * frames to the front once the sent bytes are the larger part, so the buffer
 * stays within twice what is queued. */
void wsframe_queue_consumed(struct wsframe_queue *q, size_t n);

#endif
