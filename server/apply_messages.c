/*
 * server/apply_messages.c: apply for the conversation and message kinds of
 * entry.proto (DirectCreate, MessageSend, InboxAck, ReceiptRecord), writing
 * the records of server/records_messages.h.
 *
 * Invariants kept here, and only here: a conversation's seq grows by one per
 * stored message; a device's inbox positions grow by one per entry, and the
 * inbox holds exactly the positions (acked, last]; a (conversation, sender,
 * client_msg_id) is stored at most once. The entry's own time is the only
 * time used.
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/status.h"
#include "server/apply_internal.h"
#include "server/send_rules.h"
#include "server/records_messages.h"
#include "server/records.h"
#include "storage/keys.h"

/* Records message `c->last_seq` (already counted) at `time` in `c` (to be
 * written by the caller), which orders the members' conversation lists
 * (rec_activity_time()) without writing their index entries. A conversation
 * of an older server, whose entries still sit at each member's activity time
 * as of the message before, first has them moved to the members' joined_at,
 * once: the index is then fixed, and this message and every later one write
 * nothing to it. */
static int touch_activity(struct store_txn *txn, const struct id *conv, struct rec_conv *c,
                          int64_t time) {
    const struct id *owner = c->has_owner ? &c->owner : NULL;
    int rc = 0;
    for (uint32_t i = 0; !c->index_fixed && rc == 0 && i < c->n_members; i++) {
        struct rec_member m;
        struct key k;
        if ((rc = apply_read_member(txn, conv, &c->members[i], &m)) != 0)
            break;
        int64_t was = rec_activity_time(c, &m);
        if (m.state != REC_ACTIVE || was == m.joined_at)
            continue; /* only active members have an index entry */
        rec_key_account_conv(&k, &c->members[i], was, conv);
        if ((rc = txn_delete(txn, CF_CONVERSATIONS, k.b, k.len)) != 0)
            break;
        rec_key_account_conv(&k, &c->members[i], m.joined_at, conv);
        rc = txn_put(txn, CF_CONVERSATIONS, k.b, k.len, owner, conv->b, ID_LEN);
    }
    if (rc == 0)
        c->index_fixed = true;
    c->active_seq = c->last_seq;
    c->active_at = time;
    return rc;
}

/* ---- DirectCreate ------------------------------------------------------------ */

/* Whether two accounts may have a direct conversation: staff with staff; a
 * patient with the staff member who invited them or with whom they share a
 * care team (apply_channels.c keeps that index); never two patients. */
static int may_talk(struct store_txn *txn, const struct id *a_id, const struct rec_account *a,
                    const struct id *b_id, const struct rec_account *b, bool *out) {
    *out = false;
    if (apply_is_staff(a->role) && apply_is_staff(b->role)) {
        *out = true;
        return STATUS_OK;
    }
    const struct id *patient_id = a_id, *staff_id = b_id;
    const struct rec_account *patient = a;
    if (b->role == REC_ROLE_PATIENT && apply_is_staff(a->role)) {
        patient_id = b_id;
        staff_id = a_id;
        patient = b;
    } else if (!(a->role == REC_ROLE_PATIENT && apply_is_staff(b->role)))
        return STATUS_OK;
    return apply_care_relation(txn, patient_id, patient, staff_id, out);
}

