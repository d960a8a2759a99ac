/*
 * tests/messaging_test.c: direct conversations, end-to-end encrypted messages
 * and their durable delivery against the real carechatd: delivery to an
 * offline provider after login (Sync), all three devices of an account
 * receiving (each with only its own KeyWrap), live delivery, replay after
 * reconnect of exactly what was not acknowledged then QueueEmpty, a live
 * delivery byte for byte what its replay delivers, idempotent
 * resend, the device-set CONFLICT with missing/extra/stale ids, receipts, the
 * send rate limit and the inbox cap (nothing stored), patient-to-patient
 * refused, typing delivered live and never stored.
 *
 * One server (tests/harness.h, 127.0.0.1, fresh data directory) serves the
 * group; the limits test starts its own with small limits. Clients speak the
 * protocol with the raw WebSocket client and the codec; envelopes hold
 * well-formed dummy ciphertext (the server never opens them). Every wait has
 * a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "protocol/transcript.h"
#include "storage/keys.h"
#include "tests/harness.h"
#include "tests/rawclient.h"
#include "tests/rawproto.h"

#define TIMEOUT_MS 10000
#define ADMIN_EMAIL "root@clinic.example"
#define PASSWORD "correct horse battery"

static struct harness *g_h;

/* ---- sessions and accounts ------------------------------------------------------- */

/* Logs in with device `d` (registering it when it has no id yet). */
static struct rawc *login(struct harness *h, const char *email, struct raw_device *d,
                          uint8_t *account) {
    return rawc_open_login(h, email, PASSWORD, d, account);
}

/* The inviter invites a new account of `role`, which registers with one
 * device (connection closed). */
static void make_user(struct harness *h, struct rawc *inviter, Carechat__V1__Role role,
                      struct rawc_user *u) {
    rawc_make_user(h, inviter, role, PASSWORD, u);
}

/* Adds a device to `u` (a Login with a new device; connection closed). */
static void add_device(struct harness *h, struct rawc_user *u) {
    rawc_add_device(h, u, PASSWORD);
}

/* A provider P (invited by the admin) and a patient A invited by P. */
struct world {
    struct rawc *admin;
    struct rawc_user provider, patient;
};

static void world_make(struct harness *h, struct world *w) {
    /* One administrator device per server: an account has at most 6. */
    static struct harness *admin_h;
    static struct raw_device admin_dev;
    if (admin_h != h) {
        raw_device_make(&admin_dev);
        admin_h = h;
    }
    w->admin = login(h, ADMIN_EMAIL, &admin_dev, NULL);
    make_user(h, w->admin, CARECHAT__V1__ROLE__PROVIDER, &w->provider);
    struct rawc *p = login(h, w->provider.email, &w->provider.dev[0], NULL);
    make_user(h, p, CARECHAT__V1__ROLE__PATIENT, &w->patient);
    rawc_free(p);
}

static void world_free(struct world *w) {
    rawc_free(w->admin);
}

/* ---- conversations and messages ------------------------------------------------------- */

static Carechat__V1__Frame *create_direct(struct rawc *c, const uint8_t peer[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__CreateDirect cd;
    carechat__v1__frame__init(&f);
    carechat__v1__create_direct__init(&cd);
    cd.peer_account_id = (ProtobufCBinaryData){16, (uint8_t *)peer};
    f.body_case = CARECHAT__V1__FRAME__BODY_CREATE_DIRECT;
    f.create_direct = &cd;
    return rawc_rpc(c, &f);
}

static void create_direct_ok(struct rawc *c, const uint8_t peer[16], uint8_t conv[16]) {
    Carechat__V1__Frame *r = create_direct(c, peer);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_CONVERSATION);
    assert_int_equal(r->response->conversation->n_members, 2);
    memcpy(conv, r->response->conversation->conversation_id.data, 16);
    proto_free(r);
}

/* Makes a fresh world on the group's server; logs its patient in on the first
 * device (returned) and opens the direct conversation with its provider (its
 * id in conv). */
static struct rawc *patient_in_direct(struct world *w, uint8_t conv[16]) {
    world_make(g_h, w);
    struct rawc *a = login(g_h, w->patient.email, &w->patient.dev[0], NULL);
    create_direct_ok(a, w->provider.account, conv);
    return a;
}

/* `f` becomes a Typing request (typing: true) in `conv`, with `t` its body. */
static void typing_frame(Carechat__V1__Frame *f, Carechat__V1__Typing *t, const uint8_t conv[16]) {
    carechat__v1__frame__init(f);
    carechat__v1__typing__init(t);
    t->conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    t->typing = true;
    f->body_case = CARECHAT__V1__FRAME__BODY_TYPING;
    f->typing = t;
}

/* Sends `text` from the patient to every device of the provider; returns its
 * seq and writes its message id into mid[16] (may be NULL). */
static uint64_t send_to_provider(struct rawc *c, struct world *w, const uint8_t conv[16],
                                 const char *text, uint8_t *mid) {
    struct rawc_wrap_to to[3];
    for (int i = 0; i < w->provider.n_dev; i++)
        to[i] = (struct rawc_wrap_to){w->provider.dev[i].id, 1};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r = rawc_send_msg(c, conv, cmid, w->patient.dev[0].id, to,
                                           (size_t)w->provider.n_dev, text, false);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_SEND);
    uint64_t seq = r->response->send->seq;
    if (mid)
        memcpy(mid, r->response->send->message_id.data, 16);
    proto_free(r);
    return seq;
}

static uint64_t last_seq(struct rawc *c, const uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__GetConversation g;
    carechat__v1__frame__init(&f);
    carechat__v1__get_conversation__init(&g);
    g.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_CONVERSATION;
    f.get_conversation = &g;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    uint64_t seq = r->response->conversation->last_seq;
    proto_free(r);
    return seq;
}

/* The History page of `conv` on `c` (caller frees), answered OK. */
static Carechat__V1__Frame *history_page(struct rawc *c, const uint8_t conv[16]) {
    Carechat__V1__Frame f;
    Carechat__V1__History hi;
    carechat__v1__frame__init(&f);
    carechat__v1__history__init(&hi);
    hi.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    hi.limit = 100;
    f.body_case = CARECHAT__V1__FRAME__BODY_HISTORY;
    f.history = &hi;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    return r;
}

/* Number of messages History returns (newest page of up to 100). */
static size_t history_count(struct rawc *c, const uint8_t conv[16]) {
    Carechat__V1__Frame *r = history_page(c, conv);
    size_t n = r->response->history_page->n_messages;
    proto_free(r);
    return n;
}

