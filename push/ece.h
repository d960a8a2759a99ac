/*
 * push/ece.h: Web Push message encryption (RFC 8291) in the aes128gcm content
 * coding (RFC 8188).
 *
 *   ecdh_secret = ECDH(as_private, ua_public)                    P-256
 *   IKM   = HKDF(salt=auth_secret, ikm=ecdh_secret,
 *                info="WebPush: info" 0x00 ua_public as_public, 32)
 *   PRK   = HKDF-Extract(salt, IKM)
 *   CEK   = HKDF-Expand(PRK, "Content-Encoding: aes128gcm" 0x00, 16)
 *   NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce" 0x00, 12)
 *   body  = salt(16) rs(4, big endian) idlen(1)=65 as_public(65)
 *           AES-128-GCM(CEK, NONCE, plaintext 0x02)        one record
 *
 * HKDF runs on libsodium's HMAC-SHA256, ECDH and AES-GCM on OpenSSL. Every
 * intermediate secret is wiped before return. No global state: any thread.
 */
#ifndef PUSH_ECE_H
#define PUSH_ECE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "push/jose.h"

#define PUSH_ECE_SALT_LEN 16
#define PUSH_ECE_AUTH_LEN 16
#define PUSH_ECE_RS 4096
/* The largest plaintext one record holds (rs minus tag and delimiter). */
#define PUSH_ECE_MAX_PLAIN (PUSH_ECE_RS - 16 - 1)

/* Makes a P-256 key from a 32-byte private scalar (for known-answer tests).
 * Returns 0 and *out (EVP_PKEY_free()), or STATUS_BAD_REQUEST. */
int push_ece_key_from_private(const uint8_t priv[32], EVP_PKEY **out);

/* Encrypts `plain` (at most PUSH_ECE_MAX_PLAIN bytes) for the subscription
 * (`ua_public`, `auth`) and appends the aes128gcm body to `out`. `as_key` is
 * the sender's P-256 key and `salt` 16 bytes; pass NULL for both to use a fresh
 * key and a random salt (what every real message must do). Returns 0;
 * STATUS_BAD_REQUEST when ua_public is not a point on P-256 or plain is too
 * long; STATUS_INTERNAL when OpenSSL fails. Nothing is appended on failure. */
int push_ece_encrypt(const uint8_t ua_public[PUSH_P256_POINT_LEN],
                     const uint8_t auth[PUSH_ECE_AUTH_LEN], EVP_PKEY *as_key, const uint8_t *salt,
                     const uint8_t *plain, size_t plain_len, struct buf *out);

#endif
