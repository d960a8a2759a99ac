/*
 * tests/outbox_test.c: notifications through the real carechatd (issue 11),
 * with a real SMTP relay (smtp-server, STARTTLS, a throwaway CA) and a Web Push
 * endpoint run by tests/push/mailpeer.mjs, which records every message and
 * request as a file.
 *
 * 1. An invitation arrives by email (and only there: the inviter's answer has
 *    no code) and its code registers the invitee.
 * 2. An offline recipient of three messages gets exactly one email, with the
 *    fixed text and nothing of the message, the sender, the names or the
 *    canary (nor is the canary in the log); a recipient who is connected
 *    gets none.
 * 3. RegisterPush of a Web Push subscription whose endpoint answers 410: a
 *    message makes one request to it, and then the registration is gone
 *    (UnregisterPush answers NOT_FOUND) and a later message makes no request.
 * 4. A device connected when a message came (so no push) that goes away
 *    without reading gets one push.
 * 5. Notification settings round trip (and survive a restart); email off
 *    means no email; a malformed registration is refused; a configured
 *    channel with an unusable key stops the start (exit 2).
 * 6. The digest with its default timing (clock moved by restarts): no email
 *    before 15 min, one after; while unread, the next waits for the 6 h
 *    window.
 * 7. 451 to the first attempt: nothing more before the retry delay, then
 *    the same message (same Message-ID) delivered once.
 * 8. kill -9 of carechatd while the relay holds the first message: after the
 *    restart the message is sent again with the same Message-ID and the same
 *    code, and exactly one is accepted.
 *
 * Needs node and CARECHAT_NODE_MODULES (npm ci in tests/), like tests/push.
 * Everything on 127.0.0.1; every wait has a deadline.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "tests/harness.h"
#include "tests/mailpeer.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"
#include "tests/wsclient.h"

#define ADMIN_EMAIL "root@clinic.example"
#define PASSWORD "correct horse battery"
#define CANARY "Zq7canaryXv2"
#define WAIT_MS 20000

/* The invitation code in a raw invitation mail. */
static void mail_code(const char *raw, char code[RAWC_CODE_LEN]) {
    const char *p = strstr(raw, "Your invitation code: ");
    assert_non_null(p);
    p += strlen("Your invitation code: ");
    size_t n = strcspn(p, "\r\n");
    assert_true(n > 0 && n < RAWC_CODE_LEN);
    memcpy(code, p, n);
    code[n] = '\0';
}

/* ---- the server ------------------------------------------------------------------------------ */