/* ---- delivery ---------------------------------------------------------------------------- */

struct got {
    size_t n;
    char text[64][32];      /* bodies of delivered messages */
    uint8_t cursor[64][10]; /* each delivery's cursor */
    size_t cursor_len[64];
    uint8_t end_cursor[10]; /* QueueEmpty's cursor */
    size_t end_len;
    size_t receipts;
};

/* Records one Delivery of a message, checking that it carries exactly the
 * receiving device's wrap. */
static void record_delivery(struct got *g, const Carechat__V1__Delivery *d,
                            const uint8_t device[16]) {
    assert_true(g->n < 64);
    assert_true(d->cursor.len > 0 && d->cursor.len <= 10);
    memcpy(g->cursor[g->n], d->cursor.data, d->cursor.len);
    g->cursor_len[g->n] = d->cursor.len;
    if (d->item_case == CARECHAT__V1__DELIVERY__ITEM_RECEIPT) {
        g->receipts++;
        g->text[g->n][0] = '\0';
        g->n++;
        return;
    }
    assert_int_equal(d->item_case, CARECHAT__V1__DELIVERY__ITEM_MESSAGE);
    const Carechat__V1__Envelope *env = d->message->envelope;
    assert_non_null(env);
    assert_int_equal(env->n_wraps, 1);
    if (device)
        assert_memory_equal(env->wraps[0]->device_id.data, device, 16);
    assert_true(env->body.len < sizeof g->text[0]);
    memcpy(g->text[g->n], env->body.data, env->body.len);
    g->text[g->n][env->body.len] = '\0';
    g->n++;
}

/* Sends Sync{after}; the replay follows. */
static void start_sync(struct rawc *c, const uint8_t *after, size_t after_len) {
    Carechat__V1__Frame f;
    Carechat__V1__Sync s;
    carechat__v1__frame__init(&f);
    carechat__v1__sync__init(&s);
    s.after_cursor = (ProtobufCBinaryData){after_len, (uint8_t *)after};
    f.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    f.sync = &s;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    assert_true(r->response->sync->page_size > 0);
    proto_free(r);
}

/* Sends Sync{after} and collects the replay up to QueueEmpty. */
static void sync_all(struct rawc *c, const uint8_t *after, size_t after_len,
                     const uint8_t device[16], struct got *g) {
    memset(g, 0, sizeof *g);
    start_sync(c, after, after_len);
    for (int i = 0; i < 200; i++) {
        Carechat__V1__Frame *q = rawc_next_request(c, TIMEOUT_MS);
        assert_non_null(q);
        if (q->body_case == CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY) {
            memcpy(g->end_cursor, q->queue_empty->cursor.data, q->queue_empty->cursor.len);
            g->end_len = q->queue_empty->cursor.len;
            proto_free(q);
            return;
        }
        assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_DELIVERY);
        record_delivery(g, q->delivery, device);
        proto_free(q);
    }
    fail_msg("no QueueEmpty");
}

/* The next server request `c` receives, which must be a Delivery, packed
 * without its request id (its cursor and item) into `out`. */
static void next_delivery_packed(struct rawc *c, struct buf *out) {
    Carechat__V1__Frame *q = rawc_next_request(c, TIMEOUT_MS);
    assert_non_null(q);
    assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_DELIVERY);
    size_t n = carechat__v1__delivery__get_packed_size(q->delivery);
    buf_reset(out);
    buf_reserve(out, n);
    out->len = carechat__v1__delivery__pack(q->delivery, out->data);
    assert_int_equal(out->len, n);
    proto_free(q);
}

static void ack(struct rawc *c, const uint8_t *cursor, size_t len, int status) {
    Carechat__V1__Frame f;
    Carechat__V1__Ack a;
    carechat__v1__frame__init(&f);
    carechat__v1__ack__init(&a);
    a.cursor = (ProtobufCBinaryData){len, (uint8_t *)cursor};
    f.body_case = CARECHAT__V1__FRAME__BODY_ACK;
    f.ack = &a;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, status);
    proto_free(r);
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static struct harness *start_server(const char *const *extra) {
    const char *args[16] = {"--login-burst", "100000", "--login-burst-per-ip", "1000000", NULL};
    int n = 4;
    for (int i = 0; extra && extra[i] && n < 15; i++)
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

static int group_setup(void **state) {
    (void)state;
    const char *args[] = {"--send-burst", "1000", NULL};
    g_h = start_server(args);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    int status = -1;
    int rc = harness_stop(g_h, &status);
    harness_free(g_h);
    return rc == 0 && status == 0 ? 0 : -1;
}

/* ---- tests --------------------------------------------------------------------------------------
 */

/* A message to an offline provider with three devices reaches each device
 * after login, with only its own wrap; live delivery once synced; a read
 * receipt goes back to the patient. */
static void test_messaging_offline_three_devices_live_and_receipt(void **state) {
    (void)state;
    struct world w;
    world_make(g_h, &w);
    add_device(g_h, &w.provider);
    add_device(g_h, &w.provider);
    struct rawc *a = login(g_h, w.patient.email, &w.patient.dev[0], NULL);
    uint8_t conv[16], conv2[16], mid[16];
    create_direct_ok(a, w.provider.account, conv);
    create_direct_ok(a, w.provider.account, conv2);
    assert_memory_equal(conv, conv2, 16); /* same pair, same conversation */
    assert_int_equal(send_to_provider(a, &w, conv, "hello doctor", mid), 1);

    struct rawc *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = login(g_h, w.provider.email, &w.provider.dev[i], NULL);
        struct got g;
        sync_all(p[i], NULL, 0, w.provider.dev[i].id, &g);
        assert_int_equal(g.n, 1);
        assert_string_equal(g.text[0], "hello doctor");
        assert_int_equal(g.end_len, g.cursor_len[0]);
        assert_memory_equal(g.end_cursor, g.cursor[0], g.end_len);
    }
    /* Live: every synced device gets the next message at once. */
    assert_int_equal(send_to_provider(a, &w, conv, "second", NULL), 2);
    for (int i = 0; i < 3; i++) {
        Carechat__V1__Frame *q = rawc_next_request(p[i], TIMEOUT_MS);
        assert_non_null(q);
        assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_DELIVERY);
        struct got g = {0};
        record_delivery(&g, q->delivery, w.provider.dev[i].id);
        assert_string_equal(g.text[0], "second");
        proto_free(q);
    }
    /* A read receipt from the provider reaches the patient's device. */
    Carechat__V1__Frame f;
    Carechat__V1__SendReceipt sr;
    ProtobufCBinaryData ids[1] = {{16, mid}};
    carechat__v1__frame__init(&f);
    carechat__v1__send_receipt__init(&sr);
    sr.conversation_id = (ProtobufCBinaryData){16, conv};
    sr.kind = CARECHAT__V1__RECEIPT_KIND__READ;
    sr.n_message_ids = 1;
    sr.message_ids = ids;
    f.body_case = CARECHAT__V1__FRAME__BODY_SEND_RECEIPT;
    f.send_receipt = &sr;
    Carechat__V1__Frame *r = rawc_rpc(p[0], &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    r = rawc_rpc(p[1], &f); /* the same account again: ignored */
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    struct got g;
    sync_all(a, NULL, 0, w.patient.dev[0].id, &g);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.receipts, 1);
    for (int i = 0; i < 3; i++)
        rawc_free(p[i]);
    rawc_free(a);
    world_free(&w);
}

