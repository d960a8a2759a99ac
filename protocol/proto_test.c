/*
 * protocol/proto_test.c: unit tests of the frame and entry codec.
 *
 * Valid frames are built with the generated structs and proto_encode(); hostile
 * ones are written byte by byte, so each test states exactly what is on the
 * wire. Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/status.h"
#include "protocol/proto.h"

/* Wire tags: (field number << 3) | wire type. */
#define WT_VARINT 0
#define WT_LEN 2

static void put_tag(struct buf *b, uint32_t field, uint32_t wire_type) {
    buf_append_varint(b, ((uint64_t)field << 3) | wire_type);
}

static void put_len(struct buf *b, uint32_t field, const void *data, size_t n) {
    put_tag(b, field, WT_LEN);
    buf_append_varint(b, n);
    buf_append(b, data, n);
}

static void put_varint(struct buf *b, uint32_t field, uint64_t v) {
    put_tag(b, field, WT_VARINT);
    buf_append_varint(b, v);
}

/* A frame with request_id `rid` whose body is field `body_field` holding the
 * already encoded message `inner`. */
static void frame_bytes(struct buf *out, uint64_t rid, uint32_t body_field,
                        const struct buf *inner) {
    buf_init(out);
    put_varint(out, 1, rid);
    put_len(out, body_field, inner->data, inner->len);
}

static const uint8_t ID_A[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t ID_B[16] = {0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
                                 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};

static ProtobufCBinaryData bin(const void *p, size_t n) {
    ProtobufCBinaryData d = {.len = n, .data = (uint8_t *)p};
    return d;
}

static int decode_buf(const struct buf *b, Carechat__V1__Frame **out) {
    return proto_decode(NULL, b->data, b->len, out);
}

static void test_proto_round_trip_send(void **state) {
    (void)state;
    uint8_t body[300], enc[32], wrapped[48], sig[64], nonce[24];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7);
    memset(enc, 0xe1, sizeof enc);
    memset(wrapped, 0x3a, sizeof wrapped);
    memset(sig, 0x51, sizeof sig);
    memset(nonce, 0x77, sizeof nonce);

    Carechat__V1__KeyWrap w[2];
    Carechat__V1__KeyWrap *wp[2] = {&w[0], &w[1]};
    for (int i = 0; i < 2; i++) {
        carechat__v1__key_wrap__init(&w[i]);
        w[i].device_id = bin(i ? ID_B : ID_A, 16);
        w[i].key_id = 3 + (uint32_t)i;
        w[i].enc = bin(enc, sizeof enc);
        w[i].wrapped_key = bin(wrapped, sizeof wrapped);
    }
    Carechat__V1__Envelope env = CARECHAT__V1__ENVELOPE__INIT;
    env.version = 1;
    env.sender_device_id = bin(ID_A, 16);
    env.body = bin(body, sizeof body);
    env.body_nonce = bin(nonce, sizeof nonce);
    env.n_wraps = 2;
    env.wraps = wp;
    env.signature = bin(sig, sizeof sig);
    Carechat__V1__Send send = CARECHAT__V1__SEND__INIT;
    send.conversation_id = bin(ID_B, 16);
    send.client_msg_id = bin(ID_A, 16);
    send.envelope = &env;
    send.urgent = 1;
    Carechat__V1__Frame frame = CARECHAT__V1__FRAME__INIT;
    frame.request_id = 0x1234567890ull;
    frame.body_case = CARECHAT__V1__FRAME__BODY_SEND;
    frame.send = &send;

    struct buf b;
    buf_init(&b);
    assert_int_equal(proto_encode(&frame, &b), 0);

    Carechat__V1__Frame *got = NULL;
    assert_int_equal(decode_buf(&b, &got), 0);
    assert_non_null(got);
    assert_int_equal(got->request_id, 0x1234567890ull);
    assert_int_equal(got->body_case, CARECHAT__V1__FRAME__BODY_SEND);
    assert_string_equal(proto_body_name(got), "send");
    const Carechat__V1__Send *s = got->send;
    assert_true(s->urgent);
    assert_memory_equal(s->conversation_id.data, ID_B, 16);
    assert_memory_equal(s->client_msg_id.data, ID_A, 16);
    assert_non_null(s->envelope);
    assert_int_equal(s->envelope->version, 1);
    assert_int_equal(s->envelope->body.len, sizeof body);
    assert_memory_equal(s->envelope->body.data, body, sizeof body);
    assert_int_equal(s->envelope->n_wraps, 2);
    assert_int_equal(s->envelope->wraps[1]->key_id, 4);
    assert_memory_equal(s->envelope->wraps[1]->device_id.data, ID_B, 16);
    assert_memory_equal(s->envelope->wraps[0]->wrapped_key.data, wrapped, sizeof wrapped);
    assert_memory_equal(s->envelope->signature.data, sig, sizeof sig);

    /* Encoding the decoded frame gives the same bytes. */
    struct buf again;
    buf_init(&again);
    assert_int_equal(proto_encode(got, &again), 0);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);

    proto_free(got);
    proto_free(NULL);
    buf_cleanup(&again);
    buf_cleanup(&b);
}

