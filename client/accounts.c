/*
 * client/accounts.c: libcarechat's account, session and device calls
 * (carechat.h): Login, Register, Invite, the account's devices, LookupAccount
 * and Logout, over the core (client/core.h) which resumes sessions and
 * publishes the device list.
 *
 * Passwords are borrowed for one request and never stored; the new device's
 * keys are saved in the profile before any server learns of them. Runs on the
 * caller's thread only.
 */
#include "client/carechat.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/status.h"
#include "client/backup_sync.h"
#include "client/core.h"
#include "client/envelope.h"
#include "client/hpke.h"
#include "client/profile.h"
#include "client/statement.h"
#include "protocol/proto.h"

static const char *const role_names[] = {"unspecified", "patient", "provider", "admin", "sysadmin"};

const char *carechat_role_name(enum carechat_role role) {
    if (role < CARECHAT_ROLE_UNSPECIFIED || role > CARECHAT_ROLE_SYSADMIN)
        return role_names[0];
    return role_names[role];
}

int carechat_role_parse(const char *name, enum carechat_role *out) {
    for (int r = CARECHAT_ROLE_PATIENT; r <= CARECHAT_ROLE_SYSADMIN; r++) {
        if (strcmp(name, role_names[r]) == 0) {
            *out = (enum carechat_role)r;
            return 0;
        }
    }
    return STATUS_BAD_REQUEST;
}

/* Generates the device's keys if the profile has none, and saves them before
 * any server learns of them. */
static int ensure_keys(struct carechat *c) {
    struct profile *p = c->profile;
    if (p->has_keys)
        return 0;
    struct envelope_identity *identity = NULL;
    CHECK(envelope_identity_new(&identity) == 0);
    envelope_identity_export(identity, p->identity_seed);
    envelope_identity_free(identity);
    uint8_t pk[HPKE_PK_LEN];
    hpke_keypair(pk, p->encryption_secret);
    p->encryption_key_id = 1;
    p->encryption_key_expires_at = clock_now() + CARECHAT_ENCRYPTION_KEY_LIFETIME_MS;
    p->has_keys = true;
    return cc_save_profile(c);
}

int carechat_session(const struct carechat *c, struct carechat_session_info *out) {
    if (!c->have_info)
        return STATUS_UNAUTHENTICATED;
    *out = c->info;
    return 0;
}

/* A DeviceRegistration of this device's keys, built in `reg` and `keys_msg`
 * (which point into `keys`). */
static void device_registration(struct carechat *c, struct cc_own_keys *keys,
                                Carechat__V1__DeviceKeys *keys_msg,
                                Carechat__V1__DeviceRegistration *reg) {
    cc_own_keys(c->profile, keys, NULL);
    carechat__v1__device_keys__init(keys_msg);
    keys_msg->identity_key = (ProtobufCBinaryData){ENVELOPE_SIGN_PK_LEN, keys->identity_pk};
    keys_msg->encryption_key = (ProtobufCBinaryData){CARECHAT_KEY_LEN, keys->encryption_pk};
    keys_msg->encryption_key_id = c->profile->encryption_key_id;
    keys_msg->encryption_key_expires_at = c->profile->encryption_key_expires_at;
    keys_msg->signature = (ProtobufCBinaryData){ENVELOPE_SIG_LEN, keys->signature};
    carechat__v1__device_registration__init(reg);
    reg->keys = keys_msg;
    reg->label = c->device_label;
}

int carechat_login(struct carechat *c, const char *email, const char *password) {
    return carechat_login_2fa(c, email, password, NULL);
}

int carechat_login_2fa(struct carechat *c, const char *email, const char *password,
                       const char *second_factor) {
    cc_clear_error(c);
    if (email == NULL || password == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "login: email and password are required");
    int rc = ensure_keys(c);
    if (rc == 0)
        rc = cc_connect_fresh(c);
    if (rc != 0)
        return rc;
    struct profile *p = c->profile;
    const bool existing = p->has_device;
    struct cc_own_keys keys;
    Carechat__V1__DeviceKeys keys_msg;
    Carechat__V1__DeviceRegistration reg;
    Carechat__V1__Login login;
    carechat__v1__login__init(&login);
    login.email = (char *)email;
    login.password = (char *)password;
    login.stay_signed_in = c->stay_signed_in;
    if (second_factor)
        login.second_factor = (char *)second_factor;
    if (existing) {
        login.device_case = CARECHAT__V1__LOGIN__DEVICE_DEVICE_ID;
        login.device_id = (ProtobufCBinaryData){ID_LEN, p->device_id.b};
    } else {
        device_registration(c, &keys, &keys_msg, &reg);
        login.device_case = CARECHAT__V1__LOGIN__DEVICE_NEW_DEVICE;
        login.new_device = &reg;
    }
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LOGIN;
    req.login = &login;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__UNAUTHENTICATED,
         "wrong email or password (or the account is deactivated)"},
        {CARECHAT__V1__STATUS__NOT_FOUND,
         existing ? "this profile's device is not a device of that account (removed, or "
                    "another account's profile): use a fresh --profile"
                  : NULL},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_SESSION, "login", hints, &resp);
    if (rc != 0)
        return rc;
    rc = cc_take_session(c, resp->response->session, true, "login");
    cc_free_response(resp);
    if (rc == 0 && !c->info.must_enrol_second_factor)
        rc = cc_ensure_published(c);
    if (rc == 0 && !c->info.must_enrol_second_factor)
        rc = cc_maintain_keys(c);
    return rc;
}

