/*
 * server/apply_files.c: the entry kinds of files (FileBegin, FileChunk,
 * FileComplete, FileDelete), the state machine drawn in
 * server/records_files.h. Every check a handler made early (membership,
 * limits, the uploader's device, offsets) is made again here in journal order,
 * and decides.
 *
 * Writer thread only; pure like apply_entry(): the time is the entry's, the
 * limits are carried in the entry.
 */
#include <sodium.h>
#include <string.h>

#include "base/status.h"
#include "server/apply_internal.h"
#include "server/records_files.h"
#include "server/rules.h"
#include "storage/blob.h"

_Static_assert(sizeof(crypto_hash_sha256_state) == REC_FILE_HASH_STATE_LEN,
               "the stored SHA-256 state has libsodium's layout");

/* The file reasons of FileDelete (entry.proto). */
#define DELETE_TERMINATED 1
#define DELETE_EXPIRED 2

static int read_file(struct store_txn *txn, const struct id *file, struct rec_file *out) {
    struct key k;
    rec_key_file(&k, file);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_FILES, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_file_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

static int write_file(struct store_txn *txn, const struct id *file, const struct rec_file *f) {
    struct key k;
    rec_key_file(&k, file);
    struct buf v;
    buf_init(&v);
    rec_file_encode(f, &v);
    int rc = apply_put(txn, CF_FILES, &k, f->has_owner ? &f->owner : NULL, &v);
    buf_cleanup(&v);
    return rc;
}

static int read_usage(struct store_txn *txn, const struct id *account, struct rec_file_usage *u) {
    struct key k;
    rec_key_file_usage(&k, account);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_FILES, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_file_usage_decode(v.data, v.len, u);
    else if (rc == STATUS_NOT_FOUND) {
        memset(u, 0, sizeof *u);
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

static int write_usage(struct store_txn *txn, const struct id *account,
                       const struct rec_file_usage *u) {
    struct key k;
    rec_key_file_usage(&k, account);
    struct buf v;
    buf_init(&v);
    rec_file_usage_encode(u, &v);
    int rc = apply_put(txn, CF_FILES, &k, account, &v);
    buf_cleanup(&v);
    return rc;
}

static int put_expiry(struct store_txn *txn, const struct rec_file *f, const struct id *file) {
    struct key k;
    rec_key_file_expiry(&k, f->expires_at, file);
    static const uint8_t mark = 1;
    return txn_put(txn, CF_FILES, k.b, k.len, NULL, &mark, 1);
}

static int delete_expiry(struct store_txn *txn, const struct rec_file *f, const struct id *file) {
    struct key k;
    rec_key_file_expiry(&k, f->expires_at, file);
    return txn_delete(txn, CF_FILES, k.b, k.len);
}

/* The file an entry of the uploader names, unfinished and unexpired at the
 * entry's time: 0, or NOT_FOUND (also for another device's upload). */
static int uploading_file(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                          ProtobufCBinaryData id_field, struct id *file, struct rec_file *f) {
    struct id device;
    if (!apply_id_field(id_field, file) || !apply_id_field(e->actor_device_id, &device))
        return STATUS_BAD_REQUEST;
    int rc = read_file(txn, file, f);
    if (rc != 0)
        return rc;
    if (!id_equal(&f->uploader_device, &device))
        return STATUS_NOT_FOUND;
    if (f->state == REC_FILE_UPLOADING && e->time >= f->expires_at)
        return STATUS_NOT_FOUND;
    return STATUS_OK;
}

int apply_file_begin(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__FileBegin *m = e->file_begin;
    struct id file, conv, actor, device;
    if (!m || !apply_id_field(m->file_id, &file) || !apply_id_field(m->conversation_id, &conv) ||
        !apply_id_field(e->actor_account_id, &actor) ||
        !apply_id_field(e->actor_device_id, &device) || m->size == 0 || m->chunk_size == 0 ||
        m->chunk_size > BLOB_MAX_CHUNK || m->expires_at <= e->time ||
        (m->sha256.len != 0 && m->sha256.len != REC_FILE_SHA256_LEN))
        return STATUS_BAD_REQUEST;
    struct rec_member mem;
    int rc = apply_read_member(txn, &conv, &actor, &mem);
    if (rc == STATUS_NOT_FOUND || (rc == 0 && mem.state != REC_ACTIVE))
        return STATUS_NOT_FOUND;
    if (rc != 0)
        return rc;
    struct rec_conv c; /* a deactivated patient's is read-only: FORBIDDEN */
    if ((rc = apply_read_open_conv(txn, &conv, &c)) != 0)
        return rc;
    struct key k;
    rec_key_file(&k, &file);
    rc = apply_exists(txn, CF_FILES, k.b, k.len);
    if (rc == 0)
        return STATUS_CONFLICT;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    struct rec_file_usage u;
    if ((rc = read_usage(txn, &actor, &u)) != 0)
        return rc;
    if (m->max_uploads && u.uploads >= m->max_uploads)
        return STATUS_RATE_LIMITED;
    if (m->quota_bytes && (u.bytes > m->quota_bytes || m->size > m->quota_bytes - u.bytes))
        return STATUS_TOO_LARGE;
    struct rec_file f;
    memset(&f, 0, sizeof f);
    f.state = REC_FILE_UPLOADING;
    f.conversation = conv;
    f.has_owner = c.has_owner;
    f.owner = c.owner;
    f.uploader = actor;
    f.uploader_device = device;
    f.size = m->size;
    f.chunk_size = m->chunk_size;
    f.created_at = e->time;
    f.expires_at = m->expires_at;
    if (m->sha256.len)
        memcpy(f.sha256, m->sha256.data, REC_FILE_SHA256_LEN);
    crypto_hash_sha256_init((crypto_hash_sha256_state *)(void *)f.hash_state);
    u.bytes += m->size;
    u.uploads++;
    if ((rc = write_file(txn, &file, &f)) != 0 || (rc = put_expiry(txn, &f, &file)) != 0 ||
        (rc = write_usage(txn, &actor, &u)) != 0)
        return rc;
    return apply_audit(txn, e, REC_AUDIT_FILE_UPLOAD, 0, NULL, file.b, ID_LEN,
                       f.has_owner ? &f.owner : NULL);
}

int apply_file_chunk(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                     struct buf *result) {
    const Carechat__Entry__V1__FileChunk *m = e->file_chunk;
    if (!m || m->data.len == 0)
        return STATUS_BAD_REQUEST;
    struct id file;
    struct rec_file f;
    int rc = uploading_file(txn, e, m->file_id, &file, &f);
    if (rc != 0)
        return rc;
    if (f.state != REC_FILE_UPLOADING)
        return STATUS_CONFLICT;
    if (m->data.len > f.chunk_size || m->index > f.size / f.chunk_size)
        return STATUS_BAD_REQUEST;
    uint64_t start = m->index * f.chunk_size;
    if (start > f.size || m->data.len > f.size - start)
        return STATUS_TOO_LARGE;
    if (start > f.received)
        return STATUS_BAD_REQUEST; /* a gap */
    uint64_t end = start + m->data.len;
    /* Bytes of this chunk already stored must be sent again unchanged. */
    uint64_t stored = f.received - start < m->data.len ? f.received - start : m->data.len;
    if (stored > 0) {
        struct buf old;
        buf_init(&old);
        rc = blob_get_chunk_txn(txn, &file, m->index, &old);
        bool same = rc == 0 && old.len >= stored && memcmp(old.data, m->data.data, stored) == 0;
        buf_cleanup(&old);
        if (rc != 0 && rc != STATUS_NOT_FOUND)
            return rc;
        if (!same)
            return STATUS_CONFLICT;
    }
    if (end > f.received) {
        rc = blob_put_chunk(txn, &file, m->index, f.has_owner ? &f.owner : NULL, m->data.data,
                            m->data.len);
        if (rc != 0)
            return rc;
        crypto_hash_sha256_update((crypto_hash_sha256_state *)(void *)f.hash_state,
                                  m->data.data + stored, m->data.len - stored);
        f.received = end;
        if ((rc = write_file(txn, &file, &f)) != 0)
            return rc;
    }
    uint8_t out[8];
    key_put_u64(out, f.received);
    buf_append(result, out, sizeof out);
    return STATUS_OK;
}

int apply_file_complete(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__FileComplete *m = e->file_complete;
    if (!m || m->sha256.len != REC_FILE_SHA256_LEN)
        return STATUS_BAD_REQUEST;
    struct id file;
    struct rec_file f;
    int rc = uploading_file(txn, e, m->file_id, &file, &f);
    if (rc != 0)
        return rc;
    if (f.state == REC_FILE_COMPLETE)
        return memcmp(f.sha256, m->sha256.data, REC_FILE_SHA256_LEN) == 0 ? STATUS_OK
                                                                          : STATUS_CONFLICT;
    if (f.received != f.size)
        return STATUS_CONFLICT;
    crypto_hash_sha256_state st;
    memcpy(&st, f.hash_state, sizeof st);
    crypto_hash_sha256_final(&st, f.sha256);
    if (memcmp(f.sha256, m->sha256.data, REC_FILE_SHA256_LEN) != 0)
        return STATUS_CONFLICT;
    struct rec_file_usage u;
    if ((rc = read_usage(txn, &f.uploader, &u)) != 0)
        return rc;
    if (u.uploads > 0)
        u.uploads--;
    if ((rc = delete_expiry(txn, &f, &file)) != 0)
        return rc;
    f.state = REC_FILE_COMPLETE;
    f.completed_at = e->time;
    memset(f.hash_state, 0, sizeof f.hash_state);
    if ((rc = write_file(txn, &file, &f)) != 0 || (rc = write_usage(txn, &f.uploader, &u)) != 0)
        return rc;
    return apply_audit(txn, e, REC_AUDIT_FILE_UPLOAD_COMPLETE, 0, NULL, file.b, ID_LEN,
                       f.has_owner ? &f.owner : NULL);
}

int apply_file_delete(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                      struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__FileDelete *m = e->file_delete;
    if (!m || (m->reason != DELETE_TERMINATED && m->reason != DELETE_EXPIRED))
        return STATUS_BAD_REQUEST;
    struct id file;
    struct rec_file f;
    int rc;
    if (m->reason == DELETE_TERMINATED) {
        if ((rc = uploading_file(txn, e, m->file_id, &file, &f)) != 0)
            return rc;
    } else {
        if (!apply_id_field(m->file_id, &file))
            return STATUS_BAD_REQUEST;
        rc = read_file(txn, &file, &f);
        if (rc == STATUS_NOT_FOUND && m->expires_at != 0 && e->time >= m->expires_at) {
            struct key k;
            rec_key_file_expiry(&k, m->expires_at, &file);
            return txn_delete(txn, CF_FILES, k.b, k.len);
        }
        if (rc != 0)
            return rc;
        if (f.state == REC_FILE_UPLOADING && e->time < f.expires_at)
            return STATUS_CONFLICT;
    }
    if (f.state != REC_FILE_UPLOADING)
        return STATUS_CONFLICT;
    struct rec_file_usage u;
    if ((rc = read_usage(txn, &f.uploader, &u)) != 0)
        return rc;
    u.bytes = u.bytes > f.size ? u.bytes - f.size : 0;
    if (u.uploads > 0)
        u.uploads--;
    struct key k;
    rec_key_file(&k, &file);
    if ((rc = blob_delete_chunks(txn, &file, rec_file_chunks(&f))) != 0 ||
        (rc = delete_expiry(txn, &f, &file)) != 0 ||
        (rc = txn_delete(txn, CF_FILES, k.b, k.len)) != 0 ||
        (rc = write_usage(txn, &f.uploader, &u)) != 0)
        return rc;
    return apply_audit(txn, e,
                       m->reason == DELETE_EXPIRED ? REC_AUDIT_FILE_UPLOAD_EXPIRE
                                                   : REC_AUDIT_FILE_UPLOAD_DELETE,
                       0, m->reason == DELETE_EXPIRED ? &f.uploader : NULL, file.b, ID_LEN,
                       f.has_owner ? &f.owner : NULL);
}

int apply_file_bind(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                    struct buf *result) {
    (void)result;
    const Carechat__Entry__V1__FileBind *m = e->file_bind;
    struct id file, cmid;
    struct rec_file f;
    if (!m || !apply_id_field(m->client_msg_id, &cmid))
        return STATUS_BAD_REQUEST;
    int rc = uploading_file(txn, e, m->file_id, &file, &f);
    if (rc != 0)
        return rc;
    if (f.has_message)
        return id_equal(&f.client_msg_id, &cmid) ? STATUS_OK : STATUS_CONFLICT;
    f.has_message = true;
    f.client_msg_id = cmid;
    return write_file(txn, &file, &f);
}

int apply_file_restore(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                       struct buf *result) {
    const Carechat__Entry__V1__FileRestore *m = e->file_restore;
    struct id file, actor;
    if (!m || !apply_id_field(m->file_id, &file) || m->restore_ms <= 0)
        return STATUS_BAD_REQUEST;
    uint32_t role;
    int rc = apply_actor_role(txn, e, &actor, &role);
    if (rc != 0)
        return rc;
    if (role != REC_ROLE_SYSADMIN)
        return STATUS_FORBIDDEN;
    struct rec_file f;
    if ((rc = read_file(txn, &file, &f)) != 0)
        return rc;
    struct rec_lifecycle l;
    rc = f.has_owner ? apply_read_lifecycle(txn, &f.owner, &l) : STATUS_NOT_FOUND;
    if (rc == STATUS_NOT_FOUND ||
        (rc == 0 && rules_lifecycle_due(&l, e->time) != REC_LC_RESTRICTED))
        return STATUS_CONFLICT;
    if (rc != 0)
        return rc;
    f.visible_until = e->time + m->restore_ms;
    if ((rc = write_file(txn, &file, &f)) != 0)
        return rc;
    uint8_t until[8];
    key_put_u64(until, (uint64_t)f.visible_until);
    buf_append(result, until, sizeof until);
    return apply_audit(txn, e, REC_AUDIT_FILE_RESTORE, 0, &actor, file.b, ID_LEN, &f.owner);
}
