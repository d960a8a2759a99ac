/*
 * tests/push/push_tool.c: drives the real notifier (push/push.h) for the Node
 * peers in tests/push/: reads a JSON configuration file, then one JSON job per
 * line on stdin, submits them all, and prints one JSON line per result on
 * stdout, then a line {"stats": ...}.
 *
 *   push_tool CONFIG.json < jobs.jsonl
 *
 * A job line: {"id": 32 hex, "channel": "email"|"apns"|"fcm"|"webpush",
 * "kind": "new_message"|..., "attempt": 1, "email", "apns_token",
 * "apns_sandbox", "fcm_token", "endpoint", "p256dh", "auth", "code", "link",
 * "retries": N}. With "retries", a RETRY result is submitted again at once
 * with attempt + 1, up to N more times (the server would wait
 * push_retry_delay_ms()). Any other field (a test's canary "sender",
 * "patient", "text") is ignored: a job has nowhere to put it.
 *
 * Exits 0 when every job got its final result within the deadline
 * (PUSH_TOOL_DEADLINE_MS, default 30000), 1 otherwise.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/hex.h"
#include "base/rand.h"
#include "push/push.h"
#include "tests/push/toolcfg.h"

#define MAX_JOBS 4096

struct tool_job {
    json_t *line;
    struct push_job job;
    int retries_left;
};

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
static int wakes;

static void on_wake(void *ctx) {
    pthread_mutex_lock(&wake_lock);
    wakes++;
    pthread_cond_signal(&wake_cond);
    pthread_mutex_unlock(&wake_lock);
}

static const char *str(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static long num(json_t *o, const char *key) {
    return (long)json_integer_value(json_object_get(o, key));
}

static int enum_of(const char *name, const char *(*fn)(int), int count) {
    for (int i = 0; name != NULL && i < count; i++) {
        if (strcmp(fn(i), name) == 0)
            return i;
    }
    return count; /* out of range: the notifier refuses it (BAD_JOB) */
}

static const char *channel_name(int i) {
    return push_channel_str((enum push_channel)i);
}
static const char *kind_name(int i) {
    return push_kind_str((enum push_kind)i);
}

static void parse_job(json_t *line, struct tool_job *tj) {
    struct push_job *j = &tj->job;
    const char *id = str(line, "id");
    struct buf b;
    buf_init(&b);
    if (id != NULL && hex_decode(id, strlen(id), &b) == 0 && b.len == PUSH_JOB_ID_LEN)
        memcpy(j->id, b.data, PUSH_JOB_ID_LEN);
    else
        rand_bytes(j->id, PUSH_JOB_ID_LEN);
    buf_cleanup(&b);
    j->channel = (enum push_channel)enum_of(str(line, "channel"), channel_name, PUSH_CHANNEL_COUNT);
    j->kind = (enum push_kind)enum_of(str(line, "kind"), kind_name, PUSH_KIND_COUNT);
    j->attempt = json_object_get(line, "attempt") ? (uint32_t)num(line, "attempt") : 1;
    j->to.email = str(line, "email");
    j->to.apns_token = str(line, "apns_token");
    j->to.apns_sandbox = json_is_true(json_object_get(line, "apns_sandbox"));
    j->to.fcm_token = str(line, "fcm_token");
    j->to.webpush_endpoint = str(line, "endpoint");
    j->to.webpush_p256dh = str(line, "p256dh");
    j->to.webpush_auth = str(line, "auth");
    j->code = str(line, "code");
    j->link = str(line, "link");
    tj->retries_left = (int)num(line, "retries");
}

static void print_result(const struct push_result *r) {
    struct buf id;
    buf_init(&id);
    hex_encode(r->job_id, PUSH_JOB_ID_LEN, &id);
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:i,s:I}", "id", (char *)id.data, "channel",
                          push_channel_str(r->channel), "attempt", (int)r->attempt, "outcome",
                          push_outcome_str(r->outcome), "cause", push_cause_str(r->cause),
                          "reply_code", r->reply_code, "latency_ms", (json_int_t)r->latency_ms);
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(o);
    buf_cleanup(&id);
}

