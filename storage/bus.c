/*
 * storage/bus.c: the single-node bus: a bounded FIFO of hints and a list of
 * subscriptions, both under one mutex (contract in bus.h).
 *
 * Invariants: subscriptions are kept in increasing id order; bus_poll() looks
 * up the next subscriber of a hint under the lock and calls it without the
 * lock, so callbacks may use the bus and an unsubscription takes effect at
 * once. Hints queued while bus_poll() runs wait for the next call.
 */
#include "storage/bus.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

struct hint {
    struct hint *next;
    size_t topic_len;
    size_t msg_len;
    uint8_t topic[BUS_MAX_TOPIC];
    uint8_t msg[];
};

struct sub {
    struct sub *next;
    uint64_t id;
    bus_fn fn;
    void *ctx;
    size_t topic_len;
    uint8_t topic[BUS_MAX_TOPIC];
};

struct bus {
    pthread_mutex_t lock;
    pthread_mutex_t poll_lock;
    struct bus_config cfg;
    struct hint *head, *tail;
    size_t queued;
    struct sub *subs, *subs_tail;
    uint64_t next_id;
    struct bus_stats stats;
};

int bus_new(const struct bus_config *cfg, struct bus **out) {
    struct bus *b = xcalloc(1, sizeof *b);
    if (cfg)
        b->cfg = *cfg;
    if (!b->cfg.max_queued)
        b->cfg.max_queued = 4096;
    if (!b->cfg.max_message)
        b->cfg.max_message = 4096;
    b->next_id = 1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->poll_lock, NULL);
    *out = b;
    return 0;
}

void bus_free(struct bus *b) {
    if (!b)
        return;
    for (struct hint *h = b->head, *n; h; h = n) {
        n = h->next;
        free(h);
    }
    for (struct sub *s = b->subs, *n; s; s = n) {
        n = s->next;
        free(s);
    }
    pthread_mutex_destroy(&b->poll_lock);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static int check_topic(size_t topic_len) {
    if (topic_len == 0)
        return STATUS_BAD_REQUEST;
    return topic_len > BUS_MAX_TOPIC ? STATUS_TOO_LARGE : 0;
}

int bus_subscribe(struct bus *b, const void *topic, size_t topic_len, bus_fn fn, void *ctx,
                  uint64_t *sub_id) {
    int rc = check_topic(topic_len);
    if (rc < 0)
        return rc;
    struct sub *s = xcalloc(1, sizeof *s);
    s->fn = fn;
    s->ctx = ctx;
    s->topic_len = topic_len;
    memcpy(s->topic, topic, topic_len);
    pthread_mutex_lock(&b->lock);
    s->id = b->next_id++;
    if (b->subs_tail)
        b->subs_tail->next = s;
    else
        b->subs = s;
    b->subs_tail = s;
    pthread_mutex_unlock(&b->lock);
    *sub_id = s->id;
    return 0;
}

int bus_unsubscribe(struct bus *b, uint64_t sub_id) {
    pthread_mutex_lock(&b->lock);
    struct sub *prev = NULL, *s = b->subs;
    while (s && s->id != sub_id) {
        prev = s;
        s = s->next;
    }
    if (s) {
        if (prev)
            prev->next = s->next;
        else
            b->subs = s->next;
        if (b->subs_tail == s)
            b->subs_tail = prev;
    }
    pthread_mutex_unlock(&b->lock);
    free(s);
    return s ? 0 : STATUS_NOT_FOUND;
}

int bus_publish(struct bus *b, const void *topic, size_t topic_len, const void *msg,
                size_t msg_len) {
    int rc = check_topic(topic_len);
    if (rc < 0)
        return rc;
    if (msg_len > b->cfg.max_message)
        return STATUS_TOO_LARGE;
    struct hint *h = xmalloc(sizeof *h + msg_len);
    h->next = NULL;
    h->topic_len = topic_len;
    memcpy(h->topic, topic, topic_len);
    h->msg_len = msg_len;
    if (msg_len)
        memcpy(h->msg, msg, msg_len);
    pthread_mutex_lock(&b->lock);
    if (b->queued >= b->cfg.max_queued) {
        b->stats.dropped++;
        pthread_mutex_unlock(&b->lock);
        free(h);
        return STATUS_UNAVAILABLE;
    }
    if (b->tail)
        b->tail->next = h;
    else
        b->head = h;
    b->tail = h;
    b->queued++;
    b->stats.published++;
    pthread_mutex_unlock(&b->lock);
    if (b->cfg.wake)
        b->cfg.wake(b->cfg.wake_ctx);
    return 0;
}

/* The first subscriber of the hint's topic with an id above `after`. Called with
 * the lock held; copies what the call needs. */
static bool next_subscriber(struct bus *b, const struct hint *h, uint64_t after, uint64_t *id,
                            bus_fn *fn, void **ctx) {
    for (struct sub *s = b->subs; s; s = s->next) {
        if (s->id <= after || s->topic_len != h->topic_len ||
            memcmp(s->topic, h->topic, h->topic_len) != 0)
            continue;
        *id = s->id;
        *fn = s->fn;
        *ctx = s->ctx;
        return true;
    }
    return false;
}

size_t bus_poll(struct bus *b) {
    pthread_mutex_lock(&b->poll_lock);
    pthread_mutex_lock(&b->lock);
    struct hint *h = b->head;
    b->head = b->tail = NULL;
    b->queued = 0;
    pthread_mutex_unlock(&b->lock);
    size_t calls = 0;
    while (h) {
        struct hint *next = h->next;
        uint64_t id = 0;
        bus_fn fn;
        void *ctx;
        for (;;) {
            pthread_mutex_lock(&b->lock);
            bool found = next_subscriber(b, h, id, &id, &fn, &ctx);
            if (found)
                b->stats.delivered++;
            pthread_mutex_unlock(&b->lock);
            if (!found)
                break;
            fn(ctx, h->topic, h->topic_len, h->msg, h->msg_len);
            calls++;
        }
        free(h);
        h = next;
    }
    pthread_mutex_unlock(&b->poll_lock);
    return calls;
}

void bus_get_stats(struct bus *b, struct bus_stats *out) {
    pthread_mutex_lock(&b->lock);
    *out = b->stats;
    pthread_mutex_unlock(&b->lock);
}
