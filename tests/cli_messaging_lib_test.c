/*
 * tests/cli_messaging_lib_test.c: libcarechat's end-to-end messaging
 * (client/carechat.h) against the real carechatd, where one process must keep
 * state between steps: a sender whose cached device lists went stale (a new
 * device of the recipient appeared) gets CONFLICT and recovers with one
 * refresh; a reconnect replays exactly what was not acknowledged; a resend
 * with the same client_msg_id stores one message; a read receipt reaches the
 * sender and a typing hint the other member as events. The command-line scenarios are in
 * cli_messaging_test.sh.
 *
 * One server for the group (bootstrapped like cli_test.c); every test uses
 * fresh accounts and profile directories. Every wait has a deadline; everything
 * is on 127.0.0.1.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/id.h"
#include "base/status.h"
#include "client/carechat.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define DOC_PASSWORD "doctor-secret-passphrase"

static struct harness *server;
/* The sysadmin, logged in once for the group (logins are rate limited). */
static struct carechat *root;
static char url[FIXTURE_URL_LEN];

static int group_setup(void **state) {
    if (fixture_start_bootstrapped(NULL, &server) != 0)
        return -1;
    fixture_url(server, url);
    return 0;
}

static int group_teardown(void **state) {
    carechat_close(root);
    return fixture_stop(server);
}

/* Logs the sysadmin in once for the group; invites `addr` as a provider and
 * registers them with a fresh profile (`doc_dir`). Returns the provider's
 * handle. */
static struct carechat *make_provider(const char *addr, const char *name,
                                      char doc_dir[FIXTURE_DIR_LEN]) {
    if (root == NULL) {
        char root_dir[FIXTURE_DIR_LEN];
        fixture_fresh_profile("root", root_dir);
        root = fixture_open(url, root_dir);
        FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    }
    return fixture_invite_register(url, root, addr, CARECHAT_ROLE_PROVIDER, DOC_PASSWORD, name,
                                   doc_dir);
}

/* Two providers who may write to each other, and their direct conversation,
 * opened by `a`. */
static void two_providers(const char *tag, struct carechat **a, struct carechat **b,
                          char b_addr[64], char b_dir[FIXTURE_DIR_LEN], struct id *conv) {
    char a_addr[64], a_dir[FIXTURE_DIR_LEN], name[32];
    snprintf(name, sizeof name, "%s-a", tag);
    fixture_email(name, a_addr);
    snprintf(name, sizeof name, "%s-b", tag);
    fixture_email(name, b_addr);
    *a = make_provider(a_addr, "Dr A", a_dir);
    *b = make_provider(b_addr, "Dr B", b_dir);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(*a, carechat_open_direct(*a, b_addr, &cv));
    assert_int_equal(cv.kind, CARECHAT_CONVERSATION_DIRECT);
    assert_int_equal(cv.n_members, 2);
    *conv = cv.conversation_id;
    carechat_conversation_cleanup(&cv);
}

static void send_text(struct carechat *c, const struct id *conv, const char *text,
                      struct carechat_sent *sent) {
    FIXTURE_ASSERT_OK(c, carechat_send(c, conv, (const uint8_t *)text, strlen(text), NULL, sent));
}

/* Receives the next message (waiting at most 5 s) and checks its text. */
static void expect_text(struct carechat *c, const char *text) {
    struct carechat_message m;
    int rc = carechat_recv(c, 5000, &m);
    if (rc != 0)
        fail_msg("expected '%s', got %d: %s", text, rc, carechat_error(c));
    assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
    assert_int_equal(m.text_len, strlen(text));
    assert_string_equal(m.text, text);
    carechat_message_cleanup(&m);
}

static void expect_nothing(struct carechat *c) {
    struct carechat_message m;
    int rc = carechat_recv(c, 300, &m);
    if (rc == 0) {
        fail_msg("unexpected message '%s'", m.text != NULL ? m.text : "");
    }
    assert_int_equal(rc, STATUS_NOT_FOUND);
}

/* The sender cached the recipient's device list with the first message; a
 * second device of the recipient logs in, and receives nothing (nor holds up
 * the sender) until the first device approves it; the next Send is then
 * answered CONFLICT, the library refreshes once (the list signed by a device
 * it pinned is the pin's successor) and succeeds, and both devices read it. */
