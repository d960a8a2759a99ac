/* push/job_test.c: job checks (destinations, codes, links: nothing that could
 * inject a header), names, the fixed texts and opaque ids, and the retry
 * schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/rand.h"
#include "base/status.h"
#include "push/content.h"
#include "push/job.h"

#define P256DH                                                                                     \
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH "BTBZMqHH6r4Tts7J_aSIgg"

static struct push_job email_job(const char *to) {
    return (struct push_job){.channel = PUSH_CHANNEL_EMAIL,
                             .kind = PUSH_KIND_NEW_MESSAGE,
                             .attempt = 1,
                             .to = {.email = to}};
}

static void test_job_email_addresses(void **state) {
    static const char *const good[] = {"pat@example.org", "a.b+tag@sub.example.co.uk",
                                       "x@localhost", "o'neil@example.org"};
    static const char *const bad[] = {
        "",
        "pat",
        "@example.org",
        "pat@",
        "pat@@example.org",
        "pat@example.org\r\nBcc: x@y.z",
        "pat@example.org\n",
        "pat\r@example.org",
        "Pat <pat@example.org>",
        "pat@example.org, b@c.d",
        "pat @example.org",
        ".pat@example.org",
        "pa..t@example.org",
        "pat.@example.org",
        "pat@-example.org",
        "pat@example-.org",
        "pat@exa_mple.org",
        "pat@example..org",
        "\"pat\"@example.org",
        "p\xc3\xa4t@example.org",
        "pat@[127.0.0.1]",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct push_job j = email_job(good[i]);
        assert_int_equal(push_job_check(&j), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct push_job j = email_job(bad[i]);
        if (push_job_check(&j) != STATUS_BAD_REQUEST)
            fail_msg("accepted bad address #%zu", i);
    }
    char longest[PUSH_MAX_EMAIL + 2];
    memset(longest, 'a', sizeof longest);
    memcpy(longest + 60, "@", 1);
    for (size_t i = 120; i < sizeof longest - 2; i += 60)
        longest[i] = '.';
    longest[PUSH_MAX_EMAIL + 1] = 0;
    assert_false(push_email_valid(longest));
    longest[PUSH_MAX_EMAIL] = 0;
    assert_true(push_email_valid(longest));
    struct push_job none = email_job(NULL);
    assert_int_equal(push_job_check(&none), STATUS_BAD_REQUEST);
}

static void test_job_codes_links_and_kinds(void **state) {
    struct push_job j = email_job("pat@example.org");
    j.kind = PUSH_KIND_INVITATION;
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST); /* code missing */
    j.code = "AB12-CD34";
    assert_int_equal(push_job_check(&j), 0);
    j.link = "https://clinic.example/join#AB12-CD34";
    assert_int_equal(push_job_check(&j), 0);
    j.link = "http://clinic.example/join";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.link = "https://clinic.example/join\r\nBcc: x@y.z";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.link = "https://clinic.example/a b";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.link = NULL;
    j.code = "AB12\r\nX";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.code = "AB12 CD";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    /* a code only where the kind has one, a link only for invitations */
    j = email_job("pat@example.org");
    j.code = "AB12";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.code = NULL;
    j.link = "https://clinic.example/";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    /* codes never go by push */
    j = (struct push_job){.channel = PUSH_CHANNEL_APNS,
                          .kind = PUSH_KIND_PASSWORD_RESET,
                          .attempt = 1,
                          .code = "AB12",
                          .to = {.apns_token = "00ff"}};
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.kind = PUSH_KIND_BREACH_NOTICE;
    j.code = NULL;
    assert_int_equal(push_job_check(&j), 0);
    j.attempt = 0;
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.attempt = 1;
    j.channel = PUSH_CHANNEL_COUNT;
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    assert_int_equal(push_job_check(NULL), STATUS_BAD_REQUEST);
}

static void test_job_push_destinations(void **state) {
    struct push_job j = {.channel = PUSH_CHANNEL_APNS, .kind = PUSH_KIND_NEW_MESSAGE, .attempt = 1};
    static const char *const bad_apns[] = {"", "abc", "zz", "00ff/../x", "00 ff"};
    for (size_t i = 0; i < sizeof bad_apns / sizeof bad_apns[0]; i++) {
        j.to.apns_token = bad_apns[i];
        assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    }
    j.to.apns_token = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
    assert_int_equal(push_job_check(&j), 0);

    j = (struct push_job){.channel = PUSH_CHANNEL_FCM,
                          .kind = PUSH_KIND_NEW_MESSAGE,
                          .attempt = 1,
                          .to = {.fcm_token = "dXk:APA91b-Hx_y.z"}};
    assert_int_equal(push_job_check(&j), 0);
    j.to.fcm_token = "a\"b";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.to.fcm_token = "a/b";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);

    j = (struct push_job){.channel = PUSH_CHANNEL_WEBPUSH,
                          .kind = PUSH_KIND_NEW_MESSAGE,
                          .attempt = 1,
                          .to = {.webpush_endpoint = "https://push.example/abc",
                                 .webpush_p256dh = P256DH,
                                 .webpush_auth = AUTH}};
    assert_int_equal(push_job_check(&j), 0);
    j.to.webpush_endpoint = "ftp://push.example/abc";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.to.webpush_endpoint = "https://push.example/a\nb";
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.to.webpush_endpoint = "https://push.example/abc";
    j.to.webpush_auth = "BTBZMqHH6r4Tts7J_aSI"; /* 15 bytes */
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
    j.to.webpush_auth = AUTH;
    j.to.webpush_p256dh = AUTH;
    assert_int_equal(push_job_check(&j), STATUS_BAD_REQUEST);
}

