/*
 * server/records_files.h: the records of files (uploads and completed files),
 * their keys and byte encodings.
 *
 *   CF_FILES   file id (16)                          -> struct rec_file, sealed
 *                   under the conversation's owner (the patient member; the
 *                   server's key otherwise), like the chunks, so that purge
 *                   shreds both
 *              0x01 | expires_at (8) | file id (25)  -> empty: an unfinished
 *                   upload, in expiry order, for the garbage collector
 *              0x02 | account id (17)                -> struct rec_file_usage:
 *                   the bytes of the account's files and its uploads in progress
 *   CF_CHUNKS  file id | chunk index (24)            -> ciphertext (storage/blob.h)
 *
 * A file's state machine (apply_files.c implements it):
 *
 *   FileBegin --> UPLOADING --FileChunk (received grows)--> UPLOADING
 *                    |  \--FileDelete (terminated, or expired by the GC)--> gone
 *                    \--FileComplete (received == size, SHA-256 matches)--> COMPLETE
 *                                                                  (immutable)
 *
 * Chunk i holds the bytes [i * chunk_size, i * chunk_size + its length); only
 * the chunk at `received` may be shorter than chunk_size while uploading (a
 * tus PATCH may end anywhere), and a later FileChunk for it re-sends its bytes
 * and extends it. `hash_state` is the SHA-256 state over [0, received), so
 * completion checks the digest without reading the file back.
 *
 * Encoding: a format byte (REC_FILE_FORMAT) then the fields in a fixed order,
 * integers big-endian, as record_codec.h. Pure functions, any thread.
 */
#ifndef SERVER_RECORDS_FILES_H
#define SERVER_RECORDS_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/keys.h"

#define REC_FILE_FORMAT 1
#define REC_FILE_SHA256_LEN 32
/* sizeof(crypto_hash_sha256_state) in libsodium 1.0.18: state[8], count, buf[64]
 * (apply_files.c checks it). */
#define REC_FILE_HASH_STATE_LEN 104

enum rec_file_state { REC_FILE_UPLOADING = 1, REC_FILE_COMPLETE = 2 };

struct rec_file {
    uint32_t state; /* enum rec_file_state */
    struct id conversation;
    bool has_owner;
    struct id owner; /* whose data key seals the file and its chunks */
    struct id uploader, uploader_device;
    uint64_t size; /* declared ciphertext bytes */
    uint32_t chunk_size;
    uint64_t received; /* stored contiguously from 0 */
    int64_t created_at, expires_at, completed_at;
    /* The retention side (a restored file is visible again until this time,
     * issue 12): 0 while not set. Kept here so the record need not change. */
    int64_t visible_until;
    /* The whole ciphertext's, once COMPLETE; while UPLOADING, the one a tus
     * creation declared (all zero: none). */
    uint8_t sha256[REC_FILE_SHA256_LEN];
    uint8_t hash_state[REC_FILE_HASH_STATE_LEN];
    /* The message that carries the file (FileBind): the client_msg_id of the
     * uploader's Send in the conversation. */
    bool has_message;
    struct id client_msg_id;
};

struct rec_file_usage {
    uint64_t bytes;   /* declared sizes of the account's stored and unfinished files */
    uint32_t uploads; /* unfinished uploads */
};

void rec_file_encode(const struct rec_file *f, struct buf *out);
/* Returns 0 or STATUS_CORRUPT. */
int rec_file_decode(const uint8_t *data, size_t len, struct rec_file *out);
void rec_file_usage_encode(const struct rec_file_usage *u, struct buf *out);
int rec_file_usage_decode(const uint8_t *data, size_t len, struct rec_file_usage *out);

/* The number of chunks holding bytes of [0, received). */
uint64_t rec_file_chunks(const struct rec_file *f);

void rec_key_file(struct key *k, const struct id *file);
void rec_key_file_expiry(struct key *k, int64_t expires_at, const struct id *file);
/* The prefix of every expiry key (one byte). */
void rec_key_file_expiry_prefix(struct key *k);
#define REC_KEY_FILE_EXPIRY_LEN (1 + 8 + ID_LEN)
void rec_key_file_usage(struct key *k, const struct id *account);

#endif
