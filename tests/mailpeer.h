/*
 * tests/mailpeer.h: the peer of the notification tests: tests/push/mailpeer.mjs
 * (node) run as a child: an SMTP relay (smtp-server, STARTTLS with a throwaway
 * CA) and a Web Push endpoint on 127.0.0.1, which record every accepted mail
 * as DIR/mail-N.eml with its recipient in DIR/mail-N.rcpt (N = 1, 2, ...),
 * and every push request likewise.
 *
 * Needs node and CARECHAT_NODE_MODULES (npm ci in tests/). Test code only
 * (cmocka): failures are cmocka assertions. Every wait has a deadline
 * (MAILPEER_WAIT_MS). Single-threaded.
 */
#ifndef TESTS_MAILPEER_H
#define TESTS_MAILPEER_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"

#define MAILPEER_WAIT_MS 20000

struct mailpeer {
    pid_t pid;
    char dir[PATH_MAX];
    int smtp_port, webpush_port;
    char ca[PATH_MAX], vapid[PATH_MAX]; /* the relay's CA (PEM), a VAPID key */
    uint8_t p256dh[65], auth[16];       /* the Web Push subscription's keys */
};

/* Starts the peer in a fresh directory; `mode`: NULL, "hold-first" or
 * "temp-fail-first" (mailpeer.mjs). Fails the test when it does not start. */
void mailpeer_start(struct mailpeer *p, const char *mode);
/* Stops it (SIGTERM) and reaps it. */
void mailpeer_stop(struct mailpeer *p);

/* How many files DIR/<prefix>-N<suffix> exist. */
int mailpeer_count(const struct mailpeer *p, const char *prefix, const char *suffix);
/* Waits until at least `n` such files exist; returns how many there are. */
int mailpeer_wait(const struct mailpeer *p, const char *prefix, const char *suffix, int n);
/* Reads DIR/<prefix>-<i><suffix> into out (NUL-terminated, not counted). */
void mailpeer_read(const struct mailpeer *p, const char *prefix, int i, const char *suffix,
                   struct buf *out);
/* The index (1-based) of the newest accepted mail to `rcpt`, 0 if none. */
int mailpeer_mail_to(const struct mailpeer *p, const char *rcpt);
/* How many accepted mails went to `rcpt`. */
int mailpeer_mails_to(const struct mailpeer *p, const char *rcpt);
/* The value of a header line "Name: value" (up to CR/LF) of a raw mail. */
void mailpeer_header(const char *raw, const char *name, char *out, size_t len);

/* Reads the file at `path` into out (NUL-terminated, not counted). Returns
 * false when it cannot be opened. */
bool mailpeer_read_text(const char *path, struct buf *out);
void mailpeer_sleep_ms(int ms);

#endif
