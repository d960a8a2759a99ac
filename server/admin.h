/*
 * server/admin.h: the administration requests (server/admin.c): handlers and
 * completions named by the request table (server/requests.c), with the
 * contract of server/request.h. Loop thread.
 */
#ifndef SERVER_ADMIN_H
#define SERVER_ADMIN_H

#include "server/request.h"

/* UnlockLogin: the account's failed sign-ins are forgotten once the audit
 * record says who did it. */
int admin_unlock_login(struct req *r);
int admin_unlock_login_done(struct op *op, const struct op_result *res);

#endif
