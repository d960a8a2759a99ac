/*
 * storage/store.c: the RocksDB database behind store.h and store_internal.h.
 *
 * Invariants:
 * - Every value in every column family is a seal (seal.h) whose additional data
 *   is the column family's name and the record key; nothing is written unsealed.
 * - CF_META "keystore_check" holds a sealed constant under the server's data
 *   key, so a key store that does not belong to this database is caught at open.
 * - RocksDB errors are logged once, here, and become STATUS_IO or STATUS_CORRUPT.
 * - No commit reaches RocksDB while the volume is below the free-space reserve
 *   (except the few bytes of the check record of a brand-new database).
 * - RocksDB never creates a database except in a DATA_DIR/db this file has just
 *   made (STORE_CREATE); STORE_OPEN checks DATA_DIR/db/CURRENT before RocksDB
 *   looks at the directory.
 *
 * Threads: open/close on one thread; reads from any thread (RocksDB and the key
 * store are thread-safe); a transaction is used by one thread at a time.
 */
#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <rocksdb/c.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/keys.h"
#include "storage/keystore.h"
#include "storage/rcache.h"
#include "storage/seal.h"
#include "storage/store_internal.h"

#define MOD "storage"
#define CHECK_KEY "keystore_check"
#define CHECK_VALUE "carechat key store check v1"
#define DEFAULT_CACHE_BYTES (32u * 1024 * 1024)
#define BLOOM_BITS_PER_KEY 10.0
#define READ_CACHE_BYTES (32u * 1024 * 1024)
#define CHUNK_MIN_BLOB_SIZE (16u * 1024)
#define MEMTABLE_BLOOM_RATIO 0.005 /* of the write buffer, see make_cf_options() */

/* The fixed key prefix of the column families whose keys start with a
 * parent's 16-byte id and which are scanned by that id (0: none). RocksDB
 * extracts it from every key at least that long (shorter keys are outside its
 * domain: whole-key filter only) and adds it to the SST files' bloom filters,
 * so a scan by that prefix, or by a longer one, skips the files that hold no
 * key of it. Other scans must seek in total order (scan_read_options()). */
static const size_t cf_prefix_len[CF_COUNT] = {
    [CF_DEVICES] = ID_LEN,  /* account id | device id: an account's devices */
    [CF_MESSAGES] = ID_LEN, /* conversation id | seq: a conversation's history */
    [CF_INBOXES] = ID_LEN,  /* device id [| position]: a device's inbox */
};

static const char *const cf_names[CF_COUNT] = {
    [CF_META] = "meta",
    [CF_ACCOUNTS] = "accounts",
    [CF_EMAIL_INDEX] = "email_index",
    [CF_DEVICES] = "devices",
    [CF_SESSIONS] = "sessions",
    [CF_INVITES] = "invites",
    [CF_CONVERSATIONS] = "conversations",
    [CF_MEMBERS] = "members",
    [CF_MESSAGES] = "messages",
    [CF_INBOXES] = "inboxes",
    [CF_RECEIPTS] = "receipts",
    [CF_IDEMPOTENCY] = "idempotency",
    [CF_FILES] = "files",
    [CF_CHUNKS] = "chunks",
    [CF_OUTBOX] = "outbox",
    [CF_AUDIT] = "audit",
    [CF_INBOX_QUOTAS] = "inbox_quotas",
    [CF_KEY_BACKUP] = "key_backup",
};

struct store {
    rocksdb_t *db;
    rocksdb_options_t *db_opts;
    rocksdb_options_t *cf_opts[CF_COUNT + 1]; /* [0] is RocksDB's "default" */
    rocksdb_compactionfilter_t *filter;       /* drop_shredded() */
    rocksdb_column_family_handle_t *cf[CF_COUNT + 1];
    rocksdb_block_based_table_options_t *table_opts;
    rocksdb_cache_t *cache;
    bool prefix_bloom; /* !cfg->no_prefix_bloom: cf_prefix_len applies */
    rocksdb_readoptions_t *read_opts;
    rocksdb_writeoptions_t *sync_write;
    struct keystore *ks;
    char *db_path;
    char *key_dir;
    _Atomic uint64_t min_free_bytes;
    _Atomic uint64_t min_free_key_bytes;
    atomic_bool low_space;          /* the guard's last verdict */
    _Atomic int64_t space_asked_at; /* monotonic ms of the last statvfs (0: ask next time) */
    _Atomic uint64_t written_since; /* bytes committed since then */
    atomic_bool failed;             /* a write failed in RocksDB: no more writes until restart */
    struct rcache *rcache;          /* NULL: no read cache (no_read_cache) */
    uint64_t rcache_generation;     /* keystore_generation() its values were read under */
    bool txn_open;                  /* one transaction at a time (the read cache's rule) */
    struct store_txn *spare;        /* the last one freed, its storage kept for the next */
    uint8_t write_hash_key[crypto_shorthash_KEYBYTES]; /* of store_txn.index */
    pthread_mutex_t readers_lock;                      /* guards readers */
    struct store_reader *readers;                      /* their caches learn of every commit */
};

/* The bytes of commits a reader has not yet applied (store_reader_get());
 * a commit that would queue more empties the reader's whole cache instead.
 * Reserved when the reader is made, so the plaintext queued is never left
 * behind by a realloc. */
#define READER_PENDING_MAX (1u << 20)

struct store_reader {
    struct store *s;
    struct rcache *cache; /* NULL: no read cache (no_read_cache) */
    uint64_t generation;  /* keystore_generation() its values were read under */
    pthread_mutex_t lock; /* guards pending and overflow */
    /* What commits wrote since its last read, in commit order, each key's
     * last write: cf, key length, key, then 1 for a delete, or 0, the
     * value's length (u32, host order) and the plaintext value. */
    struct buf pending;
    bool overflow;   /* pending would have passed READER_PENDING_MAX, or a data
                        key was destroyed during a commit: empty the cache */
    struct buf read; /* the value store_reader_view() last read from the database */
    struct store_reader *next;
};

/* A write of a transaction, kept until the commit: its reads of its own
 * writes are answered from these (see "transactions"). */
struct txn_write {
    uint8_t cf;
    uint8_t key_len;
    bool deleted;
    uint64_t hash; /* of (cf, key): write_hash() */
    uint8_t key[KEY_MAX];
    size_t value_off, value_len; /* the plaintext in store_txn.values (none when deleted) */
    /* A put's data key at txn_put() (wiped when forgotten): the commit seals
     * the value under it. */
    struct seal_key_id kid;
    struct seal_key dk;
};

struct store_txn {
    struct store *s;
    int savepoints;
    struct txn_write *writes; /* in order */
    size_t n_writes, cap_writes;
    size_t *marks; /* n_writes at each open savepoint */
    size_t n_marks, cap_marks;
    /* The keys of writes[]: an open-addressing set of 1 + their index (0:
     * empty), at most half full; index_cap is 0 or a power of two. */
    uint32_t *index;
    size_t index_cap;
    struct buf values; /* the puts' plaintexts, back to back in write order */
    struct buf read;   /* the value txn_view() last read from the database */
};

