/* server/send_rules_test.c: the shape and device-set rules of a Send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/status.h"
#include "protocol/transcript.h"
#include "server/send_rules.h"

static struct id id_of(unsigned n) {
    struct id id;
    memset(id.b, 0, ID_LEN);
    id.b[0] = (uint8_t)(n >> 8);
    id.b[1] = (uint8_t)n;
    id.b[15] = 0xAA;
    return id;
}

static struct rec_wrap wrap_of(unsigned n, uint32_t key_id) {
    struct rec_wrap w;
    memset(&w, 0, sizeof w);
    w.device_id = id_of(n);
    w.key_id = key_id;
    return w;
}

static void test_send_rules_shape_limits(void **state) {
    const char *detail;
    struct send_shape ok = {.version = 2,
                            .body_len = SEND_BODY_MAX,
                            .nonce_len = REC_NONCE_LEN,
                            .signature_len = REC_SIG_LEN,
                            .n_wraps = REC_WRAPS_MAX};
    assert_int_equal(send_check_shape(&ok, &detail), 0);
    struct send_shape s = ok;
    s.version = 1; /* the version whose signature bound less: refused */
    assert_int_equal(send_check_shape(&s, &detail), STATUS_BAD_REQUEST);
    s = ok;
    s.n_wraps = 0;
    assert_int_equal(send_check_shape(&s, &detail), STATUS_BAD_REQUEST);
    s = ok;
    s.signature_len = 63;
    assert_int_equal(send_check_shape(&s, &detail), STATUS_BAD_REQUEST);
    s = ok;
    s.body_len = SEND_BODY_MAX + 1;
    assert_int_equal(send_check_shape(&s, &detail), STATUS_TOO_LARGE);
    assert_string_equal(detail, "envelope too large");
    s = ok;
    s.header_len = 1; /* a header would travel in clear: refused */
    assert_int_equal(send_check_shape(&s, &detail), STATUS_BAD_REQUEST);
    assert_string_equal(detail,
                        "Envelope.header must be empty: metadata goes in the encrypted body");
    s = ok;
    s.n_wraps = REC_WRAPS_MAX + 1;
    assert_int_equal(send_check_shape(&s, &detail), STATUS_TOO_LARGE);
}

static void test_send_rules_copy_wrap_checks_lengths(void **state) {
    uint8_t dev[ID_LEN] = {1}, enc[REC_ENC_LEN] = {2}, wk[REC_WRAPPED_LEN] = {3};
    struct rec_wrap w;
    assert_int_equal(send_copy_wrap((ProtobufCBinaryData){ID_LEN, dev}, 7,
                                    (ProtobufCBinaryData){REC_ENC_LEN, enc},
                                    (ProtobufCBinaryData){REC_WRAPPED_LEN, wk}, &w),
                     0);
    assert_int_equal(w.key_id, 7);
    assert_int_equal(w.enc[0], 2);
    assert_int_equal(w.wrapped_key[0], 3);
    assert_int_equal(send_copy_wrap((ProtobufCBinaryData){ID_LEN - 1, dev}, 7,
                                    (ProtobufCBinaryData){REC_ENC_LEN, enc},
                                    (ProtobufCBinaryData){REC_WRAPPED_LEN, wk}, &w),
                     STATUS_BAD_REQUEST);
    assert_int_equal(send_copy_wrap((ProtobufCBinaryData){ID_LEN, dev}, 7,
                                    (ProtobufCBinaryData){REC_ENC_LEN, enc},
                                    (ProtobufCBinaryData){REC_WRAPPED_LEN - 1, wk}, &w),
                     STATUS_BAD_REQUEST);
}

/* Devices 1..3 (key ids 10, 20, 30; device 3's key expires at 500) and the
 * sender's device 9. */
static const struct send_device devs[] = {
    {.key_id = 10, .expires_at = 1000},
    {.key_id = 20, .expires_at = 1000},
    {.key_id = 30, .expires_at = 500},
    {.key_id = 90, .expires_at = 1000},
};

static void fill_devs(struct send_device out[4]) {
    memcpy(out, devs, sizeof devs);
    out[0].id = id_of(1);
    out[1].id = id_of(2);
    out[2].id = id_of(3);
    out[3].id = id_of(9);
}

