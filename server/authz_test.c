/*
 * server/authz_test.c: the authorization table covers every client request of
 * carechat.proto with a valid audit action, rows that check membership name a
 * conversation in their request, and the decision applies session, role and
 * relation in that order. tests/authz_test walks the table over the real
 * server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/status.h"
#include "protocol/proto.h"
#include "server/authz.h"

#define CLIENT_FIRST 10 /* carechat.proto: client requests are fields 10..99 */
#define CLIENT_LAST 99

/* The Frame field `n`, or NULL when carechat.proto has none. */
static const ProtobufCFieldDescriptor *frame_field(unsigned n) {
    return protobuf_c_message_descriptor_get_field(&carechat__v1__frame__descriptor, n);
}

static void test_authz_every_client_request_has_one_row(void **state) {
    (void)state;
    unsigned rows = 0;
    for (unsigned n = 0; n < 200; n++) {
        const struct authz_rule *r = authz_rule(n);
        bool client = n >= CLIENT_FIRST && n <= CLIENT_LAST && frame_field(n);
        if (!client) {
            assert_null(r);
            continue;
        }
        if (!r)
            fail_msg("no authorization row for %s", frame_field(n)->name);
        rows++;
        assert_true(r->action >= 1 && r->action <= REC_AUDIT_ACTION_MAX && r->action != 19);
        if (r->scope != AUTHZ_OPEN)
            assert_true(r->roles != 0 && (r->roles & ~AUTHZ_ANYONE) == 0);
    }
    assert_true(rows >= 45);
}

/* A row that needs the caller's relation must find the conversation in its
 * request, or every caller would be refused. */
static void test_authz_member_rows_name_a_conversation(void **state) {
    (void)state;
    unsigned checked = 0;
    for (unsigned n = CLIENT_FIRST; n <= CLIENT_LAST; n++) {
        const struct authz_rule *r = authz_rule(n);
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
        if (!proto_body_bytes(&frame, "conversation_id", &conv))
            fail_msg("%s checks membership but names no conversation_id", fd->name);
        free(body);
        checked++;
    }
    assert_true(checked >= 10);
}

static const struct authz_rule *row(Carechat__V1__Frame__BodyCase body) {
    const struct authz_rule *r = authz_rule((uint32_t)body);
    assert_non_null(r);
    return r;
}

static int decide(Carechat__V1__Frame__BodyCase body, bool authenticated, uint32_t role,
                  enum authz_relation rel) {
    struct authz_caller c = {.authenticated = authenticated, .role = role};
    return authz_decide(row(body), &c, rel);
}

static void test_authz_session_needed_except_open_requests(void **state) {
    (void)state;
    for (unsigned n = CLIENT_FIRST; n <= CLIENT_LAST; n++) {
        const struct authz_rule *r = authz_rule(n);
        if (!r)
            continue;
        struct authz_caller none = {.authenticated = false, .role = REC_ROLE_SYSADMIN};
        int want = r->scope == AUTHZ_OPEN ? STATUS_OK : STATUS_UNAUTHENTICATED;
        assert_int_equal(authz_decide(r, &none, AUTHZ_OWNER), want);
    }
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_LOGIN, false, 0, AUTHZ_STRANGER), 0);
    assert_int_equal(decide(CARECHAT__V1__FRAME__BODY_REGISTER, false, 0, AUTHZ_STRANGER), 0);
}

/* The role is decided before the object: FORBIDDEN whatever the relation. */
static void test_authz_role_refused_before_relation(void **state) {
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
static void test_authz_relation_refused_as_not_found(void **state) {
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authz_every_client_request_has_one_row),
        cmocka_unit_test(test_authz_member_rows_name_a_conversation),
        cmocka_unit_test(test_authz_session_needed_except_open_requests),
        cmocka_unit_test(test_authz_role_refused_before_relation),
        cmocka_unit_test(test_authz_relation_refused_as_not_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