static const uint8_t *write_value(const struct store_txn *t, const struct txn_write *w) {
    return t->values.data + w->value_off;
}

const char *store_cf_name(enum store_cf cf) {
    CHECK((unsigned)cf < CF_COUNT);
    return cf_names[cf];
}

static rocksdb_column_family_handle_t *cf_handle(struct store *s, enum store_cf cf) {
    CHECK((unsigned)cf < CF_COUNT);
    return s->cf[cf + 1];
}

/* Logs a RocksDB error once and translates it. Frees `err`. */
static int rdb_error(const char *op, char *err) {
    int rc = strncmp(err, "Corruption", 10) == 0 ? STATUS_CORRUPT : STATUS_IO;
    log_error(MOD, "rocksdb %s failed: %s", op, err);
    rocksdb_free(err);
    return rc;
}

/* A short digest of a record key for logs: keys hold no personal data, but a
 * digest is enough to correlate and keeps lines short. */
static void key_digest(const void *key, size_t len, char out[17]) {
    uint8_t h[16];
    crypto_generichash(h, sizeof h, key, len, NULL, 0);
    sodium_bin2hex(out, 17, h, 8);
}

/* Opens a sealed value read from `cf` under `key`. */
static int open_value(struct store *s, enum store_cf cf, const void *key, size_t key_len,
                      const void *sealed, size_t sealed_len, struct buf *out) {
    char digest[17];
    struct seal_key_id kid;
    struct seal_key dk;
    buf_reset(out);
    if (seal_key_id_of(sealed, sealed_len, &kid) < 0) {
        key_digest(key, key_len, digest);
        log_error(MOD, "record %s/%s is not a seal", store_cf_name(cf), digest);
        return STATUS_CORRUPT;
    }
    int rc = keystore_find_key(s->ks, &kid, &dk);
    if (rc < 0)
        return rc; /* NOT_FOUND: crypto-shredded; others logged by the key store */
    rc = seal_open(SEAL_AUTO, &dk, store_cf_name(cf), key, key_len, sealed, sealed_len, out);
    sodium_memzero(&dk, sizeof dk);
    if (rc == STATUS_CORRUPT) {
        key_digest(key, key_len, digest);
        log_error(MOD, "record %s/%s does not open: tampered with, or moved from another key",
                  store_cf_name(cf), digest);
    }
    return rc;
}

/* RocksDB counts every key comparison and more into a thread-local
 * perf_context by default (PerfLevel kEnableCount), and reaching a
 * thread-local of the shared library costs a call each time: 2-3% of
 * carechatd's samples in memtable inserts and searches. Nothing reads those
 * counters; the level is per thread, so each thread that reads or commits
 * turns them off (a store of one thread-local). */
static void no_perf_counters(void) {
    rocksdb_set_perf_level(rocksdb_disable);
}

int store_get(struct store *s, enum store_cf cf, const void *key, size_t key_len, struct buf *out) {
    no_perf_counters();
    char *err = NULL;
    rocksdb_pinnableslice_t *v =
        rocksdb_get_pinned_cf(s->db, s->read_opts, cf_handle(s, cf), key, key_len, &err);
    if (err)
        return rdb_error("get", err);
    if (!v) {
        buf_reset(out);
        return STATUS_NOT_FOUND;
    }
    size_t len = 0;
    const char *p = rocksdb_pinnableslice_value(v, &len);
    int rc = open_value(s, cf, key, key_len, p, len, out);
    rocksdb_pinnableslice_destroy(v);
    return rc;
}

/* Read options for an iterator over the keys of `cf` that start with a
 * prefix of `prefix_len` bytes (0: the whole column family); free them with
 * rocksdb_readoptions_destroy() after the iterator. A seek in prefix mode
 * (RocksDB's default once a column family has a prefix extractor) consults
 * only the files whose bloom filter holds the target's fixed prefix, and
 * iterating past that prefix is undefined: a seek to a page cursor of another
 * prefix then skips whole files. So any iterator over a range wider than one
 * fixed prefix seeks in total order (RocksDB 7.8's C API has no
 * auto_prefix_mode to decide this per seek). */
static rocksdb_readoptions_t *scan_read_options(struct store *s, enum store_cf cf,
                                                size_t prefix_len) {
    size_t fixed = s->prefix_bloom ? cf_prefix_len[cf] : 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (fixed == 0 || prefix_len < fixed)
        rocksdb_readoptions_set_total_order_seek(ro, 1);
    return ro;
}

int store_scan(struct store *s, enum store_cf cf, const void *prefix, size_t prefix_len,
               const void *after, size_t after_len, size_t limit, store_scan_fn fn, void *ctx) {
    if (limit == 0)
        return 0;
    uint8_t *end = prefix_len ? xmalloc(prefix_len) : NULL;
    size_t end_len = 0;
    rocksdb_readoptions_t *ro = scan_read_options(s, cf, prefix_len);
    /* The upper bound lets RocksDB stop at the end of the prefix range without
     * reading the next key; `end` must outlive the iterator. */
    if (prefix_len && key_prefix_end(prefix, prefix_len, end, &end_len))
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)end, end_len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, cf_handle(s, cf));
    if (after_len && key_compare(after, after_len, prefix, prefix_len) >= 0) {
        rocksdb_iter_seek(it, after, after_len);
        size_t klen = 0;
        if (rocksdb_iter_valid(it)) {
            const char *k = rocksdb_iter_key(it, &klen);
            if (key_compare((const uint8_t *)k, klen, after, after_len) == 0)
                rocksdb_iter_next(it);
        }
    } else {
        rocksdb_iter_seek(it, prefix, prefix_len);
    }
    struct buf value;
    buf_init(&value);
    int rc = 0;
    size_t visited = 0;
    for (; visited < limit && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (!key_has_prefix(k, klen, prefix, prefix_len))
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = open_value(s, cf, k, klen, v, vlen, &value);
        if (rc == STATUS_NOT_FOUND) {
            rc = 0; /* crypto-shredded: as good as deleted */
            continue;
        }
        if (rc < 0)
            break;
        visited++;
        if (!fn(ctx, k, klen, value.data, value.len))
            break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    if (err && rc == 0)
        rc = rdb_error("scan", err);
    else if (err)
        rocksdb_free(err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    buf_cleanup(&value);
    free(end);
    return rc < 0 ? rc : (int)visited;
}

void store_blind_index(struct store *s, const void *data, size_t len, uint8_t out[32]) {
    keystore_blind_index(s->ks, data, len, out);
}

size_t store_count_sealed_by(struct store *s, enum store_cf cf, const struct id *owner) {
    rocksdb_readoptions_t *ro = scan_read_options(s, cf, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, cf_handle(s, cf));
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t len;
        const char *v = rocksdb_iter_value(it, &len);
        n += len >= SEAL_OVERHEAD && memcmp(v + 1, owner->b, ID_LEN) == 0;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return n;
}

int store_compact(struct store *s) {
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
    /* Through the bottommost level too, so the filter sees every value. */
    rocksdb_compactoptions_set_bottommost_level_compaction(co, 2 /* kForce */);
    for (int cf = 0; cf < CF_COUNT; cf++)
        rocksdb_compact_range_cf_opt(s->db, cf_handle(s, (enum store_cf)cf), co, NULL, 0, NULL, 0);
    rocksdb_compactoptions_destroy(co);
    return STATUS_OK;
}

uint64_t store_size_bytes(struct store *s) {
    static const char *const props[] = {
        "rocksdb.estimate-live-data-size",
        "rocksdb.live-blob-file-size",
        "rocksdb.cur-size-all-mem-tables",
    };
    uint64_t total = 0;
    for (int cf = 0; cf < CF_COUNT; cf++) {
        for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
            uint64_t v = 0;
            if (rocksdb_property_int_cf(s->db, cf_handle(s, (enum store_cf)cf), props[i], &v) == 0)
                total += v;
        }
    }
    return total;
}

