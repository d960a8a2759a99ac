/*
 * server/pwhash.h: Argon2id password hashing and verification on worker
 * threads, so that the lws loop thread never spends the ~20 ms+ each costs.
 *
 *   loop thread                          worker threads (`workers` of them)
 *   pwhash_hash / pwhash_verify  --->    [priority lane, then queue]
 *                                        crypto_pwhash_str(_verify)
 *   pwhash_poll(): done(...)     <---    [done] + wake()
 *
 * Memory: each worker holds `memlimit` while it computes, so workers x
 * memlimit is the budget. Verifications marked priority (a sign-in from a
 * device the account already has) go before every other operation and have
 * their own queue, so a flood of guesses from new devices cannot starve
 * them.
 *
 * Passwords are copied into sodium_malloc memory and wiped as soon as the
 * worker is done with them. A verification against the dummy hash
 * (pwhash_verify with hash NULL) costs the same as a real one and always
 * fails: the handlers use it for unknown emails so that a wrong email and a
 * wrong password take similar time.
 *
 * Threads: pwhash_new/free on the main thread; submit and poll on one thread
 * (the loop thread); the worker only computes.
 */
#ifndef SERVER_PWHASH_H
#define SERVER_PWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The floor: Argon2id with t >= 2 and m >= 19 MiB. */
#define PWHASH_MIN_OPSLIMIT 2
#define PWHASH_MIN_MEMLIMIT (19u << 20)
/* Operations waiting in one lane beyond which submissions are refused. */
#define PWHASH_MAX_QUEUE 64
#define PWHASH_MAX_WORKERS 16

struct pwhash_config {
    uint64_t opslimit; /* >= PWHASH_MIN_OPSLIMIT */
    size_t memlimit;   /* bytes, >= PWHASH_MIN_MEMLIMIT */
    unsigned workers;  /* 1..PWHASH_MAX_WORKERS threads */
    /* Called on the worker thread after each finished operation. */
    void (*wake)(void *ctx);
    void *wake_ctx;
};

/* Runs on the polling thread. For a hash: ok is true and `hash` is the
 * crypto_pwhash_str string (borrowed for the call), or ok is false when
 * hashing failed (out of memory). For a verification: ok tells whether the
 * password matched; hash is NULL. */
typedef void (*pwhash_done_fn)(void *ctx, bool ok, const char *hash);

struct pwhash;

/* Starts the workers and computes the dummy hash. Returns 0 and *out,
 * STATUS_BAD_REQUEST for limits below the floor or a bad worker count, or
 * STATUS_INTERNAL when a thread cannot start. */
int pwhash_new(const struct pwhash_config *cfg, struct pwhash **out);

/* Stops the worker (after the operation in progress), then runs the callback
 * of every operation not yet delivered with ok false and hash NULL (so their
 * contexts can be released), wipes and frees. Accepts NULL. */
void pwhash_free(struct pwhash *p);

/* Queues hashing `password` (len bytes, copied). Returns 0 (done runs later
 * exactly once from pwhash_poll) or STATUS_UNAVAILABLE when the queue is full
 * (done never runs). */
int pwhash_hash(struct pwhash *p, const char *password, size_t len, pwhash_done_fn done, void *ctx);

/* Queues verifying `password` against `hash` (a crypto_pwhash_str string,
 * copied; NULL: the dummy hash), in the priority lane when `priority`. Same
 * returns as pwhash_hash(). */
int pwhash_verify(struct pwhash *p, const char *password, size_t len, const char *hash,
                  bool priority, pwhash_done_fn done, void *ctx);

/* Runs the callbacks of finished operations, in completion order. Returns
 * how many ran. */
size_t pwhash_poll(struct pwhash *p);

#endif