/* A message delivered live (taken from what apply stored, not read back)
 * is byte for byte what its replay from the store delivers, on each of three
 * devices (the second and third get the frame encoded once for all). */
static void test_messaging_live_delivery_is_the_stored_message(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16];
    struct rawc *a = patient_in_direct(&w, conv);
    add_device(g_h, &w.provider);
    add_device(g_h, &w.provider);
    struct rawc *p[3];
    struct got g;
    for (int i = 0; i < 3; i++) {
        p[i] = login(g_h, w.provider.email, &w.provider.dev[i], NULL);
        sync_all(p[i], NULL, 0, w.provider.dev[i].id, &g);
        assert_int_equal(g.n, 0); /* live from now on */
    }
    assert_int_equal(send_to_provider(a, &w, conv, "live and stored", NULL), 1);
    struct buf live[3], replayed;
    buf_init(&replayed);
    for (int i = 0; i < 3; i++) {
        buf_init(&live[i]);
        next_delivery_packed(p[i], &live[i]);
    }
    for (int i = 0; i < 3; i++) {
        rawc_free(p[i]);
        p[i] = login(g_h, w.provider.email, &w.provider.dev[i], NULL);
        start_sync(p[i], NULL, 0); /* nothing acknowledged: it comes again */
        next_delivery_packed(p[i], &replayed);
        assert_int_equal(replayed.len, live[i].len);
        assert_memory_equal(replayed.data, live[i].data, replayed.len);
        Carechat__V1__Frame *q = rawc_next_request(p[i], TIMEOUT_MS);
        assert_non_null(q);
        assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY);
        proto_free(q);
        rawc_free(p[i]);
        buf_cleanup(&live[i]);
    }
    buf_cleanup(&replayed);
    rawc_free(a);
    world_free(&w);
}

/* Reconnecting with the last acknowledged cursor replays exactly the rest. */
static void test_messaging_reconnect_replays_unacknowledged(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16];
    struct rawc *a = patient_in_direct(&w, conv);
    const char *texts[5] = {"m1", "m2", "m3", "m4", "m5"};
    for (int i = 0; i < 5; i++)
        send_to_provider(a, &w, conv, texts[i], NULL);

    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    struct got g;
    sync_all(p, NULL, 0, w.provider.dev[0].id, &g);
    assert_int_equal(g.n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(g.text[i], texts[i]);
    ack(p, g.cursor[1], g.cursor_len[1], STATUS_OK); /* processed m1, m2 */
    uint8_t acked[10];
    size_t acked_len = g.cursor_len[1];
    memcpy(acked, g.cursor[1], acked_len);
    uint8_t last[10];
    size_t last_len = g.cursor_len[4];
    memcpy(last, g.cursor[4], last_len);
    rawc_free(p);

    p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    sync_all(p, acked, acked_len, w.provider.dev[0].id, &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.text[0], "m3");
    assert_string_equal(g.text[1], "m4");
    assert_string_equal(g.text[2], "m5");
    assert_int_equal(g.end_len, last_len);
    assert_memory_equal(g.end_cursor, last, last_len);
    /* The acknowledged entries are gone: from the start only m3..m5 remain. */
    sync_all(p, NULL, 0, w.provider.dev[0].id, &g);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.text[0], "m3");
    /* Acknowledging everything leaves an empty inbox; a cursor never
     * delivered is CONFLICT. */
    ack(p, last, last_len, STATUS_OK);
    uint8_t future[1] = {0x7f};
    ack(p, future, 1, STATUS_CONFLICT);
    rawc_free(p);
    p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    sync_all(p, NULL, 0, w.provider.dev[0].id, &g);
    assert_int_equal(g.n, 0);
    rawc_free(p);
    rawc_free(a);
    world_free(&w);
}

/* Receives server requests without answering them until `want` came or
 * nothing more comes within quiet_ms; returns how many came, storing the
 * Deliveries' bodies and cursors in `g` and noting a QueueEmpty. */
static size_t recv_unanswered(struct rawc *c, size_t want, int quiet_ms, struct got *g,
                              uint64_t *ids, bool *queue_empty) {
    size_t n = 0;
    while (n < want + 1) {
        Carechat__V1__Frame *f = rawc_recv(c, n < want ? TIMEOUT_MS : quiet_ms);
        if (!f)
            break;
        if (f->body_case == CARECHAT__V1__FRAME__BODY_RESPONSE) {
            proto_free(f);
            continue;
        }
        ids[n++] = f->request_id;
        if (f->body_case == CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY)
            *queue_empty = true;
        else {
            assert_int_equal(f->body_case, CARECHAT__V1__FRAME__BODY_DELIVERY);
            record_delivery(g, f->delivery, NULL);
        }
        proto_free(f);
    }
    return n;
}

/* A long inbox is replayed a page at a time: the next page only once the
 * previous one was answered, or acknowledged. */
