/*
 * server/files.c: the carechat.v1 file requests (UploadBegin, UploadChunk,
 * UploadComplete, UploadStatus, DownloadChunk), what both faces of the upload
 * store share (reading records and byte ranges, proposing entries), the
 * garbage collector of expired uploads and the file metrics.
 *
 * Handlers check early what they can see (sizes, limits, the uploader's
 * device); apply (apply_files.c) decides for good in journal order. A chunk is
 * answered only once its entry is durable. DownloadChunk is a `read` row: the
 * dispatcher authorizes it against the conversation of the file it names and
 * writes its access record before the bytes are served (handlers.c).
 *
 * Thread: the lws loop thread.
 */
#include "server/files.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "storage/blob.h"

/* ---- shared ------------------------------------------------------------------------ */

int files_read(struct handlers *h, const struct id *id, struct rec_file *out) {
    struct key k;
    rec_key_file(&k, id);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_FILES, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_file_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

int files_read_range(struct handlers *h, const struct id *id, const struct rec_file *f,
                     uint64_t offset, uint64_t len, struct buf *out) {
    struct buf chunk;
    buf_init(&chunk);
    int rc = STATUS_OK;
    while (len > 0) {
        uint64_t index = offset / f->chunk_size, skip = offset % f->chunk_size;
        rc = blob_get_chunk(h->store, id, index, &chunk);
        if (rc != 0)
            break;
        if (chunk.len <= skip) {
            rc = STATUS_CORRUPT;
            break;
        }
        uint64_t n = chunk.len - skip < len ? chunk.len - skip : len;
        buf_append(out, chunk.data + skip, (size_t)n);
        offset += n;
        len -= n;
    }
    buf_cleanup(&chunk);
    return rc;
}

int files_propose(struct handlers *h, const Carechat__Entry__V1__Entry *e, journal_done_fn done,
                  void *ctx) {
    struct buf b;
    buf_init(&b);
    int rc = proto_entry_encode(e, &b);
    if (rc == 0)
        rc = journal_append(h->journal, b.data, b.len, done, ctx);
    buf_cleanup(&b);
    return rc;
}

/* The file named by `field` of the request, which must be an upload of the
 * caller's device. Returns 0, or the status to answer. */
static int own_file(struct req *r, ProtobufCBinaryData field, struct id *id, struct rec_file *f) {
    if (id_from_bytes(field.data, field.len, id) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "file_id must be 16 bytes");
    int rc = files_read(r->h, id, f);
    if (rc == 0 && !id_equal(&f->uploader_device, &r->hc->device))
        rc = STATUS_NOT_FOUND;
    if (rc != 0)
        return req_deny(r, rc, "no such upload", field.data, ID_LEN);
    return STATUS_OK;
}

/* ---- UploadBegin ------------------------------------------------------------------------ */

struct begin_op {
    uint32_t chunk_size;
    int64_t expires_at;
};

int files_upload_begin(struct req *r) {
    const Carechat__V1__UploadBegin *m = r->frame->upload_begin;
    const struct server_config *cfg = r->h->cfg.config;
    if (m->size == 0)
        return req_fail(r, STATUS_BAD_REQUEST, "size must not be 0");
    if (m->chunk_size < FILES_CHUNK_MIN || m->chunk_size > FILES_CHUNK_MAX ||
        m->chunk_size % 1024 != 0)
        return req_fail(r, STATUS_BAD_REQUEST,
                        "chunk_size must be 4..128 KiB, a multiple of 1 KiB");
    if (m->size > cfg->file_max)
        return req_fail(r, STATUS_TOO_LARGE, "file larger than the server's limit");
    if (!ratelimit_take(r->h->rl_upload, r->hc->account.b, ID_LEN, clock_monotonic_ms()))
        return req_fail(r, STATUS_RATE_LIMITED, "too many uploads begun, retry later");
    if (store_check_space(r->h->store) != 0)
        return req_fail(r, STATUS_UNAVAILABLE, "the server's disk reserve is reached");
    struct op *op = op_new(r, sizeof(struct begin_op));
    struct begin_op *b = OP_STATE(op, struct begin_op);
    int64_t now = clock_now();
    op->has_object = true;
    op->object = id_new();
    b->chunk_size = m->chunk_size;
    b->expires_at = now + (int64_t)cfg->upload_ttl_s * 1000;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileBegin fb;
    entry_init(&e, now, &r->hc->account, &r->hc->device);
    carechat__entry__v1__file_begin__init(&fb);
    fb.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    fb.conversation_id = (ProtobufCBinaryData){ID_LEN, r->conv_id.b};
    fb.size = m->size;
    fb.chunk_size = m->chunk_size;
    fb.expires_at = b->expires_at;
    fb.max_uploads = cfg->uploads_max;
    fb.quota_bytes = cfg->upload_quota;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_BEGIN;
    e.file_begin = &fb;
    return op_propose(op, &e);
}

int files_upload_begin_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_NOT_FOUND      ? "no such conversation"
                       : res->status == STATUS_RATE_LIMITED ? "too many unfinished uploads"
                       : res->status == STATUS_TOO_LARGE    ? "upload quota exceeded"
                                                            : NULL);
    op->hc->h->files->uploads_started++;
    if (!op_live(op))
        return STATUS_OK;
    struct begin_op *b = OP_STATE(op, struct begin_op);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__UploadBeginResult ub;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__upload_begin_result__init(&ub);
    ub.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    ub.chunk_size = b->chunk_size;
    ub.expires_at = b->expires_at;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_UPLOAD_BEGIN;
    resp.upload_begin = &ub;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- UploadChunk ------------------------------------------------------------------------ */

