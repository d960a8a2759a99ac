/*
 * server/requests.c: the request table of carechat.v1: one row per request a
 * client may send, and the only list of requests in the server. A row names
 * the Frame field, who may send it (roles), what the caller must be to the
 * conversation it names (scope, server/authz.h), whether it reads patient or
 * account data (such reads are audited before they are answered), the audit
 * action that records it, its handler and the completion of the entry the
 * handler proposes (server/request.h).
 *
 * Derived from it: the authorization check and dispatch (server/handlers.c),
 * what may be sent before authentication (the open rows), and the table of
 * PROTOCOL.md section 8 (server/requests_test.c fails when they differ).
 * Every row has its handler (requests_test checks it).
 *
 * Pure data, any thread.
 */
#include "server/request.h"

#include <stddef.h>

#include "server/admin.h"
#include "server/audit_queries.h"
#include "server/breach.h"
#include "server/channels.h"
#include "server/conversations.h"
#include "server/delivery.h"
#include "server/invites.h"
#include "server/keybackup.h"
#include "server/devices.h"
#include "server/files.h"
#include "server/messaging.h"
#include "server/notify.h"
#include "server/retention.h"
#include "server/sessions.h"
#include "server/twofactor.h"

#define PATIENT AUTHZ_PATIENT
#define PROVIDER AUTHZ_PROVIDER
#define ADMIN AUTHZ_ADMIN
#define SYSADMIN AUTHZ_SYSADMIN
#define STAFF AUTHZ_STAFF
#define ANYONE AUTHZ_ANYONE

/* clang-format off */
/* ROW(Frame field, roles, scope, read, audit action, handler, completion) */
#define ROW(body, roles_, scope_, read_, action_, handle_, done_)                                  \
    [CARECHAT__V1__FRAME__BODY_##body] = {                                                        \
        .rule = {.roles = (roles_), .scope = AUTHZ_##scope_, .action = REC_AUDIT_##action_,         \
                 .read = (read_)},                                                                \
        .handle = (handle_),                                                                      \
        .done = (done_),                                                                          \
    }
#define READ true
#define CHANGE false

