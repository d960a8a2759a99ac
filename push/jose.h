/*
 * push/jose.h: the JOSE pieces push providers want: base64url, signing keys
 * from PEM, and compact JWTs signed ES256 (APNs provider tokens, VAPID) or
 * RS256 (the FCM service account's OAuth2 assertion).
 *
 * JSON is made by jansson (never by hand), compact, so header and claims are
 * exactly what jansson prints. ES256 signatures are the raw 64-byte r||s that
 * RFC 7518 section 3.4 asks for: OpenSSL gives DER, which is converted with
 * d2i_ECDSA_SIG + BN_bn2binpad.
 *
 * Keys are OpenSSL EVP_PKEYs owned by the caller (EVP_PKEY_free()). No global
 * state: safe from any thread (one key may sign from several threads).
 */
#ifndef PUSH_JOSE_H
#define PUSH_JOSE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "base/buf.h"

/* The length of an uncompressed P-256 point (0x04 || X || Y). */
#define PUSH_P256_POINT_LEN 65
#define PUSH_ES256_SIG_LEN 64

enum push_jose_alg {
    PUSH_JOSE_ES256 = 0, /* ECDSA P-256 SHA-256 */
    PUSH_JOSE_RS256,     /* RSASSA-PKCS1-v1_5 SHA-256 */
};

/* Appends base64url without padding of the n bytes at `in` to `out`. */
void push_jose_b64url(const uint8_t *in, size_t n, struct buf *out);

/* Decodes base64url (padding tolerated) of at most `max` bytes into out.
 * Returns 0 and *out_len, or STATUS_BAD_REQUEST. */
int push_jose_b64url_decode(const char *in, uint8_t *out, size_t max, size_t *out_len);

/* Parses a PEM private key (PKCS#8 "PRIVATE KEY", or "EC PRIVATE KEY" /
 * "RSA PRIVATE KEY") of `len` bytes. `alg` says which kind is wanted: a P-256
 * key for ES256, an RSA key of at least 2048 bits for RS256. An encrypted
 * key is refused (never a passphrase prompt). Returns 0 and *out;
 * STATUS_BAD_REQUEST when the text is no such key. */
int push_jose_load_key(const char *pem, size_t len, enum push_jose_alg alg, EVP_PKEY **out);

/* Reads a PEM key from the credential file `path` (push/secret.h: mode 0600
 * or stricter, at most 16 KiB) and parses it as push_jose_load_key() does;
 * the file's text is wiped. Returns 0 and *out, the file's status, or
 * STATUS_BAD_REQUEST when it holds no such key. */
int push_jose_read_key_file(const char *path, enum push_jose_alg alg, EVP_PKEY **out);

/* Writes the uncompressed public point of the P-256 key `key` into out.
 * Returns 0, or STATUS_BAD_REQUEST when `key` is not a P-256 key. */
int push_jose_ec_public(EVP_PKEY *key, uint8_t out[PUSH_P256_POINT_LEN]);

/* Signs `msg` with `key`: ES256 writes the raw r||s (64 bytes), RS256 the
 * PKCS#1 v1.5 signature (the key's size). Appends the signature to `sig`.
 * Returns 0 or STATUS_INTERNAL. */
int push_jose_sign(EVP_PKEY *key, enum push_jose_alg alg, const uint8_t *msg, size_t len,
                   struct buf *sig);

/* Appends the compact JWT b64url(header) "." b64url(claims) "." b64url(sig) to
 * `out`. `header` gets "alg" set (borrowed; modified); `claims` is borrowed.
 * Returns 0, or STATUS_INTERNAL (nothing appended). */
int push_jose_jwt(EVP_PKEY *key, enum push_jose_alg alg, json_t *header, const json_t *claims,
                  struct buf *out);

#endif
