/*
 * server/devices.c: PublishDeviceList, ListDevices, RemoveDevice,
 * RotateEncryptionKey and LookupAccount.
 *
 * Writes (publish, remove, rotate) check the request here (signatures with
 * rules.h, against the records in the store) and propose an entry that apply
 * re-checks; the answer is the account's stored device list (DeviceListResult)
 * read after apply. Reads are bounded: ListDevices takes at most 64 accounts
 * of at most REC_MAX_DEVICES devices each. Visibility follows rules_may_see()
 * (and members of a conversation see each other: req_share_conversation()):
 * an account the caller may not see is answered exactly like an unknown one
 * (NOT_FOUND). Loop thread.
 */
#include "server/devices.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/status.h"
#include "server/rules.h"
#include "storage/keys.h"

#define LIST_DEVICES_MAX_ACCOUNTS 64

/* The account and device a device request is about: the answer is the
 * account's stored list; a removed device's connections are revoked. */
struct device_op {
    struct id account, device;
    bool removed;
};

/* ---- building DeviceList / DeviceInfo messages ----------------------------- */

/* Storage for one account's DeviceList message; borrows from the record. */
struct list_msg {
    Carechat__V1__DeviceList list;
    Carechat__V1__DeviceListEntry entries[REC_LIST_MAX];
    Carechat__V1__DeviceListEntry *ptrs[REC_LIST_MAX];
};

static void list_from_record(const struct id *account, const struct rec_account *a,
                             struct list_msg *m) {
    carechat__v1__device_list__init(&m->list);
    m->list.account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)account->b};
    m->list.version = a->list_version;
    for (uint32_t i = 0; i < a->n_list; i++) {
        carechat__v1__device_list_entry__init(&m->entries[i]);
        m->entries[i].device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)a->list[i].device_id.b};
        m->entries[i].identity_key =
            (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)a->list[i].identity_key};
        m->ptrs[i] = &m->entries[i];
    }
    m->list.n_devices = a->n_list;
    m->list.devices = m->ptrs;
    if (a->list_version > 0) {
        m->list.signer_device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)a->list_signer.b};
        m->list.signature = (ProtobufCBinaryData){REC_SIG_LEN, (uint8_t *)a->list_signature};
    }
    if (a->list_version > 1)
        m->list.prev_list_hash = (ProtobufCBinaryData){REC_HASH_LEN, (uint8_t *)a->list_prev_hash};
}

/* Answers with the account's stored device list. Returns 0 or a store status. */
static int respond_device_list(struct handlers *h, struct conn *c, uint64_t rid,
                               const struct id *account) {
    struct rec_account a;
    int rc = req_read_account(h, account, &a);
    if (rc != 0)
        return rc;
    struct list_msg *m = xmalloc(sizeof *m);
    list_from_record(account, &a, m);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__DeviceListResult r;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__device_list_result__init(&r);
    r.list = &m->list;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST;
    resp.device_list = &r;
    conn_send(c, &frame);
    free(m);
    rec_account_cleanup(&a);
    return STATUS_OK;
}

int devices_done(struct op *op, const struct op_result *res) {
    struct device_op *d = OP_STATE(op, struct device_op);
    if (res->status != 0) {
        const char *detail = "refused";
        switch (res->status) {
        case STATUS_CONFLICT:
            detail = d->removed
                         ? "cannot remove the last device"
                         : "version is not the next one, or the list is not the account's devices";
            break;
        case STATUS_NOT_FOUND:
            detail = "no such device";
            break;
        case STATUS_BAD_REQUEST:
            detail = "bad signature, key id or expiry";
            break;
        case STATUS_FORBIDDEN:
            detail = "the signer must be the calling device";
            break;
        default:
            break;
        }
        return op_fail(op, res->status == STATUS_IO ? STATUS_UNAVAILABLE : res->status, detail);
    }
    /* The answer first: a device that removed itself hears it before its
     * connection is revoked with the others. */
    int rc = op_live(op) ? respond_device_list(op->hc->h, op->hc->conn, op->request_id, &d->account)
                         : STATUS_OK;
    if (d->removed)
        req_revoke(op->hc->h, NULL, &d->device, CARECHAT__V1__REVOKE_REASON__DEVICE_REMOVED, NULL);
    return rc;
}

