/*
 * base/rand.h: the randomness seam.
 *
 * rand_bytes() reads the kernel's CSPRNG (getrandom(2)), ahead for small
 * requests. Tests may install a deterministic source with rand_set_source(),
 * which only the testonly library //base:rand_testing provides: production
 * binaries cannot contain it. Handlers and proposers draw ids and nonces here
 * and put them into journal entries; apply never does (DESIGN.md); the store
 * draws its seals' nonces here. Safe from any thread (a test source must be
 * too).
 */
#ifndef BASE_RAND_H
#define BASE_RAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fills buf with n random bytes. Aborts if the kernel cannot supply them.
 * Requests of up to 64 bytes are served from 512 bytes per thread read
 * ahead from the kernel (one getrandom(2) per eight to 42 ids or nonces,
 * which the sealing of every stored value draws); bytes handed out are
 * wiped from the pool, and a forked child starts with an empty one. */
void rand_bytes(void *buf, size_t n);

/* Replaces the source (NULL restores getrandom). For tests only: defined by
 * //base:rand_testing (testonly). */
void rand_set_source(void (*fn)(void *ctx, void *buf, size_t n), void *ctx);

#endif
