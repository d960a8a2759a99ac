/* server/rules_test.c: emails, dates and ages, roles, and the signed layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/status.h"
#include "server/rules.h"
#include "storage/keys.h"

static void test_rules_normalize_email(void **state) {
    char out[RULES_EMAIL_MAX + 1];
    assert_int_equal(rules_normalize_email("  Anna.B@Clinic.EXAMPLE \n", out), 0);
    assert_string_equal(out, "anna.b@clinic.example");
    assert_int_equal(rules_normalize_email("", out), STATUS_BAD_REQUEST);
    assert_int_equal(rules_normalize_email("no-at-sign", out), STATUS_BAD_REQUEST);
    assert_int_equal(rules_normalize_email("@x", out), STATUS_BAD_REQUEST);
    assert_int_equal(rules_normalize_email("x@", out), STATUS_BAD_REQUEST);
    assert_int_equal(rules_normalize_email("a b@x", out), STATUS_BAD_REQUEST);
    char long_email[300];
    memset(long_email, 'a', sizeof long_email);
    memcpy(long_email + 250, "@x.yz", 6);
    assert_int_equal(rules_normalize_email(long_email, out), STATUS_BAD_REQUEST);
}

/* Milliseconds at 12:00 UTC of a date. */
static int64_t at(int y, int m, int d) {
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 12};
    return (int64_t)timegm(&tm) * 1000;
}

static void test_rules_dates_and_age(void **state) {
    int y, m, d;
    assert_int_equal(rules_parse_date("2012-02-29", &y, &m, &d), 0);
    assert_int_equal(y * 10000 + m * 100 + d, 20120229);
    assert_int_equal(rules_parse_date("2013-02-29", &y, &m, &d), STATUS_BAD_REQUEST);
    assert_int_equal(rules_parse_date("2013-13-01", &y, &m, &d), STATUS_BAD_REQUEST);
    assert_int_equal(rules_parse_date("2013-1-01", &y, &m, &d), STATUS_BAD_REQUEST);
    assert_int_equal(rules_parse_date("1899-12-31", &y, &m, &d), STATUS_BAD_REQUEST);
    /* The 13th birthday is the first day of age 13. */
    assert_int_equal(rules_age_at(2010, 6, 15, at(2023, 6, 14)), 12);
    assert_int_equal(rules_age_at(2010, 6, 15, at(2023, 6, 15)), 13);
    assert_int_equal(rules_age_at(2010, 6, 15, at(2009, 1, 1)), -2);
}

static void test_rules_key_signature(void **state) {
    uint8_t pk[32], sk[64], ek[32], sig[64];
    crypto_sign_keypair(pk, sk);
    randombytes_buf(ek, sizeof ek);
    uint8_t msg[26 + 32 + 12];
    memcpy(msg, "carechat.v1 encryption key", 26);
    memcpy(msg + 26, ek, 32);
    key_put_u32(msg + 58, 7);
    key_put_u64(msg + 62, 123456789);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    assert_int_equal(rules_verify_key_signature(pk, ek, 7, 123456789, sig), 0);
    assert_int_equal(rules_verify_key_signature(pk, ek, 8, 123456789, sig), STATUS_BAD_REQUEST);
    assert_int_equal(rules_verify_key_signature(pk, ek, 7, 123456788, sig), STATUS_BAD_REQUEST);
    ek[0] ^= 1;
    assert_int_equal(rules_verify_key_signature(pk, ek, 7, 123456789, sig), STATUS_BAD_REQUEST);
}