int apply_direct_create(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                        struct buf *result) {
    const Carechat__Entry__V1__DirectCreate *d = e->direct_create;
    struct id conv, actor, peer;
    if (!d || !apply_id_field(d->conversation_id, &conv) ||
        !apply_id_field(e->actor_account_id, &actor) || !apply_id_field(d->peer_account_id, &peer))
        return STATUS_BAD_REQUEST;
    if (memcmp(actor.b, peer.b, ID_LEN) == 0)
        return STATUS_BAD_REQUEST;
    struct rec_account a, b;
    int rc = apply_read_account(txn, &actor, &a);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;
    rc = apply_read_account(txn, &peer, &b);
    if (rc != 0) {
        rec_account_cleanup(&a);
        return rc;
    }
    bool allowed = false;
    rc = may_talk(txn, &actor, &a, &peer, &b, &allowed);
    allowed = allowed && a.active;
    bool peer_active = b.active;
    uint32_t roles[2] = {a.role, b.role};
    rec_account_cleanup(&a);
    rec_account_cleanup(&b);
    if (rc != 0)
        return rc;
    if (!allowed)
        return STATUS_NOT_FOUND;
    if (!peer_active)
        return STATUS_FORBIDDEN;

    struct key k;
    rec_key_pair(&k, &actor, &peer);
    struct buf v;
    buf_init(&v);
    rc = txn_get(txn, CF_CONVERSATIONS, k.b, k.len, &v);
    if (rc == 0) {
        if (v.len == ID_LEN)
            buf_append(result, v.data, ID_LEN);
        else
            rc = STATUS_CORRUPT;
        goto out;
    }
    if (rc != STATUS_NOT_FOUND)
        goto out;
    rc = txn_get(txn, CF_CONVERSATIONS, conv.b, ID_LEN, &v);
    if (rc == 0) {
        rc = STATUS_CONFLICT; /* the proposer's random id is taken */
        goto out;
    }
    if (rc != STATUS_NOT_FOUND)
        goto out;
    struct rec_conv c = {
        .kind = REC_DIRECT,
        .created_at = e->time,
        .n_members = 2,
        .members = {actor, peer},
        .index_fixed = true,
    };
    if (roles[0] == REC_ROLE_PATIENT || roles[1] == REC_ROLE_PATIENT) {
        c.has_owner = true;
        c.owner = roles[0] == REC_ROLE_PATIENT ? actor : peer;
    }
    const struct id *owner = c.has_owner ? &c.owner : NULL;
    if ((rc = apply_write_conv(txn, &conv, &c)) != 0)
        goto out;
    rc = txn_put(txn, CF_CONVERSATIONS, k.b, k.len, owner, conv.b, ID_LEN);
    for (int i = 0; rc == 0 && i < 2; i++) {
        struct rec_member m = {
            .role = roles[i], .state = REC_ACTIVE, .joined_at = e->time, .last_active = e->time};
        buf_reset(&v);
        rec_member_encode(&m, &v);
        key_id_id(&k, &conv, &c.members[i]);
        rc = apply_put(txn, CF_MEMBERS, &k, owner, &v);
        if (rc != 0)
            break;
        rec_key_account_conv(&k, &c.members[i], m.joined_at, &conv);
        rc = txn_put(txn, CF_CONVERSATIONS, k.b, k.len, owner, conv.b, ID_LEN);
    }
    if (rc == 0)
        buf_append(result, conv.b, ID_LEN);
out:
    buf_cleanup(&v);
    return rc;
}

/* ---- inboxes ------------------------------------------------------------------- */

int apply_inbox_ack(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                    struct buf *result) {
    struct id device;
    if (!e->inbox_ack || !apply_id_field(e->actor_device_id, &device))
        return STATUS_BAD_REQUEST;
    struct rec_inbox in;
    struct inbox_scratch scratch;
    inbox_scratch_init(&scratch);
    int rc = apply_read_inbox(txn, &device, &in, &scratch.head);
    if (rc != 0)
        goto out;
    uint64_t pos = e->inbox_ack->position;
    if (pos > in.last) {
        rc = STATUS_CONFLICT;
        goto out;
    }
    if (pos <= in.acked)
        goto out;
    for (uint64_t p = in.acked + 1; p <= pos && rc == 0; p++) {
        struct key k;
        struct rec_item item;
        const uint8_t *v;
        size_t n;
        key_id_u64(&k, &device, p);
        if ((rc = txn_view(txn, CF_INBOXES, k.b, k.len, &v, &n)) == 0 &&
            (rc = rec_item_decode(v, n, &item)) == 0 && item.kind == REC_ITEM_MESSAGE &&
            !id_is_zero(&item.account_id))
            rc = apply_inbox_release(txn, &device, &in, &item.account_id, &scratch.space);
        if (rc == 0)
            rc = txn_delete(txn, CF_INBOXES, k.b, k.len);
    }
    if (rc != 0)
        goto out;
    in.acked = pos;
    /* Drained: the device has seen everything it was sent, and learnt from
     * QueueEmpty what it missed (its head counts its senders from now on:
     * apply_write_inbox()). */
    struct id account;
    if (in.acked == in.last) {
        in.missed = 0;
        in.full_since = 0;
        if (apply_id_field(e->actor_account_id, &account) &&
            (rc = apply_outbox_read(txn, &account, &device)) != 0)
            goto out;
    }
    rc = apply_write_inbox(txn, &device, &in, &scratch.value);
out:
    inbox_scratch_cleanup(&scratch);
    return rc;
}