static struct harness *server_start(const struct mailpeer *p, const char *const *extra) {
    static char smtp[64], allow[] = "127.0.0.1";
    snprintf(smtp, sizeof smtp, "smtp://127.0.0.1:%d", p->smtp_port);
    const char *args[HARNESS_MAX_ARGS] = {"--login-burst",
                                          "100000",
                                          "--login-burst-per-ip",
                                          "1000000",
                                          "--smtp-url",
                                          smtp,
                                          "--smtp-from",
                                          "no-reply@clinic.example",
                                          "--app-link",
                                          "https://clinic.example/app",
                                          "--smtp-ca-file",
                                          p->ca,
                                          "--vapid-key-file",
                                          p->vapid,
                                          "--vapid-subject",
                                          "mailto:ops@clinic.example",
                                          "--webpush-allow-host",
                                          allow,
                                          "--notify-email-delay",
                                          "1",
                                          "--notify-push-delay",
                                          "0",
                                          "--notify-push-jitter",
                                          "0",
                                          NULL};
    int n = 24;
    for (int i = 0; extra && extra[i] && n < HARNESS_MAX_ARGS - 1; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    struct harness *h;
    assert_int_equal(harness_start(args, &h), 0);
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    char dir[PATH_MAX], pw[PATH_MAX + 16];
    harness_tmpdir("pw", dir);
    snprintf(pw, sizeof pw, "%s/password", dir);
    FILE *fp = fopen(pw, "w");
    assert_non_null(fp);
    fprintf(fp, "%s\n", PASSWORD);
    fclose(fp);
    const char *bargs[] = {"bootstrap", "--data",          h->data_dir, "--email",
                           ADMIN_EMAIL, "--password-file", pw,          NULL};
    struct buf out;
    buf_init(&out);
    assert_int_equal(harness_run(bargs, NULL, 60000, &status, &out), 0);
    assert_int_equal(status, 0);
    buf_cleanup(&out);
    assert_int_equal(harness_restart(h), 0);
    return h;
}

static struct mailpeer g_peer;
static struct harness *g_h;
static struct raw_device g_root_dev;
static int g_users;

/* `inviter` invites a new account of `role`; the code comes by email only;
 * the invitee registers with it (display name `name`) on a connection of its
 * own. Fills `u`. */
static void user_by_mail(struct harness *h, const struct mailpeer *p, struct rawc *inviter,
                         Carechat__V1__Role role, const char *name, struct rawc_user *u) {
    memset(u, 0, sizeof *u);
    snprintf(u->email, sizeof u->email, "user%d-%d@clinic.example", ++g_users, (int)getpid());
    char code[RAWC_CODE_LEN];
    assert_int_equal(rawc_invite(inviter, u->email, role, code, NULL), 0);
    assert_string_equal(code, ""); /* the inviter does not learn the code */
    int64_t deadline = clock_monotonic_ms() + WAIT_MS;
    int i;
    while ((i = mailpeer_mail_to(p, u->email)) == 0 && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    assert_true(i > 0);
    struct buf raw;
    buf_init(&raw);
    mailpeer_read(p, "mail", i, ".eml", &raw);
    mail_code((const char *)raw.data, code);
    buf_cleanup(&raw);
    struct rawc *c = rawc_open(h);
    raw_device_make(&u->dev[0]);
    Carechat__V1__Frame *r =
        rawc_register(c, code, u->email, PASSWORD, "1980-05-06", name, &u->dev[0]);
    raw_expect_status(r, STATUS_OK);
    memcpy(u->account, r->response->session->account_id.data, 16);
    u->n_dev = 1;
    proto_free(r);
    rawc_free(c);
}

static void create_direct(struct rawc *c, const uint8_t peer[16], uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__CreateDirect cd;
    carechat__v1__frame__init(&f);
    carechat__v1__create_direct__init(&cd);
    cd.peer_account_id = (ProtobufCBinaryData){16, (uint8_t *)peer};
    f.body_case = CARECHAT__V1__FRAME__BODY_CREATE_DIRECT;
    f.create_direct = &cd;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);
}

/* A provider (logged in on *doc) and a patient invited by the provider, with
 * their direct conversation. */
struct pair {
    struct rawc_user prov, pat;
    struct rawc *doc;
    uint8_t conv[16];
};

static void pair_make(struct pair *w, const char *pat_name) {
    struct rawc *root = rawc_open_login(g_h, ADMIN_EMAIL, PASSWORD, &g_root_dev, NULL);
    user_by_mail(g_h, &g_peer, root, CARECHAT__V1__ROLE__PROVIDER, "Dr " CANARY, &w->prov);
    rawc_free(root);
    w->doc = rawc_open_login(g_h, w->prov.email, PASSWORD, &w->prov.dev[0], NULL);
    user_by_mail(g_h, &g_peer, w->doc, CARECHAT__V1__ROLE__PATIENT, pat_name, &w->pat);
    create_direct(w->doc, w->pat.account, w->conv);
}

static void doc_sends(struct pair *w, const char *text) {
    struct rawc_wrap_to to = {w->pat.dev[0].id, 1};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r =
        rawc_send_msg(w->doc, w->conv, cmid, w->prov.dev[0].id, &to, 1, text, false);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
}

static Carechat__V1__Frame *get_settings(struct rawc *c) {
    Carechat__V1__Frame f;
    Carechat__V1__GetNotificationSettings g;
    carechat__v1__frame__init(&f);
    carechat__v1__get_notification_settings__init(&g);
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_NOTIFICATION_SETTINGS;
    f.get_notification_settings = &g;
    return rawc_rpc(c, &f);
}

/* The settings with quiet hours from `from` to `until` (minutes, UTC). */
static Carechat__V1__Frame *set_quiet(struct rawc *c, bool email, bool push, uint32_t from,
                                      uint32_t until) {
    Carechat__V1__Frame f;
    Carechat__V1__SetNotificationSettings s;
    Carechat__V1__NotificationSettings ns;
    carechat__v1__frame__init(&f);
    carechat__v1__set_notification_settings__init(&s);
    carechat__v1__notification_settings__init(&ns);
    ns.email = email;
    ns.push = push;
    ns.quiet_from_min = from;
    ns.quiet_until_min = until;
    s.settings = &ns;
    f.body_case = CARECHAT__V1__FRAME__BODY_SET_NOTIFICATION_SETTINGS;
    f.set_notification_settings = &s;
    return rawc_rpc(c, &f);
}

static Carechat__V1__Frame *set_settings(struct rawc *c, bool email, bool push) {
    return set_quiet(c, email, push, 0, 0);
}

static void expect_settings(Carechat__V1__Frame *r, bool email, bool push) {
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case,
                     CARECHAT__V1__RESPONSE__RESULT_NOTIFICATION_SETTINGS);
    assert_int_equal(r->response->notification_settings->email, email);
    assert_int_equal(r->response->notification_settings->push, push);
    proto_free(r);
}

