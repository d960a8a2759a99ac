/*
 * server/maintenance.c: the maintenance thread (server/maintenance.h).
 *
 * One entry is in flight at a time: the thread appends it to the journal and
 * waits for its completion, which journal_poll() delivers on the loop thread
 * (or journal_close() on the main thread) through done(). The work of one
 * pass is bounded: at most LIFECYCLE_BATCH lifecycle records per scan step
 * and SWEEP_BATCHES Sweep entries of each kind.
 *
 * Logs name account ids only (never an email or a name).
 */
#include "server/maintenance.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/records.h"
#include "server/rules.h"
#include "storage/keys.h"
#include "storage/keystore.h"

#define LIFECYCLE_BATCH 256
#define SWEEP_BATCHES 16
/* Incidents whose overdue notices were logged this run (later ones are
 * counted, not logged again). */
#define OVERDUE_LOGGED_MAX 256

struct maintenance {
    struct maintenance_config cfg;
    pthread_t thread;
    bool started;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    /* The entry in flight: its ticket, and the completion of the last one. */
    uint64_t ticket, done_ticket;
    int done_status;
    uint8_t done_result[8];
    size_t done_result_len;

    _Atomic uint64_t passes, restricted, purged, keys_destroyed, compactions, swept_invites,
        swept_sessions, failures, breach_overdue;
    struct id overdue_logged[OVERDUE_LOGGED_MAX];
    size_t n_overdue_logged;
    _Atomic int64_t last_pass_ms;
};

/* ---- one entry at a time ------------------------------------------------------------ */

