/*
 * server/apply.c: apply_entry(), the table of entry kinds and the ServerInit
 * kind.
 *
 * Runs on the journal's writer thread (apply_entry) or the main thread
 * (apply_read_server_info, apply_encode_server_init at startup). apply_entry
 * must stay a pure function of (store state, position, entry): it reads no
 * clock and draws no random numbers.
 */
#include "server/apply.h"

#include <string.h>

#include "base/check.h"
#include "base/log.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply_internal.h"
#include "storage/keys.h"

#define META_KEY(k) (k), (sizeof(k) - 1)

static int apply_server_init(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                             struct buf *result) {
    const Carechat__Entry__V1__ServerInit *init = e->server_init;
    if (!init || init->server_id.len != ID_LEN || init->created_at <= 0)
        return STATUS_BAD_REQUEST;
    struct buf existing;
    buf_init(&existing);
    int rc = txn_get(txn, CF_META, META_KEY(APPLY_META_SERVER_ID), &existing);
    buf_cleanup(&existing);
    if (rc == 0)
        return STATUS_CONFLICT;
    if (rc != STATUS_NOT_FOUND)
        return rc;
    uint8_t created[8];
    key_put_u64(created, (uint64_t)init->created_at);
    rc = txn_put(txn, CF_META, META_KEY(APPLY_META_SERVER_ID), NULL, init->server_id.data,
                 init->server_id.len);
    if (rc != 0)
        return rc;
    return txn_put(txn, CF_META, META_KEY(APPLY_META_CREATED_AT), NULL, created, sizeof created);
}

/* One function per entry kind (apply_internal.h). */
#define KIND(name) CARECHAT__ENTRY__V1__ENTRY__KIND_##name
static const apply_kind_fn kinds[] = {
    [KIND(SERVER_INIT)] = apply_server_init,
    [KIND(BOOTSTRAP)] = apply_bootstrap,
    [KIND(INVITE_CREATE)] = apply_invite,
    [KIND(REGISTER)] = apply_register,
    [KIND(REGISTER_REFUSED)] = apply_register_refused,
    [KIND(LOGIN)] = apply_login,
    [KIND(SESSION_TOUCH)] = apply_session_touch,
    [KIND(SESSION_END)] = apply_session_end,
    [KIND(DEVICE_REMOVE)] = apply_device_remove,
    [KIND(DEVICE_RENAME)] = apply_device_rename,
    [KIND(KEY_ROTATE)] = apply_key_rotate,
    [KIND(DEVICE_LIST_PUBLISH)] = apply_device_list,
    [KIND(DEVICE_LIST_RESET)] = apply_device_list_reset,
    [KIND(ACCOUNT_DEACTIVATE)] = apply_deactivate,
    [KIND(PASSWORD_CHANGE)] = apply_password_change,
    [KIND(INVITE_REVOKE)] = apply_invite_revoke,
    [KIND(PASSWORD_RESET_REQUEST)] = apply_password_reset_request,
    [KIND(PASSWORD_RESET)] = apply_password_reset,
    [KIND(TOTP_ENROLL)] = apply_totp_enroll,
    [KIND(TOTP_CONFIRM)] = apply_totp_confirm,
    [KIND(TOTP_DISABLE)] = apply_totp_disable,
    [KIND(KEY_BACKUP_PUT)] = apply_key_backup_put,
    [KIND(KEY_BACKUP_DELETE)] = apply_key_backup_delete,
    [KIND(ACCOUNT_REACTIVATE)] = apply_reactivate,
    [KIND(LEGAL_HOLD_SET)] = apply_legal_hold,
    [KIND(RETENTION_ADVANCE)] = apply_retention_advance,
    [KIND(SWEEP)] = apply_sweep,
    [KIND(BREACH_START)] = apply_breach_start,
    [KIND(DIRECT_CREATE)] = apply_direct_create,
    [KIND(MESSAGE_SEND)] = apply_send,
    [KIND(INBOX_ACK)] = apply_inbox_ack,
    [KIND(RECEIPT_RECORD)] = apply_receipt,
    [KIND(CHANNEL_CREATE)] = apply_channel_create,
    [KIND(MEMBER_ADD)] = apply_member_add,
    [KIND(MEMBER_REMOVE)] = apply_member_remove,
    [KIND(MEMBER_APPROVE)] = apply_member_approve,
    [KIND(CONVERSATION_LEAVE)] = apply_leave,
    [KIND(MESSAGE_RECALL)] = apply_recall,
    [KIND(URGENT_ACK)] = apply_urgent_ack,
    [KIND(NOTIFY_SETTINGS_SET)] = apply_notify_settings,
    [KIND(PUSH_REGISTER)] = apply_push_register,
    [KIND(PUSH_UNREGISTER)] = apply_push_unregister,
    [KIND(OUTBOX_RESULT)] = apply_outbox_result,
    [KIND(PUSH_DEVICE_LEFT)] = apply_push_device_left,
    [KIND(FILE_BEGIN)] = apply_file_begin,
    [KIND(FILE_CHUNK)] = apply_file_chunk,
    [KIND(FILE_COMPLETE)] = apply_file_complete,
    [KIND(FILE_DELETE)] = apply_file_delete,
    [KIND(FILE_BIND)] = apply_file_bind,
    [KIND(FILE_RESTORE)] = apply_file_restore,
    [KIND(AUDIT_APPEND)] = apply_audit_kind,
};
#undef KIND

