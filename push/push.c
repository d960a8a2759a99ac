/*
 * push/push.c: the notifier thread and its queues (contract in push.h).
 *
 *   push_submit --lock--> in FIFO --thread takes <= max_in_flight--> dispatch:
 *     push_job_check() fails   -> finished (PERMANENT, BAD_JOB)
 *     channel disabled         -> finished (PERMANENT, NOT_CONFIGURED)
 *     else the channel's send  -> ... transfer ... -> finished
 *   finished --lock--> out FIFO + stats --> wake() ... push_poll()
 *
 * Invariants:
 * - `outstanding` counts jobs submitted whose result was not polled: it is
 *   what max_pending bounds, so memory is bounded whatever the server does.
 * - A job is in exactly one place: in, a channel (parked, resolving, running),
 *   the engine's finished list, out, or freed after push_poll() copied its
 *   result.
 * - Only the notifier thread touches the engine and the channels.
 */
#include "push/push.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "push/apns.h"
#include "push/fcm.h"
#include "push/mail.h"
#include "push/webpush.h"
#include "push/xfer.h"

#define MOD "push"
#define DEFAULT_MAX_PENDING 10000
#define DEFAULT_MAX_IN_FLIGHT 64
#define POLL_MS 1000

static const int64_t LATENCY_BOUNDS[PUSH_LATENCY_BUCKETS - 1] = PUSH_LATENCY_BOUNDS_MS;

struct push {
    void (*wake)(void *ctx);
    void *wake_ctx;
    size_t max_pending;
    size_t max_in_flight;

    pthread_mutex_t lock; /* in, out, outstanding, closing, stats */
    struct push_xfer *in_head, *in_tail;
    struct push_xfer *out_head, *out_tail;
    size_t outstanding;
    bool closing;
    struct push_stats stats;

    /* notifier thread only (and push_open/push_close around it) */
    struct push_engine engine;
    size_t in_flight;
    struct push_mail *mail;
    struct push_apns *apns;
    struct push_fcm *fcm;
    struct push_webpush *webpush;
    bool enabled[PUSH_CHANNEL_COUNT];

    pthread_t thread;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void) {
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void dispatch(struct push *p, struct push_xfer *x) {
    struct push_engine *e = &p->engine;
    if (push_job_check(&x->job) != 0) {
        push_xfer_finish(e, x, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_BAD_JOB, 0);
        return;
    }
    if (!p->enabled[x->job.channel]) {
        push_xfer_finish(e, x, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_NOT_CONFIGURED, 0);
        return;
    }
    switch (x->job.channel) {
    case PUSH_CHANNEL_EMAIL:
        push_mail_send(p->mail, x);
        break;
    case PUSH_CHANNEL_APNS:
        push_apns_send(p->apns, x);
        break;
    case PUSH_CHANNEL_FCM:
        push_fcm_send(p->fcm, x);
        break;
    case PUSH_CHANNEL_WEBPUSH:
        push_webpush_send(p->webpush, x);
        break;
    default:
        CHECK(!"channel checked above");
    }
}

static void count_result(struct push_stats *s, const struct push_result *r) {
    /* a refused job may name a channel out of range: it is counted by cause only */
    if ((unsigned)r->channel < PUSH_CHANNEL_COUNT)
        s->results[r->channel][r->outcome]++;
    if (r->outcome != PUSH_OUTCOME_DELIVERED)
        s->causes[r->cause]++;
    for (size_t i = 0; i < PUSH_LATENCY_BUCKETS; i++) {
        if (i == PUSH_LATENCY_BUCKETS - 1 || r->latency_ms <= LATENCY_BOUNDS[i])
            s->latency_ms_buckets[i]++;
    }
    s->latency_ms_sum += (uint64_t)(r->latency_ms > 0 ? r->latency_ms : 0);
    s->latency_count++;
}

/* Moves the engine's finished transfers to the out FIFO. Returns how many. */
static size_t hand_back(struct push *p) {
    struct push_xfer *x = p->engine.finished_head;
    p->engine.finished_head = p->engine.finished_tail = NULL;
    size_t n = 0;
    if (x == NULL)
        return 0;
    pthread_mutex_lock(&p->lock);
    while (x != NULL) {
        struct push_xfer *next = x->next;
        count_result(&p->stats, &x->result);
        push_xfer_list_append(&p->out_head, &p->out_tail, x);
        n++;
        x = next;
    }
    p->stats.in_flight -= n;
    p->stats.unpolled += n;
    pthread_mutex_unlock(&p->lock);
    p->in_flight -= n;
    return n;
}

static void *notifier_main(void *arg) {
    struct push *p = arg;
    for (;;) {
        struct push_xfer *batch = NULL, *batch_tail = NULL;
        pthread_mutex_lock(&p->lock);
        if (p->closing) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        size_t taken = 0;
        while (p->in_head != NULL && p->in_flight + taken < p->max_in_flight) {
            struct push_xfer *x = p->in_head;
            p->in_head = x->next;
            if (p->in_head == NULL)
                p->in_tail = NULL;
            push_xfer_list_append(&batch, &batch_tail, x);
            taken++;
        }
        p->stats.queued -= taken;
        p->stats.in_flight += taken;
        pthread_mutex_unlock(&p->lock);

        p->in_flight += taken;
        while (batch != NULL) {
            struct push_xfer *next = batch->next;
            dispatch(p, batch);
            batch = next;
        }
        if (p->webpush != NULL)
            push_webpush_poll(p->webpush);
        push_xfer_run(&p->engine);
        if (hand_back(p) > 0 && p->wake != NULL)
            p->wake(p->wake_ctx);
        curl_multi_poll(p->engine.multi, NULL, 0, POLL_MS, NULL);
    }
    return NULL;
}

int push_open(const struct push_config *cfg, struct push **out) {
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK) {
        log_error(MOD, "libcurl failed to initialise");
        return STATUS_INTERNAL;
    }
    struct push *p = xcalloc(1, sizeof *p);
    p->wake = cfg->wake;
    p->wake_ctx = cfg->wake_ctx;
    p->max_pending = cfg->max_pending > 0 ? cfg->max_pending : DEFAULT_MAX_PENDING;
    p->max_in_flight = cfg->max_in_flight > 0 ? cfg->max_in_flight : DEFAULT_MAX_IN_FLIGHT;
    if (push_xfer_engine_init(&p->engine, cfg) != 0) {
        free(p);
        return STATUS_INTERNAL;
    }
    p->enabled[PUSH_CHANNEL_EMAIL] = push_mail_open(cfg, &p->engine, &p->mail) == 0;
    p->enabled[PUSH_CHANNEL_APNS] = push_apns_open(cfg, &p->engine, &p->apns) == 0;
    p->enabled[PUSH_CHANNEL_FCM] = push_fcm_open(cfg, &p->engine, &p->fcm) == 0;
    p->enabled[PUSH_CHANNEL_WEBPUSH] = push_webpush_open(cfg, &p->engine, &p->webpush) == 0;
    pthread_mutex_init(&p->lock, NULL);
    if (pthread_create(&p->thread, NULL, notifier_main, p) != 0) {
        log_error(MOD, "cannot start the notifier thread");
        push_webpush_close(p->webpush);
        push_fcm_close(p->fcm);
        push_apns_close(p->apns);
        push_mail_close(p->mail);
        push_xfer_engine_cleanup(&p->engine);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return STATUS_INTERNAL;
    }
    *out = p;
    return 0;
}