static void test_messaging_replay_in_pages(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16];
    struct rawc *a = patient_in_direct(&w, conv);
    char text[16];
    for (int i = 0; i < 150; i++) {
        snprintf(text, sizeof text, "n%d", i);
        send_to_provider(a, &w, conv, text, NULL);
    }
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    Carechat__V1__Frame f;
    Carechat__V1__Sync s;
    carechat__v1__frame__init(&f);
    carechat__v1__sync__init(&s);
    f.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    f.sync = &s;
    rawc_send_request(p, &f);
    struct got *g = calloc(3, sizeof *g);
    uint64_t ids[80];
    bool done = false;
    /* Page 1: 64 deliveries, then nothing while they are unanswered. */
    assert_int_equal(recv_unanswered(p, 64, 500, &g[0], ids, &done), 64);
    assert_false(done);
    for (size_t i = 0; i < 64; i++)
        rawc_answer_ok(p, ids[i]);
    /* Page 2: left unanswered, but acknowledged. */
    assert_int_equal(recv_unanswered(p, 64, 500, &g[1], ids, &done), 64);
    assert_false(done);
    Carechat__V1__Ack ak;
    carechat__v1__frame__init(&f);
    carechat__v1__ack__init(&ak);
    ak.cursor = (ProtobufCBinaryData){g[1].cursor_len[63], g[1].cursor[63]};
    f.body_case = CARECHAT__V1__FRAME__BODY_ACK;
    f.ack = &ak;
    rawc_send_request(p, &f);
    /* Page 3: the last 22, then QueueEmpty. */
    assert_int_equal(recv_unanswered(p, 23, 500, &g[2], ids, &done), 23);
    assert_true(done);
    int k = 0;
    for (int pg = 0; pg < 3; pg++)
        for (size_t i = 0; i < g[pg].n; i++, k++) {
            snprintf(text, sizeof text, "n%d", k);
            assert_string_equal(g[pg].text[i], text);
        }
    assert_int_equal(k, 150);
    free(g);
    rawc_free(p);
    rawc_free(a);
    world_free(&w);
}

/* The same client_msg_id stores one message and answers the first result. */
static void test_messaging_resend_same_client_msg_id_stores_once(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16], cmid[16];
    struct rawc *a = patient_in_direct(&w, conv);
    randombytes_buf(cmid, sizeof cmid);
    struct rawc_wrap_to to[1] = {{w.provider.dev[0].id, 1}};
    Carechat__V1__Frame *r1 =
        rawc_send_msg(a, conv, cmid, w.patient.dev[0].id, to, 1, "once", false);
    raw_expect_status(r1, STATUS_OK);
    Carechat__V1__Frame *r2 =
        rawc_send_msg(a, conv, cmid, w.patient.dev[0].id, to, 1, "once", false);
    raw_expect_status(r2, STATUS_OK);
    assert_memory_equal(r1->response->send->message_id.data, r2->response->send->message_id.data,
                        16);
    assert_true(r1->response->send->seq == r2->response->send->seq);
    assert_true(r1->response->send->sent_at == r2->response->send->sent_at);
    proto_free(r1);
    proto_free(r2);
    assert_int_equal(last_seq(a, conv), 1);
    assert_int_equal(history_count(a, conv), 1);
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    struct got g;
    sync_all(p, NULL, 0, w.provider.dev[0].id, &g);
    assert_int_equal(g.n, 1);
    rawc_free(p);
    rawc_free(a);
    world_free(&w);
}

/* The server verifies Envelope.signature with the sending device's identity
 * key: an envelope whose urgent flag, counter, sender clock, body or wraps
 * differ from what the device signed is refused (BAD_REQUEST) and nothing
 * is stored; the signed one goes through. Fails when the handler does not
 * verify the signature. */
static void test_messaging_signature_binds_the_context(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16], cmid[16];
    struct rawc *a = patient_in_direct(&w, conv);
    randombytes_buf(cmid, sizeof cmid);
    struct rawc_wrap_to to[1] = {{w.provider.dev[0].id, 1}};
    char text[] = "take 2 tablets";
    for (int tamper = 0; tamper < 6; tamper++) {
        Carechat__V1__Frame f;
        struct rawc_send_buf b;
        rawc_build_send(&f, &b, conv, cmid, w.patient.dev[0].id, to, 1, text, false);
        switch (tamper) {
        case 0:
            b.send.urgent = true; /* the urgent flag a server would flip */
            break;
        case 1:
            b.env.counter++;
            break;
        case 2:
            b.env.sent_at--;
            break;
        case 3:
            b.env.body =
                (ProtobufCBinaryData){strlen("take 3 tablets"), (uint8_t *)"take 3 tablets"};
            break;
        case 4:
            b.wraps[0].key_id = 2;
            break;
        default:
            b.sig[5] ^= 1;
            break;
        }
        Carechat__V1__Frame *r = rawc_rpc(a, &f);
        raw_expect_status(r, STATUS_BAD_REQUEST);
        proto_free(r);
    }
    assert_int_equal(last_seq(a, conv), 0);
    Carechat__V1__Frame *r = rawc_send_msg(a, conv, cmid, w.patient.dev[0].id, to, 1, text, true);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    assert_int_equal(last_seq(a, conv), 1);
    rawc_free(a);
    world_free(&w);
}

/* Recall `mid` of `conv` on `c`, signed with `sig` (NULL: unsigned). */
static Carechat__V1__Frame *recall(struct rawc *c, const uint8_t conv[16], const uint8_t mid[16],
                                   const uint8_t *sig) {
    Carechat__V1__Frame f;
    Carechat__V1__Recall r;
    carechat__v1__frame__init(&f);
    carechat__v1__recall__init(&r);
    r.conversation_id = (ProtobufCBinaryData){16, (uint8_t *)conv};
    r.message_id = (ProtobufCBinaryData){16, (uint8_t *)mid};
    if (sig != NULL)
        r.signature = (ProtobufCBinaryData){64, (uint8_t *)sig};
    f.body_case = CARECHAT__V1__FRAME__BODY_RECALL;
    f.recall = &r;
    return rawc_rpc(c, &f);
}

/* Every recall is signed by the calling device: unsigned, signed by another
 * key, or over another message it is refused (BAD_REQUEST) and the message
 * stays; the sender's recall transcript over the client_msg_id goes
 * through, and the tombstone carries its signature, device and account. */