struct keystore *store_keystore(struct store *s) {
    return s->ks;
}

/* ---- free-space guard ---- */

void store_set_min_free_bytes(struct store *s, uint64_t bytes) {
    atomic_store(&s->min_free_bytes, bytes);
    atomic_store(&s->space_asked_at, 0);
}

/* Whether the volume of `path` has fewer than `min` bytes an unprivileged
 * writer may use (0: never); *avail gets what it has. A volume that cannot be
 * asked counts as low: the alternative may be an abort in RocksDB. */
static bool volume_low(const char *path, uint64_t min, uint64_t *avail) {
    struct statvfs st;
    *avail = 0;
    if (min == 0)
        return false;
    if (statvfs(path, &st) != 0)
        return true;
    *avail = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
    return *avail < min;
}

/* statvfs(2) costs 1-2 µs here, and every journal append and every commit
 * asks: 2% of carechatd's samples in 1:1 messaging. A verdict of enough room
 * is reused for STORE_SPACE_REASK_MS and SPACE_REASK_BYTES of commits: at
 * most a megabyte more than the reserve could be written unasked, inside the
 * floor of 128 MiB (store.h) that RocksDB's own unasked writes need. A low
 * verdict is asked again every time, so writes resume as soon as there is
 * room. */
#define SPACE_REASK_BYTES (1u << 20)

int store_check_space(struct store *s) {
    if (atomic_load(&s->failed))
        return STATUS_UNAVAILABLE;
    int64_t now = clock_monotonic_ms();
    if (!atomic_load(&s->low_space) &&
        now - atomic_load(&s->space_asked_at) < STORE_SPACE_REASK_MS &&
        atomic_load(&s->written_since) < SPACE_REASK_BYTES)
        return 0;
    uint64_t min = atomic_load(&s->min_free_bytes);
    uint64_t key_min = atomic_load(&s->min_free_key_bytes);
    uint64_t avail = 0;
    const char *volume = NULL;
    if (volume_low(s->db_path, min, &avail))
        volume = "data";
    else if (volume_low(s->key_dir, key_min, &avail))
        volume = "key";
    bool low = volume != NULL;
    atomic_store(&s->written_since, 0);
    atomic_store(&s->space_asked_at, now);
    bool was = atomic_exchange(&s->low_space, low);
    if (low && !was)
        log_warn(MOD, "refusing writes: %llu bytes free on the %s volume, reserve is %llu",
                 (unsigned long long)avail, volume,
                 (unsigned long long)(volume[0] == 'd' ? min : key_min));
    else if (!low && was)
        log_info(MOD, "accepting writes again (free space above the reserves)");
    return low ? STATUS_UNAVAILABLE : 0;
}

/* ---- transactions ---- */

/*
 * A transaction is a log of its writes, each in plaintext with the data key
 * it is to be sealed under, indexed by key: a read of a key the transaction
 * wrote is answered from the log (its last write, or absent when that was a
 * delete), any other from the read cache or the database. A savepoint's
 * rollback truncates the log. The commit seals the last write of each key and
 * writes them in one plain RocksDB batch: a key written by several entries of
 * a group commit (an inbox head, a conversation) costs one sealing and one
 * memtable insert, not one per entry. Each put takes the owner's current data
 * key when it is made, so it is sealed under the key it would have been
 * sealed under at once, and a key destroyed later in the batch (a purge)
 * leaves it unreadable as it would have. (RocksDB's
 * indexed write batch did the reading before; it kept a skip list per batch,
 * opened the transaction's own sealed values again on every read, and
 * committed every write.)
 *
 * The read cache. Invariant: an entry is the value the database holds for its
 * key now (committed, under a data key not destroyed). Hence:
 * - txn_get() answers a key this transaction did not write from the cache on
 *   a hit, and caches what it reads from the database on a miss (a key it
 *   wrote is answered from its log, never cached: not committed yet);
 * - txn_put()/txn_delete() only remember the write: a read inside the
 *   transaction looks in its log before the cache, and a savepoint's rollback
 *   forgets the writes after it, so that the cache's committed value answers
 *   again (a write does not touch the cache: each would cost a lookup);
 * - a successful commit puts the transaction's writes into the cache in
 *   order; a failed or abandoned one leaves the cache as it was, which is
 *   still the database's state;
 * - when a data key was destroyed (keystore_generation() moved) the cache is
 *   emptied at the next transaction, and after a commit that raced it.
 * A key read as absent is cached as absent the same way (and a committed
 * delete caches its key as absent), but for inbox items, which are written
 * once, read once by their acknowledgement and deleted by it.
 * Only what requests and messages read every time is cached: accounts,
 * devices, conversations, memberships, inboxes (heads and items), the
 * senders' quotas, and the notification records (settings, states, push
 * registrations, and the jobs that share their column family). Not the
 * accounts' conversation index: apply only writes it (at joins and leaves,
 * and once per conversation of an older server, whose messages moved each
 * member's entry) and listings scan it, which bypasses the cache, so its
 * keys would only take room from the records read every time.
 */
static bool cached_key(enum store_cf cf, size_t key_len) {
    if (cf == CF_INBOXES) /* a head (a device id) or an item (| position) */
        return key_len == ID_LEN || key_len == ID_LEN + 8;
    if (cf == CF_CONVERSATIONS) /* a record, or tag | two ids (not tag | id | time | id) */
        return key_len == ID_LEN || key_len == 1 + 2 * ID_LEN;
    return cf == CF_ACCOUNTS || cf == CF_DEVICES || cf == CF_MEMBERS || cf == CF_INBOX_QUOTAS ||
           cf == CF_OUTBOX;
}

