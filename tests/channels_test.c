/*
 * tests/channels_test.c: care-team channels, recall and urgent messages
 * through libcarechat (client/carechat.h) against the real carechatd: a
 * channel message reaches every device of every active member and nobody
 * else; a pending family member receives nothing until the patient approves
 * and then sees history only from joining; a patient cannot remove staff;
 * a removed member receives nothing new and the channel is NOT_FOUND for
 * them; sharing a care team makes patient and provider contacts; a recall
 * sends a tombstone to every device and leaves no envelope in the store
 * (read with the server stopped); the urgent report names who has and has
 * not acknowledged; membership changes reach the members' devices (and the
 * departing member's) as MembershipEvents. The channel's name never reaches
 * the log.
 *
 * One server (bootstrapped like cli_messaging_lib_test.c); every wait has a
 * deadline; everything is on 127.0.0.1.
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
#include "server/records_messages.h"
#include "storage/store.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define PASSWORD "member-secret-passphrase"
#define WAIT_MS 700
#define MAX_TEXTS 16

static struct harness *server;
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

/* A handle on a fresh profile directory, whose path goes to profile_out
 * (may be NULL). */
static struct carechat *open_fresh(const char *name, char *profile_out) {
    char profile[FIXTURE_DIR_LEN];
    fixture_fresh_profile(name, profile);
    if (profile_out != NULL)
        memcpy(profile_out, profile, sizeof profile);
    return fixture_open(url, profile);
}

struct person {
    char email[64];
    struct id id;
    struct carechat *dev[2]; /* one handle per device */
    char profile[2][FIXTURE_DIR_LEN];
};

/* `inviter` (NULL: the sysadmin) invites `p` as `role`; p registers a first
 * device and, with `two_devices`, logs in a second one. */
static void make_person(struct person *p, const char *who, enum carechat_role role,
                        struct carechat *inviter, bool two_devices) {
    if (root == NULL) {
        root = open_fresh("root", NULL);
        FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    }
    if (inviter == NULL)
        inviter = root;
    memset(p, 0, sizeof *p);
    fixture_email(who, p->email);
    char code[CARECHAT_MAX_CODE + 1];
    int64_t expires_at = 0;
    FIXTURE_ASSERT_OK(inviter, carechat_invite(inviter, p->email, role, code, &expires_at));
    p->dev[0] = open_fresh(who, p->profile[0]);
    FIXTURE_ASSERT_OK(p->dev[0],
                      carechat_register(p->dev[0], code, p->email, PASSWORD, "1970-02-03", who));
    struct carechat_account acc;
    FIXTURE_ASSERT_OK(root, carechat_lookup(root, p->email, &acc));
    p->id = acc.account_id;
    if (two_devices) {
        p->dev[1] = open_fresh(who, p->profile[1]);
        FIXTURE_ASSERT_OK(p->dev[1], carechat_login(p->dev[1], p->email, PASSWORD));
        /* The second device is listed once the first approves its code. */
        char device_code[CARECHAT_DEVICE_CODE_LEN + 1];
        FIXTURE_ASSERT_OK(p->dev[1], carechat_device_code(p->dev[1], device_code));
        FIXTURE_ASSERT_OK(p->dev[0], carechat_approve(p->dev[0], device_code));
    }
}

static void drop_person(struct person *p) {
    carechat_close(p->dev[0]);
    carechat_close(p->dev[1]);
}

/* Everything that arrived for the device: the texts of readable messages
 * (acknowledged), the recalled-message and urgent-ack events counted, the
 * membership events kept. */
struct inbox {
    size_t n;
    char texts[MAX_TEXTS][64];
    struct id ids[MAX_TEXTS];
    bool urgent[MAX_TEXTS];
    int recalls, urgent_acks;
    int recalled; /* messages that arrived as tombstones (no body) */
    size_t n_membership;
    struct carechat_event membership[CARECHAT_MAX_EVENTS];
};

