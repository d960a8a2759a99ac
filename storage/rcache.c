/*
 * storage/rcache.c: the read cache of store transactions (rcache.h): chained
 * buckets under a keyed SipHash (keys may be ids a client chose), at most
 * one entry per bucket on average (the table doubles when it holds more),
 * entries allocated with their key and value inline.
 *
 * Small entries (an inbox head or item, a membership: at most SMALL_ENTRY
 * bytes) are all allocated at that size and, once dropped, kept wiped on a
 * free list of at most FREE_MAX for the next insert: a commit replaces the
 * entries of the keys it wrote, and so allocates nothing for them. The free
 * list (at most 768 KiB) is outside the bound.
 */
#include "storage/rcache.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define MIN_SLOTS 4096 /* a power of two */
#define SMALL_ENTRY 192
#define FREE_MAX 4096

struct entry {
    struct entry *next;
    uint64_t hash;
    uint32_t value_len;
    uint8_t cf;
    uint8_t key_len;
    bool absent;    /* then value_len is 0 */
    uint8_t data[]; /* key, then value */
};

struct rcache {
    struct entry **slots;
    size_t n_slots; /* a power of two, at least MIN_SLOTS */
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    size_t max_bytes, bytes, entries;
    uint64_t hits, misses;
    struct entry *free; /* small entries, linked by next */
    size_t n_free;
};

static size_t entry_size(size_t key_len, size_t value_len) {
    return sizeof(struct entry) + key_len + value_len;
}

static uint64_t hash_of(const struct rcache *c, int cf, const void *key, size_t key_len) {
    uint8_t in[1 + RCACHE_KEY_MAX];
    in[0] = (uint8_t)cf;
    memcpy(in + 1, key, key_len);
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, in, 1 + key_len, c->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* The link that points at (cf, key)'s entry, or at the chain's NULL end. */
static struct entry **find(struct rcache *c, uint64_t hash, int cf, const void *key,
                           size_t key_len) {
    struct entry **p = &c->slots[hash & (c->n_slots - 1)];
    for (; *p; p = &(*p)->next) {
        const struct entry *e = *p;
        if (e->hash == hash && e->cf == cf && e->key_len == key_len &&
            memcmp(e->data, key, key_len) == 0)
            break;
    }
    return p;
}

/* Doubles the table, moving every entry to its bucket there. */
static void grow(struct rcache *c) {
    size_t n = 2 * c->n_slots;
    struct entry **slots = xcalloc(n, sizeof *slots);
    for (size_t i = 0; i < c->n_slots; i++)
        for (struct entry *e = c->slots[i], *next; e; e = next) {
            next = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
        }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n;
}

static void unlink_entry(struct rcache *c, struct entry **p) {
    struct entry *e = *p;
    *p = e->next;
    size_t size = entry_size(e->key_len, e->value_len);
    c->bytes -= size;
    c->entries--;
    sodium_memzero(e, size);
    if (size <= SMALL_ENTRY && c->n_free < FREE_MAX) {
        e->next = c->free;
        c->free = e;
        c->n_free++;
    } else {
        free(e);
    }
}

static struct entry *new_entry(struct rcache *c, size_t size) {
    if (size > SMALL_ENTRY)
        return xmalloc(size);
    struct entry *e = c->free;
    if (!e)
        return xmalloc(SMALL_ENTRY);
    c->free = e->next;
    c->n_free--;
    return e;
}

struct rcache *rcache_new(size_t max_bytes) {
    struct rcache *c = xcalloc(1, sizeof *c);
    c->n_slots = MIN_SLOTS;
    c->slots = xcalloc(c->n_slots, sizeof *c->slots);
    c->max_bytes = max_bytes;
    randombytes_buf(c->hash_key, sizeof c->hash_key);
    return c;
}

void rcache_clear(struct rcache *c) {
    for (size_t i = 0; i < c->n_slots && c->entries > 0; i++)
        while (c->slots[i])
            unlink_entry(c, &c->slots[i]);
}

void rcache_free(struct rcache *c) {
    if (!c)
        return;
    rcache_clear(c);
    for (struct entry *e = c->free, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->slots);
    free(c);
}

enum rcache_hit rcache_view(struct rcache *c, int cf, const void *key, size_t key_len,
                            const uint8_t **data, size_t *len) {
    if (key_len > RCACHE_KEY_MAX)
        return RCACHE_MISS;
    const struct entry *e = *find(c, hash_of(c, cf, key, key_len), cf, key, key_len);
    if (!e) {
        c->misses++;
        return RCACHE_MISS;
    }
    c->hits++;
    *data = e->data + e->key_len;
    *len = e->value_len;
    return e->absent ? RCACHE_ABSENT : RCACHE_VALUE;
}

enum rcache_hit rcache_get(struct rcache *c, int cf, const void *key, size_t key_len,
                           struct buf *out) {
    const uint8_t *data;
    size_t len;
    enum rcache_hit hit = rcache_view(c, cf, key, key_len, &data, &len);
    if (hit != RCACHE_MISS) {
        buf_reset(out);
        buf_append(out, data, len);
    }
    return hit;
}

bool rcache_has(struct rcache *c, int cf, const void *key, size_t key_len) {
    return key_len <= RCACHE_KEY_MAX && *find(c, hash_of(c, cf, key, key_len), cf, key, key_len);
}

void rcache_drop(struct rcache *c, int cf, const void *key, size_t key_len) {
    if (key_len > RCACHE_KEY_MAX)
        return;
    struct entry **p = find(c, hash_of(c, cf, key, key_len), cf, key, key_len);
    if (*p)
        unlink_entry(c, p);
}

static void insert(struct rcache *c, int cf, const void *key, size_t key_len, const void *value,
                   size_t value_len, bool absent) {
    if (key_len > RCACHE_KEY_MAX)
        return;
    uint64_t hash = hash_of(c, cf, key, key_len);
    struct entry **p = find(c, hash, cf, key, key_len);
    if (*p)
        unlink_entry(c, p);
    size_t size = entry_size(key_len, value_len);
    if (size > c->max_bytes || value_len > UINT32_MAX)
        return;
    if (c->bytes + size > c->max_bytes)
        rcache_clear(c);
    struct entry *e = new_entry(c, size);
    e->hash = hash;
    e->cf = (uint8_t)cf;
    e->key_len = (uint8_t)key_len;
    e->value_len = (uint32_t)value_len;
    e->absent = absent;
    memcpy(e->data, key, key_len);
    if (value_len > 0)
        memcpy(e->data + key_len, value, value_len);
    if (c->entries >= c->n_slots)
        grow(c);
    struct entry **head = &c->slots[hash & (c->n_slots - 1)];
    e->next = *head;
    *head = e;
    c->bytes += size;
    c->entries++;
}

void rcache_put(struct rcache *c, int cf, const void *key, size_t key_len, const void *value,
                size_t value_len) {
    insert(c, cf, key, key_len, value, value_len, false);
}

void rcache_put_absent(struct rcache *c, int cf, const void *key, size_t key_len) {
    insert(c, cf, key, key_len, NULL, 0, true);
}

struct rcache_stats rcache_stats(const struct rcache *c) {
    return (struct rcache_stats){
        .entries = c->entries, .bytes = c->bytes, .hits = c->hits, .misses = c->misses};
}
