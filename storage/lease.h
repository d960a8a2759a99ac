/*
 * storage/lease.h: one holder per role ("maintenance", "notifier") at a time.
 *
 * The API is what a replicated implementation needs: a grant names its holder,
 * expires unless renewed, and carries an epoch (fencing token) that increases
 * with every new term, so work started under a lost lease can be told from work
 * of the current holder. On a single node every acquire is granted to this node;
 * a grant still expires, and a renewal after expiry fails as it would when
 * another node could have taken over, so callers handle a lost lease from the
 * start. Time is clock_now() (base/clock.h), so tests move it.
 *
 * Threads: every function is thread-safe.
 */
#ifndef STORAGE_LEASE_H
#define STORAGE_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define LEASE_MAX_ROLE 32
#define LEASE_MAX_HOLDER 64

struct lease_config {
    const char *node_id; /* this node's name; NULL: "local" */
    int64_t ttl_ms;      /* a grant's lifetime from its last renewal; 0: 30000 */
};

struct lease_grant {
    char role[LEASE_MAX_ROLE + 1];
    char holder[LEASE_MAX_HOLDER + 1];
    uint64_t epoch;     /* > 0; increases with each new term of any holder */
    int64_t expires_ms; /* clock_now() time */
};

struct lease;

/* Returns 0 and *out (free with lease_free()), or STATUS_BAD_REQUEST for a
 * node id longer than LEASE_MAX_HOLDER or a negative ttl. */
int lease_new(const struct lease_config *cfg, struct lease **out);

/* Frees the lease table. Accepts NULL. */
void lease_free(struct lease *l);

/* Acquires `role` for this node and fills *out. Acquiring a role this node holds
 * renews it (same epoch); a free or expired role starts a new term. Returns 0;
 * STATUS_CONFLICT when another node holds it (never on a single node);
 * STATUS_BAD_REQUEST for an empty role or one longer than LEASE_MAX_ROLE. */
int lease_acquire(struct lease *l, const char *role, struct lease_grant *out);

/* Extends `g` by the ttl and updates its expiry. Returns 0, or STATUS_CONFLICT
 * when the grant expired or was released (acquire again: a new epoch). */
int lease_renew(struct lease *l, struct lease_grant *g);

/* Gives the role up if `g` is its current term; otherwise does nothing. */
void lease_release(struct lease *l, const struct lease_grant *g);

/* True while `g` is the role's current term and has not expired. */
bool lease_valid(struct lease *l, const struct lease_grant *g);

/* Copies the role's current, unexpired grant into *out. Returns 0, or
 * STATUS_NOT_FOUND when nobody holds the role. */
int lease_holder(struct lease *l, const char *role, struct lease_grant *out);

#endif
