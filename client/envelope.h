/*
 * client/envelope.h: the end-to-end crypto of one message (DESIGN.md "End-to-end
 * encryption"), and the device keys it needs.
 *
 * Keys of a device:
 *   - an Ed25519 identity key (struct envelope_identity), which signs;
 *   - a medium-term X25519 encryption key (struct envelope_enc_key) with a random
 *     key id and an expiry, whose public half travels as a struct
 *     envelope_device_key signed by the identity key.
 *
 * A message: the body is encrypted once with XChaCha20-Poly1305 under a fresh
 * random 32-byte body key; the body key is wrapped for every recipient device
 * with HPKE base mode (client/hpke.h); the sender's identity key signs the
 * header, a hash of the encrypted body and every wrap. The server can check which
 * devices a message is wrapped for but never sees the body key.
 *
 * Byte layouts: the signed ones are exactly protocol/carechat.proto's
 * (DeviceKeys.signature, Envelope.signature); the rest (marked "client") is
 * what every carechat client must agree on. Integers are big-endian; ids
 * (struct id) are their 16 bytes; strings are ASCII without a NUL.
 *
 *   Encryption key statement (DeviceKeys.signature; client/statement.h), 70 bytes:
 *     "carechat.v1 encryption key"  26 bytes
 *     X25519 public key             32
 *     key_id                        4   (uint32, DeviceKeys.encryption_key_id)
 *     expires_at_ms                 8   (int64 as two's complement)
 *
 *   Binding B (protocol/transcript.h), 101 bytes: version (2), conversation,
 *   client_msg_id, sender device, urgent flag, the sender's clock, the
 *   per-(conversation, sender device) counter, and the hash of the sorted
 *   (device, key id) list of every recipient. A server that changes any of
 *   them (replays a message as a new one, drops the urgent flag, hides or
 *   adds a recipient) makes the wraps, the body and the inner signature fail.
 *
 *   Inner signature (client; Ed25519 by the sender's identity key, detached)
 *   over, 184 bytes:
 *     "carechat.v2 message"     19 bytes
 *     B                         101
 *     SHA-256(Envelope.header)  32
 *     SHA-256(message)          32
 *
 *   Body (client): XChaCha20-Poly1305-IETF(key = body key, nonce =
 *     Envelope.body_nonce, additional data = B) of the plaintext
 *     inner signature (64) | message length (4) | message | zero padding,
 *     the part after the signature padded to envelope_padded_len() (a power
 *     of two, at least ENVELOPE_MIN_PADDED), so the stored size tells only the
 *     bucket, not the length.
 *
 *   Why two signatures: the server hands each device the envelope with only
 *   that device's KeyWrap (carechat.proto StoredMessage), so a recipient cannot
 *   rebuild Envelope.signature's transcript, which covers every wrap. The
 *   inner signature, inside the ciphertext, is what a recipient verifies; the
 *   outer one (protocol/transcript.h) binds the complete wrap set, and the
 *   server verifies it before storing anything (envelope_verify() here).
 *
 *   Wrap for a device (client; KeyWrap): HPKE base mode single-shot seal of the
 *     32-byte body key to the device's X25519 key with
 *       info = "carechat.v1 wrap" (16 bytes) | device_id (16) | key_id (4)
 *       aad  = B
 *     giving KeyWrap.enc (32 bytes) and KeyWrap.wrapped_key (48 bytes).
 *
 *   Transcript the sender signs (Envelope.signature): protocol/transcript.h.
 *
 * Secrets (identity and encryption private keys, body keys) live in
 * sodium_malloc memory or are wiped on every path. Time comes from clock_now()
 * (base/clock.h) and randomness from rand_bytes() (base/rand.h). No global state:
 * safe from any thread; a key object may be shared by threads that only read it.
 */
#ifndef CLIENT_ENVELOPE_H
#define CLIENT_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/rand.h"
#include "protocol/proto.h"

