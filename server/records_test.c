/* server/records_test.c: the record encodings round-trip and refuse damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "server/audit.h"
#include "server/records.h"
#include "server/records_messages.h"

/* An account record with every field set. */
static struct rec_account sample_account(void) {
    struct rec_account a = {
        .role = REC_ROLE_PATIENT,
        .active = true,
        .created_at = 1700000000123,
        .n_devices = 2,
        .email = "pat@home.example",
        .display_name = "Pat",
        .birth_date = "2000-02-29",
        .password_hash = "$argon2id$v=19$m=19456,t=2,p=1$x$y",
        .list_version = 3,
        .n_list = 2,
        .deactivated_at = 1790000000123,
        .hold_reason = "litigation 2026-17",
        .sessions_after = 1795000000456,
        .list_reset = true,
        .list_reset_at = 77,
        .reset_expires_at = 1795000900456,
        .reset_attempts = 5,
        .totp_state = REC_TOTP_ACTIVE,
        .totp_last_step = 56789,
        .n_recovery = 2,
    };
    memset(a.reset_code_hash, 0x5a, REC_HASH_LEN);
    memset(a.totp_secret, 0x5a, REC_TOTP_SECRET_LEN);
    memset(a.recovery[1], 0x33, REC_HASH_LEN);
    memset(a.list_prev_hash, 0x42, REC_HASH_LEN);
    memset(a.list_signer.b, 7, ID_LEN);
    memset(a.list_signature, 9, REC_SIG_LEN);
    memset(a.list[0].device_id.b, 1, ID_LEN);
    memset(a.list[1].identity_key, 2, REC_KEY_LEN);
    return a;
}

static void test_records_account_round_trip(void **state) {
    struct rec_account a = sample_account();
    struct buf b;
    buf_init(&b);
    rec_account_encode(&a, &b);
    struct rec_account d;
    assert_int_equal(rec_account_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.role, REC_ROLE_PATIENT);
    assert_true(d.active);
    assert_true(d.created_at == a.created_at);
    assert_int_equal(d.n_devices, 2);
    assert_string_equal(d.email, a.email);
    assert_string_equal(d.display_name, a.display_name);
    assert_string_equal(d.birth_date, a.birth_date);
    assert_string_equal(d.password_hash, a.password_hash);
    assert_int_equal(d.list_version, 3);
    assert_int_equal(d.n_list, 2);
    assert_memory_equal(d.list_signer.b, a.list_signer.b, ID_LEN);
    assert_memory_equal(d.list_signature, a.list_signature, REC_SIG_LEN);
    assert_memory_equal(d.list, a.list, 2 * sizeof a.list[0]);
    assert_true(d.deactivated_at == a.deactivated_at);
    assert_string_equal(d.hold_reason, a.hold_reason);
    assert_true(d.sessions_after == a.sessions_after);
    assert_memory_equal(d.list_prev_hash, a.list_prev_hash, REC_HASH_LEN);
    assert_true(d.list_reset && d.list_reset_at == 77);
    assert_memory_equal(d.reset_code_hash, a.reset_code_hash, REC_HASH_LEN);
    assert_true(d.reset_expires_at == a.reset_expires_at && d.reset_attempts == 5);
    assert_int_equal(d.totp_state, REC_TOTP_ACTIVE);
    assert_memory_equal(d.totp_secret, a.totp_secret, REC_TOTP_SECRET_LEN);
    assert_true(d.totp_last_step == 56789);
    assert_int_equal(d.n_recovery, 2);
    assert_memory_equal(d.recovery, a.recovery, 2 * REC_HASH_LEN);
    rec_account_cleanup(&d);
    /* Cleanup wipes the secret. */
    assert_int_equal(rec_account_decode(b.data, b.len, &d), 0);
    rec_account_cleanup(&d);
    uint8_t zero[REC_TOTP_SECRET_LEN] = {0};
    assert_memory_equal(d.totp_secret, zero, REC_TOTP_SECRET_LEN);
    /* A record before two-factor sign-in reads without it. */
    size_t before_totp = b.len - (1 + REC_TOTP_SECRET_LEN + 8 + 4 + 2 * REC_HASH_LEN);
    assert_int_equal(rec_account_decode(b.data, before_totp, &d), 0);
    assert_int_equal(d.totp_state, REC_TOTP_NONE);
    assert_int_equal(d.n_recovery, 0);
    assert_true(d.list_reset && d.reset_attempts == 5);
    rec_account_cleanup(&d);
    /* A record before password resets reads without one. */
    size_t before_reset = before_totp - REC_HASH_LEN - 12;
    assert_int_equal(rec_account_decode(b.data, before_reset, &d), 0);
    assert_true(d.list_reset && d.reset_attempts == 0 && d.reset_expires_at == 0);
    rec_account_cleanup(&d);
    /* A record before the device-list hashes reads without them; one of 0.2
     * (without hold_reason and sessions_after) without those; one of 0.1
     * (without deactivated_at either) as never deactivated. */
    size_t before_lists = before_reset - REC_HASH_LEN - 9;
    assert_int_equal(rec_account_decode(b.data, before_lists, &d), 0);
    assert_false(d.list_reset);
    assert_true(d.sessions_after == a.sessions_after);
    rec_account_cleanup(&d);
    size_t v02 = before_lists - 8 - 4 - strlen(a.hold_reason);
    assert_int_equal(rec_account_decode(b.data, v02, &d), 0);
    assert_true(d.deactivated_at == a.deactivated_at);
    assert_null(d.hold_reason);
    rec_account_cleanup(&d);
    assert_int_equal(rec_account_decode(b.data, v02 - 8, &d), 0);
    assert_true(d.deactivated_at == 0);
    rec_account_cleanup(&d);

    /* Any truncation inside a field, a wrong format byte or trailing bytes. */
    for (size_t cut = 0; cut < b.len; cut += 7) {
        int rc = rec_account_decode(b.data, cut, &d);
        if (rc == 0)
            rec_account_cleanup(&d);
        if (cut == 0)
            assert_int_equal(rc, STATUS_CORRUPT);
    }
    b.data[0] = REC_FORMAT + 1;
    assert_int_equal(rec_account_decode(b.data, b.len, &d), STATUS_CORRUPT);
    b.data[0] = REC_FORMAT;
    buf_append_u8(&b, 0);
    assert_int_equal(rec_account_decode(b.data, b.len, &d), STATUS_CORRUPT);
    buf_cleanup(&b);
}