int carechat_register(struct carechat *c, const char *code, const char *email, const char *password,
                      const char *birthdate, const char *display_name) {
    cc_clear_error(c);
    if (code == NULL || email == NULL || password == NULL || birthdate == NULL ||
        display_name == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "register: code, email, password, birthdate and name are required");
    if (c->profile->has_device)
        return cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_PROFILE,
                       "register: this profile already holds a device of an account; "
                       "use another --profile");
    int rc = ensure_keys(c);
    if (rc == 0)
        rc = cc_connect_fresh(c);
    if (rc != 0)
        return rc;
    struct cc_own_keys keys;
    Carechat__V1__DeviceKeys keys_msg;
    Carechat__V1__DeviceRegistration reg;
    device_registration(c, &keys, &keys_msg, &reg);
    Carechat__V1__Register r;
    carechat__v1__register__init(&r);
    r.code = (char *)code;
    r.email = (char *)email;
    r.password = (char *)password;
    r.birth_date = (char *)birthdate;
    r.display_name = (char *)display_name;
    r.device = &reg;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_REGISTER;
    req.register_ = &r;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "refused: you must be at least 13 years old to register"},
        {CARECHAT__V1__STATUS__NOT_FOUND,
         "unknown, used or expired invitation code, or not the invited email"},
        {CARECHAT__V1__STATUS__BAD_REQUEST,
         "invalid input (the password's length, birthdate YYYY-MM-DD, name 1..128 bytes)"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_SESSION, "register", hints, &resp);
    if (rc != 0)
        return rc;
    rc = cc_take_session(c, resp->response->session, true, "register");
    cc_free_response(resp);
    if (rc == 0 && !c->info.must_enrol_second_factor)
        rc = cc_ensure_published(c);
    return rc;
}

int carechat_invite(struct carechat *c, const char *email, enum carechat_role role,
                    char code_out[CARECHAT_MAX_CODE + 1], int64_t *expires_at) {
    cc_clear_error(c);
    if (email == NULL || role < CARECHAT_ROLE_PATIENT || role > CARECHAT_ROLE_SYSADMIN)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "invite: an email and a role are required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__Invite inv;
    carechat__v1__invite__init(&inv);
    inv.email = (char *)email;
    inv.role = (Carechat__V1__Role)role;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_INVITE;
    req.invite = &inv;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__FORBIDDEN, "your role may not invite this role"},
        {CARECHAT__V1__STATUS__CONFLICT, "an account with this email already exists"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_INVITE, "invite", hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__InviteResult *ir = resp->response->invite;
    size_t n = ir->code != NULL ? strlen(ir->code) : 0;
    /* No code: the server mailed it to the invitee (issue 11). */
    bool ok = n == 0 || (n >= 16 && n <= CARECHAT_MAX_CODE);
    for (size_t i = 0; ok && i < n; i++)
        ok = ir->code[i] > 0x20 && ir->code[i] < 0x7f;
    if (!ok) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "invite: malformed code from the server");
    } else {
        memcpy(code_out, ir->code, n + 1);
        if (expires_at != NULL)
            *expires_at = ir->expires_at;
    }
    cc_free_response(resp);
    return rc;
}

static bool key_valid(const Carechat__V1__DeviceKeys *k, int64_t now) {
    uint8_t statement[STATEMENT_ENCRYPTION_KEY_LEN];
    statement_encryption_key(k->encryption_key.data, k->encryption_key_id,
                             k->encryption_key_expires_at, statement);
    return envelope_signature_verify(k->identity_key.data, statement, sizeof statement,
                                     k->signature.data) == 0 &&
           k->encryption_key_expires_at > now && k->encryption_key_id != 0;
}

