/*
 * client/content_test.c: the end-to-end plaintext of a message
 * (client/content.h, carechat.proto MessageContent): a round trip with text,
 * attachments and a reply; what is refused before sending; and what a
 * received plaintext becomes: malformed (not UTF-8, NUL, bad attachment, no
 * kind, the pre-MessageContent raw text), unsupported (a newer kind), or OK
 * with fields a newer client added.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/carechat.h"
#include "client/content.h"
#include "protocol/proto.h"

static struct carechat_attachment sample_attachment(void) {
    struct carechat_attachment a;
    memset(&a, 0, sizeof a);
    a.file.file_id = id_new();
    a.file.version = FILECRYPT_VERSION;
    rand_bytes(a.file.key, sizeof a.file.key);
    rand_bytes(a.file.sha256, sizeof a.file.sha256);
    a.file.size = 3 * 1024 * 1024 + 7;
    strcpy(a.file_name, "r\xc3\xb6ntgen \"links\".jpg");
    strcpy(a.media_type, "image/jpeg");
    return a;
}

static enum carechat_message_state decode(const struct buf *b, struct carechat_message *m) {
    memset(m, 0, sizeof *m);
    return content_decode(b->data, b->len, m);
}

static void test_content_round_trip(void **state) {
    (void)state;
    struct carechat_attachment atts[2] = {sample_attachment(), sample_attachment()};
    strcpy(atts[1].media_type, "");
    const struct id reply = id_new();
    static const char text[] = "Ihre Befunde \xe2\x9c\x93 \x1b tab\there";
    const struct carechat_content in = {
        .text = text,
        .text_len = sizeof text - 1,
        .attachments = atts,
        .n_attachments = 2,
        .reply_to = &reply,
    };
    struct buf b;
    buf_init(&b);
    assert_int_equal(content_encode(&in, &b), 0);
    struct carechat_message m;
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_OK);
    assert_int_equal(m.text_len, sizeof text - 1);
    assert_string_equal(m.text, text);
    assert_int_equal(m.n_attachments, 2);
    for (size_t i = 0; i < 2; i++) {
        const struct carechat_attachment *got = &m.attachments[i], *want = &atts[i];
        assert_memory_equal(got->file.file_id.b, want->file.file_id.b, ID_LEN);
        assert_int_equal(got->file.version, FILECRYPT_VERSION);
        assert_memory_equal(got->file.key, want->file.key, FILECRYPT_KEY_LEN);
        assert_memory_equal(got->file.sha256, want->file.sha256, FILECRYPT_DIGEST_LEN);
        assert_int_equal(got->file.size, want->file.size);
        assert_string_equal(got->file_name, want->file_name);
        assert_string_equal(got->media_type, want->media_type);
    }
    assert_true(m.has_reply_to);
    assert_memory_equal(m.reply_to.b, reply.b, ID_LEN);
    carechat_message_cleanup(&m);
    assert_null(m.text);
    assert_null(m.attachments);

    /* Attachments only; text only. */
    const struct carechat_content files = {.attachments = atts, .n_attachments = 1};
    buf_reset(&b);
    assert_int_equal(content_encode(&files, &b), 0);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_OK);
    assert_string_equal(m.text, "");
    assert_int_equal(m.n_attachments, 1);
    assert_false(m.has_reply_to);
    carechat_message_cleanup(&m);
    buf_cleanup(&b);
}