static Carechat__V1__Frame *register_webpush(struct rawc *c, const char *endpoint,
                                             const uint8_t *p256dh, size_t p256dh_len) {
    Carechat__V1__Frame f;
    Carechat__V1__RegisterPush rp;
    Carechat__V1__WebPushSubscription ws;
    carechat__v1__frame__init(&f);
    carechat__v1__register_push__init(&rp);
    carechat__v1__web_push_subscription__init(&ws);
    ws.endpoint = (char *)endpoint;
    ws.p256dh = (ProtobufCBinaryData){p256dh_len, (uint8_t *)p256dh};
    ws.auth = (ProtobufCBinaryData){16, g_peer.auth};
    rp.target_case = CARECHAT__V1__REGISTER_PUSH__TARGET_WEB_PUSH;
    rp.web_push = &ws;
    f.body_case = CARECHAT__V1__FRAME__BODY_REGISTER_PUSH;
    f.register_push = &rp;
    return rawc_rpc(c, &f);
}

static Carechat__V1__Frame *unregister_push(struct rawc *c, const uint8_t reg[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__UnregisterPush u;
    carechat__v1__frame__init(&f);
    carechat__v1__unregister_push__init(&u);
    u.registration_id = (ProtobufCBinaryData){16, (uint8_t *)reg};
    f.body_case = CARECHAT__V1__FRAME__BODY_UNREGISTER_PUSH;
    f.unregister_push = &u;
    return rawc_rpc(c, &f);
}

/* ---- tests
 * --------------------------------------------------------------------------------------- */

static void test_outbox_invitation_by_email_registers(void **state) {
    (void)state;
    int before = mailpeer_count(&g_peer, "mail", ".eml");
    struct rawc *root = rawc_open_login(g_h, ADMIN_EMAIL, PASSWORD, &g_root_dev, NULL);
    struct rawc_user u;
    user_by_mail(g_h, &g_peer, root, CARECHAT__V1__ROLE__PATIENT, "Invited " CANARY, &u);
    rawc_free(root);
    int i = mailpeer_mail_to(&g_peer, u.email);
    assert_true(i > before);
    assert_int_equal(mailpeer_mails_to(&g_peer, u.email), 1);
    struct buf raw;
    buf_init(&raw);
    mailpeer_read(&g_peer, "mail", i, ".eml", &raw);
    char subject[128], code[RAWC_CODE_LEN];
    mailpeer_header((const char *)raw.data, "Subject", subject, sizeof subject);
    assert_string_equal(subject, "Your invitation to CareChat");
    mail_code((const char *)raw.data, code);
    /* The code is spent: a second registration with it fails. */
    struct rawc *c = rawc_open(g_h);
    struct raw_device d;
    raw_device_make(&d);
    Carechat__V1__Frame *r = rawc_register(c, code, u.email, PASSWORD, "1980-05-06", "x", &d);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    rawc_free(c);
    /* Neither the code nor the address is in the log. */
    assert_false(harness_log_contains(g_h, code));
    assert_false(harness_log_contains(g_h, u.email));
    buf_cleanup(&raw);
}

/* The notices of a breach incident and where they stand (GetBreachStatus):
 * the totals and each notice's state as a page. */
static Carechat__V1__Frame *breach_status(struct rawc *c, const uint8_t incident[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__GetBreachStatus m;
    carechat__v1__frame__init(&f);
    carechat__v1__get_breach_status__init(&m);
    m.incident_id = (ProtobufCBinaryData){16, (uint8_t *)incident};
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_BREACH_STATUS;
    f.get_breach_status = &m;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    return r;
}

/* A declared breach (issue 12): each affected person gets one email with
 * the fixed breach text through the mail relay, nothing of the incident's
 * description; a repeat of the declaration adds nobody; the status turns
 * SENT once the relay took them; the description is in no log. */
static void test_outbox_breach_notices_reach_the_affected(void **state) {
    (void)state;
    struct rawc *root = rawc_open_login(g_h, ADMIN_EMAIL, PASSWORD, &g_root_dev, NULL);
    struct rawc_user a, b;
    user_by_mail(g_h, &g_peer, root, CARECHAT__V1__ROLE__PATIENT, "Affected A", &a);
    user_by_mail(g_h, &g_peer, root, CARECHAT__V1__ROLE__PATIENT, "Affected B", &b);
    uint8_t incident[16];
    randombytes_buf(incident, sizeof incident);
    ProtobufCBinaryData ids[2] = {{16, a.account}, {16, b.account}};
    static const char description[] = "laptop of Dr Smith stolen " CANARY;
    for (int round = 0; round < 2; round++) {
        Carechat__V1__Frame f;
        Carechat__V1__StartBreachNotification m;
        carechat__v1__frame__init(&f);
        carechat__v1__start_breach_notification__init(&m);
        m.incident_id = (ProtobufCBinaryData){16, incident};
        m.n_affected_account_ids = 2;
        m.affected_account_ids = ids;
        m.description = (char *)description;
        f.body_case = CARECHAT__V1__FRAME__BODY_START_BREACH_NOTIFICATION;
        f.start_breach_notification = &m;
        Carechat__V1__Frame *r = rawc_rpc(root, &f);
        raw_expect_status(r, STATUS_OK);
        /* The first declaration queues both; the repeat nobody. */
        assert_int_equal(r->response->breach->notices_queued, round == 0 ? 2 : 0);
        assert_true(r->response->breach->deadline > r->response->breach->discovered_at);
        proto_free(r);
    }
    const struct rawc_user *who[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        int64_t deadline = clock_monotonic_ms() + WAIT_MS;
        /* The invitation was the first mail to them; the notice the second. */
        while (mailpeer_mails_to(&g_peer, who[i]->email) < 2 && clock_monotonic_ms() < deadline)
            mailpeer_sleep_ms(50);
        assert_int_equal(mailpeer_mails_to(&g_peer, who[i]->email), 2);
        struct buf raw;
        buf_init(&raw);
        mailpeer_read(&g_peer, "mail", mailpeer_mail_to(&g_peer, who[i]->email), ".eml", &raw);
        char subject[128];
        mailpeer_header((const char *)raw.data, "Subject", subject, sizeof subject);
        assert_string_equal(subject, "Important notice about your CareChat account");
        assert_null(strstr((const char *)raw.data, CANARY));
        assert_null(strstr((const char *)raw.data, "Smith"));
        buf_cleanup(&raw);
    }
    /* Both SENT once the relay's answers are applied. */
    int64_t deadline = clock_monotonic_ms() + WAIT_MS;
    for (;;) {
        Carechat__V1__Frame *r = breach_status(root, incident);
        const Carechat__V1__BreachResult *br = r->response->breach;
        assert_int_equal(br->notices_total, 2);
        assert_int_equal(br->notices_overdue, 0);
        size_t sent = 0;
        for (size_t i = 0; i < br->n_notices; i++)
            sent += br->notices[i]->state == CARECHAT__V1__BREACH_NOTICE_STATE__BREACH_NOTICE_SENT;
        proto_free(r);
        if (sent == 2)
            break;
        assert_true(clock_monotonic_ms() < deadline);
        mailpeer_sleep_ms(100);
    }
    rawc_free(root);
    assert_false(harness_log_contains(g_h, CANARY));
    assert_false(harness_log_contains(g_h, "Smith"));
}

/* Quiet hours: a notice that falls due inside them waits for their end;
 * out of range they are refused. */
static void test_outbox_quiet_hours_hold_the_notice(void **state) {
    (void)state;
    struct pair w;
    pair_make(&w, "Quiet");
    struct rawc *pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    Carechat__V1__Frame *r = set_quiet(pat, true, true, 1440, 0);
    raw_expect_status(r, STATUS_BAD_REQUEST);
    proto_free(r);
    /* Quiet from an hour ago to an hour from now (UTC). */
    uint32_t now_min = (uint32_t)((clock_now() / 60000) % 1440);
    uint32_t from = (now_min + 1380) % 1440, until = (now_min + 60) % 1440;
    r = set_quiet(pat, true, true, from, until);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->notification_settings->quiet_from_min, from);
    assert_int_equal(r->response->notification_settings->quiet_until_min, until);
    proto_free(r);
    rawc_free(pat);
    doc_sends(&w, "in the quiet hours");
    mailpeer_sleep_ms(4000); /* the notice's delay is 1 s: it is held */
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 1); /* the invitation only */
    /* Quiet hours over: it goes. */
    pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    expect_settings(set_settings(pat, true, true), true, true);
    rawc_free(pat);
    int64_t deadline = clock_monotonic_ms() + WAIT_MS;
    while (mailpeer_mails_to(&g_peer, w.pat.email) < 2 && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 2);
    rawc_free(w.doc);
}

