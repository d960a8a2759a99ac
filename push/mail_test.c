/* push/mail_test.c: composition of the notice mail: the headers and nothing
 * else, a Message-ID stable per job id, CRLF line ends only, exactly the fixed
 * text, the code only where the kind has one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "push/job.h"
#include "push/mail.h"

static const struct push_mail_identity ID = {
    .from = "no-reply@clinic.example",
    .domain = "clinic.example",
    .app_link = "https://clinic.example/app",
};

static const int64_t NOW = 1796290000123; /* 2026-12-03T09:26:40.123Z, a Thursday */

static char *compose(const struct push_job *job, struct buf *b) {
    buf_init(b);
    push_mail_compose(&ID, job, NOW, b);
    return (char *)b->data;
}

static void header_value(const char *msg, const char *name, char *out, size_t size) {
    out[0] = 0;
    size_t n = strlen(name);
    for (const char *p = msg; p != NULL && *p != '\r'; p = strstr(p, "\r\n") + 2) {
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *end = strstr(p, "\r\n");
            snprintf(out, size, "%.*s", (int)(end - p - n - 2), p + n + 2);
            return;
        }
    }
}

static void test_mail_headers_and_fixed_text(void **state) {
    struct push_job job = {.id = {1, 2, 3, 4},
                           .channel = PUSH_CHANNEL_EMAIL,
                           .kind = PUSH_KIND_NEW_MESSAGE,
                           .attempt = 1,
                           .to = {.email = "pat@example.org"}};
    struct buf b;
    const char *m = compose(&job, &b);
    const char *want_head = "Date: Thu, 03 Dec 2026 09:26:40 +0000\r\n"
                            "From: no-reply@clinic.example\r\n"
                            "To: pat@example.org\r\n";
    assert_memory_equal(m, want_head, strlen(want_head));
    char v[128];
    header_value(m, "Message-ID", v, sizeof v);
    assert_int_equal(strlen(v), 1 + 32 + 1 + strlen("clinic.example") + 1);
    assert_true(v[0] == '<' && strcmp(v + 33, "@clinic.example>") == 0);
    header_value(m, "Subject", v, sizeof v);
    assert_string_equal(v, "You have a new secure message");
    header_value(m, "Auto-Submitted", v, sizeof v);
    assert_string_equal(v, "auto-generated");
    header_value(m, "Content-Type", v, sizeof v);
    assert_string_equal(v, "text/plain; charset=UTF-8");
    header_value(m, "MIME-Version", v, sizeof v);
    assert_string_equal(v, "1.0");
    const char *body = strstr(m, "\r\n\r\n") + 4;
    assert_string_equal(body,
                        "You have a new secure message in CareChat.\r\n\r\n"
                        "Open the app or sign in to read it:\r\n"
                        "https://clinic.example/app\r\n\r\n"
                        "This message was sent automatically. Please do not reply to it.\r\n");
    /* nine header lines, CRLF only */
    int lines = 0;
    for (const char *p = m; p < body - 2; p = strstr(p, "\r\n") + 2)
        lines++;
    assert_int_equal(lines, 9);
    for (size_t i = 0; i < b.len; i++) {
        if (m[i] == '\n')
            assert_int_equal(m[i - 1], '\r');
        if (m[i] == '\r')
            assert_int_equal(m[i + 1], '\n');
    }
    buf_cleanup(&b);
}

static void test_mail_message_id_stable_per_job(void **state) {
    struct push_job a = {.id = {9, 9, 9},
                         .channel = PUSH_CHANNEL_EMAIL,
                         .kind = PUSH_KIND_NEW_MESSAGE,
                         .attempt = 1,
                         .to = {.email = "pat@example.org"}};
    struct push_job retry = a, other = a;
    retry.attempt = 4;
    other.id[15] = 1;
    struct buf b1, b2, b3;
    char v1[128], v2[128], v3[128];
    header_value(compose(&a, &b1), "Message-ID", v1, sizeof v1);
    header_value(compose(&retry, &b2), "Message-ID", v2, sizeof v2);
    header_value(compose(&other, &b3), "Message-ID", v3, sizeof v3);
    assert_string_equal(v1, v2);
    assert_string_not_equal(v1, v3);
    assert_null(strstr(v1, "090909")); /* opaque, not the id in hex */
    buf_cleanup(&b1);
    buf_cleanup(&b2);
    buf_cleanup(&b3);
}

static void test_mail_codes_only_where_they_belong(void **state) {
    struct push_job inv = {.channel = PUSH_CHANNEL_EMAIL,
                           .kind = PUSH_KIND_INVITATION,
                           .attempt = 1,
                           .to = {.email = "new@example.org"},
                           .code = "K7QX-2M9P",
                           .link = "https://clinic.example/join"};
    assert_int_equal(push_job_check(&inv), 0);
    struct buf b;
    const char *m = compose(&inv, &b);
    const char *body = strstr(m, "\r\n\r\n") + 4;
    assert_string_equal(body,
                        "You have been invited to CareChat, a secure messaging service.\r\n\r\n"
                        "Your invitation code: K7QX-2M9P\r\n\r\n"
                        "To accept the invitation, open:\r\n"
                        "https://clinic.example/join\r\n\r\n"
                        "This message was sent automatically. Please do not reply to it.\r\n");
    buf_cleanup(&b);
    struct push_job breach = {.channel = PUSH_CHANNEL_EMAIL,
                              .kind = PUSH_KIND_BREACH_NOTICE,
                              .attempt = 1,
                              .to = {.email = "pat@example.org"}};
    m = compose(&breach, &b);
    assert_null(strstr(m, "code"));
    assert_non_null(strstr(m, "https://clinic.example/app\r\n"));
    buf_cleanup(&b);
}

static void test_mail_injection_never_reaches_composition(void **state) {
    /* push_job_check() is the gate before composition: anything that could
     * add a header line is refused there */
    static const char *const evil[] = {"pat@example.org\r\nBcc: spy@evil.example",
                                       "pat@example.org\nBcc: spy@evil.example",
                                       "pat@example.org\rX: y", "pat@example.org>\r\n"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        struct push_job j = {.channel = PUSH_CHANNEL_EMAIL,
                             .kind = PUSH_KIND_NEW_MESSAGE,
                             .attempt = 1,
                             .to = {.email = evil[i]}};
        assert_int_not_equal(push_job_check(&j), 0);
    }
    struct push_job j = {.channel = PUSH_CHANNEL_EMAIL,
                         .kind = PUSH_KIND_INVITATION,
                         .attempt = 1,
                         .to = {.email = "pat@example.org"},
                         .code = "A\r\nBcc: x@y.z"};
    assert_int_not_equal(push_job_check(&j), 0);
    j.code = "AB12";
    j.link = "https://x.example/\r\nBcc: x@y.z";
    assert_int_not_equal(push_job_check(&j), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail_headers_and_fixed_text),
        cmocka_unit_test(test_mail_message_id_stable_per_job),
        cmocka_unit_test(test_mail_codes_only_where_they_belong),
        cmocka_unit_test(test_mail_injection_never_reaches_composition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