static void test_msg_stale_device_list_conflict(void **state) {
    struct carechat *a, *b;
    char b_addr[64], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
    two_providers("stale", &a, &b, b_addr, b_dir, &conv);
    struct carechat_sent s1, s2;
    send_text(a, &conv, "before the new device", &s1);
    assert_int_equal(s1.device_conflicts, 0);

    char b2_dir[FIXTURE_DIR_LEN];
    fixture_fresh_profile("b2", b2_dir);
    struct carechat *b2 = fixture_open(url, b2_dir);
    FIXTURE_ASSERT_OK(b2, carechat_login(b2, b_addr, DOC_PASSWORD));
    assert_true(carechat_awaiting_approval(b2));
    struct carechat_sent s0;
    send_text(a, &conv, "while the new device awaits approval", &s0);
    assert_int_equal(s0.device_conflicts, 0);
    char code[CARECHAT_DEVICE_CODE_LEN + 1];
    FIXTURE_ASSERT_OK(b2, carechat_device_code(b2, code));
    FIXTURE_ASSERT_OK(b, carechat_approve(b, code));

    send_text(a, &conv, "after the new device", &s2);
    assert_int_equal(s2.device_conflicts, 1);
    assert_true(s2.seq > s1.seq);

    expect_text(b, "before the new device");
    expect_text(b, "while the new device awaits approval");
    expect_text(b, "after the new device");
    FIXTURE_ASSERT_OK(b, carechat_ack(b));
    /* the new device has no key for the first message, and reads the second */
    expect_text(b2, "after the new device");
    expect_nothing(b2);
    carechat_close(a);
    carechat_close(b);
    carechat_close(b2);
}

/* Three messages; the recipient takes the first and acknowledges it, takes
 * the second without acknowledging, and goes away. A new handle of the same
 * device gets exactly the second and the third; after acknowledging them,
 * nothing more. */
static void test_msg_reconnect_replays_unacknowledged(void **state) {
    struct carechat *a, *b;
    char b_addr[64], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
    two_providers("replay", &a, &b, b_addr, b_dir, &conv);
    struct carechat_sent s;
    send_text(a, &conv, "one", &s);
    send_text(a, &conv, "two", &s);
    send_text(a, &conv, "three", &s);

    expect_text(b, "one");
    FIXTURE_ASSERT_OK(b, carechat_ack(b));
    expect_text(b, "two");
    carechat_close(b);

    b = fixture_open(url, b_dir);
    expect_text(b, "two");
    expect_text(b, "three");
    expect_nothing(b);
    FIXTURE_ASSERT_OK(b, carechat_ack(b));
    carechat_close(b);

    b = fixture_open(url, b_dir);
    expect_nothing(b);
    send_text(a, &conv, "four", &s);
    expect_text(b, "four");
    expect_nothing(b);
    carechat_close(b);
    carechat_close(a);
}

/* A resend with the same client_msg_id (a lost answer) returns the first
 * result; the history holds the message once. */
static void test_msg_resend_same_client_id_stores_once(void **state) {
    struct carechat *a, *b;
    char b_addr[64], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
    two_providers("resend", &a, &b, b_addr, b_dir, &conv);
    const struct id cmid = id_new();
    const char *text = "resent once";
    struct carechat_sent s1, s2;
    FIXTURE_ASSERT_OK(a, carechat_send(a, &conv, (const uint8_t *)text, strlen(text), &cmid, &s1));
    FIXTURE_ASSERT_OK(a, carechat_send(a, &conv, (const uint8_t *)text, strlen(text), &cmid, &s2));
    assert_memory_equal(s1.message_id.b, s2.message_id.b, ID_LEN);
    assert_int_equal(s1.seq, s2.seq);
    assert_memory_equal(s2.client_msg_id.b, cmid.b, ID_LEN);

    struct carechat_messages *h = NULL;
    FIXTURE_ASSERT_OK(b, carechat_history(b, &conv, 0, 0, &h));
    assert_int_equal(h->n, 1);
    assert_int_equal(h->items[0].state, CARECHAT_MESSAGE_OK);
    assert_string_equal(h->items[0].text, text);
    assert_memory_equal(h->items[0].client_msg_id.b, cmid.b, ID_LEN);
    carechat_messages_free(h);
    /* the sender's own device reads its message in the history too */
    FIXTURE_ASSERT_OK(a, carechat_history(a, &conv, 0, 0, &h));
    assert_int_equal(h->n, 1);
    assert_string_equal(h->items[0].text, text);
    carechat_messages_free(h);
    expect_text(b, text);
    expect_nothing(b);
    carechat_close(a);
    carechat_close(b);
}

/* The recipient's read receipt reaches the sender as an event. */
static void test_msg_read_receipt_is_an_event(void **state) {
    struct carechat *a, *b;
    char b_addr[64], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
    two_providers("receipt", &a, &b, b_addr, b_dir, &conv);
    struct carechat_sent s;
    send_text(a, &conv, "please confirm", &s);
    struct carechat_message m;
    FIXTURE_ASSERT_OK(b, carechat_recv(b, 5000, &m));
    FIXTURE_ASSERT_OK(b, carechat_send_receipt(b, &conv, CARECHAT_RECEIPT_READ, &m.message_id, 1));
    carechat_message_cleanup(&m);

    struct carechat_event e;
    bool found = false;
    for (int i = 0; i < 20 && !found; i++) {
        int rc = carechat_recv(a, 250, &m);
        if (rc == 0)
            carechat_message_cleanup(&m);
        else
            assert_int_equal(rc, STATUS_NOT_FOUND);
        while (!found && carechat_next_event(a, &e) == 0)
            found = e.kind == CARECHAT_EVENT_RECEIPT;
    }
    assert_true(found);
    assert_int_equal(e.receipt, CARECHAT_RECEIPT_READ);
    assert_memory_equal(e.message_id.b, s.message_id.b, ID_LEN);
    assert_memory_equal(e.conversation_id.b, conv.b, ID_LEN);
    carechat_close(a);
    carechat_close(b);
}