static void test_proto_round_trip_response_with_result(void **state) {
    (void)state;
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    proto_response_frame(&frame, &resp, 42, STATUS_CONFLICT, "device set changed");
    ProtobufCBinaryData missing[2] = {bin(ID_A, 16), bin(ID_B, 16)};
    Carechat__V1__DeviceMismatch mm = CARECHAT__V1__DEVICE_MISMATCH__INIT;
    mm.n_missing_device_ids = 2;
    mm.missing_device_ids = missing;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_DEVICE_MISMATCH;
    resp.device_mismatch = &mm;

    struct buf b;
    buf_init(&b);
    assert_int_equal(proto_encode(&frame, &b), 0);
    Carechat__V1__Frame *got = NULL;
    assert_int_equal(decode_buf(&b, &got), 0);
    assert_int_equal(got->request_id, 42);
    assert_int_equal(got->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
    assert_int_equal(got->response->status, CARECHAT__V1__STATUS__CONFLICT);
    assert_string_equal(got->response->detail, "device set changed");
    assert_int_equal(got->response->result_case, CARECHAT__V1__RESPONSE__RESULT_DEVICE_MISMATCH);
    assert_int_equal(got->response->device_mismatch->n_missing_device_ids, 2);
    assert_memory_equal(got->response->device_mismatch->missing_device_ids[1].data, ID_B, 16);
    assert_int_equal(got->response->device_mismatch->n_extra_device_ids, 0);
    proto_free(got);
    buf_cleanup(&b);

    /* Internal statuses reach the wire as the client-visible ones. */
    proto_response_frame(&frame, &resp, 43, STATUS_IO, NULL);
    assert_int_equal(resp.status, CARECHAT__V1__STATUS__UNAVAILABLE);
    assert_string_equal(resp.detail, "");
    proto_response_frame(&frame, &resp, 44, STATUS_CORRUPT, NULL);
    assert_int_equal(resp.status, CARECHAT__V1__STATUS__INTERNAL);
    proto_response_frame(&frame, &resp, 45, 0, NULL);
    assert_int_equal(resp.status, CARECHAT__V1__STATUS__OK);
}

static void test_proto_round_trip_entry(void **state) {
    (void)state;
    Carechat__Entry__V1__ServerInit init = CARECHAT__ENTRY__V1__SERVER_INIT__INIT;
    init.server_id = bin(ID_A, 16);
    init.created_at = 1795883143000;
    Carechat__Entry__V1__Entry e = CARECHAT__ENTRY__V1__ENTRY__INIT;
    e.version = PROTO_ENTRY_VERSION;
    e.time = 1795883143001;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SERVER_INIT;
    e.server_init = &init;

    struct buf b;
    buf_init(&b);
    assert_int_equal(proto_entry_encode(&e, &b), 0);
    Carechat__Entry__V1__Entry *got = NULL;
    assert_int_equal(proto_entry_decode(NULL, b.data, b.len, &got), 0);
    assert_int_equal(got->version, PROTO_ENTRY_VERSION);
    assert_int_equal(got->time, 1795883143001);
    assert_int_equal(got->kind_case, CARECHAT__ENTRY__V1__ENTRY__KIND_SERVER_INIT);
    assert_memory_equal(got->server_init->server_id.data, ID_A, 16);
    assert_int_equal(got->server_init->created_at, 1795883143000);
    proto_entry_free(got);
    proto_entry_free(NULL);
    buf_cleanup(&b);

    /* An entry without a kind is neither written nor read. */
    Carechat__Entry__V1__Entry empty = CARECHAT__ENTRY__V1__ENTRY__INIT;
    empty.version = 1;
    buf_init(&b);
    assert_int_equal(proto_entry_encode(&empty, &b), STATUS_BAD_REQUEST);
    assert_int_equal(b.len, 0);
    put_varint(&b, 1, 1);
    got = NULL;
    assert_int_equal(proto_entry_decode(NULL, b.data, b.len, &got), STATUS_BAD_REQUEST);
    assert_null(got);
    buf_cleanup(&b);
}

/* A Response frame (request id 9) of exactly `total` bytes (100..130): a
 * status and a detail string of 'x' filling the rest. */
static void response_of_size(struct buf *b, size_t total) {
    uint8_t detail[128];
    memset(detail, 'x', sizeof detail);
    struct buf resp;
    buf_init(&resp);
    put_varint(&resp, 1, 0);
    put_len(&resp, 2, detail, total - 8); /* 8 bytes of tags and lengths */
    frame_bytes(b, 9, 2, &resp);
    buf_cleanup(&resp);
}

static void test_proto_oversize_rejected_before_allocation(void **state) {
    (void)state;
    struct proto_limits lim = {.max_frame_bytes = 100};
    struct buf b;
    Carechat__V1__Frame *got = NULL;
    size_t peak = 1;

    response_of_size(&b, 100);
    assert_int_equal(b.len, 100);
    assert_int_equal(proto_decode_measured(&lim, b.data, b.len, &got, &peak), 0);
    assert_true(peak > 0);
    assert_int_equal(strlen(got->response->detail), 92);
    proto_free(got);
    buf_cleanup(&b);

    /* The same frame one byte longer would decode just as well, but it is over
     * the limit and nothing is allocated for it. */
    response_of_size(&b, 101);
    assert_int_equal(b.len, 101);
    got = NULL;
    peak = 1;
    assert_int_equal(proto_decode_measured(&lim, b.data, b.len, &got, &peak), STATUS_TOO_LARGE);
    assert_int_equal(peak, 0);
    assert_null(got);
    buf_cleanup(&b);

    /* The default limit is 256 KiB. */
    static uint8_t big[PROTO_DEFAULT_MAX_FRAME + 1];
    peak = 1;
    assert_int_equal(proto_decode_measured(NULL, big, sizeof big, &got, &peak), STATUS_TOO_LARGE);
    assert_int_equal(peak, 0);
    assert_null(got);
}

static void test_proto_unknown_fields_rejected(void **state) {
    (void)state;
    Carechat__V1__Frame *got = NULL;
    struct buf inner, b;

    /* Top level: a Logout request plus field 99, which Frame does not define. */
    buf_init(&inner);
    frame_bytes(&b, 5, 13, &inner);
    assert_int_equal(decode_buf(&b, &got), 0);
    assert_int_equal(got->body_case, CARECHAT__V1__FRAME__BODY_LOGOUT);
    proto_free(got);
    got = NULL;
    put_varint(&b, 99, 1);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_null(got);
    buf_cleanup(&b);

    /* Three levels down: Frame.send(40) -> Send.envelope(3) -> Envelope with
     * version 1 and an unknown field 15. */
    struct buf env, send;
    buf_init(&env);
    put_varint(&env, 1, 1);
    buf_init(&send);
    put_len(&send, 1, ID_A, 16);
    put_len(&send, 3, env.data, env.len);
    frame_bytes(&b, 6, 40, &send);
    assert_int_equal(decode_buf(&b, &got), 0);
    assert_int_equal(got->send->envelope->version, 1);
    proto_free(got);
    got = NULL;
    buf_cleanup(&b);

    put_len(&env, 15, "zz", 2);
    buf_reset(&send);
    put_len(&send, 1, ID_A, 16);
    put_len(&send, 3, env.data, env.len);
    frame_bytes(&b, 6, 40, &send);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_null(got);

    /* Also inside an element of a repeated field: Envelope.wraps(6) holding a
     * KeyWrap with an unknown fixed64 field 9. */
    buf_cleanup(&b);
    buf_reset(&env);
    uint8_t wrap[] = {0x10, 0x01, 0x49, 1, 2, 3, 4, 5, 6, 7, 8}; /* key_id 1; field 9 fixed64 */
    put_len(&env, 6, wrap, sizeof wrap);
    buf_reset(&send);
    put_len(&send, 3, env.data, env.len);
    frame_bytes(&b, 6, 40, &send);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_null(got);

    buf_cleanup(&b);
    buf_cleanup(&send);
    buf_cleanup(&env);
    buf_cleanup(&inner);
}

static void test_proto_undefined_enum_rejected(void **state) {
    (void)state;
    Carechat__V1__Frame *got = NULL;
    struct buf resp, b;

    /* Response.status: 9 (INTERNAL) is the last defined value, 10 is not. */
    buf_init(&resp);
    put_varint(&resp, 1, 9);
    frame_bytes(&b, 3, 2, &resp);
    assert_int_equal(decode_buf(&b, &got), 0);
    assert_int_equal(got->response->status, CARECHAT__V1__STATUS__INTERNAL);
    proto_free(got);
    got = NULL;
    buf_cleanup(&b);

    buf_reset(&resp);
    put_varint(&resp, 1, 10);
    frame_bytes(&b, 3, 2, &resp);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_null(got);
    buf_cleanup(&b);

    /* A negative number (ten-byte varint of -1). */
    buf_reset(&resp);
    put_varint(&resp, 1, UINT64_MAX);
    frame_bytes(&b, 3, 2, &resp);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    buf_cleanup(&b);

    /* Nested in a repeated message: Response.audit_page(31).records(1) with
     * AuditRecord.outcome(7) = 77. */
    struct buf rec, page;
    buf_init(&rec);
    put_varint(&rec, 1, 1);
    put_varint(&rec, 7, 77);
    buf_init(&page);
    put_len(&page, 1, rec.data, rec.len);
    buf_reset(&resp);
    put_len(&resp, 31, page.data, page.len);
    frame_bytes(&b, 3, 2, &resp);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_null(got);

    buf_cleanup(&b);
    buf_cleanup(&page);
    buf_cleanup(&rec);
    buf_cleanup(&resp);
}

/* A Register frame (field 12) whose device(6).label(2) is `label`. */
static int decode_register_label(const void *label, size_t n) {
    struct buf dev, reg, b;
    buf_init(&dev);
    put_len(&dev, 2, label, n);
    buf_init(&reg);
    put_len(&reg, 1, "CODE-1234567890abcdef", 21);
    put_len(&reg, 4, "1990-02-03", 10);
    put_len(&reg, 6, dev.data, dev.len);
    frame_bytes(&b, 77, 12, &reg);
    Carechat__V1__Frame *got = NULL;
    int rc = decode_buf(&b, &got);
    if (rc == 0) {
        assert_non_null(got->register_->device);
        assert_string_equal(got->register_->device->label, (const char *)label);
        proto_free(got);
    } else {
        assert_null(got);
    }
    buf_cleanup(&b);
    buf_cleanup(&reg);
    buf_cleanup(&dev);
    return rc;
}

/* The literal's bytes, without the NUL the compiler adds. */
#define LABEL(lit) decode_register_label(lit, sizeof(lit) - 1)

static void test_proto_invalid_utf8_rejected_in_nested_string(void **state) {
    (void)state;
    /* Valid: ASCII, 2-, 3- and 4-byte sequences. */
    assert_int_equal(LABEL("Anna's phone"), 0);
    assert_int_equal(LABEL("T\xc3\xa9l\xc3\xa9phone \xe2\x82\xac \xf0\x9f\x93\xb1"), 0);
    assert_int_equal(LABEL(""), 0);

    /* Invalid, each in the nested Register.device.label. */
    assert_int_equal(LABEL("\xc3\x28"), STATUS_BAD_REQUEST);         /* bad continuation */
    assert_int_equal(LABEL("\xc0\xaf"), STATUS_BAD_REQUEST);         /* overlong '/' */
    assert_int_equal(LABEL("\xe0\x80\xaf"), STATUS_BAD_REQUEST);     /* overlong */
    assert_int_equal(LABEL("\xed\xa0\x80"), STATUS_BAD_REQUEST);     /* surrogate */
    assert_int_equal(LABEL("\xf4\x90\x80\x80"), STATUS_BAD_REQUEST); /* > U+10FFFF */
    assert_int_equal(LABEL("ab\xe2\x82"), STATUS_BAD_REQUEST);       /* truncated */
    assert_int_equal(LABEL("\xff"), STATUS_BAD_REQUEST);
    /* An embedded NUL would silently cut the C string short: refused. */
    assert_int_equal(LABEL("ok\0evil"), STATUS_BAD_REQUEST);

    /* Strings inside elements of a repeated message are checked too:
     * Response.member_list(17).members(1).display_name(6). */
    struct buf mem, list, resp, b;
    buf_init(&mem);
    put_len(&mem, 6, "Dr \xe9", 4); /* Latin-1, not UTF-8 */
    buf_init(&list);
    put_len(&list, 1, mem.data, mem.len);
    buf_init(&resp);
    put_len(&resp, 17, list.data, list.len);
    frame_bytes(&b, 2, 2, &resp);
    Carechat__V1__Frame *got = NULL;
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_null(got);
    buf_cleanup(&b);
    buf_cleanup(&resp);
    buf_cleanup(&list);
    buf_cleanup(&mem);
}

static void test_proto_size_limits_on_strings_and_repeated(void **state) {
    (void)state;
    Carechat__V1__Frame *got = NULL;
    struct buf fcm, reg, b;

    /* RegisterPush(62).fcm(2).token(1): 4096 bytes pass, 4097 do not. */
    static char token[4097];
    memset(token, 'f', sizeof token);
    for (size_t n = 4096; n <= 4097; n++) {
        buf_init(&fcm);
        put_len(&fcm, 1, token, n);
        buf_init(&reg);
        put_len(&reg, 2, fcm.data, fcm.len);
        frame_bytes(&b, 8, 62, &reg);
        int rc = decode_buf(&b, &got);
        if (n == 4096) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(got->register_push->fcm->token), 4096);
            proto_free(got);
            got = NULL;
        } else {
            assert_int_equal(rc, STATUS_TOO_LARGE);
            assert_null(got);
        }
        buf_cleanup(&b);
        buf_cleanup(&reg);
        buf_cleanup(&fcm);
    }

    /* ListDevices(21).account_ids(1): 1024 ids pass, 1025 do not. */
    for (size_t n = 1024; n <= 1025; n++) {
        struct buf ld;
        buf_init(&ld);
        for (size_t i = 0; i < n; i++)
            put_len(&ld, 1, ID_A, 16);
        frame_bytes(&b, 8, 21, &ld);
        int rc = decode_buf(&b, &got);
        if (n == 1024) {
            assert_int_equal(rc, 0);
            assert_int_equal(got->list_devices->n_account_ids, 1024);
            proto_free(got);
            got = NULL;
        } else {
            assert_int_equal(rc, STATUS_TOO_LARGE);
            assert_null(got);
        }
        buf_cleanup(&b);
        buf_cleanup(&ld);
    }

    /* Tighter limits come from the caller. */
    struct proto_limits lim = {.max_string_bytes = 8, .max_repeated = 2};
    struct buf login;
    buf_init(&login);
    put_len(&login, 1, "a@b.example", 11);
    frame_bytes(&b, 8, 10, &login);
    assert_int_equal(proto_decode(&lim, b.data, b.len, &got), STATUS_TOO_LARGE);
    lim.max_string_bytes = 11;
    assert_int_equal(proto_decode(&lim, b.data, b.len, &got), 0);
    assert_string_equal(got->login->email, "a@b.example");
    proto_free(got);
    buf_cleanup(&b);
    buf_cleanup(&login);
}

