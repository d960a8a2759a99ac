/*
 * storage/store.h: CareChat's RocksDB database, its column families, and the
 * transaction API through which apply writes.
 *
 * One `struct store` per data directory: RocksDB in DIR/db with one column family
 * per record kind, and the key store (keystore.h) with the master key in the key
 * directory (DIR/keys by default, another volume in production). Every value is
 * sealed at rest (seal.h): AES-256-GCM under the data key of the record's owner,
 * with the column family and the record key as additional data, so a value moved
 * under another key or into another column family fails to open.
 *
 * Keys never contain personal data: they are built from random ids and integers
 * (keys.h). Lookups by email go through a keyed hash (store_blind_index()).
 *
 * Options chosen here (store.c): WAL recovery in point-in-time mode, so that
 * after a crash the database is a consistent prefix of the committed batches (a
 * torn tail can only be a batch that was never acknowledged, since every
 * acknowledged batch was synced); no compression (every value is ciphertext);
 * CF_CHUNKS and CF_KEY_BACKUP keep values of 16 KiB and more in blob files with blob GC;
 * whole-key bloom filters in every SST file, and in those of CF_DEVICES, CF_MESSAGES
 * and CF_INBOXES the keys' first 16 bytes (the parent id they are scanned by) too;
 * small memtable bloom filters for CF_IDEMPOTENCY and CF_RECEIPTS, whose lookups miss.
 *
 * Free-space guard: while the data volume has less than `min_free_bytes` free,
 * or the key directory's volume less than `min_free_key_bytes`, commits are
 * refused with STATUS_UNAVAILABLE, so neither RocksDB nor the key store is the
 * one to find the disk full. RocksDB also writes without asking: a memtable
 * flush (all memtables together are kept under STORE_MEMTABLE_BUDGET) and the
 * next WAL file's preallocation (at most the same budget), which is why a
 * reserve below STORE_MIN_RESERVE cannot keep the disk from filling. When a write fails in RocksDB
 * nonetheless (the disk filled between the check and the write, an I/O error), every later commit
 * is refused with STATUS_UNAVAILABLE until the store is reopened: RocksDB has stopped the database
 * by then, and a second append to its failed WAL file would abort this build (NOTES.md). Its info
 * LOG is kept to the header for the same reason.
 *
 * Threads: store_open/close on the main thread; reads (store_get, store_scan)
 * from any thread, usually the lws loop thread; writes only through a
 * `struct store_txn`, which only the journal's writer thread holds (journal.h).
 */
#ifndef STORAGE_STORE_H
#define STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"

struct keystore;

/* The memory all memtables may hold together (RocksDB db_write_buffer_size):
 * it bounds both a flush and a WAL file's preallocated block. */
#define STORE_MEMTABLE_BUDGET (64ull << 20)
/* The least free-space reserve that covers what RocksDB writes without a
 * commit: one flush of every memtable plus the next WAL's preallocation. */
#define STORE_MIN_RESERVE (2 * STORE_MEMTABLE_BUDGET)
/* How long the free-space guard trusts a verdict of enough room (statvfs(2)
 * on every write cost 2% of the server's CPU): a volume that drops below a
 * reserve is refused writes at most this much later, with at most 1 MiB more
 * committed meanwhile, inside STORE_MIN_RESERVE's margin. */
#define STORE_SPACE_REASK_MS 50

/* Column families, one per record kind. The order is part of the on-disk format
 * only through the names (store_cf_name()); values may be appended. */
enum store_cf {
    CF_META = 0,    /* server metadata: applied position, schema version, server id */
    CF_ACCOUNTS,    /* account id -> account record */
    CF_EMAIL_INDEX, /* blind index of an email -> account id */
    CF_DEVICES,     /* account id | device id -> device record and keys */
    CF_SESSIONS,    /* hash of a session token -> session record */
    CF_INVITES,     /* hash of an invitation code -> invitation */
    CF_CONVERSATIONS,
    CF_MEMBERS,      /* conversation id | account id -> membership */
    CF_MESSAGES,     /* conversation id | seq -> message */
    CF_INBOXES,      /* device id | position -> delivery entry */
    CF_RECEIPTS,     /* conversation id | message id | account id -> receipt */
    CF_IDEMPOTENCY,  /* account id | client message id -> first result */
    CF_FILES,        /* file id -> file metadata */
    CF_CHUNKS,       /* file id | chunk index -> ciphertext chunk (blob files) */
    CF_OUTBOX,       /* notification jobs */
    CF_AUDIT,        /* audit index -> hash-chained audit record */
    CF_INBOX_QUOTAS, /* device id | sender account id -> undelivered messages of the sender,
                        for inbox heads of the old layout (the others count in the head) */
    CF_KEY_BACKUP,   /* account id [| seq] -> key backup index and segments (blob files) */
    CF_COUNT
};

