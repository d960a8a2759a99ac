/*
 * server/records_messages.c: byte encodings of the messaging records and cursors
 * (layouts in server/records_messages.h). Pure, any thread.
 */
#include "server/records_messages.h"

#include <string.h>

#include "base/check.h"
#include "base/status.h"
#include "server/record_codec.h"

/* The largest byte string field (a body; the codec's frame limit bounds it
 * further). */
#define FIELD_MAX (64u << 20)
/* The flags byte at the end of a conversation record. */
#define CONV_INDEX_FIXED 0x01

/* ---- keys ------------------------------------------------------------------- */

void rec_key_account_conv_prefix(struct key *k, const struct id *account) {
    static const uint8_t tag = 0x01;
    key_init(k);
    key_add_bytes(k, &tag, 1);
    key_add_id(k, account);
}

void rec_key_account_conv(struct key *k, const struct id *account, int64_t time,
                          const struct id *conv) {
    rec_key_account_conv_prefix(k, account);
    key_add_u64(k, UINT64_MAX - (uint64_t)time);
    key_add_id(k, conv);
}

void rec_key_pair(struct key *k, const struct id *a, const struct id *b) {
    static const uint8_t tag = 0x02;
    bool a_first = memcmp(a->b, b->b, ID_LEN) < 0;
    key_init(k);
    key_add_bytes(k, &tag, 1);
    key_add_id(k, a_first ? a : b);
    key_add_id(k, a_first ? b : a);
}

void rec_key_idem(struct key *k, const struct id *conv, const struct id *sender,
                  const struct id *client_msg_id) {
    key_init(k);
    key_add_id(k, conv);
    key_add_id(k, sender);
    key_add_id(k, client_msg_id);
}

void rec_key_receipt(struct key *k, const struct id *conv, const struct id *message,
                     const struct id *account) {
    key_init(k);
    key_add_id(k, conv);
    key_add_id(k, message);
    if (account)
        key_add_id(k, account);
}

void rec_key_channel(struct key *k, const struct id *conv) {
    static const uint8_t tag = 0x03;
    key_init(k);
    key_add_bytes(k, &tag, 1);
    key_add_id(k, conv);
}

void rec_key_care_pair(struct key *k, const struct id *patient, const struct id *staff) {
    static const uint8_t tag = 0x04;
    key_init(k);
    key_add_bytes(k, &tag, 1);
    key_add_id(k, patient);
    key_add_id(k, staff);
}

void rec_key_urgent(struct key *k, const struct id *conv, const struct id *message,
                    const struct id *account) {
    static const uint8_t tag = REC_URGENT_TAG;
    key_init(k);
    key_add_id(k, conv);
    key_add_id(k, message);
    key_add_bytes(k, &tag, 1);
    key_add_id(k, account);
}

/* ---- reader ------------------------------------------------------------------------ */

static struct rec_bytes get_bytes(struct rec_reader *r) {
    uint32_t n = rec_get_u32(r);
    if (n > FIELD_MAX)
        r->bad = true;
    const uint8_t *p = r->bad ? NULL : rec_take(r, n);
    return (struct rec_bytes){p, p ? n : 0};
}

static bool start(struct rec_reader *r, const uint8_t *data, size_t len) {
    rec_reader_init(r, data, len);
    return len >= 1 && rec_get_u8(r) == REC_CONV_FORMAT;
}

static int finish(const struct rec_reader *r) {
    return r->bad || r->p != r->end ? STATUS_CORRUPT : STATUS_OK;
}

/* ---- records ----------------------------------------------------------------------- */

void rec_conv_encode(const struct rec_conv *c, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u32(out, c->kind);
    rec_put_u64(out, (uint64_t)c->created_at);
    rec_put_u64(out, c->last_seq);
    rec_put_u8(out, c->has_owner ? 1 : 0);
    rec_put_id(out, &c->owner);
    rec_put_u32(out, c->n_members);
    for (uint32_t i = 0; i < c->n_members; i++)
        rec_put_id(out, &c->members[i]);
    rec_put_u64(out, c->active_seq);
    rec_put_u64(out, (uint64_t)c->active_at);
    rec_put_u8(out, c->index_fixed ? CONV_INDEX_FIXED : 0);
}