/* A Send(40) whose Envelope(3) holds wraps(6) of `n` empty KeyWraps: two bytes
 * on the wire each, ~84 bytes of heap each for protobuf-c. */
static void hostile_empty_wraps(struct buf *b, size_t n) {
    struct buf env, send;
    buf_init(&env);
    for (size_t i = 0; i < n; i++) {
        buf_append_u8(&env, 0x32);
        buf_append_u8(&env, 0x00);
    }
    buf_init(&send);
    put_len(&send, 3, env.data, env.len);
    frame_bytes(b, 1, 40, &send);
    buf_cleanup(&send);
    buf_cleanup(&env);
}

static void test_proto_memory_budget_holds_for_hostile_frames(void **state) {
    (void)state;
    const size_t limit = PROTO_DEFAULT_MAX_FRAME;
    Carechat__V1__Frame *got = NULL;
    size_t peak = 0;
    struct buf b;

    /* Empty repeated entries filling the frame limit: refused, and the heap
     * used before refusing stays within factor * len + slack. Raising
     * max_repeated shows that the budget, not the count check, stops it. */
    hostile_empty_wraps(&b, (limit - 16) / 2);
    assert_true(b.len <= limit);
    assert_true(b.len > limit - 32);
    const size_t budget = PROTO_DEFAULT_MEMORY_FACTOR * b.len + PROTO_DEFAULT_MEMORY_SLACK;
    struct proto_limits many = {.max_repeated = SIZE_MAX};
    assert_int_equal(proto_decode_measured(&many, b.data, b.len, &got, &peak), STATUS_TOO_LARGE);
    assert_null(got);
    assert_true(peak <= budget);
    assert_true(peak > budget / 2); /* it did get going: the figure is real */
    /* Without a budget worth the name, the same bytes cost ~84x their size. */
    struct proto_limits lavish = {.max_repeated = SIZE_MAX, .memory_factor = 200};
    assert_int_equal(proto_decode_measured(&lavish, b.data, b.len, &got, &peak), 0);
    assert_true(peak > 50 * b.len);
    proto_free(got);
    got = NULL;
    buf_cleanup(&b);

    /* Unknown fields (which protobuf-c keeps) filling the frame: refused early. */
    buf_init(&b);
    put_varint(&b, 1, 1);
    while (b.len + 3 <= limit)
        put_varint(&b, 127, 0);
    assert_int_equal(proto_decode_measured(&many, b.data, b.len, &got, &peak), STATUS_TOO_LARGE);
    assert_true(peak <= PROTO_DEFAULT_MEMORY_FACTOR * b.len + PROTO_DEFAULT_MEMORY_SLACK);
    assert_null(got);
    buf_cleanup(&b);

    /* The worst valid shape (a long list of 16-byte ids) decodes within 6.5x
     * its length, safely inside the default factor. */
    struct buf ld;
    buf_init(&ld);
    for (size_t i = 0; i < PROTO_DEFAULT_MAX_REPEATED; i++)
        put_len(&ld, 1, ID_B, 16);
    frame_bytes(&b, 8, 21, &ld);
    assert_int_equal(proto_decode_measured(NULL, b.data, b.len, &got, &peak), 0);
    assert_true(peak * 2 <= 13 * b.len);
    proto_free(got);
    buf_cleanup(&b);
    buf_cleanup(&ld);

    /* A large legitimate Send (64 KiB body, 512 wraps) fits too. */
    static uint8_t body[64 * 1024];
    uint8_t wrap[128];
    struct buf env, send;
    buf_init(&env);
    put_varint(&env, 1, 1);
    put_len(&env, 4, body, sizeof body);
    size_t wl = 0;
    wrap[wl++] = 0x0a;
    wrap[wl++] = 16;
    memcpy(wrap + wl, ID_A, 16);
    wl += 16;
    wrap[wl++] = 0x10;
    wrap[wl++] = 1;
    wrap[wl++] = 0x1a;
    wrap[wl++] = 32;
    memset(wrap + wl, 0xee, 32);
    wl += 32;
    wrap[wl++] = 0x22;
    wrap[wl++] = 48;
    memset(wrap + wl, 0x99, 48);
    wl += 48;
    for (int i = 0; i < 512; i++)
        put_len(&env, 6, wrap, wl);
    buf_init(&send);
    put_len(&send, 3, env.data, env.len);
    frame_bytes(&b, 8, 40, &send);
    assert_int_equal(proto_decode_measured(NULL, b.data, b.len, &got, &peak), 0);
    assert_int_equal(got->send->envelope->n_wraps, 512);
    assert_true(peak <= 2 * b.len + PROTO_DEFAULT_MEMORY_SLACK);
    proto_free(got);
    buf_cleanup(&b);
    buf_cleanup(&send);
    buf_cleanup(&env);
}