static void test_rules_device_list_signature(void **state) {
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    struct id account;
    memset(account.b, 0xaa, ID_LEN);
    struct rec_list_item items[2];
    memset(items[0].device_id.b, 0x20, ID_LEN);
    memset(items[1].device_id.b, 0x10, ID_LEN);
    memcpy(items[0].identity_key, pk, 32);
    memset(items[1].identity_key, 5, 32);
    /* The signed bytes by hand: entries sorted by device id (0x10.. first),
     * then (version 2 on) the previous list's hash. */
    uint8_t prev[32];
    memset(prev, 0x77, sizeof prev);
    uint8_t msg[23 + 16 + 8 + 4 + 96 + 32];
    memcpy(msg, "carechat.v1 device list", 23);
    memcpy(msg + 23, account.b, 16);
    key_put_u64(msg + 39, 4);
    key_put_u32(msg + 47, 2);
    memcpy(msg + 51, items[1].device_id.b, 16);
    memcpy(msg + 67, items[1].identity_key, 32);
    memcpy(msg + 99, items[0].device_id.b, 16);
    memcpy(msg + 115, items[0].identity_key, 32);
    memcpy(msg + 147, prev, 32);
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    assert_int_equal(rules_verify_device_list(&account, 4, items, 2, prev, pk, sig), 0);
    assert_int_equal(rules_verify_device_list(&account, 4, items, 2, NULL, pk, sig),
                     STATUS_BAD_REQUEST);
    assert_int_equal(rules_verify_device_list(&account, 5, items, 2, prev, pk, sig),
                     STATUS_BAD_REQUEST);
    assert_int_equal(rules_verify_device_list(&account, 4, items, 1, prev, pk, sig),
                     STATUS_BAD_REQUEST);
    items[1].device_id = items[0].device_id;
    assert_int_equal(rules_verify_device_list(&account, 4, items, 2, prev, pk, sig),
                     STATUS_BAD_REQUEST);
    struct rec_list_item many[REC_LIST_MAX + 1];
    memset(many, 0, sizeof many);
    assert_int_equal(rules_verify_device_list(&account, 4, many, REC_LIST_MAX + 1, prev, pk, sig),
                     STATUS_TOO_LARGE);
}

/* The chain rule: the next version, the stored list's hash, a signer of the
 * stored list; the first list and the one after a reset are signed by a
 * device of their own. */
static void test_rules_device_list_chain(void **state) {
    struct rec_list_item old[1], next[2];
    memset(old, 0, sizeof old);
    memset(next, 0, sizeof next);
    memset(old[0].device_id.b, 1, ID_LEN);
    memset(old[0].identity_key, 0x11, 32);
    next[0] = old[0];
    memset(next[1].device_id.b, 2, ID_LEN);
    memset(next[1].identity_key, 0x22, 32);
    uint8_t h[32];
    memset(h, 0x33, 32);
    const uint8_t *key = NULL;
    /* signed by the old device: accepted, with its stored key */
    assert_int_equal(
        rules_device_list_follows(3, h, old, 1, false, 4, h, 32, &old[0].device_id, next, 2, &key),
        0);
    assert_ptr_equal(key, old[0].identity_key);
    /* signed by the new device itself (a ghost approving itself): refused */
    assert_int_equal(
        rules_device_list_follows(3, h, old, 1, false, 4, h, 32, &next[1].device_id, next, 2, &key),
        STATUS_FORBIDDEN);
    /* ... unless an administrator reset the list */
    assert_int_equal(
        rules_device_list_follows(3, h, old, 1, true, 4, h, 32, &next[1].device_id, next, 2, &key),
        0);
    /* another version, another previous hash, none: CONFLICT */
    assert_int_equal(
        rules_device_list_follows(3, h, old, 1, false, 5, h, 32, &old[0].device_id, next, 2, &key),
        STATUS_CONFLICT);
    uint8_t other[32];
    memset(other, 0x34, 32);
    assert_int_equal(rules_device_list_follows(3, h, old, 1, false, 4, other, 32, &old[0].device_id,
                                               next, 2, &key),
                     STATUS_CONFLICT);
    assert_int_equal(rules_device_list_follows(3, h, old, 1, false, 4, NULL, 0, &old[0].device_id,
                                               next, 2, &key),
                     STATUS_CONFLICT);
    /* the first list: no previous hash, self-signed */
    assert_int_equal(rules_device_list_follows(0, h, NULL, 0, false, 1, NULL, 0, &next[1].device_id,
                                               next, 2, &key),
                     0);
}

static void test_rules_invite_and_visibility(void **state) {
    assert_true(rules_may_invite(REC_ROLE_PROVIDER, REC_ROLE_PATIENT));
    assert_false(rules_may_invite(REC_ROLE_PROVIDER, REC_ROLE_PROVIDER));
    assert_false(rules_may_invite(REC_ROLE_PATIENT, REC_ROLE_PATIENT));
    assert_false(rules_may_invite(REC_ROLE_PATIENT, REC_ROLE_PROVIDER));
    assert_true(rules_may_invite(REC_ROLE_ADMIN, REC_ROLE_ADMIN));
    assert_false(rules_may_invite(REC_ROLE_ADMIN, REC_ROLE_SYSADMIN));
    assert_true(rules_may_invite(REC_ROLE_SYSADMIN, REC_ROLE_SYSADMIN));
    assert_false(rules_may_invite(REC_ROLE_SYSADMIN, 0));
    assert_true(rules_may_see(REC_ROLE_PATIENT, REC_ROLE_PROVIDER, false));
    assert_false(rules_may_see(REC_ROLE_PATIENT, REC_ROLE_PATIENT, false));
    assert_true(rules_may_see(REC_ROLE_PATIENT, REC_ROLE_PATIENT, true));
    assert_true(rules_may_see(REC_ROLE_PROVIDER, REC_ROLE_PATIENT, false));
}

