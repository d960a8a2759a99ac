/*
 * push/mail.c: SMTP email through libcurl (contract in mail.h).
 */
#include "push/mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "push/content.h"
#include "push/secret.h"

#define MOD "push"
#define MAX_PASSWORD 1024

struct push_mail {
    struct push_engine *engine;
    char *url;
    char *from;
    char *domain;
    char *app_link;
    char *username;
    struct buf password;
};

/* RFC 5322 date in UTC, independent of the locale. */
static void append_date(struct buf *out, int64_t now_ms) {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
               months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void push_mail_compose(const struct push_mail_identity *id, const struct push_job *job,
                       int64_t now_ms, struct buf *out) {
    const struct push_text *t = push_content_text(job->kind);
    char mid[PUSH_CONTENT_ID_HEX];
    push_content_opaque_id(job->id, "message-id", mid);
    append_date(out, now_ms);
    buf_printf(out, "From: %s\r\n", id->from);
    buf_printf(out, "To: %s\r\n", job->to.email);
    buf_printf(out, "Message-ID: <%s@%s>\r\n", mid, id->domain);
    buf_printf(out, "Subject: %s\r\n", t->subject);
    buf_printf(out, "Auto-Submitted: auto-generated\r\n");
    buf_printf(out, "MIME-Version: 1.0\r\n");
    buf_printf(out, "Content-Type: text/plain; charset=UTF-8\r\n");
    buf_printf(out, "Content-Transfer-Encoding: 7bit\r\n");
    buf_printf(out, "\r\n");
    buf_printf(out, "%s\r\n\r\n", t->lead);
    if (t->code_label != NULL && job->code != NULL)
        buf_printf(out, "%s %s\r\n\r\n", t->code_label, job->code);
    buf_printf(out, "%s\r\n%s\r\n\r\n", t->link_label,
               job->link != NULL ? job->link : id->app_link);
    buf_printf(out, "This message was sent automatically. Please do not reply to it.\r\n");
}

/* A domain for the Message-ID: what push_email_valid() accepts after the "@". */
static bool domain_valid(const char *d) {
    char probe[PUSH_MAX_EMAIL + 1];
    int n = snprintf(probe, sizeof probe, "x@%s", d);
    return n > 0 && (size_t)n < sizeof probe && push_email_valid(probe);
}

static bool smtp_url_valid(const char *url) {
    return url != NULL && strlen(url) < 1024 && strchr(url, '\r') == NULL &&
           strchr(url, '\n') == NULL &&
           (strncmp(url, "smtp://", 7) == 0 || strncmp(url, "smtps://", 8) == 0);
}

int push_mail_open(const struct push_config *cfg, struct push_engine *e, struct push_mail **out) {
    const struct push_email_config *c = &cfg->email;
    if (c->url == NULL) {
        log_info(MOD, "email disabled: no SMTP url configured");
        return STATUS_NOT_FOUND;
    }
    const char *why = NULL;
    if (!smtp_url_valid(c->url))
        why = "the SMTP url must start with smtp:// (STARTTLS) or smtps://";
    else if (!push_email_valid(c->from))
        why = "no valid from address";
    else if (!push_link_valid(cfg->app_link))
        why = "no valid https app link";
    else if ((c->username == NULL) != (c->password_file == NULL))
        why = "SMTP AUTH needs both username and password_file";
    else if (c->username != NULL && (strpbrk(c->username, "\r\n") || strlen(c->username) > 256))
        why = "bad SMTP username";
    else if (c->message_id_domain != NULL && !domain_valid(c->message_id_domain))
        why = "bad message_id_domain";
    if (why != NULL) {
        log_error(MOD, "email disabled: %s", why);
        return STATUS_BAD_REQUEST;
    }
    struct push_mail *m = xcalloc(1, sizeof *m);
    buf_init(&m->password);
    if (c->password_file != NULL) {
        int rc = push_secret_read(c->password_file, MAX_PASSWORD, &m->password);
        if (rc != 0) {
            log_error(MOD, "email disabled: the SMTP password file cannot be used");
            free(m);
            return rc;
        }
        while (m->password.len > 0 && (m->password.data[m->password.len - 1] == '\n' ||
                                       m->password.data[m->password.len - 1] == '\r'))
            m->password.data[--m->password.len] = 0;
        m->username = xstrdup(c->username);
    }
    m->engine = e;
    m->url = xstrdup(c->url);
    m->from = xstrdup(c->from);
    m->domain =
        xstrdup(c->message_id_domain != NULL ? c->message_id_domain : strchr(c->from, '@') + 1);
    m->app_link = xstrdup(cfg->app_link);
    log_info(MOD, "email enabled (%s)", strncmp(c->url, "smtps", 5) == 0 ? "smtps" : "starttls");
    *out = m;
    return 0;
}

void push_mail_close(struct push_mail *m) {
    if (m == NULL)
        return;
    buf_wipe(&m->password);
    buf_cleanup(&m->password);
    free(m->username);
    free(m->url);
    free(m->from);
    free(m->domain);
    free(m->app_link);
    free(m);
}

static void mail_done(struct push_xfer *x, CURLcode rc) {
    struct push_mail *m = x->owner;
    long code = push_xfer_reply_code(x);
    enum push_cause cause = push_xfer_curl_cause(x, rc);
    enum push_outcome outcome = PUSH_OUTCOME_RETRY;
    if (rc == CURLE_OK) {
        outcome = PUSH_OUTCOME_DELIVERED;
        cause = PUSH_CAUSE_NONE;
    } else if (cause == PUSH_CAUSE_TLS || cause == PUSH_CAUSE_AUTH) {
        /* keep: nothing was sent, and the relay or our credentials need fixing */
    } else if (code >= 500 && code < 600) {
        outcome = PUSH_OUTCOME_PERMANENT_FAILURE;
        cause = PUSH_CAUSE_REJECTED;
    } else if (code >= 400 && code < 500) {
        cause = PUSH_CAUSE_TEMPORARY;
    }
    push_xfer_finish(m->engine, x, outcome, cause, (int)code);
}

void push_mail_send(struct push_mail *m, struct push_xfer *x) {
    struct push_mail_identity id = {.from = m->from, .domain = m->domain, .app_link = m->app_link};
    struct buf msg;
    buf_init(&msg);
    if (push_xfer_easy(m->engine, x) != 0) {
        push_xfer_finish(m->engine, x, PUSH_OUTCOME_RETRY, PUSH_CAUSE_INTERNAL, 0);
        return;
    }
    CURL *c = x->easy;
    char addr[PUSH_MAX_EMAIL + 3];
    snprintf(addr, sizeof addr, "<%s>", x->job.to.email);
    x->list = curl_slist_append(NULL, addr);
    snprintf(addr, sizeof addr, "<%s>", m->from);
    curl_easy_setopt(c, CURLOPT_URL, m->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, addr);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, x->list);
    /* one recipient: its refusal is the message's (curl 7.88 spells it so) */
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 0L);
    if (m->username != NULL) {
        curl_easy_setopt(c, CURLOPT_USERNAME, m->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, (char *)m->password.data);
    }
    push_mail_compose(&id, &x->job, clock_now(), &msg);
    push_xfer_set_body(x, msg.data, msg.len, true);
    buf_wipe(&msg); /* it may hold a code */
    buf_cleanup(&msg);
    push_xfer_add(m->engine, x, mail_done, m);
}
