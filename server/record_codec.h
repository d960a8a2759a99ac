/*
 * server/record_codec.h: how the fields of stored records are encoded (the
 * records of server/records.h and server/records_messages.h, all prefixed
 * rec_): big-endian integers, 16-byte ids and byte strings prefixed by a u32
 * length, appended to a struct buf; and a bounds-checked reader over one
 * encoded record. Pure, any thread.
 *
 * Invariant of the reader: once a read runs past the end it is `bad`, every
 * later read yields zeros and NULL, and `p` no longer moves.
 */
#ifndef SERVER_RECORD_CODEC_H
#define SERVER_RECORD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"

/* Append one field to `b` (which grows as needed; aborts on out of memory
 * like every struct buf append). */
void rec_put_u8(struct buf *b, uint8_t v);
void rec_put_u32(struct buf *b, uint32_t v);
void rec_put_u64(struct buf *b, uint64_t v);
void rec_put_id(struct buf *b, const struct id *id);
/* A u32 length `n` then the `n` bytes at `p` (`p` may be NULL when n is 0). */
void rec_put_bytes(struct buf *b, const void *p, size_t n);

struct rec_reader {
    const uint8_t *p, *end;
    bool bad;
};

/* Starts reading the `len` bytes at `data` (borrowed: they must outlive `r`). */
void rec_reader_init(struct rec_reader *r, const uint8_t *data, size_t len);

/* The next `n` bytes (pointing into the record) and moves past them; NULL, and
 * `r` becomes bad, when fewer than `n` remain or `r` is already bad. */
const uint8_t *rec_take(struct rec_reader *r, size_t n);

/* The next field; 0 (or an all-zero id) when it does not fit, as rec_take(). */
uint8_t rec_get_u8(struct rec_reader *r);
uint32_t rec_get_u32(struct rec_reader *r);
uint64_t rec_get_u64(struct rec_reader *r);
void rec_get_id(struct rec_reader *r, struct id *id);

#endif