int rec_conv_decode(const uint8_t *data, size_t len, struct rec_conv *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->kind = rec_get_u32(&r);
    out->created_at = (int64_t)rec_get_u64(&r);
    out->last_seq = rec_get_u64(&r);
    out->has_owner = rec_get_u8(&r) != 0;
    rec_get_id(&r, &out->owner);
    out->n_members = rec_get_u32(&r);
    if (out->n_members > REC_MEMBERS_MAX)
        return STATUS_CORRUPT;
    for (uint32_t i = 0; i < out->n_members; i++)
        rec_get_id(&r, &out->members[i]);
    if (r.bad)
        return STATUS_CORRUPT;
    /* The three layouts of the end (records_messages.h). */
    size_t rest = (size_t)(r.end - r.p);
    if (rest == 16 || rest == 17) {
        out->active_seq = rec_get_u64(&r);
        out->active_at = (int64_t)rec_get_u64(&r);
        if (rest == 16 && out->active_seq == 0)
            return STATUS_CORRUPT;
    }
    if (rest == 17) {
        uint8_t flags = rec_get_u8(&r);
        if ((flags & ~CONV_INDEX_FIXED) != 0)
            return STATUS_CORRUPT;
        out->index_fixed = flags & CONV_INDEX_FIXED;
    }
    return finish(&r);
}

int64_t rec_activity_time(const struct rec_conv *c, const struct rec_member *m) {
    uint64_t since = m->joined_seq ? m->joined_seq : 1;
    return c->active_seq != 0 && c->active_seq >= since ? c->active_at : m->last_active;
}

void rec_member_encode(const struct rec_member *m, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u32(out, m->role);
    rec_put_u32(out, m->state);
    rec_put_u64(out, (uint64_t)m->joined_at);
    rec_put_u64(out, (uint64_t)m->left_at);
    rec_put_u64(out, (uint64_t)m->last_active);
    if (m->joined_seq)
        rec_put_u64(out, m->joined_seq);
}

int rec_member_decode(const uint8_t *data, size_t len, struct rec_member *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->role = rec_get_u32(&r);
    out->state = rec_get_u32(&r);
    out->joined_at = (int64_t)rec_get_u64(&r);
    out->left_at = (int64_t)rec_get_u64(&r);
    out->last_active = (int64_t)rec_get_u64(&r);
    if (r.p != r.end)
        out->joined_seq = rec_get_u64(&r);
    return finish(&r);
}

void rec_message_encode(const struct rec_message *m, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_id(out, &m->message_id);
    rec_put_id(out, &m->sender_account);
    rec_put_id(out, &m->sender_device);
    rec_put_u64(out, (uint64_t)m->sent_at);
    rec_put_u8(out, m->urgent ? 1 : 0);
    rec_put_id(out, &m->client_msg_id);
    rec_put_u32(out, m->envelope_version);
    rec_put_bytes(out, m->header.data, m->header.len);
    rec_put_bytes(out, m->body.data, m->body.len);
    rec_put_bytes(out, m->body_nonce.data, m->body_nonce.len);
    rec_put_bytes(out, m->signature.data, m->signature.len);
    rec_put_u32(out, m->n_wraps);
    for (uint32_t i = 0; i < m->n_wraps; i++) {
        const struct rec_wrap *w = &m->wraps[i];
        rec_put_id(out, &w->device_id);
        rec_put_u32(out, w->key_id);
        buf_append(out, w->enc, REC_ENC_LEN);
        buf_append(out, w->wrapped_key, REC_WRAPPED_LEN);
    }
    const bool tail = m->sender_sent_at != 0 || m->counter != 0 || m->recall_signature.len > 0;
    if (m->recalled_at || tail)
        rec_put_u64(out, (uint64_t)m->recalled_at);
    if (tail) {
        rec_put_u64(out, (uint64_t)m->sender_sent_at);
        rec_put_u64(out, m->counter);
        rec_put_id(out, &m->recall_signer);
        rec_put_bytes(out, m->recall_signature.data, m->recall_signature.len);
        rec_put_id(out, &m->recall_signer_account);
    }
}

int rec_message_decode(const uint8_t *data, size_t len, struct rec_message *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    rec_get_id(&r, &out->message_id);
    rec_get_id(&r, &out->sender_account);
    rec_get_id(&r, &out->sender_device);
    out->sent_at = (int64_t)rec_get_u64(&r);
    out->urgent = rec_get_u8(&r) != 0;
    rec_get_id(&r, &out->client_msg_id);
    out->envelope_version = rec_get_u32(&r);
    out->header = get_bytes(&r);
    out->body = get_bytes(&r);
    out->body_nonce = get_bytes(&r);
    out->signature = get_bytes(&r);
    out->n_wraps = rec_get_u32(&r);
    if (out->n_wraps > REC_WRAPS_MAX)
        return STATUS_CORRUPT;
    out->wraps_raw = rec_take(&r, (size_t)out->n_wraps * REC_WRAP_RAW_LEN);
    if (!r.bad && r.p != r.end)
        out->recalled_at = (int64_t)rec_get_u64(&r);
    if (!r.bad && r.p != r.end) {
        out->sender_sent_at = (int64_t)rec_get_u64(&r);
        out->counter = rec_get_u64(&r);
        rec_get_id(&r, &out->recall_signer);
        out->recall_signature = get_bytes(&r);
        rec_get_id(&r, &out->recall_signer_account);
    }
    return finish(&r);
}