/* Caches `key` of `cf` as absent, or forgets it if it is an inbox item. */
static void cache_absent(struct rcache *c, enum store_cf cf, const void *key, size_t key_len) {
    if (cf == CF_INBOXES && key_len != ID_LEN)
        rcache_drop(c, cf, key, key_len);
    else
        rcache_put_absent(c, cf, key, key_len);
}

static bool cacheable(const struct store *s, enum store_cf cf, size_t key_len) {
    return s->rcache && key_len <= RCACHE_KEY_MAX && cached_key(cf, key_len);
}

/* A view's read from the database, into `read` (a transaction's or a
 * reader's; what it held before is wiped, as it was plaintext too), cached
 * in `c` (NULL: not a cached key). */
static int read_through(struct store *s, struct rcache *c, enum store_cf cf, const void *key,
                        size_t key_len, struct buf *read, const uint8_t **data, size_t *len) {
    buf_wipe(read);
    int rc = store_get(s, cf, key, key_len, read);
    if (rc == 0 && c)
        rcache_put(c, cf, key, key_len, read->data, read->len);
    else if (rc == STATUS_NOT_FOUND && c)
        cache_absent(c, cf, key, key_len);
    *data = read->data;
    *len = read->len;
    return rc;
}

/* A view's answer `rc` copied into `out` (emptied unless rc is 0). */
static int copied(int rc, const uint8_t *data, size_t len, struct buf *out) {
    buf_reset(out);
    if (rc == 0)
        buf_append(out, data, len);
    return rc;
}

/* Empties the cache when a data key was destroyed since it was filled. */
static void rcache_check_generation(struct store *s) {
    uint64_t g = keystore_generation(s->ks);
    if (g != s->rcache_generation) {
        rcache_clear(s->rcache);
        s->rcache_generation = g;
    }
}

/* The write log index's hash of (cf, key): keyed SipHash, as record keys may
 * hold ids a client chose. Kept with each write, so that growing the index
 * and the commit hash nothing again. */
