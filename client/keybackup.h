/*
 * client/keybackup.h: the format of an account's end-to-end encrypted key
 * backup (PROTOCOL.md "Key backup", for client authors): the recovery key a
 * person writes down, the backup key derived from it, and the segments the
 * server stores without being able to open them.
 *
 * What every carechat client must agree on, format version
 * KEYBACKUP_VERSION (integers big-endian, ids their 16 bytes):
 *
 *   recovery secret  KEYBACKUP_SECRET_LEN (20) random bytes: 160 bits, drawn
 *                    once per backup, never sent anywhere
 *   recovery key     what the person keeps, 44 characters: the secret in
 *                    Crockford base32 (alphabet 0-9 A-Z without I L O U,
 *                    most significant bit first: 32 characters), then a
 *                    20-bit checksum in 4 more characters, the first 20 bits
 *                    of SHA-256("carechat.v1 recovery key" | secret); the 36
 *                    characters in 9 groups of 4 joined by '-'. Readers ignore
 *                    case, spaces and dashes, read O as 0 and I, L as 1, and
 *                    refuse a checksum that does not match before anything
 *                    else (a typo is caught on the device, not by the server)
 *   backup key       HKDF-SHA256 (RFC 5869) with
 *                      salt = "carechat.v1 key backup"             (22 bytes)
 *                      IKM  = the recovery secret                  (20)
 *                      info = "carechat.v1 key backup key" | account id (26 + 16)
 *                      L    = 32
 *                    so one recovery key gives each account its own key
 *   key id           the first 16 bytes of HMAC-SHA256(key = backup key,
 *                    "carechat.v1 key backup id"): names the key to the
 *                    server (PutKeyBackupSegment.key_id), which refuses
 *                    segments under another key than the backup's, so a
 *                    wrong recovery key is told before any segment is read
 *   segment          what PutKeyBackupSegment carries:
 *                      version (1 byte: 1) | nonce (24, random) |
 *                      XChaCha20-Poly1305-IETF(backup key, nonce, AD, plaintext)
 *                    with additional data (50 bytes)
 *                      "carechat.v1 key backup" (22) | version (4) |
 *                      account id (16) | segment seq (8)
 *                    and plaintext
 *                      count (4) | count records of 64 bytes:
 *                        message id (16) | conversation id (16) | content key (32)
 *                    (the content key is a message's body key, envelope.h).
 *                    A segment moved to another seq or account, altered,
 *                    truncated or made under another key does not open.
 *
 * A backup is the union of the records of all its segments (a message id may
 * appear in several; a compaction writes the union anew as new segments, then
 * deletes the older ones).
 *
 * Secrets (the recovery secret, the backup key, content keys) are wiped by
 * this module wherever it copies them; the caller wipes its own. Pure
 * functions (randomness from rand_bytes(), base/rand.h), any thread.
 */
#ifndef CLIENT_KEYBACKUP_H
#define CLIENT_KEYBACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"

#define KEYBACKUP_VERSION 1
#define KEYBACKUP_SECRET_LEN 20
#define KEYBACKUP_KEY_LEN 32
#define KEYBACKUP_KEY_ID_LEN 16
/* The recovery key as text: 9 groups of 4 characters and 8 dashes. */
#define KEYBACKUP_RECOVERY_LEN 44
#define KEYBACKUP_RECORD_LEN 64
/* Bytes of a segment beside its records: version, nonce, count, tag. */
#define KEYBACKUP_OVERHEAD (1 + 24 + 4 + 16)

/* One message's content key, as a backup holds it. */
struct keybackup_record {
    struct id message_id;
    struct id conversation_id;
    uint8_t key[KEYBACKUP_KEY_LEN];
};

/* A new recovery secret from rand_bytes(). */
void keybackup_secret_new(uint8_t secret[KEYBACKUP_SECRET_LEN]);

/* The recovery key of `secret` as text into out[KEYBACKUP_RECOVERY_LEN + 1]
 * (NUL-terminated; the caller wipes it). */
void keybackup_recovery_format(const uint8_t secret[KEYBACKUP_SECRET_LEN],
                               char out[KEYBACKUP_RECOVERY_LEN + 1]);

/* Reads a recovery key typed or pasted by a person (`text`, NUL-terminated;
 * case, spaces, tabs, newlines and dashes ignored; O read as 0, I and L as
 * 1). Returns 0 with the secret; STATUS_BAD_REQUEST when it is not 36
 * characters of the alphabet; STATUS_CORRUPT when its checksum does not
 * match (a typo). Writes `secret` only on success. */
int keybackup_recovery_parse(const char *text, uint8_t secret[KEYBACKUP_SECRET_LEN]);

/* The backup key of `account` from `secret` (the caller wipes it). */
void keybackup_derive(const uint8_t secret[KEYBACKUP_SECRET_LEN], const struct id *account,
                      uint8_t key[KEYBACKUP_KEY_LEN]);

/* The key id of backup key `key`. */
void keybackup_key_id(const uint8_t key[KEYBACKUP_KEY_LEN], uint8_t id[KEYBACKUP_KEY_ID_LEN]);

/* The bytes of a segment of `n` records. */
size_t keybackup_segment_len(size_t n);

/* The most records a segment of at most `segment_max` bytes holds (0 when
 * not even one fits). */
size_t keybackup_records_per_segment(size_t segment_max);

/* Seals the `n` records at `records` as segment `seq` of `account`'s backup
 * under `key`, replacing the contents of `out` (keybackup_segment_len(n)
 * bytes). Returns 0, or STATUS_BAD_REQUEST for seq 0 or more records than a
 * u32 counts. */
int keybackup_seal(const uint8_t key[KEYBACKUP_KEY_LEN], const struct id *account, uint64_t seq,
                   const struct keybackup_record *records, size_t n, struct buf *out);

/* Opens segment `seq` of `account`'s backup (`len` bytes at `data`) with
 * `key`. Returns 0 with *out (n records; free with keybackup_records_free())
 * and *n; STATUS_CORRUPT when it does not open (another key, seq or account,
 * altered or truncated, another version, a count that does not match its
 * length), leaving *out NULL and *n 0. */
int keybackup_open(const uint8_t key[KEYBACKUP_KEY_LEN], const struct id *account, uint64_t seq,
                   const uint8_t *data, size_t len, struct keybackup_record **out, size_t *n);

/* Wipes and frees `n` records from keybackup_open(). Accepts NULL. */
void keybackup_records_free(struct keybackup_record *records, size_t n);

#endif
