/*
 * client/hkdf.h: HKDF-SHA256 (RFC 5869) on libsodium's HMAC-SHA256.
 *
 * libsodium 1.0.18 has no HKDF (crypto_kdf_hkdf_* came in 1.0.19, and
 * crypto_kdf_* is BLAKE2b), so the client builds it here on
 * crypto_auth_hmacsha256_*. HPKE (client/hpke.h) is the main user.
 *
 * Extract can be fed in pieces (hkdf_extract_init/update/final), so callers that
 * derive from a secret concatenated with labels (HPKE's LabeledExtract) never
 * copy the secret into a temporary buffer. Every intermediate value (HMAC states,
 * the T(i) blocks of Expand) is wiped with sodium_memzero before returning; the
 * caller owns and wipes the PRK and OKM it asked for.
 *
 * No global state: safe from any thread.
 */
#ifndef CLIENT_HKDF_H
#define CLIENT_HKDF_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

/* HashLen of SHA-256: the size of a PRK and of one Expand block. */
#define HKDF_SHA256_LEN 32
/* The largest OKM Expand may produce (RFC 5869 section 2.3: L <= 255 * HashLen). */
#define HKDF_SHA256_MAX_OKM (255 * HKDF_SHA256_LEN)

/* An Extract in progress: embed it (on the stack), init, update, final. */
struct hkdf_extract {
    crypto_auth_hmacsha256_state st;
};

/* Starts PRK = HMAC-SHA256(salt, IKM). `salt` may be NULL when `salt_len` is 0;
 * an empty salt means HashLen zero bytes, as the RFC says. */
void hkdf_extract_init(struct hkdf_extract *x, const uint8_t *salt, size_t salt_len);

/* Appends `len` bytes at `ikm` (NULL allowed when len is 0) to the IKM. */
void hkdf_extract_update(struct hkdf_extract *x, const uint8_t *ikm, size_t len);

/* Writes the 32-byte PRK to `prk` and wipes the state; `x` must be initialised
 * again before reuse. */
void hkdf_extract_final(struct hkdf_extract *x, uint8_t prk[HKDF_SHA256_LEN]);

/* One-shot HKDF-Extract(salt, IKM) into `prk`. NULL pointers are allowed with
 * length 0. */
void hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                  uint8_t prk[HKDF_SHA256_LEN]);

/* HKDF-Expand(PRK, info, L): writes `okm_len` bytes to `okm`. `info` may be NULL
 * when `info_len` is 0. Returns 0, or STATUS_BAD_REQUEST (and writes nothing)
 * when `prk_len` is below HKDF_SHA256_LEN or `okm_len` is above
 * HKDF_SHA256_MAX_OKM. `okm` must not overlap `prk` or `info`. */
int hkdf_expand(const uint8_t *prk, size_t prk_len, const uint8_t *info, size_t info_len,
                uint8_t *okm, size_t okm_len);

/* Extract then Expand; the PRK in between is wiped. Returns what hkdf_expand()
 * returns. */
int hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len);

#endif