static void test_content_encode_refuses(void **state) {
    (void)state;
    struct buf b;
    buf_init(&b);
    struct carechat_content c = {.text = "caf\xe9", .text_len = 4};
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST); /* not UTF-8 */
    c = (struct carechat_content){.text = "a\0b", .text_len = 3};
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST); /* NUL */
    c = (struct carechat_content){.text = "", .text_len = 0};
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST); /* nothing */
    struct carechat_attachment a = sample_attachment();
    a.file.version = 2;
    c = (struct carechat_content){.attachments = &a, .n_attachments = 1};
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST);
    a = sample_attachment();
    a.file_name[0] = (char)0xff;
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST);
    a = sample_attachment();
    a.file.size = FILECRYPT_MAX_SIZE + 1;
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST);
    struct carechat_attachment many[CARECHAT_MAX_ATTACHMENTS + 1];
    for (size_t i = 0; i <= CARECHAT_MAX_ATTACHMENTS; i++)
        many[i] = sample_attachment();
    c = (struct carechat_content){.attachments = many,
                                  .n_attachments = CARECHAT_MAX_ATTACHMENTS + 1};
    assert_int_equal(content_encode(&c, &b), STATUS_BAD_REQUEST);
    c.n_attachments = CARECHAT_MAX_ATTACHMENTS;
    assert_int_equal(content_encode(&c, &b), 0);
    buf_reset(&b);
    /* The longest text fits; one byte more does not. */
    static char longest[CARECHAT_MAX_TEXT + 2];
    memset(longest, 'x', sizeof longest);
    c = (struct carechat_content){.text = longest, .text_len = CARECHAT_MAX_TEXT};
    assert_int_equal(content_encode(&c, &b), 0);
    assert_int_equal(b.len, CARECHAT_MAX_MESSAGE);
    buf_reset(&b);
    c.text_len++;
    assert_int_equal(content_encode(&c, &b), STATUS_TOO_LARGE);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b);
}

/* Encodes `mc` as a peer would (no checks). */
static void raw(const Carechat__V1__MessageContent *mc, struct buf *b) {
    buf_reset(b);
    proto_content_encode(mc, b);
}

static void test_content_decode_refuses_and_tolerates(void **state) {
    (void)state;
    struct buf b;
    buf_init(&b);
    struct carechat_message m;
    Carechat__V1__MessageContent mc;
    carechat__v1__message_content__init(&mc);
    mc.kind = CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_MESSAGE;
    mc.text = (char *)"ok \xff\xfe";
    raw(&mc, &b);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_MALFORMED); /* not UTF-8 */
    assert_null(m.text);
    mc.text = (char *)"fine";
    mc.kind = CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_UNSPECIFIED;
    raw(&mc, &b);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_MALFORMED); /* no kind */
    mc.kind = (Carechat__V1__ContentKind)7;
    raw(&mc, &b);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_UNSUPPORTED); /* a newer kind */
    assert_null(m.text);
    mc.kind = CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_MESSAGE;
    mc.reply_to_message_id = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
    raw(&mc, &b);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_MALFORMED); /* reply id of 3 bytes */
    mc.reply_to_message_id = (ProtobufCBinaryData){0, NULL};
    Carechat__V1__Attachment a;
    carechat__v1__attachment__init(&a);
    Carechat__V1__Attachment *ap = &a;
    uint8_t id[16] = {1}, key[32] = {2}, digest[31] = {3};
    a.file_id = (ProtobufCBinaryData){16, id};
    a.key = (ProtobufCBinaryData){32, key};
    a.ciphertext_sha256 = (ProtobufCBinaryData){31, digest}; /* one byte short */
    a.format_version = 1;
    mc.n_attachments = 1;
    mc.attachments = &ap;
    raw(&mc, &b);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_MALFORMED);
    mc.n_attachments = 0;
    /* What a newer client added (an unknown field 16) still reads. */
    raw(&mc, &b);
    static const uint8_t extra[] = {0x80, 0x01, 0x05}; /* field 16, varint 5 */
    buf_append(&b, extra, sizeof extra);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_OK);
    assert_string_equal(m.text, "fine");
    carechat_message_cleanup(&m);
    /* The plaintext before MessageContent (raw text) and garbage. */
    buf_reset(&b);
    buf_append(&b, "hello", 5);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_MALFORMED);
    buf_reset(&b);
    buf_append(&b, "\xff\xff\xff", 3);
    assert_int_equal(decode(&b, &m), CARECHAT_MESSAGE_MALFORMED);
    buf_cleanup(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_round_trip),
        cmocka_unit_test(test_content_encode_refuses),
        cmocka_unit_test(test_content_decode_refuses_and_tolerates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
