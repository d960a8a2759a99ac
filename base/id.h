/*
 * base/id.h: 128-bit random identifiers, the keys of every record.
 *
 * Ids are drawn from the randomness seam (base/rand.h) by handlers and
 * proposers and never encode personal data. The all-zero id means "none"
 * wherever a record or message has an optional id. Pure except id_new().
 */
#ifndef BASE_ID_H
#define BASE_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_LEN 16
#define ID_HEX_LEN (2 * ID_LEN)

struct id {
    uint8_t b[ID_LEN];
};

/* A fresh random id (rand_bytes()). */
struct id id_new(void);

/* Whether `a` and `b` are the same id. */
bool id_equal(const struct id *a, const struct id *b);

/* Whether `id` is the all-zero id ("none"). */
bool id_is_zero(const struct id *id);

/* Writes the 32 lower-case hex digits of `id` and a NUL into out. */
void id_to_hex(const struct id *id, char out[ID_HEX_LEN + 1]);

/* Parses exactly 32 hex digits (either case). Returns 0 or STATUS_BAD_REQUEST. */
int id_from_hex(const char *hex, struct id *out);

/* Copies a 16-byte id from a peer's buffer. Returns 0, or STATUS_BAD_REQUEST when
 * len is not 16. */
int id_from_bytes(const uint8_t *bytes, size_t len, struct id *out);

#endif
