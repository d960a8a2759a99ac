/*
 * server/outbox.c: the outbox's sweep, decisions and results (the picture and
 * the invariants are in outbox.h). Loop thread only.
 */
#include "server/outbox.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/records.h"
#include "server/records_messages.h"
#include "server/records_notify.h"
#include "server/rules.h"
#include "storage/keys.h"

#define MOD "outbox"

_Static_assert(REC_CHANNEL_EMAIL == (int)PUSH_CHANNEL_EMAIL &&
                   REC_CHANNEL_APNS == (int)PUSH_CHANNEL_APNS &&
                   REC_CHANNEL_FCM == (int)PUSH_CHANNEL_FCM &&
                   REC_CHANNEL_WEBPUSH == (int)PUSH_CHANNEL_WEBPUSH &&
                   REC_CHANNEL_COUNT == (int)PUSH_CHANNEL_COUNT,
               "records_notify.h numbers channels as push/job.h");
_Static_assert(REC_NOTICE_NEW_MESSAGE == (int)PUSH_KIND_NEW_MESSAGE &&
                   REC_NOTICE_INVITATION == (int)PUSH_KIND_INVITATION &&
                   REC_NOTICE_PASSWORD_RESET == (int)PUSH_KIND_PASSWORD_RESET &&
                   REC_NOTICE_BREACH == (int)PUSH_KIND_BREACH_NOTICE,
               "records_notify.h numbers kinds as push/job.h");
_Static_assert(REC_JOB_ID_LEN == PUSH_JOB_ID_LEN, "job ids are 16 bytes");

enum slot_state { SLOT_FREE = 0, SLOT_SENDING, SLOT_SETTLING };

struct slot {
    enum slot_state state;
    uint8_t id[REC_JOB_ID_LEN];
    uint32_t attempt;
    int64_t created_at;
};

/* One row read by the sweep. */
struct row {
    uint8_t id[REC_JOB_ID_LEN];
    struct rec_outbox_job job;
};

struct outbox {
    struct outbox_config cfg;
    struct slot *slots;
    size_t n_slots;
    uint8_t cursor[1 + REC_JOB_ID_LEN];
    bool has_cursor;
    /* The sweep in progress, published into stats when it wraps. */
    uint64_t sweep_rows;
    int64_t sweep_oldest;
    /* The last page had due rows that found no free slot: a slot set free
     * runs the sweep again at once instead of at the next tick. */
    bool backlog;
    bool slot_freed;
    uint8_t page_from[1 + REC_JOB_ID_LEN]; /* where the last tick's page started */
    bool page_from_set;
    struct outbox_stats stats;
};

/* ---- slots ---------------------------------------------------------------------- */

static struct slot *slot_find(struct outbox *o, const uint8_t id[REC_JOB_ID_LEN]) {
    for (size_t i = 0; i < o->n_slots; i++)
        if (o->slots[i].state != SLOT_FREE && memcmp(o->slots[i].id, id, REC_JOB_ID_LEN) == 0)
            return &o->slots[i];
    return NULL;
}

static struct slot *slot_take(struct outbox *o) {
    for (size_t i = 0; i < o->n_slots; i++)
        if (o->slots[i].state == SLOT_FREE) {
            o->stats.in_flight++;
            return &o->slots[i];
        }
    return NULL;
}

static void slot_free(struct outbox *o, struct slot *s) {
    CHECK(s->state != SLOT_FREE);
    memset(s, 0, sizeof *s);
    o->stats.in_flight--;
    o->slot_freed = true;
}

/* ---- settling: the OutboxResult entry ---------------------------------------------- */

struct settle_ctx {
    struct outbox *o;
    uint8_t id[REC_JOB_ID_LEN];
    uint32_t outcome;
};

static void settled(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    (void)result;
    (void)len;
    struct settle_ctx *c = ctx;
    struct slot *s = slot_find(c->o, c->id);
    if (status != 0)
        log_warn(MOD, "an outbox result was not stored (%s); the job stays", status_str(status));
    else if (c->outcome < 6)
        c->o->stats.settled[c->outcome]++;
    if (s)
        slot_free(c->o, s);
    free(c);
}

