/*
 * server/notify.c: GetNotificationSettings, SetNotificationSettings,
 * RegisterPush and UnregisterPush (contracts in notify.h). Tokens and
 * endpoints are personal data: they go into the entry and the sealed record,
 * never into a log line or a detail. Loop thread.
 */
#include "server/notify.h"

#include "server/rules.h"

#include <string.h>

#include <sodium.h>

#include "base/clock.h"
#include "base/status.h"
#include "push/job.h"
#include "server/records_notify.h"
#include "storage/keys.h"

/* ---- settings ---------------------------------------------------------------------------- */

static int read_settings(struct handlers *h, const struct id *account,
                         struct rec_notify_settings *out) {
    struct key k;
    rec_key_notify_settings(&k, account);
    struct buf v;
    buf_init(&v);
    int rc = store_get(h->store, CF_OUTBOX, k.b, k.len, &v);
    if (rc == 0)
        rc = rec_notify_settings_decode(v.data, v.len, out);
    else if (rc == STATUS_NOT_FOUND) {
        *out = (struct rec_notify_settings)REC_NOTIFY_SETTINGS_DEFAULT;
        rc = STATUS_OK;
    }
    buf_cleanup(&v);
    return rc;
}

static void answer_settings(struct conn *c, uint64_t rid, const struct rec_notify_settings *s) {
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__NotificationSettings ns;
    proto_response_frame(&frame, &resp, rid, STATUS_OK, NULL);
    carechat__v1__notification_settings__init(&ns);
    ns.email = s->email;
    ns.push = s->push;
    ns.quiet_from_min = s->quiet_from_min;
    ns.quiet_until_min = s->quiet_until_min;
    ns.utc_offset_min = s->utc_offset_min;
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_NOTIFICATION_SETTINGS;
    resp.notification_settings = &ns;
    conn_send(c, &frame);
}

int notify_get_settings(struct req *r) {
    struct rec_notify_settings s;
    if (read_settings(r->h, &r->hc->account, &s) != 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the store");
    answer_settings(r->conn, r->id, &s);
    return STATUS_OK;
}

struct settings_op {
    struct rec_notify_settings s;
};

int notify_set_settings(struct req *r) {
    const Carechat__V1__SetNotificationSettings *m = r->frame->set_notification_settings;
    const Carechat__V1__NotificationSettings *in = m->settings;
    if (!in)
        return req_fail(r, STATUS_BAD_REQUEST, "settings required");
    if (!rules_quiet_valid(in->quiet_from_min, in->quiet_until_min, in->utc_offset_min))
        return req_fail(r, STATUS_BAD_REQUEST,
                        "quiet hours are minutes 0..1439, the UTC offset -720..840");
    struct op *op = op_new(r, sizeof(struct settings_op));
    struct settings_op *so = OP_STATE(op, struct settings_op);
    so->s = (struct rec_notify_settings){.email = in->email,
                                         .push = in->push,
                                         .quiet_from_min = in->quiet_from_min,
                                         .quiet_until_min = in->quiet_until_min,
                                         .utc_offset_min = in->utc_offset_min};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__NotifySettingsSet ns;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__notify_settings_set__init(&ns);
    ns.email = so->s.email;
    ns.push = so->s.push;
    ns.quiet_from_min = so->s.quiet_from_min;
    ns.quiet_until_min = so->s.quiet_until_min;
    ns.utc_offset_min = so->s.utc_offset_min;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_NOTIFY_SETTINGS_SET;
    e.notify_settings_set = &ns;
    return op_propose(op, &e);
}

static int done_status(struct op *op, const struct op_result *res) {
    if (res->status == STATUS_IO || res->status == STATUS_UNAVAILABLE)
        return op_fail(op, STATUS_UNAVAILABLE, "cannot write now");
    if (res->status == STATUS_NOT_FOUND)
        return op_fail(op, STATUS_NOT_FOUND, "no such registration");
    return op_fail(op, res->status, "refused");
}

int notify_set_settings_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status != 0)
        return done_status(op, res);
    answer_settings(op->hc->conn, op->request_id, &OP_STATE(op, struct settings_op)->s);
    return STATUS_OK;
}

/* ---- push registrations ---------------------------------------------------------------- */

struct register_op {
    uint8_t registration_id[ID_LEN];
    /* The destination in the notifier's format, wiped with the op. */
    char token[REC_PUSH_TOKEN_MAX + 1];
    char p256dh[96];
    char auth[32];
};

