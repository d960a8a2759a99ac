/*
 * push/mail.h: the email channel: one message per job over SMTP with STARTTLS
 * required (smtp://, CURLUSESSL_ALL) or implicit TLS (smtps://), the
 * certificate verified, optional AUTH, one recipient.
 *
 * The message (push_mail_compose()) is fixed text: headers Date, From, To,
 * Message-ID, Subject, Auto-Submitted, MIME text/plain UTF-8; a body from
 * push/content.h with the configured app link, and for an invitation or a
 * password reset the code (and an invitation's link). The Message-ID is derived
 * from the job id, so every retry of a job carries the same one and a receiving
 * system can drop a duplicate.
 *
 * The verdict comes from the SMTP reply code (CURLINFO_RESPONSE_CODE), not from
 * the CURLcode alone (a 4xx after DATA surfaces as CURLE_WEIRD_SERVER_REPLY):
 *
 *   transfer ok                         -> DELIVERED
 *   TLS failed / STARTTLS refused       -> RETRY (TLS)    nothing was sent
 *   AUTH refused                        -> RETRY (AUTH)
 *   last reply 5xx                      -> PERMANENT (REJECTED)
 *   last reply 4xx                      -> RETRY (TEMPORARY)
 *   no reply (DNS, connect, timeout...) -> RETRY (cause from the CURLcode)
 *
 * Notifier thread only (push_mail_compose(): any thread).
 */
#ifndef PUSH_MAIL_H
#define PUSH_MAIL_H

#include <stdint.h>

#include "base/buf.h"
#include "push/config.h"
#include "push/job.h"
#include "push/xfer.h"

struct push_mail;

/* What a message needs besides the job. */
struct push_mail_identity {
    const char *from;     /* addr-spec */
    const char *domain;   /* the Message-ID's right-hand side */
    const char *app_link; /* https link */
};

/* Reads cfg->email (and the password file). Returns 0 and *out;
 * STATUS_NOT_FOUND when email is not configured (one info line);
 * STATUS_BAD_REQUEST or the password file's status when the configuration is
 * unusable (one error line). */
int push_mail_open(const struct push_config *cfg, struct push_engine *e, struct push_mail **out);

/* Sends the (checked) email job x; it ends in push_xfer_finish(). */
void push_mail_send(struct push_mail *m, struct push_xfer *x);

/* Wipes the password and frees. Accepts NULL. */
void push_mail_close(struct push_mail *m);

/* Appends the complete message (CRLF line ends) for `job` (checked with
 * push_job_check(), channel EMAIL) dated `now_ms` (Unix ms) to `out`. */
void push_mail_compose(const struct push_mail_identity *id, const struct push_job *job,
                       int64_t now_ms, struct buf *out);

#endif
