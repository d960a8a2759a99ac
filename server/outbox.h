/*
 * server/outbox.h: the loop-thread side of the durable outbox: finds the jobs
 * that apply wrote into CF_OUTBOX (server/records_notify.h) and that are due,
 * decides whether each is still worth sending, hands it to the notifier
 * (push/push.h) and makes what became of it durable through the journal.
 *
 *   tick (about 1/s):  scan a page of 'J' rows (a cursor goes round the table)
 *        |             skip rows in flight; due?  fresh NEW_MESSAGE email:
 *        |               created + email_delay, and last notice + email_window;
 *        |               fresh push: created + push_delay + jitter(job id), and
 *        |               last notice + push_interval; a retry: next_at; other
 *        |               kinds: at once
 *        v
 *     decide:  channel enabled here (else NEW_MESSAGE: CANCELLED; other
 *        |     kinds wait)? NEW_MESSAGE still unread by an offline target,
 *        |     settings on, registration unchanged?  no -> CANCELLED
 *        v     yes -> push_submit(job with the row's id and attempt)
 *   [notifier thread] ... result ... wake -> outbox_poll()
 *        v
 *   propose OutboxResult: DELIVERED | RETRY at now + push_retry_delay_ms() |
 *        DROPPED (permanent, or the 48 h horizon) | TOKEN_DEAD
 *        v
 *   journal done: the slot is free again (the row is gone or waits)
 *
 * Invariants: at most `max_in_flight` jobs are between submission and their
 * settled result (each holds a slot until its OutboxResult is applied, so a
 * sweep never submits a job twice in one run); a job's id and attempt are
 * the row's, so a job submitted again after a crash (its result was never made
 * durable) keeps its email Message-ID and push collapse id: at least once, a
 * duplicate recognisable. Only ids are logged.
 *
 * "Has had no session since" is read as: no device of the account is
 * connected now, and some device has undelivered inbox entries (reading
 * drains the inbox, and a drained inbox also resets the window).
 *
 * Threads: everything on the lws loop thread; outbox_new/free on the main
 * thread (the loop thread in carechatd).
 */
#ifndef SERVER_OUTBOX_H
#define SERVER_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/id.h"
#include "push/push.h"
#include "storage/journal.h"
#include "storage/store.h"

struct outbox_config {
    struct store *store;     /* required, borrowed */
    struct journal *journal; /* required, borrowed */
    struct push *push;       /* required, borrowed; outlives the outbox's use of it */
    /* Whether `device` has an authenticated connection now (required). */
    bool (*online)(void *ctx, const struct id *device);
    void *online_ctx;
    int64_t email_delay_ms;   /* first email this long after the message */
    int64_t email_window_ms;  /* then at most one email per window until read */
    int64_t push_delay_ms;    /* first push this long after the message */
    int64_t push_interval_ms; /* then at most one push per device per interval */
    int64_t push_jitter_ms;   /* plus up to this much, derived from the job id */
    size_t max_in_flight;     /* 0: 64 */
    size_t scan_page;         /* rows read per tick; 0: 1024 */
};

struct outbox_stats {
    uint64_t depth;          /* rows seen in the last full sweep */
    int64_t oldest_age_ms;   /* age of the oldest row of the last sweep (0: none) */
    uint64_t in_flight;      /* slots in use */
    uint64_t submitted;      /* push_submit() calls that took a job */
    uint64_t settled[6];     /* OutboxResult entries applied, by outcome 1..5 */
    uint64_t propose_failed; /* OutboxResult entries the journal did not take */
};

struct outbox;

/* Returns 0 and *out (free with outbox_free()), or STATUS_BAD_REQUEST for a
 * config without store, journal, push or online. */
int outbox_new(const struct outbox_config *cfg, struct outbox **out);

/* Frees. Results of jobs still in flight are dropped: their rows stay and
 * are sent again after a restart. Call after push_close() and
 * journal_close(). Accepts NULL. */
void outbox_free(struct outbox *o);

/* Reads the next page of rows and submits (or cancels) what is due, within
 * max_in_flight. Loop thread, about once a second. */
void outbox_tick(struct outbox *o);

/* Takes the notifier's results (push_poll()) and proposes their OutboxResult
 * entries. Loop thread, after a wake. */
void outbox_poll(struct outbox *o);

void outbox_get_stats(const struct outbox *o, struct outbox_stats *out);

/* Appends the outbox's and the notifier's metrics (Prometheus text). */
void outbox_render_metrics(struct outbox *o, struct buf *out);

#endif
