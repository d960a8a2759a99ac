/*
 * client/trust.c: libcarechat's trust calls (carechat.h "Trust"): approval
 * codes and approving a new device of one's own account, confirming a
 * changed identity, safety numbers and the verified flag, and an
 * administrator's reset of an account's device list. The pinning itself is in
 * the core (cc_trusted_list(), client/pins.h). Caller's thread only.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/status.h"
#include "client/carechat.h"
#include "client/core.h"
#include "client/messaging.h"

static const char code_context[] = "carechat.v1 approval code";
static const char safety_context[] = "carechat.v1 safety number";

/* `groups` groups of 5 decimal digits from `digest` (5 bytes each), joined by
 * `sep`. */
static void digits(const uint8_t *digest, int groups, char sep, char *out) {
    char *p = out;
    for (int g = 0; g < groups; g++) {
        uint64_t v = 0;
        for (int i = 0; i < 5; i++)
            v = v << 8 | digest[g * 5 + i];
        p += sprintf(p, "%s%05u", g ? (char[]){sep, 0} : "", (unsigned)(v % 100000));
    }
}

/* The approval code of an identity key. */
static void code_of(const uint8_t identity_key[32], char out[CARECHAT_DEVICE_CODE_LEN + 1]) {
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)code_context, sizeof code_context - 1);
    crypto_hash_sha256_update(&st, identity_key, 32);
    crypto_hash_sha256_final(&st, h);
    digits(h, 4, '-', out);
}

int carechat_device_code(struct carechat *c, char out[CARECHAT_DEVICE_CODE_LEN + 1]) {
    cc_clear_error(c);
    if (out == NULL || !c->profile->has_keys)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "device code: this profile has no keys yet (log in first)");
    struct cc_own_keys keys;
    cc_own_keys(c->profile, &keys, NULL);
    code_of(keys.identity_pk, out);
    return 0;
}

bool carechat_awaiting_approval(const struct carechat *c) {
    return c->awaiting_approval;
}

/* Only the digits of a code as the user typed it. */
static void normalize(const char *in, char *out, size_t cap) {
    size_t n = 0;
    for (; *in != '\0' && n + 1 < cap; in++)
        if (isdigit((unsigned char)*in))
            out[n++] = *in;
    out[n] = '\0';
}

int carechat_approve(struct carechat *c, const char *code) {
    cc_clear_error(c);
    const char *what = "approving the device";
    if (code == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "approve: the new device's code is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    char want[32];
    normalize(code, want, sizeof want);
    Carechat__V1__Frame *resp = NULL;
    const Carechat__V1__AccountDevices *acct = NULL;
    rc = cc_list_own_devices(c, what, &resp, &acct);
    if (rc != 0)
        return rc;
    bool found = false;
    struct id device;
    uint8_t key[32];
    for (size_t i = 0; i < acct->n_devices && !found; i++) {
        const Carechat__V1__DeviceKeys *k = acct->devices[i]->keys;
        if (k == NULL || k->identity_key.len != 32 ||
            id_from_bytes(k->device_id.data, k->device_id.len, &device) != 0)
            continue;
        char have[CARECHAT_DEVICE_CODE_LEN + 1], digits_only[32];
        code_of(k->identity_key.data, have);
        normalize(have, digits_only, sizeof digits_only);
        if (strcmp(digits_only, want) == 0) {
            memcpy(key, k->identity_key.data, 32);
            found = true;
        }
    }
    cc_free_response(resp);
    if (!found)
        return cc_fail(c, STATUS_NOT_FOUND, CARECHAT_ERROR_ARGUMENT,
                       "%s: no device of your account shows this code", what);
    return cc_approve(c, &device, key);
}

int carechat_trust(struct carechat *c, const struct id *account_id) {
    cc_clear_error(c);
    if (account_id == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT, "trust: an account");
    struct pins *pins = NULL;
    int rc = cc_pins(c, &pins);
    if (rc != 0)
        return rc;
    if (pins_confirm(pins, account_id) != 0)
        return cc_fail(c, STATUS_NOT_FOUND, CARECHAT_ERROR_ARGUMENT,
                       "trust: no changed identity is waiting for confirmation");
    rc = pins_save(c->profile_dir, pins);
    if (rc != 0)
        return cc_fail(c, rc, CARECHAT_ERROR_PROFILE, "trust: cannot save the pins");
    cc_msg_forget_account(c, account_id);
    return 0;
}

/* The pinned list of `account`, fetching and pinning it when there is none. */
static int pinned(struct carechat *c, const struct id *account, const struct pins_list **out) {
    struct pins *pins = NULL;
    int rc = cc_pins(c, &pins);
    if (rc != 0)
        return rc;
    if ((*out = pins_find(pins, account)) != NULL)
        return 0;
    rc = cc_msg_refresh_account(c, account);
    if (rc != 0)
        return rc;
    if ((*out = pins_find(pins, account)) == NULL)
        return cc_fail(c, STATUS_NOT_FOUND, CARECHAT_ERROR_PROTOCOL,
                       "the account has published no device list yet");
    return 0;
}

/* 30 digits standing for one account's pinned devices. */
static void fingerprint(const struct pins_list *l, char out[36]) {
    struct statement_device sorted[STATEMENT_MAX_DEVICES];
    memcpy(sorted, l->devs, l->n * sizeof *sorted);
    /* Sorted by identity key: the same devices give the same digits. */
    for (size_t i = 1; i < l->n; i++)
        for (size_t j = i;
             j > 0 && memcmp(sorted[j - 1].identity_key, sorted[j].identity_key, 32) > 0; j--) {
            struct statement_device t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)safety_context, sizeof safety_context - 1);
    crypto_hash_sha256_update(&st, l->account.b, ID_LEN);
    for (size_t i = 0; i < l->n; i++)
        crypto_hash_sha256_update(&st, sorted[i].identity_key, 32);
    crypto_hash_sha256_final(&st, h);
    digits(h, 6, ' ', out);
}

