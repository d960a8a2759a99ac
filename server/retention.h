/*
 * server/retention.h: the retention lifecycle's requests (server/retention.c):
 * DeactivateAccount, GetRetentionState, ReactivateAccount, SetLegalHold and
 * ListAccounts, with
 * the contract of server/request.h, and the RetentionInfo answer that
 * DeactivateAccount shares. Loop thread.
 *
 *   ACTIVE --DeactivateAccount--> REVIEW --restricted_at--> RESTRICTED
 *     ^                             |                          |
 *     +------ReactivateAccount------+--------(sysadmin)--------+
 *                                                              | purge_at
 *                                                              v
 *                                                           PURGED
 *
 * The state and its deadlines are data (the lifecycle record,
 * server/records.h), moved on by entries that apply judges by their time;
 * the maintenance (server/maintenance.h) proposes them when a deadline has
 * passed. A legal hold stops the clock.
 */
#ifndef SERVER_RETENTION_H
#define SERVER_RETENTION_H

#include "server/request.h"

/* DeactivateAccount: an AccountDeactivate entry with the configured windows
 * (apply decides whether the caller may); answered with the RetentionInfo,
 * the account's live sessions revoked (ACCOUNT_DEACTIVATED). */
int retention_deactivate(struct req *r);
int retention_deactivate_done(struct op *op, const struct op_result *res);
/* GetRetentionState: where an account stands. */
int retention_get(struct req *r);
/* ReactivateAccount: back to ACTIVE (REVIEW: admin or sysadmin; RESTRICTED:
 * sysadmin). */
int retention_reactivate(struct req *r);
/* SetLegalHold: a sysadmin stops or restarts an account's clock, with a
 * reason. */
int retention_legal_hold(struct req *r);
/* The completion of the two: the account's RetentionInfo. */
int retention_done(struct op *op, const struct op_result *res);
/* RestoreFile: a FileRestore entry (apply checks that the file's patient is
 * RESTRICTED); answered with the time it is restricted again. */
int retention_restore_file(struct req *r);
int retention_restore_file_done(struct op *op, const struct op_result *res);
/* ListAccounts: a page of accounts with their role and retention state. */
int retention_list_accounts(struct req *r);

/* Answers request `rid` on `c` with the RetentionInfo of `account` whose
 * lifecycle record is `l` (NULL: ACTIVE, no hold). */
void retention_respond(struct conn *c, uint64_t rid, const struct id *account,
                       const struct rec_lifecycle *l);

#endif