/* ---- MessageSend ------------------------------------------------------------------ */

struct member_view {
    struct id account;
    uint32_t n_devices;    /* its recipient devices (server/send_rules.h send_is_recipient()) */
    uint32_t n_expected;   /* of the entry's member_device_ids that exist */
    uint64_t list_version; /* of its signed device list; 0: none (all its devices receive) */
};

/* Checks the envelope's shape (server/send_rules.h) and copies its wraps
 * into out[]. */
static int check_shape(const Carechat__Entry__V1__MessageSend *m, struct rec_wrap *out) {
    const char *detail;
    struct send_shape shape = {
        .version = m->envelope_version,
        .header_len = m->header.len,
        .body_len = m->body.len,
        .nonce_len = m->body_nonce.len,
        .signature_len = m->signature.len,
        .n_wraps = m->n_wraps,
    };
    int rc = send_check_shape(&shape, &detail);
    if (rc != 0)
        return rc;
    if (m->n_member_device_ids > SEND_DEVICES_MAX)
        return STATUS_TOO_LARGE;
    for (size_t i = 0; i < m->n_wraps && rc == 0; i++) {
        const Carechat__Entry__V1__WrapItem *w = m->wraps[i];
        rc = send_copy_wrap(w->device_id, w->key_id, w->enc, w->wrapped_key, &out[i]);
    }
    return rc;
}

/* The send's idempotency record: 0 with *out when this message was stored
 * before, STATUS_NOT_FOUND when not, or the store's status. */
static int read_sent(struct store_txn *txn, const struct key *k, struct rec_sent *out) {
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_IDEMPOTENCY, k->b, k->len, &v);
    if (rc == 0)
        rc = rec_sent_decode(v.data, v.len, out);
    buf_cleanup(&v);
    return rc;
}

/* A listed device of an active member, read once per send. */
struct known_device {
    struct send_device d;
    uint32_t member; /* its index in the send's member_view array */
};

static int cmp_known(const void *a, const void *b) {
    return memcmp(((const struct known_device *)a)->d.id.b,
                  ((const struct known_device *)b)->d.id.b, ID_LEN);
}

/* The proposer's view of the recipients' devices (the entry's
 * member_device_ids) as they are now: every listed device must still be a
 * member's, and each member must have no other (by count), else *current is
 * false. `known` (n_known, sorted by id) are the existing devices of the
 * members' signed lists; the devices of a member without a list (an account
 * of before device lists) are read here. Fills devs[] with the listed devices
 * that exist. O(devices log devices): one search per listed device. Returns 0
 * or the store's status. */