static void test_messaging_recall_must_be_signed(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16], cmid[16], mid[16], other[16] = {1}, sig[64];
    struct rawc *a = patient_in_direct(&w, conv);
    randombytes_buf(cmid, sizeof cmid);
    struct rawc_wrap_to to[1] = {{w.provider.dev[0].id, 1}};
    Carechat__V1__Frame *r = rawc_send_msg(a, conv, cmid, w.patient.dev[0].id, to, 1, "x", false);
    raw_expect_status(r, STATUS_OK);
    memcpy(mid, r->response->send->message_id.data, 16);
    proto_free(r);
    uint8_t t[TRANSCRIPT_RECALL_LEN], tr[TRANSCRIPT_REMOVAL_LEN];
    transcript_recall(conv, cmid, t);
    transcript_removal(conv, other, tr);
    struct raw_device stranger;
    raw_device_make(&stranger);
    for (int attempt = 0; attempt < 3; attempt++) {
        const uint8_t *s = NULL;
        if (attempt == 1)
            crypto_sign_detached(sig, NULL, t, sizeof t, stranger.isk); /* another key */
        else if (attempt == 2)
            crypto_sign_detached(sig, NULL, tr, sizeof tr, w.patient.dev[0].isk); /* other id */
        if (attempt > 0)
            s = sig;
        r = recall(a, conv, mid, s);
        raw_expect_status(r, STATUS_BAD_REQUEST);
        proto_free(r);
        Carechat__V1__Frame *h = history_page(a, conv);
        assert_int_equal(h->response->history_page->n_messages, 1);
        assert_non_null(h->response->history_page->messages[0]->envelope); /* not recalled */
        proto_free(h);
    }
    crypto_sign_detached(sig, NULL, t, sizeof t, w.patient.dev[0].isk);
    r = recall(a, conv, mid, sig);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    /* the provider's history: the tombstone with the recall's signer */
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    r = history_page(p, conv);
    assert_int_equal(r->response->history_page->n_messages, 1);
    const Carechat__V1__StoredMessage *m = r->response->history_page->messages[0];
    assert_true(m->recalled_at != 0);
    assert_null(m->envelope);
    assert_int_equal(m->recall_signature.len, 64);
    assert_memory_equal(m->recall_signature.data, sig, 64);
    assert_memory_equal(m->recall_signer_device_id.data, w.patient.dev[0].id, 16);
    assert_memory_equal(m->recall_signer_account_id.data, w.patient.account, 16);
    proto_free(r);
    rawc_free(p);
    rawc_free(a);
    world_free(&w);
}

/* Wraps that do not match the current devices: CONFLICT with the ids. */
static void test_messaging_wrong_device_set_conflict(void **state) {
    (void)state;
    struct world w;
    world_make(g_h, &w);
    add_device(g_h, &w.provider);
    add_device(g_h, &w.provider);
    add_device(g_h, &w.patient); /* the sender's other device must be covered too */
    struct rawc *a = login(g_h, w.patient.email, &w.patient.dev[0], NULL);
    uint8_t conv[16], cmid[16], stranger[16];
    create_direct_ok(a, w.provider.account, conv);
    randombytes_buf(cmid, sizeof cmid);
    randombytes_buf(stranger, sizeof stranger);
    struct rawc_wrap_to to[4] = {
        {w.provider.dev[0].id, 1}, /* fine */
        {w.provider.dev[2].id, 9}, /* stale key id */
        {stranger, 1},             /* extra */
        {w.patient.dev[0].id, 1},  /* the sending device itself: allowed */
    };
    Carechat__V1__Frame *r = rawc_send_msg(a, conv, cmid, w.patient.dev[0].id, to, 4, "x", false);
    raw_expect_status(r, STATUS_CONFLICT);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_DEVICE_MISMATCH);
    const Carechat__V1__DeviceMismatch *dm = r->response->device_mismatch;
    assert_int_equal(dm->n_missing_device_ids, 2);
    bool seen_p1 = false, seen_a1 = false;
    for (size_t i = 0; i < 2; i++) {
        seen_p1 |= memcmp(dm->missing_device_ids[i].data, w.provider.dev[1].id, 16) == 0;
        seen_a1 |= memcmp(dm->missing_device_ids[i].data, w.patient.dev[1].id, 16) == 0;
    }
    assert_true(seen_p1 && seen_a1);
    assert_int_equal(dm->n_extra_device_ids, 1);
    assert_memory_equal(dm->extra_device_ids[0].data, stranger, 16);
    assert_int_equal(dm->n_stale_device_ids, 1);
    assert_memory_equal(dm->stale_device_ids[0].data, w.provider.dev[2].id, 16);
    proto_free(r);
    assert_int_equal(last_seq(a, conv), 0);
    /* Fixed up, the same client_msg_id goes through. */
    struct rawc_wrap_to ok[4] = {{w.provider.dev[0].id, 1},
                                 {w.provider.dev[1].id, 1},
                                 {w.provider.dev[2].id, 1},
                                 {w.patient.dev[1].id, 1}};
    r = rawc_send_msg(a, conv, cmid, w.patient.dev[0].id, ok, 4, "x", false);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    assert_int_equal(last_seq(a, conv), 1);
    rawc_free(a);
    world_free(&w);
}

/* A patient never reaches another patient, nor staff who did not invite them. */
static void test_messaging_patient_to_patient_refused(void **state) {
    (void)state;
    struct world w;
    world_make(g_h, &w);
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    struct rawc_user other, stranger_provider;
    make_user(g_h, p, CARECHAT__V1__ROLE__PATIENT, &other);
    make_user(g_h, w.admin, CARECHAT__V1__ROLE__PROVIDER, &stranger_provider);
    struct rawc *a = login(g_h, w.patient.email, &w.patient.dev[0], NULL);
    Carechat__V1__Frame *r = create_direct(a, other.account);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    r = create_direct(a, stranger_provider.account);
    raw_expect_status(r, STATUS_NOT_FOUND);
    proto_free(r);
    r = create_direct(a, w.patient.account);
    raw_expect_status(r, STATUS_BAD_REQUEST);
    proto_free(r);
    /* Staff with staff is fine; the provider may open one with its patient. */
    uint8_t conv[16];
    create_direct_ok(p, stranger_provider.account, conv);
    create_direct_ok(p, other.account, conv);
    rawc_free(a);
    rawc_free(p);
    world_free(&w);
}

static Carechat__V1__Frame *list_conversations(struct rawc *c, uint32_t limit,
                                               const ProtobufCBinaryData *token) {
    Carechat__V1__Frame f;
    Carechat__V1__ListConversations l;
    carechat__v1__frame__init(&f);
    carechat__v1__list_conversations__init(&l);
    l.limit = limit;
    if (token)
        l.page_token = *token;
    f.body_case = CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS;
    f.list_conversations = &l;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    assert_int_equal(r->response->result_case, CARECHAT__V1__RESPONSE__RESULT_CONVERSATION_PAGE);
    return r;
}

/* ListConversations: the caller's conversations, most recently active first,
 * in pages. */