#define P256DH_LEN 65
#define AUTH_LEN 16

int notify_register_push(struct req *r) {
    const Carechat__V1__RegisterPush *m = r->frame->register_push;
    struct op *op = op_new(r, sizeof(struct register_op));
    struct register_op *ro = OP_STATE(op, struct register_op);
    struct push_job job = {.kind = PUSH_KIND_NEW_MESSAGE, .attempt = 1};
    bool sandbox = false;
    switch (m->target_case) {
    case CARECHAT__V1__REGISTER_PUSH__TARGET_APNS:
        if (!m->apns || m->apns->token.len < 32 || m->apns->token.len > 100)
            return req_fail(r, STATUS_BAD_REQUEST, "an APNs token is 32..100 bytes");
        sodium_bin2hex(ro->token, sizeof ro->token, m->apns->token.data, m->apns->token.len);
        sandbox = m->apns->environment == CARECHAT__V1__APNS_ENVIRONMENT__APNS_SANDBOX;
        job.channel = PUSH_CHANNEL_APNS;
        job.to.apns_token = ro->token;
        job.to.apns_sandbox = sandbox;
        break;
    case CARECHAT__V1__REGISTER_PUSH__TARGET_FCM:
        if (!m->fcm || !m->fcm->token || strlen(m->fcm->token) > PUSH_MAX_FCM_TOKEN)
            return req_fail(r, STATUS_BAD_REQUEST, "an FCM token is 1..4096 bytes");
        memcpy(ro->token, m->fcm->token, strlen(m->fcm->token) + 1);
        job.channel = PUSH_CHANNEL_FCM;
        job.to.fcm_token = ro->token;
        break;
    case CARECHAT__V1__REGISTER_PUSH__TARGET_WEB_PUSH:
        if (!m->web_push || !m->web_push->endpoint ||
            strlen(m->web_push->endpoint) > PUSH_MAX_ENDPOINT ||
            m->web_push->p256dh.len != P256DH_LEN || m->web_push->auth.len != AUTH_LEN)
            return req_fail(r, STATUS_BAD_REQUEST,
                            "a Web Push subscription needs an endpoint, a 65-byte p256dh and a "
                            "16-byte auth");
        memcpy(ro->token, m->web_push->endpoint, strlen(m->web_push->endpoint) + 1);
        sodium_bin2base64(ro->p256dh, sizeof ro->p256dh, m->web_push->p256dh.data, P256DH_LEN,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_bin2base64(ro->auth, sizeof ro->auth, m->web_push->auth.data, AUTH_LEN,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        job.channel = PUSH_CHANNEL_WEBPUSH;
        job.to.webpush_endpoint = ro->token;
        job.to.webpush_p256dh = ro->p256dh;
        job.to.webpush_auth = ro->auth;
        break;
    default:
        return req_fail(r, STATUS_BAD_REQUEST,
                        "an APNs token, FCM token or Web Push "
                        "subscription required");
    }
    if (push_job_check(&job) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "the notifier would not accept this registration");
    randombytes_buf(ro->registration_id, sizeof ro->registration_id);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PushRegister pr;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__push_register__init(&pr);
    pr.registration_id = (ProtobufCBinaryData){ID_LEN, ro->registration_id};
    pr.channel = (uint32_t)job.channel;
    pr.token = ro->token;
    pr.apns_sandbox = sandbox;
    if (job.channel == PUSH_CHANNEL_WEBPUSH) {
        pr.webpush_p256dh = ro->p256dh;
        pr.webpush_auth = ro->auth;
    }
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PUSH_REGISTER;
    e.push_register = &pr;
    return op_propose(op, &e);
}

int notify_register_push_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status != 0)
        return done_status(op, res);
    Carechat__V1__Frame frame;
    Carechat__V1__Response resp;
    Carechat__V1__PushRegistrationResult pr;
    proto_response_frame(&frame, &resp, op->request_id, STATUS_OK, NULL);
    carechat__v1__push_registration_result__init(&pr);
    pr.registration_id =
        (ProtobufCBinaryData){ID_LEN, OP_STATE(op, struct register_op)->registration_id};
    resp.result_case = CARECHAT__V1__RESPONSE__RESULT_PUSH_REGISTRATION;
    resp.push_registration = &pr;
    conn_send(op->hc->conn, &frame);
    return STATUS_OK;
}