static void test_proto_truncated_input_rejected(void **state) {
    (void)state;
    Carechat__V1__Authenticate auth = CARECHAT__V1__AUTHENTICATE__INIT;
    uint8_t token[32];
    memset(token, 0x42, sizeof token);
    auth.session_token = bin(token, sizeof token);
    auth.device_id = bin(ID_A, 16);
    Carechat__V1__Frame frame = CARECHAT__V1__FRAME__INIT;
    frame.request_id = 300;
    frame.body_case = CARECHAT__V1__FRAME__BODY_AUTHENTICATE;
    frame.authenticate = &auth;
    struct buf b;
    buf_init(&b);
    assert_int_equal(proto_encode(&frame, &b), 0);

    /* The body comes last and its length covers the rest: every strict prefix
     * is either cut inside a field or lacks the body. */
    Carechat__V1__Frame *got = NULL;
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(proto_decode(NULL, b.data, n, &got), STATUS_BAD_REQUEST);
        assert_null(got);
    }
    assert_int_equal(proto_decode(NULL, b.data, b.len, &got), 0);
    assert_memory_equal(got->authenticate->session_token.data, token, sizeof token);
    proto_free(got);

    /* A varint that never ends, and a length running past the end. */
    const uint8_t endless[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                               0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    got = NULL;
    assert_int_equal(proto_decode(NULL, endless, sizeof endless, &got), STATUS_BAD_REQUEST);
    const uint8_t overrun[] = {0x08, 0x01, 0x12, 0x7f, 0x08, 0x00};
    assert_int_equal(proto_decode(NULL, overrun, sizeof overrun, &got), STATUS_BAD_REQUEST);
    assert_null(got);
    buf_cleanup(&b);
}

