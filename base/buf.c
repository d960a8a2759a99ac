/* base/buf.c: growable byte buffer. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/status.h"

void buf_init(struct buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_cleanup(struct buf *b) {
    if (!b)
        return;
    free(b->data);
    buf_init(b);
}

void buf_reserve(struct buf *b, size_t extra) {
    CHECK(extra < SIZE_MAX / 2 - b->len);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t n) {
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_append_u8(struct buf *b, uint8_t v) {
    buf_append(b, &v, 1);
}

void buf_append_varint(struct buf *b, uint64_t v) {
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    buf_append(b, tmp, n);
}

void buf_printf(struct buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_reset(struct buf *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_wipe(struct buf *b) {
    /* explicit_bzero (glibc 2.25) cannot be dropped by the compiler, and is a
     * memset, not a loop of volatile byte stores: wiping every 128 KiB file
     * chunk a byte at a time was the largest cost of a transfer. */
    if (b->data)
        explicit_bzero(b->data, b->cap);
    b->len = 0;
}

uint8_t *buf_steal(struct buf *b, size_t *len_out) {
    uint8_t *d = b->data;
    if (len_out)
        *len_out = b->len;
    buf_init(b);
    return d;
}

int varint_read(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    const uint8_t *q = *p;
    for (int shift = 0; shift < 70; shift += 7) {
        if (q >= end)
            return STATUS_BAD_REQUEST;
        uint8_t byte = *q++;
        if (shift == 63 && byte > 1)
            return STATUS_BAD_REQUEST;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            *p = q;
            return STATUS_OK;
        }
    }
    return STATUS_BAD_REQUEST;
}