static void drain(struct carechat *c, struct inbox *in) {
    memset(in, 0, sizeof *in);
    for (int guard = 0; guard < 100; guard++) {
        struct carechat_message m;
        int rc = carechat_recv(c, WAIT_MS, &m);
        if (rc == STATUS_NOT_FOUND)
            break;
        if (rc != 0)
            fail_msg("recv: %s", carechat_error(c));
        if (m.state == CARECHAT_MESSAGE_RECALLED) {
            assert_null(m.text);
            in->recalled++;
            carechat_message_cleanup(&m);
            continue;
        }
        assert_int_equal(m.state, CARECHAT_MESSAGE_OK);
        assert_true(in->n < MAX_TEXTS);
        snprintf(in->texts[in->n], sizeof in->texts[0], "%s", m.text);
        in->ids[in->n] = m.message_id;
        in->urgent[in->n] = m.urgent;
        in->n++;
        carechat_message_cleanup(&m);
    }
    FIXTURE_ASSERT_OK(c, carechat_ack(c));
    struct carechat_event e;
    while (carechat_next_event(c, &e) == 0) {
        if (e.kind == CARECHAT_EVENT_RECALL)
            in->recalls++;
        else if (e.kind == CARECHAT_EVENT_URGENT_ACK)
            in->urgent_acks++;
        else if (e.kind == CARECHAT_EVENT_MEMBERSHIP && in->n_membership < CARECHAT_MAX_EVENTS)
            in->membership[in->n_membership++] = e;
    }
}

static bool has_text(const struct inbox *in, const char *text) {
    for (size_t i = 0; i < in->n; i++)
        if (strcmp(in->texts[i], text) == 0)
            return true;
    return false;
}

static struct carechat_sent send_text(struct carechat *c, const struct id *conv, const char *text,
                                      bool urgent) {
    struct carechat_sent sent;
    int rc = urgent
                 ? carechat_send_urgent(c, conv, (const uint8_t *)text, strlen(text), NULL, &sent)
                 : carechat_send(c, conv, (const uint8_t *)text, strlen(text), NULL, &sent);
    if (rc != 0)
        fail_msg("send '%s': %s", text, carechat_error(c));
    return sent;
}

static int member_state(struct carechat *c, const struct id *conv, const struct id *who) {
    struct carechat_members *list = NULL;
    FIXTURE_ASSERT_OK(c, carechat_members(c, conv, &list));
    int state = 0;
    for (size_t i = 0; i < list->n; i++)
        if (memcmp(list->items[i].account_id.b, who->b, ID_LEN) == 0)
            state = list->items[i].state;
    carechat_members_free(list);
    return state;
}