static uint64_t write_hash(const struct store_txn *t, uint8_t cf, const void *key, size_t key_len) {
    uint8_t in[1 + KEY_MAX], h[crypto_shorthash_BYTES];
    in[0] = cf;
    memcpy(in + 1, key, key_len);
    crypto_shorthash(h, in, 1 + key_len, t->s->write_hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* The write log's index: where (cf, key), of write_hash() `hash`, is or
 * would go. */
static uint32_t *index_slot(const struct store_txn *t, uint64_t hash, uint8_t cf, const void *key,
                            size_t key_len) {
    for (size_t i = (size_t)hash & (t->index_cap - 1);; i = (i + 1) & (t->index_cap - 1)) {
        uint32_t *slot = &t->index[i];
        if (*slot == 0)
            return slot;
        const struct txn_write *w = &t->writes[*slot - 1];
        if (w->cf == cf && w->key_len == key_len && memcmp(w->key, key, key_len) == 0)
            return slot;
    }
}

/* Indexes the first n_writes writes afresh, in a set at most half full. */
static void index_rebuild(struct store_txn *t) {
    size_t cap = 64;
    while (cap < 2 * t->n_writes + 2)
        cap *= 2;
    if (cap != t->index_cap) {
        free(t->index);
        t->index = xcalloc(cap, sizeof *t->index);
        t->index_cap = cap;
    } else
        memset(t->index, 0, cap * sizeof *t->index);
    for (size_t i = 0; i < t->n_writes; i++) {
        const struct txn_write *w = &t->writes[i];
        *index_slot(t, w->hash, w->cf, w->key, w->key_len) = (uint32_t)(i + 1);
    }
}

/* This transaction's last write (put or delete) of (cf, key) not rolled
 * back, or NULL. */
static const struct txn_write *written(const struct store_txn *t, enum store_cf cf, const void *key,
                                       size_t key_len) {
    if (t->index_cap == 0)
        return NULL;
    uint32_t i =
        *index_slot(t, write_hash(t, (uint8_t)cf, key, key_len), (uint8_t)cf, key, key_len);
    return i ? &t->writes[i - 1] : NULL;
}

/* Whether writes[i] is the last write of its key (the one a commit
 * writes). */
static bool last_write(const struct store_txn *t, size_t i) {
    const struct txn_write *w = &t->writes[i];
    return *index_slot(t, w->hash, w->cf, w->key, w->key_len) == i + 1;
}

static void forget_writes(struct store_txn *t, size_t keep) {
    if (t->n_writes == keep)
        return;
    size_t from = t->writes[keep].value_off;
    sodium_memzero(t->values.data + from, t->values.len - from);
    t->values.len = from;
    while (t->n_writes > keep)
        sodium_memzero(&t->writes[--t->n_writes].dk, sizeof(struct seal_key));
    if (keep == 0) /* emptied at its size, for the next transaction (store_txn_free()) */
        memset(t->index, 0, t->index_cap * sizeof *t->index);
    else
        index_rebuild(t);
}

/* Appends to the log's plaintexts (also n = 0, so that their storage exists
 * once anything was written). Grown by hand: a realloc would leave the
 * plaintext behind in freed memory. */
static void values_append(struct buf *b, const void *v, size_t n) {
    if (b->len + n + 1 > b->cap) {
        struct buf grown;
        buf_init(&grown);
        buf_reserve(&grown, 2 * (b->len + n) + 1024);
        if (b->len)
            buf_append(&grown, b->data, b->len);
        buf_wipe(b);
        buf_cleanup(b);
        *b = grown;
    }
    buf_append(b, v, n);
}

/* Logs a put of `value`, to be sealed under data key `dk` (`kid`), or a
 * delete (both NULL). */
static void remember_write(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
                           const void *value, size_t value_len, const struct seal_key_id *kid,
                           const struct seal_key *dk) {
    if (t->n_writes == t->cap_writes) {
        t->cap_writes = t->cap_writes ? 2 * t->cap_writes : 64;
        t->writes = xrealloc(t->writes, t->cap_writes * sizeof *t->writes);
    }
    struct txn_write *w = &t->writes[t->n_writes++];
    w->cf = (uint8_t)cf;
    w->key_len = (uint8_t)key_len;
    w->deleted = dk == NULL;
    w->hash = write_hash(t, (uint8_t)cf, key, key_len);
    memcpy(w->key, key, key_len);
    w->value_off = t->values.len;
    w->value_len = dk ? value_len : 0;
    values_append(&t->values, value, w->value_len);
    if (dk) {
        w->kid = *kid;
        w->dk = *dk;
    }
    if (2 * t->n_writes + 2 > t->index_cap)
        index_rebuild(t);
    else
        *index_slot(t, w->hash, w->cf, w->key, w->key_len) = (uint32_t)t->n_writes;
}

/* Queues to reader `r` the last write of each key of the commit `t`, or
 * sets its overflow. `begun` is the keystore generation at the start of `t`:
 * if a data key was destroyed since, a value may be sealed under it (and so
 * read as absent), and the reader empties its cache instead. The generation
 * is read under the reader's lock after queuing, so that a read which
 * emptied the cache for the destroy cannot come between the check and the
 * queue. */
static void reader_queue(struct store_reader *r, const struct store_txn *t, uint64_t begun) {
    struct store *s = t->s;
    struct buf *q = &r->pending;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < t->n_writes && !r->overflow; i++) {
        const struct txn_write *w = &t->writes[i];
        if (!cacheable(s, w->cf, w->key_len) || !last_write(t, i))
            continue; /* not cached, or written again later: as commit() writes */
        size_t need = 3 + (size_t)w->key_len + (w->deleted ? 0 : 4 + w->value_len);
        if (q->len + need > READER_PENDING_MAX) {
            r->overflow = true;
            break;
        }
        buf_append_u8(q, w->cf);
        buf_append_u8(q, w->key_len);
        buf_append(q, w->key, w->key_len);
        buf_append_u8(q, w->deleted);
        if (!w->deleted) {
            uint32_t len = (uint32_t)w->value_len;
            buf_append(q, &len, sizeof len);
            buf_append(q, write_value(t, w), w->value_len);
        }
    }
    if (keystore_generation(s->ks) != begun)
        r->overflow = true;
    pthread_mutex_unlock(&r->lock);
}

/* After a successful commit: the writes are the database's state now. */
static void publish_writes(struct store_txn *t) {
    struct store *s = t->s;
    uint64_t begun = s->rcache_generation; /* store_txn_begin() checked it */
    for (size_t i = 0; i < t->n_writes; i++) {
        const struct txn_write *w = &t->writes[i];
        if (!cacheable(s, w->cf, w->key_len))
            continue;
        if (w->deleted)
            cache_absent(s->rcache, w->cf, w->key, w->key_len);
        else
            rcache_put(s->rcache, w->cf, w->key, w->key_len, write_value(t, w), w->value_len);
    }
    rcache_check_generation(s); /* a key destroyed during the batch */
    pthread_mutex_lock(&s->readers_lock);
    for (struct store_reader *r = s->readers; r; r = r->next)
        reader_queue(r, t, begun);
    pthread_mutex_unlock(&s->readers_lock);
}

struct store_reader *store_reader_new(struct store *s) {
    struct store_reader *r = xcalloc(1, sizeof *r);
    r->s = s;
    pthread_mutex_init(&r->lock, NULL);
    buf_init(&r->pending);
    buf_init(&r->read);
    if (s->rcache) {
        r->cache = rcache_new(READ_CACHE_BYTES);
        buf_reserve(&r->pending, READER_PENDING_MAX);
        r->generation = keystore_generation(s->ks);
        pthread_mutex_lock(&s->readers_lock);
        r->next = s->readers;
        s->readers = r;
        pthread_mutex_unlock(&s->readers_lock);
    }
    return r;
}

void store_reader_free(struct store_reader *r) {
    if (!r)
        return;
    struct store *s = r->s;
    pthread_mutex_lock(&s->readers_lock);
    for (struct store_reader **p = &s->readers; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    pthread_mutex_unlock(&s->readers_lock);
    rcache_free(r->cache);
    buf_wipe(&r->read);
    buf_cleanup(&r->read);
    buf_wipe(&r->pending);
    buf_cleanup(&r->pending);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Applies what was committed since the reader's last read to the keys it
 * holds, in commit order: a key it does not hold stays unheld (its next
 * read goes to the database, which has the commit by then). */
static void reader_apply(struct store_reader *r) {
    const uint8_t *p = r->pending.data, *end = p + r->pending.len;
    while (p < end) {
        enum store_cf cf = p[0];
        size_t key_len = p[1];
        const uint8_t *key = p + 2;
        bool deleted = key[key_len];
        p = key + key_len + 1;
        uint32_t len = 0;
        if (!deleted) {
            memcpy(&len, p, sizeof len);
            p += sizeof len;
        }
        if (rcache_has(r->cache, cf, key, key_len)) {
            if (deleted)
                cache_absent(r->cache, cf, key, key_len);
            else
                rcache_put(r->cache, cf, key, key_len, p, len);
        }
        p += len;
    }
}

/* Brings the reader's cache up to the last commit queued to it. */
static void reader_catch_up(struct store_reader *r) {
    pthread_mutex_lock(&r->lock);
    if (r->overflow) {
        rcache_clear(r->cache);
        r->overflow = false;
    } else {
        reader_apply(r);
    }
    sodium_memzero(r->pending.data, r->pending.len); /* plaintext values */
    buf_reset(&r->pending);
    pthread_mutex_unlock(&r->lock);
    uint64_t g = keystore_generation(r->s->ks);
    if (g != r->generation) {
        rcache_clear(r->cache);
        r->generation = g;
    }
}

int store_reader_view(struct store_reader *r, enum store_cf cf, const void *key, size_t key_len,
                      const uint8_t **data, size_t *len) {
    bool cache = cacheable(r->s, cf, key_len);
    if (cache) {
        reader_catch_up(r);
        enum rcache_hit hit = rcache_view(r->cache, cf, key, key_len, data, len);
        if (hit != RCACHE_MISS)
            return hit == RCACHE_VALUE ? 0 : STATUS_NOT_FOUND;
    }
    /* A commit between the read and now queued the key: the next read
     * replaces what this one caches. */
    return read_through(r->s, cache ? r->cache : NULL, cf, key, key_len, &r->read, data, len);
}

int store_reader_get(struct store_reader *r, enum store_cf cf, const void *key, size_t key_len,
                     struct buf *out) {
    const uint8_t *data;
    size_t len;
    int rc = store_reader_view(r, cf, key, key_len, &data, &len);
    return copied(rc, data, len, out);
}

struct store_read_cache_stats store_reader_stats(const struct store_reader *r) {
    if (!r->cache)
        return (struct store_read_cache_stats){0};
    struct rcache_stats c = rcache_stats(r->cache);
    return (struct store_read_cache_stats){
        .entries = c.entries, .bytes = c.bytes, .hits = c.hits, .misses = c.misses};
}

struct store_read_cache_stats store_read_cache_stats(struct store *s) {
    if (!s->rcache)
        return (struct store_read_cache_stats){0};
    struct rcache_stats r = rcache_stats(s->rcache);
    return (struct store_read_cache_stats){
        .entries = r.entries, .bytes = r.bytes, .hits = r.hits, .misses = r.misses};
}

int store_txn_begin(struct store *s, struct store_txn **out) {
    CHECK(!s->txn_open);
    s->txn_open = true;
    if (s->rcache)
        rcache_check_generation(s);
    struct store_txn *t = s->spare ? s->spare : xcalloc(1, sizeof *t);
    s->spare = NULL;
    t->s = s;
    *out = t;
    return 0;
}

void store_txn_savepoint(struct store_txn *t) {
    t->savepoints++;
    if (t->n_marks == t->cap_marks) {
        t->cap_marks = t->cap_marks ? 2 * t->cap_marks : 64;
        t->marks = xrealloc(t->marks, t->cap_marks * sizeof *t->marks);
    }
    t->marks[t->n_marks++] = t->n_writes;
}

void store_txn_rollback(struct store_txn *t) {
    CHECK(t->savepoints > 0);
    t->savepoints--;
    forget_writes(t, t->marks[--t->n_marks]);
}

int store_txn_count(struct store_txn *t) {
    return (int)t->n_writes;
}

/* RocksDB's order of keys (bytewise), column family first. */
static int cmp_write_key(const void *a, const void *b) {
    const struct txn_write *x = *(const struct txn_write *const *)a;
    const struct txn_write *y = *(const struct txn_write *const *)b;
    if (x->cf != y->cf)
        return x->cf < y->cf ? -1 : 1;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static int commit(struct store_txn *t, bool guard) {
    if (guard) {
        int rc = store_check_space(t->s);
        if (rc < 0)
            return rc;
    }
    if (atomic_load(&t->s->failed))
        return STATUS_UNAVAILABLE;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    struct buf sealed;
    buf_init(&sealed);
    int rc = 0;
    /* The batch goes to RocksDB in key order, column family by column
     * family: each memtable then starts an insert from where the one before
     * it ended (the skip list keeps the last insert's place) instead of
     * searching from its top. A key is in the batch once (its last write),
     * so the order changes nothing stored. */
    const struct txn_write **order = xmalloc((t->n_writes + 1) * sizeof *order);
    size_t n = 0;
    for (size_t i = 0; i < t->n_writes; i++)
        if (last_write(t, i)) /* else written again later in the transaction */
            order[n++] = &t->writes[i];
    qsort(order, n, sizeof *order, cmp_write_key);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct txn_write *w = order[i];
        if (w->deleted) {
            rocksdb_writebatch_delete_cf(wb, cf_handle(t->s, w->cf), (const char *)w->key,
                                         w->key_len);
            continue;
        }
        rc = seal_value(SEAL_AUTO, &w->dk, &w->kid, store_cf_name(w->cf), w->key, w->key_len,
                        write_value(t, w), w->value_len, &sealed);
        if (rc == 0) /* the batch copies it */
            rocksdb_writebatch_put_cf(wb, cf_handle(t->s, w->cf), (const char *)w->key, w->key_len,
                                      (const char *)sealed.data, sealed.len);
    }
    buf_cleanup(&sealed);
    free(order);
    if (rc != 0) { /* the crypto library failed (logged): nothing written */
        rocksdb_writebatch_destroy(wb);
        return STATUS_UNAVAILABLE;
    }
    char *err = NULL;
    no_perf_counters();
    rocksdb_write(t->s->db, t->s->sync_write, wb, &err);
    size_t bytes;
    rocksdb_writebatch_data(wb, &bytes);
    atomic_fetch_add(&t->s->written_since, bytes);
    rocksdb_writebatch_destroy(wb);
    if (err) {
        /* RocksDB stops the database after a failed WAL write (and Resume() is
         * not in the C API); refusing here as well keeps it from appending to
         * a failed file again, which Debian's build answers with an assertion,
         * whatever severity it gives the error. Nothing of this batch was
         * acknowledged, and what was is in the WAL for the next start: to the
         * client this is "unavailable", like the reserve. */
        atomic_store(&t->s->failed, true);
        rdb_error("write", err);
        log_error(MOD, "refusing every write until carechatd is restarted (free space or fix the "
                       "data volume first)");
        return STATUS_UNAVAILABLE;
    }
    return 0;
}

int store_txn_commit(struct store_txn *t) {
    int rc = commit(t, true);
    if (rc != 0)
        return rc;
    if (t->s->rcache)
        publish_writes(t);
    forget_writes(t, 0);
    return 0;
}

/* Frees a transaction's storage (its writes forgotten first). */
static void txn_release(struct store_txn *t) {
    free(t->writes);
    free(t->marks);
    free(t->index);
    buf_cleanup(&t->values);
    buf_wipe(&t->read);
    buf_cleanup(&t->read);
    free(t);
}

/* A freed transaction's storage is kept for the next one, so that a commit
 * of a few hundred writes allocates nothing for its log; one that grew past
 * these (a purge, a migration) gives it back. */
#define SPARE_WRITES_MAX 4096
#define SPARE_VALUES_MAX (1u << 20)

void store_txn_free(struct store_txn *t) {
    if (!t)
        return;
    struct store *s = t->s;
    s->txn_open = false;
    forget_writes(t, 0); /* wipes the values and data keys */
    buf_wipe(&t->read);
    t->savepoints = 0;
    t->n_marks = 0;
    if (t->cap_writes > SPARE_WRITES_MAX || t->values.cap > SPARE_VALUES_MAX || s->spare)
        txn_release(t);
    else
        s->spare = t;
}

int txn_view(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
             const uint8_t **data, size_t *len) {
    struct store *s = t->s;
    const struct txn_write *w = key_len <= KEY_MAX ? written(t, cf, key, key_len) : NULL;
    if (w) {
        *data = write_value(t, w);
        *len = w->value_len;
        return w->deleted ? STATUS_NOT_FOUND : 0;
    }
    bool cache = cacheable(s, cf, key_len);
    enum rcache_hit hit = cache ? rcache_view(s->rcache, cf, key, key_len, data, len) : RCACHE_MISS;
    if (hit != RCACHE_MISS)
        return hit == RCACHE_VALUE ? 0 : STATUS_NOT_FOUND;
    return read_through(s, cache ? s->rcache : NULL, cf, key, key_len, &t->read, data, len);
}

int txn_get(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
            struct buf *out) {
    const uint8_t *data;
    size_t len;
    int rc = txn_view(t, cf, key, key_len, &data, &len);
    return copied(rc, data, len, out);
}

int txn_put(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len,
            const struct id *owner, const void *value, size_t value_len) {
    struct store *s = t->s;
    if (value_len > SEAL_MAX_PLAIN || key_len > KEY_MAX)
        return STATUS_TOO_LARGE;
    struct seal_key_id kid;
    struct seal_key dk;
    int rc = keystore_current_key(s->ks, owner, &kid, &dk);
    if (rc < 0)
        return rc;
    remember_write(t, cf, key, key_len, value, value_len, &kid, &dk);
    sodium_memzero(&dk, sizeof dk);
    return 0;
}

int txn_delete(struct store_txn *t, enum store_cf cf, const void *key, size_t key_len) {
    if (key_len > KEY_MAX)
        return STATUS_TOO_LARGE;
    remember_write(t, cf, key, key_len, NULL, 0, NULL, NULL);
    return 0;
}

/* ---- open and close ---- */

int store_flush(struct store *s) {
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    int rc = 0;
    for (int cf = 0; cf < CF_COUNT && rc == 0; cf++) {
        char *err = NULL;
        rocksdb_flush_cf(s->db, fo, cf_handle(s, (enum store_cf)cf), &err);
        if (err)
            rc = rdb_error("flush", err);
    }
    rocksdb_flushoptions_destroy(fo);
    return rc;
}

/* The compaction filter of every column family: drops a value whose owner's
 * data key was destroyed (a purged patient's records, which no longer open),
 * so that purge does not wait for the data to age out of the files. The owner
 * is read from the sealed value's header (storage/seal.h). */
static unsigned char drop_shredded(void *state, int level, const char *key, size_t key_len,
                                   const char *value, size_t value_len, char **new_value,
                                   size_t *new_value_len, unsigned char *value_changed) {
    struct store *s = state;
    struct id owner;
    if (value_len < SEAL_OVERHEAD ||
        ((uint8_t)value[0] != SEAL_VERSION && (uint8_t)value[0] != SEAL_VERSION_1))
        return 0;
    memcpy(owner.b, value + 1, ID_LEN);
    return !id_is_zero(&owner) && keystore_destroyed(s->ks, &owner);
}

static const char *drop_shredded_name(void *state) {
    return "carechat-drop-shredded";
}

/* RocksDB calls a filter's destructor unconditionally; the store owns `state`. */
static void drop_shredded_free(void *state) {}

static rocksdb_options_t *make_cf_options(struct store *s, int index) {
    rocksdb_options_t *o = rocksdb_options_create_copy(s->db_opts);
    rocksdb_options_set_compaction_filter(o, s->filter);
    rocksdb_options_set_block_based_table_factory(o, s->table_opts);
    if (index > 0 && s->prefix_bloom && cf_prefix_len[index - 1])
        rocksdb_options_set_prefix_extractor(/* the options own it */
                                             o, rocksdb_slicetransform_create_fixed_prefix(
                                                    cf_prefix_len[index - 1]));
    /* A memtable bloom filter of whole keys only where point reads mostly
     * miss: each message looks up an idempotency key and a receipt key that
     * exist nowhere. RocksDB sizes it from the column family's write buffer
     * (64 MiB) and counts it against the memtable budget all column families
     * share (STORE_MEMTABLE_BUDGET): 0.5% is 336 KiB per memtable, about 8
     * bits a key when 200-byte records fill it. (5% in every column family
     * filled the budget at once and flushed every few kilobytes.) */
    if (index == CF_IDEMPOTENCY + 1 || index == CF_RECEIPTS + 1) {
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, MEMTABLE_BLOOM_RATIO);
        rocksdb_options_set_memtable_whole_key_filtering(o, 1);
    }
    /* every value is AES-GCM ciphertext: compression would only cost CPU */
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    rocksdb_options_set_bottommost_compression(o, rocksdb_no_compression);
    /* File chunks and key backup segments: opaque ciphertext up to a frame. */
    if (index == CF_CHUNKS + 1 || index == CF_KEY_BACKUP + 1) {
        rocksdb_options_set_enable_blob_files(o, 1);
        rocksdb_options_set_min_blob_size(o, CHUNK_MIN_BLOB_SIZE);
        rocksdb_options_set_blob_compression_type(o, rocksdb_no_compression);
        rocksdb_options_set_enable_blob_gc(o, 1);
    }
    return o;
}

/* Writes the check record into a new database, or verifies it in an old one. */
static int check_keystore_matches(struct store *s, bool create) {
    static const char key[] = CHECK_KEY;
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, CF_META, key, sizeof key - 1, &v);
    if (rc == 0 && (v.len != sizeof CHECK_VALUE - 1 || memcmp(v.data, CHECK_VALUE, v.len) != 0))
        rc = STATUS_CORRUPT;
    if (rc == STATUS_NOT_FOUND && create) {
        struct store_txn *t = NULL;
        store_txn_begin(s, &t);
        rc = txn_put(t, CF_META, key, sizeof key - 1, NULL, CHECK_VALUE, sizeof CHECK_VALUE - 1);
        if (rc == 0)
            rc = commit(t, false);
        store_txn_free(t);
    } else if (rc == STATUS_NOT_FOUND) {
        log_error(MOD,
                  "the database %s lacks its first record (the key store check): it is "
                  "incomplete",
                  s->db_path);
    } else if (rc < 0) {
        log_error(MOD, "the key store does not belong to this database (its check record "
                       "does not open): wrong --key-dir or --master-key?");
        rc = STATUS_CORRUPT;
    }
    buf_cleanup(&v);
    return rc;
}

static char *join(const char *a, const char *b) {
    struct buf p;
    buf_init(&p);
    buf_printf(&p, "%s/%s", a, b);
    return (char *)buf_steal(&p, NULL);
}

/* STORE_OPEN: the database must be there. Checked before RocksDB sees the
 * directory, which it would change even when it then fails to open (it renames
 * its info LOG), and before the key store, so a missing database is named as
 * such. */
static int check_existing_db(const char *data_dir, const char *db_path, const char *key_dir) {
    struct stat st;
    if (stat(data_dir, &st) != 0) {
        int e = errno;
        log_error(MOD, "cannot open the data directory %s: %s", data_dir, strerror(e));
        return e == ENOENT ? STATUS_NOT_FOUND : STATUS_IO;
    }
    char *current = join(db_path, "CURRENT");
    int rc = 0;
    if (stat(current, &st) != 0) {
        if (keystore_dir_has_keys(key_dir))
            log_error(MOD,
                      "%s is missing although the key directory %s holds keys: the database is "
                      "lost or incomplete (data volume not mounted?)",
                      current, key_dir);
        else
            log_error(MOD, "there is no database in %s (%s is missing)", data_dir, current);
        rc = STATUS_NOT_FOUND;
    }
    free(current);
    return rc;
}

/* STORE_CREATE: DATA_DIR may exist (an empty volume), DATA_DIR/db must not, and
 * the key store must hold no keys (checked here too, before DATA_DIR is made, so
 * that a refusal leaves nothing behind). */
static int prepare_new_db(const char *data_dir, const char *db_path, const char *key_dir) {
    struct stat st;
    if (stat(db_path, &st) == 0 || errno != ENOENT) {
        log_error(MOD, "refusing to create a database: %s exists", db_path);
        return STATUS_CONFLICT;
    }
    if (keystore_dir_has_keys(key_dir)) {
        log_error(MOD,
                  "refusing to create a database: the key directory %s holds the keys of "
                  "another database",
                  key_dir);
        return STATUS_CONFLICT;
    }
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        log_error(MOD, "cannot create %s: %s", data_dir, strerror(errno));
        return STATUS_IO;
    }
    return 0;
}

