/*
 * storage/lease.c: single-node leases (contract in lease.h).
 *
 * A list of roles, each with its current term (holder, epoch, expiry); a
 * released or expired term stays in the list with expires_ms in the past so
 * that epochs keep increasing. One mutex.
 */
#include "storage/lease.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"

struct role {
    struct role *next;
    struct lease_grant term;
    bool held;
};

struct lease {
    pthread_mutex_t lock;
    char node_id[LEASE_MAX_HOLDER + 1];
    int64_t ttl_ms;
    uint64_t last_epoch;
    struct role *roles;
};

int lease_new(const struct lease_config *cfg, struct lease **out) {
    const char *node = cfg && cfg->node_id ? cfg->node_id : "local";
    int64_t ttl = cfg && cfg->ttl_ms ? cfg->ttl_ms : 30000;
    if (strlen(node) > LEASE_MAX_HOLDER || !*node || ttl < 0)
        return STATUS_BAD_REQUEST;
    struct lease *l = xcalloc(1, sizeof *l);
    strcpy(l->node_id, node);
    l->ttl_ms = ttl;
    pthread_mutex_init(&l->lock, NULL);
    *out = l;
    return 0;
}

void lease_free(struct lease *l) {
    if (!l)
        return;
    for (struct role *r = l->roles, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static struct role *find_role(struct lease *l, const char *role) {
    for (struct role *r = l->roles; r; r = r->next)
        if (strcmp(r->term.role, role) == 0)
            return r;
    return NULL;
}

static bool current(const struct role *r, int64_t now) {
    return r->held && now < r->term.expires_ms;
}

int lease_acquire(struct lease *l, const char *role, struct lease_grant *out) {
    if (!*role || strlen(role) > LEASE_MAX_ROLE)
        return STATUS_BAD_REQUEST;
    int64_t now = clock_now();
    pthread_mutex_lock(&l->lock);
    struct role *r = find_role(l, role);
    if (!r) {
        r = xcalloc(1, sizeof *r);
        strcpy(r->term.role, role);
        r->next = l->roles;
        l->roles = r;
    }
    int rc = 0;
    if (current(r, now) && strcmp(r->term.holder, l->node_id) != 0) {
        rc = STATUS_CONFLICT;
    } else {
        if (!current(r, now)) {
            r->term.epoch = ++l->last_epoch;
            strcpy(r->term.holder, l->node_id);
            r->held = true;
        }
        r->term.expires_ms = now + l->ttl_ms;
        *out = r->term;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int lease_renew(struct lease *l, struct lease_grant *g) {
    int64_t now = clock_now();
    pthread_mutex_lock(&l->lock);
    struct role *r = find_role(l, g->role);
    int rc = STATUS_CONFLICT;
    if (r && current(r, now) && r->term.epoch == g->epoch) {
        r->term.expires_ms = now + l->ttl_ms;
        *g = r->term;
        rc = 0;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void lease_release(struct lease *l, const struct lease_grant *g) {
    pthread_mutex_lock(&l->lock);
    struct role *r = find_role(l, g->role);
    if (r && r->held && r->term.epoch == g->epoch)
        r->held = false;
    pthread_mutex_unlock(&l->lock);
}

bool lease_valid(struct lease *l, const struct lease_grant *g) {
    int64_t now = clock_now();
    pthread_mutex_lock(&l->lock);
    struct role *r = find_role(l, g->role);
    bool ok = r && current(r, now) && r->term.epoch == g->epoch;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

int lease_holder(struct lease *l, const char *role, struct lease_grant *out) {
    int64_t now = clock_now();
    pthread_mutex_lock(&l->lock);
    struct role *r = find_role(l, role);
    int rc = STATUS_NOT_FOUND;
    if (r && current(r, now)) {
        *out = r->term;
        rc = 0;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}
