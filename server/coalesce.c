/*
 * server/coalesce.c: access windows (server/coalesce.h). Loop thread only.
 */
#include "server/coalesce.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

struct window {
    bool used;
    struct coalesce_key key;
    int64_t opened_ms;
    uint32_t repeated;
};

struct coalesce {
    struct window *w;
    size_t n;
    int64_t window_ms;
    coalesce_emit_fn emit;
    void *ctx;
};

void coalesce_new(size_t max_windows, int64_t window_ms, coalesce_emit_fn emit, void *ctx,
                  struct coalesce **out) {
    struct coalesce *c = xcalloc(1, sizeof *c);
    c->window_ms = window_ms;
    c->n = max_windows ? max_windows : 1024;
    c->w = xcalloc(c->n, sizeof *c->w);
    c->emit = emit;
    c->ctx = ctx;
    *out = c;
}

/* Reports a window's repeats (if any) and frees its slot. */
static void close_window(struct coalesce *c, struct window *w) {
    if (w->repeated > 0)
        c->emit(c->ctx, &w->key, w->repeated);
    w->used = false;
}

void coalesce_free(struct coalesce *c) {
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->w[i].used)
            close_window(c, &c->w[i]);
    free(c->w);
    free(c);
}

static uint64_t hash(const struct coalesce_key *k) {
    const uint8_t *p = (const uint8_t *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

#define PROBES 8

/* The window of `k`, or NULL. */
static struct window *find(struct coalesce *c, const struct coalesce_key *k) {
    size_t start = (size_t)(hash(k) % c->n);
    for (size_t i = 0; i < PROBES && i < c->n; i++) {
        struct window *w = &c->w[(start + i) % c->n];
        if (w->used && memcmp(&w->key, k, sizeof *k) == 0)
            return w;
    }
    return NULL;
}

bool coalesce_covered(struct coalesce *c, const struct coalesce_key *k, int64_t now_ms) {
    if (c->window_ms == 0)
        return false;
    struct window *w = find(c, k);
    if (!w)
        return false;
    if (now_ms - w->opened_ms >= c->window_ms) {
        close_window(c, w);
        return false;
    }
    w->repeated++;
    return true;
}

void coalesce_opened(struct coalesce *c, const struct coalesce_key *k, int64_t now_ms) {
    if (c->window_ms == 0)
        return;
    struct window *w = find(c, k);
    if (w)
        close_window(c, w);
    size_t start = (size_t)(hash(k) % c->n);
    struct window *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBES && i < c->n && !slot; i++) {
        struct window *x = &c->w[(start + i) % c->n];
        if (!x->used)
            slot = x;
        else if (!oldest || x->opened_ms < oldest->opened_ms)
            oldest = x;
    }
    if (!slot) {
        close_window(c, oldest);
        slot = oldest;
    }
    *slot = (struct window){.used = true, .key = *k, .opened_ms = now_ms};
}

void coalesce_tick(struct coalesce *c, int64_t now_ms) {
    for (size_t i = 0; i < c->n; i++)
        if (c->w[i].used && now_ms - c->w[i].opened_ms >= c->window_ms)
            close_window(c, &c->w[i]);
}