int carechat_devices(struct carechat *c, struct carechat_devices **out) {
    cc_clear_error(c);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    const char *what = "listing devices";
    Carechat__V1__Frame *resp = NULL;
    const Carechat__V1__AccountDevices *acct = NULL;
    rc = cc_list_own_devices(c, what, &resp, &acct);
    if (rc != 0)
        return rc;
    struct statement_device entries[STATEMENT_MAX_DEVICES];
    size_t n_entries = 0;
    rc = cc_verify_list(c, &c->profile->account_id, acct->list, entries, &n_entries, NULL);
    if (rc == 0 && acct->n_devices > STATEMENT_MAX_DEVICES)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: too many devices in the answer", what);
    if (rc != 0) {
        cc_free_response(resp);
        return rc;
    }
    struct carechat_devices *d = xcalloc(1, sizeof *d);
    d->list_version = acct->list != NULL ? acct->list->version : 0;
    d->devices = xcalloc(acct->n_devices + 1, sizeof *d->devices);
    const int64_t now = clock_now();
    for (size_t i = 0; i < acct->n_devices; i++) {
        const Carechat__V1__DeviceInfo *info = acct->devices[i];
        const Carechat__V1__DeviceKeys *k = info->keys;
        struct carechat_device *dev = &d->devices[d->n];
        if (k == NULL || id_from_bytes(k->device_id.data, k->device_id.len, &dev->device_id) != 0 ||
            k->identity_key.len != CARECHAT_KEY_LEN || k->encryption_key.len != CARECHAT_KEY_LEN ||
            k->signature.len != ENVELOPE_SIG_LEN) {
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "%s: malformed device keys from the server", what);
            break;
        }
        memcpy(dev->identity_key, k->identity_key.data, CARECHAT_KEY_LEN);
        memcpy(dev->encryption_key, k->encryption_key.data, CARECHAT_KEY_LEN);
        dev->encryption_key_id = k->encryption_key_id;
        dev->encryption_key_expires_at = k->encryption_key_expires_at;
        dev->created_at = info->created_at;
        cc_copy_text(dev->label, sizeof dev->label, info->label);
        dev->this_device = memcmp(dev->device_id.b, c->profile->device_id.b, ID_LEN) == 0;
        for (size_t j = 0; j < n_entries; j++)
            if (memcmp(entries[j].device_id.b, dev->device_id.b, ID_LEN) == 0 &&
                memcmp(entries[j].identity_key, dev->identity_key, CARECHAT_KEY_LEN) == 0)
                dev->listed = true;
        dev->key_valid = key_valid(k, now);
        d->n++;
    }
    cc_free_response(resp);
    if (rc != 0) {
        carechat_devices_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void carechat_devices_free(struct carechat_devices *d) {
    if (d == NULL)
        return;
    free(d->devices);
    free(d);
}

int carechat_lookup(struct carechat *c, const char *email, struct carechat_account *out) {
    cc_clear_error(c);
    if (email == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "lookup: an email is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__LookupAccount la;
    carechat__v1__lookup_account__init(&la);
    la.email = (char *)email;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LOOKUP_ACCOUNT;
    req.lookup_account = &la;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no account you may contact has this email"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_ACCOUNT, "lookup", hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__AccountSummary *a = resp->response->account;
    struct carechat_account acc;
    memset(&acc, 0, sizeof acc);
    if (id_from_bytes(a->account_id.data, a->account_id.len, &acc.account_id) != 0) {
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "lookup: malformed account from the server");
    } else {
        acc.role = a->role >= CARECHAT__V1__ROLE__PATIENT && a->role <= CARECHAT__V1__ROLE__SYSADMIN
                       ? (enum carechat_role)a->role
                       : CARECHAT_ROLE_UNSPECIFIED;
        cc_copy_text(acc.display_name, sizeof acc.display_name, a->display_name);
        cc_copy_text(acc.email, sizeof acc.email, a->email);
        acc.active = a->active;
        *out = acc;
    }
    cc_free_response(resp);
    return rc;
}

int carechat_change_password(struct carechat *c, const char *current, const char *next) {
    cc_clear_error(c);
    if (!current || !next || !*current || !*next)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "password change: the current and the new password are required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__ChangePassword cp;
    carechat__v1__change_password__init(&cp);
    cp.current_password = (char *)current;
    cp.new_password = (char *)next;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_CHANGE_PASSWORD;
    req.change_password = &cp;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_call(c, &req, "password change", &resp);
    if (rc != 0)
        return rc;
    if (resp->response->status != CARECHAT__V1__STATUS__OK)
        rc = cc_refused(c, resp->response, "password change",
                        resp->response->status == CARECHAT__V1__STATUS__UNAUTHENTICATED
                            ? "the current password is wrong"
                            : NULL);
    cc_free_response(resp);
    return rc;
}

/* RemoveDevice of `device`: answered with the stored list. */
static int remove_device(struct carechat *c, const struct id *device, const char *what) {
    Carechat__V1__RemoveDevice rm;
    carechat__v1__remove_device__init(&rm);
    rm.device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)device->b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_REMOVE_DEVICE;
    req.remove_device = &rm;
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST, what, NULL, &resp);
    if (rc == 0)
        cc_free_response(resp);
    return rc;
}