static void test_outbox_offline_recipient_gets_one_email(void **state) {
    (void)state;
    struct pair w;
    pair_make(&w, "Pat " CANARY);
    /* Three messages while the patient is offline: one email. */
    for (int i = 0; i < 3; i++)
        doc_sends(&w, "the lab result says " CANARY);
    int64_t deadline = clock_monotonic_ms() + WAIT_MS;
    while (mailpeer_mails_to(&g_peer, w.pat.email) < 2 && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 2); /* invitation + one notice */
    mailpeer_sleep_ms(3000); /* the outbox ticks every second: nothing more comes */
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 2);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.prov.email), 1); /* its invitation only */
    struct buf raw;
    buf_init(&raw);
    mailpeer_read(&g_peer, "mail", mailpeer_mail_to(&g_peer, w.pat.email), ".eml", &raw);
    const char *m = (const char *)raw.data;
    char subject[128], auto_sub[64], to[128];
    mailpeer_header(m, "Subject", subject, sizeof subject);
    mailpeer_header(m, "Auto-Submitted", auto_sub, sizeof auto_sub);
    mailpeer_header(m, "To", to, sizeof to);
    assert_string_equal(subject, "You have a new secure message");
    assert_string_equal(auto_sub, "auto-generated");
    assert_string_equal(to, w.pat.email);
    const char *body = strstr(m, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "You have a new secure message in CareChat.\r\n\r\n"
                                  "Open the app or sign in to read it:\r\n"
                                  "https://clinic.example/app\r\n\r\n"
                                  "This message was sent automatically. Please do not reply "
                                  "to it.\r\n");
    assert_null(strstr(m, CANARY));
    assert_null(strstr(m, w.prov.email));
    assert_false(harness_log_contains(g_h, CANARY));
    assert_false(harness_log_contains(g_h, w.pat.email));
    buf_cleanup(&raw);
    /* /metrics counts what went out. */
    struct buf metrics;
    buf_init(&metrics);
    int http = 0;
    assert_int_equal(
        http_get(g_h->metrics_host, g_h->metrics_port, "/metrics", WAIT_MS, &http, NULL, &metrics),
        0);
    assert_int_equal(http, 200);
    buf_append_u8(&metrics, 0);
    const char *mt = (const char *)metrics.data;
    const char *line = strstr(mt, "\ncarechat_push_results_total{channel=\"email\","
                                  "outcome=\"delivered\"} ");
    assert_non_null(line);
    assert_true(atoi(strchr(line, '}') + 2) >= 3); /* two invitations and the notice */
    assert_non_null(strstr(mt, "\ncarechat_outbox_settled_total{outcome=\"delivered\"} "));
    assert_non_null(strstr(mt, "\ncarechat_outbox_jobs "));
    assert_non_null(strstr(mt, "\ncarechat_push_latency_ms_count "));
    assert_null(strstr(mt, w.pat.email));
    buf_cleanup(&metrics);

    /* A patient connected (authenticated) when the message comes gets none. */
    struct pair w2;
    pair_make(&w2, "Online");
    struct rawc *pat = rawc_open_login(g_h, w2.pat.email, PASSWORD, &w2.pat.dev[0], NULL);
    doc_sends(&w2, "hello");
    mailpeer_sleep_ms(3500);
    assert_int_equal(mailpeer_mails_to(&g_peer, w2.pat.email), 1); /* the invitation only */
    rawc_free(pat);
    rawc_free(w.doc);
    rawc_free(w2.doc);
}