struct chunk_op {
    size_t len;
};

int files_upload_chunk(struct req *r) {
    const Carechat__V1__UploadChunk *m = r->frame->upload_chunk;
    struct id id;
    struct rec_file f;
    int rc = own_file(r, m->file_id, &id, &f);
    if (rc != 0)
        return rc;
    if (m->data.len == 0)
        return req_fail(r, STATUS_BAD_REQUEST, "empty chunk");
    if (m->data.len > f.chunk_size || m->offset % f.chunk_size != 0)
        return req_fail(r, STATUS_BAD_REQUEST,
                        "offset must be a multiple of chunk_size, data "
                        "at most chunk_size");
    if (m->offset > f.size || m->data.len > f.size - m->offset)
        return req_fail(r, STATUS_TOO_LARGE, "past the declared size");
    if (f.state != REC_FILE_UPLOADING)
        return req_fail(r, STATUS_CONFLICT, "upload already complete");
    if (store_check_space(r->h->store) != 0)
        return req_fail(r, STATUS_UNAVAILABLE, "the server's disk reserve is reached");
    unsigned in_flight = 0;
    for (const struct op *o = r->hc->ops; o; o = o->next)
        in_flight += o->row == r->row;
    if (in_flight >= FILES_CHUNKS_IN_FLIGHT)
        return req_fail(r, STATUS_RATE_LIMITED, "too many chunks in flight on this connection");
    struct op *op = op_new(r, sizeof(struct chunk_op));
    OP_STATE(op, struct chunk_op)->len = m->data.len;
    op->has_object = true;
    op->object = id;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileChunk fc;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__file_chunk__init(&fc);
    fc.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    fc.index = m->offset / f.chunk_size;
    fc.data = m->data;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_CHUNK;
    e.file_chunk = &fc;
    return op_propose(op, &e);
}

int files_upload_chunk_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_CONFLICT      ? "other bytes at a stored offset, or "
                                                             "the upload is complete"
                       : res->status == STATUS_BAD_REQUEST ? "chunk past the bytes received"
                       : res->status == STATUS_NOT_FOUND   ? "no such upload, or expired"
                                                           : NULL);
    if (res->len != 8)
        return op_fail(op, STATUS_INTERNAL, NULL);
    op->hc->h->files->bytes_in += OP_STATE(op, struct chunk_op)->len;
    if (!op_live(op))
        return STATUS_OK;
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__UploadChunkResult uc;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__upload_chunk_result__init(&uc);
    uc.received = key_get_u64(res->data);
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_UPLOAD_CHUNK;
    resp.upload_chunk = &uc;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- UploadComplete ---------------------------------------------------------------------- */

int files_upload_complete(struct req *r) {
    const Carechat__V1__UploadComplete *m = r->frame->upload_complete;
    struct id id;
    struct rec_file f;
    int rc = own_file(r, m->file_id, &id, &f);
    if (rc != 0)
        return rc;
    if (m->sha256.len != REC_FILE_SHA256_LEN)
        return req_fail(r, STATUS_BAD_REQUEST, "sha256 must be 32 bytes");
    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = id;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileComplete fc;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__file_complete__init(&fc);
    fc.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    fc.sha256 = m->sha256;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_COMPLETE;
    e.file_complete = &fc;
    return op_propose(op, &e);
}

