/*
 * server/apply_store.c: the typed reads and writes of apply through the
 * batch's transaction (server/apply_internal.h): accounts, devices,
 * conversations, members, inboxes and the care-pair index, each record
 * sealed under its owner (storage/store.h). An inbox's head counts its
 * senders' items for the sender quota, unless it is of the old layout, whose
 * counts stay in CF_INBOX_QUOTAS until the inbox empties
 * (server/records_messages.h).
 *
 * Pure: no clock, no randomness, no I/O beyond the transaction. Writer thread.
 */
#include <string.h>

#include "base/buf.h"
#include "base/status.h"
#include "server/apply_internal.h"
#include "storage/keys.h"

bool apply_id_field(ProtobufCBinaryData b, struct id *out) {
    return id_from_bytes(b.data, b.len, out) == 0;
}

bool apply_is_staff(uint32_t role) {
    return role == REC_ROLE_PROVIDER || role == REC_ROLE_ADMIN || role == REC_ROLE_SYSADMIN;
}

int apply_exists(struct store_txn *txn, enum store_cf cf, const void *key, size_t len) {
    const uint8_t *v;
    size_t n;
    return txn_view(txn, cf, key, len, &v, &n);
}

int apply_put(struct store_txn *txn, enum store_cf cf, const struct key *k, const struct id *owner,
              const struct buf *v) {
    return txn_put(txn, cf, k->b, k->len, owner, v->data, v->len);
}

/* ---- accounts and devices ---------------------------------------------------- */

static int read_account(struct store_txn *txn, const struct id *id, struct rec_account *out,
                        int (*decode)(const uint8_t *, size_t, struct rec_account *)) {
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_ACCOUNTS, id->b, ID_LEN, &v, &n);
    if (rc == 0)
        rc = decode(v, n, out);
    return rc;
}

int apply_read_account(struct store_txn *txn, const struct id *id, struct rec_account *out) {
    return read_account(txn, id, out, rec_account_decode);
}

int apply_read_account_lean(struct store_txn *txn, const struct id *id, struct rec_account *out) {
    return read_account(txn, id, out, rec_account_decode_lean);
}

int apply_write_account(struct store_txn *txn, const struct id *id, const struct rec_account *a) {
    struct buf v;
    buf_init(&v);
    rec_account_encode(a, &v);
    int rc = txn_put(txn, CF_ACCOUNTS, id->b, ID_LEN, id, v.data, v.len);
    buf_wipe(&v);
    buf_cleanup(&v);
    return rc;
}

static int read_device(struct store_txn *txn, const struct id *account, const struct id *device,
                       struct rec_device *out,
                       int (*decode)(const uint8_t *, size_t, struct rec_device *)) {
    struct key k;
    key_id_id(&k, account, device);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_DEVICES, k.b, k.len, &v, &n);
    if (rc == 0)
        rc = decode(v, n, out);
    return rc;
}

int apply_read_device(struct store_txn *txn, const struct id *account, const struct id *device,
                      struct rec_device *out) {
    return read_device(txn, account, device, out, rec_device_decode);
}

int apply_write_device(struct store_txn *txn, const struct id *account, const struct id *device,
                       const struct rec_device *d) {
    struct key k;
    key_id_id(&k, account, device);
    struct buf v;
    buf_init(&v);
    rec_device_encode(d, &v);
    int rc = apply_put(txn, CF_DEVICES, &k, account, &v);
    buf_cleanup(&v);
    return rc;
}

int apply_read_device_key(struct store_txn *txn, const struct id *account, const struct id *device,
                          uint32_t *key_id, int64_t *expires_at) {
    struct rec_device d;
    int rc = read_device(txn, account, device, &d, rec_device_decode_lean);
    if (rc == 0) {
        *key_id = d.encryption_key_id;
        *expires_at = d.encryption_key_expires_at;
    }
    return rc;
}

int apply_read_lifecycle(struct store_txn *txn, const struct id *account,
                         struct rec_lifecycle *out) {
    uint8_t k[1 + ID_LEN];
    rec_lifecycle_key(account, k);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_ACCOUNTS, k, sizeof k, &v, &n);
    if (rc == 0)
        rc = rec_lifecycle_decode(v, n, out);
    return rc;
}

