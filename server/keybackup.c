/*
 * server/keybackup.c: PutKeyBackupSegment, ListKeyBackup, GetKeyBackupSegment
 * and DeleteKeyBackup (contracts in keybackup.h). Segments are ciphertext
 * the server cannot open; they still never reach a log line or a detail. The
 * caps come from the configuration and travel in the entry, so apply (the
 * authority) decides with the same ones. Loop thread.
 */
#include "server/keybackup.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/records_keybackup.h"
#include "server/rules.h"
#include "storage/keys.h"

/* The caller's index (REC_KEY_BACKUP_EMPTY when it has none). */
static int read_index(struct handlers *h, const struct id *account, struct rec_key_backup *out) {
    struct key k;
    rec_key_backup_key(account, &k);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_KEY_BACKUP, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_key_backup_decode(v.data, v.len, out);
    else if (rc == STATUS_NOT_FOUND) {
        *out = (struct rec_key_backup)REC_KEY_BACKUP_EMPTY;
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

static struct rules_key_backup_caps caps_of(const struct handlers *h) {
    const struct server_config *c = h->cfg.config;
    return (struct rules_key_backup_caps){.segment_max = (uint32_t)config_key_backup_segment_max(c),
                                          .max_segments = c->key_backup_max_segments,
                                          .max_bytes = c->key_backup_quota};
}

/* The details of the refusals of a segment, by rules_key_backup_put()'s status. */
static const char *put_refusal(int rc) {
    switch (rc) {
    case STATUS_BAD_REQUEST:
        return "seq, data and a 16-byte key_id required";
    case STATUS_FORBIDDEN:
        return "another key than the key backup's, or the key of a backup turned off";
    case STATUS_TOO_LARGE:
        return "the key backup is full (segments or bytes): compact it";
    case STATUS_CONFLICT:
        return "not the next segment number, or other bytes under it: list the backup again";
    default:
        return "cannot write now";
    }
}

/* ---- PutKeyBackupSegment ------------------------------------------------------------------ */

struct put_op {
    uint64_t seq;
    uint32_t size;
    uint8_t sha256[REC_KEY_BACKUP_HASH_LEN];
};

int keybackup_put(struct req *r) {
    const Carechat__V1__PutKeyBackupSegment *m = r->frame->put_key_backup_segment;
    const struct rules_key_backup_caps caps = caps_of(r->h);
    /* The one size a peer controls, checked before anything is copied. */
    if (m->data.len > caps.segment_max)
        return req_fail(r, STATUS_TOO_LARGE, "a key backup segment is over the server's limit");
    if (m->seq == 0 || m->data.len == 0 || m->key_id.len != REC_KEY_BACKUP_KEY_ID_LEN)
        return req_fail(r, STATUS_BAD_REQUEST, put_refusal(STATUS_BAD_REQUEST));
    struct op *op = op_new(r, sizeof(struct put_op));
    struct put_op *po = OP_STATE(op, struct put_op);
    op->has_object = true; /* a refusal by apply is recorded against the account */
    op->object = r->hc->account;
    po->seq = m->seq;
    po->size = (uint32_t)m->data.len;
    rules_sha256(m->data.data, m->data.len, po->sha256);
    /* Early and cheap; apply checks again in journal order. */
    struct rec_key_backup b;
    int rc = read_index(r->h, &r->hc->account, &b);
    if (rc != 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the store");
    bool stored = false;
    rc = rules_key_backup_put(&b, &caps, m->seq, m->data.len, po->sha256, m->key_id.data, &stored);
    rec_key_backup_cleanup(&b);
    if (rc == STATUS_FORBIDDEN)
        return req_deny(r, rc, put_refusal(rc), r->hc->account.b, ID_LEN);
    if (rc != 0)
        return req_fail(r, rc, put_refusal(rc));
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__KeyBackupPut kp;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__key_backup_put__init(&kp);
    kp.seq = m->seq;
    kp.data = m->data;
    kp.segment_max = caps.segment_max;
    kp.max_segments = caps.max_segments;
    kp.max_total_bytes = caps.max_bytes;
    kp.key_id = m->key_id;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_KEY_BACKUP_PUT;
    e.key_backup_put = &kp;
    return op_propose(op, &e);
}

int keybackup_put_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    if (res->status != 0)
        return op_fail(op, res->status, put_refusal(res->status));
    const struct put_op *po = OP_STATE(op, struct put_op);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__KeyBackupSegmentInfo info;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__key_backup_segment_info__init(&info);
    info.seq = po->seq;
    info.size = po->size;
    info.created_at = res->len == 8 ? (int64_t)key_get_u64(res->data) : 0;
    info.sha256 = (ProtobufCBinaryData){REC_KEY_BACKUP_HASH_LEN, (uint8_t *)po->sha256};
    info.device_id = (ProtobufCBinaryData){ID_LEN, op->hc->device.b};
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_KEY_BACKUP_SEGMENT_INFO;
    resp.key_backup_segment_info = &info;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* ---- ListKeyBackup ------------------------------------------------------------------------ */

int keybackup_list(struct req *r) {
    struct rec_key_backup b;
    if (read_index(r->h, &r->hc->account, &b) != 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the store");
    const struct rules_key_backup_caps caps = caps_of(r->h);
    Carechat__V1__KeyBackupSegmentInfo *infos = xcalloc(b.n + 1, sizeof *infos);
    Carechat__V1__KeyBackupSegmentInfo **ptrs = xcalloc(b.n + 1, sizeof *ptrs);
    for (uint32_t i = 0; i < b.n; i++) {
        struct rec_key_backup_segment *s = &b.segments[i];
        carechat__v1__key_backup_segment_info__init(&infos[i]);
        infos[i].seq = s->seq;
        infos[i].size = s->size;
        infos[i].created_at = s->created_at;
        infos[i].sha256 = (ProtobufCBinaryData){REC_KEY_BACKUP_HASH_LEN, s->sha256};
        infos[i].device_id = (ProtobufCBinaryData){ID_LEN, s->device.b};
        ptrs[i] = &infos[i];
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__KeyBackupList list;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__key_backup_list__init(&list);
    list.n_segments = b.n;
    list.segments = ptrs;
    list.next_seq = b.next_seq;
    list.segment_max_bytes = caps.segment_max;
    list.max_segments = caps.max_segments;
    list.max_total_bytes = caps.max_bytes;
    list.total_bytes = b.total_bytes;
    static const uint8_t none[REC_KEY_BACKUP_KEY_ID_LEN];
    if (memcmp(b.key_id, none, sizeof none) != 0)
        list.key_id = (ProtobufCBinaryData){REC_KEY_BACKUP_KEY_ID_LEN, b.key_id};
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_KEY_BACKUP_LIST;
    resp.key_backup_list = &list;
    conn_send(r->conn, &frame);
    free(ptrs);
    free(infos);
    rec_key_backup_cleanup(&b);
    return STATUS_OK;
}

/* ---- GetKeyBackupSegment ------------------------------------------------------------------ */

int keybackup_get(struct req *r) {
    const Carechat__V1__GetKeyBackupSegment *m = r->frame->get_key_backup_segment;
    if (m->seq == 0)
        return req_fail(r, STATUS_BAD_REQUEST, "seq required");
    struct key k;
    rec_key_backup_segment_key(&r->hc->account, m->seq, &k);
    struct buf v;
    buf_init(&v);
    int rc = store_get(r->h->store, CF_KEY_BACKUP, k.b, k.len, &v);
    if (rc == STATUS_NOT_FOUND) {
        buf_cleanup(&v);
        return req_fail(r, STATUS_NOT_FOUND, "no such segment");
    }
    if (rc != 0) {
        buf_cleanup(&v);
        return req_fail(r, STATUS_INTERNAL, "cannot read the store");
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__KeyBackupSegment seg;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__key_backup_segment__init(&seg);
    seg.seq = m->seq;
    seg.data = (ProtobufCBinaryData){v.len, v.data};
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_KEY_BACKUP_SEGMENT;
    resp.key_backup_segment = &seg;
    conn_send(r->conn, &frame);
    buf_cleanup(&v);
    return STATUS_OK;
}

/* ---- DeleteKeyBackup ---------------------------------------------------------------------- */

int keybackup_delete(struct req *r) {
    const Carechat__V1__DeleteKeyBackup *m = r->frame->delete_key_backup;
    struct op *op = op_new(r, 0);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__KeyBackupDelete kd;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__key_backup_delete__init(&kd);
    kd.before_seq = m->before_seq;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_KEY_BACKUP_DELETE;
    e.key_backup_delete = &kd;
    return op_propose(op, &e);
}

int keybackup_delete_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    if (res->status != 0)
        return op_fail(op, res->status, "refused");
    conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}