/* An empty element of a repeated bytes field (all are ids or hashes) is
 * refused, in frames and in entries; one of 16 bytes passes. */
static void test_proto_empty_repeated_bytes_element_rejected(void **state) {
    (void)state;
    struct buf inner, frame;
    buf_init(&inner);
    put_len(&inner, 1, ID_A, 16);
    put_varint(&inner, 2, 1);
    put_len(&inner, 3, ID_B, 16);
    frame_bytes(&frame, 7, 43, &inner); /* SendReceipt */
    Carechat__V1__Frame *f = NULL;
    assert_int_equal(decode_buf(&frame, &f), 0);
    proto_free(f);
    buf_cleanup(&frame);
    put_len(&inner, 3, "", 0);
    frame_bytes(&frame, 7, 43, &inner);
    f = NULL;
    assert_int_equal(decode_buf(&frame, &f), STATUS_BAD_REQUEST);
    assert_null(f);
    buf_cleanup(&frame);
    buf_cleanup(&inner);
    /* The entry the fuzzer found: MessageSend (70) given twice, merged, with
     * an empty member_device_ids (12) element. */
    static const uint8_t entry[] = {0xb2, 0x04, 0x00, 0xb2, 0x04, 0x02, 0x62, 0x00};
    Carechat__Entry__V1__Entry *e = NULL;
    assert_int_equal(proto_entry_decode(NULL, entry, sizeof entry, &e), STATUS_BAD_REQUEST);
    assert_null(e);
}

