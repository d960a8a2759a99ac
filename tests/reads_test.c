/*
 * tests/reads_test.c: reads of patient data are metered and their access
 * records coalesced (hardening finding 5), over the real carechatd: a loop of
 * the same History is answered under a few durable records whose `repeated`
 * counts add up to every read, and past --read-burst reads are refused
 * RATE_LIMITED with the wait, so a read flood cannot fill the disk with
 * synced audit records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/status.h"
#include "tests/fixture.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define PASSWORD "the right password"
#define READS 40
#define BURST "50"

static struct harness *g_h;

static Carechat__V1__Frame *history(struct rawc *c, const uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__History hi;
    carechat__v1__frame__init(&f);
    carechat__v1__history__init(&hi);
    hi.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    f.body_case = CARECHAT__V1__FRAME__BODY_HISTORY;
    f.history = &hi;
    return rawc_rpc(c, &f);
}

/* The message.read records of `actor`: how many, and the reads they stand
 * for (a record its `repeated` reads when it has repeats, else one). */
static void reads_recorded(struct rawc *admin, const uint8_t actor[16], size_t *records,
                           size_t *reads) {
    Carechat__V1__Frame f;
    Carechat__V1__QueryAudit q;
    carechat__v1__frame__init(&f);
    carechat__v1__query_audit__init(&q);
    q.actor_account_id = (ProtobufCBinaryData){16, (uint8_t *)actor};
    q.limit = 500;
    f.body_case = CARECHAT__V1__FRAME__BODY_QUERY_AUDIT;
    f.query_audit = &q;
    Carechat__V1__Frame *r = rawc_rpc(admin, &f);
    raw_expect_status(r, STATUS_OK);
    *records = *reads = 0;
    for (size_t i = 0; i < r->response->audit_page->n_records; i++) {
        const Carechat__V1__AuditRecord *a = r->response->audit_page->records[i];
        if (strcmp(a->action, "message.read") != 0)
            continue;
        (*records)++;
        *reads += a->repeated ? a->repeated : 1;
    }
    proto_free(r);
}

static void test_reads_coalesced_and_metered(void **state) {
    (void)state;
    struct raw_device root_dev;
    raw_device_make(&root_dev);
    struct rawc *root =
        rawc_open_login(g_h, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, &root_dev, NULL);
    struct rawc_user doc;
    rawc_make_user(g_h, root, CARECHAT__V1__ROLE__PROVIDER, PASSWORD, &doc);
    struct rawc *d = rawc_open_login(g_h, doc.email, PASSWORD, &doc.dev[0], NULL);
    struct rawc_user pat;
    rawc_make_user(g_h, d, CARECHAT__V1__ROLE__PATIENT, PASSWORD, &pat);
    rawc_free(d);
    struct rawc *p = rawc_open_login(g_h, pat.email, PASSWORD, &pat.dev[0], NULL);
    Carechat__V1__Frame f;
    Carechat__V1__CreateDirect cd;
    carechat__v1__frame__init(&f);
    carechat__v1__create_direct__init(&cd);
    cd.peer_account_id = (ProtobufCBinaryData){16, doc.account};
    f.body_case = CARECHAT__V1__FRAME__BODY_CREATE_DIRECT;
    f.create_direct = &cd;
    Carechat__V1__Frame *r = rawc_rpc(p, &f);
    raw_expect_status(r, STATUS_OK);
    uint8_t conv[16];
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);

    /* The same History in a loop: every read answered. */
    for (int i = 0; i < READS; i++) {
        r = history(p, conv);
        raw_expect_status(r, STATUS_OK);
        proto_free(r);
    }
    /* Once the windows (1 s) have ended and been written: fewer records than
     * reads, and together they stand for every read. */
    size_t records = 0, reads = 0;
    for (int i = 0; i < 50 && reads < READS; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000000L}, NULL);
        reads_recorded(root, pat.account, &records, &reads);
    }
    assert_int_equal(reads, READS);
    assert_true(records < READS / 2);

    /* Past the burst (50, refilled over a minute): refused with the time to
     * wait. 30 more take the 10 left and the few refilled meanwhile. */
    int limited = 0;
    uint32_t after = 0;
    for (int i = 0; i < 30; i++) {
        r = history(p, conv);
        if (r->response->status == CARECHAT__V1__STATUS__RATE_LIMITED) {
            limited++;
            after = r->response->retry_after_s;
        } else
            raw_expect_status(r, STATUS_OK);
        proto_free(r);
    }
    assert_true(limited >= 10);
    assert_true(after >= 1);
    rawc_free(p);
    rawc_free(root);
}

static int group_setup(void **state) {
    (void)state;
    const char *args[] = {
        "--read-burst", BURST, "--read-window", "60", "--audit-coalesce", "1", NULL};
    return fixture_start_bootstrapped(args, &g_h);
}

static int group_teardown(void **state) {
    (void)state;
    return fixture_stop(g_h) == 0 ? 0 : -1;
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_coalesced_and_metered),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