static void test_send_rules_exact_cover_delivers_to_others(void **state) {
    struct send_device d[4];
    fill_devs(d);
    struct send_mismatch *mm = calloc(1, sizeof *mm);
    struct id sender = id_of(9);
    /* Unsorted, with the sender's own wrap: allowed, not delivered. */
    struct rec_wrap w[] = {wrap_of(3, 30), wrap_of(9, 90), wrap_of(1, 10), wrap_of(2, 20)};
    const struct send_device *rcpt[4];
    assert_int_equal(send_check_devices(d, 4, w, 4, &sender, 100, mm, rcpt), 0);
    assert_ptr_equal(rcpt[0], &d[2]);
    assert_null(rcpt[1]);
    assert_ptr_equal(rcpt[2], &d[0]);
    assert_ptr_equal(rcpt[3], &d[1]);
    /* Without the sender's wrap. */
    assert_int_equal(send_check_devices(d, 4, w, 1, &sender, 100, mm, rcpt), STATUS_CONFLICT);
    struct rec_wrap w3[] = {wrap_of(2, 20), wrap_of(1, 10), wrap_of(3, 30)};
    assert_int_equal(send_check_devices(d, 4, w3, 3, &sender, 100, mm, rcpt), 0);
    free(mm);
}

static void test_send_rules_missing_extra_stale(void **state) {
    struct send_device d[4];
    fill_devs(d);
    struct send_mismatch *mm = calloc(1, sizeof *mm);
    struct id sender = id_of(9);
    /* 1: stale key id; 2: missing; 3: key expired at 500 (now 600); 7: extra. */
    struct rec_wrap w[] = {wrap_of(1, 11), wrap_of(3, 30), wrap_of(7, 70)};
    const struct send_device *rcpt[3];
    assert_int_equal(send_check_devices(d, 4, w, 3, &sender, 600, mm, rcpt), STATUS_CONFLICT);
    assert_int_equal(mm->n_missing, 1);
    assert_memory_equal(mm->missing[0].b, id_of(2).b, ID_LEN);
    assert_int_equal(mm->n_extra, 1);
    assert_memory_equal(mm->extra[0].b, id_of(7).b, ID_LEN);
    assert_int_equal(mm->n_stale, 2);
    assert_memory_equal(mm->stale[0].b, id_of(1).b, ID_LEN);
    assert_memory_equal(mm->stale[1].b, id_of(3).b, ID_LEN);
    assert_null(rcpt[0]);
    assert_null(rcpt[1]);
    assert_null(rcpt[2]);
    free(mm);
}

static void test_send_rules_duplicate_wrap_refused(void **state) {
    struct send_device d[4];
    fill_devs(d);
    struct send_mismatch *mm = calloc(1, sizeof *mm);
    struct id sender = id_of(9);
    struct rec_wrap w[] = {wrap_of(1, 10), wrap_of(2, 20), wrap_of(1, 10), wrap_of(3, 30)};
    const struct send_device *rcpt[4];
    assert_int_equal(send_check_devices(d, 4, w, 4, &sender, 100, mm, rcpt), STATUS_BAD_REQUEST);
    free(mm);
}

/* The largest conversation (every member with every device), one wrap: the
 * mismatch is bounded and its answer decodes. */
static void test_send_rules_mismatch_is_bounded(void **state) {
    struct send_device *d = calloc(SEND_DEVICES_MAX, sizeof *d);
    for (unsigned i = 0; i < SEND_DEVICES_MAX; i++)
        d[i] = (struct send_device){.id = id_of(i + 1), .key_id = 1, .expires_at = 1000};
    struct rec_wrap *w = calloc(REC_WRAPS_MAX, sizeof *w);
    for (unsigned i = 0; i < REC_WRAPS_MAX; i++)
        w[i] = wrap_of(SEND_DEVICES_MAX + 10 + i, 1); /* all extra */
    struct send_mismatch *mm = calloc(1, sizeof *mm);
    const struct send_device **rcpt = calloc(REC_WRAPS_MAX, sizeof *rcpt);
    struct id sender = id_of(60000);
    assert_int_equal(
        send_check_devices(d, SEND_DEVICES_MAX, w, REC_WRAPS_MAX, &sender, 100, mm, rcpt),
        STATUS_CONFLICT);
    assert_int_equal(mm->n_missing, SEND_MISMATCH_MAX);
    assert_int_equal(mm->n_extra, REC_WRAPS_MAX);
    assert_true(SEND_MISMATCH_MAX <= PROTO_DEFAULT_MAX_REPEATED);
    assert_int_equal(send_check_devices(d, SEND_DEVICES_MAX + 1, w, 1, &sender, 100, mm, rcpt),
                     STATUS_TOO_LARGE);
    struct buf b;
    buf_init(&b);
    send_mismatch_encode(mm, &b);
    struct send_mismatch *back = calloc(1, sizeof *back);
    assert_int_equal(send_mismatch_decode(b.data, b.len, back), 0);
    assert_int_equal(back->n_missing, mm->n_missing);
    assert_int_equal(back->n_extra, mm->n_extra);
    assert_int_equal(back->n_stale, 0);
    assert_memory_equal(back->missing, mm->missing, sizeof mm->missing);
    assert_int_equal(send_mismatch_decode(b.data, b.len - 1, back), STATUS_CORRUPT);
    buf_cleanup(&b);
    free(back);
    free((void *)rcpt);
    free(mm);
    free(w);
    free(d);
}