/* A typing hint reaches the other member's connected device as an event and
 * is stored nowhere (it does not come again after a new Sync). */
static void test_msg_typing_is_an_event(void **state) {
    struct carechat *a, *b;
    char b_addr[64], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
    two_providers("typing", &a, &b, b_addr, b_dir, &conv);
    FIXTURE_ASSERT_OK(b, carechat_sync(b));
    FIXTURE_ASSERT_OK(a, carechat_typing(a, &conv, true));
    struct carechat_event e;
    bool found = false;
    for (int i = 0; i < 20 && !found; i++) {
        expect_nothing(b);
        while (!found && carechat_next_event(b, &e) == 0)
            found = e.kind == CARECHAT_EVENT_TYPING;
    }
    assert_true(found);
    assert_true(e.typing);
    assert_memory_equal(e.conversation_id.b, conv.b, ID_LEN);
    struct carechat_session_info info;
    FIXTURE_ASSERT_OK(a, carechat_session(a, &info));
    assert_memory_equal(e.account_id.b, info.account_id.b, ID_LEN);
    carechat_close(b);
    b = fixture_open(url, b_dir);
    expect_nothing(b);
    assert_int_equal(carechat_next_event(b, &e), STATUS_NOT_FOUND);
    carechat_close(a);
    carechat_close(b);
}

/* A message with text, an attachment and a reply: the recipient gets the
 * MessageContent as sent, and the attachment's key, digest and size open the
 * file's ciphertext (kept here: uploads are not part of this test). */
static void test_msg_content_with_attachment_and_reply(void **state) {
    struct carechat *a, *b;
    char b_addr[64], b_dir[FIXTURE_DIR_LEN];
    struct id conv;
    two_providers("content", &a, &b, b_addr, b_dir, &conv);
    struct carechat_sent first, second;
    send_text(a, &conv, "results attached next", &first);
    expect_text(b, "results attached next");

    static const char file_text[] = "ECG 2024-05-06: sinus rhythm";
    struct carechat_attachment att;
    memset(&att, 0, sizeof att);
    struct buf ct;
    buf_init(&ct);
    const struct id file_id = id_new();
    struct filecrypt_enc *enc = NULL;
    assert_int_equal(filecrypt_encrypt_open(&file_id, sizeof file_text - 1, &ct, &enc), 0);
    assert_int_equal(
        filecrypt_encrypt_update(enc, (const uint8_t *)file_text, sizeof file_text - 1, &ct), 0);
    assert_int_equal(filecrypt_encrypt_finish(enc, &ct, &att.file), 0);
    filecrypt_encrypt_free(enc);
    strcpy(att.file_name, "ecg.txt");
    strcpy(att.media_type, "text/plain");
    const struct carechat_content content = {
        .text = "see attachment",
        .text_len = 14,
        .attachments = &att,
        .n_attachments = 1,
        .reply_to = &first.message_id,
    };
    FIXTURE_ASSERT_OK(a, carechat_send_content(a, &conv, &content, NULL, false, &second));

    struct carechat_message m;
    FIXTURE_ASSERT_OK(b, carechat_recv(b, 5000, &m));
    assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
    assert_string_equal(m.text, "see attachment");
    assert_true(m.has_reply_to);
    assert_memory_equal(m.reply_to.b, first.message_id.b, ID_LEN);
    assert_int_equal(m.n_attachments, 1);
    assert_string_equal(m.attachments[0].file_name, "ecg.txt");
    assert_string_equal(m.attachments[0].media_type, "text/plain");
    struct filecrypt_dec *dec = NULL;
    assert_int_equal(filecrypt_decrypt_open(&m.attachments[0].file, &dec), 0);
    struct buf plain;
    buf_init(&plain);
    assert_int_equal(filecrypt_decrypt_update(dec, ct.data, ct.len, &plain), 0);
    assert_int_equal(filecrypt_decrypt_finish(dec), 0);
    filecrypt_decrypt_free(dec);
    assert_int_equal(plain.len, sizeof file_text - 1);
    assert_memory_equal(plain.data, file_text, plain.len);
    carechat_message_cleanup(&m);
    buf_cleanup(&plain);
    buf_cleanup(&ct);
    carechat_close(a);
    carechat_close(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_stale_device_list_conflict),
        cmocka_unit_test(test_msg_reconnect_replays_unacknowledged),
        cmocka_unit_test(test_msg_resend_same_client_id_stores_once),
        cmocka_unit_test(test_msg_read_receipt_is_an_event),
        cmocka_unit_test(test_msg_typing_is_an_event),
        cmocka_unit_test(test_msg_content_with_attachment_and_reply),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