#define ENVELOPE_VERSION 2
#define ENVELOPE_SIGN_PK_LEN 32     /* Ed25519 public key */
#define ENVELOPE_SIG_LEN 64         /* Ed25519 signature */
#define ENVELOPE_ENC_PK_LEN 32      /* X25519 public key */
#define ENVELOPE_ENC_LEN 32         /* HPKE enc */
#define ENVELOPE_WRAPPED_KEY_LEN 48 /* body key + Poly1305 tag */
#define ENVELOPE_NONCE_LEN 24       /* XChaCha20 nonce */
#define ENVELOPE_TAG_LEN 16
#define ENVELOPE_BINDING_LEN 101
#define ENVELOPE_BODY_KEY_LEN 32 /* a message's body (content) key */
/* The smallest padded message (length prefix included). */
#define ENVELOPE_MIN_PADDED 256
#define ENVELOPE_MAX_BODY_LEN (64 * 1024) /* Envelope.body (ciphertext); files use secretstream */
#define ENVELOPE_MAX_WRAPS 512
/* Largest message: the body limit less the inner signature, the tag and the
 * length prefix. */
#define ENVELOPE_MAX_MESSAGE_LEN (ENVELOPE_MAX_BODY_LEN - ENVELOPE_SIG_LEN - ENVELOPE_TAG_LEN - 4)

/* The padded size of a message of `message_len` bytes with its 4-byte length
 * prefix: the next power of two from ENVELOPE_MIN_PADDED, at most what the
 * body limit leaves. */
size_t envelope_padded_len(size_t message_len);

/* ---- device keys ---- */

/* A device's Ed25519 identity key pair (private half in sodium_malloc memory). */
struct envelope_identity;

/* A fresh identity key pair from rand_bytes(). Stores it in *out (free with
 * envelope_identity_free()) and returns 0. */
int envelope_identity_new(struct envelope_identity **out);

/* Copies the public key. */
void envelope_identity_public(const struct envelope_identity *identity,
                              uint8_t pk[ENVELOPE_SIGN_PK_LEN]);

/* Wipes and frees. Accepts NULL. */
void envelope_identity_free(struct envelope_identity *identity);

/* Length of an identity key's export: its Ed25519 seed, from which the whole
 * key pair is derived again. */
#define ENVELOPE_IDENTITY_SEED_LEN 32

/* Writes the secret seed of `identity` to `seed`, for a device's key file. The
 * caller keeps `seed` in sodium_malloc memory or wipes it. */
void envelope_identity_export(const struct envelope_identity *identity,
                              uint8_t seed[ENVELOPE_IDENTITY_SEED_LEN]);

/* The identity key pair derived from `seed` (borrowed; from
 * envelope_identity_export()). Stores it in *out (free with
 * envelope_identity_free()) and returns 0. */
int envelope_identity_import(const uint8_t seed[ENVELOPE_IDENTITY_SEED_LEN],
                             struct envelope_identity **out);

/* Signs the `len` bytes at `msg` (a protocol statement: a device key, a device
 * list) with `identity`; writes the detached Ed25519 signature to `sig`. */
void envelope_identity_sign(const struct envelope_identity *identity, const uint8_t *msg,
                            size_t len, uint8_t sig[ENVELOPE_SIG_LEN]);

/* Verifies the detached Ed25519 signature `sig` over the `len` bytes at `msg`
 * by the identity key `pk`. Returns 0, or STATUS_CORRUPT when it does not
 * verify. */
int envelope_signature_verify(const uint8_t pk[ENVELOPE_SIGN_PK_LEN], const uint8_t *msg,
                              size_t len, const uint8_t sig[ENVELOPE_SIG_LEN]);

/* The public, signed statement of a device's encryption key (layout above;
 * device_id is not part of what is signed: DeviceKeys carries it beside). */
struct envelope_device_key {
    struct id device_id;
    uint32_t key_id;       /* non-zero */
    int64_t expires_at_ms; /* Unix milliseconds; unusable from then on */
    uint8_t pk[ENVELOPE_ENC_PK_LEN];
    uint8_t sig[ENVELOPE_SIG_LEN];
};

/* Checks that `key` is signed by the identity key `identity_pk` and has not
 * expired at `now_ms`. Returns 0; STATUS_CORRUPT when the signature does not
 * verify (wrong identity, or any field changed); STATUS_CONFLICT when
 * `now_ms` >= expires_at_ms. */
int envelope_device_key_verify(const struct envelope_device_key *key,
                               const uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN], int64_t now_ms);

/* A device's X25519 encryption key: the private half (sodium_malloc memory) and
 * its signed public statement. */
struct envelope_enc_key;

/* Makes a fresh encryption key for `device_id` with id `key_id`, expiring at
 * `expires_at_ms`, and signs its statement with `identity`. Stores it in *out
 * (free with envelope_enc_key_free()) and returns 0, or returns
 * STATUS_BAD_REQUEST when `key_id` is 0 or `expires_at_ms` is not after
 * clock_now(). */
