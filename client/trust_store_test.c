/*
 * client/trust_store_test.c: the device's durable trust state in a real
 * profile directory under $TEST_TMPDIR: the replay ledger (client/ledger.h)
 * and the pinned device lists (client/pins.h), each across a reopen, as a
 * restarted client sees them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/id.h"
#include "base/status.h"
#include "client/histkeys.h"
#include "client/ledger.h"
#include "client/pins.h"

static void fresh_dir(const char *name, char *out, size_t n) {
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(out, n, "%s/%s-%d", tmp != NULL ? tmp : "/tmp", name, (int)getpid());
    assert_int_equal(mkdir(out, 0700), 0);
}

/* A replay (the same client_msg_id, or the same counter, under another
 * message id) is recognised after a reopen; a redelivery is the same; a
 * skipped counter is a gap; a torn last record is ignored. */
static void test_ledger_replay_survives_reopen(void **state) {
    (void)state;
    char dir[400];
    fresh_dir("ledger", dir, sizeof dir);
    struct ledger *l = NULL;
    assert_int_equal(ledger_open(dir, &l), 0);
    const struct id conv = id_new(), dev = id_new(), cmid = id_new(), mid = id_new();
    bool gap = true;
    assert_int_equal(ledger_check(l, &conv, &dev, &cmid, 1, &mid, &gap), LEDGER_NEW);
    assert_false(gap);
    assert_int_equal(ledger_record(l, &conv, &dev, &cmid, &mid, 1), 0);
    ledger_free(l);

    l = NULL;
    assert_int_equal(ledger_open(dir, &l), 0);
    const struct id other_mid = id_new(), other_cmid = id_new();
    assert_int_equal(ledger_check(l, &conv, &dev, &cmid, 1, &mid, &gap), LEDGER_SAME);
    assert_int_equal(ledger_check(l, &conv, &dev, &cmid, 1, &other_mid, &gap), LEDGER_REPLAY);
    assert_int_equal(ledger_check(l, &conv, &dev, &other_cmid, 1, &other_mid, &gap), LEDGER_REPLAY);
    assert_int_equal(ledger_check(l, &conv, &dev, &other_cmid, 2, &other_mid, &gap), LEDGER_NEW);
    assert_false(gap);
    assert_int_equal(ledger_check(l, &conv, &dev, &other_cmid, 5, &other_mid, &gap), LEDGER_NEW);
    assert_true(gap);
    /* another sender device, or conversation: its own numbers */
    const struct id dev2 = id_new();
    assert_int_equal(ledger_check(l, &conv, &dev2, &cmid, 1, &other_mid, &gap), LEDGER_NEW);
    /* sending: a counter above the highest, reserved durably, the same on a resend */
    uint64_t c1 = 0, c2 = 0;
    const struct id mine = id_new(), mine_cmid = id_new();
    assert_int_equal(ledger_reserve(l, &conv, &mine, &mine_cmid, &c1), 0);
    assert_int_equal(c1, 1);
    assert_int_equal(ledger_reserve(l, &conv, &mine, &mine_cmid, &c2), 0);
    assert_int_equal(c2, 1);
    ledger_free(l);

    /* a torn last record (a crash mid-append) */
    char path[512];
    snprintf(path, sizeof path, "%s/" LEDGER_FILE, dir);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputs("torn", f);
    fclose(f);
    l = NULL;
    assert_int_equal(ledger_open(dir, &l), 0);
    assert_int_equal(ledger_check(l, &conv, &dev, &cmid, 1, &other_mid, &gap), LEDGER_REPLAY);
    const struct id cmid3 = id_new();
    uint64_t c3 = 0;
    assert_int_equal(ledger_reserve(l, &conv, &mine, &cmid3, &c3), 0);
    assert_int_equal(c3, 2);
    ledger_free(l);
    l = NULL;
    assert_int_equal(ledger_open(dir, &l), 0);
    assert_int_equal(ledger_reserve(l, &conv, &mine, &cmid3, &c3), 0);
    assert_int_equal(c3, 2);
    ledger_free(l);
}