bool push_channel_enabled(const struct push *p, enum push_channel channel) {
    return (unsigned)channel < PUSH_CHANNEL_COUNT && p->enabled[channel];
}

int push_submit(struct push *p, const struct push_job *job) {
    pthread_mutex_lock(&p->lock);
    if (p->closing || p->outstanding >= p->max_pending) {
        p->stats.refused++;
        pthread_mutex_unlock(&p->lock);
        return STATUS_UNAVAILABLE;
    }
    p->outstanding++;
    p->stats.submitted++;
    p->stats.queued++;
    pthread_mutex_unlock(&p->lock);
    /* copied outside the lock; counted above so max_pending holds */
    struct push_xfer *x = push_xfer_new(job, clock_monotonic_ms());
    pthread_mutex_lock(&p->lock);
    push_xfer_list_append(&p->in_head, &p->in_tail, x);
    pthread_mutex_unlock(&p->lock);
    curl_multi_wakeup(p->engine.multi);
    return 0;
}

size_t push_poll(struct push *p, struct push_result *out, size_t max) {
    struct push_xfer *taken = NULL, *tail = NULL;
    size_t n = 0;
    pthread_mutex_lock(&p->lock);
    while (n < max && p->out_head != NULL) {
        struct push_xfer *x = p->out_head;
        p->out_head = x->next;
        if (p->out_head == NULL)
            p->out_tail = NULL;
        out[n++] = x->result;
        push_xfer_list_append(&taken, &tail, x);
    }
    p->outstanding -= n;
    p->stats.unpolled -= n;
    pthread_mutex_unlock(&p->lock);
    push_xfer_free_list(taken);
    return n;
}

void push_get_stats(struct push *p, struct push_stats *out) {
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(p->thread, &cid) == 0 && clock_gettime(cid, &ts) == 0)
        out->thread_cpu_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void push_close(struct push *p) {
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    pthread_mutex_unlock(&p->lock);
    curl_multi_wakeup(p->engine.multi);
    pthread_join(p->thread, NULL);
    /* the resolver first: it may still hand transfers to the ready list */
    push_webpush_close(p->webpush);
    push_xfer_engine_cleanup(&p->engine);
    push_fcm_close(p->fcm);
    push_apns_close(p->apns);
    push_mail_close(p->mail);
    push_xfer_free_list(p->in_head);
    push_xfer_free_list(p->out_head);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