static void test_rules_channels_and_deactivation(void **state) {
    /* A provider creates a channel only with a care relation; an admin always. */
    assert_true(rules_may_create_channel(REC_ROLE_PROVIDER, true));
    assert_false(rules_may_create_channel(REC_ROLE_PROVIDER, false));
    assert_true(rules_may_create_channel(REC_ROLE_ADMIN, false));
    assert_false(rules_may_create_channel(REC_ROLE_SYSADMIN, true));
    assert_false(rules_may_create_channel(REC_ROLE_PATIENT, true));
    /* A provider deactivates only their own patients. */
    assert_true(rules_may_deactivate(REC_ROLE_PROVIDER, REC_ROLE_PATIENT, true));
    assert_false(rules_may_deactivate(REC_ROLE_PROVIDER, REC_ROLE_PATIENT, false));
    assert_false(rules_may_deactivate(REC_ROLE_PROVIDER, REC_ROLE_PROVIDER, true));
    assert_true(rules_may_deactivate(REC_ROLE_ADMIN, REC_ROLE_PROVIDER, false));
    assert_false(rules_may_deactivate(REC_ROLE_ADMIN, REC_ROLE_ADMIN, false));
}

/* The lifecycle's windows, one step at a time, and a hold that moves the
 * deadlines still ahead on by the time it held. */
static void test_rules_lifecycle_windows_and_hold(void **state) {
    (void)state;
    const int64_t day = 24LL * 3600 * 1000, t0 = 1800000000000LL;
    struct rec_lifecycle l = {0};
    rules_lifecycle_start(&l, t0, 0, 0); /* the policy's defaults */
    assert_int_equal(l.state, REC_LC_REVIEW);
    assert_true(l.restricted_at == t0 + 30 * day);
    assert_true(l.purge_at == t0 + 30 * day + 365 * day);
    assert_int_equal(rules_lifecycle_due(&l, t0 + 30 * day - 1), REC_LC_REVIEW);
    assert_int_equal(rules_lifecycle_due(&l, t0 + 30 * day), REC_LC_RESTRICTED);
    /* One step at a time, even long after both deadlines. */
    assert_int_equal(rules_lifecycle_due(&l, t0 + 1000 * day), REC_LC_RESTRICTED);
    l.state = REC_LC_RESTRICTED;
    assert_int_equal(rules_lifecycle_due(&l, l.purge_at - 1), REC_LC_RESTRICTED);
    assert_int_equal(rules_lifecycle_due(&l, l.purge_at), REC_LC_PURGED);

    /* Configured windows. */
    rules_lifecycle_start(&l, t0, 7 * day, 90 * day);
    assert_true(l.restricted_at == t0 + 7 * day && l.purge_at == t0 + 97 * day);

    /* A hold from day 10 to day 50: nothing is due meanwhile; released, both
     * deadlines move on by 40 days. */
    rules_lifecycle_start(&l, t0, 0, 0);
    l.hold = true;
    l.hold_since = t0 + 10 * day;
    assert_int_equal(rules_lifecycle_due(&l, t0 + 5000 * day), REC_LC_REVIEW);
    rules_lifecycle_release(&l, t0 + 50 * day);
    assert_false(l.hold);
    assert_true(l.restricted_at == t0 + 70 * day);
    assert_true(l.purge_at == t0 + 70 * day + 365 * day);
    /* A hold placed before the deactivation counts from the deactivation. */
    struct rec_lifecycle h = {.state = REC_LC_ACTIVE, .hold = true, .hold_since = t0 - 100 * day};
    rules_lifecycle_start(&h, t0, 0, 0);
    assert_true(h.hold);
    rules_lifecycle_release(&h, t0 + 10 * day);
    assert_true(h.restricted_at == t0 + 40 * day);
    /* In RESTRICTED only the purge moves. */
    struct rec_lifecycle r;
    rules_lifecycle_start(&r, t0, 0, 0);
    r.state = REC_LC_RESTRICTED;
    r.hold = true;
    r.hold_since = t0 + 100 * day;
    int64_t restricted_at = r.restricted_at;
    rules_lifecycle_release(&r, t0 + 130 * day);
    assert_true(r.restricted_at == restricted_at);
    assert_true(r.purge_at == t0 + 395 * day + 30 * day);
}