static int listed_devices(struct store_txn *txn, const Carechat__Entry__V1__MessageSend *m,
                          struct member_view *members, uint32_t n_members,
                          const struct known_device *known, size_t n_known,
                          struct send_device *devs, size_t *n_devs, bool *current) {
    *current = true;
    *n_devs = 0;
    for (size_t i = 0; i < m->n_member_device_ids; i++) {
        struct send_device *d = &devs[*n_devs];
        if (!apply_id_field(m->member_device_ids[i], &d->id))
            return STATUS_BAD_REQUEST;
        struct known_device probe = {.d.id = d->id};
        const struct known_device *k =
            n_known ? bsearch(&probe, known, n_known, sizeof *known, cmp_known) : NULL;
        uint32_t found = n_members;
        if (k) {
            *d = k->d;
            found = k->member;
        }
        for (uint32_t j = 0; j < n_members && found == n_members; j++) {
            if (members[j].list_version > 0)
                continue; /* its devices are all in known[] */
            int rc =
                apply_read_device_key(txn, &members[j].account, &d->id, &d->key_id, &d->expires_at);
            if (rc == 0) {
                d->account = members[j].account;
                found = j;
            } else if (rc != STATUS_NOT_FOUND)
                return rc;
        }
        if (found < n_members) {
            members[found].n_expected++;
            (*n_devs)++;
        } else
            *current = false;
    }
    for (uint32_t j = 0; j < n_members; j++)
        if (members[j].n_expected != members[j].n_devices)
            *current = false;
    return STATUS_OK;
}

/* Offers `item` to the inbox of `device` (of `account`) within `lim`; the
 * first message the device misses since its inbox last drained is an audit
 * record (device.inbox_full), so that its account and admins learn that it
 * stopped receiving. */
static int offer(struct store_txn *txn, const Carechat__Entry__V1__Entry *e,
                 const struct id *device, const struct id *account, const struct rec_item *item,
                 const struct id *owner, const struct inbox_limits *lim,
                 struct inbox_scratch *scratch, struct buf *deliveries) {
    bool first_miss;
    int rc =
        apply_inbox_offer(txn, device, item, owner, lim, e->time, scratch, deliveries, &first_miss);
    if (rc == 0 && first_miss)
        rc = apply_audit(txn, e, REC_AUDIT_DEVICE_INBOX_FULL, 0, account, device->b, ID_LEN, owner);
    return rc;
}