static void test_job_names(void **state) {
    assert_string_equal(push_channel_str(PUSH_CHANNEL_WEBPUSH), "webpush");
    assert_string_equal(push_kind_str(PUSH_KIND_PASSWORD_RESET), "password_reset");
    assert_string_equal(push_outcome_str(PUSH_OUTCOME_TOKEN_DEAD), "token_dead");
    assert_string_equal(push_cause_str(PUSH_CAUSE_NOT_CONFIGURED), "not_configured");
    for (int c = 0; c < PUSH_CAUSE_COUNT; c++)
        assert_string_not_equal(push_cause_str((enum push_cause)c), "unknown");
    assert_string_equal(push_cause_str(PUSH_CAUSE_COUNT), "unknown");
}

static void test_content_opaque_ids(void **state) {
    uint8_t id[PUSH_JOB_ID_LEN] = {1, 2, 3};
    char a[PUSH_CONTENT_ID_HEX], b[PUSH_CONTENT_ID_HEX], c[PUSH_CONTENT_ID_HEX];
    push_content_opaque_id(id, "message-id", a);
    push_content_opaque_id(id, "message-id", b);
    push_content_opaque_id(id, "collapse-id", c);
    assert_int_equal(strlen(a), 32);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_null(strstr(a, "010203")); /* not the id itself */
    for (int k = 0; k < PUSH_KIND_COUNT; k++) {
        const struct push_text *t = push_content_text((enum push_kind)k);
        assert_non_null(t->subject);
        assert_non_null(t->lead);
        assert_true((t->code_label != NULL) ==
                    (k == PUSH_KIND_INVITATION || k == PUSH_KIND_PASSWORD_RESET));
        assert_true((t->alert != NULL) == (t->code_label == NULL));
    }
}

static uint32_t fixed_r;
static void fixed_source(void *ctx, void *buf, size_t n) {
    memset(buf, 0, n);
    memcpy(buf, &fixed_r, n < sizeof fixed_r ? n : sizeof fixed_r);
}

static void test_job_retry_schedule(void **state) {
    const int64_t min = 60 * 1000, hour = 60 * min;
    const int64_t base[] = {min, 5 * min, 30 * min, 2 * hour, 6 * hour, 6 * hour, 6 * hour};
    rand_set_source(fixed_source, NULL);
    /* lowest and highest jitter: 0.8 and just under 1.2 */
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
        fixed_r = 0;
        assert_int_equal(push_retry_delay_ms((uint32_t)i + 1, 0), base[i] * 4 / 5);
        fixed_r = UINT32_MAX;
        int64_t hi = push_retry_delay_ms((uint32_t)i + 1, 0);
        assert_true(hi < base[i] * 6 / 5 && hi > base[i] * 6 / 5 - 10);
    }
    /* walk the schedule with the middle jitter until it gives up: 48 h bound */
    fixed_r = UINT32_MAX / 2;
    int64_t elapsed = 0;
    uint32_t attempt = 1;
    for (;; attempt++) {
        int64_t d = push_retry_delay_ms(attempt, elapsed);
        if (d == PUSH_RETRY_GIVE_UP)
            break;
        assert_true(d > 0);
        elapsed += d;
        assert_true(elapsed <= PUSH_RETRY_HORIZON_MS);
    }
    /* 1 + 5 + 30 + 120 + 360 min, then 6 h steps up to 48 h: 12 attempts */
    assert_int_equal(attempt, 12);
    assert_true(elapsed > 44 * hour);
    assert_int_equal(push_retry_delay_ms(3, PUSH_RETRY_HORIZON_MS), PUSH_RETRY_GIVE_UP);
    /* the real source: always within [0.8, 1.2) */
    rand_set_source(NULL, NULL);
    for (int i = 0; i < 1000; i++) {
        int64_t d = push_retry_delay_ms(2, -5);
        assert_true(d >= 4 * min && d < 6 * min);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_email_addresses),
        cmocka_unit_test(test_job_codes_links_and_kinds),
        cmocka_unit_test(test_job_push_destinations),
        cmocka_unit_test(test_job_names),
        cmocka_unit_test(test_content_opaque_ids),
        cmocka_unit_test(test_job_retry_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
