/*
 * client/channels.c: libcarechat's care-team channels, recall and urgent
 * messages (carechat.h): CreateChannel, AddMember, RemoveMember,
 * ApproveMember, LeaveConversation, ListMembers, Recall, AckUrgent and
 * GetUrgentStatus requests, and their results copied out of the frames.
 *
 * A channel's name is personal data: it is never logged. Thread: the
 * caller's (one handle per thread, like the rest of libcarechat).
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"
#include "client/carechat.h"
#include "client/core.h"
#include "client/messaging.h"

#define CHANNEL_NAME_MAX 128
#define MEMBERS_MAX 256

static bool get_id(ProtobufCBinaryData b, struct id *out) {
    return id_from_bytes(b.data, b.len, out) == 0;
}

static ProtobufCBinaryData bin(const struct id *id) {
    return (ProtobufCBinaryData){ID_LEN, (uint8_t *)id->b};
}

int carechat_channel_create(struct carechat *c, const char *patient_email, const char *name,
                            struct carechat_conversation *out) {
    cc_clear_error(c);
    if (patient_email == NULL || name == NULL || out == NULL || name[0] == '\0' ||
        strlen(name) > CHANNEL_NAME_MAX)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "channel create: a patient and a name of 1..%d bytes are required",
                       CHANNEL_NAME_MAX);
    struct carechat_account patient;
    int rc = carechat_lookup(c, patient_email, &patient);
    if (rc != 0)
        return rc;
    Carechat__V1__CreateChannel cc;
    carechat__v1__create_channel__init(&cc);
    cc.patient_account_id = bin(&patient.account_id);
    cc.name = (char *)name;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_CREATE_CHANNEL;
    req.create_channel = &cc;
    return cc_msg_conversation_call(c, &req, "creating the channel", "no such patient", out);
}

static int member_call(struct carechat *c, const struct id *channel, const struct id *account,
                       Carechat__V1__Frame__BodyCase kind, const char *what) {
    cc_clear_error(c);
    if (channel == NULL ||
        (account == NULL && kind != CARECHAT__V1__FRAME__BODY_LEAVE_CONVERSATION))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: a channel and an account are required", what);
    Carechat__V1__AddMember add;
    Carechat__V1__RemoveMember rem;
    Carechat__V1__ApproveMember app;
    Carechat__V1__LeaveConversation lv;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = kind;
    switch (kind) {
    case CARECHAT__V1__FRAME__BODY_ADD_MEMBER:
        carechat__v1__add_member__init(&add);
        add.conversation_id = bin(channel);
        add.account_id = bin(account);
        req.add_member = &add;
        break;
    case CARECHAT__V1__FRAME__BODY_REMOVE_MEMBER:
        carechat__v1__remove_member__init(&rem);
        rem.conversation_id = bin(channel);
        rem.account_id = bin(account);
        req.remove_member = &rem;
        break;
    case CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER:
        carechat__v1__approve_member__init(&app);
        app.conversation_id = bin(channel);
        app.account_id = bin(account);
        req.approve_member = &app;
        break;
    default:
        carechat__v1__leave_conversation__init(&lv);
        lv.conversation_id = bin(channel);
        req.leave_conversation = &lv;
        break;
    }
    return cc_msg_simple_call(c, &req, what);
}

int carechat_channel_add(struct carechat *c, const struct id *channel,
                         const struct id *account_id) {
    return member_call(c, channel, account_id, CARECHAT__V1__FRAME__BODY_ADD_MEMBER,
                       "adding the member");
}

int carechat_channel_remove(struct carechat *c, const struct id *channel,
                            const struct id *account_id) {
    return member_call(c, channel, account_id, CARECHAT__V1__FRAME__BODY_REMOVE_MEMBER,
                       "removing the member");
}

int carechat_channel_approve(struct carechat *c, const struct id *channel,
                             const struct id *account_id) {
    return member_call(c, channel, account_id, CARECHAT__V1__FRAME__BODY_APPROVE_MEMBER,
                       "approving the member");
}

int carechat_channel_leave(struct carechat *c, const struct id *channel) {
    return member_call(c, channel, NULL, CARECHAT__V1__FRAME__BODY_LEAVE_CONVERSATION,
                       "leaving the channel");
}

void carechat_members_free(struct carechat_members *m) {
    if (m == NULL)
        return;
    free(m->items);
    free(m);
}

int carechat_members(struct carechat *c, const struct id *conversation,
                     struct carechat_members **out) {
    cc_clear_error(c);
    const char *what = "listing the members";
    if (conversation == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "members: a conversation is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__ListMembers lm;
    carechat__v1__list_members__init(&lm);
    lm.conversation_id = bin(conversation);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LIST_MEMBERS;
    req.list_members = &lm;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__OK, "no such conversation, or you are not a member"},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_MEMBER_LIST, what, hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__MemberList *ml = resp->response->member_list;
    if (ml == NULL || ml->n_members > MEMBERS_MAX)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: malformed answer from the server", what);
    struct carechat_members *list = NULL;
    if (rc == 0) {
        list = xcalloc(1, sizeof *list);
        list->items = xcalloc(ml->n_members + 1, sizeof *list->items);
        for (size_t i = 0; i < ml->n_members && rc == 0; i++) {
            const Carechat__V1__Member *mb = ml->members[i];
            struct carechat_member *dst = &list->items[i];
            if (!get_id(mb->account_id, &dst->account_id)) {
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "%s: malformed member from the server", what);
                break;
            }
            dst->role =
                mb->role >= CARECHAT__V1__ROLE__PATIENT && mb->role <= CARECHAT__V1__ROLE__SYSADMIN
                    ? (enum carechat_role)mb->role
                    : CARECHAT_ROLE_UNSPECIFIED;
            dst->state = (int)mb->state;
            cc_copy_text(dst->display_name, sizeof dst->display_name, mb->display_name);
            list->n++;
        }
    }
    cc_free_response(resp);
    if (rc != 0) {
        carechat_members_free(list);
        return rc;
    }
    *out = list;
    return 0;
}

static int message_call(struct carechat *c, const struct id *conversation,
                        const struct id *message_id, Carechat__V1__Frame__BodyCase kind,
                        const char *what) {
    cc_clear_error(c);
    if (conversation == NULL || message_id == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: a conversation and a message are required", what);
    Carechat__V1__Recall r;
    Carechat__V1__AckUrgent a;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = kind;
    uint8_t sig[64];
    if (kind == CARECHAT__V1__FRAME__BODY_RECALL) {
        carechat__v1__recall__init(&r);
        r.conversation_id = bin(conversation);
        r.message_id = bin(message_id);
        int rc = cc_ensure_session(c);
        if (rc == 0)
            rc = cc_msg_recall_signature(c, conversation, message_id, sig);
        if (rc != 0)
            return rc;
        r.signature = (ProtobufCBinaryData){sizeof sig, sig};
        req.recall = &r;
    } else {
        carechat__v1__ack_urgent__init(&a);
        a.conversation_id = bin(conversation);
        a.message_id = bin(message_id);
        req.ack_urgent = &a;
    }
    return cc_msg_simple_call(c, &req, what);
}

int carechat_recall(struct carechat *c, const struct id *conversation,
                    const struct id *message_id) {
    return message_call(c, conversation, message_id, CARECHAT__V1__FRAME__BODY_RECALL,
                        "recalling the message");
}

int carechat_ack_urgent(struct carechat *c, const struct id *conversation,
                        const struct id *message_id) {
    return message_call(c, conversation, message_id, CARECHAT__V1__FRAME__BODY_ACK_URGENT,
                        "acknowledging the urgent message");
}

void carechat_urgent_report_free(struct carechat_urgent_report *r) {
    if (r == NULL)
        return;
    free(r->items);
    free(r);
}

int carechat_urgent_status(struct carechat *c, const struct id *conversation,
                           const struct id *message_id, struct carechat_urgent_report **out) {
    cc_clear_error(c);
    const char *what = "reading the urgent message's acknowledgements";
    if (conversation == NULL || message_id == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "urgent status: a conversation and a message are required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__GetUrgentStatus g;
    carechat__v1__get_urgent_status__init(&g);
    g.conversation_id = bin(conversation);
    g.message_id = bin(message_id);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_GET_URGENT_STATUS;
    req.get_urgent_status = &g;
    const struct cc_hint hints[] = {{CARECHAT__V1__STATUS__OK, "no such message"}};
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_URGENT_REPORT, what, hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__UrgentReport *ur = resp->response->urgent_report;
    if (ur == NULL || ur->n_recipients > MEMBERS_MAX)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: malformed answer from the server", what);
    struct carechat_urgent_report *rep = NULL;
    if (rc == 0) {
        rep = xcalloc(1, sizeof *rep);
        rep->items = xcalloc(ur->n_recipients + 1, sizeof *rep->items);
        for (size_t i = 0; i < ur->n_recipients; i++) {
            struct carechat_urgent_recipient *dst = &rep->items[i];
            if (!get_id(ur->recipients[i]->account_id, &dst->account_id)) {
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "%s: malformed answer from the server", what);
                break;
            }
            dst->acknowledged = ur->recipients[i]->acknowledged;
            dst->acknowledged_at = ur->recipients[i]->acknowledged_at;
            rep->n++;
        }
    }
    cc_free_response(resp);
    if (rc != 0) {
        carechat_urgent_report_free(rep);
        return rc;
    }
    *out = rep;
    return 0;
}