int envelope_enc_key_new(const struct envelope_identity *identity, const struct id *device_id,
                         uint32_t key_id, int64_t expires_at_ms, struct envelope_enc_key **out);

/* As envelope_enc_key_new(), with the X25519 private key `sk` (borrowed; from
 * a device's profile) instead of a fresh one, and no expiry check (a device
 * still opens what was wrapped to its key before it expired). Returns 0, or
 * STATUS_BAD_REQUEST when `key_id` is 0. */
int envelope_enc_key_import(const struct envelope_identity *identity, const struct id *device_id,
                            uint32_t key_id, int64_t expires_at_ms,
                            const uint8_t sk[ENVELOPE_ENC_PK_LEN], struct envelope_enc_key **out);

/* The signed public statement, owned by `key` and valid until it is freed. */
const struct envelope_device_key *envelope_enc_key_public(const struct envelope_enc_key *key);

/* Wipes and frees. Accepts NULL. */
void envelope_enc_key_free(struct envelope_enc_key *key);

/* ---- messages ---- */

/* What binding B (above) holds besides the version and the recipients. */
struct envelope_header {
    struct id conversation_id;
    struct id client_msg_id; /* the sender's random idempotency key */
    struct id sender_device_id;
    bool urgent;      /* Send.urgent */
    int64_t sent_at;  /* Envelope.sent_at: the sender's clock, Unix ms */
    uint64_t counter; /* Envelope.counter: 1, 2, ... per (conversation, sender device) */
};

/* One recipient of a message: a device and the key id its wrap is for. */
struct envelope_ref {
    struct id device_id;
    uint32_t key_id;
};

/* The body key wrapped for one device (carechat.proto KeyWrap). */
struct envelope_wrap {
    struct id device_id;
    uint32_t key_id; /* which encryption key of the device it is wrapped to */
    uint8_t enc[ENVELOPE_ENC_LEN];
    uint8_t wrapped_key[ENVELOPE_WRAPPED_KEY_LEN];
};

/* An encrypted message (carechat.proto Envelope plus the conversation and
 * client_msg_id of its Send), embedded by value. `opaque_header`, `body` and
 * `wraps` are heap memory (malloc; may be NULL when their length is 0) owned
 * by the struct and released by envelope_cleanup(); whoever fills one in by
 * hand (a decoder) allocates them with malloc too. */
struct envelope {
    uint32_t version; /* ENVELOPE_VERSION */
    struct envelope_header header;
    uint8_t *opaque_header; /* Envelope.header: always empty (it travels in clear), signed */
    size_t opaque_header_len;
    uint8_t nonce[ENVELOPE_NONCE_LEN];
    uint8_t *body; /* ciphertext: message length + ENVELOPE_SIG_LEN + ENVELOPE_TAG_LEN */
    size_t body_len;
    struct envelope_wrap *wraps; /* strictly ascending by device_id */
    size_t n_wraps;
    uint8_t sig[ENVELOPE_SIG_LEN];
    /* For envelope_open() of an envelope carrying only some wraps: every
     * recipient the sender signed (StoredMessage.recipients), strictly
     * ascending by device_id; NULL and 0 to take them from the wraps. */
    struct envelope_ref *recipients;
    size_t n_recipients;
};

/* One device to wrap the body key for: its signed encryption key and the
 * identity key that must have signed it (from the account's device list, which
 * the caller has verified). */
struct envelope_recipient {
    const struct envelope_device_key *key;
    uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN];
};

/* Encrypts `body` (`body_len` bytes) for `recipients` and signs the result with
 * `sender`. Every recipient's key is checked with envelope_device_key_verify()
 * at clock_now() first. On success fills *out (release with envelope_cleanup())
 * with the wraps sorted by device id, and returns 0. Otherwise writes nothing to
 * *out and returns STATUS_BAD_REQUEST (no recipients, more than
 * ENVELOPE_MAX_WRAPS, the same device twice, or a low-order X25519 key),
 * STATUS_TOO_LARGE (`body_len` above ENVELOPE_MAX_MESSAGE_LEN), STATUS_CORRUPT (a
 * recipient key not signed by its identity key) or STATUS_CONFLICT (a recipient
 * key expired). */
