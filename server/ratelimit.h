/*
 * server/ratelimit.h: in-memory token buckets keyed by short byte strings
 * (an account's email blind index, a client address).
 *
 * Each key has a bucket of `burst` tokens that refills continuously at
 * burst / window_ms; an attempt takes one token and is refused when none is
 * left. Buckets live in a fixed-size open hash table; when it is full the
 * bucket that was idle longest (or one that is full again) is reused, so
 * memory stays bounded whatever a peer sends. Losing a bucket only makes the
 * limit more lenient for that key.
 *
 * Thread: one thread (the lws loop thread). Times come from the caller.
 */
#ifndef SERVER_RATELIMIT_H
#define SERVER_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 32

struct ratelimit_config {
    unsigned burst;     /* tokens in a full bucket, >= 1 */
    int64_t window_ms;  /* time to refill an empty bucket, >= 1 */
    size_t max_buckets; /* 0: 4096 */
};

struct ratelimit;

/* Returns 0 and *out, or STATUS_BAD_REQUEST for a bad configuration. */
int ratelimit_new(const struct ratelimit_config *cfg, struct ratelimit **out);
/* Accepts NULL. */
void ratelimit_free(struct ratelimit *r);

/* Takes one token from the bucket of `key` (len <= RATELIMIT_KEY_MAX bytes,
 * longer keys are truncated) at time `now_ms`. Returns true when the attempt
 * may go ahead, false when the bucket is empty. */
bool ratelimit_take(struct ratelimit *r, const void *key, size_t len, int64_t now_ms);

#endif