/* Envelope.signature binds the whole context: the server refuses an envelope
 * whose urgent flag, counter, sender clock, conversation, client_msg_id,
 * wraps or body differ from what the sender signed, and a signature by
 * another key. */
static void test_send_rules_signature_binds_context(void **state) {
    uint8_t pk[32], sk[64], other_pk[32], other_sk[64];
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(other_pk, other_sk);
    struct id conv = id_new(), cmid = id_new(), dev = id_new();
    struct rec_wrap wraps[2];
    memset(wraps, 0, sizeof wraps);
    wraps[0].device_id = id_new();
    wraps[0].key_id = 3;
    wraps[1].device_id = id_new();
    wraps[1].key_id = 7;
    randombytes_buf(wraps[0].enc, sizeof wraps[0].enc);
    randombytes_buf(wraps[1].wrapped_key, sizeof wraps[1].wrapped_key);
    uint8_t nonce[24], body[40], sig[64];
    randombytes_buf(nonce, sizeof nonce);
    randombytes_buf(body, sizeof body);

    struct transcript_wrap tw[2];
    for (int i = 0; i < 2; i++)
        tw[i] = (struct transcript_wrap){wraps[i].device_id.b, wraps[i].key_id, wraps[i].enc,
                                         wraps[i].wrapped_key};
    assert_int_equal(transcript_sort_wraps(tw, 2), 0);
    struct transcript_context ctx = {.version = 2, .urgent = true, .sent_at = 1234, .counter = 9};
    memcpy(ctx.conversation_id, conv.b, 16);
    memcpy(ctx.client_msg_id, cmid.b, 16);
    memcpy(ctx.sender_device_id, dev.b, 16);
    transcript_recipient_hash(tw, 2, ctx.recipient_hash);
    struct buf t;
    buf_init(&t);
    transcript_envelope(&ctx, NULL, 0, nonce, body, sizeof body, tw, 2, &t);
    crypto_sign_detached(sig, NULL, t.data, t.len, sk);
    buf_cleanup(&t);

    Carechat__V1__Envelope env;
    carechat__v1__envelope__init(&env);
    env.version = 2;
    env.sender_device_id = (ProtobufCBinaryData){16, dev.b};
    env.body = (ProtobufCBinaryData){sizeof body, body};
    env.body_nonce = (ProtobufCBinaryData){24, nonce};
    env.signature = (ProtobufCBinaryData){64, sig};
    env.n_wraps = 2;
    env.sent_at = 1234;
    env.counter = 9;
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, wraps), 0);
    assert_int_equal(send_verify_signature(other_pk, &conv, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, false, &env, wraps),
                     STATUS_BAD_REQUEST);
    assert_int_equal(send_verify_signature(pk, &cmid, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    assert_int_equal(send_verify_signature(pk, &conv, &conv, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    env.counter = 10;
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    env.counter = 9;
    env.sent_at = 1235;
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    env.sent_at = 1234;
    wraps[1].key_id = 8;
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    wraps[1].key_id = 7;
    body[0] ^= 1;
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
    body[0] ^= 1;
    /* The same wraps in another order: the transcript sorts them. */
    struct rec_wrap swapped[2] = {wraps[1], wraps[0]};
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, swapped), 0);
    /* One wrap left out: the recipient set is part of what was signed. */
    env.n_wraps = 1;
    assert_int_equal(send_verify_signature(pk, &conv, &cmid, true, &env, wraps),
                     STATUS_BAD_REQUEST);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_rules_shape_limits),
        cmocka_unit_test(test_send_rules_copy_wrap_checks_lengths),
        cmocka_unit_test(test_send_rules_exact_cover_delivers_to_others),
        cmocka_unit_test(test_send_rules_missing_extra_stale),
        cmocka_unit_test(test_send_rules_duplicate_wrap_refused),
        cmocka_unit_test(test_send_rules_mismatch_is_bounded),
        cmocka_unit_test(test_send_rules_signature_binds_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