int files_upload_complete_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_CONFLICT    ? "chunks missing, or another SHA-256"
                       : res->status == STATUS_NOT_FOUND ? "no such upload, or expired"
                                                         : NULL);
    struct handlers *h = op->hc->h;
    struct rec_file f;
    int rc = files_read(h, &op->object, &f);
    if (rc != 0)
        return op_fail(op, rc, NULL);
    h->files->uploads_completed++;
    if (!op_live(op))
        return STATUS_OK;
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__FileInfo fi;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__file_info__init(&fi);
    fi.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    fi.conversation_id = (ProtobufCBinaryData){ID_LEN, f.conversation.b};
    fi.size = f.size;
    fi.sha256 = (ProtobufCBinaryData){REC_FILE_SHA256_LEN, f.sha256};
    fi.uploader_account_id = (ProtobufCBinaryData){ID_LEN, f.uploader.b};
    fi.completed_at = f.completed_at;
    fi.chunk_size = f.chunk_size;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_FILE;
    resp.file = &fi;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- UploadStatus ---------------------------------------------------------------------- */

int files_upload_status(struct req *r) {
    const Carechat__V1__UploadStatus *m = r->frame->upload_status;
    struct id id;
    struct rec_file f;
    int rc = own_file(r, m->file_id, &id, &f);
    if (rc != 0)
        return rc;
    if (f.state == REC_FILE_UPLOADING && clock_now() >= f.expires_at)
        return req_deny(r, STATUS_NOT_FOUND, "upload expired", m->file_id.data, ID_LEN);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__UploadStatusResult us;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__upload_status_result__init(&us);
    us.file_id = (ProtobufCBinaryData){ID_LEN, id.b};
    us.conversation_id = (ProtobufCBinaryData){ID_LEN, f.conversation.b};
    us.size = f.size;
    us.chunk_size = f.chunk_size;
    us.received = f.received;
    us.expires_at = f.state == REC_FILE_UPLOADING ? f.expires_at : 0;
    us.complete = f.state == REC_FILE_COMPLETE;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_UPLOAD_STATUS;
    resp.upload_status = &us;
    conn_send(r->conn, &frame);
    return STATUS_OK;
}

/* ---- FileBind ------------------------------------------------------------------------- */

int files_bind(struct req *r) {
    const Carechat__V1__FileBind *m = r->frame->file_bind;
    struct id id, cmid;
    struct rec_file f;
    int rc = own_file(r, m->file_id, &id, &f);
    if (rc != 0)
        return rc;
    if (id_from_bytes(m->client_msg_id.data, m->client_msg_id.len, &cmid) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "client_msg_id must be 16 bytes");
    struct op *op = op_new(r, 0);
    op->has_object = true;
    op->object = id;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__FileBind fb;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__file_bind__init(&fb);
    fb.file_id = (ProtobufCBinaryData){ID_LEN, op->object.b};
    fb.client_msg_id = m->client_msg_id;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_BIND;
    e.file_bind = &fb;
    return op_propose(op, &e);
}

int files_bind_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_CONFLICT    ? "the file is bound to another message"
                       : res->status == STATUS_NOT_FOUND ? "no such upload, or expired"
                                                         : NULL);
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}

bool files_recalled(struct handlers *h, const struct rec_file *f) {
    if (!f->has_message)
        return false;
    struct key k;
    rec_key_idem(&k, &f->conversation, &f->uploader, &f->client_msg_id);
    struct buf v;
    buf_init(&v);
    struct rec_sent sent;
    bool recalled = false;
    if (store_get(h->store, CF_IDEMPOTENCY, k.b, k.len, &v) == 0 &&
        rec_sent_decode(v.data, v.len, &sent) == 0) {
        key_id_u64(&k, &f->conversation, sent.seq);
        struct rec_message msg;
        if (store_get(h->store, CF_MESSAGES, k.b, k.len, &v) == 0 &&
            rec_message_decode(v.data, v.len, &msg) == 0)
            recalled = msg.recalled_at != 0;
    }
    buf_cleanup(&v);
    return recalled;
}

/* ---- DownloadChunk ---------------------------------------------------------------------- */

