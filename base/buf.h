/*
 * base/buf.h: a growable byte buffer, embedded by value.
 *
 *   struct buf b;
 *   buf_init(&b);
 *   buf_append(&b, data, n);
 *   ... b.data / b.len ...
 *   buf_cleanup(&b);
 *
 * The buffer owns `data`; growth aborts on exhaustion (base/alloc.h). After any
 * append, data[len] is a NUL byte, so text built with buf_printf() can be used as
 * a C string. A buffer that held a secret must be wiped by the caller before
 * cleanup (buf_wipe()).
 */
#ifndef BASE_BUF_H
#define BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
/* Frees the storage; the buffer may be reused after buf_init(). Accepts NULL. */
void buf_cleanup(struct buf *b);
/* Ensures room for `extra` more bytes (plus the trailing NUL). */
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t n);
void buf_append_u8(struct buf *b, uint8_t v);
/* Appends v as a protobuf-style base-128 varint (1..10 bytes). */
void buf_append_varint(struct buf *b, uint64_t v);
/* Appends formatted text (printf format), without its NUL. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets len to 0 and keeps the storage. */
void buf_reset(struct buf *b);
/* Overwrites the whole storage with zeros and sets len to 0. */
void buf_wipe(struct buf *b);
/* Hands the storage to the caller, who frees it with free(); the buffer is left
 * empty (as after buf_init()). Returns NULL for a buffer never appended to. */
uint8_t *buf_steal(struct buf *b, size_t *len_out);

/* Reads a varint from [*p, end). Returns 0 and advances *p, or STATUS_BAD_REQUEST
 * when the input ends first or the varint is longer than 10 bytes or overflows. */
int varint_read(const uint8_t **p, const uint8_t *end, uint64_t *out);

#endif