static void test_messaging_list_conversations_most_recent_first(void **state) {
    (void)state;
    struct world w;
    world_make(g_h, &w);
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    struct rawc_user other, colleague;
    make_user(g_h, p, CARECHAT__V1__ROLE__PATIENT, &other);
    make_user(g_h, w.admin, CARECHAT__V1__ROLE__PROVIDER, &colleague);
    uint8_t convs[3][16];
    create_direct_ok(p, w.patient.account, convs[0]);
    create_direct_ok(p, other.account, convs[1]);
    create_direct_ok(p, colleague.account, convs[2]);
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    /* A message makes the oldest conversation the most recent. */
    struct rawc *a = login(g_h, w.patient.email, &w.patient.dev[0], NULL);
    send_to_provider(a, &w, convs[0], "bump", NULL);
    Carechat__V1__Frame *r1 = list_conversations(p, 2, NULL);
    const Carechat__V1__ConversationPage *pg = r1->response->conversation_page;
    assert_int_equal(pg->n_conversations, 2);
    assert_memory_equal(pg->conversations[0]->conversation_id.data, convs[0], 16);
    assert_int_equal(pg->conversations[0]->last_seq, 1);
    assert_int_equal(pg->conversations[0]->n_members, 2);
    assert_true(pg->next_page_token.len > 0);
    Carechat__V1__Frame *r2 = list_conversations(p, 2, &pg->next_page_token);
    const Carechat__V1__ConversationPage *pg2 = r2->response->conversation_page;
    assert_int_equal(pg2->n_conversations, 1);
    assert_int_equal(pg2->next_page_token.len, 0);
    /* Every conversation exactly once. */
    const uint8_t *seen[3] = {pg->conversations[0]->conversation_id.data,
                              pg->conversations[1]->conversation_id.data,
                              pg2->conversations[0]->conversation_id.data};
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int j = 0; j < 3; j++)
            found += memcmp(seen[j], convs[i], 16) == 0;
        assert_int_equal(found, 1);
    }
    proto_free(r1);
    proto_free(r2);
    /* The patient sees only its own conversation. */
    Carechat__V1__Frame *r3 = list_conversations(a, 0, NULL);
    assert_int_equal(r3->response->conversation_page->n_conversations, 1);
    proto_free(r3);
    rawc_free(a);
    rawc_free(p);
    world_free(&w);
}

/* Sends `text` from the first device of `from` (its only one) to `to`'s
 * only device; the message's sent_at. */
static int64_t send_one(struct rawc *c, const struct rawc_user *from, const struct rawc_user *to,
                        const uint8_t conv[16], const char *text) {
    struct rawc_wrap_to wrap = {to->dev[0].id, 1};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r = rawc_send_msg(c, conv, cmid, from->dev[0].id, &wrap, 1, text, false);
    raw_expect_status(r, STATUS_OK);
    int64_t at = r->response->send->sent_at;
    proto_free(r);
    return at;
}

/* A page token's time (UINT64_MAX minus it, big-endian) and conversation. */
static int64_t token_time(const ProtobufCBinaryData *t) {
    assert_int_equal(t->len, 8 + 16);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | t->data[i];
    return (int64_t)(UINT64_MAX - v);
}

/* ListConversations orders by the last message when it lists, whoever sent
 * it, and by the creation for a conversation without one; pages of one,
 * then of three, follow that order, each token holding the last entry's
 * activity time and id. */
static void test_messaging_list_conversations_pages_by_activity(void **state) {
    (void)state;
    struct world w;
    world_make(g_h, &w);
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    struct rawc_user peer[4];
    peer[0] = w.patient;
    make_user(g_h, p, CARECHAT__V1__ROLE__PATIENT, &peer[1]);
    make_user(g_h, w.admin, CARECHAT__V1__ROLE__PROVIDER, &peer[2]);
    make_user(g_h, w.admin, CARECHAT__V1__ROLE__PROVIDER, &peer[3]);
    const struct timespec pause = {.tv_nsec = 5 * 1000000L};
    uint8_t convs[4][16];
    int64_t created[4];
    for (int i = 0; i < 4; i++) {
        create_direct_ok(p, peer[i].account, convs[i]);
        Carechat__V1__Frame *r = list_conversations(p, 1, NULL);
        assert_memory_equal(r->response->conversation_page->conversations[0]->conversation_id.data,
                            convs[i], 16); /* the newest */
        created[i] = r->response->conversation_page->conversations[0]->created_at;
        proto_free(r);
        nanosleep(&pause, NULL);
    }
    /* Messages to 1, then 3, then from the peer in 0: 0, 3, 1, then 2. */
    int64_t at[4] = {0, 0, created[2], 0};
    at[1] = send_one(p, &w.provider, &peer[1], convs[1], "one");
    nanosleep(&pause, NULL);
    at[3] = send_one(p, &w.provider, &peer[3], convs[3], "three");
    nanosleep(&pause, NULL);
    struct rawc *a = login(g_h, w.patient.email, &w.patient.dev[0], NULL);
    at[0] = send_one(a, &w.patient, &w.provider, convs[0], "zero");
    const int order[4] = {0, 3, 1, 2};
    /* Pages of one. */
    ProtobufCBinaryData token = {0};
    uint8_t token_data[24];
    for (int i = 0; i < 4; i++) {
        Carechat__V1__Frame *r = list_conversations(p, 1, i ? &token : NULL);
        const Carechat__V1__ConversationPage *pg = r->response->conversation_page;
        assert_int_equal(pg->n_conversations, 1);
        assert_memory_equal(pg->conversations[0]->conversation_id.data, convs[order[i]], 16);
        if (i == 3) {
            assert_int_equal(pg->next_page_token.len, 0);
        } else {
            assert_int_equal(token_time(&pg->next_page_token), at[order[i]]);
            assert_memory_equal(pg->next_page_token.data + 8, convs[order[i]], 16);
            memcpy(token_data, pg->next_page_token.data, sizeof token_data);
            token = (ProtobufCBinaryData){sizeof token_data, token_data};
        }
        proto_free(r);
    }
    /* Pages of three. */
    Carechat__V1__Frame *r1 = list_conversations(p, 3, NULL);
    const Carechat__V1__ConversationPage *pg = r1->response->conversation_page;
    assert_int_equal(pg->n_conversations, 3);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(pg->conversations[i]->conversation_id.data, convs[order[i]], 16);
    assert_int_equal(token_time(&pg->next_page_token), at[1]);
    Carechat__V1__Frame *r2 = list_conversations(p, 3, &pg->next_page_token);
    const Carechat__V1__ConversationPage *pg2 = r2->response->conversation_page;
    assert_int_equal(pg2->n_conversations, 1);
    assert_memory_equal(pg2->conversations[0]->conversation_id.data, convs[2], 16);
    assert_int_equal(pg2->next_page_token.len, 0);
    proto_free(r1);
    proto_free(r2);
    /* A message moves 2 to the front. */
    nanosleep(&pause, NULL);
    send_one(p, &w.provider, &peer[2], convs[2], "two");
    r1 = list_conversations(p, 2, NULL);
    pg = r1->response->conversation_page;
    assert_memory_equal(pg->conversations[0]->conversation_id.data, convs[2], 16);
    assert_memory_equal(pg->conversations[1]->conversation_id.data, convs[0], 16);
    proto_free(r1);
    rawc_free(a);
    rawc_free(p);
    world_free(&w);
}