int files_download_chunk(struct req *r) {
    const Carechat__V1__DownloadChunk *m = r->frame->download_chunk;
    struct id id;
    if (id_from_bytes(m->file_id.data, m->file_id.len, &id) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "file_id must be 16 bytes");
    struct rec_file f;
    int rc = files_read(r->h, &id, &f);
    /* Authorization checked membership in the file's conversation; an
     * unfinished upload is nobody's to download yet. */
    if (rc == 0 && (f.state != REC_FILE_COMPLETE || !id_equal(&f.conversation, &r->conv_id) ||
                    files_recalled(r->h, &f)))
        rc = STATUS_NOT_FOUND;
    if (rc != 0)
        return req_deny(r, rc, "no such file", m->file_id.data, ID_LEN);
    if (m->length == 0 || m->length > FILES_CHUNK_MAX || m->offset >= f.size)
        return req_fail(r, STATUS_BAD_REQUEST, "length 1..128 KiB, offset within the file");
    uint64_t len = f.size - m->offset < m->length ? f.size - m->offset : m->length;
    struct buf data;
    buf_init(&data);
    rc = files_read_range(r->h, &id, &f, m->offset, len, &data);
    if (rc != 0) {
        buf_cleanup(&data);
        return req_deny(r, rc == STATUS_NOT_FOUND ? STATUS_NOT_FOUND : rc, "no such file",
                        m->file_id.data, ID_LEN);
    }
    r->h->files->bytes_out += data.len;
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__DownloadChunkResult dc;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__download_chunk_result__init(&dc);
    dc.offset = m->offset;
    dc.data = (ProtobufCBinaryData){data.len, data.data};
    dc.size = f.size;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_DOWNLOAD_CHUNK;
    resp.download_chunk = &dc;
    conn_send(r->conn, &frame);
    buf_cleanup(&data);
    return STATUS_OK;
}

/* ---- garbage collection and metrics ------------------------------------------------------- */

struct gc_scan {
    int64_t now;
    size_t n;
    struct id ids[FILES_GC_BATCH];
    int64_t expires[FILES_GC_BATCH];
};

static bool gc_visit(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len) {
    (void)value;
    (void)value_len;
    struct gc_scan *s = ctx;
    if (key_len != REC_KEY_FILE_EXPIRY_LEN)
        return true; /* a file id that happens to start with the tag */
    if ((int64_t)key_get_u64(key + 1) > s->now)
        return false;
    memcpy(s->ids[s->n].b, key + 9, ID_LEN);
    s->expires[s->n] = (int64_t)key_get_u64(key + 1);
    return ++s->n < FILES_GC_BATCH;
}

static void gc_done(void *ctx, uint64_t pos, int status, const uint8_t *result, size_t len) {
    (void)pos;
    (void)result;
    (void)len;
    struct handlers *h = ctx;
    if (status == 0)
        h->files->uploads_expired++;
}

void files_gc(struct handlers *h) {
    int64_t mono = clock_monotonic_ms();
    if (mono < h->files->next_gc_ms)
        return;
    h->files->next_gc_ms = mono + FILES_GC_INTERVAL_MS;
    struct gc_scan s = {.now = clock_now()};
    struct key prefix;
    rec_key_file_expiry_prefix(&prefix);
    int rc = store_scan(h->store, CF_FILES, prefix.b, prefix.len, NULL, 0, 4 * FILES_GC_BATCH,
                        gc_visit, &s);
    if (rc < 0) {
        log_warn("files", "cannot scan expired uploads (%s)", status_str(rc));
        return;
    }
    for (size_t i = 0; i < s.n; i++) {
        Carechat__Entry__V1__Entry e;
        Carechat__Entry__V1__FileDelete fd;
        entry_init(&e, s.now, NULL, NULL);
        carechat__entry__v1__file_delete__init(&fd);
        fd.file_id = (ProtobufCBinaryData){ID_LEN, s.ids[i].b};
        fd.reason = 2;
        fd.expires_at = s.expires[i];
        e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_FILE_DELETE;
        e.file_delete = &fd;
        if (files_propose(h, &e, gc_done, h) != 0)
            break;
    }
}

void files_render_metrics(struct handlers *h, struct buf *out) {
    const struct files_stats *s = h->files;
    char text[1024];
    int n = snprintf(text, sizeof text,
                     "# TYPE carechat_file_bytes_in_total counter\n"
                     "carechat_file_bytes_in_total %" PRIu64 "\n"
                     "# TYPE carechat_file_bytes_out_total counter\n"
                     "carechat_file_bytes_out_total %" PRIu64 "\n"
                     "# TYPE carechat_uploads_total counter\n"
                     "carechat_uploads_total{event=\"started\"} %" PRIu64 "\n"
                     "carechat_uploads_total{event=\"completed\"} %" PRIu64 "\n"
                     "carechat_uploads_total{event=\"expired\"} %" PRIu64 "\n"
                     "carechat_uploads_total{event=\"terminated\"} %" PRIu64 "\n",
                     s->bytes_in, s->bytes_out, s->uploads_started, s->uploads_completed,
                     s->uploads_expired, s->uploads_terminated);
    if (n > 0)
        buf_append(out, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}
