/*
 * server/breach.h: the breach notification requests (server/breach.c),
 * StartBreachNotification and GetBreachStatus, with the contract of
 * server/request.h. Loop thread.
 *
 * The seed of the workflow is the clinic's promise: the people affected by a
 * data breach are told by email within 7 business days of its discovery. A
 * sysadmin declares the incident with the accounts, or with a window (and an
 * accessor) over the audit log from which the server computes them; the
 * server queues one content-free notice per account through the outbox at
 * once, computes the deadline (server/calendar.h), and tracks each notice
 * until the mail server took it or it failed. The maintenance logs and
 * counts notices still unsent past the deadline.
 */
#ifndef SERVER_BREACH_H
#define SERVER_BREACH_H

#include "server/request.h"

/* The notices are due within this many business days of the discovery. */
#define BREACH_BUSINESS_DAYS 7

int breach_start(struct req *r);
int breach_start_done(struct op *op, const struct op_result *res);
int breach_status(struct req *r);

#endif
