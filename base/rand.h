/*
 * base/rand.h: the randomness seam, and 128-bit random ids.
 *
 * rand_bytes() reads the kernel's CSPRNG (getrandom(2)). Tests may install a
 * deterministic source with rand_set_source(); production never does. Handlers
 * and proposers draw ids and nonces here and put them into journal entries; apply
 * never does (DESIGN.md). Safe from any thread (a test source must be too).
 */
#ifndef BASE_RAND_H
#define BASE_RAND_H

#include <stddef.h>
#include <stdint.h>

#define ID_LEN 16
#define ID_HEX_LEN (2 * ID_LEN)

/* A random 128-bit identifier. Ids never encode personal data. */
struct id {
    uint8_t b[ID_LEN];
};

/* Fills buf with n random bytes. Aborts if the kernel cannot supply them. */
void rand_bytes(void *buf, size_t n);

/* Replaces the source (NULL restores getrandom). For tests only. */
void rand_set_source(void (*fn)(void *ctx, void *buf, size_t n), void *ctx);

/* A fresh random id. */
struct id id_new(void);

/* Writes the 32 lower-case hex digits of `id` and a NUL into out. */
void id_to_hex(const struct id *id, char out[ID_HEX_LEN + 1]);

/* Parses exactly 32 hex digits (either case). Returns 0 or STATUS_BAD_REQUEST. */
int id_from_hex(const char *hex, struct id *out);

/* Copies a 16-byte id from a peer's buffer. Returns 0, or STATUS_BAD_REQUEST when
 * len is not 16. */
int id_from_bytes(const uint8_t *bytes, size_t len, struct id *out);

#endif