int rec_message_find_wrap(const struct rec_message *m, const struct id *device,
                          struct rec_wrap *out) {
    const uint8_t *p = m->wraps_raw;
    for (uint32_t i = 0; i < m->n_wraps; i++, p += REC_WRAP_RAW_LEN)
        if (memcmp(p, device->b, ID_LEN) == 0) {
            memcpy(out->device_id.b, p, ID_LEN);
            out->key_id = key_get_u32(p + ID_LEN);
            memcpy(out->enc, p + ID_LEN + 4, REC_ENC_LEN);
            memcpy(out->wrapped_key, p + ID_LEN + 4 + REC_ENC_LEN, REC_WRAPPED_LEN);
            return STATUS_OK;
        }
    return STATUS_NOT_FOUND;
}

void rec_msgref_encode(const struct rec_msgref *m, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u64(out, m->seq);
    rec_put_id(out, &m->sender_account);
}

int rec_msgref_decode(const uint8_t *data, size_t len, struct rec_msgref *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->seq = rec_get_u64(&r);
    rec_get_id(&r, &out->sender_account);
    return finish(&r);
}

void rec_receipt_encode(const struct rec_receipt *m, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u64(out, (uint64_t)m->delivered_at);
    rec_put_u64(out, (uint64_t)m->read_at);
}

int rec_receipt_decode(const uint8_t *data, size_t len, struct rec_receipt *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->delivered_at = (int64_t)rec_get_u64(&r);
    out->read_at = (int64_t)rec_get_u64(&r);
    return finish(&r);
}

void rec_sent_encode(const struct rec_sent *s, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_id(out, &s->message_id);
    rec_put_u64(out, s->seq);
    rec_put_u64(out, (uint64_t)s->sent_at);
}

int rec_sent_decode(const uint8_t *data, size_t len, struct rec_sent *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    rec_get_id(&r, &out->message_id);
    out->seq = rec_get_u64(&r);
    out->sent_at = (int64_t)rec_get_u64(&r);
    return finish(&r);
}

void rec_inbox_encode(const struct rec_inbox *i, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u64(out, i->last);
    rec_put_u64(out, i->acked);
    if (i->missed != 0 || i->full_since != 0 || i->counts_in_head) {
        rec_put_u64(out, i->missed);
        rec_put_u64(out, (uint64_t)i->full_since);
    }
    /* Appended only by a head that counts its senders, so that a head of the
     * old layout keeps it, and with it its meaning (counts in
     * CF_INBOX_QUOTAS). */
    if (i->counts_in_head) {
        rec_put_u32(out, i->n_senders);
        if (i->n_senders)
            buf_append(out, i->senders, (size_t)i->n_senders * REC_INBOX_SENDER_SIZE);
    }
}

/* Whether the decoded senders keep the invariants of struct rec_inbox. */
static bool senders_valid(const struct rec_inbox *in) {
    uint64_t items = in->last - in->acked, sum = 0;
    for (uint32_t i = 0; i < in->n_senders; i++) {
        const uint8_t *e = in->senders + (size_t)i * REC_INBOX_SENDER_SIZE;
        uint32_t count = key_get_u32(e + ID_LEN);
        if (count == 0 || (i > 0 && memcmp(e - REC_INBOX_SENDER_SIZE, e, ID_LEN) >= 0))
            return false;
        sum += count; /* at most 2^32 senders of 2^32 each: no overflow */
    }
    return sum <= items;
}