static void test_records_older_shorter_record_defaults_to_zero(void **state) {
    /* A record written before trailing fields existed: format byte, role,
     * active, created_at and nothing else. */
    uint8_t old[] = {REC_FORMAT, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 42};
    struct rec_account d;
    assert_int_equal(rec_account_decode(old, sizeof old, &d), 0);
    assert_int_equal(d.role, REC_ROLE_PROVIDER);
    assert_true(d.active);
    assert_true(d.created_at == 42);
    assert_int_equal(d.n_devices, 0);
    assert_string_equal(d.email, "");
    assert_int_equal(d.list_version, 0);
    rec_account_cleanup(&d);
}

/* The lean decoders read every field the full ones read but the strings,
 * which they check and leave NULL; they refuse exactly what those refuse. */
static void test_records_lean_decode_copies_no_strings(void **state) {
    struct rec_account a = sample_account();
    struct buf b;
    buf_init(&b);
    rec_account_encode(&a, &b);
    struct rec_account full, lean;
    assert_int_equal(rec_account_decode(b.data, b.len, &full), 0);
    assert_int_equal(rec_account_decode_lean(b.data, b.len, &lean), 0);
    assert_null(lean.email);
    assert_null(lean.display_name);
    assert_null(lean.birth_date);
    assert_null(lean.password_hash);
    assert_null(lean.hold_reason);
    struct rec_account strings = full;
    full.email = full.display_name = full.birth_date = full.password_hash = full.hold_reason = NULL;
    assert_memory_equal(&full, &lean, sizeof full);
    rec_account_cleanup(&strings);
    rec_account_cleanup(&lean);
    for (size_t cut = 0; cut <= b.len; cut++) {
        int rc = rec_account_decode(b.data, cut, &full);
        assert_int_equal(rec_account_decode_lean(b.data, cut, &lean), rc);
        if (rc == 0)
            rec_account_cleanup(&full);
    }
    /* A NUL inside a string is corrupt to both. */
    size_t email_at = 1 + 4 + 1 + 8 + 4 + 4;
    b.data[email_at + 2] = 0;
    assert_int_equal(rec_account_decode(b.data, b.len, &full), STATUS_CORRUPT);
    assert_int_equal(rec_account_decode_lean(b.data, b.len, &lean), STATUS_CORRUPT);

    buf_reset(&b);
    struct rec_device d = {.encryption_key_id = 9, .label = "phone", .created_at = 8};
    memset(d.encryption_key, 2, REC_KEY_LEN);
    rec_device_encode(&d, &b);
    struct rec_device dl;
    assert_int_equal(rec_device_decode_lean(b.data, b.len, &dl), 0);
    assert_null(dl.label);
    assert_int_equal(dl.encryption_key_id, 9);
    assert_memory_equal(dl.encryption_key, d.encryption_key, REC_KEY_LEN);
    assert_true(dl.created_at == 8);
    assert_int_equal(rec_device_decode_lean(b.data, b.len - 9, &dl), STATUS_CORRUPT);
    buf_cleanup(&b);
}

