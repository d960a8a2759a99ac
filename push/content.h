/*
 * push/content.h: every word a notification says, fixed per kind, and the
 * opaque ids derived from a job id.
 *
 * Nothing here takes a name, a conversation or a message: the texts are
 * constants, so a notice cannot carry health information (DESIGN.md
 * "Notifications"). The email text is assembled from them in push/mail.c; the
 * push channels send the title and body below. Ids that providers see
 * (Message-ID, apns-collapse-id, Web Push Topic) are hashes of the job id and a
 * purpose label: stable across the retries of one job, unrelated to anything
 * stored, and different per purpose.
 *
 * Pure functions; safe from any thread.
 */
#ifndef PUSH_CONTENT_H
#define PUSH_CONTENT_H

#include <stdint.h>

#include "push/job.h"

/* The product name shown as title and in the mail's first line. */
#define PUSH_CONTENT_TITLE "CareChat"
/* 32 hex digits and a NUL. */
#define PUSH_CONTENT_ID_HEX 33

struct push_text {
    const char *subject;    /* the mail's Subject, ASCII */
    const char *lead;       /* the mail's first paragraph */
    const char *code_label; /* "Your invitation code:" before the code, or NULL */
    const char *link_label; /* the line before the link */
    const char *alert;      /* the push notice's body (NULL: not sent by push) */
};

/* The texts of `kind` (PUSH_KIND_NEW_MESSAGE for a value out of range, which
 * push_job_check() has refused before). Static storage. */
const struct push_text *push_content_text(enum push_kind kind);

/* Writes 32 lower-case hex digits of SHA-256("carechat-push/" purpose "/" id)
 * and a NUL into out. `purpose` is a short constant ("message-id",
 * "collapse-id"). */
void push_content_opaque_id(const uint8_t id[PUSH_JOB_ID_LEN], const char *purpose,
                            char out[PUSH_CONTENT_ID_HEX]);

#endif