/* Quiet hours: a notice due inside them waits for their end, in the
 * person's zone, across midnight too. */
static void test_rules_quiet_hours(void **state) {
    (void)state;
    const int64_t min = 60000, t0 = 1796256000000LL; /* 2026-12-03T00:00:00Z */
    /* None. */
    assert_true(rules_quiet_end(0, 0, 0, t0 + 5 * min) == t0 + 5 * min);
    /* 22:00-07:00 UTC: 23:30 waits until 07:00 the next day, 03:00 until
     * 07:00, 12:00 not at all, 07:00 exactly is already out. */
    assert_true(rules_quiet_end(1320, 420, 0, t0 + 1410 * min) == t0 + (1440 + 420) * min);
    assert_true(rules_quiet_end(1320, 420, 0, t0 + 180 * min) == t0 + 420 * min);
    assert_true(rules_quiet_end(1320, 420, 0, t0 + 720 * min) == t0 + 720 * min);
    assert_true(rules_quiet_end(1320, 420, 0, t0 + 420 * min) == t0 + 420 * min);
    assert_true(rules_quiet_end(1320, 420, 0, t0 + 1320 * min) == t0 + (1440 + 420) * min);
    /* 13:00-14:00 in UTC-5 (New York in winter) is 18:00-19:00 UTC. */
    assert_true(rules_quiet_end(780, 840, -300, t0 + 1110 * min) == t0 + 1140 * min);
    assert_true(rules_quiet_end(780, 840, -300, t0 + 780 * min) == t0 + 780 * min);
    /* Ranges. */
    assert_true(rules_quiet_valid(0, 1439, 840));
    assert_false(rules_quiet_valid(1440, 0, 0));
    assert_false(rules_quiet_valid(0, 0, -721));
    assert_false(rules_quiet_valid(0, 0, 841));
}

/* The key backup's index round-trips and refuses damage; a segment joins it
 * only as the next one within the caps, and a retry of a stored one is
 * recognised by its hash. */
