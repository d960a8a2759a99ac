/*
 * server/admin.h: the administration requests (server/admin.c): handlers and
 * completions named by the request table (server/requests.c), with the
 * contract of server/request.h. Loop thread.
 */
#ifndef SERVER_ADMIN_H
#define SERVER_ADMIN_H

#include "server/request.h"

/* DeactivateAccount: an AccountDeactivate entry (apply decides whether the
 * caller may); answered with the RetentionInfo, the account's live sessions
 * revoked (ACCOUNT_DEACTIVATED). */
int admin_deactivate(struct req *r);
int admin_deactivate_done(struct op *op, const struct op_result *res);
/* UnlockLogin: the account's failed sign-ins are forgotten once the audit
 * record says who did it. */
int admin_unlock_login(struct req *r);
int admin_unlock_login_done(struct op *op, const struct op_result *res);
/* GetRetentionState: the RetentionInfo of an account (ACTIVE, or the windows
 * since its deactivation). */
int admin_retention_state(struct req *r);

#endif