static void test_channels_end_to_end(void **state) {
    struct person doc, nurse, pat, fam;
    make_person(&doc, "doc", CARECHAT_ROLE_PROVIDER, NULL, true);
    make_person(&nurse, "nurse", CARECHAT_ROLE_PROVIDER, NULL, false);
    make_person(&pat, "pat", CARECHAT_ROLE_PATIENT, doc.dev[0], true);
    make_person(&fam, "fam", CARECHAT_ROLE_PATIENT, doc.dev[0], false);
    struct inbox in;
    /* Start every device's delivery with an empty inbox. */
    struct carechat *devices[] = {doc.dev[1], nurse.dev[0], pat.dev[0], pat.dev[1], fam.dev[0]};
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
        drain(devices[i], &in);

    /* A patient creates no channel; a provider does, named with a canary. */
    char name[64];
    struct id r = id_new();
    snprintf(name, sizeof name, "Cardio-canary-%02x%02x%02x%02x", r.b[0], r.b[1], r.b[2], r.b[3]);
    struct carechat_conversation cv;
    assert_int_equal(carechat_channel_create(pat.dev[0], doc.email, name, &cv), STATUS_FORBIDDEN);
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_create(doc.dev[0], pat.email, name, &cv));
    assert_int_equal(cv.kind, CARECHAT_CONVERSATION_CARE_TEAM);
    assert_string_equal(cv.name, name);
    assert_int_equal(cv.n_members, 2);
    const struct id ch = cv.conversation_id;
    carechat_conversation_cleanup(&cv);

    /* The nurse and the patient are no contacts until they share the team. */
    assert_int_equal(carechat_open_direct_id(pat.dev[0], &nurse.id, &cv), STATUS_NOT_FOUND);
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_add(doc.dev[0], &ch, &nurse.id));
    FIXTURE_ASSERT_OK(pat.dev[0], carechat_open_direct_id(pat.dev[0], &nurse.id, &cv));
    carechat_conversation_cleanup(&cv);
    /* The family member (role patient) is pending; a patient adds nobody. */
    assert_int_equal(carechat_channel_add(pat.dev[0], &ch, &fam.id), STATUS_FORBIDDEN);
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_add(doc.dev[0], &ch, &fam.id));
    assert_int_equal(member_state(doc.dev[0], &ch, &fam.id), 2);
    assert_int_equal(member_state(doc.dev[0], &ch, &nurse.id), 1);

    /* Fan-out: every device of every active member; the pending one nothing. */
    send_text(doc.dev[0], &ch, "team message one", false);
    struct carechat *receivers[] = {doc.dev[1], nurse.dev[0], pat.dev[0], pat.dev[1]};
    for (size_t i = 0; i < 4; i++) {
        drain(receivers[i], &in);
        assert_int_equal(in.n, 1);
        assert_string_equal(in.texts[0], "team message one");
    }
    drain(fam.dev[0], &in);
    assert_int_equal(in.n, 0);
    struct carechat_messages *hist = NULL;
    assert_int_equal(carechat_history(fam.dev[0], &ch, 0, 0, &hist), STATUS_NOT_FOUND);

    /* Only the channel's patient approves; then history starts at joining. */
    assert_int_equal(carechat_channel_approve(nurse.dev[0], &ch, &fam.id), STATUS_FORBIDDEN);
    FIXTURE_ASSERT_OK(pat.dev[0], carechat_channel_approve(pat.dev[0], &ch, &fam.id));
    assert_int_equal(member_state(doc.dev[0], &ch, &fam.id), 1);
    struct carechat_sent s2 = send_text(doc.dev[0], &ch, "team message two", false);
    /* The doctor's handle had the old member set: one refresh. */
    assert_int_equal(s2.device_conflicts, 1);
    drain(fam.dev[0], &in);
    assert_int_equal(in.n, 1);
    assert_string_equal(in.texts[0], "team message two");
    FIXTURE_ASSERT_OK(fam.dev[0], carechat_history(fam.dev[0], &ch, 0, 0, &hist));
    assert_int_equal(hist->n, 1);
    assert_int_equal(hist->items[0].seq, s2.seq);
    carechat_messages_free(hist);

    /* A patient cannot remove staff; a provider removes the nurse. */
    assert_int_equal(carechat_channel_remove(pat.dev[0], &ch, &nurse.id), STATUS_FORBIDDEN);
    assert_int_equal(carechat_channel_remove(doc.dev[0], &ch, &pat.id), STATUS_FORBIDDEN);
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_remove(doc.dev[0], &ch, &nurse.id));
    drain(nurse.dev[0], &in); /* message two, before the removal */
    assert_true(has_text(&in, "team message two"));
    send_text(pat.dev[0], &ch, "after the removal", false);
    drain(nurse.dev[0], &in);
    assert_int_equal(in.n, 0);
    assert_int_equal(carechat_history(nurse.dev[0], &ch, 0, 0, &hist), STATUS_NOT_FOUND);
    assert_int_equal(carechat_send(nurse.dev[0], &ch, (const uint8_t *)"x", 1, NULL, NULL),
                     STATUS_NOT_FOUND);
    drain(doc.dev[0], &in);
    assert_true(has_text(&in, "after the removal"));

    /* Recall: not by another member; by the sender: a tombstone for every
     * device. The patient's second device is offline meanwhile. */
    struct carechat *members_now[] = {doc.dev[0], doc.dev[1], pat.dev[0], pat.dev[1], fam.dev[0]};
    for (size_t i = 0; i < 5; i++)
        drain(members_now[i], &in);
    carechat_close(pat.dev[1]);
    struct carechat_sent rec = send_text(doc.dev[0], &ch, "recall me please", false);
    assert_int_equal(carechat_recall(pat.dev[0], &ch, &rec.message_id), STATUS_FORBIDDEN);
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_recall(doc.dev[0], &ch, &rec.message_id));
    assert_int_equal(carechat_recall(doc.dev[0], &ch, &rec.message_id), STATUS_CONFLICT);
    pat.dev[1] = members_now[3] = fixture_open(url, pat.profile[1]);
    for (size_t i = 0; i < 5; i++) {
        drain(members_now[i], &in);
        assert_int_equal(in.recalls, 1);
        if (i == 3) {
            /* The offline device never gets the text: its inbox entry now
             * names a tombstone. */
            assert_false(has_text(&in, "recall me please"));
            assert_int_equal(in.recalled, 1);
        }
    }
    FIXTURE_ASSERT_OK(pat.dev[1], carechat_history(pat.dev[1], &ch, 0, 0, &hist));
    bool saw_tombstone = false;
    for (size_t i = 0; i < hist->n; i++)
        if (hist->items[i].seq == rec.seq) {
            assert_int_equal(hist->items[i].state, CARECHAT_MESSAGE_RECALLED);
            assert_null(hist->items[i].text);
            saw_tombstone = true;
        }
    assert_true(saw_tombstone);
    carechat_messages_free(hist);

    /* Urgent: who has and has not acknowledged, for the sender only. */
    struct carechat_sent urg = send_text(doc.dev[0], &ch, "urgent: call the ward", true);
    drain(pat.dev[0], &in);
    assert_int_equal(in.n, 1);
    assert_true(in.urgent[0]);
    FIXTURE_ASSERT_OK(pat.dev[0], carechat_ack_urgent(pat.dev[0], &ch, &urg.message_id));
    FIXTURE_ASSERT_OK(pat.dev[0], carechat_ack_urgent(pat.dev[0], &ch, &urg.message_id));
    struct carechat_urgent_report *rep = NULL;
    assert_int_equal(carechat_urgent_status(fam.dev[0], &ch, &urg.message_id, &rep),
                     STATUS_FORBIDDEN);
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_urgent_status(doc.dev[0], &ch, &urg.message_id, &rep));
    assert_int_equal(rep->n, 2); /* the patient and the family member */
    int acked = 0, pending = 0;
    for (size_t i = 0; i < rep->n; i++) {
        if (memcmp(rep->items[i].account_id.b, pat.id.b, ID_LEN) == 0) {
            assert_true(rep->items[i].acknowledged);
            assert_true(rep->items[i].acknowledged_at > 0);
            acked++;
        } else if (memcmp(rep->items[i].account_id.b, fam.id.b, ID_LEN) == 0) {
            assert_false(rep->items[i].acknowledged);
            pending++;
        }
    }
    assert_int_equal(acked, 1);
    assert_int_equal(pending, 1);
    carechat_urgent_report_free(rep);
    drain(doc.dev[1], &in);
    assert_int_equal(in.urgent_acks, 1); /* once, though acknowledged twice */
    assert_int_equal(carechat_ack_urgent(doc.dev[0], &ch, &rec.message_id), STATUS_CONFLICT);

    /* The channel's name is personal data: never in the log. */
    assert_false(harness_log_contains(server, name));

    /* With the server stopped: the recalled message's record holds no envelope;
     * the others keep theirs. */
    int status = -1;
    assert_int_equal(harness_stop(server, &status), 0);
    assert_int_equal(status, 0);
    struct store *s = NULL;
    struct store_config sc = {.data_dir = server->data_dir};
    assert_int_equal(store_open(&sc, &s), 0);
    int found = 0;
    for (uint64_t seq = 1; seq <= urg.seq; seq++) {
        struct key k;
        key_id_u64(&k, &ch, seq);
        struct buf v;
        buf_init(&v);
        assert_int_equal(store_get(s, CF_MESSAGES, k.b, k.len, &v), 0);
        struct rec_message m;
        assert_int_equal(rec_message_decode(v.data, v.len, &m), 0);
        if (seq == rec.seq) {
            assert_true(m.recalled_at > 0);
            assert_int_equal(m.body.len, 0);
            assert_int_equal(m.header.len, 0);
            assert_int_equal(m.signature.len, 0);
            assert_int_equal(m.n_wraps, 0);
            found++;
        } else {
            assert_int_equal(m.recalled_at, 0);
            assert_true(m.body.len > 0);
            assert_true(m.n_wraps > 0);
        }
        buf_cleanup(&v);
    }
    assert_int_equal(found, 1);
    store_close(s);
    assert_int_equal(harness_restart(server), 0);

    drop_person(&doc);
    drop_person(&nurse);
    drop_person(&pat);
    drop_person(&fam);
}