static void test_proto_request_id_zero_and_missing_body_rejected(void **state) {
    (void)state;
    Carechat__V1__Frame *got = NULL;
    struct buf inner, b;
    buf_init(&inner);
    put_len(&inner, 1, "cur", 3);

    /* Ack(41) with request_id 0 (written explicitly and left out). */
    frame_bytes(&b, 0, 41, &inner);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    buf_cleanup(&b);
    buf_init(&b);
    put_len(&b, 41, inner.data, inner.len);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    buf_cleanup(&b);
    frame_bytes(&b, 1, 41, &inner);
    assert_int_equal(decode_buf(&b, &got), 0);
    assert_int_equal(got->ack->cursor.len, 3);
    proto_free(got);
    got = NULL;
    buf_cleanup(&b);

    /* A request id and nothing else; and an empty message. */
    buf_init(&b);
    put_varint(&b, 1, 12);
    assert_int_equal(decode_buf(&b, &got), STATUS_BAD_REQUEST);
    assert_int_equal(proto_decode(NULL, b.data, 0, &got), STATUS_BAD_REQUEST);
    assert_null(got);
    buf_cleanup(&b);

    /* The encoder refuses to write what the decoder would refuse. */
    Carechat__V1__Logout logout = CARECHAT__V1__LOGOUT__INIT;
    Carechat__V1__Frame frame = CARECHAT__V1__FRAME__INIT;
    buf_init(&b);
    frame.request_id = 7;
    assert_int_equal(proto_encode(&frame, &b), STATUS_BAD_REQUEST);
    frame.request_id = 0;
    frame.body_case = CARECHAT__V1__FRAME__BODY_LOGOUT;
    frame.logout = &logout;
    assert_int_equal(proto_encode(&frame, &b), STATUS_BAD_REQUEST);
    assert_int_equal(b.len, 0);
    assert_string_equal(proto_body_name(&frame), "logout");
    frame.body_case = CARECHAT__V1__FRAME__BODY__NOT_SET;
    assert_string_equal(proto_body_name(&frame), "none");
    buf_cleanup(&b);
    buf_cleanup(&inner);
}

