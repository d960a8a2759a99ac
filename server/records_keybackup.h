/*
 * server/records_keybackup.h: the records of an account's end-to-end
 * encrypted key backup (carechat.proto "Key backup", PROTOCOL.md), in
 * CF_KEY_BACKUP, both sealed under the account's data key, so that the
 * account's purge (its data key destroyed) shreds them:
 *
 *   account id (16)           -> struct rec_key_backup: the index of the
 *        account's segments (seq, size, time, SHA-256, uploading device), the
 *        next segment number, the id of the key the segments are made under
 *        and the ids of keys whose backup was turned off
 *   account id (16) | seq (8) -> the segment: the client's ciphertext as it
 *        was put, opaque to the server (blob files: up to a frame each)
 *
 * Reading the index is enough to list a backup: no segment is opened for it.
 * Segment numbers only grow; the index outlives DeleteKeyBackup (with no
 * segments) so that a number is never given twice within an account, and
 * goes at the account's purge.
 *
 * Encoding: a format byte (REC_KEY_BACKUP_FORMAT), then the fields in a fixed
 * order (server/record_codec.h). Pure, any thread.
 */
#ifndef SERVER_RECORDS_KEYBACKUP_H
#define SERVER_RECORDS_KEYBACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "storage/keys.h"

#define REC_KEY_BACKUP_FORMAT 1
/* The most segments an index holds (the ceiling of --key-backup-max-segments:
 * a KeyBackupList of them stays within the codec's 1024 entries). */
#define REC_KEY_BACKUP_SEGMENTS_MAX 1024
#define REC_KEY_BACKUP_HASH_LEN 32
#define REC_KEY_BACKUP_KEY_ID_LEN 16
/* Key ids of turned-off backups an index remembers (the oldest goes first). */
#define REC_KEY_BACKUP_RETIRED_MAX 8

/* One stored segment, as the index names it. */
struct rec_key_backup_segment {
    uint64_t seq;
    uint32_t size;
    int64_t created_at;
    struct id device; /* the device that put it */
    uint8_t sha256[REC_KEY_BACKUP_HASH_LEN];
};

/* The index of an account's backup. An account without one reads as
 * REC_KEY_BACKUP_EMPTY. */
struct rec_key_backup {
    uint64_t next_seq;    /* the number the next segment must carry (1, 2, ...) */
    uint64_t total_bytes; /* of the stored segments */
    uint32_t n;
    struct rec_key_backup_segment *segments; /* n, ascending seq; malloc, or NULL */
    /* The id of the key of the stored segments (all zero while there are
     * none), and the ids retired by turning a backup off. */
    uint8_t key_id[REC_KEY_BACKUP_KEY_ID_LEN];
    uint32_t n_retired;
    uint8_t retired[REC_KEY_BACKUP_RETIRED_MAX][REC_KEY_BACKUP_KEY_ID_LEN];
};

#define REC_KEY_BACKUP_EMPTY                                                                       \
    { .next_seq = 1 }

/* The CF_KEY_BACKUP key of `account`'s index (16 bytes) and of its segment
 * `seq` (24 bytes). */
void rec_key_backup_key(const struct id *account, struct key *out);
void rec_key_backup_segment_key(const struct id *account, uint64_t seq, struct key *out);

/* Appends the encoding of `b` to `out`. */
void rec_key_backup_encode(const struct rec_key_backup *b, struct buf *out);

/* Decodes an index into *out (segments copied; free with
 * rec_key_backup_cleanup()). Returns 0, or STATUS_CORRUPT (another format,
 * truncated, trailing bytes, more than REC_KEY_BACKUP_SEGMENTS_MAX segments,
 * or segments not strictly ascending below next_seq); *out is then empty. */
int rec_key_backup_decode(const uint8_t *data, size_t len, struct rec_key_backup *out);

/* Frees the segments and leaves `b` REC_KEY_BACKUP_EMPTY. Accepts NULL. */
void rec_key_backup_cleanup(struct rec_key_backup *b);

/* Turns the backup off once its segments are gone: its key id joins the
 * retired ones (dropping the oldest beyond REC_KEY_BACKUP_RETIRED_MAX) and is
 * cleared. */
void rec_key_backup_retire(struct rec_key_backup *b);

/* Whether `key_id` was retired. */
bool rec_key_backup_retired(const struct rec_key_backup *b,
                            const uint8_t key_id[REC_KEY_BACKUP_KEY_ID_LEN]);

/* The index entry of segment `seq`, or NULL. */
const struct rec_key_backup_segment *rec_key_backup_find(const struct rec_key_backup *b,
                                                         uint64_t seq);

#endif