/* The column family's stable on-disk name ("meta", "accounts", ...). */
const char *store_cf_name(enum store_cf cf);

/* What store_open() may find. Creating is never implied by opening: a database
 * created over a lost or unmounted one would serve an empty system, and RocksDB
 * would delete the old table files it does not know. */
enum store_mode {
    STORE_OPEN = 0, /* an existing database: DATA_DIR/db with its CURRENT file, the
                       key store (keystore.h, create false) and the check record must
                       all be there; nothing is created */
    STORE_CREATE,   /* a new database: DATA_DIR/db must not exist and the key store
                       must hold no keys (keystore.h, create true) */
};

struct store_config {
    const char *data_dir;            /* required: records live in DATA_DIR/db */
    enum store_mode mode;            /* STORE_OPEN unless creating */
    const char *key_dir;             /* NULL: DATA_DIR/keys */
    const char *master_key_path;     /* NULL: KEY_DIR/master.key, generated by
                                        STORE_CREATE (mode 0600) with a warning */
    const char *old_master_key_path; /* NULL; the previous master key, to finish an
                                        interrupted rotation (keystore.h) */
    size_t key_cache_entries;        /* unwrapped data keys cached; 0: 1024 */
    uint64_t min_free_bytes;         /* writes are refused (STATUS_UNAVAILABLE) while the
                                        data volume has less free space; 0 disables
                                        (below STORE_MIN_RESERVE it cannot protect) */
    uint64_t min_free_key_bytes;     /* the same for the key directory's volume (a new
                                        data key is a small file written durably in
                                        the same commit); 0 disables */
    size_t cache_bytes;              /* RocksDB block cache; 0 for the default */
    bool no_read_cache;              /* transactions read every record from RocksDB
                                        (tests compare the two; see txn_get()) */
    bool no_prefix_bloom;            /* no column family gets a prefix extractor and
                                        every scan seeks in total order
                                        (storage/scan_bench compares the two) */
};

struct store;

/* Opens (STORE_OPEN) or creates (STORE_CREATE) the database and the key store
 * described by `cfg`. On success stores the handle in *out (close it with
 * store_close()) and returns 0; otherwise returns, after logging what is wrong:
 * STATUS_NOT_FOUND (STORE_OPEN: no DATA_DIR, no DATA_DIR/db/CURRENT, no key
 * store, or no check record: a missing or incomplete database; nothing was
 * touched, not even by RocksDB), STATUS_CONFLICT (STORE_CREATE: DATA_DIR/db
 * exists, or the key directory holds keys), STATUS_IO (unreadable or locked
 * directory), STATUS_CORRUPT (a master key that does not open the key store, or
 * a key store that does not belong to this database: the sealed check record in
 * CF_META must open), or STATUS_BAD_REQUEST (bad configuration, a missing master
 * key of an existing key store, or a master key file or key directory that group
 * or others may read). */
int store_open(const struct store_config *cfg, struct store **out);

/* Compacts every column family through the bottommost level, so that the
 * records of purged owners (whose data keys were destroyed) leave the files,
 * blob files included. Blocks for as long as it takes: call it from a thread
 * of its own. Returns 0. Any thread. */
int store_compact(struct store *s);

/* Whether writes are accepted now: 0 while the data volume has at least the
 * reserve free (or the guard is off), else STATUS_UNAVAILABLE (logged once
 * per transition). One statvfs(2) per call. Any thread. */
int store_check_space(struct store *s);

/* Flushes the memtables (unless the free-space guard is tripped), closes the
 * database and wipes the keys from memory. Accepts NULL. The caller must have
 * closed the journal first. */
void store_close(struct store *s);

/* Reads the value under `key` in `cf` and opens its seal into `out` (replacing
 * its contents). Returns 0; STATUS_NOT_FOUND when there is no such record or its
 * owner's data key was destroyed (a purged record reads as absent); STATUS_CORRUPT
 * when the seal does not open (tampered, or moved under another key or cf;
 * logged once with the cf and a key digest) or its data key is missing from the
 * key store; or STATUS_IO. */
int store_get(struct store *s, enum store_cf cf, const void *key, size_t key_len, struct buf *out);

/* Called by store_scan() for each record in key order; returns true to go on. */
typedef bool (*store_scan_fn)(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                              size_t value_len);

/* Visits, in key order, at most `limit` records of `cf` whose key starts with
 * `prefix` and is greater than `after` (NULL/0: from the start of the prefix).
 * Values are opened before the callback sees them; key and value are borrowed
 * for the call. Records whose owner's data key was destroyed are skipped.
 * Returns the number visited (>= 0), or a negative status as store_get() (the
 * scan stops at the first record that fails to open). A scan of CF_DEVICES,
 * CF_MESSAGES or CF_INBOXES by a prefix of at least 16 bytes (a parent's id)
 * skips, through bloom filters, the SST files that hold no key of it; any other
 * scan reads every level's index. */