int store_open(const struct store_config *cfg, struct store **out) {
    if (!cfg || !cfg->data_dir || !*cfg->data_dir)
        return STATUS_BAD_REQUEST;
    int rc = seal_init();
    if (rc < 0)
        return rc;
    bool create = cfg->mode == STORE_CREATE;
    struct store *s = xcalloc(1, sizeof *s);
    char *key_dir = cfg->key_dir ? xstrdup(cfg->key_dir) : join(cfg->data_dir, "keys");
    s->db_path = join(cfg->data_dir, "db");
    s->key_dir = xstrdup(key_dir);
    s->prefix_bloom = !cfg->no_prefix_bloom;
    atomic_store(&s->min_free_bytes, cfg->min_free_bytes);
    atomic_store(&s->min_free_key_bytes, cfg->min_free_key_bytes);
    rc = create ? prepare_new_db(cfg->data_dir, s->db_path, key_dir)
                : check_existing_db(cfg->data_dir, s->db_path, key_dir);
    if (rc < 0)
        goto fail;

    struct keystore_config kc = {
        .key_dir = key_dir,
        .create = create,
        .master_key_path = cfg->master_key_path,
        .old_master_key_path = cfg->old_master_key_path,
        .cache_entries = cfg->key_cache_entries,
        .impl = SEAL_AUTO,
    };
    rc = keystore_open(&kc, &s->ks);
    if (rc < 0)
        goto fail;
    pthread_mutex_init(&s->readers_lock, NULL);
    if (!cfg->no_read_cache)
        s->rcache = rcache_new(READ_CACHE_BYTES);
    randombytes_buf(s->write_hash_key, sizeof s->write_hash_key);
    s->rcache_generation = keystore_generation(s->ks);
    if (create && mkdir(s->db_path, 0700) != 0) {
        int e = errno;
        log_error(MOD, "cannot create %s: %s", s->db_path, strerror(e));
        rc = e == EEXIST ? STATUS_CONFLICT : STATUS_IO;
        goto fail;
    }

    s->db_opts = rocksdb_options_create();
    /* Only ever in the directory made just above: never over a database whose
     * CURRENT file is gone (RocksDB would then start afresh and delete the table
     * files it does not know). */
    rocksdb_options_set_create_if_missing(s->db_opts, create);
    rocksdb_options_set_error_if_exists(s->db_opts, create);
    /* Column families added by a later version are created in an old database. */
    rocksdb_options_set_create_missing_column_families(s->db_opts, 1);
    /* Point-in-time: replay stops at the first bad WAL record, leaving a
     * consistent prefix of committed batches. With sync=true group commit the
     * only record a crash can tear is a batch nobody was told about; absolute
     * consistency would refuse to start after such a power cut. */
    rocksdb_options_set_wal_recovery_mode(s->db_opts, rocksdb_point_in_time_recovery);
    rocksdb_options_set_keep_log_file_num(s->db_opts, 5);
    /* RocksDB's info LOG lives on the data volume; once an append to it fails
     * (disk full), Debian's build aborts on an assertion at the next line it
     * logs, e.g. the one reporting the failed write. At FATAL only the header
     * written at open reaches it, so a full disk returns errors instead. */
    rocksdb_options_set_info_log_level(s->db_opts, STORE_RDB_FATAL_LEVEL);
    /* Bounds a flush and a WAL preallocation, hence STORE_MIN_RESERVE. */
    rocksdb_options_set_db_write_buffer_size(s->db_opts, STORE_MEMTABLE_BUDGET);
    s->cache = rocksdb_cache_create_lru(cfg->cache_bytes ? cfg->cache_bytes : DEFAULT_CACHE_BYTES);
    s->filter =
        rocksdb_compactionfilter_create(s, drop_shredded_free, drop_shredded, drop_shredded_name);
    s->table_opts = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->table_opts, s->cache);
    /* Whole-key bloom filters (full format, 10 bits a key: about 1% false
     * positives), kept in the block cache with the index blocks, those of
     * level 0 pinned: a point read of a key that is not in an SST file costs
     * a filter probe instead of an index search and a data block read. */
    rocksdb_block_based_options_set_filter_policy(/* the table options own it */
                                                  s->table_opts,
                                                  rocksdb_filterpolicy_create_bloom_full(
                                                      BLOOM_BITS_PER_KEY));
    /* With a prefix extractor (cf_prefix_len) the filters hold each key's
     * prefix as well; whole keys stay in them for point reads. */
    rocksdb_block_based_options_set_whole_key_filtering(s->table_opts, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->table_opts, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(s->table_opts, 1);

    const char *names[CF_COUNT + 1];
    names[0] = "default";
    for (int i = 0; i <= CF_COUNT; i++) {
        if (i > 0)
            names[i] = cf_names[i - 1];
        s->cf_opts[i] = make_cf_options(s, i);
    }
    char *err = NULL;
    s->db = rocksdb_open_column_families(s->db_opts, s->db_path, CF_COUNT + 1, names,
                                         (const rocksdb_options_t *const *)s->cf_opts, s->cf, &err);
    if (err) {
        rc = rdb_error("open", err);
        s->db = NULL;
        goto fail;
    }
    s->read_opts = rocksdb_readoptions_create();
    s->sync_write = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->sync_write, 1);
    rc = check_keystore_matches(s, create);
    if (rc < 0)
        goto fail;
    free(key_dir);
    log_info(MOD, "%s %s with %d column families", create ? "created" : "opened", s->db_path,
             CF_COUNT);
    *out = s;
    return 0;
fail:
    free(key_dir);
    store_close(s);
    return rc;
}

void store_close(struct store *s) {
    if (!s)
        return;
    if (s->db) {
        /* not after a failed write (the WAL holds it all), nor on a full disk */
        if (store_check_space(s) == 0)
            store_flush(s);
        for (int i = 0; i <= CF_COUNT; i++)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
    }
    for (int i = 0; i <= CF_COUNT; i++)
        if (s->cf_opts[i])
            rocksdb_options_destroy(s->cf_opts[i]);
    if (s->table_opts)
        rocksdb_block_based_options_destroy(s->table_opts);
    if (s->cache)
        rocksdb_cache_destroy(s->cache);
    CHECK(!s->readers); /* every store_reader freed first */
    if (s->spare)
        txn_release(s->spare);
    rcache_free(s->rcache);
    if (s->db_opts)
        rocksdb_options_destroy(s->db_opts);
    if (s->filter)
        rocksdb_compactionfilter_destroy(s->filter);
    if (s->read_opts)
        rocksdb_readoptions_destroy(s->read_opts);
    if (s->sync_write)
        rocksdb_writeoptions_destroy(s->sync_write);
    keystore_close(s->ks);
    free(s->key_dir);
    free(s->db_path);
    free(s);
}
