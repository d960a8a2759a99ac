/*
 * server/audit_queries.h: the audit requests (server/audit_queries.c):
 * handlers named by the request table (server/requests.c), with the contract
 * of server/request.h. Loop thread.
 */
#ifndef SERVER_AUDIT_QUERIES_H
#define SERVER_AUDIT_QUERIES_H

#include "server/request.h"

/* QueryAudit: a page of records filtered by actor, patient and time. */
int audit_queries_query(struct req *r);
/* VerifyAudit: starts walking the chain; answered with the
 * AuditVerifyResult when the walk ends (RATE_LIMITED while another runs). */
int audit_queries_verify(struct req *r);
/* Runs the next step of the verification in progress. Loop thread, from
 * handlers_poll(). */
void audit_queries_poll(struct handlers *h);

#endif
