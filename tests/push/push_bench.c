/*
 * tests/push/push_bench.c: throughput of the notifier (push/push.h) against a
 * loopback peer, and the CPU time of its thread.
 *
 *   push_bench CONFIG.json CHANNEL JOBS DESTINATION
 *
 * CHANNEL is "email" (DESTINATION an address) or "apns" (a hex token). Submits
 * JOBS jobs at once (max_pending is raised to fit), waits for every result,
 * and prints one line:
 *
 *   email: 2000 jobs in 1.234 s = 1621 jobs/s (delivered 2000); notifier thread
 *   CPU 456.7 ms = 228 us/job; latency mean 600 ms
 *
 * The CPU figure is the notifier thread's own (pthread_getcpuclockid(), the
 * same clock as /proc/self/task/<tid>/stat's utime + stime), i.e. libcurl,
 * TLS and our code, without the peer. Run it through tests/push/bench.mjs,
 * which starts the peers. Exits 1 when a job was not delivered.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/rand.h"
#include "push/push.h"
#include "tests/push/toolcfg.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int woken;

static void on_wake(void *ctx) {
    pthread_mutex_lock(&lock);
    woken = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

static void wait_wake(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_mutex_lock(&lock);
    if (!woken)
        pthread_cond_timedwait(&cond, &lock, &ts);
    woken = 0;
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: push_bench CONFIG.json email|apns JOBS DESTINATION\n");
        return 2;
    }
    json_error_t err;
    json_t *conf = json_load_file(argv[1], 0, &err);
    long jobs = atol(argv[3]);
    if (conf == NULL || jobs <= 0) {
        fprintf(stderr, "push_bench: bad configuration or job count\n");
        return 2;
    }
    const char *hosts[TOOLCFG_MAX_HOSTS + 1];
    struct push_config cfg = {.wake = on_wake};
    toolcfg_fill(conf, &cfg, hosts);
    cfg.max_pending = (size_t)jobs;
    struct push_job job = {.kind = PUSH_KIND_NEW_MESSAGE, .attempt = 1};
    if (strcmp(argv[2], "email") == 0) {
        job.channel = PUSH_CHANNEL_EMAIL;
        job.to.email = argv[4];
    } else if (strcmp(argv[2], "apns") == 0) {
        job.channel = PUSH_CHANNEL_APNS;
        job.to.apns_token = argv[4];
    } else {
        fprintf(stderr, "push_bench: channel must be email or apns\n");
        return 2;
    }
    struct push *p = NULL;
    if (push_open(&cfg, &p) != 0 || !push_channel_enabled(p, job.channel)) {
        fprintf(stderr, "push_bench: the %s channel is not usable\n", argv[2]);
        return 1;
    }
    struct push_stats before, after;
    push_get_stats(p, &before);
    int64_t t0 = clock_monotonic_ms();
    for (long i = 0; i < jobs; i++) {
        rand_bytes(job.id, sizeof job.id);
        if (push_submit(p, &job) != 0) {
            fprintf(stderr, "push_bench: submit refused\n");
            return 1;
        }
    }
    long done = 0, delivered = 0;
    int64_t deadline = t0 + 300000;
    while (done < jobs && clock_monotonic_ms() < deadline) {
        struct push_result r[256];
        size_t n = push_poll(p, r, 256);
        for (size_t i = 0; i < n; i++)
            delivered += r[i].outcome == PUSH_OUTCOME_DELIVERED;
        done += (long)n;
        if (n == 0)
            wait_wake();
    }
    int64_t wall = clock_monotonic_ms() - t0;
    push_get_stats(p, &after);
    double cpu_ms = (double)(after.thread_cpu_us - before.thread_cpu_us) / 1000.0;
    double secs = (double)(wall > 0 ? wall : 1) / 1000.0;
    printf("%s: %ld jobs in %.3f s = %.0f jobs/s (delivered %ld); notifier thread CPU %.1f ms "
           "= %.0f us/job; latency mean %.0f ms\n",
           argv[2], done, secs, (double)done / secs, delivered, cpu_ms,
           done > 0 ? cpu_ms * 1000.0 / (double)done : 0.0,
           after.latency_count > 0 ? (double)after.latency_ms_sum / (double)after.latency_count
                                   : 0.0);
    push_close(p);
    json_decref(conf);
    return delivered == jobs ? 0 : 1;
}