/* Asserts that the only membership event `in` holds says that `who`'s
 * membership of `conv` became `change` by `by`. */
static void expect_membership(const struct inbox *in, const struct id *conv, const struct id *who,
                              const struct id *by, enum carechat_membership_change change) {
    assert_int_equal(in->n_membership, 1);
    const struct carechat_event *e = &in->membership[0];
    assert_memory_equal(e->conversation_id.b, conv->b, ID_LEN);
    assert_memory_equal(e->account_id.b, who->b, ID_LEN);
    assert_memory_equal(e->by_account_id.b, by->b, ID_LEN);
    assert_int_equal(e->membership, change);
    assert_true(e->at > 0);
}

/* Drains every device of `devs` and asserts each got exactly the membership
 * event (who, by, change) of `conv`. */
static void expect_all(struct carechat *const *devs, size_t n, const struct id *conv,
                       const struct id *who, const struct id *by,
                       enum carechat_membership_change change) {
    for (size_t i = 0; i < n; i++) {
        struct inbox in;
        drain(devs[i], &in);
        expect_membership(&in, conv, who, by, change);
    }
}

/* Membership changes reach the members' devices as MembershipEvents: every
 * device of every active member after the change, the departing member's
 * devices too, a pending member's nothing; a removed member's device gets
 * its REMOVED and nothing after; a handle that got the event sends without a
 * device-set conflict. */
