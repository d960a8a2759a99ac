/*
 * server/invites.c: ListInvites and RevokeInvite (server/invites.h).
 *
 * An invitation is named by the SHA-256 of its code (the store's key), which
 * lets its inviter revoke it without the code ever being kept. The list reads
 * the invitations in key order and keeps those the caller may see and that
 * have not expired; the expired ones go with the maintenance's sweep.
 *
 * Thread: the lws loop thread.
 */
#include "server/invites.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"

#define LIST_DEFAULT 50
#define LIST_MAX 100

struct invite_page {
    struct id caller;
    bool everyone; /* ADMIN, SYSADMIN */
    int64_t now;
    size_t n, limit;
    bool more;
    int status;
    uint8_t ids[LIST_MAX][REC_HASH_LEN];
    struct rec_invite invites[LIST_MAX];
};

static bool collect_invite(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                           size_t value_len) {
    struct invite_page *p = ctx;
    struct rec_invite in;
    if (key_len != REC_HASH_LEN)
        return true;
    if ((p->status = rec_invite_decode(value, value_len, &in)) != 0)
        return false;
    bool shown = in.expires_at > p->now && (p->everyone || id_equal(&in.inviter, &p->caller));
    if (shown && p->n == p->limit) {
        p->more = true;
        shown = false;
    }
    if (shown) {
        memcpy(p->ids[p->n], key, REC_HASH_LEN);
        p->invites[p->n++] = in;
    } else
        rec_invite_cleanup(&in);
    return !p->more;
}

int invites_list(struct req *r) {
    const Carechat__V1__ListInvites *m = r->frame->list_invites;
    if (m->limit > LIST_MAX || (m->page_token.len != 0 && m->page_token.len != REC_HASH_LEN))
        return req_fail(r, STATUS_BAD_REQUEST, "bad page token or limit");
    struct invite_page *p = xcalloc(1, sizeof *p);
    p->caller = r->hc->account;
    p->everyone = r->hc->role == REC_ROLE_ADMIN || r->hc->role == REC_ROLE_SYSADMIN;
    p->now = clock_now();
    p->limit = m->limit ? m->limit : LIST_DEFAULT;
    int rc = store_scan(r->h->store, CF_INVITES, NULL, 0, m->page_token.data, m->page_token.len,
                        SIZE_MAX, collect_invite, p);
    if (rc >= 0)
        rc = p->status;
    if (rc == 0) {
        Carechat__V1__PendingInvite items[LIST_MAX], *ptrs[LIST_MAX];
        for (size_t i = 0; i < p->n; i++) {
            const struct rec_invite *in = &p->invites[i];
            carechat__v1__pending_invite__init(&items[i]);
            items[i].invite_id = (ProtobufCBinaryData){REC_HASH_LEN, p->ids[i]};
            items[i].email = in->email;
            items[i].role = (Carechat__V1__Role)in->role;
            items[i].inviter_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)in->inviter.b};
            items[i].created_at = in->created_at;
            items[i].expires_at = in->expires_at;
            ptrs[i] = &items[i];
        }
        Carechat__V1__Frame frame;
        Carechat__V1__Response resp;
        Carechat__V1__InvitePage page;
        proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
        carechat__v1__invite_page__init(&page);
        page.n_invites = p->n;
        page.invites = ptrs;
        if (p->more)
            page.next_page_token = (ProtobufCBinaryData){REC_HASH_LEN, p->ids[p->n - 1]};
        resp.result_case = CARECHAT__V1__RESPONSE__RESULT_INVITE_PAGE;
        resp.invite_page = &page;
        conn_send(r->conn, &frame);
    }
    for (size_t i = 0; i < p->n; i++)
        rec_invite_cleanup(&p->invites[i]);
    free(p);
    return rc;
}

int invites_revoke(struct req *r) {
    const Carechat__V1__RevokeInvite *m = r->frame->revoke_invite;
    if (m->invite_id.len != REC_HASH_LEN)
        return req_fail(r, STATUS_BAD_REQUEST, "invite_id must be 32 bytes");
    struct op *op = op_new(r, 0);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InviteRevoke ir;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__invite_revoke__init(&ir);
    ir.code_hash = m->invite_id;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_REVOKE;
    e.invite_revoke = &ir;
    return op_propose(op, &e);
}

int invites_revoke_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status,
                       res->status == STATUS_NOT_FOUND ? "no such pending invitation of yours"
                                                       : NULL);
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}