int apply_send(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__MessageSend *m = e->message_send;
    struct id conv, message_id, cmid, sender, sender_device, env_device;
    if (!m || !apply_id_field(m->conversation_id, &conv) ||
        !apply_id_field(m->message_id, &message_id) || !apply_id_field(m->client_msg_id, &cmid) ||
        !apply_id_field(e->actor_account_id, &sender) ||
        !apply_id_field(e->actor_device_id, &sender_device) ||
        !apply_id_field(m->sender_device_id, &env_device) ||
        memcmp(env_device.b, sender_device.b, ID_LEN) != 0 || m->inbox_limit == 0)
        return STATUS_BAD_REQUEST;
    struct rec_wrap wraps[REC_WRAPS_MAX];
    const struct send_device *recipient[REC_WRAPS_MAX];
    int rc = check_shape(m, wraps);
    if (rc != 0)
        return rc;

    struct key idem;
    rec_key_idem(&idem, &conv, &sender, &cmid);
    struct rec_sent sent;
    rc = read_sent(txn, &idem, &sent);
    if (rc == 0) {
        struct buf none;
        buf_init(&none);
        rec_sent_encode(&sent, result);
        rec_deliveries_finish(&none, NULL, result);
        return STATUS_OK;
    }
    if (rc != STATUS_NOT_FOUND)
        return rc;

    struct rec_conv c;
    rc = apply_read_open_conv(txn, &conv, &c);
    if (rc != 0)
        return rc;
    struct rec_member me;
    rc = apply_read_member(txn, &conv, &sender, &me);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_NOT_FOUND;
    if (rc != 0)
        return rc;
    if (me.state != REC_ACTIVE)
        return STATUS_FORBIDDEN;
    /* The sending device must still be the sender's (not removed meanwhile). */
    uint32_t sender_key_id;
    int64_t sender_key_expiry;
    rc = apply_read_device_key(txn, &sender, &sender_device, &sender_key_id, &sender_key_expiry);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;

    /* The recipients are the active members whose accounts are active
     * (pending, departed and removed members and deactivated accounts receive
     * nothing; apply_entry() refused a deactivated sender already). Each
     * member's account is read without its strings into one record, so that
     * this loop allocates nothing per member. */
    struct member_view *members = xcalloc(REC_MEMBERS_MAX, sizeof *members);
    struct rec_account *a = xcalloc(1, sizeof *a); /* cleaned up even if never read */
    uint32_t n_active = 0;
    struct buf known; /* struct known_device[] */
    buf_init(&known);
    for (uint32_t j = 0; j < c.n_members && rc == 0; j++) {
        struct rec_member mm;
        if ((rc = apply_read_member(txn, &conv, &c.members[j], &mm)) != 0 ||
            mm.state != REC_ACTIVE || (rc = apply_read_account_lean(txn, &c.members[j], a)) != 0 ||
            !a->active)
            continue;
        /* Its recipient devices: all of them, or the listed ones that exist. */
        uint32_t n = a->n_devices;
        if (a->list_version > 0) {
            n = 0;
            for (uint32_t i = 0; i < a->n_list && i < REC_LIST_MAX && rc == 0; i++) {
                struct known_device k = {
                    .d = {.id = a->list[i].device_id, .account = c.members[j]},
                    .member = n_active,
                };
                rc = apply_read_device_key(txn, &c.members[j], &k.d.id, &k.d.key_id,
                                           &k.d.expires_at);
                if (rc == 0) {
                    buf_append(&known, &k, sizeof k);
                    n++;
                } else if (rc == STATUS_NOT_FOUND)
                    rc = 0;
            }
        }
        members[n_active++] = (struct member_view){
            .account = c.members[j], .n_devices = n, .list_version = a->list_version};
        /* The sender's device must be listed (approved) to send. */
        if (rc == 0 && id_equal(&c.members[j], &sender) && !send_is_recipient(a, &sender_device))
            rc = STATUS_FORBIDDEN;
    }
    rec_account_cleanup(a); /* its two-factor secret */
    free(a);
    if (rc != 0) {
        buf_cleanup(&known);
        free(members);
        return rc;
    }
    size_t n_known = known.len / sizeof(struct known_device);
    if (n_known > 1)
        qsort(known.data, n_known, sizeof(struct known_device), cmp_known);
    /* The device-set check (server/send_rules.h) against the proposer's
     * view, which must also still be current. */
    struct send_device *devs = xmalloc(SEND_DEVICES_MAX * sizeof *devs);
    struct send_mismatch *mm = xmalloc(sizeof *mm);
    struct buf v, record, deliveries;
    buf_init(&v);
    buf_init(&record);
    buf_init(&deliveries);
    struct inbox_scratch scratch;
    inbox_scratch_init(&scratch);
    size_t n_devs;
    bool current;
    rc = listed_devices(txn, m, members, n_active, (const struct known_device *)known.data, n_known,
                        devs, &n_devs, &current);
    if (rc == 0)
        rc = send_check_devices(devs, n_devs, wraps, m->n_wraps, &sender_device, e->time, mm,
                                recipient);
    if (rc == 0 && !current)
        rc = STATUS_CONFLICT;
    if (rc == STATUS_CONFLICT)
        send_mismatch_encode(mm, result);
    if (rc != 0)
        goto out;

    const struct id *owner = c.has_owner ? &c.owner : NULL;
    c.last_seq++;
    if ((rc = touch_activity(txn, &conv, &c, e->time)) != 0 ||
        (rc = apply_write_conv(txn, &conv, &c)) != 0)
        goto out;
    struct rec_message msg = {
        .message_id = message_id,
        .sender_account = sender,
        .sender_device = sender_device,
        .sent_at = e->time,
        .urgent = m->urgent,
        .client_msg_id = cmid,
        .envelope_version = m->envelope_version,
        .header = {m->header.data, m->header.len},
        .body = {m->body.data, m->body.len},
        .body_nonce = {m->body_nonce.data, m->body_nonce.len},
        .signature = {m->signature.data, m->signature.len},
        .n_wraps = (uint32_t)m->n_wraps,
        .wraps = wraps,
        .sender_sent_at = m->sender_sent_at,
        .counter = m->counter,
    };
    struct key k;
    rec_message_encode(&msg, &record);
    key_id_u64(&k, &conv, c.last_seq);
    if ((rc = apply_put(txn, CF_MESSAGES, &k, owner, &record)) != 0)
        goto out;
    struct rec_msgref ref = {.seq = c.last_seq, .sender_account = sender};
    rec_msgref_encode(&ref, &v);
    rec_key_receipt(&k, &conv, &message_id, NULL);
    if ((rc = txn_get(txn, CF_RECEIPTS, k.b, k.len, &deliveries)) == 0) {
        rc = STATUS_CONFLICT; /* the proposer's random message id is taken */
        goto out;
    }
    buf_reset(&deliveries);
    if (rc != STATUS_NOT_FOUND || (rc = apply_put(txn, CF_RECEIPTS, &k, owner, &v)) != 0)
        goto out;
    sent = (struct rec_sent){.message_id = message_id, .seq = c.last_seq, .sent_at = e->time};
    buf_reset(&v);
    rec_sent_encode(&sent, &v);
    if ((rc = apply_put(txn, CF_IDEMPOTENCY, &idem, owner, &v)) != 0)
        goto out;
    /* An urgent message waits for an acknowledgement of every recipient. */
    for (uint32_t j = 0; m->urgent && j < n_active; j++) {
        if (memcmp(members[j].account.b, sender.b, ID_LEN) == 0)
            continue;
        struct rec_urgent u = {0};
        struct buf uv;
        buf_init(&uv);
        rec_urgent_encode(&u, &uv);
        rec_key_urgent(&k, &conv, &message_id, &members[j].account);
        rc = apply_put(txn, CF_RECEIPTS, &k, owner, &uv);
        buf_cleanup(&uv);
        if (rc != 0)
            goto out;
    }
    struct rec_item item = {
        .kind = REC_ITEM_MESSAGE, .conversation_id = conv, .seq = c.last_seq, .account_id = sender};
    struct inbox_limits lim = {.limit = m->inbox_limit, .sender_quota = m->inbox_sender_quota};
    for (size_t w = 0; w < m->n_wraps; w++)
        if (recipient[w] && (rc = offer(txn, e, &recipient[w]->id, &recipient[w]->account, &item,
                                        owner, &lim, &scratch, &deliveries)) != 0)
            goto out;
    /* Offline recipients learn that something waits (server/outbox.h decides
     * when the job falls due whether they still need to). */
    for (size_t w = 0; w < m->n_wraps; w++)
        if (recipient[w] && !id_equal(&recipient[w]->account, &sender) &&
            (rc = apply_outbox_message(txn, e, &message_id, &recipient[w]->account,
                                       &recipient[w]->id)) != 0)
            goto out;
    buf_append(result, v.data, v.len);
    /* The stored message goes along, for its live delivery. */
    struct rec_list_message stored = {
        .conv = conv, .seq = c.last_seq, .data = record.data, .len = record.len};
    rec_deliveries_finish(&deliveries, &stored, result);
out:
    inbox_scratch_cleanup(&scratch);
    buf_cleanup(&deliveries);
    buf_cleanup(&record);
    buf_cleanup(&v);
    free(mm);
    free(devs);
    buf_cleanup(&known);
    free(members);
    return rc;
}