static void test_outbox_dead_webpush_token_is_removed(void **state) {
    (void)state;
    struct pair w;
    pair_make(&w, "Pushed");
    struct rawc *pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    expect_settings(set_settings(pat, false, true), false, true); /* push only */
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "https://127.0.0.1:%d/gone/%d", g_peer.webpush_port,
             g_users);
    Carechat__V1__Frame *r = register_webpush(pat, endpoint, g_peer.p256dh, 65);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_PUSH_REGISTRATION);
    assert_int_equal(r->response->push_registration->registration_id.len, 16);
    uint8_t reg[16];
    memcpy(reg, r->response->push_registration->registration_id.data, 16);
    proto_free(r);
    rawc_free(pat); /* offline */
    int before = mailpeer_count(&g_peer, "push", ".txt");
    doc_sends(&w, "ping " CANARY);
    assert_int_equal(mailpeer_wait(&g_peer, "push", ".txt", before + 1), before + 1);
    struct buf req;
    buf_init(&req);
    mailpeer_read(&g_peer, "push", before + 1, ".txt", &req);
    char first[160];
    snprintf(first, sizeof first, "POST /gone/%d\n", g_users);
    assert_memory_equal(req.data, first, strlen(first));
    assert_null(strstr((const char *)req.data, CANARY));
    buf_cleanup(&req);
    /* The 410 removed the registration (its result is stored right after the
     * answer). */
    mailpeer_sleep_ms(1500);
    pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    r = unregister_push(pat, reg);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    rawc_free(pat);
    /* And nothing more goes to the dead endpoint. */
    doc_sends(&w, "again");
    mailpeer_sleep_ms(2500);
    assert_int_equal(mailpeer_count(&g_peer, "push", ".txt"), before + 1);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email),
                     1); /* email off: the invitation only */
    rawc_free(w.doc);
}

