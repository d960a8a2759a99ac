/*
 * storage/keys.h: encoding of RocksDB record keys.
 *
 * Keys are built from 16-byte random ids, 32-byte keyed hashes and unsigned
 * integers written big-endian at a fixed width, so that the byte order RocksDB
 * sorts by is the numeric order of the integers and the keys of one parent (a
 * conversation's messages, a device's inbox) are contiguous under the parent's
 * id as a prefix. Keys never hold personal data (DESIGN.md).
 *
 *   CF_MESSAGES:  conversation id (16) | seq (8)           = key_id_u64()
 *   CF_MEMBERS:   conversation id (16) | account id (16)   = key_id_id()
 *   CF_RECEIPTS:  conversation id | message id | account   = key_init() + key_add_id() x3
 *
 * Pure functions, no I/O, safe from any thread. A `struct key` is a value the
 * caller owns (usually on the stack); adding beyond KEY_MAX bytes is a bug in
 * the caller and aborts (CHECK).
 */
#ifndef STORAGE_KEYS_H
#define STORAGE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"

/* Longest key the builders make: four ids or hashes. */
#define KEY_MAX 64

struct key {
    uint8_t b[KEY_MAX];
    size_t len;
};

/* Writes v big-endian into out[8] / out[4]. */
void key_put_u64(uint8_t out[8], uint64_t v);
void key_put_u32(uint8_t out[4], uint32_t v);
/* Reads a big-endian integer written by key_put_u64() / key_put_u32(). */
uint64_t key_get_u64(const uint8_t in[8]);
uint32_t key_get_u32(const uint8_t in[4]);

/* Empties k. */
void key_init(struct key *k);
/* Append one component. */
void key_add_id(struct key *k, const struct id *id);
void key_add_u64(struct key *k, uint64_t v);
void key_add_u32(struct key *k, uint32_t v);
/* Appends n raw bytes of fixed width (e.g. a 32-byte blind index). Variable-length
 * components would break prefix order; keep them fixed per column family. */
void key_add_bytes(struct key *k, const void *p, size_t n);

/* Shorthands for the common shapes; each resets k first. */
void key_id(struct key *k, const struct id *a);
void key_id_u64(struct key *k, const struct id *a, uint64_t v);
void key_id_id(struct key *k, const struct id *a, const struct id *b);
void key_id_id_u64(struct key *k, const struct id *a, const struct id *b, uint64_t v);

/* Reads the id / integer at byte offset `off` of a key read back from the store.
 * Returns 0, or STATUS_CORRUPT when the key is too short. */
int key_read_id(const uint8_t *key, size_t key_len, size_t off, struct id *out);
int key_read_u64(const uint8_t *key, size_t key_len, size_t off, uint64_t *out);

/* True when key starts with prefix. */
bool key_has_prefix(const uint8_t *key, size_t key_len, const uint8_t *prefix, size_t prefix_len);

/* Computes the smallest byte string greater than every key that starts with
 * `prefix` (the exclusive upper bound of the prefix range) into out[prefix_len],
 * writing its length (<= prefix_len) into *out_len. Returns false when no such
 * bound exists (an empty prefix or one made only of 0xff bytes): the range then
 * runs to the end of the column family. */
bool key_prefix_end(const uint8_t *prefix, size_t prefix_len, uint8_t *out, size_t *out_len);

/* Three-way comparison in RocksDB's default (bytewise) order: negative, 0 or
 * positive as a sorts before, equal to or after b. */
int key_compare(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

#endif
