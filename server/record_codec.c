/*
 * server/record_codec.c: the record field encoding (server/record_codec.h). Pure, any thread.
 */
#include "server/record_codec.h"

#include <string.h>

#include "storage/keys.h"

void rec_put_u8(struct buf *b, uint8_t v) {
    buf_append_u8(b, v);
}

void rec_put_u32(struct buf *b, uint32_t v) {
    uint8_t x[4];
    key_put_u32(x, v);
    buf_append(b, x, 4);
}

void rec_put_u64(struct buf *b, uint64_t v) {
    uint8_t x[8];
    key_put_u64(x, v);
    buf_append(b, x, 8);
}

void rec_put_id(struct buf *b, const struct id *id) {
    buf_append(b, id->b, ID_LEN);
}

void rec_put_bytes(struct buf *b, const void *p, size_t n) {
    rec_put_u32(b, (uint32_t)n);
    if (n)
        buf_append(b, p, n);
}

void rec_reader_init(struct rec_reader *r, const uint8_t *data, size_t len) {
    r->p = data;
    r->end = data + len;
    r->bad = false;
}

const uint8_t *rec_take(struct rec_reader *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

uint8_t rec_get_u8(struct rec_reader *r) {
    const uint8_t *p = rec_take(r, 1);
    return p ? p[0] : 0;
}

uint32_t rec_get_u32(struct rec_reader *r) {
    const uint8_t *p = rec_take(r, 4);
    return p ? key_get_u32(p) : 0;
}

uint64_t rec_get_u64(struct rec_reader *r) {
    const uint8_t *p = rec_take(r, 8);
    return p ? key_get_u64(p) : 0;
}

void rec_get_id(struct rec_reader *r, struct id *id) {
    const uint8_t *p = rec_take(r, ID_LEN);
    if (p)
        memcpy(id->b, p, ID_LEN);
    else
        memset(id->b, 0, ID_LEN);
}