int carechat_remove_device(struct carechat *c, const struct id *device) {
    cc_clear_error(c);
    const char *what = "removing the device";
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    if (id_equal(device, &c->profile->device_id))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "%s: that is this device (carechat logout --forget-device)", what);
    rc = cc_unlist(c, device, true, what);
    return rc != 0 ? rc : remove_device(c, device, what);
}

int carechat_rename_device(struct carechat *c, const struct id *device, const char *label) {
    cc_clear_error(c);
    const char *what = "renaming the device";
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__RenameDevice rn;
    carechat__v1__rename_device__init(&rn);
    rn.device_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)device->b};
    rn.label = (char *)label;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_RENAME_DEVICE;
    req.rename_device = &rn;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_DEVICE_LIST, what, NULL, &resp);
    if (rc == 0)
        cc_free_response(resp);
    return rc;
}

int carechat_forget_device(struct carechat *c) {
    cc_clear_error(c);
    const char *what = "forgetting this device";
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    const struct id self = c->profile->device_id;
    rc = cc_unlist(c, &self, false, what);
    if (rc == 0)
        rc = remove_device(c, &self, what);
    if (rc != 0)
        return rc;
    /* The server revokes this connection after its answer. */
    cc_disconnect(c, 0);
    /* The message keys it kept for the account's key backup go with it. */
    rc = cc_bk_forget_local(c);
    if (rc == 0)
        rc = cc_forget_device_keys(c);
    return rc;
}

/* Sends `req` (a request of a connection without a session) on a fresh
 * connection; a refusal is recorded with `hint` for FORBIDDEN. */
static int reset_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
                      const char *hint) {
    int rc = cc_connect_fresh(c);
    if (rc != 0)
        return rc;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_call(c, req, what, &resp);
    if (rc != 0)
        return rc;
    if (resp->response->status != CARECHAT__V1__STATUS__OK)
        rc = cc_refused(c, resp->response, what,
                        resp->response->status == CARECHAT__V1__STATUS__FORBIDDEN ? hint : NULL);
    cc_free_response(resp);
    return rc;
}

int carechat_request_password_reset(struct carechat *c, const char *email) {
    cc_clear_error(c);
    if (!email || !*email)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "password reset request: the email is required");
    Carechat__V1__RequestPasswordReset m;
    carechat__v1__request_password_reset__init(&m);
    m.email = (char *)email;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_REQUEST_PASSWORD_RESET;
    req.request_password_reset = &m;
    return reset_call(c, &req, "password reset request", NULL);
}

int carechat_reset_password(struct carechat *c, const char *email, const char *code,
                            const char *next) {
    cc_clear_error(c);
    if (!email || !code || !next || !*email || !*code || !*next)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "password reset: the email, the code and the new password are required");
    Carechat__V1__CompletePasswordReset m;
    carechat__v1__complete_password_reset__init(&m);
    m.email = (char *)email;
    m.code = (char *)code;
    m.new_password = (char *)next;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_COMPLETE_PASSWORD_RESET;
    req.complete_password_reset = &m;
    return reset_call(c, &req, "password reset",
                      "invalid or expired code (each code works once, for 15 minutes, and "
                      "dies after 5 wrong tries: request a new one)");
}

int carechat_logout(struct carechat *c) {
    cc_clear_error(c);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__Logout lo;
    carechat__v1__logout__init(&lo);
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_LOGOUT;
    req.logout = &lo;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_call(c, &req, "logout", &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__Status st = resp->response->status;
    if (st == CARECHAT__V1__STATUS__OK || st == CARECHAT__V1__STATUS__UNAUTHENTICATED) {
        int drc = cc_drop_session(c);
        if (drc != 0)
            rc = cc_fail(c, drc, CARECHAT_ERROR_PROFILE,
                         "logout: could not remove the session from %s", c->profile_dir);
    }
    if (st != CARECHAT__V1__STATUS__OK)
        rc = cc_refused(c, resp->response, "logout", NULL);
    cc_free_response(resp);
    /* The server closes the connection after answering (PROTOCOL.md). */
    cc_disconnect(c, 1000);
    return rc;
}
