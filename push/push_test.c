/* push/push_test.c: the notifier without providers: one result per
 * submission (disabled channels, refused jobs), the wake callback, the
 * max_pending bound, channels disabled by bad configuration, counters, and
 * closing with a transfer in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/clock.h"
#include "base/status.h"
#include "push/push.h"

static atomic_int wakes;

static void on_wake(void *ctx) {
    atomic_fetch_add(&wakes, 1);
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls until `want` results arrived or 10 s passed. */
static size_t collect(struct push *p, struct push_result *out, size_t want) {
    size_t n = 0;
    int64_t deadline = clock_monotonic_ms() + 10000;
    while (n < want && clock_monotonic_ms() < deadline) {
        size_t got = push_poll(p, out + n, want - n);
        n += got;
        if (got == 0)
            sleep_ms(5);
    }
    return n;
}

static struct push_job job_for(enum push_channel ch, uint8_t tag) {
    struct push_job j = {.id = {tag}, .channel = ch, .kind = PUSH_KIND_NEW_MESSAGE, .attempt = 1};
    j.to.email = "pat@example.org";
    j.to.apns_token = "00ff";
    j.to.fcm_token = "tok";
    j.to.webpush_endpoint = "https://push.example/x";
    j.to.webpush_p256dh =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    j.to.webpush_auth = "BTBZMqHH6r4Tts7J_aSIgg";
    return j;
}

static void test_push_unconfigured_channels_answer_once(void **state) {
    struct push_config cfg = {.wake = on_wake};
    struct push *p = NULL;
    atomic_store(&wakes, 0);
    assert_int_equal(push_open(&cfg, &p), 0);
    for (int c = 0; c < PUSH_CHANNEL_COUNT; c++)
        assert_false(push_channel_enabled(p, (enum push_channel)c));
    for (int c = 0; c < PUSH_CHANNEL_COUNT; c++) {
        struct push_job j = job_for((enum push_channel)c, (uint8_t)(c + 1));
        j.attempt = 3;
        assert_int_equal(push_submit(p, &j), 0);
    }
    struct push_result r[8];
    assert_int_equal(collect(p, r, PUSH_CHANNEL_COUNT), PUSH_CHANNEL_COUNT);
    sleep_ms(50);
    assert_int_equal(push_poll(p, r + 4, 4), 0); /* exactly one each */
    bool seen[PUSH_CHANNEL_COUNT] = {0};
    for (int i = 0; i < PUSH_CHANNEL_COUNT; i++) {
        assert_int_equal(r[i].outcome, PUSH_OUTCOME_PERMANENT_FAILURE);
        assert_int_equal(r[i].cause, PUSH_CAUSE_NOT_CONFIGURED);
        assert_int_equal(r[i].attempt, 3);
        assert_int_equal(r[i].job_id[0], r[i].channel + 1);
        seen[r[i].channel] = true;
    }
    for (int c = 0; c < PUSH_CHANNEL_COUNT; c++)
        assert_true(seen[c]);
    assert_true(atomic_load(&wakes) >= 1);
    struct push_stats s;
    push_get_stats(p, &s);
    assert_int_equal(s.submitted, 4);
    assert_int_equal(s.causes[PUSH_CAUSE_NOT_CONFIGURED], 4);
    assert_int_equal(s.results[PUSH_CHANNEL_EMAIL][PUSH_OUTCOME_PERMANENT_FAILURE], 1);
    assert_int_equal(s.latency_count, 4);
    assert_int_equal(s.latency_ms_buckets[PUSH_LATENCY_BUCKETS - 1], 4); /* +Inf: all */
    assert_true(s.latency_ms_buckets[0] <= s.latency_ms_buckets[1]);
    assert_int_equal(s.queued + s.in_flight + s.unpolled, 0);
    push_close(p);
}

static void test_push_bad_job_is_a_result(void **state) {
    struct push_config cfg = {0};
    struct push *p = NULL;
    assert_int_equal(push_open(&cfg, &p), 0);
    struct push_job j = job_for(PUSH_CHANNEL_EMAIL, 7);
    j.to.email = "pat@example.org\r\nBcc: spy@evil.example";
    assert_int_equal(push_submit(p, &j), 0);
    j.channel = PUSH_CHANNEL_COUNT; /* out of range */
    assert_int_equal(push_submit(p, &j), 0);
    struct push_result r[2];
    assert_int_equal(collect(p, r, 2), 2);
    assert_int_equal(r[0].cause, PUSH_CAUSE_BAD_JOB);
    assert_int_equal(r[1].cause, PUSH_CAUSE_BAD_JOB);
    assert_int_equal(r[0].outcome, PUSH_OUTCOME_PERMANENT_FAILURE);
    push_close(p);
}