static void test_proto_body_bytes_finds_named_field(void **state) {
    (void)state;
    uint8_t conv[16] = {1, 2, 3};
    Carechat__V1__History h = CARECHAT__V1__HISTORY__INIT;
    h.conversation_id = (ProtobufCBinaryData){sizeof conv, conv};
    Carechat__V1__Frame frame = CARECHAT__V1__FRAME__INIT;
    frame.request_id = 1;
    frame.body_case = CARECHAT__V1__FRAME__BODY_HISTORY;
    frame.history = &h;
    ProtobufCBinaryData got = {0, NULL};
    assert_true(proto_body_bytes(&frame, "conversation_id", &got));
    assert_ptr_equal(got.data, conv);
    assert_int_equal(got.len, sizeof conv);
    /* A field of another type, an unknown name, a body without it. */
    assert_false(proto_body_bytes(&frame, "limit", &got));
    assert_false(proto_body_bytes(&frame, "no_such_field", &got));
    Carechat__V1__Logout logout = CARECHAT__V1__LOGOUT__INIT;
    frame.body_case = CARECHAT__V1__FRAME__BODY_LOGOUT;
    frame.logout = &logout;
    assert_false(proto_body_bytes(&frame, "conversation_id", &got));
    /* Repeated bytes fields are not single values. */
    Carechat__V1__SendReceipt r = CARECHAT__V1__SEND_RECEIPT__INIT;
    frame.body_case = CARECHAT__V1__FRAME__BODY_SEND_RECEIPT;
    frame.send_receipt = &r;
    assert_false(proto_body_bytes(&frame, "message_ids", &got));
    frame.body_case = CARECHAT__V1__FRAME__BODY__NOT_SET;
    assert_false(proto_body_bytes(&frame, "conversation_id", &got));
}

/* proto_delivery_frame() makes exactly what proto_encode() makes of the same
 * Delivery frame, for every device of a message: with and without its wrap,
 * urgent or not, recalled fields set, request ids and cursors across varint
 * lengths, large key ids, and a message big enough for two-byte lengths. */