static struct pins_list list_of(const struct id *account, uint64_t version, uint8_t hash_byte,
                                const struct statement_device *devs, size_t n) {
    struct pins_list l;
    memset(&l, 0, sizeof l);
    l.account = *account;
    l.version = version;
    memset(l.hash, hash_byte, sizeof l.hash);
    l.n = n;
    memcpy(l.devs, devs, n * sizeof *devs);
    return l;
}

/* The verdicts of client/pins.h, and pins that survive a reopen. */
static void test_pins_verdicts_survive_reopen(void **state) {
    (void)state;
    char dir[400];
    fresh_dir("pins", dir, sizeof dir);
    struct pins *p = NULL;
    assert_int_equal(pins_load(dir, &p), 0);
    const struct id account = id_new();
    struct statement_device d[3];
    for (int i = 0; i < 3; i++) {
        d[i].device_id = id_new();
        memset(d[i].identity_key, 0x10 + i, sizeof d[i].identity_key);
    }
    struct pins_list v1 = list_of(&account, 1, 0xa1, d, 1);
    assert_int_equal(pins_judge(p, &v1, &d[0].device_id, d[0].identity_key, NULL), PINS_FIRST_USE);
    assert_int_equal(pins_accept(p, &v1), 0);
    assert_int_equal(pins_set_verified(p, &account, true), 0);
    assert_int_equal(pins_save(dir, p), 0);
    pins_free(p);

    p = NULL;
    assert_int_equal(pins_load(dir, &p), 0);
    assert_true(pins_find(p, &account)->verified);
    assert_int_equal(pins_judge(p, &v1, &d[0].device_id, d[0].identity_key, NULL), PINS_SAME);
    struct pins_list v2 = list_of(&account, 2, 0xa2, d, 2);
    /* signed by the pinned device, naming the pin's hash: the successor */
    assert_int_equal(pins_judge(p, &v2, &d[0].device_id, d[0].identity_key, v1.hash), PINS_NEXT);
    /* signed by the new device itself (a ghost), or naming another hash */
    assert_int_equal(pins_judge(p, &v2, &d[1].device_id, d[1].identity_key, v1.hash), PINS_CHANGED);
    assert_int_equal(pins_judge(p, &v2, &d[0].device_id, d[0].identity_key, v2.hash), PINS_CHANGED);
    /* a later version (this device was away for two changes): vouched for
     * by a pinned device with its pinned key, else changed */
    struct pins_list v3 = list_of(&account, 3, 0xa3, d, 2);
    assert_int_equal(pins_judge(p, &v3, &d[0].device_id, d[0].identity_key, v2.hash), PINS_NEXT);
    assert_int_equal(pins_judge(p, &v3, &d[1].device_id, d[1].identity_key, v2.hash), PINS_CHANGED);
    assert_int_equal(pins_judge(p, &v3, &d[0].device_id, d[2].identity_key, v2.hash), PINS_CHANGED);
    /* the same version with another hash: a fork */
    struct pins_list fork = list_of(&account, 1, 0xf1, d, 1);
    assert_int_equal(pins_judge(p, &fork, &d[0].device_id, d[0].identity_key, NULL), PINS_CHANGED);
    assert_int_equal(pins_accept(p, &v2), 0);
    assert_false(pins_find(p, &account)->verified); /* the devices changed */
    /* a change kept pending until confirmed, across a reopen */
    struct pins_list ghost = list_of(&account, 3, 0xb3, &d[2], 1);
    assert_int_equal(pins_set_pending(p, &ghost), 0);
    assert_int_equal(pins_save(dir, p), 0);
    pins_free(p);

    p = NULL;
    assert_int_equal(pins_load(dir, &p), 0);
    /* older than the pin: a rollback */
    assert_int_equal(pins_judge(p, &v1, &d[0].device_id, d[0].identity_key, NULL), PINS_ROLLBACK);
    assert_non_null(pins_pending(p, &account));
    assert_int_equal(pins_find(p, &account)->version, 2);
    assert_int_equal(pins_confirm(p, &account), 0);
    assert_null(pins_pending(p, &account));
    assert_int_equal(pins_find(p, &account)->version, 3);
    assert_memory_equal(pins_find(p, &account)->devs[0].device_id.b, d[2].device_id.b, ID_LEN);
    assert_int_equal(pins_confirm(p, &account), STATUS_NOT_FOUND);
    pins_free(p);
}

