/*
 * server/keybackup.h: the requests of an account's end-to-end encrypted key
 * backup (carechat.proto "Key backup"), with the contract of
 * server/request.h. Their rows have scope AUTHZ_OWN_ACCOUNT: by the time a
 * handler runs, the request names the caller's own account (or none), so
 * every handler works on the caller's account. Loop thread.
 */
#ifndef SERVER_KEYBACKUP_H
#define SERVER_KEYBACKUP_H

#include "server/request.h"

/* PutKeyBackupSegment: data over --key-backup-segment-max is TOO_LARGE before
 * anything is copied; then rules_key_backup_put() against the stored index
 * (early; apply decides), and a KeyBackupPut entry. Answered with the
 * segment's KeyBackupSegmentInfo. */
int keybackup_put(struct req *r);
int keybackup_put_done(struct op *op, const struct op_result *res);

/* ListKeyBackup: the caller's index and the server's limits (a read). */
int keybackup_list(struct req *r);

/* GetKeyBackupSegment: one segment as stored (a read); NOT_FOUND for a seq
 * the index does not hold. */
int keybackup_get(struct req *r);

/* DeleteKeyBackup: a KeyBackupDelete entry (before_seq 0: every segment). */
int keybackup_delete(struct req *r);
int keybackup_delete_done(struct op *op, const struct op_result *res);

#endif
