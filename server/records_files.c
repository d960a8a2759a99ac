/*
 * server/records_files.c: byte encodings of the file records (layouts in
 * server/records_files.h). Pure, any thread.
 */
#include "server/records_files.h"

#include <string.h>

#include "base/status.h"
#include "server/record_codec.h"

void rec_file_encode(const struct rec_file *f, struct buf *out) {
    rec_put_u8(out, REC_FILE_FORMAT);
    rec_put_u32(out, f->state);
    rec_put_id(out, &f->conversation);
    rec_put_u8(out, f->has_owner ? 1 : 0);
    rec_put_id(out, &f->owner);
    rec_put_id(out, &f->uploader);
    rec_put_id(out, &f->uploader_device);
    rec_put_u64(out, f->size);
    rec_put_u32(out, f->chunk_size);
    rec_put_u64(out, f->received);
    rec_put_u64(out, (uint64_t)f->created_at);
    rec_put_u64(out, (uint64_t)f->expires_at);
    rec_put_u64(out, (uint64_t)f->completed_at);
    rec_put_u64(out, (uint64_t)f->visible_until);
    rec_put_bytes(out, f->sha256, sizeof f->sha256);
    rec_put_bytes(out, f->hash_state, sizeof f->hash_state);
    rec_put_u8(out, f->has_message ? 1 : 0);
    rec_put_id(out, &f->client_msg_id);
}

/* Copies a fixed-length byte string field into `out` (n bytes). */
static void get_fixed(struct rec_reader *r, uint8_t *out, size_t n) {
    uint32_t len = rec_get_u32(r);
    const uint8_t *p = len == n ? rec_take(r, n) : NULL;
    if (!p) {
        r->bad = true;
        return;
    }
    memcpy(out, p, n);
}

int rec_file_decode(const uint8_t *data, size_t len, struct rec_file *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    rec_reader_init(&r, data, len);
    if (rec_get_u8(&r) != REC_FILE_FORMAT)
        return STATUS_CORRUPT;
    out->state = rec_get_u32(&r);
    rec_get_id(&r, &out->conversation);
    out->has_owner = rec_get_u8(&r) != 0;
    rec_get_id(&r, &out->owner);
    rec_get_id(&r, &out->uploader);
    rec_get_id(&r, &out->uploader_device);
    out->size = rec_get_u64(&r);
    out->chunk_size = rec_get_u32(&r);
    out->received = rec_get_u64(&r);
    out->created_at = (int64_t)rec_get_u64(&r);
    out->expires_at = (int64_t)rec_get_u64(&r);
    out->completed_at = (int64_t)rec_get_u64(&r);
    out->visible_until = (int64_t)rec_get_u64(&r);
    get_fixed(&r, out->sha256, sizeof out->sha256);
    get_fixed(&r, out->hash_state, sizeof out->hash_state);
    out->has_message = rec_get_u8(&r) != 0;
    rec_get_id(&r, &out->client_msg_id);
    if (r.bad || r.p != r.end || out->chunk_size == 0 || out->received > out->size ||
        (out->state != REC_FILE_UPLOADING && out->state != REC_FILE_COMPLETE))
        return STATUS_CORRUPT;
    return STATUS_OK;
}

void rec_file_usage_encode(const struct rec_file_usage *u, struct buf *out) {
    rec_put_u8(out, REC_FILE_FORMAT);
    rec_put_u64(out, u->bytes);
    rec_put_u32(out, u->uploads);
}

int rec_file_usage_decode(const uint8_t *data, size_t len, struct rec_file_usage *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    rec_reader_init(&r, data, len);
    if (rec_get_u8(&r) != REC_FILE_FORMAT)
        return STATUS_CORRUPT;
    out->bytes = rec_get_u64(&r);
    out->uploads = rec_get_u32(&r);
    return r.bad || r.p != r.end ? STATUS_CORRUPT : STATUS_OK;
}

uint64_t rec_file_chunks(const struct rec_file *f) {
    return (f->received + f->chunk_size - 1) / f->chunk_size;
}

void rec_key_file(struct key *k, const struct id *file) {
    key_id(k, file);
}

void rec_key_file_expiry_prefix(struct key *k) {
    static const uint8_t tag = 0x01;
    key_init(k);
    key_add_bytes(k, &tag, 1);
}

void rec_key_file_expiry(struct key *k, int64_t expires_at, const struct id *file) {
    rec_key_file_expiry_prefix(k);
    key_add_u64(k, (uint64_t)expires_at);
    key_add_id(k, file);
}

void rec_key_file_usage(struct key *k, const struct id *account) {
    static const uint8_t tag = 0x02;
    key_init(k);
    key_add_bytes(k, &tag, 1);
    key_add_id(k, account);
}
