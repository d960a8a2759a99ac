/*
 * client/backup_sync.h: what client/backup_sync.c (the account's key backup:
 * the device's history keys, client/histkeys.h, kept in step with the
 * server's segments, client/keybackup.h) offers the other files of
 * libcarechat. Not part of the API: the prefix cc_bk_ marks it. Same thread
 * rules as carechat.h: the caller's thread only.
 *
 * While the profile holds a backup key (profile.h key_backup_key), every
 * content key this device reads or sends is recorded (cc_bk_learn()) and
 * uploaded as a new segment by the next flush, which messaging.c runs after
 * History, Send and Ack: the backup stays current without the user doing
 * anything. A flush that finds the backup at half its caps compacts it: it
 * downloads every segment, writes the union of their keys and this device's
 * as new segments, then deletes the older ones (DeleteKeyBackup before the
 * first new one), so the backup is complete at every moment.
 *
 *   flush: [nothing pending] -> done
 *          [pending] -> ListKeyBackup -> [room] -> Put x n (seq = next_seq ...)
 *                                     -> [at half the caps] -> Get x all -> Put x m
 *                                                              -> DeleteKeyBackup
 *          then key_backup_done = the records uploaded (profile)
 */
#ifndef CLIENT_BACKUP_SYNC_H
#define CLIENT_BACKUP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/carechat.h"
#include "client/keybackup.h"

struct cc_bk;

/* Frees the key backup state of a handle (struct carechat's `bk`). Accepts
 * NULL. */
void cc_bk_free(struct cc_bk *b);

/* Whether this device keeps the account's key backup (its profile holds the
 * backup key). */
bool cc_bk_enabled(const struct carechat *c);

/* Records the content key `key` of message `message_id` in
 * `conversation_id`, which this device read or sent, for the next flush;
 * nothing when the backup is off. Best effort: a failure (the profile's
 * file) is logged, never returned: reading a message does not fail for its
 * backup. */
void cc_bk_learn(struct carechat *c, const struct id *message_id, const struct id *conversation_id,
                 const uint8_t key[KEYBACKUP_KEY_LEN]);

/* The content key of `message_id` in `conversation_id` when the device keeps
 * it (restored from the backup, or learned): true with `key` (the caller
 * wipes it). */
bool cc_bk_find(struct carechat *c, const struct id *message_id, const struct id *conversation_id,
                uint8_t key[KEYBACKUP_KEY_LEN]);

/* Uploads what cc_bk_learn() recorded since the last flush (the diagram at
 * the top). Returns 0 (also when the backup is off, held, or nothing is
 * pending) or a recorded failure (STATUS_TOO_LARGE: the backup is full even
 * compacted; STATUS_FORBIDDEN: the backup was turned off or replaced with
 * another key on another device, and this device stops keeping it: its
 * profile forgets the backup key). */
int cc_bk_flush(struct carechat *c);

/* cc_bk_flush() after a call that succeeded: a failure is logged and kept
 * for carechat_key_backup_status(), and the call's success stands (the keys
 * stay pending for the next flush). */
void cc_bk_flush_quietly(struct carechat *c);

/* While held, flushes do nothing (the sweep of history when the backup is
 * turned on gathers every key first, for one flush). */
void cc_bk_hold(struct carechat *c, bool hold);

/* The records of the device's history keys, and how many of them wait for
 * the next flush. Returns 0 or a recorded failure (the file). */
int cc_bk_counts(struct carechat *c, size_t *records, size_t *pending);

/* The last failure of a quiet flush ("" when the last flush succeeded). */
const char *cc_bk_last_error(const struct carechat *c);

/* Adds `n` records of the backup to the device's history keys, as restored
 * (never uploaded again by this device). Sets *added to the new ones.
 * Returns 0 or a recorded failure. */
int cc_bk_store_restored(struct carechat *c, const struct keybackup_record *recs, size_t n,
                         size_t *added);

/* Deletes the device's history keys (the file and the handle's copy).
 * Returns 0 or a recorded failure. */
int cc_bk_forget_local(struct carechat *c);

/* ---- the server's side ------------------------------------------------------------------- */

/* The account's backup as ListKeyBackup answers it. */
struct cc_bk_listing {
    uint64_t next_seq;
    uint32_t segment_max, max_segments;
    uint64_t max_bytes, total_bytes;
    size_t n;
    uint64_t *seqs;  /* n, ascending; malloc */
    int64_t last_at; /* created_at of the newest segment (0: none) */
    bool has_key_id; /* the segments' key id (none while there are none) */
    uint8_t key_id[KEYBACKUP_KEY_ID_LEN];
};

/* ListKeyBackup of the caller's account. Fills *out (free with
 * cc_bk_listing_cleanup()) and returns 0, or a recorded failure. */
int cc_bk_list(struct carechat *c, struct cc_bk_listing *out);
void cc_bk_listing_cleanup(struct cc_bk_listing *l);

/* Downloads every segment of `l` and opens it under `key`: all their records
 * (a message may come more than once) into *out (free with
 * keybackup_records_free()). Returns 0; STATUS_FORBIDDEN (recorded,
 * CARECHAT_ERROR_ARGUMENT) when the first segment does not open (the key is
 * not this backup's); STATUS_CORRUPT (recorded) when a later one does not
 * (altered, or made under another key); or a recorded server or connection
 * failure. Nothing is kept on failure. */
int cc_bk_download(struct carechat *c, const uint8_t key[KEYBACKUP_KEY_LEN],
                   const struct cc_bk_listing *l, struct keybackup_record **out, size_t *n);

/* DeleteKeyBackup of the caller's segments below `before_seq` (0: all).
 * Returns 0 or a recorded failure. */
int cc_bk_delete(struct carechat *c, uint64_t before_seq);

#endif