int store_scan(struct store *s, enum store_cf cf, const void *prefix, size_t prefix_len,
               const void *after, size_t after_len, size_t limit, store_scan_fn fn, void *ctx);

/* Writes the keyed hash (HMAC-SHA256 under a server secret kept in the key store)
 * of `data` into out[32]: the "blind index" used to look records up by email
 * without storing the email in a key. Normalising the input (lower case, trimmed)
 * is the caller's job. */
void store_blind_index(struct store *s, const void *data, size_t len, uint8_t out[32]);

/*
 * Readers. A store_reader serves one thread other than the writer (the lws
 * loop) from a cache of its own: the records txn_get() caches, opened once.
 * Every commit queues to every reader the plaintext it wrote under those
 * keys (each key's last write), and a read first applies what was queued
 * since the last one, in commit order, to the keys the reader holds: a
 * rewritten record is replaced, a deleted one becomes absent. So a reader
 * never sees a record older than the last commit its thread learnt of; it
 * may see one a commit replaced a moment ago, as a read that came just
 * before that commit would. The queue is bounded (1 MiB): a commit that
 * would pass the bound, or one during which a data key was destroyed,
 * empties the reader's cache instead, as does a destroyed data key. Values
 * are wiped when dropped. Free every reader before store_close(). Without
 * the read cache (no_read_cache) a reader reads through to store_get().
 */
struct store_reader;
struct store_reader *store_reader_new(struct store *s);
void store_reader_free(struct store_reader *r);
/* store_get() through the reader's cache; same returns. One thread per reader. */
int store_reader_get(struct store_reader *r, enum store_cf cf, const void *key, size_t key_len,
                     struct buf *out);
/* store_reader_get() without the copy, for a record decoded at once: on 0,
 * *data and *len point at the value, borrowed until the next call on `r`. */
int store_reader_view(struct store_reader *r, enum store_cf cf, const void *key, size_t key_len,
                      const uint8_t **data, size_t *len);

/* The transactions' read cache: values held, and hits and misses so far
 * (zeros without one). For the writer thread, or after it stopped. */
struct store_read_cache_stats {
    uint64_t entries, bytes, hits, misses;
};
struct store_read_cache_stats store_read_cache_stats(struct store *s);
/* The same for a reader's cache (a miss is a read of the database). For the
 * reader's thread. */
struct store_read_cache_stats store_reader_stats(const struct store_reader *r);

/* Bytes of live data in the database (RocksDB's estimate: SST files, blob
 * files and memtables), for /metrics. */
uint64_t store_size_bytes(struct store *s);

/* The store's key store (borrowed; lives until store_close()), for purge
 * (keystore_destroy()) and master key rotation (keystore_rotate_master()). */
struct keystore *store_keystore(struct store *s);

/*
 * Transactions. A `struct store_txn` is the writes of one group commit, which
 * it reads back itself and commits as one RocksDB write batch (each key's last
 * write only). Only the journal's writer thread creates them; apply receives
 * one.
 */
struct store_txn;

/* Reads through the transaction: its own earlier writes win over the database.
 * Same returns as store_get(). Records of accounts, devices, conversations,
 * memberships, inbox heads and quotas and the notification records are
 * served from a read cache of opened values (or of their absence) when they
 * were read or committed before and not written since (exact: the cache
 * holds only what the database holds, and is emptied when a data key is
 * destroyed). */
int txn_get(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
            struct buf *out);

/* txn_get() without the copy, for a record decoded at once: on 0, *data and
 * *len point at the value, borrowed until the next call on `t` (it may be
 * in the transaction's log, in the read cache or in a buffer of the
 * transaction's). Apply reads the accounts, devices, members,
 * conversations and notification records of a message's recipients, and the
 * items an acknowledgement drops, this way, so that neither allocates or
 * copies for each of those reads. */
int txn_view(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
             const uint8_t **data, size_t *len);

/* Stages `value` under `key`, to be sealed at the commit under the current
 * data key of `owner` as of this call (NULL: the server's own data key; a
 * patient's records use the patient's id so purge can destroy their key); a
 * key written again before the commit is sealed once. The data key is created
 * durably in the key store on first use. Returns 0; STATUS_NOT_FOUND when the owner's key was
 * destroyed (nothing is written for a purged owner); STATUS_TOO_LARGE (value above SEAL_MAX_PLAIN,
 * 64 MiB, or key above KEY_MAX of storage/keys.h, 64 bytes); STATUS_CORRUPT or STATUS_IO from the
 * key store. */
int txn_put(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
            const struct id *owner, const void *value, size_t value_len);

/* Stages a deletion of `key`. Returns 0, or STATUS_TOO_LARGE for a key above
 * KEY_MAX (64 bytes). */
int txn_delete(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len);

#endif