static void test_proto_delivery_frame_is_proto_encode(void **state) {
    (void)state;
    static uint8_t body[20000], header[40], nonce[24], sig[64], enc[32], wrapped[48];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 13);
    memset(header, 0x4e, sizeof header);
    memset(nonce, 0x77, sizeof nonce);
    memset(sig, 0x51, sizeof sig);
    memset(enc, 0xe1, sizeof enc);
    memset(wrapped, 0x3a, sizeof wrapped);
    enum { N = 101 };
    static uint8_t ids[N][16];
    Carechat__V1__WrapRecipient rcp[N], *rcpp[N];
    for (int i = 0; i < N; i++) {
        memset(ids[i], i + 1, 16);
        carechat__v1__wrap_recipient__init(&rcp[i]);
        rcp[i].device_id = bin(ids[i], 16);
        rcp[i].key_id = (uint32_t)(i * 1000003u);
        rcpp[i] = &rcp[i];
    }
    const size_t body_lens[] = {0, 100, sizeof body};
    const uint64_t rids[] = {1, 127, 128, 300000, UINT64_MAX};
    const uint64_t positions[] = {0, 1, 127, 128, 1u << 20, UINT64_MAX};
    for (size_t b = 0; b < 3; b++) {
        Carechat__V1__Envelope env = CARECHAT__V1__ENVELOPE__INIT;
        env.version = 2;
        env.sender_device_id = bin(ID_A, 16);
        env.header = bin(header, sizeof header);
        env.body = bin(body, body_lens[b]);
        env.body_nonce = bin(nonce, sizeof nonce);
        env.signature = bin(sig, sizeof sig);
        env.sent_at = b ? 1700000000123 : 0;
        env.counter = b * 99;
        Carechat__V1__StoredMessage sm = CARECHAT__V1__STORED_MESSAGE__INIT;
        sm.message_id = bin(ID_B, 16);
        sm.conversation_id = bin(ID_A, 16);
        sm.seq = b ? 1u << (7 * b) : 0;
        sm.sender_account_id = bin(ID_B, 16);
        sm.sent_at = 1700000000000 + (int64_t)b;
        sm.urgent = b == 1;
        sm.envelope = &env;
        sm.client_msg_id = bin(ID_A, 16);
        sm.n_recipients = b ? N : 1;
        sm.recipients = rcpp;
        if (b == 2) {
            sm.recall_signer_device_id = bin(ID_A, 16); /* as odd as it gets */
            sm.recall_signature = bin(sig, sizeof sig);
        }
        struct proto_delivery d;
        proto_delivery_init(&d, &sm);
        for (int dev = 0; dev < N + 1; dev += 25) {
            Carechat__V1__KeyWrap w = CARECHAT__V1__KEY_WRAP__INIT;
            w.device_id = bin(ids[dev % N], 16);
            w.key_id = (uint32_t)dev * 40000000u;
            w.enc = bin(enc, sizeof enc);
            w.wrapped_key = bin(wrapped, sizeof wrapped);
            Carechat__V1__KeyWrap *wp = &w;
            bool none = dev == N; /* a device without a wrap */
            for (size_t r = 0; r < 5; r++) {
                uint8_t cursor[10];
                size_t cursor_len = 0;
                uint64_t pos = positions[(r + (size_t)dev) % 6];
                do { /* a varint, as rec_cursor_encode() writes it */
                    cursor[cursor_len++] = (uint8_t)((pos & 0x7f) | (pos >> 7 ? 0x80 : 0));
                    pos >>= 7;
                } while (pos);
                env.n_wraps = none ? 0 : 1;
                env.wraps = none ? NULL : &wp;
                Carechat__V1__Delivery del = CARECHAT__V1__DELIVERY__INIT;
                del.cursor = bin(cursor, cursor_len);
                del.item_case = CARECHAT__V1__DELIVERY__ITEM_MESSAGE;
                del.message = &sm;
                Carechat__V1__Frame f = CARECHAT__V1__FRAME__INIT;
                f.request_id = rids[r];
                f.body_case = CARECHAT__V1__FRAME__BODY_DELIVERY;
                f.delivery = &del;
                struct buf want, got;
                buf_init(&want);
                buf_init(&got);
                assert_int_equal(proto_encode(&f, &want), 0);
                proto_delivery_frame(&d, rids[r], cursor, cursor_len, none ? NULL : &w, &got);
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, want.len);
                buf_cleanup(&want);
                buf_cleanup(&got);
            }
        }
        proto_delivery_cleanup(&d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_round_trip_send),
        cmocka_unit_test(test_proto_round_trip_response_with_result),
        cmocka_unit_test(test_proto_round_trip_entry),
        cmocka_unit_test(test_proto_oversize_rejected_before_allocation),
        cmocka_unit_test(test_proto_unknown_fields_rejected),
        cmocka_unit_test(test_proto_undefined_enum_rejected),
        cmocka_unit_test(test_proto_invalid_utf8_rejected_in_nested_string),
        cmocka_unit_test(test_proto_size_limits_on_strings_and_repeated),
        cmocka_unit_test(test_proto_memory_budget_holds_for_hostile_frames),
        cmocka_unit_test(test_proto_truncated_input_rejected),
        cmocka_unit_test(test_proto_request_id_zero_and_missing_body_rejected),
        cmocka_unit_test(test_proto_empty_repeated_bytes_element_rejected),
        cmocka_unit_test(test_proto_body_bytes_finds_named_field),
        cmocka_unit_test(test_proto_delivery_frame_is_proto_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