/* Proposes the OutboxResult of slot `s`; the slot stays taken until it is
 * applied. */
static void settle(struct outbox *o, struct slot *s, uint32_t outcome, int64_t next_at,
                   uint32_t cause) {
    Carechat__Entry__V1__OutboxResult r;
    carechat__entry__v1__outbox_result__init(&r);
    r.job_id = (ProtobufCBinaryData){REC_JOB_ID_LEN, s->id};
    r.attempt = s->attempt;
    r.outcome = outcome;
    r.next_at = next_at;
    r.cause = cause;
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__entry__init(&e);
    e.version = PROTO_ENTRY_VERSION;
    e.time = clock_now();
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_OUTBOX_RESULT;
    e.outbox_result = &r;
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(&e, &b);
    struct settle_ctx *c = xmalloc(sizeof *c);
    *c = (struct settle_ctx){.o = o, .outcome = outcome};
    memcpy(c->id, s->id, REC_JOB_ID_LEN);
    s->state = SLOT_SETTLING;
    if (rc == 0)
        rc = journal_append(o->cfg.journal, b.data, b.len, settled, c);
    buf_cleanup(&b);
    if (rc != 0) {
        /* The row stays as it was: a later sweep sends it again. */
        log_warn(MOD, "cannot propose an outbox result (%s)", status_str(rc));
        o->stats.propose_failed++;
        free(c);
        slot_free(o, s);
    }
}

/* ---- reads ------------------------------------------------------------------------------- */