static const struct request_row rows[] = {
    /* session */
    ROW(LOGIN,        0,      OPEN,    CHANGE, LOGIN,        sessions_login,        sessions_established_done),
    ROW(AUTHENTICATE, 0,      OPEN,    CHANGE, AUTHENTICATE, sessions_authenticate, sessions_established_done),
    ROW(REGISTER,     0,      OPEN,    CHANGE, REGISTER,     sessions_register,     sessions_established_done),
    ROW(LOGOUT,       ANYONE, SESSION, CHANGE, LOGOUT,       sessions_logout,       sessions_logout_done),
    ROW(CHANGE_PASSWORD, ANYONE, SESSION, CHANGE, PASSWORD_CHANGE, sessions_change_password, sessions_change_password_done),
    ROW(REQUEST_PASSWORD_RESET,  0, OPEN, CHANGE, PASSWORD_RESET_REQUEST, sessions_request_reset,  sessions_request_reset_done),
    ROW(COMPLETE_PASSWORD_RESET, 0, OPEN, CHANGE, PASSWORD_RESET,         sessions_complete_reset, sessions_complete_reset_done),
    ROW(TOTP_ENROLL,  ANYONE, SESSION, CHANGE, TOTP_ENROLL,  twofactor_enroll,      twofactor_enroll_done),
    ROW(TOTP_CONFIRM, ANYONE, SESSION, CHANGE, TOTP_CONFIRM, twofactor_confirm,     twofactor_confirm_done),
    ROW(TOTP_DISABLE, ANYONE, SESSION, CHANGE, TOTP_DISABLE, sessions_totp_disable, sessions_totp_disable_done),
    ROW(LIST_INVITES, STAFF, SESSION, READ, INVITE_LIST, invites_list, NULL),
    ROW(REVOKE_INVITE, STAFF, SESSION, CHANGE, INVITE_REVOKE, invites_revoke, invites_revoke_done),
    ROW(INVITE,       STAFF,  SESSION, CHANGE, INVITE,       sessions_invite,       sessions_invite_done),
    /* devices and keys */
    ROW(PUBLISH_DEVICE_LIST,   ANYONE, SESSION, CHANGE, DEVICE_PUBLISH,    devices_publish_list,   devices_done),
    ROW(LIST_DEVICES,          ANYONE, SESSION, CHANGE, DEVICE_READ,       devices_list,           NULL),
    ROW(REMOVE_DEVICE,         ANYONE, SESSION, CHANGE, DEVICE_REMOVE,     devices_remove,         devices_done),
    ROW(RENAME_DEVICE,         ANYONE, SESSION, CHANGE, DEVICE_RENAME,     devices_rename,         devices_done),
    ROW(ROTATE_ENCRYPTION_KEY, ANYONE, SESSION, CHANGE, DEVICE_ROTATE_KEY, devices_rotate_key,     devices_done),
    ROW(LOOKUP_ACCOUNT,        ANYONE, SESSION, READ,   LOOKUP,            devices_lookup_account, NULL),
    /* conversations and care-team channels */
    ROW(CREATE_DIRECT,      ANYONE,           SESSION,         CHANGE, CONVERSATION_CREATE, conversations_create_direct, conversations_create_direct_done),
    ROW(LIST_CONVERSATIONS, ANYONE,           SESSION,         READ,   CONVERSATION_LIST,   conversations_list,          NULL),
    ROW(GET_CONVERSATION,   ANYONE,           MEMBER,          READ,   CONVERSATION_READ,   conversations_get,           NULL),
    ROW(HISTORY,            ANYONE,           MEMBER,          READ,   HISTORY,             conversations_history,       NULL),
    ROW(CREATE_CHANNEL,     PROVIDER | ADMIN, SESSION,         CHANGE, CHANNEL_CREATE,      channels_create,             channels_create_done),
    ROW(ADD_MEMBER,         PROVIDER | ADMIN, MEMBER_OR_ADMIN, CHANGE, MEMBER_ADD,          channels_add_member,         channels_member_done),
    ROW(REMOVE_MEMBER,      PROVIDER | ADMIN, MEMBER_OR_ADMIN, CHANGE, MEMBER_REMOVE,       channels_remove_member,      channels_member_done),
    ROW(APPROVE_MEMBER,     PATIENT,          CHANNEL_PATIENT, CHANGE, MEMBER_APPROVE,      channels_approve_member,     channels_member_done),
    ROW(LEAVE_CONVERSATION, ANYONE,           MEMBER,          CHANGE, CONVERSATION_LEAVE,  channels_leave,              channels_member_done),
    ROW(LIST_MEMBERS,       ANYONE,           MEMBER_OR_ADMIN, READ,   MEMBER_LIST,         channels_list_members,       NULL),
    /* messages, delivery, receipts */
    ROW(SEND,              ANYONE, MEMBER,          CHANGE, MESSAGE_SEND,   messaging_send,             messaging_send_done),
    ROW(ACK,               ANYONE, SESSION,         CHANGE, MESSAGE_ACK,    messaging_ack,              messaging_ack_done),
    ROW(SYNC,              ANYONE, SESSION,         READ,   MESSAGE_SYNC,   messaging_sync,             NULL),
    ROW(SEND_RECEIPT,      ANYONE, MEMBER,          CHANGE, RECEIPT,        messaging_send_receipt,     delivery_done),
    ROW(TYPING,            ANYONE, MEMBER,          CHANGE, MESSAGE_TYPING, messaging_typing,           NULL),
    ROW(RECALL,            ANYONE, MEMBER_OR_ADMIN, CHANGE, MESSAGE_RECALL, channels_recall,            channels_recall_done),
    ROW(ACK_URGENT,        ANYONE, MEMBER,          CHANGE, URGENT_ACK,     channels_ack_urgent,        channels_ack_urgent_done),
    ROW(GET_URGENT_STATUS, ANYONE, MEMBER_OR_ADMIN, READ,   URGENT_STATUS,  channels_get_urgent_status, NULL),
    /* files */
    ROW(UPLOAD_BEGIN,    ANYONE, MEMBER,  CHANGE, FILE_UPLOAD,   files_upload_begin,    files_upload_begin_done),
    ROW(UPLOAD_CHUNK,    ANYONE, SESSION, CHANGE, FILE_UPLOAD,   files_upload_chunk,    files_upload_chunk_done),
    ROW(UPLOAD_COMPLETE, ANYONE, SESSION, CHANGE, FILE_UPLOAD,   files_upload_complete, files_upload_complete_done),
    ROW(UPLOAD_STATUS,   ANYONE, SESSION, CHANGE, FILE_UPLOAD,   files_upload_status,   NULL),
    ROW(FILE_BIND,       ANYONE, SESSION, CHANGE, FILE_UPLOAD,   files_bind,            files_bind_done),
    ROW(DOWNLOAD_CHUNK,  ANYONE, MEMBER,  READ,   FILE_DOWNLOAD, files_download_chunk,  NULL),
    /* notifications */
    ROW(GET_NOTIFICATION_SETTINGS, ANYONE, SESSION, CHANGE, NOTIFY_READ,     notify_get_settings,    NULL),
    ROW(SET_NOTIFICATION_SETTINGS, ANYONE, SESSION, CHANGE, NOTIFY_WRITE,    notify_set_settings,    notify_set_settings_done),
    ROW(REGISTER_PUSH,             ANYONE, SESSION, CHANGE, PUSH_REGISTER,   notify_register_push,   notify_register_push_done),
    ROW(UNREGISTER_PUSH,           ANYONE, SESSION, CHANGE, PUSH_UNREGISTER, notify_unregister_push, notify_unregister_push_done),
    /* administration */
    ROW(LIST_ACCOUNTS,             ADMIN | SYSADMIN, SESSION, READ,   ACCOUNT_LIST,       retention_list_accounts, NULL),
    ROW(DEACTIVATE_ACCOUNT,        STAFF,            SESSION, CHANGE, ACCOUNT_DEACTIVATE, retention_deactivate, retention_deactivate_done),
    ROW(REACTIVATE_ACCOUNT,        ADMIN | SYSADMIN, SESSION, CHANGE, ACCOUNT_REACTIVATE, retention_reactivate, retention_done),
    ROW(SET_LEGAL_HOLD,            SYSADMIN,         SESSION, CHANGE, LEGAL_HOLD,         retention_legal_hold, retention_done),
    ROW(GET_RETENTION_STATE,       ADMIN | SYSADMIN, SESSION, READ,   RETENTION_READ,     retention_get,        NULL),
    ROW(RESTORE_FILE,              SYSADMIN,         SESSION, CHANGE, FILE_RESTORE,       retention_restore_file, retention_restore_file_done),
    ROW(START_BREACH_NOTIFICATION, SYSADMIN,         SESSION, CHANGE, BREACH_START,       breach_start,         breach_start_done),
    ROW(QUERY_AUDIT,               ADMIN | SYSADMIN, SESSION, READ,   QUERY,              audit_queries_query,  NULL),
    ROW(VERIFY_AUDIT,              ADMIN | SYSADMIN, SESSION, READ,   VERIFY,             audit_queries_verify, NULL),
    ROW(GET_BREACH_STATUS,         SYSADMIN,         SESSION, READ,   BREACH_STATUS,      breach_status,        NULL),
    ROW(UNLOCK_LOGIN,              ADMIN | SYSADMIN, SESSION, CHANGE, ACCOUNT_UNLOCK,     admin_unlock_login,   admin_unlock_login_done),
    ROW(RESET_DEVICE_LIST,         ADMIN | SYSADMIN, SESSION, CHANGE, DEVICE_LIST_RESET,  devices_reset_list,   devices_reset_list_done),
    /* the account's end-to-end encrypted key backup: the account itself only */
    ROW(PUT_KEY_BACKUP_SEGMENT, ANYONE, OWN_ACCOUNT, CHANGE, KEY_BACKUP_WRITE,  keybackup_put,    keybackup_put_done),
    ROW(LIST_KEY_BACKUP,        ANYONE, OWN_ACCOUNT, READ,   KEY_BACKUP_LIST,   keybackup_list,   NULL),
    ROW(GET_KEY_BACKUP_SEGMENT, ANYONE, OWN_ACCOUNT, READ,   KEY_BACKUP_READ,   keybackup_get,    NULL),
    ROW(DELETE_KEY_BACKUP,      ANYONE, OWN_ACCOUNT, CHANGE, KEY_BACKUP_DELETE, keybackup_delete, keybackup_delete_done),
};
/* clang-format on */

const struct request_row *request_row(uint32_t body_case) {
    if (body_case >= sizeof rows / sizeof rows[0] || rows[body_case].rule.scope == 0)
        return NULL;
    return &rows[body_case];
}
