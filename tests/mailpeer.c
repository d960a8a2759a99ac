/*
 * tests/mailpeer.c: the SMTP relay and Web Push endpoint of the notification
 * tests (tests/push/mailpeer.mjs) run as a child process.
 */
#include "tests/mailpeer.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/clock.h"
#include "tests/harness.h"

bool mailpeer_read_text(const char *path, struct buf *out) {
    buf_reset(out);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(out, chunk, n);
    fclose(f);
    buf_append_u8(out, 0);
    out->len--;
    return true;
}

void mailpeer_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The JSON string value of "key" in `json` into out. */
static void json_str(const char *json, const char *key, char *out, size_t len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    p += strlen(pat);
    const char *e = strchr(p, '"');
    assert_non_null(e);
    assert_true((size_t)(e - p) < len);
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = '\0';
}

static int json_int(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    return atoi(p + strlen(pat));
}

/* `mode`: NULL, "hold-first" or "temp-fail-first" (mailpeer.mjs). */
void mailpeer_start(struct mailpeer *p, const char *mode) {
    memset(p, 0, sizeof *p);
    harness_tmpdir("peer", p->dir);
    const char *modules = getenv("CARECHAT_NODE_MODULES");
    if (!modules || !*modules)
        fail_msg("CARECHAT_NODE_MODULES is not set (npm ci in tests/, then "
                 "--test_env=CARECHAT_NODE_MODULES=...)");
    char script[PATH_MAX];
    const char *src = getenv("TEST_SRCDIR"), *ws = getenv("TEST_WORKSPACE");
    snprintf(script, sizeof script, "%s/%s/tests/push/mailpeer.mjs", src ? src : ".",
             ws ? ws : "carechat");
    if (access(script, R_OK) != 0)
        snprintf(script, sizeof script, "tests/push/mailpeer.mjs");
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/peer.log", p->dir);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("node", "node", script, p->dir, mode, (char *)NULL);
        _exit(127);
    }
    char ready[PATH_MAX + 16];
    snprintf(ready, sizeof ready, "%s/ready.json", p->dir);
    struct buf b;
    buf_init(&b);
    int64_t deadline = clock_monotonic_ms() + MAILPEER_WAIT_MS;
    while (!mailpeer_read_text(ready, &b)) {
        if (clock_monotonic_ms() > deadline || waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            mailpeer_read_text(log, &b);
            fail_msg("mailpeer did not start: %s", (const char *)b.data);
        }
        mailpeer_sleep_ms(50);
    }
    const char *j = (const char *)b.data;
    p->smtp_port = json_int(j, "smtp");
    p->webpush_port = json_int(j, "webpush");
    json_str(j, "ca", p->ca, sizeof p->ca);
    json_str(j, "vapid", p->vapid, sizeof p->vapid);
    char b64[128];
    size_t n;
    json_str(j, "p256dh", b64, sizeof b64);
    assert_int_equal(sodium_base642bin(p->p256dh, sizeof p->p256dh, b64, strlen(b64), NULL, &n,
                                       NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    assert_int_equal(n, 65);
    json_str(j, "auth", b64, sizeof b64);
    assert_int_equal(sodium_base642bin(p->auth, sizeof p->auth, b64, strlen(b64), NULL, &n, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    buf_cleanup(&b);
}

void mailpeer_stop(struct mailpeer *p) {
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

/* How many files DIR/<prefix>-N<suffix> exist (N = 1, 2, ...). */
int mailpeer_count(const struct mailpeer *p, const char *prefix, const char *suffix) {
    int n = 0;
    for (;; n++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s-%d%s", p->dir, prefix, n + 1, suffix);
        if (access(path, R_OK) != 0)
            return n;
    }
}

/* Waits until at least `n` such files exist; returns how many there are. */
int mailpeer_wait(const struct mailpeer *p, const char *prefix, const char *suffix, int n) {
    int64_t deadline = clock_monotonic_ms() + MAILPEER_WAIT_MS;
    int have;
    while ((have = mailpeer_count(p, prefix, suffix)) < n && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    return have;
}

void mailpeer_read(const struct mailpeer *p, const char *prefix, int i, const char *suffix,
                   struct buf *out) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s-%d%s", p->dir, prefix, i, suffix);
    assert_true(mailpeer_read_text(path, out));
}

/* The index (1-based) of the newest accepted mail to `rcpt`, 0 if none. */
int mailpeer_mail_to(const struct mailpeer *p, const char *rcpt) {
    int found = 0, n = mailpeer_count(p, "mail", ".eml");
    struct buf b;
    buf_init(&b);
    for (int i = 1; i <= n; i++) {
        mailpeer_read(p, "mail", i, ".rcpt", &b);
        if (strcmp((const char *)b.data, rcpt) == 0)
            found = i;
    }
    buf_cleanup(&b);
    return found;
}

int mailpeer_mails_to(const struct mailpeer *p, const char *rcpt) {
    int count = 0, n = mailpeer_count(p, "mail", ".eml");
    struct buf b;
    buf_init(&b);
    for (int i = 1; i <= n; i++) {
        mailpeer_read(p, "mail", i, ".rcpt", &b);
        count += strcmp((const char *)b.data, rcpt) == 0;
    }
    buf_cleanup(&b);
    return count;
}

/* The value of a header line "Name: value" (up to CR/LF) of a raw mail. */
void mailpeer_header(const char *raw, const char *name, char *out, size_t len) {
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s: ", name);
    const char *h = strstr(raw, pat);
    assert_non_null(h);
    h += strlen(pat);
    size_t n = strcspn(h, "\r\n");
    assert_true(n < len);
    memcpy(out, h, n);
    out[n] = '\0';
}