static void test_channels_membership_events(void **state) {
    struct person doc, nurse, pat, fam;
    make_person(&doc, "mdoc", CARECHAT_ROLE_PROVIDER, NULL, false);
    make_person(&nurse, "mnurse", CARECHAT_ROLE_PROVIDER, NULL, false);
    make_person(&pat, "mpat", CARECHAT_ROLE_PATIENT, doc.dev[0], true);
    make_person(&fam, "mfam", CARECHAT_ROLE_PATIENT, doc.dev[0], false);
    struct inbox in;
    struct carechat *all[] = {doc.dev[0], pat.dev[0], pat.dev[1], nurse.dev[0], fam.dev[0]};
    for (size_t i = 0; i < 5; i++)
        drain(all[i], &in);
    struct carechat_conversation cv;
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_create(doc.dev[0], pat.email, "Members", &cv));
    const struct id ch = cv.conversation_id;
    carechat_conversation_cleanup(&cv);

    /* Staff added: JOINED for the active members, the new one included. */
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_add(doc.dev[0], &ch, &nurse.id));
    expect_all(all, 4, &ch, &nurse.id, &doc.id, CARECHAT_MEMBERSHIP_JOINED);
    drain(fam.dev[0], &in);
    assert_int_equal(in.n_membership, 0);

    /* A family member added: PENDING for the active members; the pending
     * member's device hears nothing. */
    FIXTURE_ASSERT_OK(nurse.dev[0], carechat_channel_add(nurse.dev[0], &ch, &fam.id));
    expect_all(all, 4, &ch, &fam.id, &nurse.id, CARECHAT_MEMBERSHIP_PENDING);
    drain(fam.dev[0], &in);
    assert_int_equal(in.n_membership, 0);
    /* The doctor's handle now caches the members (the family member pending). */
    assert_int_equal(send_text(doc.dev[0], &ch, "before approval", false).device_conflicts, 0);
    for (size_t i = 1; i < 4; i++)
        drain(all[i], &in);

    /* Approved by the patient: JOINED for everyone, the family member too. */
    FIXTURE_ASSERT_OK(pat.dev[0], carechat_channel_approve(pat.dev[0], &ch, &fam.id));
    expect_all(all, 5, &ch, &fam.id, &pat.id, CARECHAT_MEMBERSHIP_JOINED);
    /* Having had the event, the doctor's handle fetched the members again:
     * no device-set conflict on the next send. */
    assert_int_equal(send_text(doc.dev[0], &ch, "after approval", false).device_conflicts, 0);
    for (size_t i = 1; i < 5; i++) {
        drain(all[i], &in);
        assert_true(has_text(&in, "after approval"));
    }

    /* Removed: REMOVED for the active members and the removed nurse. */
    FIXTURE_ASSERT_OK(doc.dev[0], carechat_channel_remove(doc.dev[0], &ch, &nurse.id));
    expect_all(all, 5, &ch, &nurse.id, &doc.id, CARECHAT_MEMBERSHIP_REMOVED);

    /* Leaving: LEFT, by the member itself, for the active members and the
     * leaver's device; the removed nurse gets nothing of it, nor of a later
     * message. */
    FIXTURE_ASSERT_OK(fam.dev[0], carechat_channel_leave(fam.dev[0], &ch));
    struct carechat *now[] = {doc.dev[0], pat.dev[0], pat.dev[1], fam.dev[0]};
    expect_all(now, 4, &ch, &fam.id, &fam.id, CARECHAT_MEMBERSHIP_LEFT);
    send_text(pat.dev[0], &ch, "after the nurse left", false);
    drain(nurse.dev[0], &in);
    assert_int_equal(in.n_membership, 0);
    assert_int_equal(in.n, 0);
    drain(doc.dev[0], &in);
    assert_true(has_text(&in, "after the nurse left"));

    drop_person(&doc);
    drop_person(&nurse);
    drop_person(&pat);
    drop_person(&fam);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels_membership_events),
        cmocka_unit_test(test_channels_end_to_end),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