int carechat_safety_number(struct carechat *c, const struct id *account_id,
                           char out[CARECHAT_SAFETY_NUMBER_LEN + 1], bool *verified) {
    cc_clear_error(c);
    if (account_id == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "safety number: an account is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    const struct pins_list *mine = NULL, *theirs = NULL;
    if ((rc = pinned(c, &c->profile->account_id, &mine)) != 0 ||
        (rc = pinned(c, account_id, &theirs)) != 0)
        return rc;
    /* pinned() may have moved the pins: look both up again. */
    struct pins *pins = c->pins;
    mine = pins_find(pins, &c->profile->account_id);
    theirs = pins_find(pins, account_id);
    char a[36], b[36];
    fingerprint(mine, a);
    fingerprint(theirs, b);
    /* The lower first: both sides print the same digits. */
    const bool swap = strcmp(a, b) > 0;
    snprintf(out, CARECHAT_SAFETY_NUMBER_LEN + 1, "%s %s", swap ? b : a, swap ? a : b);
    if (verified != NULL)
        *verified = theirs->verified;
    return 0;
}

int carechat_set_verified(struct carechat *c, const struct id *account_id, bool verified) {
    cc_clear_error(c);
    struct pins *pins = NULL;
    int rc = cc_pins(c, &pins);
    if (rc != 0)
        return rc;
    if (account_id == NULL || pins_set_verified(pins, account_id, verified) != 0)
        return cc_fail(c, STATUS_NOT_FOUND, CARECHAT_ERROR_ARGUMENT,
                       "verify: nothing is pinned for this account yet");
    rc = pins_save(c->profile_dir, pins);
    return rc != 0 ? cc_fail(c, rc, CARECHAT_ERROR_PROFILE, "verify: cannot save the pins") : 0;
}

int carechat_reset_device_list(struct carechat *c, const char *email) {
    if (email == NULL) {
        cc_clear_error(c);
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "reset device list: an email is required");
    }
    struct carechat_account acc;
    int rc = carechat_lookup(c, email, &acc);
    if (rc != 0)
        return rc;
    Carechat__V1__ResetDeviceList m;
    carechat__v1__reset_device_list__init(&m);
    m.account_id = (ProtobufCBinaryData){ID_LEN, acc.account_id.b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_RESET_DEVICE_LIST;
    req.reset_device_list = &m;
    return cc_msg_simple_call(c, &req, "resetting the device list");
}