static void print_stats(struct push *p) {
    struct push_stats s;
    push_get_stats(p, &s);
    json_t *o = json_object();
    json_t *res = json_object(), *causes = json_object();
    for (int c = 0; c < PUSH_CHANNEL_COUNT; c++) {
        json_t *ch = json_object();
        for (int k = 0; k < PUSH_OUTCOME_COUNT; k++)
            json_object_set_new(ch, push_outcome_str((enum push_outcome)k),
                                json_integer((json_int_t)s.results[c][k]));
        json_object_set_new(res, push_channel_str((enum push_channel)c), ch);
    }
    for (int k = 0; k < PUSH_CAUSE_COUNT; k++) {
        if (s.causes[k] > 0)
            json_object_set_new(causes, push_cause_str((enum push_cause)k),
                                json_integer((json_int_t)s.causes[k]));
    }
    json_object_set_new(o, "submitted", json_integer((json_int_t)s.submitted));
    json_object_set_new(o, "results", res);
    json_object_set_new(o, "causes", causes);
    json_object_set_new(o, "in_flight", json_integer((json_int_t)s.in_flight));
    json_object_set_new(o, "latency_count", json_integer((json_int_t)s.latency_count));
    json_object_set_new(o, "thread_cpu_us", json_integer((json_int_t)s.thread_cpu_us));
    json_t *top = json_pack("{s:o}", "stats", o);
    json_dumpf(top, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(top);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: push_tool CONFIG.json < jobs.jsonl\n");
        return 2;
    }
    json_error_t err;
    json_t *conf = json_load_file(argv[1], 0, &err);
    if (conf == NULL) {
        fprintf(stderr, "push_tool: %s: %s\n", argv[1], err.text);
        return 2;
    }
    static struct tool_job jobs[MAX_JOBS];
    size_t n = 0;
    char line[16384];
    while (n < MAX_JOBS && fgets(line, sizeof line, stdin) != NULL) {
        if (line[0] == '\n')
            continue;
        jobs[n].line = json_loads(line, 0, &err);
        if (jobs[n].line == NULL) {
            fprintf(stderr, "push_tool: bad job line: %s\n", err.text);
            return 2;
        }
        parse_job(jobs[n].line, &jobs[n]);
        n++;
    }
    const char *hosts[TOOLCFG_MAX_HOSTS + 1];
    struct push_config cfg = {.wake = on_wake};
    toolcfg_fill(conf, &cfg, hosts);
    struct push *p = NULL;
    if (push_open(&cfg, &p) != 0)
        return 1;
    const char *env = getenv("PUSH_TOOL_DEADLINE_MS");
    int64_t deadline = clock_monotonic_ms() + (env != NULL ? atol(env) : 30000);
    size_t open_jobs = 0;
    for (size_t i = 0; i < n; i++) {
        if (push_submit(p, &jobs[i].job) == 0)
            open_jobs++;
        else
            fprintf(stderr, "push_tool: submit refused\n");
    }
    while (open_jobs > 0 && clock_monotonic_ms() < deadline) {
        struct push_result r[64];
        size_t got = push_poll(p, r, 64);
        for (size_t k = 0; k < got; k++) {
            print_result(&r[k]);
            open_jobs--;
            struct tool_job *tj = NULL;
            for (size_t i = 0; i < n && tj == NULL; i++) {
                if (memcmp(jobs[i].job.id, r[k].job_id, PUSH_JOB_ID_LEN) == 0)
                    tj = &jobs[i];
            }
            if (tj != NULL && r[k].outcome == PUSH_OUTCOME_RETRY && tj->retries_left > 0) {
                tj->retries_left--;
                tj->job.attempt++;
                if (push_submit(p, &tj->job) == 0)
                    open_jobs++;
            }
        }
        if (got > 0)
            continue;
        pthread_mutex_lock(&wake_lock);
        if (wakes == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&wake_cond, &wake_lock, &ts);
        }
        wakes = 0;
        pthread_mutex_unlock(&wake_lock);
    }
    print_stats(p);
    push_close(p);
    for (size_t i = 0; i < n; i++)
        json_decref(jobs[i].line);
    json_decref(conf);
    if (open_jobs > 0) {
        fprintf(stderr, "push_tool: %zu jobs without a result by the deadline\n", open_jobs);
        return 1;
    }
    return 0;
}
