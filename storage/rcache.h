/*
 * storage/rcache.h: the read cache of store transactions: opened (plaintext)
 * values of a few column families, by column family and key, so that apply
 * reads a hot record (an account, a device, a conversation, a membership)
 * once instead of searching RocksDB and opening its seal every time.
 *
 * A key may also be cached as absent, so that a record that usually does
 * not exist (a device's push registration, a sender's quota of an empty
 * inbox) is not searched for on every message either.
 *
 * A plain map with a bound: when an insert would pass `max_bytes` (keys,
 * values and bookkeeping), everything is dropped first. Its bucket table
 * (8 bytes a bucket, at most two buckets an entry) and its free list of
 * dropped small entries (at most 768 KiB) are outside the bound. Values are
 * wiped when dropped, since account records hold emails and names.
 *
 * store.c keeps it exact: see "the read cache" there. Not thread-safe: only
 * the thread that holds the store's transactions (the journal's writer) uses
 * it.
 */
#ifndef STORAGE_RCACHE_H
#define STORAGE_RCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Longest key the cache holds; longer keys are never cached. */
#define RCACHE_KEY_MAX 64

struct rcache;

struct rcache *rcache_new(size_t max_bytes);
void rcache_free(struct rcache *c);

enum rcache_hit {
    RCACHE_MISS = 0, /* not cached: `out` untouched */
    RCACHE_VALUE,    /* its value copied into `out` */
    RCACHE_ABSENT,   /* cached as absent: `out` emptied */
};

/* Looks (cf, key) up. */
enum rcache_hit rcache_get(struct rcache *c, int cf, const void *key, size_t key_len,
                           struct buf *out);

/* rcache_get() without the copy: on RCACHE_VALUE, *data and *len point at
 * the cached value, borrowed until the next call on `c`. */
enum rcache_hit rcache_view(struct rcache *c, int cf, const void *key, size_t key_len,
                            const uint8_t **data, size_t *len);

/* Caches a copy of `value` under (cf, key), replacing any earlier one. A key
 * longer than RCACHE_KEY_MAX or a value larger than the bound is not cached
 * (and any earlier value is dropped). */
void rcache_put(struct rcache *c, int cf, const void *key, size_t key_len, const void *value,
                size_t value_len);

/* Caches (cf, key) as absent, replacing any earlier value (a key longer
 * than RCACHE_KEY_MAX: nothing). */
void rcache_put_absent(struct rcache *c, int cf, const void *key, size_t key_len);

/* Whether (cf, key) is cached, as a value or as absent; counts neither a
 * hit nor a miss. */
bool rcache_has(struct rcache *c, int cf, const void *key, size_t key_len);

/* Drops (cf, key) if cached. */
void rcache_drop(struct rcache *c, int cf, const void *key, size_t key_len);

/* Drops everything. */
void rcache_clear(struct rcache *c);

/* Entries cached now (values and absent keys), and hits (of either) and
 * misses of rcache_get() so far. */
struct rcache_stats {
    size_t entries, bytes;
    uint64_t hits, misses;
};
struct rcache_stats rcache_stats(const struct rcache *c);

#endif