static struct op *device_op_new(struct req *r, const struct id *device, bool removed) {
    struct op *op = op_new(r, sizeof(struct device_op));
    struct device_op *d = OP_STATE(op, struct device_op);
    d->account = r->hc->account;
    d->device = *device;
    d->removed = removed;
    return op;
}

/* ---- PublishDeviceList -------------------------------------------------------- */

int devices_publish_list(struct req *r) {
    struct hconn *hc = r->hc;
    const Carechat__V1__DeviceList *l = r->frame->publish_device_list->list;
    struct id account, signer;
    if (!l || id_from_bytes(l->account_id.data, l->account_id.len, &account) != 0 ||
        id_from_bytes(l->signer_device_id.data, l->signer_device_id.len, &signer) != 0 ||
        l->signature.len != REC_SIG_LEN || l->version == 0)
        return req_fail(r, STATUS_BAD_REQUEST, "malformed device list");
    if (l->n_devices > REC_LIST_MAX)
        return req_fail(r, STATUS_TOO_LARGE, "at most 32 devices");
    if (!id_equal(&account, &hc->account) || !id_equal(&signer, &hc->device))
        return req_deny(r, STATUS_FORBIDDEN, "sign your own account's list with this device", NULL,
                        0);
    struct rec_list_item items[REC_LIST_MAX];
    for (size_t i = 0; i < l->n_devices; i++) {
        const Carechat__V1__DeviceListEntry *en = l->devices[i];
        if (id_from_bytes(en->device_id.data, en->device_id.len, &items[i].device_id) != 0 ||
            en->identity_key.len != REC_KEY_LEN)
            return req_fail(r, STATUS_BAD_REQUEST, "malformed device list entry");
        memcpy(items[i].identity_key, en->identity_key.data, REC_KEY_LEN);
    }
    /* The chain: the next version after the stored list, naming its hash,
     * signed by one of its devices (a new device is approved by an old one). */
    struct rec_account a;
    int rc = req_read_account(r->h, &account, &a);
    if (rc != 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the account");
    uint8_t stored_hash[REC_HASH_LEN];
    rules_device_list_hash(&account, a.list_version, a.list, a.n_list, a.list_prev_hash,
                           stored_hash);
    const uint8_t *signer_key = NULL;
    uint8_t key_copy[REC_KEY_LEN];
    rc = rules_device_list_follows(a.list_version, stored_hash, a.list, a.n_list, a.list_reset,
                                   l->version, l->prev_list_hash.data, l->prev_list_hash.len,
                                   &signer, items, l->n_devices, &signer_key);
    if (signer_key != NULL)
        memcpy(key_copy, signer_key, REC_KEY_LEN);
    rec_account_cleanup(&a);
    if (rc == STATUS_FORBIDDEN)
        return req_deny(r, rc, "the signer must be a device of the current list", NULL, 0);
    if (rc != 0)
        return req_fail(r, rc, "not the next version of the stored list");
    rc = rules_verify_device_list(&account, l->version, items, l->n_devices,
                                  l->prev_list_hash.len ? l->prev_list_hash.data : NULL, key_copy,
                                  l->signature.data);
    if (rc != 0)
        return req_fail(r, rc, "bad device list signature or duplicate devices");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DeviceListPublish p;
    Carechat__Entry__V1__DeviceListItem its[REC_LIST_MAX], *ptrs[REC_LIST_MAX];
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__device_list_publish__init(&p);
    for (size_t i = 0; i < l->n_devices; i++) {
        carechat__entry__v1__device_list_item__init(&its[i]);
        its[i].device_id = (ProtobufCBinaryData){ID_LEN, items[i].device_id.b};
        its[i].identity_key = (ProtobufCBinaryData){REC_KEY_LEN, items[i].identity_key};
        ptrs[i] = &its[i];
    }
    p.version = l->version;
    p.n_devices = l->n_devices;
    p.devices = ptrs;
    p.signer_device_id = l->signer_device_id;
    p.signature = l->signature;
    p.prev_list_hash = l->prev_list_hash;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DEVICE_LIST_PUBLISH;
    e.device_list_publish = &p;
    return op_propose(device_op_new(r, &hc->device, false), &e);
}

/* ---- RemoveDevice ---------------------------------------------------------------- */

int devices_remove(struct req *r) {
    const Carechat__V1__RemoveDevice *m = r->frame->remove_device;
    struct id device;
    if (id_from_bytes(m->device_id.data, m->device_id.len, &device) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "device_id must be 16 bytes");
    struct op *op = device_op_new(r, &device, true);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DeviceRemove rm;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__device_remove__init(&rm);
    rm.device_id = (ProtobufCBinaryData){ID_LEN, OP_STATE(op, struct device_op)->device.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DEVICE_REMOVE;
    e.device_remove = &rm;
    return op_propose(op, &e);
}

/* ---- RenameDevice ---------------------------------------------------------------- */

int devices_rename(struct req *r) {
    const Carechat__V1__RenameDevice *m = r->frame->rename_device;
    struct id device;
    if (id_from_bytes(m->device_id.data, m->device_id.len, &device) != 0 ||
        !rules_label_ok(m->label))
        return req_fail(r, STATUS_BAD_REQUEST,
                        "device_id of 16 bytes and a label of 1..64 bytes of UTF-8 without "
                        "control characters");
    struct op *op = device_op_new(r, &device, false);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DeviceRename rn;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__device_rename__init(&rn);
    rn.device_id = (ProtobufCBinaryData){ID_LEN, OP_STATE(op, struct device_op)->device.b};
    rn.label = m->label;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DEVICE_RENAME;
    e.device_rename = &rn;
    return op_propose(op, &e);
}

/* ---- RotateEncryptionKey ------------------------------------------------------------ */

int devices_rotate_key(struct req *r) {
    struct hconn *hc = r->hc;
    const Carechat__V1__DeviceKeys *k = r->frame->rotate_encryption_key->keys;
    int64_t now = clock_now();
    struct id device;
    if (!k || id_from_bytes(k->device_id.data, k->device_id.len, &device) != 0 ||
        k->identity_key.len != REC_KEY_LEN || k->encryption_key.len != REC_KEY_LEN ||
        k->signature.len != REC_SIG_LEN)
        return req_fail(r, STATUS_BAD_REQUEST, "malformed keys");
    if (!id_equal(&device, &hc->device))
        return req_deny(r, STATUS_FORBIDDEN, "keys of another device", NULL, 0);
    struct rec_device dev;
    int rc = req_read_device(r->h, &hc->account, &hc->device, &dev);
    if (rc != 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the device");
    bool ok =
        memcmp(dev.identity_key, k->identity_key.data, REC_KEY_LEN) == 0 &&
        k->encryption_key_id > dev.encryption_key_id && k->encryption_key_expires_at > now &&
        rules_verify_key_signature(dev.identity_key, k->encryption_key.data, k->encryption_key_id,
                                   k->encryption_key_expires_at, k->signature.data) == 0;
    rec_device_cleanup(&dev);
    if (!ok)
        return req_fail(r, STATUS_BAD_REQUEST,
                        "bad signature, identity key, key id not higher, or expired");
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__KeyRotate kr;
    entry_init(&e, now, &hc->account, &hc->device);
    carechat__entry__v1__key_rotate__init(&kr);
    kr.encryption_key = k->encryption_key;
    kr.encryption_key_id = k->encryption_key_id;
    kr.encryption_key_expires_at = k->encryption_key_expires_at;
    kr.signature = k->signature;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_KEY_ROTATE;
    e.key_rotate = &kr;
    return op_propose(device_op_new(r, &hc->device, false), &e);
}

/* ---- ListDevices ---------------------------------------------------------------------- */

struct device_collect {
    struct handlers *h;
    const struct id *account;
    bool own;
    size_t n;
    Carechat__V1__DeviceInfo infos[REC_MAX_DEVICES];
    Carechat__V1__DeviceKeys keys[REC_MAX_DEVICES];
    Carechat__V1__DeviceInfo *ptrs[REC_MAX_DEVICES];
    struct rec_device recs[REC_MAX_DEVICES];
    struct id ids[REC_MAX_DEVICES];
    bool bad;
};

static bool collect_device(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                           size_t value_len) {
    struct device_collect *dc = ctx;
    if (dc->n >= REC_MAX_DEVICES)
        return false;
    size_t i = dc->n;
    if (key_read_id(key, key_len, ID_LEN, &dc->ids[i]) != 0 ||
        rec_device_decode(value, value_len, &dc->recs[i]) != 0) {
        dc->bad = true;
        return false;
    }
    const struct rec_device *d = &dc->recs[i];
    Carechat__V1__DeviceKeys *k = &dc->keys[i];
    carechat__v1__device_keys__init(k);
    k->device_id = (ProtobufCBinaryData){ID_LEN, dc->ids[i].b};
    k->identity_key = (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)d->identity_key};
    k->encryption_key = (ProtobufCBinaryData){REC_KEY_LEN, (uint8_t *)d->encryption_key};
    k->encryption_key_id = d->encryption_key_id;
    k->encryption_key_expires_at = d->encryption_key_expires_at;
    k->signature = (ProtobufCBinaryData){REC_SIG_LEN, (uint8_t *)d->signature};
    Carechat__V1__DeviceInfo *info = &dc->infos[i];
    carechat__v1__device_info__init(info);
    info->keys = k;
    info->label = dc->own ? d->label : "";
    info->created_at = d->created_at;
    struct rec_inbox in;
    if (req_read_inbox(dc->h, &dc->ids[i], &in) != 0) {
        dc->bad = true;
        return false;
    }
    info->inbox_full_since = in.full_since;
    info->missed_messages = in.missed;
    dc->ptrs[i] = info;
    dc->n++;
    return true;
}

int devices_list(struct req *r) {
    struct handlers *h = r->h;
    struct hconn *hc = r->hc;
    const Carechat__V1__ListDevices *m = r->frame->list_devices;
    if (m->n_account_ids > LIST_DEVICES_MAX_ACCOUNTS)
        return req_fail(r, STATUS_TOO_LARGE, "at most 64 accounts");
    size_t n = m->n_account_ids;
    struct id *ids = xcalloc(n ? n : 1, sizeof *ids);
    struct rec_account *accts = xcalloc(n ? n : 1, sizeof *accts);
    struct list_msg *lists = xcalloc(n ? n : 1, sizeof *lists);
    struct device_collect *dcs = xcalloc(n ? n : 1, sizeof *dcs);
    Carechat__V1__AccountDevices *ads = xcalloc(n ? n : 1, sizeof *ads);
    Carechat__V1__AccountDevices **adp = xcalloc(n ? n : 1, sizeof *adp);
    size_t loaded = 0;
    int status = STATUS_OK;
    for (size_t i = 0; i < n; i++) {
        if (id_from_bytes(m->account_ids[i].data, m->account_ids[i].len, &ids[i]) != 0) {
            status = req_fail(r, STATUS_BAD_REQUEST, "account ids must be 16 bytes");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int rc = req_read_account(h, &ids[i], &accts[i]);
        if (rc != 0) {
            status = req_deny(r, rc, "unknown account", NULL, 0);
            goto out;
        }
        loaded++;
        bool own = id_equal(&ids[i], &hc->account);
        if (!rules_may_see(hc->role, accts[i].role, own) &&
            !req_share_conversation(h, &hc->account, &ids[i])) {
            status = req_deny(r, STATUS_NOT_FOUND, "unknown account", NULL, 0);
            goto out;
        }
        list_from_record(&ids[i], &accts[i], &lists[i]);
        dcs[i].h = h;
        dcs[i].account = &ids[i];
        dcs[i].own = own;
        /* A deactivated account is no recipient: no keys to wrap for. */
        rc = !accts[i].active ? 0
                              : store_scan(h->store, CF_DEVICES, ids[i].b, ID_LEN, NULL, 0,
                                           REC_MAX_DEVICES, collect_device, &dcs[i]);
        if (rc < 0 || dcs[i].bad) {
            status = req_fail(r, STATUS_INTERNAL, "cannot read devices");
            goto out;
        }
        carechat__v1__account_devices__init(&ads[i]);
        ads[i].account_id = (ProtobufCBinaryData){ID_LEN, ids[i].b};
        ads[i].list = &lists[i].list;
        ads[i].n_devices = dcs[i].n;
        ads[i].devices = dcs[i].ptrs;
        ads[i].list_reset_at = accts[i].list_reset ? accts[i].list_reset_at : 0;
        adp[i] = &ads[i];
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__DeviceBundles bundles;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__device_bundles__init(&bundles);
    bundles.n_accounts = n;
    bundles.accounts = adp;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_DEVICE_BUNDLES;
    resp.device_bundles = &bundles;
    conn_send(r->conn, &frame);
out:
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dcs[i].n; j++)
            rec_device_cleanup(&dcs[i].recs[j]);
    }
    for (size_t i = 0; i < loaded; i++)
        rec_account_cleanup(&accts[i]);
    free(adp);
    free(ads);
    free(dcs);
    free(lists);
    free(accts);
    free(ids);
    return status;
}

/* ---- LookupAccount ------------------------------------------------------------------------ */

int devices_lookup_account(struct req *r) {
    struct handlers *h = r->h;
    struct hconn *hc = r->hc;
    char email[RULES_EMAIL_MAX + 1];
    if (rules_normalize_email(r->frame->lookup_account->email, email) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "malformed email");
    if (!ratelimit_take(h->rl_lookup, hc->account.b, ID_LEN, clock_monotonic_ms()))
        return req_fail(r, STATUS_RATE_LIMITED, "too many lookups, retry later");
    uint8_t index[REC_HASH_LEN];
    store_blind_index(h->store, email, strlen(email), index);
    struct id id;
    struct rec_account a;
    int rc = req_find_email(h, index, &id);
    if (rc == 0)
        rc = req_read_account(h, &id, &a);
    if (rc != 0)
        return req_deny(r, rc, "no such account", NULL, 0);
    bool self = id_equal(&id, &hc->account);
    if (!rules_may_see(hc->role, a.role, self) && !req_share_conversation(h, &hc->account, &id)) {
        rec_account_cleanup(&a);
        return req_deny(r, STATUS_NOT_FOUND, "no such account", NULL, 0);
    }
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__AccountSummary s;
    proto_response_frame(&frame, &resp, r->id, STATUS_OK, NULL);
    carechat__v1__account_summary__init(&s);
    s.account_id = (ProtobufCBinaryData){ID_LEN, id.b};
    s.role = (Carechat__V1__Role)a.role;
    s.display_name = a.display_name;
    s.active = a.active;
    if (hc->role == REC_ROLE_ADMIN || hc->role == REC_ROLE_SYSADMIN)
        s.email = a.email;
    s.created_at = a.created_at;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_ACCOUNT;
    resp.account = &s;
    conn_send(r->conn, &frame);
    rec_account_cleanup(&a);
    return STATUS_OK;
}

/* ---- ResetDeviceList ------------------------------------------------------------------------ */

int devices_reset_list(struct req *r) {
    struct id account;
    const Carechat__V1__ResetDeviceList *m = r->frame->reset_device_list;
    if (id_from_bytes(m->account_id.data, m->account_id.len, &account) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "account_id must be 16 bytes");
    struct op *op = op_new(r, sizeof(struct device_op));
    struct device_op *d = OP_STATE(op, struct device_op);
    d->account = account;
    op->has_object = true;
    op->object = account;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__DeviceListReset rs;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__device_list_reset__init(&rs);
    rs.account_id = (ProtobufCBinaryData){ID_LEN, d->account.b};
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DEVICE_LIST_RESET;
    e.device_list_reset = &rs;
    return op_propose(op, &e);
}

int devices_reset_list_done(struct op *op, const struct op_result *res) {
    if (res->status != 0)
        return op_fail(op, res->status == STATUS_IO ? STATUS_UNAVAILABLE : res->status,
                       res->status == STATUS_NOT_FOUND ? "no such account" : "refused");
    if (op_live(op))
        conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}
