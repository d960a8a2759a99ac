/*
 * server/lockout.c: failure counting with backoff (server/lockout.h). Loop
 * thread only.
 */
#include "server/lockout.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

struct entry {
    bool used;
    uint8_t key[LOCKOUT_KEY_MAX];
    size_t key_len;
    unsigned failures;
    int64_t last_ms;  /* the last failure */
    int64_t until_ms; /* no attempt before this */
};

struct lockout {
    struct lockout_config cfg;
    struct entry *entries;
    size_t n;
};

int lockout_new(const struct lockout_config *cfg, struct lockout **out) {
    if (cfg->free_failures < 1 || cfg->base_ms < 1 || cfg->max_ms < cfg->base_ms ||
        cfg->forget_ms < 1)
        return STATUS_BAD_REQUEST;
    struct lockout *l = xcalloc(1, sizeof *l);
    l->cfg = *cfg;
    l->n = cfg->max_entries ? cfg->max_entries : 4096;
    l->entries = xcalloc(l->n, sizeof *l->entries);
    *out = l;
    return STATUS_OK;
}

void lockout_free(struct lockout *l) {
    if (!l)
        return;
    free(l->entries);
    free(l);
}

static uint64_t hash(const uint8_t *key, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return h;
}

#define PROBES 8

/* The entry of `key`, forgotten when stale; NULL when it has none and
 * `create` is false; otherwise a free, stale or the longest idle slot. */
static struct entry *find(struct lockout *l, const uint8_t *key, size_t len, int64_t now_ms,
                          bool create) {
    size_t start = (size_t)(hash(key, len) % l->n);
    struct entry *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBES && i < l->n; i++) {
        struct entry *e = &l->entries[(start + i) % l->n];
        if (e->used && now_ms - e->last_ms >= l->cfg.forget_ms)
            e->used = false;
        if (e->used && e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
        if (!e->used && !free_slot)
            free_slot = e;
        if (e->used && (!oldest || e->last_ms < oldest->last_ms))
            oldest = e;
    }
    if (!create)
        return NULL;
    struct entry *e = free_slot ? free_slot : oldest;
    memset(e, 0, sizeof *e);
    e->used = true;
    memcpy(e->key, key, len);
    e->key_len = len;
    return e;
}

int64_t lockout_wait(struct lockout *l, const void *key, size_t len, int64_t now_ms) {
    if (len > LOCKOUT_KEY_MAX)
        len = LOCKOUT_KEY_MAX;
    struct entry *e = find(l, key, len, now_ms, false);
    return e && e->until_ms > now_ms ? e->until_ms - now_ms : 0;
}

void lockout_fail(struct lockout *l, const void *key, size_t len, int64_t now_ms) {
    if (len > LOCKOUT_KEY_MAX)
        len = LOCKOUT_KEY_MAX;
    struct entry *e = find(l, key, len, now_ms, true);
    e->failures++;
    e->last_ms = now_ms;
    if (e->failures < l->cfg.free_failures)
        return;
    int64_t wait = l->cfg.base_ms;
    for (unsigned k = l->cfg.free_failures; k < e->failures && wait < l->cfg.max_ms; k++)
        wait *= 2;
    e->until_ms = now_ms + (wait < l->cfg.max_ms ? wait : l->cfg.max_ms);
}

void lockout_clear(struct lockout *l, const void *prefix, size_t len) {
    for (size_t i = 0; i < l->n; i++) {
        struct entry *e = &l->entries[i];
        if (e->used && e->key_len >= len && memcmp(e->key, prefix, len) == 0)
            e->used = false;
    }
}

void lockout_network(const uint8_t addr[16], uint8_t out[16]) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(out, addr, 16);
    if (memcmp(addr, mapped, 12) != 0)
        memset(out + 8, 0, 8); /* IPv6: the /64 */
}