static void test_rules_key_backup_index_and_put(void **state) {
    (void)state;
    struct rec_key_backup_segment segs[2] = {
        {.seq = 3, .size = 100, .created_at = 1700000000001, .sha256 = {1}},
        {.seq = 7, .size = 50, .created_at = 1700000000002, .sha256 = {2}},
    };
    segs[1].device.b[0] = 9;
    struct rec_key_backup b = {.next_seq = 8, .total_bytes = 150, .n = 2, .segments = segs};
    struct buf enc;
    buf_init(&enc);
    rec_key_backup_encode(&b, &enc);
    struct rec_key_backup d;
    assert_int_equal(rec_key_backup_decode(enc.data, enc.len, &d), 0);
    assert_true(d.next_seq == 8 && d.total_bytes == 150 && d.n == 2);
    assert_int_equal(d.n_retired, 0);
    assert_memory_equal(d.segments, segs, sizeof segs);
    rec_key_backup_cleanup(&d);
    assert_null(d.segments);
    /* Truncated, trailing bytes, a wrong total, an unknown format. */
    assert_int_equal(rec_key_backup_decode(enc.data, enc.len - 1, &d), STATUS_CORRUPT);
    buf_append_u8(&enc, 0);
    assert_int_equal(rec_key_backup_decode(enc.data, enc.len, &d), STATUS_CORRUPT);
    b.total_bytes = 151;
    buf_reset(&enc);
    rec_key_backup_encode(&b, &enc);
    assert_int_equal(rec_key_backup_decode(enc.data, enc.len, &d), STATUS_CORRUPT);
    b.total_bytes = 150;
    buf_reset(&enc);
    rec_key_backup_encode(&b, &enc);
    enc.data[0] = 2;
    assert_int_equal(rec_key_backup_decode(enc.data, enc.len, &d), STATUS_CORRUPT);
    buf_cleanup(&enc);

    const struct rules_key_backup_caps caps = {
        .segment_max = 1000, .max_segments = 3, .max_bytes = 1200};
    uint8_t h[REC_KEY_BACKUP_HASH_LEN] = {2};
    uint8_t kid[REC_KEY_BACKUP_KEY_ID_LEN] = {7}, other_kid[REC_KEY_BACKUP_KEY_ID_LEN] = {8},
            zero_kid[REC_KEY_BACKUP_KEY_ID_LEN] = {0};
    memcpy(b.key_id, kid, sizeof kid);
    bool stored = true;
    assert_int_equal(rules_key_backup_put(&b, &caps, 8, 1000, h, kid, &stored), 0);
    assert_false(stored);
    /* A retry of segment 7 with its bytes; with others it is a conflict. */
    assert_int_equal(rules_key_backup_put(&b, &caps, 7, 50, h, kid, &stored), 0);
    assert_true(stored);
    h[0] = 3;
    assert_int_equal(rules_key_backup_put(&b, &caps, 7, 50, h, kid, &stored), STATUS_CONFLICT);
    assert_int_equal(rules_key_backup_put(&b, &caps, 9, 10, h, kid, &stored), STATUS_CONFLICT);
    assert_int_equal(rules_key_backup_put(&b, &caps, 4, 10, h, kid, &stored), STATUS_CONFLICT);
    /* The size limit comes first, then the backup's caps. */
    assert_int_equal(rules_key_backup_put(&b, &caps, 9, 1001, h, kid, &stored), STATUS_TOO_LARGE);
    assert_int_equal(rules_key_backup_put(&b, &caps, 8, 0, h, kid, &stored), STATUS_BAD_REQUEST);
    assert_int_equal(rules_key_backup_put(&b, &caps, 0, 10, h, kid, &stored), STATUS_BAD_REQUEST);
    const struct rules_key_backup_caps bytes = {
        .segment_max = 1000, .max_segments = 3, .max_bytes = 1149};
    assert_int_equal(rules_key_backup_put(&b, &bytes, 8, 1000, h, kid, &stored), STATUS_TOO_LARGE);
    const struct rules_key_backup_caps count = {
        .segment_max = 1000, .max_segments = 2, .max_bytes = 1 << 20};
    assert_int_equal(rules_key_backup_put(&b, &count, 8, 10, h, kid, &stored), STATUS_TOO_LARGE);
    /* Another backup's key; none; the key of a backup turned off. */
    assert_int_equal(rules_key_backup_put(&b, &caps, 8, 10, h, other_kid, &stored),
                     STATUS_FORBIDDEN);
    assert_int_equal(rules_key_backup_put(&b, &caps, 8, 10, h, zero_kid, &stored),
                     STATUS_BAD_REQUEST);
    struct rec_key_backup off = {.next_seq = 9};
    memcpy(off.key_id, kid, sizeof kid);
    rec_key_backup_retire(&off);
    assert_true(rec_key_backup_retired(&off, kid));
    assert_memory_equal(off.key_id, zero_kid, sizeof zero_kid);
    assert_int_equal(rules_key_backup_put(&off, &caps, 9, 10, h, kid, &stored), STATUS_FORBIDDEN);
    assert_int_equal(rules_key_backup_put(&off, &caps, 9, 10, h, other_kid, &stored), 0);
    /* Only the last REC_KEY_BACKUP_RETIRED_MAX are remembered. */
    for (int i = 0; i < REC_KEY_BACKUP_RETIRED_MAX; i++) {
        off.key_id[0] = (uint8_t)(100 + i);
        rec_key_backup_retire(&off);
    }
    assert_int_equal(off.n_retired, REC_KEY_BACKUP_RETIRED_MAX);
    assert_false(rec_key_backup_retired(&off, kid));
    off.key_id[0] = 100;
    assert_true(rec_key_backup_retired(&off, off.key_id));
    /* The retired ids survive the encoding. */
    struct buf e2;
    buf_init(&e2);
    rec_key_backup_encode(&off, &e2);
    struct rec_key_backup d2;
    assert_int_equal(rec_key_backup_decode(e2.data, e2.len, &d2), 0);
    assert_int_equal(d2.n_retired, REC_KEY_BACKUP_RETIRED_MAX);
    assert_memory_equal(d2.retired, off.retired, sizeof off.retired);
    rec_key_backup_cleanup(&d2);
    buf_cleanup(&e2);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_normalize_email),
        cmocka_unit_test(test_rules_dates_and_age),
        cmocka_unit_test(test_rules_key_signature),
        cmocka_unit_test(test_rules_lifecycle_windows_and_hold),
        cmocka_unit_test(test_rules_quiet_hours),
        cmocka_unit_test(test_rules_device_list_signature),
        cmocka_unit_test(test_rules_device_list_chain),
        cmocka_unit_test(test_rules_invite_and_visibility),
        cmocka_unit_test(test_rules_channels_and_deactivation),
        cmocka_unit_test(test_rules_key_backup_index_and_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