static int get_state(struct outbox *o, const struct id *target, uint8_t channel,
                     struct rec_notify_state *out) {
    struct key k;
    rec_key_notify_state(&k, target, channel);
    struct buf v;
    buf_init(&v);
    int rc = store_get(o->cfg.store, CF_OUTBOX, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_notify_state_decode(v.data, v.len, out);
    else if (rc == STATUS_NOT_FOUND) {
        memset(out, 0, sizeof *out);
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

static int get_settings(struct outbox *o, const struct id *account,
                        struct rec_notify_settings *out) {
    struct key k;
    rec_key_notify_settings(&k, account);
    struct buf v;
    buf_init(&v);
    int rc = store_get(o->cfg.store, CF_OUTBOX, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_notify_settings_decode(v.data, v.len, out);
    else if (rc == STATUS_NOT_FOUND) {
        *out = (struct rec_notify_settings)REC_NOTIFY_SETTINGS_DEFAULT;
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

static int get_account(struct outbox *o, const struct id *account, struct rec_account *out) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(o->cfg.store, CF_ACCOUNTS, account->b, ID_LEN, &v);
    if (rc == 0)
        rc = rec_account_decode(v.data, v.len, out);
    buf_wipe(&v);
    buf_cleanup(&v);
    return rc;
}

/* Whether the device has undelivered inbox entries. */
static bool unread(struct outbox *o, const struct id *device) {
    struct buf v;
    buf_init(&v);
    struct rec_inbox in;
    bool any = store_get(o->cfg.store, CF_INBOXES, device->b, ID_LEN, &v) == 0 &&
               rec_inbox_decode(v.data, v.len, &in) == 0 && in.last > in.acked;
    buf_cleanup(&v);
    return any;
}

struct devices_ctx {
    struct outbox *o;
    bool online, unread;
};

static bool visit_device(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len) {
    (void)value;
    (void)value_len;
    struct devices_ctx *c = ctx;
    struct id dev;
    if (key_read_id(key, key_len, ID_LEN, &dev) != 0)
        return true;
    if (c->o->cfg.online(c->o->cfg.online_ctx, &dev))
        c->online = true;
    else if (unread(c->o, &dev))
        c->unread = true;
    return !c->online;
}

/* ---- the sweep ------------------------------------------------------------------------ */

struct page {
    struct row *rows;
    size_t n, cap;
    uint8_t last[1 + REC_JOB_ID_LEN];
};

static bool visit_row(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len) {
    struct page *p = ctx;
    if (key_len != 1 + REC_JOB_ID_LEN)
        return true;
    memcpy(p->last, key, key_len);
    struct row *r = &p->rows[p->n];
    memcpy(r->id, key + 1, REC_JOB_ID_LEN);
    if (rec_outbox_job_decode(value, value_len, &r->job) != 0) {
        log_warn(MOD, "an outbox row does not decode; skipped");
        return p->n < p->cap;
    }
    p->n++;
    return p->n < p->cap;
}

/* When the row is due (INT64_MAX: never, as things stand). */
static int64_t due_at(struct outbox *o, const struct row *r) {
    const struct rec_outbox_job *j = &r->job;
    if (j->attempt > 1 || j->next_at > 0)
        return j->next_at;
    if (j->kind != REC_NOTICE_NEW_MESSAGE)
        return j->created_at;
    bool email = j->channel == REC_CHANNEL_EMAIL;
    struct rec_notify_state st;
    if (get_state(o, email ? &j->account : &j->device, j->channel, &st) != 0)
        return INT64_MAX;
    int64_t due = j->created_at + (email ? o->cfg.email_delay_ms : o->cfg.push_delay_ms);
    if (!email && o->cfg.push_jitter_ms > 0)
        due +=
            (int64_t)(((uint32_t)r->id[0] << 8 | r->id[1]) % (uint32_t)(o->cfg.push_jitter_ms + 1));
    if (st.last_sent_at > 0) {
        int64_t window =
            st.last_sent_at + (email ? o->cfg.email_window_ms : o->cfg.push_interval_ms);
        if (window > due)
            due = window;
    }
    /* Not in the person's quiet hours: then at their end. */
    struct rec_notify_settings set;
    if (get_settings(o, &j->account, &set) != 0)
        return INT64_MAX;
    int64_t now = clock_now(), at = due > now ? due : now;
    int64_t quiet_end =
        rules_quiet_end(set.quiet_from_min, set.quiet_until_min, set.utc_offset_min, at);
    return quiet_end > at ? quiet_end : due;
}

/* Fills the job's destination for a NEW_MESSAGE or account notice, or says
 * why it is not worth sending. Returns 0 (send), STATUS_CONFLICT (cancel) or
 * another status (try again later). Strings go into the caller's account and
 * registration records. */
static int destination(struct outbox *o, const struct rec_outbox_job *j, struct push_job *pj,
                       struct rec_account *a, struct rec_push_reg *g) {
    if (j->kind == REC_NOTICE_INVITATION || j->kind == REC_NOTICE_PASSWORD_RESET) {
        if (!j->email || !j->code)
            return STATUS_CONFLICT;
        pj->to.email = j->email;
        pj->code = j->code;
        return STATUS_OK;
    }
    int rc = get_account(o, &j->account, a);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_CONFLICT;
    if (rc != 0)
        return rc;
    if (j->kind == REC_NOTICE_BREACH) {
        pj->to.email = a->email;
        return STATUS_OK;
    }
    if (!a->active)
        return STATUS_CONFLICT;
    struct rec_notify_settings set;
    if ((rc = get_settings(o, &j->account, &set)) != 0)
        return rc;
    if (j->channel == REC_CHANNEL_EMAIL) {
        if (!set.email)
            return STATUS_CONFLICT;
        struct devices_ctx c = {.o = o};
        rc = store_scan(o->cfg.store, CF_DEVICES, j->account.b, ID_LEN, NULL, 0,
                        REC_MAX_DEVICES * 4, visit_device, &c);
        if (rc < 0)
            return rc;
        if (c.online || !c.unread)
            return STATUS_CONFLICT;
        pj->to.email = a->email;
        return STATUS_OK;
    }
    if (!set.push || o->cfg.online(o->cfg.online_ctx, &j->device) || !unread(o, &j->device))
        return STATUS_CONFLICT;
    struct key k;
    rec_key_push_reg(&k, &j->account, &j->device, j->channel);
    struct buf v;
    buf_init(&v);
    rc = store_get(o->cfg.store, CF_OUTBOX, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_push_reg_decode(v.data, v.len, g);
    buf_wipe(&v);
    buf_cleanup(&v);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_CONFLICT;
    if (rc != 0)
        return rc;
    if (!id_equal(&g->registration, &j->registration))
        return STATUS_CONFLICT;
    switch (j->channel) {
    case REC_CHANNEL_APNS:
        pj->to.apns_token = g->token;
        pj->to.apns_sandbox = g->apns_sandbox;
        break;
    case REC_CHANNEL_FCM:
        pj->to.fcm_token = g->token;
        break;
    default:
        pj->to.webpush_endpoint = g->token;
        pj->to.webpush_p256dh = g->p256dh;
        pj->to.webpush_auth = g->auth;
        break;
    }
    return STATUS_OK;
}

/* Submits or cancels one due row in a free slot. */
static void start(struct outbox *o, struct slot *s, const struct row *r) {
    memcpy(s->id, r->id, REC_JOB_ID_LEN);
    s->attempt = r->job.attempt;
    s->created_at = r->job.created_at;
    struct push_job pj = {
        .channel = (enum push_channel)r->job.channel,
        .kind = (enum push_kind)r->job.kind,
        .attempt = r->job.attempt,
    };
    memcpy(pj.id, r->id, REC_JOB_ID_LEN);
    struct rec_account a;
    struct rec_push_reg g;
    memset(&a, 0, sizeof a);
    memset(&g, 0, sizeof g);
    /* A channel this server cannot use: a new-message notice would only end
     * NOT_CONFIGURED (and be audited as dropped) for every message, so it is
     * cancelled quietly; an invitation or account notice waits for the
     * channel to be configured again (its code exists nowhere else). */
    int rc;
    if (push_channel_enabled(o->cfg.push, pj.channel))
        rc = destination(o, &r->job, &pj, &a, &g);
    else if (r->job.kind == REC_NOTICE_NEW_MESSAGE)
        rc = STATUS_CONFLICT;
    else
        rc = STATUS_UNAVAILABLE;
    if (rc == STATUS_UNAVAILABLE) {
        slot_free(o, s);
    } else if (rc == STATUS_CONFLICT) {
        s->state = SLOT_SETTLING;
        settle(o, s, REC_OUTBOX_CANCELLED, 0, 0);
    } else if (rc != 0) {
        log_warn(MOD, "cannot read what an outbox job needs (%s); later", status_str(rc));
        slot_free(o, s);
    } else {
        s->state = SLOT_SENDING;
        if (push_submit(o->cfg.push, &pj) == 0) {
            o->stats.submitted++;
        } else {
            slot_free(o, s);
        }
    }
    rec_account_cleanup(&a);
    rec_push_reg_cleanup(&g);
}

/* Reads the page of rows after `from` (NULL: from the start) and submits or
 * cancels those due, while slots are free (else sets o->backlog). With
 * `sweep`, counts the rows into the sweep and moves the cursor on. */
static void run_page(struct outbox *o, const uint8_t *from, bool sweep) {
    size_t cap = o->cfg.scan_page;
    struct page p = {.rows = xcalloc(cap, sizeof *p.rows), .cap = cap};
    uint8_t prefix = REC_OUTBOX_TAG_JOB;
    int n = store_scan(o->cfg.store, CF_OUTBOX, &prefix, 1, from, from ? sizeof o->cursor : 0, cap,
                       visit_row, &p);
    if (n < 0) {
        log_warn(MOD, "cannot read the outbox (%s)", status_str(n));
        goto out;
    }
    int64_t now = clock_now();
    o->backlog = false;
    for (size_t i = 0; i < p.n; i++) {
        const struct row *r = &p.rows[i];
        if (sweep) {
            o->sweep_rows++;
            if (o->sweep_oldest == 0 || r->job.created_at < o->sweep_oldest)
                o->sweep_oldest = r->job.created_at;
        }
        if (slot_find(o, r->id) || due_at(o, r) > now)
            continue;
        struct slot *s = slot_take(o);
        if (!s) {
            o->backlog = true; /* sent when a slot is free */
            continue;
        }
        s->state = SLOT_SENDING;
        start(o, s, r);
    }
    if (!sweep)
        goto out;
    if ((size_t)n < cap) {
        /* The end of the table: publish this sweep, start the next. */
        o->stats.depth = o->sweep_rows;
        o->stats.oldest_age_ms = o->sweep_oldest ? now - o->sweep_oldest : 0;
        o->sweep_rows = 0;
        o->sweep_oldest = 0;
        o->has_cursor = false;
    } else {
        memcpy(o->cursor, p.last, sizeof o->cursor);
        o->has_cursor = true;
    }
out:
    for (size_t i = 0; i < p.n; i++)
        rec_outbox_job_cleanup(&p.rows[i].job);
    free(p.rows);
}

void outbox_tick(struct outbox *o) {
    o->page_from_set = o->has_cursor;
    memcpy(o->page_from, o->cursor, sizeof o->cursor);
    run_page(o, o->has_cursor ? o->cursor : NULL, true);
}

void outbox_poll(struct outbox *o) {
    /* Slots set free by stored results (journal_poll ran first) while due rows
     * of the last page waited: that page again now, not at the next tick, so
     * a backlog drains at the notifier's pace rather than max_in_flight per
     * tick. */
    if (o->backlog && o->slot_freed)
        run_page(o, o->page_from_set ? o->page_from : NULL, false);
    o->slot_freed = false;
    struct push_result res[64];
    size_t n;
    while ((n = push_poll(o->cfg.push, res, sizeof res / sizeof res[0])) > 0) {
        int64_t now = clock_now();
        for (size_t i = 0; i < n; i++) {
            struct slot *s = slot_find(o, res[i].job_id);
            if (!s || s->state != SLOT_SENDING || s->attempt != res[i].attempt)
                continue;
            uint32_t outcome = REC_OUTBOX_DROPPED;
            int64_t next_at = 0;
            switch (res[i].outcome) {
            case PUSH_OUTCOME_DELIVERED:
                outcome = REC_OUTBOX_DELIVERED;
                break;
            case PUSH_OUTCOME_TOKEN_DEAD:
                outcome = REC_OUTBOX_TOKEN_DEAD;
                break;
            case PUSH_OUTCOME_RETRY: {
                int64_t d = push_retry_delay_ms(s->attempt, now - s->created_at);
                if (d != PUSH_RETRY_GIVE_UP) {
                    outcome = REC_OUTBOX_RETRY;
                    next_at = now + (d > 0 ? d : 1);
                }
                break;
            }
            default:
                break;
            }
            if (outcome != REC_OUTBOX_DELIVERED)
                log_info(MOD, "notification on %s: %s (%s, reply %d, attempt %u)",
                         push_channel_str(res[i].channel), push_outcome_str(res[i].outcome),
                         push_cause_str(res[i].cause), res[i].reply_code, s->attempt);
            settle(o, s, outcome, next_at, (uint32_t)res[i].cause);
        }
    }
}

/* ---- lifecycle, stats ------------------------------------------------------------------ */

int outbox_new(const struct outbox_config *cfg, struct outbox **out) {
    if (!cfg->store || !cfg->journal || !cfg->push || !cfg->online)
        return STATUS_BAD_REQUEST;
    struct outbox *o = xcalloc(1, sizeof *o);
    o->cfg = *cfg;
    if (o->cfg.max_in_flight == 0)
        o->cfg.max_in_flight = 64;
    if (o->cfg.scan_page == 0)
        o->cfg.scan_page = 1024;
    o->n_slots = o->cfg.max_in_flight;
    o->slots = xcalloc(o->n_slots, sizeof *o->slots);
    *out = o;
    return STATUS_OK;
}

void outbox_free(struct outbox *o) {
    if (!o)
        return;
    free(o->slots);
    free(o);
}

void outbox_get_stats(const struct outbox *o, struct outbox_stats *out) {
    *out = o->stats;
}

static void family(struct buf *out, const char *name, const char *type, const char *help) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void outbox_render_metrics(struct outbox *o, struct buf *out) {
    static const char *const outcomes[6] = {"",        "delivered",  "retry",
                                            "dropped", "token_dead", "cancelled"};
    family(out, "carechat_outbox_jobs", "gauge", "Notification jobs in the outbox (last sweep).");
    buf_printf(out, "carechat_outbox_jobs %" PRIu64 "\n", o->stats.depth);
    family(out, "carechat_outbox_oldest_job_age_seconds", "gauge",
           "Age of the oldest job in the outbox (last sweep).");
    buf_printf(out, "carechat_outbox_oldest_job_age_seconds %" PRId64 "\n",
               o->stats.oldest_age_ms / 1000);
    family(out, "carechat_outbox_in_flight", "gauge", "Jobs submitted and not yet settled.");
    buf_printf(out, "carechat_outbox_in_flight %" PRIu64 "\n", o->stats.in_flight);
    family(out, "carechat_outbox_settled_total", "counter", "Outbox results stored, by outcome.");
    for (int i = 1; i < 6; i++)
        buf_printf(out, "carechat_outbox_settled_total{outcome=\"%s\"} %" PRIu64 "\n", outcomes[i],
                   o->stats.settled[i]);

    struct push_stats ps;
    push_get_stats(o->cfg.push, &ps);
    family(out, "carechat_push_submitted_total", "counter", "Jobs handed to the notifier.");
    buf_printf(out, "carechat_push_submitted_total %" PRIu64 "\n", ps.submitted);
    family(out, "carechat_push_results_total", "counter",
           "Notifier results, by channel and outcome.");
    for (int c = 0; c < PUSH_CHANNEL_COUNT; c++)
        for (int r = 0; r < PUSH_OUTCOME_COUNT; r++)
            buf_printf(out,
                       "carechat_push_results_total{channel=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
                       push_channel_str((enum push_channel)c),
                       push_outcome_str((enum push_outcome)r), ps.results[c][r]);
    family(out, "carechat_push_failures_total", "counter",
           "Notifier results not delivered, by cause.");
    for (int c = 1; c < PUSH_CAUSE_COUNT; c++)
        buf_printf(out, "carechat_push_failures_total{cause=\"%s\"} %" PRIu64 "\n",
                   push_cause_str((enum push_cause)c), ps.causes[c]);
    family(out, "carechat_push_queued", "gauge", "Jobs waiting for the notifier thread.");
    buf_printf(out, "carechat_push_queued %" PRIu64 "\n", ps.queued);
    family(out, "carechat_push_in_flight", "gauge", "Transfers in progress.");
    buf_printf(out, "carechat_push_in_flight %" PRIu64 "\n", ps.in_flight);
    static const int bounds[] = PUSH_LATENCY_BOUNDS_MS;
    family(out, "carechat_push_latency_ms", "histogram", "From submission to result, ms.");
    for (int i = 0; i < PUSH_LATENCY_BUCKETS; i++) {
        if (i + 1 < PUSH_LATENCY_BUCKETS)
            buf_printf(out, "carechat_push_latency_ms_bucket{le=\"%d\"} %" PRIu64 "\n", bounds[i],
                       ps.latency_ms_buckets[i]);
        else
            buf_printf(out, "carechat_push_latency_ms_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                       ps.latency_ms_buckets[i]);
    }
    buf_printf(out, "carechat_push_latency_ms_sum %" PRIu64 "\n", ps.latency_ms_sum);
    buf_printf(out, "carechat_push_latency_ms_count %" PRIu64 "\n", ps.latency_count);
    family(out, "carechat_push_thread_cpu_seconds_total", "counter",
           "CPU time of the notifier thread.");
    buf_printf(out, "carechat_push_thread_cpu_seconds_total %.6f\n",
               (double)ps.thread_cpu_us / 1e6);
}
