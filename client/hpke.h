/*
 * client/hpke.h: HPKE base mode (RFC 9180) for one suite,
 * DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305.
 *
 * The suite is fixed: kem_id 0x0020, kdf_id 0x0001, aead_id 0x0003. Keys are raw
 * 32-byte X25519 strings (SerializePublicKey/SerializePrivateKey of RFC 9180
 * 7.1.1), `enc` is the sender's 32-byte ephemeral public key, and a ciphertext
 * is the plaintext's length plus a 16-byte Poly1305 tag.
 *
 * Two ways to use it:
 *   - single shot, hpke_seal()/hpke_open(): one message per `enc`, at sequence
 *     number 0 (what the envelope uses to wrap a body key per device);
 *   - a context, hpke_setup_sender()/hpke_setup_recipient() then
 *     hpke_ctx_seal()/hpke_ctx_open() for a series of messages in order, and
 *     hpke_ctx_export() for the secret export interface (RFC 9180 5.3).
 *
 * Failure rules the RFC asks for: an X25519 output of all zeros (a low-order
 * public key or enc) is an error, never a key; a sequence number never wraps.
 * Secrets: contexts live in sodium_malloc memory; every intermediate (DH output,
 * shared secret, key schedule) is wiped before returning. The ephemeral key is
 * drawn with rand_bytes() (base/rand.h), so a test source makes it
 * deterministic. No global state: safe from any thread; one context must not be
 * used by two threads at once.
 */
#ifndef CLIENT_HPKE_H
#define CLIENT_HPKE_H

#include <stddef.h>
#include <stdint.h>

#define HPKE_KEM_ID 0x0020  /* DHKEM(X25519, HKDF-SHA256) */
#define HPKE_KDF_ID 0x0001  /* HKDF-SHA256 */
#define HPKE_AEAD_ID 0x0003 /* ChaCha20-Poly1305 */

#define HPKE_PK_LEN 32             /* Npk: X25519 public key */
#define HPKE_SK_LEN 32             /* Nsk: X25519 private key */
#define HPKE_ENC_LEN 32            /* Nenc: encapsulated key */
#define HPKE_SECRET_LEN 32         /* Nsecret: KEM shared secret */
#define HPKE_KEY_LEN 32            /* Nk */
#define HPKE_NONCE_LEN 12          /* Nn */
#define HPKE_TAG_LEN 16            /* Nt */
#define HPKE_MAX_EXPORT (255 * 32) /* the largest L hpke_ctx_export() accepts */

/* A fresh random key pair: `sk` from rand_bytes(), `pk` its public key. The
 * caller keeps `sk` in sodium_malloc memory or wipes it. */
void hpke_keypair(uint8_t pk[HPKE_PK_LEN], uint8_t sk[HPKE_SK_LEN]);

/* DeriveKeyPair(ikm) of RFC 9180 7.1.3 for X25519: a deterministic key pair from
 * `ikm` (at least HPKE_SK_LEN bytes of secret input). Returns 0, or
 * STATUS_BAD_REQUEST when `ikm_len` is below HPKE_SK_LEN. */
int hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len, uint8_t pk[HPKE_PK_LEN],
                        uint8_t sk[HPKE_SK_LEN]);

/* Single-shot seal (RFC 9180 6.1) to `pk_r` with `info` and `aad` (either may be
 * NULL with length 0): writes the encapsulated key to `enc` and `pt_len` +
 * HPKE_TAG_LEN bytes to `ct`. Returns 0; STATUS_BAD_REQUEST when `pk_r` is a
 * low-order point (the DH output would be all zeros); STATUS_TOO_LARGE when
 * `pt_len` is above what ChaCha20-Poly1305 can seal. `ct` may not overlap `pt`. */
int hpke_seal(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t *info, size_t info_len,
              const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
              uint8_t enc[HPKE_ENC_LEN], uint8_t *ct);

/* Single-shot open: recovers the `ct_len` - HPKE_TAG_LEN plaintext bytes into
 * `pt` with the recipient's private key `sk_r`. Returns 0, or STATUS_CORRUPT when
 * the message does not authenticate: wrong key, info or aad, a tampered `enc` or
 * `ct`, an `enc` that yields an all-zero DH output, or `ct_len` shorter than the
 * tag. On failure `pt` holds nothing of the message. */
int hpke_open(const uint8_t sk_r[HPKE_SK_LEN], const uint8_t enc[HPKE_ENC_LEN], const uint8_t *info,
              size_t info_len, const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t ct_len,
              uint8_t *pt);

/* An encryption context: the key schedule's key, base nonce, exporter secret and
 * the next sequence number, for one role (sender or recipient). */
struct hpke_ctx;

/* SetupBaseS: encapsulates to `pk_r` with a fresh ephemeral key, writes `enc`,
 * and on success stores a sender context in *out (free with hpke_ctx_free()).
 * Returns 0 or STATUS_BAD_REQUEST (low-order `pk_r`). */
int hpke_setup_sender(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t *info, size_t info_len,
                      uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx **out);

/* SetupBaseS with the ephemeral private key given instead of drawn: for known-
 * answer tests only (reusing an ephemeral key breaks HPKE's security). */
int hpke_setup_sender_with_ephemeral(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t *info,
                                     size_t info_len, const uint8_t sk_e[HPKE_SK_LEN],
                                     uint8_t enc[HPKE_ENC_LEN], struct hpke_ctx **out);

/* SetupBaseR: decapsulates `enc` with `sk_r` and on success stores a recipient
 * context in *out. Returns 0 or STATUS_CORRUPT (an `enc` giving an all-zero DH
 * output). A wrong key or info is only noticed by the first hpke_ctx_open(). */
int hpke_setup_recipient(const uint8_t sk_r[HPKE_SK_LEN], const uint8_t enc[HPKE_ENC_LEN],
                         const uint8_t *info, size_t info_len, struct hpke_ctx **out);

/* Seals the next message of a sender context: writes `pt_len` + HPKE_TAG_LEN
 * bytes to `ct` and advances the sequence number. Returns 0;
 * STATUS_BAD_REQUEST for a recipient context; STATUS_TOO_LARGE for a `pt_len`
 * the AEAD cannot seal; STATUS_CONFLICT when the sequence number is exhausted
 * (2^64 - 1 messages; nothing is written). */
int hpke_ctx_seal(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                  size_t pt_len, uint8_t *ct);

/* Opens the next message of a recipient context into `pt` (`ct_len` -
 * HPKE_TAG_LEN bytes) and advances the sequence number only on success. Returns
 * 0; STATUS_CORRUPT when it does not authenticate (wrong key, info, aad, order,
 * or tampering); STATUS_BAD_REQUEST for a sender context; STATUS_CONFLICT when
 * the sequence number is exhausted. */
int hpke_ctx_open(struct hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *ct,
                  size_t ct_len, uint8_t *pt);

/* Export(exporter_context, L) of RFC 9180 5.3 into `out` (`out_len` = L bytes),
 * for either role. Returns 0, or STATUS_BAD_REQUEST when L exceeds
 * HPKE_MAX_EXPORT. */
int hpke_ctx_export(const struct hpke_ctx *ctx, const uint8_t *exporter_context, size_t context_len,
                    uint8_t *out, size_t out_len);

/* Wipes and frees a context. Accepts NULL. */
void hpke_ctx_free(struct hpke_ctx *ctx);

#endif
