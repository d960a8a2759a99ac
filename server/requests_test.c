/*
 * server/requests_test.c: the request table (server/requests.c) covers every
 * client request of carechat.proto with a valid audit action, rows that check
 * membership name a conversation in their request, PROTOCOL.md prints the
 * table, and the decision (server/authz.h) applies session, role and relation
 * in that order. tests/authz_test walks the table over the real server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/status.h"
#include "protocol/proto.h"
#include "server/audit.h"
#include "server/authz.h"
#include "server/request.h"

#define CLIENT_FIRST 10 /* carechat.proto: client requests are fields 10..99 */
#define CLIENT_LAST 99

/* The Frame field `n`, or NULL when carechat.proto has none. */
static const ProtobufCFieldDescriptor *frame_field(unsigned n) {
    return protobuf_c_message_descriptor_get_field(&carechat__v1__frame__descriptor, n);
}

/* The rule of a client request's row, or NULL. */
static const struct authz_rule *rule_of(uint32_t body_case) {
    const struct request_row *row = request_row(body_case);
    return row ? &row->rule : NULL;
}

static void test_requests_every_client_request_has_one_row(void **state) {
    (void)state;
    unsigned rows = 0;
    for (unsigned n = 0; n < 200; n++) {
        const struct authz_rule *r = rule_of(n);
        bool client = n >= CLIENT_FIRST && n <= CLIENT_LAST && frame_field(n);
        if (!client) {
            assert_null(r);
            continue;
        }
        if (!r)
            fail_msg("no authorization row for %s", frame_field(n)->name);
        if (!request_row(n)->handle)
            fail_msg("no handler for %s", frame_field(n)->name);
        rows++;
        assert_true(r->action >= 1 && r->action <= REC_AUDIT_ACTION_MAX && r->action != 19);
        if (r->scope != AUTHZ_OPEN)
            assert_true(r->roles != 0 && (r->roles & ~AUTHZ_ANYONE) == 0);
    }
    assert_true(rows >= 45);
}

/* A row that needs the caller's relation must find the conversation in its
 * request, or every caller would be refused. */
static void test_requests_member_rows_name_a_conversation(void **state) {
    (void)state;
    unsigned checked = 0;
    for (unsigned n = CLIENT_FIRST; n <= CLIENT_LAST; n++) {
        const struct authz_rule *r = rule_of(n);
        if (!r || !authz_needs_relation(r))
            continue;
        const ProtobufCFieldDescriptor *fd = frame_field(n);
        const ProtobufCMessageDescriptor *md = fd->descriptor;
        ProtobufCMessage *body = calloc(1, md->sizeof_message);
        assert_non_null(body);
        protobuf_c_message_init(md, body);
        Carechat__V1__Frame frame = CARECHAT__V1__FRAME__INIT;
        frame.request_id = 1;
        frame.body_case = (Carechat__V1__Frame__BodyCase)n;
        *(ProtobufCMessage **)((char *)&frame + fd->offset) = body;
        ProtobufCBinaryData conv;
        /* A request naming a file is about the file's conversation. */
        if (!proto_body_bytes(&frame, "conversation_id", &conv) &&
            !proto_body_bytes(&frame, "file_id", &conv))
            fail_msg("%s checks membership but names no conversation_id or file_id", fd->name);
        free(body);
        checked++;
    }
    assert_true(checked >= 10);
}

static const struct authz_rule *row(Carechat__V1__Frame__BodyCase body) {
    const struct authz_rule *r = rule_of((uint32_t)body);
    assert_non_null(r);
    return r;
}

static int decide(Carechat__V1__Frame__BodyCase body, bool authenticated, uint32_t role,
                  enum authz_relation rel) {
    struct authz_caller c = {.authenticated = authenticated, .role = role};
    return authz_decide(row(body), &c, rel, AUTHZ_LIVE);
}

static int decide_at(Carechat__V1__Frame__BodyCase body, uint32_t role, enum authz_relation rel,
                     enum authz_stage stage) {
    struct authz_caller c = {.authenticated = true, .role = role};
    return authz_decide(row(body), &c, rel, stage);
}

/* A deactivated patient's conversation: read-only, for the care team and
 * admins in REVIEW, for system administrators only in RESTRICTED. */
