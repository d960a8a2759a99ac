/*
 * storage/seal.h: AES-256-GCM sealing of one stored value.
 *
 * Every value CareChat writes to RocksDB is sealed under the data key of the
 * record's owner (keystore.h). A sealed value is
 *
 *   version (1) | key id: owner id (16) | key version (4, big-endian)
 *               | nonce (12, random) | ciphertext (= plaintext length) | tag (16)
 *
 * Version 2 (written now) seals each value under its own subkey,
 * HMAC-SHA256(data key, "carechat.v2 seal subkey" || nonce), with that nonce:
 * a data key then never seals two values with one AES key unless two random
 * 96-bit nonces collide (2^48 values for even odds), so the 2^32-seals bound of
 * random GCM nonces under one key no longer limits how much a data key (the
 * server's seals every inbox write and audit record) may seal. Version 1
 * (the data key itself) is still opened.
 *
 * and its additional data is
 *
 *   len(cf name) (1) | cf name | len(record key) (4, big-endian) | record key
 *   | the 33 header bytes above
 *
 * so a value copied under another key or into another column family, or with its
 * header edited, fails to open. Two implementations produce the same format:
 * libsodium's crypto_aead_aes256gcm (AES-NI) and OpenSSL's EVP aes-256-gcm, the
 * fallback on CPUs libsodium cannot serve; SEAL_AUTO picks the first available.
 * Nonces come from libsodium's CSPRNG, never from the base/rand.h test seam, so
 * a deterministic test source can never make a nonce repeat.
 *
 * Keys come prepared (struct seal_key): the HMAC of the subkey derivation has
 * absorbed the data key and the context once, so a value costs the two SHA-256
 * compressions that depend on its nonce rather than four (issue 14). The
 * format does not depend on it.
 *
 * Thread-safe: no state besides libsodium's, initialised by seal_init().
 */
#ifndef STORAGE_SEAL_H
#define STORAGE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/id.h"

#define SEAL_VERSION 2
/* Values sealed before per-value subkeys; opened, never written. */
#define SEAL_VERSION_1 1
#define SEAL_KEY_LEN 32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_HEADER_LEN (1 + ID_LEN + 4 + SEAL_NONCE_LEN)
#define SEAL_OVERHEAD (SEAL_HEADER_LEN + SEAL_TAG_LEN)
/* Largest plaintext accepted: far above any record or file chunk. */
#define SEAL_MAX_PLAIN (64u * 1024 * 1024)
/* Longest record key a seal is bound to: the store's keys are at most 64
 * bytes (KEY_MAX); the bound lets the additional data live on the stack. */
#define SEAL_MAX_RKEY 255

/* Which data key sealed a value: the owner (a patient's id, or the all-zero id
 * for the server) and the version of that owner's key. */
struct seal_key_id {
    struct id owner;
    uint32_t version;
};

/* A data key prepared for seal_value() and seal_open(): its bytes (version 1
 * values are sealed under them directly) and the HMAC-SHA256 state of version
 * 2's subkey derivation after the key and "carechat.v2 seal subkey" were
 * absorbed. As secret as the key itself: keep it in sodium_malloc() memory, or
 * wipe every copy with sodium_memzero() after use. Plain data; copying it
 * copies the key. */
struct seal_key {
    uint8_t bytes[SEAL_KEY_LEN];
    crypto_auth_hmacsha256_state subkey;
};

enum seal_impl {
    SEAL_AUTO = 0, /* libsodium when the CPU supports it, else OpenSSL */
    SEAL_SODIUM,
    SEAL_OPENSSL,
};

/* Initialises libsodium. Call once before anything else here (store_open() and
 * keystore_open() do); later calls do nothing. Returns 0, or STATUS_INTERNAL when
 * libsodium cannot start (logged). */
int seal_init(void);

/* True when libsodium's AES-256-GCM can run on this CPU. */
bool seal_sodium_available(void);

/* Prepares the 32 key bytes `bytes` into *out (every field written). `bytes`
 * may be out->bytes, so a key read into place is prepared where it lies. Call
 * seal_init() first. */
void seal_key_prepare(const uint8_t bytes[SEAL_KEY_LEN], struct seal_key *out);

/* The AES-256-GCM that seal_value() and seal_open() run, by `impl`, under the
 * value's `key` and 12-byte `nonce` with additional data `ad`:
 * seal_aead_encrypt() writes ciphertext || 16-byte tag (plain_len +
 * SEAL_TAG_LEN bytes) to `out`; seal_aead_decrypt() opens `ct` (ct_len bytes,
 * the tag last) into `plain` (ct_len - SEAL_TAG_LEN bytes), which holds
 * nothing usable unless it returns 0. Return 0; STATUS_CORRUPT (decrypt: the
 * tag does not verify, or ct_len < SEAL_TAG_LEN); STATUS_UNAVAILABLE, or
 * STATUS_INTERNAL as seal_value(). Exposed for known-answer tests of both
 * implementations. */
int seal_aead_encrypt(enum seal_impl impl, const uint8_t key[SEAL_KEY_LEN],
                      const uint8_t nonce[SEAL_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                      const uint8_t *plain, size_t plain_len, uint8_t *out);
int seal_aead_decrypt(enum seal_impl impl, const uint8_t key[SEAL_KEY_LEN],
                      const uint8_t nonce[SEAL_NONCE_LEN], const uint8_t *ad, size_t ad_len,
                      const uint8_t *ct, size_t ct_len, uint8_t *plain);

/* Seals `plain` for the record `rkey` in the column family named `cf_name`
 * under `key` (identified by `kid`), replacing the contents of `out`. `key` is
 * only read; it may be shared by threads. Returns 0,
 * STATUS_TOO_LARGE (plain_len above SEAL_MAX_PLAIN, cf_name longer than 255 or
 * rkey_len above SEAL_MAX_RKEY),
 * STATUS_UNAVAILABLE (SEAL_SODIUM asked for on a CPU without AES-NI), or
 * STATUS_INTERNAL (the crypto library failed; logged). */
int seal_value(enum seal_impl impl, const struct seal_key *key, const struct seal_key_id *kid,
               const char *cf_name, const void *rkey, size_t rkey_len, const void *plain,
               size_t plain_len, struct buf *out);

/* Reads the key id from a sealed value's header without opening it. Returns 0,
 * or STATUS_CORRUPT when the value is too short or of an unknown version. */
int seal_key_id_of(const void *sealed, size_t sealed_len, struct seal_key_id *out);

/* Opens a value sealed by seal_value() (with either implementation) into `out`,
 * replacing its contents. Returns 0; STATUS_CORRUPT when it does not open: a
 * wrong key, another cf or record key, a changed bit, a truncated value or an
 * unknown version (not logged here: the caller knows which record it was);
 * STATUS_TOO_LARGE, STATUS_UNAVAILABLE or STATUS_INTERNAL as seal_value(). On
 * failure `out` is left empty. */
int seal_open(enum seal_impl impl, const struct seal_key *key, const char *cf_name,
              const void *rkey, size_t rkey_len, const void *sealed, size_t sealed_len,
              struct buf *out);

#endif
