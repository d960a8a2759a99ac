/*
 * client/notify.c: libcarechat's notification settings and push registrations
 * (carechat.h "Notifications"): GetNotificationSettings,
 * SetNotificationSettings, RegisterPush and UnregisterPush.
 *
 * Tokens and endpoints are personal data: they go to the server inside the
 * request and nowhere else (never into an error text). Thread: the caller's
 * (one handle per thread, like the rest of libcarechat).
 */
#include <string.h>

#include "base/status.h"
#include "client/carechat.h"
#include "client/core.h"

static int settings_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
                         struct carechat_notify_settings *out) {
    const struct cc_hint hints[] = {{CARECHAT__V1__STATUS__OK, NULL}};
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, req, CARECHAT__V1__RESPONSE__RESULT_NOTIFICATION_SETTINGS, what, hints,
                        &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__NotificationSettings *ns = resp->response->notification_settings;
    if (ns == NULL) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: malformed answer from the server", what);
    } else {
        out->email = ns->email;
        out->push = ns->push;
        out->quiet_from_min = ns->quiet_from_min;
        out->quiet_until_min = ns->quiet_until_min;
        out->utc_offset_min = ns->utc_offset_min;
    }
    cc_free_response(resp);
    return rc;
}

int carechat_notify_get(struct carechat *c, struct carechat_notify_settings *out) {
    cc_clear_error(c);
    if (out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "notify: no output");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__GetNotificationSettings g;
    carechat__v1__get_notification_settings__init(&g);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_GET_NOTIFICATION_SETTINGS;
    req.get_notification_settings = &g;
    return settings_call(c, &req, "reading the notification settings", out);
}

int carechat_notify_set(struct carechat *c, const struct carechat_notify_settings *in,
                        struct carechat_notify_settings *out) {
    cc_clear_error(c);
    if (in == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "notify: no settings");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__NotificationSettings ns;
    carechat__v1__notification_settings__init(&ns);
    ns.email = in->email;
    ns.push = in->push;
    ns.quiet_from_min = in->quiet_from_min;
    ns.quiet_until_min = in->quiet_until_min;
    ns.utc_offset_min = in->utc_offset_min;
    Carechat__V1__SetNotificationSettings s;
    carechat__v1__set_notification_settings__init(&s);
    s.settings = &ns;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_SET_NOTIFICATION_SETTINGS;
    req.set_notification_settings = &s;
    return settings_call(c, &req, "changing the notification settings", out);
}

int carechat_push_register(struct carechat *c, const struct carechat_push_target *t,
                           struct id *registration_out) {
    cc_clear_error(c);
    const char *what = "registering for push";
    if (t == NULL || registration_out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: no target", what);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__RegisterPush rp;
    Carechat__V1__ApnsToken apns;
    Carechat__V1__FcmToken fcm;
    Carechat__V1__WebPushSubscription wp;
    carechat__v1__register_push__init(&rp);
    switch (t->kind) {
    case CARECHAT_PUSH_APNS:
        carechat__v1__apns_token__init(&apns);
        apns.token = (ProtobufCBinaryData){t->apns_token_len, (uint8_t *)t->apns_token};
        apns.environment = t->apns_sandbox ? CARECHAT__V1__APNS_ENVIRONMENT__APNS_SANDBOX
                                           : CARECHAT__V1__APNS_ENVIRONMENT__APNS_PRODUCTION;
        rp.target_case = CARECHAT__V1__REGISTER_PUSH__TARGET_APNS;
        rp.apns = &apns;
        break;
    case CARECHAT_PUSH_FCM:
        carechat__v1__fcm_token__init(&fcm);
        fcm.token = (char *)t->fcm_token;
        rp.target_case = CARECHAT__V1__REGISTER_PUSH__TARGET_FCM;
        rp.fcm = &fcm;
        break;
    case CARECHAT_PUSH_WEBPUSH:
        carechat__v1__web_push_subscription__init(&wp);
        wp.endpoint = (char *)t->webpush_endpoint;
        wp.p256dh = (ProtobufCBinaryData){sizeof t->webpush_p256dh, (uint8_t *)t->webpush_p256dh};
        wp.auth = (ProtobufCBinaryData){sizeof t->webpush_auth, (uint8_t *)t->webpush_auth};
        rp.target_case = CARECHAT__V1__REGISTER_PUSH__TARGET_WEB_PUSH;
        rp.web_push = &wp;
        break;
    default:
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "%s: unknown kind", what);
    }
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_REGISTER_PUSH;
    req.register_push = &rp;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__BAD_REQUEST, "the token or subscription is not usable"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_PUSH_REGISTRATION, what, hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__PushRegistrationResult *pr = resp->response->push_registration;
    if (pr == NULL ||
        id_from_bytes(pr->registration_id.data, pr->registration_id.len, registration_out) != 0)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: malformed answer from the server", what);
    cc_free_response(resp);
    return rc;
}

int carechat_push_unregister(struct carechat *c, const struct id *registration) {
    cc_clear_error(c);
    if (registration == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "push unregister: no registration id");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__UnregisterPush u;
    carechat__v1__unregister_push__init(&u);
    u.registration_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)registration->b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_UNREGISTER_PUSH;
    req.unregister_push = &u;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such registration (removed already?)"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET, "unregistering from push",
                    hints, &resp);
    cc_free_response(resp);
    return rc;
}