static void test_requests_deactivated_patient_kept_read_only(void **state) {
    (void)state;
    const Carechat__V1__Frame__BodyCase read = CARECHAT__V1__FRAME__BODY_HISTORY;
    const Carechat__V1__Frame__BodyCase change = CARECHAT__V1__FRAME__BODY_SEND;
    /* REVIEW */
    assert_int_equal(decide_at(read, REC_ROLE_PROVIDER, AUTHZ_ACTIVE_MEMBER, AUTHZ_REVIEW), 0);
    assert_int_equal(decide_at(read, REC_ROLE_ADMIN, AUTHZ_STRANGER, AUTHZ_REVIEW), 0);
    assert_int_equal(decide_at(read, REC_ROLE_SYSADMIN, AUTHZ_STRANGER, AUTHZ_REVIEW), 0);
    assert_int_equal(decide_at(read, REC_ROLE_PROVIDER, AUTHZ_CARE_TEAM, AUTHZ_REVIEW), 0);
    assert_int_equal(decide_at(read, REC_ROLE_PROVIDER, AUTHZ_STRANGER, AUTHZ_REVIEW),
                     STATUS_NOT_FOUND);
    assert_int_equal(decide_at(read, REC_ROLE_PATIENT, AUTHZ_ACTIVE_MEMBER, AUTHZ_REVIEW),
                     STATUS_NOT_FOUND);
    assert_int_equal(decide_at(change, REC_ROLE_PROVIDER, AUTHZ_ACTIVE_MEMBER, AUTHZ_REVIEW),
                     STATUS_FORBIDDEN);
    assert_int_equal(decide_at(change, REC_ROLE_ADMIN, AUTHZ_STRANGER, AUTHZ_REVIEW),
                     STATUS_FORBIDDEN);
    assert_int_equal(decide_at(change, REC_ROLE_PROVIDER, AUTHZ_STRANGER, AUTHZ_REVIEW),
                     STATUS_NOT_FOUND);
    /* RESTRICTED */
    assert_int_equal(decide_at(read, REC_ROLE_PROVIDER, AUTHZ_ACTIVE_MEMBER, AUTHZ_RESTRICTED),
                     STATUS_NOT_FOUND);
    /* PURGED: unknown to everyone. */
    assert_int_equal(decide_at(read, REC_ROLE_SYSADMIN, AUTHZ_ACTIVE_MEMBER, AUTHZ_PURGED),
                     STATUS_NOT_FOUND);
    assert_int_equal(decide_at(read, REC_ROLE_ADMIN, AUTHZ_STRANGER, AUTHZ_RESTRICTED),
                     STATUS_NOT_FOUND);
    assert_int_equal(decide_at(read, REC_ROLE_SYSADMIN, AUTHZ_STRANGER, AUTHZ_RESTRICTED), 0);
    assert_int_equal(decide_at(change, REC_ROLE_SYSADMIN, AUTHZ_STRANGER, AUTHZ_RESTRICTED),
                     STATUS_FORBIDDEN);
    /* The role still comes first. */
    assert_int_equal(decide_at(CARECHAT__V1__FRAME__BODY_QUERY_AUDIT, REC_ROLE_PROVIDER,
                               AUTHZ_ACTIVE_MEMBER, AUTHZ_REVIEW),
                     STATUS_FORBIDDEN);
}

static void test_requests_session_needed_except_open_requests(void **state) {
    (void)state;
    for (unsigned n = CLIENT_FIRST; n <= CLIENT_LAST; n++) {
        const struct authz_rule *r = rule_of(n);
        if (!r)
            continue;
        struct authz_caller none = {.authenticated = false, .role = REC_ROLE_SYSADMIN};
        int want = r->scope == AUTHZ_OPEN ? STATUS_OK : STATUS_UNAUTHENTICATED;
        assert_int_equal(authz_decide(r, &none, AUTHZ_OWNER, AUTHZ_LIVE), want);
    }
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_LOGIN, false, 0, AUTHZ_STRANGER), 0);
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_REGISTER, false, 0, AUTHZ_STRANGER), 0);
}