/* ---- ReceiptRecord ------------------------------------------------------------------ */

int apply_receipt(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct buf *result) {
    const Carechat__Entry__V1__ReceiptRecord *r = e->receipt_record;
    struct id conv, actor;
    if (!r || !apply_id_field(r->conversation_id, &conv) ||
        !apply_id_field(e->actor_account_id, &actor) || (r->kind != 1 && r->kind != 2) ||
        r->n_message_ids == 0 || r->inbox_limit == 0)
        return STATUS_BAD_REQUEST;
    if (r->n_message_ids > SEND_RECEIPT_IDS_MAX || r->n_sender_devices > REC_MEMBERS_MAX)
        return STATUS_TOO_LARGE;
    struct rec_conv c;
    int rc = apply_read_open_conv(txn, &conv, &c);
    if (rc != 0)
        return rc;
    struct rec_member me;
    rc = apply_read_member(txn, &conv, &actor, &me);
    if (rc != 0)
        return rc;
    const struct id *owner = c.has_owner ? &c.owner : NULL;
    const struct inbox_limits lim = {.limit = r->inbox_limit};
    struct buf v, deliveries;
    buf_init(&v);
    buf_init(&deliveries);
    struct inbox_scratch scratch;
    inbox_scratch_init(&scratch);
    for (size_t i = 0; i < r->n_message_ids; i++) {
        struct id mid;
        struct key k;
        struct rec_msgref ref;
        if (!apply_id_field(r->message_ids[i], &mid)) {
            rc = STATUS_BAD_REQUEST;
            goto out;
        }
        rec_key_receipt(&k, &conv, &mid, NULL);
        if ((rc = txn_get(txn, CF_RECEIPTS, k.b, k.len, &v)) != 0 ||
            (rc = rec_msgref_decode(v.data, v.len, &ref)) != 0)
            goto out;
        if (memcmp(ref.sender_account.b, actor.b, ID_LEN) == 0)
            continue;
        struct rec_receipt rec = {0};
        rec_key_receipt(&k, &conv, &mid, &actor);
        rc = txn_get(txn, CF_RECEIPTS, k.b, k.len, &v);
        if (rc == 0)
            rc = rec_receipt_decode(v.data, v.len, &rec);
        else if (rc == STATUS_NOT_FOUND)
            rc = STATUS_OK;
        if (rc != 0)
            goto out;
        int64_t *at = r->kind == 1 ? &rec.delivered_at : &rec.read_at;
        if (*at != 0)
            continue;
        *at = e->time;
        buf_reset(&v);
        rec_receipt_encode(&rec, &v);
        if ((rc = apply_put(txn, CF_RECEIPTS, &k, owner, &v)) != 0)
            goto out;
        struct rec_item item = {
            .kind = REC_ITEM_RECEIPT,
            .conversation_id = conv,
            .message_id = mid,
            .account_id = actor,
            .receipt_kind = r->kind,
            .at = e->time,
        };
        for (size_t s = 0; s < r->n_sender_devices; s++) {
            const Carechat__Entry__V1__AccountDeviceIds *ad = r->sender_devices[s];
            struct id acc;
            if (!apply_id_field(ad->account_id, &acc) || ad->n_device_ids > REC_LIST_MAX) {
                rc = STATUS_BAD_REQUEST;
                goto out;
            }
            if (memcmp(acc.b, ref.sender_account.b, ID_LEN) != 0)
                continue;
            for (size_t d = 0; d < ad->n_device_ids; d++) {
                struct id dev;
                uint32_t key_id;
                int64_t expires_at;
                if (!apply_id_field(ad->device_ids[d], &dev)) {
                    rc = STATUS_BAD_REQUEST;
                    goto out;
                }
                rc = apply_read_device_key(txn, &acc, &dev, &key_id, &expires_at);
                if (rc == STATUS_NOT_FOUND)
                    continue;
                if (rc != 0 || (rc = offer(txn, e, &dev, &acc, &item, owner, &lim, &scratch,
                                           &deliveries)) != 0)
                    goto out;
            }
        }
    }
    rec_deliveries_finish(&deliveries, NULL, result);
out:
    inbox_scratch_cleanup(&scratch);
    buf_cleanup(&deliveries);
    buf_cleanup(&v);
    return rc;
}
