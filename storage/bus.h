/*
 * storage/bus.h: publish/subscribe of ephemeral hints (typing, "device connected
 * elsewhere"), the seam that becomes core NATS on several nodes.
 *
 * Hints are best effort: a full queue drops new ones (counted), and nothing that
 * matters is ever only on the bus; state lives in the journal and the stores.
 * Delivery is asynchronous even on one node, as it will be over the network:
 * bus_publish() queues the hint and calls `wake`; the subscribing thread (the lws
 * loop) calls bus_poll(), which runs the callbacks of every subscriber of the
 * hint's topic, in subscription order. Topics are opaque byte strings (for
 * example "typing" | conversation id); callers never put personal data in them.
 *
 * Threads: every function is thread-safe. Callbacks run on the thread that calls
 * bus_poll(), one at a time; they may publish, subscribe and unsubscribe (an
 * unsubscribed subscriber is not called again, even for the hint being
 * delivered), but not call bus_poll() or bus_free().
 */
#ifndef STORAGE_BUS_H
#define STORAGE_BUS_H

#include <stddef.h>
#include <stdint.h>

#define BUS_MAX_TOPIC 64

struct bus_config {
    size_t max_queued;       /* hints waiting for bus_poll(); 0: 4096 */
    size_t max_message;      /* bytes per hint; 0: 4096 */
    void (*wake)(void *ctx); /* called by bus_publish() after queueing; may be NULL */
    void *wake_ctx;
};

struct bus_stats {
    uint64_t published;
    uint64_t delivered; /* callbacks run */
    uint64_t dropped;   /* refused because the queue was full */
};

/* Called by bus_poll() for each subscriber of `topic`; topic and message are
 * borrowed for the call. */
typedef void (*bus_fn)(void *ctx, const uint8_t *topic, size_t topic_len, const uint8_t *msg,
                       size_t msg_len);

struct bus;

/* Returns 0 and *out (free with bus_free()). */
int bus_new(const struct bus_config *cfg, struct bus **out);

/* Frees the bus and drops undelivered hints. Accepts NULL. */
void bus_free(struct bus *b);

/* Subscribes `fn(ctx, ...)` to `topic`; *sub_id (> 0) names the subscription for
 * bus_unsubscribe(). Returns 0; STATUS_BAD_REQUEST for an empty topic;
 * STATUS_TOO_LARGE for a topic longer than BUS_MAX_TOPIC. */
int bus_subscribe(struct bus *b, const void *topic, size_t topic_len, bus_fn fn, void *ctx,
                  uint64_t *sub_id);

/* Ends a subscription. Returns 0, or STATUS_NOT_FOUND for an unknown id. */
int bus_unsubscribe(struct bus *b, uint64_t sub_id);

/* Queues a copy of the hint for the subscribers of `topic` and calls wake.
 * Returns 0; STATUS_BAD_REQUEST for an empty topic; STATUS_TOO_LARGE for a topic
 * or message above the limits; STATUS_UNAVAILABLE when the queue is full (the
 * hint is dropped, which is allowed). */
int bus_publish(struct bus *b, const void *topic, size_t topic_len, const void *msg,
                size_t msg_len);

/* Delivers every queued hint. Returns the number of callbacks run. */
size_t bus_poll(struct bus *b);

void bus_get_stats(struct bus *b, struct bus_stats *out);

#endif
