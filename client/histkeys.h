/*
 * client/histkeys.h: the content keys of messages a device keeps while its
 * account's key backup is on (client/keybackup.h): the keys it read or sent
 * (to be backed up) and the keys a restore brought (to read messages that
 * carry no wrap for it). Nothing is kept while the backup is off.
 *
 * The file DIR/history_keys (DIR the profile directory, mode 0600) is
 * append-only: one HISTKEYS_RECORD_LEN-byte record per message,
 *   kind 1 | message id 16 | conversation id 16 | content key 32
 * kind HISTKEYS_LEARNED for a key this device read or sent (it goes into the
 * backup), HISTKEYS_RESTORED for one that came from the backup. A message is
 * recorded once (the first record wins). A torn last record (a crash
 * mid-append) is ignored and overwritten. Each append is synced. The keys
 * are as secret as the device's private keys beside them in the profile,
 * and as protected (0600, in the 0700 profile directory); in memory they are
 * wiped when freed.
 *
 * Threads: a store belongs to one thread (the handle's).
 */
#ifndef CLIENT_HISTKEYS_H
#define CLIENT_HISTKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/id.h"

#define HISTKEYS_FILE "history_keys"
#define HISTKEYS_RECORD_LEN 65
#define HISTKEYS_KEY_LEN 32
/* Records a store holds at most (65 MB); beyond, it refuses to grow. */
#define HISTKEYS_MAX_RECORDS (1u << 20)

enum histkeys_kind {
    HISTKEYS_LEARNED = 'L',
    HISTKEYS_RESTORED = 'R',
};

struct histkeys_record {
    uint8_t kind; /* enum histkeys_kind */
    struct id message_id;
    struct id conversation_id;
    uint8_t key[HISTKEYS_KEY_LEN];
};

struct histkeys;

/* Reads DIR/history_keys (none yet: an empty store). Stores it in *out (free
 * with histkeys_free()) and returns 0, or STATUS_FORBIDDEN (open to others),
 * STATUS_CORRUPT (over HISTKEYS_MAX_RECORDS, or a record of an unknown
 * kind), STATUS_IO. */
int histkeys_open(const char *dir, struct histkeys **out);

/* Wipes and frees. Accepts NULL. */
void histkeys_free(struct histkeys *h);

/* The number of records, and record `i` (0 .. count-1, in file order;
 * borrowed until the next add or free). */
size_t histkeys_count(const struct histkeys *h);
const struct histkeys_record *histkeys_at(const struct histkeys *h, size_t i);

/* The key of message `message_id` when it is recorded for `conversation_id`
 * (copied to `key`): true, else false. */
bool histkeys_find(const struct histkeys *h, const struct id *message_id,
                   const struct id *conversation_id, uint8_t key[HISTKEYS_KEY_LEN]);

/* Appends, in one synced write, the records at `recs` whose message is not
 * recorded yet (nor earlier in `recs`). Returns 0 with *added (may be NULL),
 * or STATUS_TOO_LARGE (the store would pass HISTKEYS_MAX_RECORDS) or
 * STATUS_IO, having added nothing. */
int histkeys_add(struct histkeys *h, const struct histkeys_record *recs, size_t n, size_t *added);

/* Deletes DIR/history_keys (gone already: 0). Returns 0 or STATUS_IO. */
int histkeys_remove(const char *dir);

#endif