int envelope_seal(const struct envelope_header *header, const uint8_t *body, size_t body_len,
                  const struct envelope_recipient *recipients, size_t n_recipients,
                  const struct envelope_identity *sender, struct envelope *out);

/* The wire form (carechat.proto Envelope) of a sealed `env`: `pe` points into
 * `env`, which must outlive it, and into the wrap arrays here, which
 * envelope_wire_cleanup() frees. */
struct envelope_wire {
    Carechat__V1__Envelope pe;
    Carechat__V1__KeyWrap *wraps;
    Carechat__V1__KeyWrap **wrapp;
};
void envelope_wire(const struct envelope *env, struct envelope_wire *out);
void envelope_wire_cleanup(struct envelope_wire *w);
/* envelope_seal() that also copies the body key it drew to `body_key` (the
 * caller wipes it): for a sender that keeps the keys of the messages it sent
 * (an account's key backup, client/keybackup.h). */
int envelope_seal_keep_key(const struct envelope_header *header, const uint8_t *body,
                           size_t body_len, const struct envelope_recipient *recipients,
                           size_t n_recipients, const struct envelope_identity *sender,
                           struct envelope *out, uint8_t body_key[ENVELOPE_BODY_KEY_LEN]);

/* Verifies Envelope.signature (the transcript over every wrap) of the whole
 * envelope `env` against the sender's identity key `sender_pk`. Returns 0;
 * STATUS_CORRUPT when it does not verify (any bound field, the body,
 * nonce, any wrap, the wrap count or the signature changed, or another
 * sender); or the shape errors of envelope_open(). */
int envelope_verify(const struct envelope *env, const uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN]);

/* Finds the wrap for the device and key of `key` in `env` (which may carry
 * only that wrap, as a recipient receives it), unwraps the body key, decrypts
 * the body and verifies the inner signature against the sender's identity key
 * `sender_pk` (the one the sender's device list names for
 * header.sender_device_id); writes the message into `body_out`, replacing its
 * contents (NUL-terminated beyond len). Returns 0, or (leaving `body_out`
 * empty):
 *   STATUS_BAD_REQUEST  malformed: another version, no wraps, wraps not
 *                       strictly ascending, a non-empty header, or a body
 *                       shorter than the inner signature and tag;
 *   STATUS_TOO_LARGE    more than ENVELOPE_MAX_WRAPS wraps or a body above
 *                       ENVELOPE_MAX_BODY_LEN;
 *   STATUS_CORRUPT      the wrap or the body does not decrypt (tampered wrap,
 *                       body, nonce or bound field) or the inner signature
 *                       does not verify (another sender);
 *   STATUS_NOT_FOUND    no wrap for key's device;
 *   STATUS_CONFLICT     the device's wrap is for another key id (e.g. a key
 *                       rotated away; the wrap's key_id says which).
 * The body is plaintext a user wrote: the caller wipes `body_out` when done. */
int envelope_open(const struct envelope *env, const uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN],
                  const struct envelope_enc_key *key, struct buf *body_out);

/* The first half of envelope_open(): finds the wrap for the device and key
 * of `key` and unwraps the body key into `body_key` (the caller wipes it).
 * Returns 0, or envelope_open()'s shape errors, STATUS_NOT_FOUND,
 * STATUS_CONFLICT, or STATUS_CORRUPT for a wrap that does not open (or a
 * recipient list without this device). */
int envelope_unwrap(const struct envelope *env, const struct envelope_enc_key *key,
                    uint8_t body_key[ENVELOPE_BODY_KEY_LEN]);

/* The second half of envelope_open(), with a body key obtained otherwise
 * (its wrap, or a key backup: client/keybackup.h): decrypts the body under
 * binding B and verifies the inner signature against `sender_pk`. The
 * envelope may carry no wraps (a device the sender did not wrap for), but
 * then must name its recipients (`recipients`), from which B is made.
 * Returns 0 with the message in `body_out` (as envelope_open()); the shape
 * errors of envelope_open() (BAD_REQUEST also for neither wraps nor
 * recipients); or STATUS_CORRUPT (another key, or anything bound changed). */
int envelope_open_body(const struct envelope *env, const uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN],
                       const uint8_t body_key[ENVELOPE_BODY_KEY_LEN], struct buf *body_out);

/* Frees body and wraps and leaves `env` empty. Accepts NULL. */
void envelope_cleanup(struct envelope *env);

#endif