/* A device connected when the message came (no push then) that goes away
 * without reading gets one push; the push carries nothing of the message. */
static void test_outbox_device_that_leaves_gets_one_push(void **state) {
    (void)state;
    struct pair w;
    pair_make(&w, "Leaves");
    struct rawc *pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    expect_settings(set_settings(pat, false, true), false, true);
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "https://127.0.0.1:%d/ok/%d", g_peer.webpush_port, g_users);
    Carechat__V1__Frame *r = register_webpush(pat, endpoint, g_peer.p256dh, 65);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    int before = mailpeer_count(&g_peer, "push", ".txt");
    doc_sends(&w, "while online " CANARY);
    mailpeer_sleep_ms(2500); /* due and cancelled: the device is connected */
    assert_int_equal(mailpeer_count(&g_peer, "push", ".txt"), before);
    rawc_free(pat); /* goes away without reading */
    assert_int_equal(mailpeer_wait(&g_peer, "push", ".txt", before + 1), before + 1);
    mailpeer_sleep_ms(2500);
    assert_int_equal(mailpeer_count(&g_peer, "push", ".txt"), before + 1);
    struct buf req;
    buf_init(&req);
    mailpeer_read(&g_peer, "push", before + 1, ".txt", &req);
    char first[160];
    snprintf(first, sizeof first, "POST /ok/%d\n", g_users);
    assert_memory_equal(req.data, first, strlen(first));
    assert_null(strstr((const char *)req.data, CANARY));
    buf_cleanup(&req);
    rawc_free(w.doc);
}

static void test_outbox_settings_round_trip(void **state) {
    (void)state;
    struct pair w;
    pair_make(&w, "Settings");
    struct rawc *pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    expect_settings(get_settings(pat), true, true);
    expect_settings(set_settings(pat, false, true), false, true);
    expect_settings(get_settings(pat), false, true);
    /* A registration the notifier would refuse: not a URL; a short key. */
    Carechat__V1__Frame *r = register_webpush(pat, "not a url", g_peer.p256dh, 65);
    raw_expect_status(r, STATUS_BAD_REQUEST);
    proto_free(r);
    r = register_webpush(pat, "https://127.0.0.1/x", g_peer.p256dh, 64);
    raw_expect_status(r, STATUS_BAD_REQUEST);
    proto_free(r);
    static const uint8_t nobody[16] = {1};
    r = unregister_push(pat, nobody);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    rawc_free(pat);
    /* Email off: an offline patient gets no notice. */
    doc_sends(&w, "quiet");
    mailpeer_sleep_ms(3000);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 1);
    rawc_free(w.doc);
    /* The settings are durable. */
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    assert_int_equal(status, 0);
    /* A configured channel with an unusable key stops the start. */
    const char *bad[] = {"--data",
                         g_h->data_dir,
                         "--listen",
                         "127.0.0.1:0",
                         "--metrics-listen",
                         "127.0.0.1:0",
                         "--vapid-key-file",
                         "/nonexistent/vapid.pem",
                         "--vapid-subject",
                         "mailto:ops@clinic.example",
                         "--dev-invite-codes",
                         NULL};
    struct buf out;
    buf_init(&out);
    assert_int_equal(harness_run(bad, NULL, 30000, &status, &out), 0);
    assert_int_equal(status, 2);
    buf_append_u8(&out, 0);
    assert_non_null(strstr((const char *)out.data, "--vapid-key-file"));
    buf_cleanup(&out);
    assert_int_equal(harness_restart(g_h), 0);
    pat = rawc_open_login(g_h, w.pat.email, PASSWORD, &w.pat.dev[0], NULL);
    expect_settings(get_settings(pat), false, true);
    rawc_free(pat);
}

