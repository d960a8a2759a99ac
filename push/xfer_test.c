/* push/xfer_test.c: the verdicts shared by the HTTP channels, the causes of
 * transfers that got no answer, and job copies that outlive the caller's
 * strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/clock.h"
#include "push/xfer.h"

static void test_xfer_http_verdicts(void **state) {
    static const struct {
        long status;
        enum push_outcome outcome;
        enum push_cause cause;
    } rows[] = {
        {200, PUSH_OUTCOME_DELIVERED, PUSH_CAUSE_NONE},
        {201, PUSH_OUTCOME_DELIVERED, PUSH_CAUSE_NONE},
        {301, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_REDIRECT},
        {302, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_REDIRECT},
        {400, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_REJECTED},
        {413, PUSH_OUTCOME_PERMANENT_FAILURE, PUSH_CAUSE_REJECTED},
        {429, PUSH_OUTCOME_RETRY, PUSH_CAUSE_THROTTLED},
        {500, PUSH_OUTCOME_RETRY, PUSH_CAUSE_PROVIDER_ERROR},
        {503, PUSH_OUTCOME_RETRY, PUSH_CAUSE_PROVIDER_ERROR},
        {0, PUSH_OUTCOME_RETRY, PUSH_CAUSE_PROTOCOL},
        {101, PUSH_OUTCOME_RETRY, PUSH_CAUSE_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum push_outcome o;
        enum push_cause c;
        push_xfer_http_verdict(rows[i].status, &o, &c);
        assert_int_equal(o, rows[i].outcome);
        assert_int_equal(c, rows[i].cause);
    }
}

static void test_xfer_curl_causes(void **state) {
    struct push_xfer x = {0};
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_COULDNT_RESOLVE_HOST), PUSH_CAUSE_DNS);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_COULDNT_CONNECT), PUSH_CAUSE_CONNECT);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_OPERATION_TIMEDOUT), PUSH_CAUSE_TIMEOUT);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_PEER_FAILED_VERIFICATION), PUSH_CAUSE_TLS);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_USE_SSL_FAILED), PUSH_CAUSE_TLS);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_LOGIN_DENIED), PUSH_CAUSE_AUTH);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_WEIRD_SERVER_REPLY), PUSH_CAUSE_PROTOCOL);
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_FILESIZE_EXCEEDED), PUSH_CAUSE_TOO_LARGE);
    x.response_too_large = true; /* our write callback stopped it */
    assert_int_equal(push_xfer_curl_cause(&x, CURLE_WRITE_ERROR), PUSH_CAUSE_TOO_LARGE);
}

static void test_xfer_job_copy_outlives_caller(void **state) {
    char email[] = "pat@example.org", code[] = "AB12";
    struct push_job j = {.id = {7},
                         .channel = PUSH_CHANNEL_EMAIL,
                         .kind = PUSH_KIND_PASSWORD_RESET,
                         .attempt = 2,
                         .to = {.email = email},
                         .code = code};
    struct push_xfer *x = push_xfer_new(&j, clock_monotonic_ms());
    memset(email, 'x', sizeof email - 1);
    memset(code, 'y', sizeof code - 1);
    assert_string_equal(x->job.to.email, "pat@example.org");
    assert_string_equal(x->job.code, "AB12");
    assert_null(x->job.link);
    assert_null(x->job.to.apns_token);
    assert_int_equal(x->job.attempt, 2);
    assert_int_equal(x->job.id[0], 7);
    push_xfer_free(x);
    push_xfer_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xfer_http_verdicts),
        cmocka_unit_test(test_xfer_curl_causes),
        cmocka_unit_test(test_xfer_job_copy_outlives_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