static void test_push_max_pending_bounds_submissions(void **state) {
    struct push_config cfg = {.max_pending = 3};
    struct push *p = NULL;
    assert_int_equal(push_open(&cfg, &p), 0);
    struct push_job j = job_for(PUSH_CHANNEL_FCM, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(push_submit(p, &j), 0);
    assert_int_equal(push_submit(p, &j), STATUS_UNAVAILABLE);
    struct push_result r[3];
    assert_int_equal(collect(p, r, 1), 1); /* one polled: room for one more */
    assert_int_equal(push_submit(p, &j), 0);
    assert_int_equal(push_submit(p, &j), STATUS_UNAVAILABLE);
    assert_int_equal(collect(p, r, 3), 3);
    struct push_stats s;
    push_get_stats(p, &s);
    assert_int_equal(s.refused, 2);
    assert_int_equal(s.submitted, 4);
    push_close(p);
}

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_push_config_problems_disable_one_channel(void **state) {
    char dir[256], key[300], loose[300];
    snprintf(dir, sizeof dir, "%s", getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp");
    snprintf(key, sizeof key, "%s/vapid.pem", dir);
    snprintf(loose, sizeof loose, "%s/loose.pem", dir);
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FILE *f = fopen(key, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(key, 0600);
    EVP_PKEY_free(k);
    write_file(loose, "not a key", 0600);

    struct push_config cfg = {
        .app_link = "https://clinic.example/app",
        .email = {.url = "smtp://mail.example:587", .from = "not an address"},
        .apns = {.key_file = loose, .key_id = "K", .team_id = "T", .topic = "x"},
        .webpush = {.vapid_key_file = key, .subject = "mailto:ops@clinic.example"},
    };
    struct push *p = NULL;
    assert_int_equal(push_open(&cfg, &p), 0);
    assert_false(push_channel_enabled(p, PUSH_CHANNEL_EMAIL)); /* bad from */
    assert_false(push_channel_enabled(p, PUSH_CHANNEL_APNS));  /* not a key */
    assert_false(push_channel_enabled(p, PUSH_CHANNEL_FCM));   /* not configured */
    assert_true(push_channel_enabled(p, PUSH_CHANNEL_WEBPUSH));
    push_close(p);

    chmod(key, 0644); /* readable by others: refused */
    assert_int_equal(push_open(&cfg, &p), 0);
    assert_false(push_channel_enabled(p, PUSH_CHANNEL_WEBPUSH));
    push_close(p);
    push_close(NULL);
}

static void test_push_close_with_a_transfer_in_flight(void **state) {
    /* a relay that accepts the connection and never speaks */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 4), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    char url[64];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", ntohs(a.sin_port));
    struct push_config cfg = {
        .app_link = "https://clinic.example/app",
        .email = {.url = url, .from = "no-reply@clinic.example"},
    };
    struct push *p = NULL;
    assert_int_equal(push_open(&cfg, &p), 0);
    assert_true(push_channel_enabled(p, PUSH_CHANNEL_EMAIL));
    struct push_job j = job_for(PUSH_CHANNEL_EMAIL, 1);
    assert_int_equal(push_submit(p, &j), 0);
    struct push_stats s;
    int64_t deadline = clock_monotonic_ms() + 5000;
    do {
        sleep_ms(5);
        push_get_stats(p, &s);
    } while (s.in_flight == 0 && clock_monotonic_ms() < deadline);
    assert_int_equal(s.in_flight, 1);
    int64_t t0 = clock_monotonic_ms();
    push_close(p); /* abandons it: no hang, no leak (ASan) */
    assert_true(clock_monotonic_ms() - t0 < 2000);
    close(ls);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_unconfigured_channels_answer_once),
        cmocka_unit_test(test_push_bad_job_is_a_result),
        cmocka_unit_test(test_push_max_pending_bounds_submissions),
        cmocka_unit_test(test_push_config_problems_disable_one_channel),
        cmocka_unit_test(test_push_close_with_a_transfer_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