int rec_inbox_decode(const uint8_t *data, size_t len, struct rec_inbox *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->last = rec_get_u64(&r);
    out->acked = rec_get_u64(&r);
    if (out->acked > out->last)
        return STATUS_CORRUPT;
    if (!r.bad && r.p != r.end) {
        out->missed = rec_get_u64(&r);
        out->full_since = (int64_t)rec_get_u64(&r);
    }
    if (!r.bad && r.p != r.end) {
        out->counts_in_head = true;
        out->n_senders = rec_get_u32(&r);
        /* At most one sender per item, and no more than the bytes left:
         * checked before the size is used. */
        if (out->n_senders > out->last - out->acked ||
            out->n_senders > (size_t)(r.end - r.p) / REC_INBOX_SENDER_SIZE)
            return STATUS_CORRUPT;
        out->senders = rec_take(&r, (size_t)out->n_senders * REC_INBOX_SENDER_SIZE);
        if (r.bad || !senders_valid(out))
            return STATUS_CORRUPT;
    }
    return finish(&r);
}

/* The index of `sender` among the head's senders (*found), or where it
 * belongs. */
static uint32_t find_sender(const struct rec_inbox *in, const struct id *sender, bool *found) {
    uint32_t lo = 0, hi = in->n_senders;
    *found = false;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = memcmp(in->senders + (size_t)mid * REC_INBOX_SENDER_SIZE, sender->b, ID_LEN);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t rec_inbox_count(const struct rec_inbox *in, const struct id *sender) {
    bool found;
    uint32_t i = find_sender(in, sender, &found);
    return found ? key_get_u32(in->senders + (size_t)i * REC_INBOX_SENDER_SIZE + ID_LEN) : 0;
}

void rec_inbox_set_count(struct rec_inbox *in, const struct id *sender, uint32_t count,
                         struct buf *space) {
    bool found;
    uint32_t i = find_sender(in, sender, &found);
    if (!found && count == 0)
        return;
    const size_t size = REC_INBOX_SENDER_SIZE, n = in->n_senders, at = (size_t)i * size;
    if (n == 0 || in->senders != space->data) {
        buf_reset(space);
        if (n)
            buf_append(space, in->senders, n * size);
    }
    if (found && count > 0)
        key_put_u32(space->data + at + ID_LEN, count);
    else if (found) {
        memmove(space->data + at, space->data + at + size, (n - i - 1) * size);
        space->len -= size;
        space->data[space->len] = 0; /* as buf keeps it */
        in->n_senders--;
    } else {
        uint8_t e[REC_INBOX_SENDER_SIZE];
        memcpy(e, sender->b, ID_LEN);
        key_put_u32(e + ID_LEN, count);
        buf_append(space, e, size); /* room at the end, then moved into place */
        memmove(space->data + at + size, space->data + at, (n - i) * size);
        memcpy(space->data + at, e, size);
        in->n_senders++;
    }
    in->senders = space->data;
}

void rec_item_encode(const struct rec_item *i, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u32(out, i->kind);
    rec_put_id(out, &i->conversation_id);
    rec_put_u64(out, i->seq);
    rec_put_id(out, &i->message_id);
    rec_put_id(out, &i->account_id);
    rec_put_u32(out, i->receipt_kind);
    rec_put_u64(out, (uint64_t)i->at);
    /* Appended for the new kind only, so that items written before it
     * existed keep their layout. */
    if (i->kind == REC_ITEM_MEMBERSHIP) {
        rec_put_id(out, &i->by_account);
        rec_put_u32(out, i->change);
    }
}

int rec_item_decode(const uint8_t *data, size_t len, struct rec_item *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->kind = rec_get_u32(&r);
    rec_get_id(&r, &out->conversation_id);
    out->seq = rec_get_u64(&r);
    rec_get_id(&r, &out->message_id);
    rec_get_id(&r, &out->account_id);
    out->receipt_kind = rec_get_u32(&r);
    out->at = (int64_t)rec_get_u64(&r);
    if (out->kind == REC_ITEM_MEMBERSHIP) {
        rec_get_id(&r, &out->by_account);
        out->change = rec_get_u32(&r);
    }
    return finish(&r);
}

void rec_channel_encode(const struct rec_channel *c, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_bytes(out, c->name.data, c->name.len);
}

int rec_channel_decode(const uint8_t *data, size_t len, struct rec_channel *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->name = get_bytes(&r);
    if (out->name.len > REC_CHANNEL_NAME_MAX)
        return STATUS_CORRUPT;
    return finish(&r);
}

void rec_urgent_encode(const struct rec_urgent *u, struct buf *out) {
    rec_put_u8(out, REC_CONV_FORMAT);
    rec_put_u64(out, (uint64_t)u->acked_at);
}

int rec_urgent_decode(const uint8_t *data, size_t len, struct rec_urgent *out) {
    memset(out, 0, sizeof *out);
    struct rec_reader r;
    if (!start(&r, data, len))
        return STATUS_CORRUPT;
    out->acked_at = (int64_t)rec_get_u64(&r);
    return finish(&r);
}

/* ---- results ------------------------------------------------------------------------- */

void rec_delivery_add(struct buf *list, const struct id *device, uint64_t pos,
                      const struct rec_item *item) {
    rec_put_id(list, device);
    rec_put_u64(list, pos);
    rec_put_u32(list, item->kind);
    rec_put_id(list, &item->conversation_id);
    rec_put_u64(list, item->seq);
    rec_put_id(list, &item->message_id);
    rec_put_id(list, &item->account_id);
    rec_put_u32(list, item->receipt_kind);
    rec_put_u64(list, (uint64_t)item->at);
    rec_put_id(list, &item->by_account);
    rec_put_u32(list, item->change);
}

void rec_deliveries_finish(const struct buf *list, const struct rec_list_message *message,
                           struct buf *out) {
    rec_put_u32(out, (uint32_t)(list->len / REC_DELIVERY_SIZE));
    if (list->len)
        buf_append(out, list->data, list->len);
    size_t n = message ? message->len : 0;
    CHECK(n <= UINT32_MAX);
    rec_put_u32(out, (uint32_t)n);
    if (n == 0)
        return;
    rec_put_id(out, &message->conv);
    rec_put_u64(out, message->seq);
    buf_append(out, message->data, n);
}

int rec_deliveries_read(const uint8_t *data, size_t len, uint32_t *n, const uint8_t **entries,
                        struct rec_list_message *message) {
    if (len < 4)
        return STATUS_CORRUPT;
    uint32_t count = key_get_u32(data);
    size_t rest = len - 4;
    if (rest / REC_DELIVERY_SIZE < count || rest - (size_t)count * REC_DELIVERY_SIZE < 4)
        return STATUS_CORRUPT;
    const uint8_t *p = data + 4 + (size_t)count * REC_DELIVERY_SIZE;
    rest -= (size_t)count * REC_DELIVERY_SIZE + 4;
    uint32_t m = key_get_u32(p);
    *message = (struct rec_list_message){0};
    if (m > 0) {
        if (rest < ID_LEN + 8 || rest - ID_LEN - 8 < m)
            return STATUS_CORRUPT;
        memcpy(message->conv.b, p + 4, ID_LEN);
        message->seq = key_get_u64(p + 4 + ID_LEN);
        message->data = p + 4 + ID_LEN + 8;
        message->len = m;
    }
    *n = count;
    *entries = data + 4;
    return STATUS_OK;
}

void rec_delivery_get(const uint8_t *entries, uint32_t i, struct id *device, uint64_t *pos,
                      struct rec_item *item) {
    const uint8_t *p = entries + (size_t)i * REC_DELIVERY_SIZE;
    memcpy(device->b, p, ID_LEN);
    *pos = key_get_u64(p + ID_LEN);
    if (!item)
        return;
    struct rec_reader r;
    rec_reader_init(&r, p + ID_LEN + 8, REC_DELIVERY_SIZE - ID_LEN - 8);
    item->kind = rec_get_u32(&r);
    rec_get_id(&r, &item->conversation_id);
    item->seq = rec_get_u64(&r);
    rec_get_id(&r, &item->message_id);
    rec_get_id(&r, &item->account_id);
    item->receipt_kind = rec_get_u32(&r);
    item->at = (int64_t)rec_get_u64(&r);
    rec_get_id(&r, &item->by_account);
    item->change = rec_get_u32(&r);
}

/* ---- cursors --------------------------------------------------------------------------- */

size_t rec_cursor_encode(uint64_t pos, uint8_t out[10]) {
    size_t n = 0;
    do {
        uint8_t byte = pos & 0x7f;
        pos >>= 7;
        out[n++] = pos ? (uint8_t)(byte | 0x80) : byte;
    } while (pos);
    return n;
}

int rec_cursor_decode(const uint8_t *data, size_t len, uint64_t *pos) {
    if (len == 0) {
        *pos = 0;
        return STATUS_OK;
    }
    if (len > 10)
        return STATUS_BAD_REQUEST;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t bits = data[i] & 0x7f;
        bool last = (data[i] & 0x80) == 0;
        if (last != (i == len - 1))
            return STATUS_BAD_REQUEST;
        if (i == 9 && bits > 1)
            return STATUS_BAD_REQUEST;
        v |= bits << (7 * i);
    }
    /* Minimal: no trailing zero group (except the single byte 0). */
    if (len > 1 && data[len - 1] == 0)
        return STATUS_BAD_REQUEST;
    *pos = v;
    return STATUS_OK;
}