/* kill -9 between submission and result: the relay holds the first message's
 * DATA unanswered; carechatd dies; after the restart the same message (same
 * Message-ID, same code) is sent again and accepted once. */
static void test_outbox_kill9_resends_with_same_message_id(void **state) {
    (void)state;
    struct mailpeer p;
    mailpeer_start(&p, "hold-first");
    struct harness *h = server_start(&p, NULL);
    struct raw_device dev;
    raw_device_make(&dev);
    struct rawc *root = rawc_open_login(h, ADMIN_EMAIL, PASSWORD, &dev, NULL);
    char code[RAWC_CODE_LEN];
    assert_int_equal(
        rawc_invite(root, "held@clinic.example", CARECHAT__V1__ROLE__PATIENT, code, NULL), 0);
    rawc_free(root);
    assert_int_equal(mailpeer_wait(&p, "held", ".eml", 1), 1);
    harness_kill9(h);
    assert_int_equal(mailpeer_count(&p, "mail", ".eml"), 0);
    assert_int_equal(harness_restart(h), 0);
    assert_int_equal(mailpeer_wait(&p, "mail", ".eml", 1), 1);
    mailpeer_sleep_ms(2000);
    assert_int_equal(mailpeer_count(&p, "mail", ".eml"), 1);
    struct buf held, sent;
    buf_init(&held);
    buf_init(&sent);
    mailpeer_read(&p, "held", 1, ".eml", &held);
    mailpeer_read(&p, "mail", 1, ".eml", &sent);
    char id1[128], id2[128], c1[RAWC_CODE_LEN], c2[RAWC_CODE_LEN];
    mailpeer_header((const char *)held.data, "Message-ID", id1, sizeof id1);
    mailpeer_header((const char *)sent.data, "Message-ID", id2, sizeof id2);
    assert_string_equal(id1, id2);
    mail_code((const char *)held.data, c1);
    mail_code((const char *)sent.data, c2);
    assert_string_equal(c1, c2);
    /* Delivered now: the row is gone, so a further restart sends nothing. */
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(harness_restart(h), 0);
    mailpeer_sleep_ms(2500);
    assert_int_equal(mailpeer_count(&p, "mail", ".eml"), 1);
    buf_cleanup(&held);
    buf_cleanup(&sent);
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);
    harness_free(h);
    mailpeer_stop(&p);
}

/* Restarts g_h with the clock `offset_ms` ahead. */
static void restart_ahead(int64_t offset_ms) {
    int status = -1;
    assert_int_equal(harness_stop(g_h, &status), 0);
    assert_int_equal(status, 0);
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)offset_ms);
    int i;
    for (i = 0; i < g_h->n_args; i++)
        if (strcmp(g_h->args[i], "--clock-offset") == 0)
            break;
    if (i == g_h->n_args) {
        assert_true(g_h->n_args + 2 <= HARNESS_MAX_ARGS);
        g_h->args[g_h->n_args++] = strdup("--clock-offset");
        g_h->args[g_h->n_args++] = strdup(v);
    } else {
        free(g_h->args[i + 1]);
        g_h->args[i + 1] = strdup(v);
    }
    assert_int_equal(harness_restart(g_h), 0);
}

/* The digest with the default timing (first email 15 min after the message,
 * then at most one per 6 h while unread), the clock moved by restarts. */
static void test_outbox_digest_timing(void **state) {
    (void)state;
    struct pair w;
    pair_make(&w, "Digest");
    doc_sends(&w, "first");
    rawc_free(w.doc);
    mailpeer_sleep_ms(3000);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 1); /* the invitation only */
    restart_ahead(16 * 60 * 1000);
    int64_t deadline = clock_monotonic_ms() + WAIT_MS;
    while (mailpeer_mails_to(&g_peer, w.pat.email) < 2 && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 2);
    /* Still unread: a later message waits for the window. */
    w.doc = rawc_open_login(g_h, w.prov.email, PASSWORD, &w.prov.dev[0], NULL);
    doc_sends(&w, "second");
    rawc_free(w.doc);
    restart_ahead((16 + 20) * 60 * 1000); /* its own 15 min passed, the window not */
    mailpeer_sleep_ms(3000);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 2);
    restart_ahead((16 + 6 * 60 + 5) * 60 * 1000); /* past the window */
    deadline = clock_monotonic_ms() + WAIT_MS;
    while (mailpeer_mails_to(&g_peer, w.pat.email) < 3 && clock_monotonic_ms() < deadline)
        mailpeer_sleep_ms(50);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 3);
    mailpeer_sleep_ms(2000);
    assert_int_equal(mailpeer_mails_to(&g_peer, w.pat.email), 3);
}

