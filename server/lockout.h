/*
 * server/lockout.h: failed sign-in attempts counted per key (a client
 * network, an account, an account from one network), with backoff.
 *
 * Only failures count. A key may fail `free_failures` times; each further
 * failure makes the next attempt wait, starting at `base_ms` and doubling up
 * to `max_ms`. A key whose last failure is `forget_ms` old is forgotten, and
 * lockout_clear() forgets one at once (a correct password, an administrator).
 * Entries live in a fixed-size table; when it is full the entry idle longest
 * is reused, so memory stays bounded whatever peers send (losing an entry
 * only makes the limit more lenient for that key).
 *
 * Thread: one thread (the lws loop thread). Times come from the caller.
 */
#ifndef SERVER_LOCKOUT_H
#define SERVER_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

/* Keys: an account's email blind index (32 bytes) followed by a network (16
 * bytes), or either alone. Longer keys are truncated. */
#define LOCKOUT_KEY_MAX 48

struct lockout_config {
    unsigned free_failures; /* >= 1 */
    int64_t base_ms;        /* >= 1 */
    int64_t max_ms;         /* >= base_ms */
    int64_t forget_ms;      /* >= 1 */
    size_t max_entries;     /* 0: 4096 */
};

struct lockout;

/* Returns 0 and *out, or STATUS_BAD_REQUEST for a bad configuration. */
int lockout_new(const struct lockout_config *cfg, struct lockout **out);
/* Accepts NULL. */
void lockout_free(struct lockout *l);

/* Milliseconds until `key` may try again at `now_ms` (0: now). */
int64_t lockout_wait(struct lockout *l, const void *key, size_t len, int64_t now_ms);
/* Counts a failure of `key` at `now_ms`. */
void lockout_fail(struct lockout *l, const void *key, size_t len, int64_t now_ms);
/* Forgets every key that starts with `prefix` (len bytes; a whole key is its
 * own prefix). */
void lockout_clear(struct lockout *l, const void *prefix, size_t len);

/* The network of a client address (16 bytes, IPv6 or IPv4-mapped) as a key
 * of 16 bytes: an IPv4 address whole, an IPv6 address's /64, so that one
 * host's many IPv6 addresses count as one. */
void lockout_network(const uint8_t addr[16], uint8_t out[16]);

#endif