/* Loop thread (journal_poll) or main thread (journal_close). */
static void done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t result_len) {
    (void)pos;
    struct maintenance *m = ctx;
    pthread_mutex_lock(&m->lock);
    m->done_ticket++;
    m->done_status = status;
    m->done_result_len = result_len < sizeof m->done_result ? result_len : sizeof m->done_result;
    if (m->done_result_len)
        memcpy(m->done_result, result, m->done_result_len);
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* Proposes `e` and waits for its completion. Returns its status (and copies
 * up to 8 bytes of its result into `result` when not NULL), or
 * STATUS_UNAVAILABLE when stopping or the journal refused it. */
static int propose(struct maintenance *m, const Carechat__Entry__V1__Entry *e, uint8_t result[8]) {
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(e, &b);
    if (rc != 0) {
        buf_cleanup(&b);
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    uint64_t ticket = ++m->ticket;
    pthread_mutex_unlock(&m->lock);
    rc = journal_append(m->cfg.journal, b.data, b.len, done, m);
    buf_cleanup(&b);
    if (rc != 0) {
        pthread_mutex_lock(&m->lock);
        m->ticket--;
        pthread_mutex_unlock(&m->lock);
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    while (m->done_ticket < ticket && !m->stop)
        pthread_cond_wait(&m->cond, &m->lock);
    rc = m->done_ticket < ticket ? STATUS_UNAVAILABLE : m->done_status;
    if (rc == 0 && result) {
        memset(result, 0, 8);
        memcpy(result, m->done_result, m->done_result_len);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static bool stopping(struct maintenance *m) {
    pthread_mutex_lock(&m->lock);
    bool stop = m->stop;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

static void entry_start(Carechat__Entry__V1__Entry *e) {
    carechat__entry__v1__entry__init(e);
    e->version = PROTO_ENTRY_VERSION;
    e->time = clock_now();
}

/* ---- the retention clock ------------------------------------------------------------- */

struct lifecycles {
    struct id ids[LIFECYCLE_BATCH];
    struct rec_lifecycle ls[LIFECYCLE_BATCH];
    size_t n;
    uint8_t last[1 + ID_LEN];
};

static bool collect_lifecycle(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                              size_t value_len) {
    struct lifecycles *c = ctx;
    if (key_len != 1 + ID_LEN)
        return true;
    memcpy(c->last, key, key_len);
    if (rec_lifecycle_decode(value, value_len, &c->ls[c->n]) != 0) {
        log_warn("maintenance", "a lifecycle record does not decode; skipped");
        return true;
    }
    memcpy(c->ids[c->n].b, key + 1, ID_LEN);
    c->n++;
    return true;
}

/* The blind index of `account`'s email into out (false when the account
 * record is gone already). */
static bool email_index(struct maintenance *m, const struct id *account,
                        uint8_t out[REC_HASH_LEN]) {
    struct buf v;
    buf_init(&v);
    struct rec_account a;
    bool ok = store_get(m->cfg.store, CF_ACCOUNTS, account->b, ID_LEN, &v) == 0 &&
              rec_account_decode(v.data, v.len, &a) == 0;
    if (ok) {
        store_blind_index(m->cfg.store, a.email, strlen(a.email), out);
        rec_account_cleanup(&a);
    }
    buf_wipe(&v);
    buf_cleanup(&v);
    return ok;
}

/* Proposes the one step due for `account` (lifecycle `l`); true when it was
 * taken. */
static bool advance(struct maintenance *m, const struct id *account,
                    const struct rec_lifecycle *l) {
    uint32_t next = rules_lifecycle_due(l, clock_now());
    if (next == l->state)
        return false;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__RetentionAdvance ra;
    uint8_t index[REC_HASH_LEN];
    entry_start(&e);
    carechat__entry__v1__retention_advance__init(&ra);
    ra.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)account->b};
    if (next == REC_LC_PURGED && email_index(m, account, index))
        ra.email_index = (ProtobufCBinaryData){REC_HASH_LEN, index};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_RETENTION_ADVANCE;
    e.retention_advance = &ra;
    char hex[ID_HEX_LEN + 1];
    id_to_hex(account, hex);
    int rc = propose(m, &e, NULL);
    if (rc != 0) {
        if (rc != STATUS_CONFLICT) /* CONFLICT: a hold or a reactivation came first */
            atomic_fetch_add(&m->failures, 1);
        log_warn("maintenance", "account %s: the retention step was not taken: %s", hex,
                 status_str(rc));
        return false;
    }
    atomic_fetch_add(next == REC_LC_PURGED ? &m->purged : &m->restricted, 1);
    log_info("maintenance", "account %s is %s", hex,
             next == REC_LC_PURGED ? "purged" : "restricted to system administrators");
    return true;
}

/* Destroys the data key of purged `account` unless it is gone already; true
 * when it was destroyed now. */
static bool shred(struct maintenance *m, const struct id *account) {
    struct keystore *ks = store_keystore(m->cfg.store);
    if (keystore_destroyed(ks, account))
        return false;
    char hex[ID_HEX_LEN + 1];
    id_to_hex(account, hex);
    int rc = keystore_destroy(ks, account);
    if (rc != 0) {
        atomic_fetch_add(&m->failures, 1);
        log_error("maintenance", "account %s: cannot destroy its data key: %s", hex,
                  status_str(rc));
        return false;
    }
    atomic_fetch_add(&m->keys_destroyed, 1);
    log_info("maintenance", "account %s: data key destroyed", hex);
    return true;
}

/* Moves every lifecycle on as far as its deadlines allow (unless only
 * `shred_only`) and shreds the purged accounts; true when a key was destroyed
 * (a compaction is due). */
static bool retention_pass(struct maintenance *m, bool shred_only) {
    struct lifecycles *c = xcalloc(1, sizeof *c);
    const uint8_t prefix = REC_LIFECYCLE_TAG;
    bool shredded = false;
    bool more = true;
    for (bool first = true; more && !stopping(m); first = false) {
        c->n = 0;
        int rc = store_scan(m->cfg.store, CF_ACCOUNTS, &prefix, 1, first ? NULL : c->last,
                            first ? 0 : sizeof c->last, LIFECYCLE_BATCH, collect_lifecycle, c);
        if (rc < 0) {
            atomic_fetch_add(&m->failures, 1);
            log_warn("maintenance", "cannot read the lifecycle records: %s", status_str(rc));
            break;
        }
        more = rc == LIFECYCLE_BATCH;
        for (size_t i = 0; i < c->n && !stopping(m); i++) {
            struct rec_lifecycle l = c->ls[i];
            /* One step at a time, in order, as far as the deadlines allow. */
            for (int step = 0; !shred_only && step < 2 && advance(m, &c->ids[i], &l); step++) {
                uint8_t k[1 + ID_LEN];
                struct buf v;
                rec_lifecycle_key(&c->ids[i], k);
                buf_init(&v);
                int got = store_get(m->cfg.store, CF_ACCOUNTS, k, sizeof k, &v);
                if (got == 0)
                    got = rec_lifecycle_decode(v.data, v.len, &l);
                buf_cleanup(&v);
                if (got != 0)
                    break;
            }
            if (l.state == REC_LC_PURGED && shred(m, &c->ids[i]))
                shredded = true;
        }
    }
    free(c);
    return shredded;
}

/* ---- the sweep ------------------------------------------------------------------------ */

struct expired {
    uint8_t hashes[APPLY_SWEEP_MAX][REC_HASH_LEN];
    size_t n;
    int64_t now;
    bool invites;
    uint8_t last[REC_HASH_LEN];
    bool has_last;
};

static bool collect_expired(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                            size_t value_len) {
    struct expired *x = ctx;
    if (key_len != REC_HASH_LEN)
        return true;
    memcpy(x->last, key, REC_HASH_LEN);
    x->has_last = true;
    bool gone = false;
    if (x->invites) {
        struct rec_invite in;
        if (rec_invite_decode(value, value_len, &in) == 0) {
            gone = in.expires_at <= x->now;
            rec_invite_cleanup(&in);
        }
    } else {
        struct rec_session s;
        gone = rec_session_decode(value, value_len, &s) == 0 && rec_session_ended(&s, x->now);
    }
    if (gone)
        memcpy(x->hashes[x->n++], key, REC_HASH_LEN);
    return x->n < APPLY_SWEEP_MAX;
}

/* Deletes the expired records of `cf` (CF_INVITES or CF_SESSIONS). */
static void sweep(struct maintenance *m, enum store_cf cf) {
    struct expired *x = xcalloc(1, sizeof *x);
    x->invites = cf == CF_INVITES;
    for (int batch = 0; batch < SWEEP_BATCHES && !stopping(m); batch++) {
        x->n = 0;
        x->now = clock_now();
        int rc = store_scan(m->cfg.store, cf, NULL, 0, x->has_last ? x->last : NULL,
                            x->has_last ? REC_HASH_LEN : 0, SIZE_MAX, collect_expired, x);
        if (rc < 0 || x->n == 0)
            break;
        ProtobufCBinaryData names[APPLY_SWEEP_MAX];
        for (size_t i = 0; i < x->n; i++)
            names[i] = (ProtobufCBinaryData){REC_HASH_LEN, x->hashes[i]};
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__Sweep sw;
        entry_start(&e);
        carechat__entry__v1__sweep__init(&sw);
        if (x->invites) {
            sw.n_invite_code_hashes = x->n;
            sw.invite_code_hashes = names;
        } else {
            sw.n_session_token_hashes = x->n;
            sw.session_token_hashes = names;
        }
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SWEEP;
        e.sweep = &sw;
        uint8_t result[8];
        if ((rc = propose(m, &e, result)) != 0) {
            atomic_fetch_add(&m->failures, 1);
            log_warn("maintenance", "the sweep was not written: %s", status_str(rc));
            break;
        }
        atomic_fetch_add(&m->swept_invites, key_get_u32(result));
        atomic_fetch_add(&m->swept_sessions, key_get_u32(result + 4));
        if (x->n < APPLY_SWEEP_MAX)
            break;
    }
    free(x);
}

/* ---- breach notices past their deadline ----------------------------------------------- */

struct overdue_scan {
    struct maintenance *m;
    int64_t now;
    bool in_incident; /* the notices that follow belong to an incident past its deadline */
    struct id incident;
    uint64_t overdue, incident_overdue;
};

static void overdue_incident_end(struct overdue_scan *o) {
    struct maintenance *m = o->m;
    if (o->incident_overdue == 0)
        return;
    for (size_t i = 0; i < m->n_overdue_logged; i++)
        if (id_equal(&m->overdue_logged[i], &o->incident))
            return;
    if (m->n_overdue_logged < OVERDUE_LOGGED_MAX)
        m->overdue_logged[m->n_overdue_logged++] = o->incident;
    char hex[ID_HEX_LEN + 1];
    id_to_hex(&o->incident, hex);
    log_warn("maintenance", "breach incident %s: %" PRIu64 " notices not sent by the deadline", hex,
             o->incident_overdue);
}

static bool collect_overdue(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                            size_t value_len) {
    struct overdue_scan *o = ctx;
    if (key_len == 1 + ID_LEN) { /* an incident: its notices follow */
        overdue_incident_end(o);
        struct rec_breach b;
        o->in_incident = rec_breach_decode(value, value_len, &b) == 0 && o->now >= b.deadline;
        rec_breach_cleanup(&b);
        memcpy(o->incident.b, key + 1, ID_LEN);
        o->incident_overdue = 0;
    } else if (key_len == 1 + 2 * ID_LEN && o->in_incident) {
        struct rec_breach_notice n;
        if (rec_breach_notice_decode(value, value_len, &n) == 0 && n.state != REC_BREACH_SENT) {
            o->overdue++;
            o->incident_overdue++;
        }
    }
    return true;
}

/* Counts (and logs, once per incident) the notices unsent past their
 * deadline. */
static void breach_overdue(struct maintenance *m) {
    struct overdue_scan o = {.m = m, .now = clock_now()};
    const uint8_t prefix = REC_BREACH_TAG;
    if (store_scan(m->cfg.store, CF_META, &prefix, 1, NULL, 0, SIZE_MAX, collect_overdue, &o) < 0)
        atomic_fetch_add(&m->failures, 1);
    overdue_incident_end(&o);
    atomic_store(&m->breach_overdue, o.overdue);
}

/* ---- the thread ---------------------------------------------------------------------- */

static void compact(struct maintenance *m) {
    int64_t start = clock_monotonic_ms();
    store_compact(m->cfg.store);
    atomic_fetch_add(&m->compactions, 1);
    log_info("maintenance", "compacted after a purge in %" PRId64 " ms",
             clock_monotonic_ms() - start);
}

static void pass(struct maintenance *m) {
    if (retention_pass(m, false) && !stopping(m))
        compact(m);
    sweep(m, CF_INVITES);
    sweep(m, CF_SESSIONS);
    breach_overdue(m);
    atomic_fetch_add(&m->passes, 1);
    atomic_store(&m->last_pass_ms, clock_now());
}

static void *maintenance_main(void *arg) {
    struct maintenance *m = arg;
    for (;;) {
        if (stopping(m))
            break;
        pass(m);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += m->cfg.config->maintenance_interval_s;
        pthread_mutex_lock(&m->lock);
        while (!m->stop && pthread_cond_timedwait(&m->cond, &m->lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&m->lock);
    }
    return NULL;
}

int maintenance_start(const struct maintenance_config *cfg, struct maintenance **out) {
    struct maintenance *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    /* A purge whose entry was written before the server went down finishes
     * before anything is served. */
    if (retention_pass(m, true))
        compact(m);
    int rc = pthread_create(&m->thread, NULL, maintenance_main, m);
    if (rc != 0) {
        log_error("maintenance", "cannot start the maintenance thread: %s", strerror(rc));
        maintenance_free(m);
        return STATUS_INTERNAL;
    }
    m->started = true;
    *out = m;
    return STATUS_OK;
}

void maintenance_stop(struct maintenance *m) {
    if (!m || !m->started)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->started = false;
}

void maintenance_free(struct maintenance *m) {
    if (!m)
        return;
    maintenance_stop(m);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void maintenance_get_stats(struct maintenance *m, struct metrics_retention *out) {
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    out->passes = atomic_load(&m->passes);
    out->restricted = atomic_load(&m->restricted);
    out->purged = atomic_load(&m->purged);
    out->keys_destroyed = atomic_load(&m->keys_destroyed);
    out->compactions = atomic_load(&m->compactions);
    out->swept_invites = atomic_load(&m->swept_invites);
    out->swept_sessions = atomic_load(&m->swept_sessions);
    out->failures = atomic_load(&m->failures);
    out->breach_overdue = atomic_load(&m->breach_overdue);
    out->last_pass_ms = atomic_load(&m->last_pass_ms);
}