/* The history keys a key backup keeps: each message once (the first record
 * wins), found only under its conversation, kept across a reopen in a 0600
 * file, a torn last record ignored and a record of an unknown kind refused;
 * gone with histkeys_remove(). Hundreds of records exercise the index's
 * growth. */
static void test_histkeys_survive_reopen(void **state) {
    (void)state;
    char dir[400], path[512];
    fresh_dir("histkeys", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, HISTKEYS_FILE);
    struct histkeys *h = NULL;
    assert_int_equal(histkeys_open(dir, &h), 0);
    assert_int_equal(histkeys_count(h), 0);
    enum { N = 700 };
    struct histkeys_record *recs = calloc(N + 1, sizeof *recs);
    for (size_t i = 0; i < N; i++) {
        recs[i].kind = i % 2 ? HISTKEYS_LEARNED : HISTKEYS_RESTORED;
        recs[i].message_id = id_new();
        recs[i].conversation_id = id_new();
        memset(recs[i].key, (int)(i & 0xff), HISTKEYS_KEY_LEN);
    }
    recs[N] = recs[3]; /* the same message again in one batch */
    recs[N].key[0] ^= 1;
    size_t added = 0;
    assert_int_equal(histkeys_add(h, recs, N + 1, &added), 0);
    assert_int_equal(added, N);
    assert_int_equal(histkeys_add(h, recs, 10, &added), 0);
    assert_int_equal(added, 0);
    histkeys_free(h);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, N * HISTKEYS_RECORD_LEN);

    /* A torn record at the end is left out, then overwritten. */
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite("L12345", 1, 6, f), 6);
    fclose(f);
    h = NULL;
    assert_int_equal(histkeys_open(dir, &h), 0);
    assert_int_equal(histkeys_count(h), N);
    uint8_t key[HISTKEYS_KEY_LEN];
    for (size_t i = 0; i < N; i++) {
        assert_true(histkeys_find(h, &recs[i].message_id, &recs[i].conversation_id, key));
        assert_memory_equal(key, recs[i].key, HISTKEYS_KEY_LEN);
        assert_int_equal(histkeys_at(h, i)->kind, recs[i].kind);
    }
    assert_false(histkeys_find(h, &recs[0].message_id, &recs[1].conversation_id, key));
    const struct id unknown = id_new();
    assert_false(histkeys_find(h, &unknown, &recs[0].conversation_id, key));
    struct histkeys_record one = recs[0];
    one.message_id = id_new();
    assert_int_equal(histkeys_add(h, &one, 1, &added), 0);
    histkeys_free(h);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, (N + 1) * HISTKEYS_RECORD_LEN);

    /* An unknown kind is not a store of ours. */
    f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fwrite("X", 1, 1, f), 1);
    fclose(f);
    h = NULL;
    assert_int_equal(histkeys_open(dir, &h), STATUS_CORRUPT);
    assert_int_equal(histkeys_remove(dir), 0);
    assert_int_equal(histkeys_remove(dir), 0);
    assert_int_equal(histkeys_open(dir, &h), 0);
    assert_int_equal(histkeys_count(h), 0);
    histkeys_free(h);
    free(recs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histkeys_survive_reopen),
        cmocka_unit_test(test_ledger_replay_survives_reopen),
        cmocka_unit_test(test_pins_verdicts_survive_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
