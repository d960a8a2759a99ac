/*
 * storage/presence.c: the in-memory presence table (contract in presence.h).
 *
 * An open-addressing hash table keyed by device id (ids are random, so their
 * first bytes are the hash), grown at 50% load, entries never removed; one
 * mutex. Invariant: `online` counts the entries with connections > 0.
 */
#include "storage/presence.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "storage/keys.h"

struct slot {
    bool used;
    struct id device;
    uint32_t connections;
    int64_t since_ms;
};

struct presence {
    pthread_mutex_t lock;
    struct slot *slots;
    size_t cap; /* a power of two */
    size_t used;
    uint64_t online;
};

int presence_new(struct presence **out) {
    struct presence *p = xcalloc(1, sizeof *p);
    p->cap = 64;
    p->slots = xcalloc(p->cap, sizeof *p->slots);
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;
}

void presence_free(struct presence *p) {
    if (!p)
        return;
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p);
}

static struct slot *probe(struct slot *slots, size_t cap, const struct id *device) {
    size_t i = (size_t)key_get_u64(device->b) & (cap - 1);
    while (slots[i].used && memcmp(slots[i].device.b, device->b, ID_LEN) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static void grow(struct presence *p) {
    size_t cap = p->cap * 2;
    struct slot *slots = xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].used)
            *probe(slots, cap, &p->slots[i].device) = p->slots[i];
    free(p->slots);
    p->slots = slots;
    p->cap = cap;
}

void presence_connect(struct presence *p, const struct id *device, int64_t now_ms) {
    pthread_mutex_lock(&p->lock);
    if (2 * (p->used + 1) > p->cap)
        grow(p);
    struct slot *s = probe(p->slots, p->cap, device);
    if (!s->used) {
        s->used = true;
        s->device = *device;
        p->used++;
    }
    if (s->connections++ == 0) {
        s->since_ms = now_ms;
        p->online++;
    }
    pthread_mutex_unlock(&p->lock);
}

int presence_disconnect(struct presence *p, const struct id *device, int64_t now_ms) {
    pthread_mutex_lock(&p->lock);
    struct slot *s = probe(p->slots, p->cap, device);
    int rc = STATUS_NOT_FOUND;
    if (s->used && s->connections > 0) {
        if (--s->connections == 0) {
            s->since_ms = now_ms;
            p->online--;
        }
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

bool presence_is_online(struct presence *p, const struct id *device) {
    struct presence_info info;
    return presence_get(p, device, &info) == 0 && info.online;
}

int presence_get(struct presence *p, const struct id *device, struct presence_info *out) {
    pthread_mutex_lock(&p->lock);
    struct slot *s = probe(p->slots, p->cap, device);
    int rc = STATUS_NOT_FOUND;
    if (s->used) {
        out->online = s->connections > 0;
        out->connections = s->connections;
        out->since_ms = s->since_ms;
        rc = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

uint64_t presence_online_count(struct presence *p) {
    pthread_mutex_lock(&p->lock);
    uint64_t n = p->online;
    pthread_mutex_unlock(&p->lock);
    return n;
}
