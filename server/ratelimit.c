/*
 * server/ratelimit.c: token buckets (see ratelimit.h). Tokens are kept in
 * thousandths so that refill needs no floating point. Loop thread only.
 */
#include "server/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

#define MILLI 1000

struct bucket {
    bool used;
    uint8_t key[RATELIMIT_KEY_MAX];
    size_t key_len;
    int64_t tokens_milli;
    int64_t updated_ms;
};

struct ratelimit {
    struct ratelimit_config cfg;
    struct bucket *buckets;
    size_t n;
};

int ratelimit_new(const struct ratelimit_config *cfg, struct ratelimit **out) {
    if (cfg->burst < 1 || cfg->window_ms < 1)
        return STATUS_BAD_REQUEST;
    struct ratelimit *r = xcalloc(1, sizeof *r);
    r->cfg = *cfg;
    r->n = cfg->max_buckets ? cfg->max_buckets : 4096;
    r->buckets = xcalloc(r->n, sizeof *r->buckets);
    *out = r;
    return STATUS_OK;
}

void ratelimit_free(struct ratelimit *r) {
    if (!r)
        return;
    free(r->buckets);
    free(r);
}

static uint64_t hash(const uint8_t *key, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return h;
}

static void refill(const struct ratelimit *r, struct bucket *b, int64_t now_ms) {
    int64_t full = (int64_t)r->cfg.burst * MILLI;
    if (now_ms > b->updated_ms) {
        int64_t gained = (now_ms - b->updated_ms) * full / r->cfg.window_ms;
        b->tokens_milli = b->tokens_milli + gained > full ? full : b->tokens_milli + gained;
        b->updated_ms = now_ms;
    }
}

/* Probes a bounded neighbourhood for the key; otherwise reuses a free slot,
 * a slot that refilled completely (forgetting it loses nothing), or the one
 * used least recently. */
#define PROBES 8

bool ratelimit_take(struct ratelimit *r, const void *key, size_t len, int64_t now_ms) {
    if (len > RATELIMIT_KEY_MAX)
        len = RATELIMIT_KEY_MAX;
    int64_t full = (int64_t)r->cfg.burst * MILLI;
    size_t start = (size_t)(hash(key, len) % r->n);
    struct bucket *b = NULL, *free_slot = NULL, *oldest = NULL;
    int64_t oldest_ms = 0;
    for (size_t i = 0; i < PROBES && i < r->n; i++) {
        struct bucket *c = &r->buckets[(start + i) % r->n];
        if (c->used && c->key_len == len && memcmp(c->key, key, len) == 0) {
            b = c;
            break;
        }
        if (!free_slot && !c->used) {
            free_slot = c;
            continue;
        }
        if (!c->used)
            continue;
        int64_t last = c->updated_ms;
        refill(r, c, now_ms);
        if (!free_slot && c->tokens_milli == full)
            free_slot = c;
        if (!oldest || last < oldest_ms) {
            oldest = c;
            oldest_ms = last;
        }
    }
    if (!b) {
        b = free_slot ? free_slot : oldest;
        b->used = true;
        memcpy(b->key, key, len);
        b->key_len = len;
        b->tokens_milli = full;
        b->updated_ms = now_ms;
    }
    refill(r, b, now_ms);
    if (b->tokens_milli < MILLI)
        return false;
    b->tokens_milli -= MILLI;
    return true;
}