/* 451 to the first attempt: no second attempt before the retry delay (about
 * a minute); once it has passed (the clock moved by a restart), the same
 * message (same Message-ID) is delivered, once. */
static void test_outbox_temporary_failure_is_retried_once(void **state) {
    (void)state;
    struct rawc *root = rawc_open_login(g_h, ADMIN_EMAIL, PASSWORD, &g_root_dev, NULL);
    char code[RAWC_CODE_LEN];
    assert_int_equal(
        rawc_invite(root, "later@clinic.example", CARECHAT__V1__ROLE__PATIENT, code, NULL), 0);
    rawc_free(root);
    assert_int_equal(mailpeer_wait(&g_peer, "held", ".eml", 1), 1);
    mailpeer_sleep_ms(3000);
    assert_int_equal(mailpeer_count(&g_peer, "mail", ".eml"), 0);
    restart_ahead(3 * 60 * 1000);
    assert_int_equal(mailpeer_wait(&g_peer, "mail", ".eml", 1), 1);
    mailpeer_sleep_ms(2000);
    assert_int_equal(mailpeer_count(&g_peer, "mail", ".eml"), 1);
    struct buf held, sent;
    buf_init(&held);
    buf_init(&sent);
    mailpeer_read(&g_peer, "held", 1, ".eml", &held);
    mailpeer_read(&g_peer, "mail", 1, ".eml", &sent);
    char id1[128], id2[128];
    mailpeer_header((const char *)held.data, "Message-ID", id1, sizeof id1);
    mailpeer_header((const char *)sent.data, "Message-ID", id2, sizeof id2);
    assert_string_equal(id1, id2);
    buf_cleanup(&held);
    buf_cleanup(&sent);
}

static int setup_with(const char *const *extra, const char *mode) {
    mailpeer_start(&g_peer, mode);
    raw_device_make(&g_root_dev);
    g_h = server_start(&g_peer, extra);
    return 0;
}

static int group_setup(void **state) {
    (void)state;
    return setup_with(NULL, NULL);
}

static int temp_fail_setup(void **state) {
    (void)state;
    return setup_with(NULL, "temp-fail-first");
}

static int digest_setup(void **state) {
    (void)state;
    static const char *const extra[] = {"--notify-email-delay", "900", NULL};
    return setup_with(extra, NULL);
}

static int group_teardown(void **state) {
    (void)state;
    int status = -1;
    int rc = g_h ? harness_stop(g_h, &status) : STATUS_IO;
    harness_free(g_h);
    g_h = NULL;
    mailpeer_stop(&g_peer);
    return rc == 0 && status == 0 ? 0 : -1;
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_outbox_invitation_by_email_registers),
        cmocka_unit_test(test_outbox_breach_notices_reach_the_affected),
        cmocka_unit_test(test_outbox_quiet_hours_hold_the_notice),
        cmocka_unit_test(test_outbox_offline_recipient_gets_one_email),
        cmocka_unit_test(test_outbox_dead_webpush_token_is_removed),
        cmocka_unit_test(test_outbox_device_that_leaves_gets_one_push),
        cmocka_unit_test(test_outbox_settings_round_trip),
    };
    const struct CMUnitTest digest[] = {
        cmocka_unit_test(test_outbox_digest_timing),
    };
    const struct CMUnitTest temp_fail[] = {
        cmocka_unit_test(test_outbox_temporary_failure_is_retried_once),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_outbox_kill9_resends_with_same_message_id),
    };
    int failed = cmocka_run_group_tests_name("outbox", shared, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("outbox_digest", digest, digest_setup, group_teardown);
    failed +=
        cmocka_run_group_tests_name("outbox_retry", temp_fail, temp_fail_setup, group_teardown);
    failed += cmocka_run_group_tests_name("outbox_kill9", own, NULL, NULL);
    return failed;
}