/* Typing reaches the other member's open connection and is never stored. */
static void test_messaging_typing_live_not_stored(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16];
    struct rawc *a = patient_in_direct(&w, conv);
    struct rawc *p = login(g_h, w.provider.email, &w.provider.dev[0], NULL);
    Carechat__V1__Frame f;
    Carechat__V1__Typing t;
    typing_frame(&f, &t, conv);
    Carechat__V1__Frame *r = rawc_rpc(a, &f);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    Carechat__V1__Frame *q = rawc_next_request(p, TIMEOUT_MS);
    assert_non_null(q);
    assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_TYPING_EVENT);
    assert_memory_equal(q->typing_event->account_id.data, w.patient.account, 16);
    assert_memory_equal(q->typing_event->conversation_id.data, conv, 16);
    assert_true(q->typing_event->typing);
    proto_free(q);
    /* The sender's own connection gets nothing. */
    assert_null(rawc_next_request(a, 300));
    /* Nothing stored: no inbox entry, no message. */
    struct got g;
    sync_all(p, NULL, 0, w.provider.dev[0].id, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(last_seq(p, conv), 0);
    assert_int_equal(history_count(p, conv), 0);
    rawc_free(p);
    rawc_free(a);
    world_free(&w);
}

/* Many requests sent at once before anything is read: their answers queue
 * up behind a full socket and go out several frames to a send, cut at whole
 * frames (server/ws.c write_frames()); each arrives intact and in order. */