/* The role is decided before the object: FORBIDDEN whatever the relation. */
static void test_requests_role_refused_before_relation(void **state) {
    (void)state;
    const enum authz_relation rels[] = {AUTHZ_STRANGER, AUTHZ_ACTIVE_MEMBER, AUTHZ_OWNER};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(
            decide(CARECHAT__V1__FRAME__BODY_QUERY_AUDIT, true, REC_ROLE_PATIENT, rels[i]),
            STATUS_FORBIDDEN);
        assert_int_equal(
            decide(CARECHAT__V1__FRAME__BODY_ADD_MEMBER, true, REC_ROLE_PATIENT, rels[i]),
            STATUS_FORBIDDEN);
        assert_int_equal(
            decide(CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER, true, REC_ROLE_PROVIDER, rels[i]),
            STATUS_FORBIDDEN);
        assert_int_equal(
            decide(CARECHAT__V1__FRAME__BODY_CREATE_CHANNEL, true, REC_ROLE_SYSADMIN, rels[i]),
            STATUS_FORBIDDEN);
    }
    /* An invalid role is refused everywhere a session is needed. */
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_SYNC, true, 0, AUTHZ_OWNER),
                     STATUS_FORBIDDEN);
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_SYNC, true, 77, AUTHZ_OWNER),
                     STATUS_FORBIDDEN);
}

/* Not a member reads as an unknown conversation; only ADMIN passes the
 * member-or-admin rows without membership; only the channel's patient
 * approves. */
static void test_requests_relation_refused_as_not_found(void **state) {
    (void)state;
    assert_int_equal(
        decide(CARECHAT__V1__FRAME__BODY_HISTORY, true, REC_ROLE_ADMIN, AUTHZ_STRANGER),
        STATUS_NOT_FOUND);
    assert_int_equal(
        decide(CARECHAT__V1__FRAME__BODY_HISTORY, true, REC_ROLE_PATIENT, AUTHZ_ACTIVE_MEMBER),
        STATUS_OK);
    assert_int_equal(
        decide(CARECHAT__V1__FRAME__BODY_LIST_MEMBERS, true, REC_ROLE_ADMIN, AUTHZ_STRANGER),
        STATUS_OK);
    assert_int_equal(
        decide(CARECHAT__V1__FRAME__BODY_LIST_MEMBERS, true, REC_ROLE_SYSADMIN, AUTHZ_STRANGER),
        STATUS_NOT_FOUND);
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_RECALL, true, REC_ROLE_ADMIN, AUTHZ_STRANGER),
                     STATUS_OK);
    assert_int_equal(
        decide(CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER, true, REC_ROLE_PATIENT, AUTHZ_OWNER),
        STATUS_OK);
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER, true, REC_ROLE_PATIENT,
                            AUTHZ_ACTIVE_MEMBER),
                     STATUS_NOT_FOUND);
    assert_int_equal(
        decide(CARECHAT__V1__FRAME__BODY_SEND, true, REC_ROLE_SYSADMIN, AUTHZ_STRANGER),
        STATUS_NOT_FOUND);
    /* Rows without a relation ignore it. */
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS, true, REC_ROLE_PATIENT,
                            AUTHZ_STRANGER),
                     STATUS_OK);
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_DEACTIVATE_ACCOUNT, true, REC_ROLE_PROVIDER,
                            AUTHZ_STRANGER),
                     STATUS_OK);
}

/* The key backup serves the caller's own account only: another one is
 * FORBIDDEN whatever the role, admins and sysadmins included. */
static void test_requests_key_backup_own_account_only(void **state) {
    (void)state;
    const Carechat__V1__Frame__BodyCase rows[] = {
        CARECHAT__V1__FRAME__BODY_PUT_KEY_BACKUP_SEGMENT,
        CARECHAT__V1__FRAME__BODY_LIST_KEY_BACKUP,
        CARECHAT__V1__FRAME__BODY_GET_KEY_BACKUP_SEGMENT,
        CARECHAT__V1__FRAME__BODY_DELETE_KEY_BACKUP,
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        for (uint32_t role = REC_ROLE_PATIENT; role <= REC_ROLE_SYSADMIN; role++) {
            assert_int_equal(decide(rows[i], true, role, AUTHZ_OWNER), STATUS_OK);
            assert_int_equal(decide(rows[i], true, role, AUTHZ_STRANGER), STATUS_FORBIDDEN);
        }
        assert_int_equal(decide(rows[i], false, REC_ROLE_PATIENT, AUTHZ_OWNER),
                         STATUS_UNAUTHENTICATED);
    }
}

/* ---- PROTOCOL.md prints the same table ------------------------------------------- */