int apply_write_lifecycle(struct store_txn *txn, const struct id *account,
                          const struct rec_lifecycle *l) {
    uint8_t k[1 + ID_LEN];
    rec_lifecycle_key(account, k);
    struct buf v;
    buf_init(&v);
    rec_lifecycle_encode(l, &v);
    /* The server's key: the record outlives the account's purge. */
    int rc = txn_put(txn, CF_ACCOUNTS, k, sizeof k, NULL, v.data, v.len);
    buf_cleanup(&v);
    return rc;
}

int apply_actor_account(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct id *id,
                        struct rec_account *a) {
    if (!apply_id_field(e->actor_account_id, id))
        return STATUS_BAD_REQUEST;
    int rc = apply_read_account(txn, id, a);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_UNAUTHENTICATED;
    if (rc != 0)
        return rc;
    if (!a->active) {
        rec_account_cleanup(a);
        return STATUS_UNAUTHENTICATED;
    }
    return STATUS_OK;
}

int apply_actor_role(struct store_txn *txn, const Carechat__Entry__V1__Entry *e, struct id *id,
                     uint32_t *role) {
    struct rec_account a;
    int rc = apply_actor_account(txn, e, id, &a);
    if (rc == 0) {
        *role = a.role;
        rec_account_cleanup(&a);
    }
    return rc;
}

/* ---- conversations and members ------------------------------------------------- */

int apply_read_conv(struct store_txn *txn, const struct id *conv, struct rec_conv *out) {
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_CONVERSATIONS, conv->b, ID_LEN, &v, &n);
    if (rc == 0)
        rc = rec_conv_decode(v, n, out);
    return rc;
}

int apply_read_open_conv(struct store_txn *txn, const struct id *conv, struct rec_conv *out) {
    int rc = apply_read_conv(txn, conv, out);
    if (rc != 0 || !out->has_owner)
        return rc;
    struct rec_lifecycle l;
    rc = apply_read_lifecycle(txn, &out->owner, &l);
    if (rc == STATUS_NOT_FOUND)
        return STATUS_OK;
    if (rc != 0)
        return rc;
    return l.state == REC_LC_ACTIVE ? STATUS_OK : STATUS_FORBIDDEN;
}

int apply_write_conv(struct store_txn *txn, const struct id *conv, const struct rec_conv *c) {
    struct buf v;
    buf_init(&v);
    rec_conv_encode(c, &v);
    int rc = txn_put(txn, CF_CONVERSATIONS, conv->b, ID_LEN, c->has_owner ? &c->owner : NULL,
                     v.data, v.len);
    buf_cleanup(&v);
    return rc;
}

int apply_read_member(struct store_txn *txn, const struct id *conv, const struct id *account,
                      struct rec_member *out) {
    struct key k;
    key_id_id(&k, conv, account);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_MEMBERS, k.b, k.len, &v, &n);
    if (rc == 0)
        rc = rec_member_decode(v, n, out);
    return rc;
}

int apply_write_member(struct store_txn *txn, const struct id *conv, const struct id *account,
                       const struct rec_member *m, const struct id *owner) {
    struct key k;
    key_id_id(&k, conv, account);
    struct buf v;
    buf_init(&v);
    rec_member_encode(m, &v);
    int rc = apply_put(txn, CF_MEMBERS, &k, owner, &v);
    buf_cleanup(&v);
    return rc;
}

int apply_share_care_team(struct store_txn *txn, const struct id *patient, const struct id *staff,
                          bool *out) {
    struct key k;
    rec_key_care_pair(&k, patient, staff);
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_CONVERSATIONS, k.b, k.len, &v, &n);
    *out = rc == 0 && n == 4 && key_get_u32(v) > 0;
    return rc == STATUS_NOT_FOUND ? STATUS_OK : rc;
}

int apply_care_relation(struct store_txn *txn, const struct id *patient_id,
                        const struct rec_account *patient, const struct id *staff, bool *out) {
    if (id_equal(&patient->inviter, staff)) {
        *out = true;
        return STATUS_OK;
    }
    return apply_share_care_team(txn, patient_id, staff, out);
}