/* An entry whose actor account has been deactivated since it was proposed is
 * refused (UNAUTHENTICATED), whatever its kind: the proposer checked the
 * session, apply re-checks in journal order. Audit records and session ends
 * are still written; an actor that does not exist yet (Register, Bootstrap)
 * is the kind's to judge. */
static int actor_active(struct store_txn *txn, const Carechat__Entry__V1__Entry *e) {
    struct id actor;
    if (e->kind_case == CARECHAT__ENTRY__V1__ENTRY__KIND_AUDIT_APPEND ||
        e->kind_case == CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_END ||
        !apply_id_field(e->actor_account_id, &actor))
        return STATUS_OK;
    struct rec_account a; /* read without its strings: only its state is wanted */
    int rc = apply_read_account_lean(txn, &actor, &a);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_OK;
    if (rc != 0)
        return rc;
    bool active = a.active;
    rec_account_cleanup(&a);
    return active ? STATUS_OK : STATUS_UNAUTHENTICATED;
}

int apply_entry(void *ctx, struct store_txn *txn, uint64_t pos, const uint8_t *entry,
                size_t entry_len, struct buf *result) {
    Carechat__Entry__V1__Entry *e = NULL;
    int rc = proto_entry_decode(NULL, entry, entry_len, &e);
    if (rc != 0) {
        log_error("apply", "entry at position %llu does not decode (%s)", (unsigned long long)pos,
                  status_str(rc));
        return STATUS_BAD_REQUEST;
    }
    if (e->version != PROTO_ENTRY_VERSION) {
        log_error("apply", "entry at position %llu has version %u, expected %u",
                  (unsigned long long)pos, e->version, PROTO_ENTRY_VERSION);
        rc = STATUS_BAD_REQUEST;
        goto out;
    }
    if ((rc = actor_active(txn, e)) != 0)
        goto out;
    if (e->kind_case == CARECHAT__ENTRY__V1__ENTRY__KIND__NOT_SET) {
        rc = STATUS_BAD_REQUEST;
        goto out;
    }
    /* entry.proto names a kind that has no function here: a build that
     * cannot apply its own entries must not go on. */
    CHECK((size_t)e->kind_case < sizeof kinds / sizeof kinds[0] && kinds[e->kind_case]);
    rc = kinds[e->kind_case](txn, e, result);
out:
    proto_entry_free(e);
    return rc;
}

int apply_read_server_info(struct store *s, struct id *server_id, int64_t *created_at_ms) {
    struct buf v;
    buf_init(&v);
    int rc = store_get(s, CF_META, META_KEY(APPLY_META_SERVER_ID), &v);
    if (rc != 0)
        goto out;
    if (id_from_bytes(v.data, v.len, server_id) != 0) {
        rc = STATUS_CORRUPT;
        goto out;
    }
    rc = store_get(s, CF_META, META_KEY(APPLY_META_CREATED_AT), &v);
    if (rc != 0)
        goto out;
    if (v.len != 8) {
        rc = STATUS_CORRUPT;
        goto out;
    }
    *created_at_ms = (int64_t)key_get_u64(v.data);
out:
    buf_cleanup(&v);
    return rc;
}

int apply_encode_server_init(const struct id *server_id, int64_t now_ms, struct buf *out) {
    Carechat__Entry__V1__ServerInit init;
    carechat__entry__v1__server_init__init(&init);
    init.server_id.data = (uint8_t *)server_id->b;
    init.server_id.len = ID_LEN;
    init.created_at = now_ms;
    Carechat__Entry__V1__Entry e;
    carechat__entry__v1__entry__init(&e);
    e.version = PROTO_ENTRY_VERSION;
    e.time = now_ms;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SERVER_INIT;
    e.server_init = &init;
    return proto_entry_encode(&e, out);
}