static uint32_t roles_of(const char *text) {
    if (strcmp(text, "anyone") == 0 || strncmp(text, "anyone ", 7) == 0)
        return AUTHZ_ANYONE;
    uint32_t bits = 0;
    if (strstr(text, "patient"))
        bits |= AUTHZ_PATIENT;
    if (strstr(text, "provider"))
        bits |= AUTHZ_PROVIDER;
    if (strstr(text, "sysadmin"))
        bits |= AUTHZ_SYSADMIN;
    /* "admin" alone, not the one inside "sysadmin". */
    for (const char *p = strstr(text, "admin"); p; p = strstr(p + 1, "admin"))
        if (p == text || p[-1] != 's')
            bits |= AUTHZ_ADMIN;
    return bits;
}

static enum authz_scope scope_of(const char *text) {
    if (strcmp(text, "—") == 0)
        return AUTHZ_OPEN;
    if (strcmp(text, "session") == 0)
        return AUTHZ_SESSION;
    if (strcmp(text, "member") == 0)
        return AUTHZ_MEMBER;
    if (strcmp(text, "member or admin") == 0)
        return AUTHZ_MEMBER_OR_ADMIN;
    if (strcmp(text, "channel patient") == 0)
        return AUTHZ_CHANNEL_PATIENT;
    if (strcmp(text, "own account") == 0)
        return AUTHZ_OWN_ACCOUNT;
    return 0;
}

/* Splits a table line "| a | b | ... |" into at most `max` trimmed cells
 * (modifies `line`). Returns the count. */
static size_t cells(char *line, char **out, size_t max) {
    size_t n = 0;
    char *p = strchr(line, '|');
    while (p && n < max) {
        char *end = strchr(p + 1, '|');
        if (!end)
            break;
        *end = '\0';
        char *c = p + 1;
        while (*c == ' ' || *c == '`')
            c++;
        char *e = c + strlen(c);
        while (e > c && (e[-1] == ' ' || e[-1] == '`'))
            *--e = '\0';
        out[n++] = c;
        p = end;
    }
    return n;
}

static void test_requests_protocol_md_prints_the_table(void **state) {
    (void)state;
    FILE *f = fopen("protocol/PROTOCOL.md", "r");
    assert_non_null(f);
    char line[512];
    unsigned rows = 0, in_code = 0;
    bool in_table = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| request (Frame field) | roles | needs |", 41) == 0) {
            in_table = true;
            continue;
        }
        if (!in_table || strncmp(line, "|---", 4) == 0)
            continue;
        if (line[0] != '|')
            break;
        char *c[7];
        assert_int_equal(cells(line, c, 7), 7);
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(&carechat__v1__frame__descriptor, c[0]);
        if (!fd)
            fail_msg("PROTOCOL.md names %s, which Frame does not have", c[0]);
        const struct authz_rule *r = rule_of(fd->id);
        if (!r)
            fail_msg("PROTOCOL.md lists %s, which has no row in server/requests.c", c[0]);
        if (scope_of(c[2]) != r->scope)
            fail_msg("%s: PROTOCOL.md says needs \"%s\"", c[0], c[2]);
        if (r->scope != AUTHZ_OPEN && roles_of(c[1]) != r->roles)
            fail_msg("%s: PROTOCOL.md says roles \"%s\"", c[0], c[1]);
        if (r->read != (strcmp(c[5], "yes") == 0))
            fail_msg("%s: PROTOCOL.md says read \"%s\"", c[0], c[5]);
        if (strcmp(audit_action_name(r->action), c[4]) != 0)
            fail_msg("%s: PROTOCOL.md says audit action %s, the code %s", c[0], c[4],
                     audit_action_name(r->action));
        rows++;
    }
    fclose(f);
    for (unsigned n = CLIENT_FIRST; n <= CLIENT_LAST; n++)
        if (rule_of(n))
            in_code++;
    assert_int_equal(rows, in_code);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_every_client_request_has_one_row),
        cmocka_unit_test(test_requests_member_rows_name_a_conversation),
        cmocka_unit_test(test_requests_session_needed_except_open_requests),
        cmocka_unit_test(test_requests_deactivated_patient_kept_read_only),
        cmocka_unit_test(test_requests_role_refused_before_relation),
        cmocka_unit_test(test_requests_relation_refused_as_not_found),
        cmocka_unit_test(test_requests_key_backup_own_account_only),
        cmocka_unit_test(test_requests_protocol_md_prints_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
