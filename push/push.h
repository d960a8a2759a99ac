/*
 * push/push.h: the notifier. The server hands it notification jobs from any
 * thread; one notifier thread sends them over libcurl's multi interface
 * (SMTP, and HTTP/2 multiplexed for APNs) and hands one result per submitted
 * job back through a queue and a wake() callback, like the journal does.
 *
 *   any thread                        notifier thread (curl multi)
 *   push_submit(job) --lock--> [in] --> check, channel: mail/apns/fcm/webpush
 *                                       ... transfer ends: verdict
 *   push_poll(results) <--lock-- [out] <-- + wake(ctx)
 *
 * How the server is expected to use it (the durable outbox is the server's):
 *
 *   open:   push_open(&cfg, &p); push_channel_enabled() to log or refuse.
 *   send:   a job stored in the outbox (RocksDB, through the journal) is
 *           submitted with push_submit(); attempt = 1 for the first try.
 *   wake:   cfg.wake (e.g. lws_cancel_service()) runs on the notifier thread;
 *           the loop thread then calls push_poll() until it returns 0.
 *   result: DELIVERED -> delete the job; TOKEN_DEAD -> delete the job and the
 *           device token or subscription; PERMANENT_FAILURE -> delete the job
 *           (and count it); RETRY -> d = push_retry_delay_ms(attempt, now -
 *           first_try); d == PUSH_RETRY_GIVE_UP ? delete : store the job with
 *           attempt + 1 due at now + d, and submit it again then.
 *   close:  push_close(): jobs not finished get no result; the outbox still
 *           has them and submits them again after a restart (delivery is at
 *           least once; an email's Message-ID and a push's collapse id are the
 *           same for every attempt, so a duplicate is recognisable).
 *
 * Exactly one result comes back for every push_submit() that returned 0,
 * including jobs that push_job_check() refuses (PERMANENT_FAILURE, BAD_JOB) and
 * jobs for a disabled channel (PERMANENT_FAILURE, NOT_CONFIGURED). push_submit()
 * never blocks on the network: it copies the job under a mutex and wakes the
 * notifier (curl_multi_wakeup()).
 *
 * Nothing personal is logged: log lines name channels, causes and statuses,
 * never addresses, tokens, endpoints or codes.
 *
 * Threads: push_submit(), push_poll(), push_get_stats() and
 * push_channel_enabled() from any thread; push_open() and push_close() from the
 * thread that owns the notifier, once no other thread uses it.
 */
#ifndef PUSH_PUSH_H
#define PUSH_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "push/config.h"
#include "push/job.h"

/* Latency histogram bounds (ms) of struct push_stats, and +Inf. */
#define PUSH_LATENCY_BUCKETS 10
#define PUSH_LATENCY_BOUNDS_MS                                                                     \
    { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000 }

/* Counters for /metrics, e.g. carechat_push_submitted_total,
 * carechat_push_results_total{channel,outcome} (push_channel_str(),
 * push_outcome_str()), carechat_push_failures_total{cause} (push_cause_str()),
 * gauges carechat_push_queued / _in_flight / _unpolled, the histogram
 * carechat_push_latency_ms, and carechat_push_thread_cpu_seconds_total. */
struct push_stats {
    uint64_t submitted;                                       /* push_submit() == 0 */
    uint64_t refused;                                         /* push_submit() < 0 */
    uint64_t results[PUSH_CHANNEL_COUNT][PUSH_OUTCOME_COUNT]; /* per channel and outcome (a
                                                                  job refused for its channel
                                                                  number: in causes only) */
    uint64_t causes[PUSH_CAUSE_COUNT]; /* results that were not DELIVERED, by cause */
    uint64_t queued;                   /* gauge: submitted, not yet taken by the notifier thread */
    uint64_t in_flight;                /* gauge: taken, no result yet */
    uint64_t unpolled;                 /* gauge: results waiting for push_poll() */
    /* Latency from push_submit() to the result: cumulative counts per upper bound
     * (PUSH_LATENCY_BOUNDS_MS, then +Inf), Prometheus-style; sum and count. */
    uint64_t latency_ms_buckets[PUSH_LATENCY_BUCKETS];
    uint64_t latency_ms_sum;
    uint64_t latency_count;
    uint64_t thread_cpu_us; /* CPU time the notifier thread has used */
};

struct push;

/* Copies what it needs from `cfg` (see push/config.h), reads the credential
 * files, opens every configured channel (disabling, with one log line each,
 * those not configured or not usable), and starts the notifier thread.
 * Returns 0 and *out; STATUS_INTERNAL when libcurl or the thread cannot start.
 * A channel's configuration problem is never a failure here. */
int push_open(const struct push_config *cfg, struct push **out);

/* True when `channel` was configured and its credentials loaded. */
bool push_channel_enabled(const struct push *p, enum push_channel channel);

/* Queues a copy of `job` (its strings are copied; the caller's may go away).
 * Returns 0: exactly one result for it will come from push_poll(). Returns
 * STATUS_UNAVAILABLE when the notifier is closing or max_pending results are
 * outstanding: then no result comes. Never blocks on I/O. */
int push_submit(struct push *p, const struct push_job *job);

/* Moves up to `max` results into out[] in the order they were reached and
 * returns how many. Call after cfg.wake, until it returns 0. */
size_t push_poll(struct push *p, struct push_result *out, size_t max);

/* Copies the counters. */
void push_get_stats(struct push *p, struct push_stats *out);

/* Stops the notifier thread (transfers in progress are abandoned, queued jobs
 * and unpolled results dropped without results), wipes the credentials and
 * frees everything. Accepts NULL. */
void push_close(struct push *p);

#endif