/* Finds the registration `reg` among the account's ('R' | account | device |
 * channel). */
struct find_reg {
    struct id reg, device;
    uint8_t channel;
    bool found;
};

static bool visit_reg(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len) {
    struct find_reg *f = ctx;
    struct rec_push_reg g;
    if (key_len != 1 + 2 * ID_LEN + 1 || rec_push_reg_decode(value, value_len, &g) != 0)
        return true;
    if (id_equal(&g.registration, &f->reg)) {
        memcpy(f->device.b, key + 1 + ID_LEN, ID_LEN);
        f->channel = key[1 + 2 * ID_LEN];
        f->found = true;
    }
    rec_push_reg_cleanup(&g);
    return !f->found;
}

struct unregister_op {
    struct id reg;
};

int notify_unregister_push(struct req *r) {
    const Carechat__V1__UnregisterPush *m = r->frame->unregister_push;
    struct find_reg f = {0};
    if (id_from_bytes(m->registration_id.data, m->registration_id.len, &f.reg) != 0)
        return req_fail(r, STATUS_BAD_REQUEST, "registration_id must be 16 bytes");
    struct key prefix;
    key_init(&prefix);
    uint8_t tag = REC_OUTBOX_TAG_REG;
    key_add_bytes(&prefix, &tag, 1);
    key_add_id(&prefix, &r->hc->account);
    int rc = store_scan(r->h->store, CF_OUTBOX, prefix.b, prefix.len, NULL, 0,
                        REC_MAX_DEVICES * REC_CHANNEL_COUNT, visit_reg, &f);
    if (rc < 0)
        return req_fail(r, STATUS_INTERNAL, "cannot read the store");
    if (!f.found)
        return req_fail(r, STATUS_NOT_FOUND, "no such registration");
    struct op *op = op_new(r, sizeof(struct unregister_op));
    OP_STATE(op, struct unregister_op)->reg = f.reg;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PushUnregister pu;
    entry_init(&e, clock_now(), &r->hc->account, &r->hc->device);
    carechat__entry__v1__push_unregister__init(&pu);
    pu.registration_id = (ProtobufCBinaryData){ID_LEN, OP_STATE(op, struct unregister_op)->reg.b};
    pu.device_id = (ProtobufCBinaryData){ID_LEN, f.device.b};
    pu.channel = f.channel;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PUSH_UNREGISTER;
    e.push_unregister = &pu;
    return op_propose(op, &e);
}

int notify_unregister_push_done(struct op *op, const struct op_result *res) {
    if (!op_live(op))
        return STATUS_OK;
    if (res->status != 0)
        return done_status(op, res);
    conn_respond(op->hc->conn, op->request_id, STATUS_OK, NULL);
    return STATUS_OK;
}

/* ---- a device that goes away ------------------------------------------------------------- */

static bool count_reg(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len) {
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    (*(unsigned *)ctx)++;
    return false;
}

void notify_device_left(struct hconn *hc) {
    struct handlers *h = hc->h;
    if (!hc->authenticated || h->draining)
        return;
    for (struct hconn *o = req_device_first(h, &hc->device); o; o = req_device_next(o))
        if (o != hc && o->authenticated)
            return; /* still connected elsewhere */
    struct rec_inbox in;
    if (req_read_inbox(h, &hc->device, &in) != 0 || in.last <= in.acked)
        return;
    struct key prefix;
    key_init(&prefix);
    uint8_t tag = REC_OUTBOX_TAG_REG;
    key_add_bytes(&prefix, &tag, 1);
    key_add_id(&prefix, &hc->account);
    key_add_id(&prefix, &hc->device);
    unsigned regs = 0;
    if (store_scan(h->store, CF_OUTBOX, prefix.b, prefix.len, NULL, 0, 1, count_reg, &regs) < 0 ||
        regs == 0)
        return;
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__PushDeviceLeft left;
    entry_init(&e, clock_now(), &hc->account, &hc->device);
    carechat__entry__v1__push_device_left__init(&left);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_PUSH_DEVICE_LEFT;
    e.push_device_left = &left;
    struct buf b;
    buf_init(&b);
    /* Best effort: a lost hint only means no push for this departure. */
    if (proto_entry_encode(&e, &b) == 0)
        (void)journal_append(h->journal, b.data, b.len, NULL, NULL);
    buf_cleanup(&b);
}
