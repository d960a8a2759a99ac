/*
 * storage/keys.c: big-endian, fixed-width key encoding (see keys.h).
 *
 * Invariant: for two keys built with the same sequence of components, memcmp
 * order equals the order of the components compared one after the other
 * (integers numerically, ids and hashes bytewise). Pure code, any thread.
 */
#include "storage/keys.h"

#include <string.h>

#include "base/check.h"
#include "base/status.h"

void key_put_u64(uint8_t out[8], uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

void key_put_u32(uint8_t out[4], uint32_t v) {
    for (int i = 3; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

uint64_t key_get_u64(const uint8_t in[8]) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

uint32_t key_get_u32(const uint8_t in[4]) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | in[i];
    return v;
}

void key_init(struct key *k) {
    k->len = 0;
}

void key_add_bytes(struct key *k, const void *p, size_t n) {
    CHECK(n <= KEY_MAX - k->len);
    memcpy(k->b + k->len, p, n);
    k->len += n;
}

void key_add_id(struct key *k, const struct id *id) {
    key_add_bytes(k, id->b, ID_LEN);
}

void key_add_u64(struct key *k, uint64_t v) {
    uint8_t b[8];
    key_put_u64(b, v);
    key_add_bytes(k, b, sizeof b);
}

void key_add_u32(struct key *k, uint32_t v) {
    uint8_t b[4];
    key_put_u32(b, v);
    key_add_bytes(k, b, sizeof b);
}

void key_id(struct key *k, const struct id *a) {
    key_init(k);
    key_add_id(k, a);
}

void key_id_u64(struct key *k, const struct id *a, uint64_t v) {
    key_init(k);
    key_add_id(k, a);
    key_add_u64(k, v);
}

void key_id_id(struct key *k, const struct id *a, const struct id *b) {
    key_init(k);
    key_add_id(k, a);
    key_add_id(k, b);
}

void key_id_id_u64(struct key *k, const struct id *a, const struct id *b, uint64_t v) {
    key_init(k);
    key_add_id(k, a);
    key_add_id(k, b);
    key_add_u64(k, v);
}

int key_read_id(const uint8_t *key, size_t key_len, size_t off, struct id *out) {
    if (off > key_len || key_len - off < ID_LEN)
        return STATUS_CORRUPT;
    memcpy(out->b, key + off, ID_LEN);
    return 0;
}

int key_read_u64(const uint8_t *key, size_t key_len, size_t off, uint64_t *out) {
    if (off > key_len || key_len - off < 8)
        return STATUS_CORRUPT;
    *out = key_get_u64(key + off);
    return 0;
}

bool key_has_prefix(const uint8_t *key, size_t key_len, const uint8_t *prefix, size_t prefix_len) {
    return key_len >= prefix_len && (prefix_len == 0 || memcmp(key, prefix, prefix_len) == 0);
}

bool key_prefix_end(const uint8_t *prefix, size_t prefix_len, uint8_t *out, size_t *out_len) {
    /* Drop trailing 0xff bytes, then increment the last remaining byte: every key
     * with the prefix sorts before the result, and nothing without it sorts
     * between them. */
    size_t n = prefix_len;
    while (n > 0 && prefix[n - 1] == 0xff)
        n--;
    if (n == 0)
        return false;
    memcpy(out, prefix, n);
    out[n - 1]++;
    *out_len = n;
    return true;
}

int key_compare(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return a_len < b_len ? -1 : (a_len > b_len ? 1 : 0);
}