/* ---- inboxes ------------------------------------------------------------------------ */

/* An empty inbox holds no count anywhere: each left with its item, and a
 * count of 0 has no row in CF_INBOX_QUOTAS. So an empty head counts its
 * senders in itself from here on, whether it is new, drained, or of the old
 * layout (records_messages.h). */
static void empty_counts_in_head(struct rec_inbox *in) {
    if (in->acked == in->last) {
        in->counts_in_head = true;
        in->n_senders = 0;
    }
}

int apply_read_inbox(struct store_txn *txn, const struct id *device, struct rec_inbox *out,
                     struct buf *value) {
    int rc = txn_get(txn, CF_INBOXES, device->b, ID_LEN, value);
    if (rc == 0)
        rc = rec_inbox_decode(value->data, value->len, out);
    else if (rc == STATUS_NOT_FOUND) {
        memset(out, 0, sizeof *out);
        rc = STATUS_OK;
    }
    if (rc == 0)
        empty_counts_in_head(out);
    return rc;
}

int apply_write_inbox(struct store_txn *txn, const struct id *device, const struct rec_inbox *in,
                      struct buf *value) {
    struct rec_inbox head = *in;
    empty_counts_in_head(&head);
    buf_reset(value);
    rec_inbox_encode(&head, value);
    return txn_put(txn, CF_INBOXES, device->b, ID_LEN, NULL, value->data, value->len);
}

void inbox_scratch_init(struct inbox_scratch *s) {
    buf_init(&s->head);
    buf_init(&s->space);
    buf_init(&s->value);
}

void inbox_scratch_cleanup(struct inbox_scratch *s) {
    buf_cleanup(&s->head);
    buf_cleanup(&s->space);
    buf_cleanup(&s->value);
}

/* A row of CF_INBOX_QUOTAS (a head of the old layout): the sender's MESSAGE
 * items in the device's inbox. */
static int read_quota(struct store_txn *txn, const struct key *k, uint32_t *count) {
    const uint8_t *v;
    size_t n;
    int rc = txn_view(txn, CF_INBOX_QUOTAS, k->b, k->len, &v, &n);
    *count = 0;
    if (rc == 0 && n == 4)
        *count = key_get_u32(v);
    else if (rc == 0)
        rc = STATUS_CORRUPT;
    else if (rc == STATUS_NOT_FOUND)
        rc = STATUS_OK;
    return rc;
}

static int write_quota(struct store_txn *txn, const struct key *k, uint32_t count) {
    if (count == 0)
        return txn_delete(txn, CF_INBOX_QUOTAS, k->b, k->len);
    uint8_t c[4];
    key_put_u32(c, count);
    return txn_put(txn, CF_INBOX_QUOTAS, k->b, k->len, NULL, c, sizeof c);
}

/* The sender's MESSAGE items in the device's inbox `in`: in the head, or in
 * its row for a head of the old layout. */
static int sender_count(struct store_txn *txn, const struct id *device, const struct rec_inbox *in,
                        const struct id *sender, uint32_t *count) {
    if (in->counts_in_head) {
        *count = rec_inbox_count(in, sender);
        return STATUS_OK;
    }
    struct key k;
    key_id_id(&k, device, sender);
    return read_quota(txn, &k, count);
}

/* Sets what sender_count() reads: in the head `in` (written back by the
 * caller; its senders then point into `space`), or in the row. */
static int set_sender_count(struct store_txn *txn, const struct id *device, struct rec_inbox *in,
                            const struct id *sender, uint32_t count, struct buf *space) {
    if (in->counts_in_head) {
        rec_inbox_set_count(in, sender, count, space);
        return STATUS_OK;
    }
    struct key k;
    key_id_id(&k, device, sender);
    return write_quota(txn, &k, count);
}

int apply_inbox_release(struct store_txn *txn, const struct id *device, struct rec_inbox *in,
                        const struct id *sender, struct buf *space) {
    uint32_t count;
    int rc = sender_count(txn, device, in, sender, &count);
    if (rc == 0 && count > 0)
        rc = set_sender_count(txn, device, in, sender, count - 1, space);
    return rc;
}

