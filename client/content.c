/*
 * client/content.c: MessageContent to and from libcarechat's structs
 * (client/content.h).
 */
#include "client/content.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/status.h"
#include "base/utf8.h"
#include "protocol/proto.h"

/* UTF-8 of at most `max` bytes without NUL. */
static bool good_text(const char *s, size_t len, size_t max) {
    return len <= max && memchr(s, '\0', len) == NULL && utf8_valid((const uint8_t *)s, len);
}

static bool good_file(const struct filecrypt_file *f) {
    return f->version == FILECRYPT_VERSION && f->size <= FILECRYPT_MAX_SIZE;
}

int content_encode(const struct carechat_content *in, struct buf *out) {
    if ((in->text_len > 0 && in->text == NULL) || (in->text_len == 0 && in->n_attachments == 0) ||
        in->n_attachments > CARECHAT_MAX_ATTACHMENTS ||
        (in->n_attachments > 0 && in->attachments == NULL) ||
        !good_text(in->text != NULL ? in->text : "", in->text_len, SIZE_MAX))
        return STATUS_BAD_REQUEST;
    for (size_t i = 0; i < in->n_attachments; i++) {
        const struct carechat_attachment *a = &in->attachments[i];
        if (!good_file(&a->file) ||
            !good_text(a->file_name, strnlen(a->file_name, sizeof a->file_name),
                       CARECHAT_MAX_FILE_NAME) ||
            !good_text(a->media_type, strnlen(a->media_type, sizeof a->media_type),
                       CARECHAT_MAX_MEDIA_TYPE))
            return STATUS_BAD_REQUEST;
    }
    /* protobuf-c's strings end at a NUL: a terminated copy of the text. */
    char *text = xmalloc(in->text_len + 1);
    if (in->text_len > 0)
        memcpy(text, in->text, in->text_len);
    text[in->text_len] = '\0';
    Carechat__V1__Attachment *atts = xcalloc(in->n_attachments + 1, sizeof *atts);
    Carechat__V1__Attachment **attp = xcalloc(in->n_attachments + 1, sizeof *attp);
    for (size_t i = 0; i < in->n_attachments; i++) {
        const struct carechat_attachment *a = &in->attachments[i];
        carechat__v1__attachment__init(&atts[i]);
        atts[i].file_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)a->file.file_id.b};
        atts[i].format_version = a->file.version;
        atts[i].key = (ProtobufCBinaryData){FILECRYPT_KEY_LEN, (uint8_t *)a->file.key};
        atts[i].ciphertext_sha256 =
            (ProtobufCBinaryData){FILECRYPT_DIGEST_LEN, (uint8_t *)a->file.sha256};
        atts[i].plaintext_size = a->file.size;
        atts[i].file_name = (char *)a->file_name;
        atts[i].media_type = (char *)a->media_type;
        attp[i] = &atts[i];
    }
    Carechat__V1__MessageContent mc;
    carechat__v1__message_content__init(&mc);
    mc.kind = CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_MESSAGE;
    mc.text = text;
    mc.n_attachments = in->n_attachments;
    mc.attachments = attp;
    if (in->reply_to != NULL)
        mc.reply_to_message_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)in->reply_to->b};
    struct buf enc;
    buf_init(&enc);
    proto_content_encode(&mc, &enc);
    int rc = enc.len > CARECHAT_MAX_MESSAGE ? STATUS_TOO_LARGE : 0;
    if (rc == 0)
        buf_append(out, enc.data, enc.len);
    buf_wipe(&enc);
    buf_cleanup(&enc);
    free(attp);
    free(atts);
    sodium_memzero(text, in->text_len);
    free(text);
    return rc;
}

/* Copies a decoded attachment; false when it breaks the rules. */
static bool take_attachment(const Carechat__V1__Attachment *in, struct carechat_attachment *out) {
    const size_t name_len = strlen(in->file_name);
    const size_t type_len = strlen(in->media_type);
    if (id_from_bytes(in->file_id.data, in->file_id.len, &out->file.file_id) != 0 ||
        in->key.len != FILECRYPT_KEY_LEN || in->ciphertext_sha256.len != FILECRYPT_DIGEST_LEN ||
        in->plaintext_size > FILECRYPT_MAX_SIZE || name_len > CARECHAT_MAX_FILE_NAME ||
        type_len > CARECHAT_MAX_MEDIA_TYPE)
        return false;
    /* A version this library cannot decrypt stays visible: filecrypt refuses it. */
    out->file.version = in->format_version;
    memcpy(out->file.key, in->key.data, FILECRYPT_KEY_LEN);
    memcpy(out->file.sha256, in->ciphertext_sha256.data, FILECRYPT_DIGEST_LEN);
    out->file.size = in->plaintext_size;
    memcpy(out->file_name, in->file_name, name_len + 1);
    memcpy(out->media_type, in->media_type, type_len + 1);
    return true;
}

enum carechat_message_state content_decode(const uint8_t *data, size_t len,
                                           struct carechat_message *m) {
    Carechat__V1__MessageContent *mc = NULL;
    if (proto_content_decode(data, len, CARECHAT_MAX_MESSAGE, &mc) != 0)
        return CARECHAT_MESSAGE_MALFORMED;
    enum carechat_message_state st = CARECHAT_MESSAGE_OK;
    struct id reply = {{0}};
    if ((int)mc->kind == CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_UNSPECIFIED)
        st = CARECHAT_MESSAGE_MALFORMED;
    else if (mc->kind != CARECHAT__V1__CONTENT_KIND__CONTENT_KIND_MESSAGE)
        st = CARECHAT_MESSAGE_UNSUPPORTED;
    else if (mc->n_attachments > CARECHAT_MAX_ATTACHMENTS ||
             (mc->reply_to_message_id.len != 0 &&
              id_from_bytes(mc->reply_to_message_id.data, mc->reply_to_message_id.len, &reply) !=
                  0))
        st = CARECHAT_MESSAGE_MALFORMED;
    struct carechat_attachment *atts = NULL;
    if (st == CARECHAT_MESSAGE_OK) {
        atts = xcalloc(mc->n_attachments + 1, sizeof *atts);
        for (size_t i = 0; st == CARECHAT_MESSAGE_OK && i < mc->n_attachments; i++)
            if (!take_attachment(mc->attachments[i], &atts[i]))
                st = CARECHAT_MESSAGE_MALFORMED;
    }
    if (st == CARECHAT_MESSAGE_OK) {
        /* The codec checked: UTF-8 without NUL. */
        m->text_len = strlen(mc->text);
        m->text = xmemdup(mc->text, m->text_len + 1);
        m->attachments = atts;
        m->n_attachments = mc->n_attachments;
        m->has_reply_to = mc->reply_to_message_id.len != 0;
        if (m->has_reply_to)
            m->reply_to = reply;
        atts = NULL;
    }
    if (atts != NULL) {
        sodium_memzero(atts, (mc->n_attachments + 1) * sizeof *atts);
        free(atts);
    }
    if (mc->text != NULL)
        sodium_memzero(mc->text, strlen(mc->text));
    for (size_t i = 0; i < mc->n_attachments; i++)
        sodium_memzero(mc->attachments[i]->key.data, mc->attachments[i]->key.len);
    proto_content_free(mc);
    return st;
}