static void test_records_invite_device_session_audit_round_trip(void **state) {
    struct buf b;
    buf_init(&b);
    struct rec_invite i = {
        .role = REC_ROLE_PROVIDER, .email = "doc@x.example", .created_at = 5, .expires_at = 6};
    memset(i.inviter.b, 3, ID_LEN);
    memset(i.email_index, 4, REC_HASH_LEN);
    rec_invite_encode(&i, &b);
    struct rec_invite di;
    assert_int_equal(rec_invite_decode(b.data, b.len, &di), 0);
    assert_int_equal(di.role, REC_ROLE_PROVIDER);
    assert_string_equal(di.email, "doc@x.example");
    assert_memory_equal(di.email_index, i.email_index, REC_HASH_LEN);
    assert_memory_equal(di.inviter.b, i.inviter.b, ID_LEN);
    assert_true(di.expires_at == 6);
    rec_invite_cleanup(&di);
    assert_int_equal(rec_invite_decode(b.data, b.len - 1, &di), STATUS_CORRUPT);

    buf_reset(&b);
    struct rec_device d = {
        .encryption_key_id = 9, .encryption_key_expires_at = 77, .label = "phone", .created_at = 8};
    memset(d.identity_key, 1, REC_KEY_LEN);
    memset(d.encryption_key, 2, REC_KEY_LEN);
    memset(d.signature, 3, REC_SIG_LEN);
    rec_device_encode(&d, &b);
    struct rec_device dd;
    assert_int_equal(rec_device_decode(b.data, b.len, &dd), 0);
    assert_memory_equal(dd.identity_key, d.identity_key, REC_KEY_LEN);
    assert_memory_equal(dd.encryption_key, d.encryption_key, REC_KEY_LEN);
    assert_memory_equal(dd.signature, d.signature, REC_SIG_LEN);
    assert_int_equal(dd.encryption_key_id, 9);
    assert_string_equal(dd.label, "phone");
    rec_device_cleanup(&dd);

    buf_reset(&b);
    struct rec_session s = {.created_at = 1, .expires_at = 2, .idle_expires_at = 3};
    memset(s.account_id.b, 5, ID_LEN);
    memset(s.device_id.b, 6, ID_LEN);
    rec_session_encode(&s, &b);
    struct rec_session ds;
    assert_int_equal(rec_session_decode(b.data, b.len, &ds), 0);
    assert_memory_equal(&ds, &s, sizeof s);
    /* ended at the idle expiry, unless it stays signed in: then at the
     * absolute one */
    s.expires_at = 10;
    assert_false(rec_session_ended(&s, 2));
    assert_true(rec_session_ended(&s, 3));
    s.stay_signed_in = true;
    assert_false(rec_session_ended(&s, 3));
    assert_true(rec_session_ended(&s, 10));
    buf_reset(&b);
    rec_session_encode(&s, &b);
    assert_int_equal(rec_session_decode(b.data, b.len, &ds), 0);
    assert_true(ds.stay_signed_in);

    buf_reset(&b);
    struct rec_audit a = {
        .index = 12, .time = 13, .action = REC_AUDIT_REGISTER_UNDER_AGE, .outcome = 3};
    rec_audit_encode(&a, &b);
    struct rec_audit da;
    assert_int_equal(rec_audit_decode(b.data, b.len, &da), 0);
    assert_memory_equal(&da, &a, sizeof a);
    buf_cleanup(&b);
}

/* Each device finds its own wrap in a stored message, whatever its place;
 * a device without one, and a recalled message, find none. */
static void test_records_message_find_wrap(void **state) {
    struct rec_wrap wraps[3];
    for (int i = 0; i < 3; i++) {
        memset(&wraps[i], 0x10 * (i + 1), sizeof wraps[i]);
        wraps[i].key_id = 100 + (uint32_t)i;
    }
    struct rec_message m = {.envelope_version = 1, .n_wraps = 3, .wraps = wraps};
    struct buf b;
    buf_init(&b);
    rec_message_encode(&m, &b);
    struct rec_message d;
    assert_int_equal(rec_message_decode(b.data, b.len, &d), 0);
    for (int i = 2; i >= 0; i--) {
        struct rec_wrap w;
        assert_int_equal(rec_message_find_wrap(&d, &wraps[i].device_id, &w), 0);
        assert_memory_equal(&w, &wraps[i], sizeof w);
    }
    struct id other;
    memset(other.b, 0x20, ID_LEN);
    other.b[ID_LEN - 1] = 0x21; /* shares all but its last byte with the second */
    struct rec_wrap w;
    assert_int_equal(rec_message_find_wrap(&d, &other, &w), STATUS_NOT_FOUND);
    d.n_wraps = 0; /* as a recall leaves it */
    assert_int_equal(rec_message_find_wrap(&d, &wraps[0].device_id, &w), STATUS_NOT_FOUND);
    buf_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_account_round_trip),
        cmocka_unit_test(test_records_lean_decode_copies_no_strings),
        cmocka_unit_test(test_records_older_shorter_record_defaults_to_zero),
        cmocka_unit_test(test_records_invite_device_session_audit_round_trip),
        cmocka_unit_test(test_records_message_find_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