/* Appends `item` at the end of `device`'s inbox `in` (as read: written back
 * here) and adds the delivery. */
static int append_item(struct store_txn *txn, const struct id *device, struct rec_inbox *in,
                       const struct rec_item *item, const struct id *owner,
                       struct inbox_scratch *scratch, struct buf *deliveries) {
    in->last++;
    buf_reset(&scratch->value);
    rec_item_encode(item, &scratch->value);
    struct key k;
    key_id_u64(&k, device, in->last);
    int rc = apply_put(txn, CF_INBOXES, &k, owner, &scratch->value);
    if (rc == 0)
        rc = apply_write_inbox(txn, device, in, &scratch->value);
    if (rc == 0)
        rec_delivery_add(deliveries, device, in->last, item);
    return rc;
}

int apply_inbox_offer(struct store_txn *txn, const struct id *device, const struct rec_item *item,
                      const struct id *owner, const struct inbox_limits *lim, int64_t time,
                      struct inbox_scratch *scratch, struct buf *deliveries, bool *first_miss) {
    struct rec_inbox in;
    *first_miss = false;
    int rc = apply_read_inbox(txn, device, &in, &scratch->head);
    if (rc != 0)
        return rc;
    bool quota =
        lim->sender_quota > 0 && item->kind == REC_ITEM_MESSAGE && !id_is_zero(&item->account_id);
    uint32_t count = 0;
    if (quota && (rc = sender_count(txn, device, &in, &item->account_id, &count)) != 0)
        return rc;
    if (in.last - in.acked >= lim->limit || (quota && count >= lim->sender_quota)) {
        in.missed++;
        if (in.full_since == 0) {
            in.full_since = time;
            *first_miss = true;
        }
        return apply_write_inbox(txn, device, &in, &scratch->value);
    }
    if (quota && (rc = set_sender_count(txn, device, &in, &item->account_id, count + 1,
                                        &scratch->space)) != 0)
        return rc;
    return append_item(txn, device, &in, item, owner, scratch, deliveries);
}

int apply_inbox_append(struct store_txn *txn, const struct id *device, const struct rec_item *item,
                       const struct id *owner, struct inbox_scratch *scratch,
                       struct buf *deliveries) {
    struct rec_inbox in;
    int rc = apply_read_inbox(txn, device, &in, &scratch->head);
    if (rc == 0)
        rc = append_item(txn, device, &in, item, owner, scratch, deliveries);
    return rc;
}

/* ---- breach notices ------------------------------------------------------------------ */

int apply_breach_notice_settled(struct store_txn *txn, const uint8_t job_id[16], bool sent,
                                int64_t time) {
    uint8_t jk[1 + 16];
    jk[0] = REC_BREACH_JOB_TAG;
    memcpy(jk + 1, job_id, 16);
    struct buf v;
    buf_init(&v);
    int rc = txn_get(txn, CF_META, jk, sizeof jk, &v);
    struct id incident, account;
    if (rc == 0 && v.len != 2 * ID_LEN)
        rc = STATUS_CORRUPT;
    if (rc == 0) {
        memcpy(incident.b, v.data, ID_LEN);
        memcpy(account.b, v.data + ID_LEN, ID_LEN);
    }
    buf_cleanup(&v);
    if (rc != 0)
        return rc;
    uint8_t k[1 + 2 * ID_LEN];
    rec_breach_key(&incident, &account, k);
    struct rec_breach_notice n;
    buf_init(&v);
    rc = txn_get(txn, CF_META, k, sizeof k, &v);
    if (rc == 0)
        rc = rec_breach_notice_decode(v.data, v.len, &n);
    buf_cleanup(&v);
    if (rc != 0)
        return rc;
    n.state = sent ? REC_BREACH_SENT : REC_BREACH_FAILED;
    n.settled_at = time;
    buf_init(&v);
    rec_breach_notice_encode(&n, &v);
    rc = txn_put(txn, CF_META, k, sizeof k, NULL, v.data, v.len);
    buf_cleanup(&v);
    return rc;
}