static void test_messaging_pipelined_answers_arrive_whole_and_in_order(void **state) {
    (void)state;
    enum { N = 20000 };
    struct world w;
    uint8_t conv[16];
    struct rawc *a = patient_in_direct(&w, conv);
    Carechat__V1__Frame f;
    Carechat__V1__Typing t;
    typing_frame(&f, &t, conv);
    uint64_t first = 0;
    for (int i = 0; i < N; i++) {
        uint64_t id = rawc_send_request(a, &f);
        if (i == 0)
            first = id;
    }
    for (uint64_t id = first; id < first + N; id++) {
        Carechat__V1__Frame *r = rawc_recv(a, TIMEOUT_MS);
        assert_non_null(r);
        assert_int_equal(r->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
        assert_true(r->request_id == id);
        proto_free(r);
    }
    assert_null(rawc_recv(a, 100));
    rawc_free(a);
    world_free(&w);
}

/* Two requests with one id, the first still in flight when the second comes:
 * the second is refused (CONFLICT), the message stored once. Ids of the
 * wrong length are BAD_REQUEST, not NOT_FOUND. */
static void test_messaging_duplicate_request_id_and_bad_ids(void **state) {
    (void)state;
    struct world w;
    uint8_t conv[16];
    struct rawc *a = patient_in_direct(&w, conv);
    struct rawc_wrap_to to[1] = {{w.provider.dev[0].id, 1}};
    uint8_t c1[16], c2[16];
    randombytes_buf(c1, sizeof c1);
    randombytes_buf(c2, sizeof c2);
    Carechat__V1__Frame f1, f2;
    struct rawc_send_buf b1, b2;
    rawc_build_send(&f1, &b1, conv, c1, w.patient.dev[0].id, to, 1, "one", false);
    rawc_build_send(&f2, &b2, conv, c2, w.patient.dev[0].id, to, 1, "two", false);
    f1.request_id = f2.request_id = 4242;
    rawc_send_frame(a, &f1);
    rawc_send_frame(a, &f2);
    int ok = 0, conflict = 0;
    for (int i = 0; i < 2; i++) {
        Carechat__V1__Frame *r = rawc_recv(a, TIMEOUT_MS);
        assert_non_null(r);
        assert_int_equal(r->body_case, CARECHAT__V1__FRAME__BODY_RESPONSE);
        assert_true(r->request_id == 4242);
        ok += r->response->status == CARECHAT__V1__STATUS__OK;
        if (r->response->status == CARECHAT__V1__STATUS__CONFLICT) {
            assert_string_equal(r->response->detail, "request id in flight");
            conflict++;
        }
        proto_free(r);
    }
    assert_int_equal(ok, 1);
    assert_int_equal(conflict, 1);
    assert_int_equal(last_seq(a, conv), 1);
    /* A conversation id of 15 bytes. */
    Carechat__V1__Frame f;
    Carechat__V1__GetConversation g;
    carechat__v1__frame__init(&f);
    carechat__v1__get_conversation__init(&g);
    g.conversation_id = (ProtobufCBinaryData){15, conv};
    f.body_case = CARECHAT__V1__FRAME__BODY_GET_CONVERSATION;
    f.get_conversation = &g;
    Carechat__V1__Frame *r = rawc_rpc(a, &f);
    raw_expect_status(r, STATUS_BAD_REQUEST);
    proto_free(r);
    rawc_free(a);
    world_free(&w);
}

/* Sends `text` from the provider (its first device) to both devices of the
 * patient; the answer's status. */
static int send_to_patient(struct rawc *c, struct world *w, const uint8_t conv[16],
                           const char *text) {
    struct rawc_wrap_to to[2] = {{w->patient.dev[0].id, 1}, {w->patient.dev[1].id, 1}};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r =
        rawc_send_msg(c, conv, cmid, w->provider.dev[0].id, to, 2, text, false);
    int status = (int)r->response->status;
    proto_free(r);
    return status;
}

/* The DeviceInfo of `device` among the account's devices (ListDevices). */
static void device_inbox(struct rawc *c, const uint8_t account[16], const uint8_t device[16],
                         int64_t *full_since, uint64_t *missed) {
    Carechat__V1__Frame f;
    Carechat__V1__ListDevices l;
    ProtobufCBinaryData id = {16, (uint8_t *)account};
    carechat__v1__frame__init(&f);
    carechat__v1__list_devices__init(&l);
    l.n_account_ids = 1;
    l.account_ids = &id;
    f.body_case = CARECHAT__V1__FRAME__BODY_LIST_DEVICES;
    f.list_devices = &l;
    Carechat__V1__Frame *r = rawc_rpc(c, &f);
    raw_expect_status(r, STATUS_OK);
    const Carechat__V1__AccountDevices *ad = r->response->device_bundles->accounts[0];
    bool found = false;
    for (size_t i = 0; i < ad->n_devices; i++)
        if (memcmp(ad->devices[i]->keys->device_id.data, device, 16) == 0) {
            *full_since = ad->devices[i]->inbox_full_since;
            *missed = ad->devices[i]->missed_messages;
            found = true;
        }
    assert_true(found);
    proto_free(r);
}

/* Sends `text` from the patient's first device to the provider and to the
 * patient's second device; the answer's status. */
static int send_from_patient(struct rawc *c, struct world *w, const uint8_t conv[16],
                             const char *text) {
    struct rawc_wrap_to to[2] = {{w->provider.dev[0].id, 1}, {w->patient.dev[1].id, 1}};
    uint8_t cmid[16];
    randombytes_buf(cmid, sizeof cmid);
    Carechat__V1__Frame *r = rawc_send_msg(c, conv, cmid, w->patient.dev[0].id, to, 2, text, false);
    int status = (int)r->response->status;
    proto_free(r);
    return status;
}

/* A patient's second device that never collects its messages (a lost phone)
 * holds no one up (--inbox-max 20, --inbox-sender-max 15): 30 messages of the
 * provider all reach the first device, which collects as it goes; the silent
 * one takes the provider's first 15 (its share) and misses 15, yet still
 * takes the patient's own 5 (another sender), then is full and misses the
 * next; ListDevices flags it; when it finally syncs it gets its 20 and
 * QueueEmpty says it missed 16. */
static void test_messaging_silent_device_does_not_block(void **state) {
    (void)state;
    const char *args[] = {
        "--send-burst", "100", "--send-window", "3600", "--inbox-max", "20", "--inbox-sender-max",
        "15",           NULL};
    struct harness *h = start_server(args);
    struct world w;
    world_make(h, &w);
    add_device(h, &w.patient); /* dev[1]: registered, then never seen again */
    struct rawc *pro = login(h, w.provider.email, &w.provider.dev[0], NULL);
    uint8_t conv[16];
    create_direct_ok(pro, w.patient.account, conv);
    size_t received = 0;
    for (int i = 0; i < 30; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%02d", i);
        assert_int_equal(send_to_patient(pro, &w, conv, text), CARECHAT__V1__STATUS__OK);
        if (i % 10 == 9) { /* the first device collects as it goes */
            struct got g;
            struct rawc *pat = login(h, w.patient.email, &w.patient.dev[0], NULL);
            sync_all(pat, NULL, 0, w.patient.dev[0].id, &g);
            for (size_t k = 0; k < g.n; k++) {
                snprintf(text, sizeof text, "m%02zu", received + k);
                assert_string_equal(g.text[k], text);
            }
            received += g.n;
            ack(pat, g.end_cursor, g.end_len, STATUS_OK);
            rawc_free(pat);
        }
    }
    assert_int_equal(received, 30);
    struct rawc *pat = login(h, w.patient.email, &w.patient.dev[0], NULL);
    for (int i = 0; i < 5; i++)
        assert_int_equal(send_from_patient(pat, &w, conv, "own"), CARECHAT__V1__STATUS__OK);
    assert_int_equal(send_to_patient(pro, &w, conv, "m30"), CARECHAT__V1__STATUS__OK);
    int64_t since;
    uint64_t missed;
    device_inbox(pat, w.patient.account, w.patient.dev[1].id, &since, &missed);
    assert_true(since > 0);
    assert_true(missed == 16);
    device_inbox(pat, w.patient.account, w.patient.dev[0].id, &since, &missed);
    assert_true(since == 0 && missed == 0);
    /* The silent device finally syncs: 20 in its inbox, told it missed 16. */
    struct rawc *silent = login(h, w.patient.email, &w.patient.dev[1], NULL);
    Carechat__V1__Frame sf;
    Carechat__V1__Sync sy;
    carechat__v1__frame__init(&sf);
    carechat__v1__sync__init(&sy);
    sf.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    sf.sync = &sy;
    Carechat__V1__Frame *r = rawc_rpc(silent, &sf);
    raw_expect_status(r, STATUS_OK);
    proto_free(r);
    size_t queued = 0, own = 0;
    for (int i = 0; i < 100; i++) {
        Carechat__V1__Frame *q = rawc_next_request(silent, TIMEOUT_MS);
        assert_non_null(q);
        if (q->body_case == CARECHAT__V1__FRAME__BODY_QUEUE_EMPTY) {
            assert_true(q->queue_empty->missed_messages == 16);
            proto_free(q);
            break;
        }
        assert_int_equal(q->body_case, CARECHAT__V1__FRAME__BODY_DELIVERY);
        const Carechat__V1__Envelope *env = q->delivery->message->envelope;
        own += env->body.len == 3 && memcmp(env->body.data, "own", 3) == 0;
        queued++;
        proto_free(q);
    }
    assert_int_equal(queued, 20);
    assert_int_equal(own, 5);
    rawc_free(silent);
    rawc_free(pat);
    rawc_free(pro);
    world_free(&w);
    int status = -1;
    assert_int_equal(harness_stop(h, &status), 0);
    assert_int_equal(status, 0);
    harness_free(h);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messaging_offline_three_devices_live_and_receipt),
        cmocka_unit_test(test_messaging_live_delivery_is_the_stored_message),
        cmocka_unit_test(test_messaging_reconnect_replays_unacknowledged),
        cmocka_unit_test(test_messaging_replay_in_pages),
        cmocka_unit_test(test_messaging_resend_same_client_msg_id_stores_once),
        cmocka_unit_test(test_messaging_wrong_device_set_conflict),
        cmocka_unit_test(test_messaging_signature_binds_the_context),
        cmocka_unit_test(test_messaging_recall_must_be_signed),
        cmocka_unit_test(test_messaging_patient_to_patient_refused),
        cmocka_unit_test(test_messaging_list_conversations_most_recent_first),
        cmocka_unit_test(test_messaging_list_conversations_pages_by_activity),
        cmocka_unit_test(test_messaging_typing_live_not_stored),
        cmocka_unit_test(test_messaging_pipelined_answers_arrive_whole_and_in_order),
        cmocka_unit_test(test_messaging_silent_device_does_not_block),
        cmocka_unit_test(test_messaging_duplicate_request_id_and_bad_ids),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
