/*
 * client/messaging.c: libcarechat's conversations, end-to-end encrypted
 * messages and delivery (carechat.h "end-to-end encrypted messaging").
 *
 * State of a handle (struct cc_msg, created on first use):
 *   - a cache of verified device lists per account: the devices of the
 *     latest signed list, each with its encryption key when that key's
 *     signature verifies under the listed identity key and it has not
 *     expired. A list whose version goes below the cached one is refused.
 *     Refreshed when a Send is answered CONFLICT, when a DeviceListEvent
 *     arrives, and when a message names a sender device the cache lacks;
 *   - a cache of the active members of conversations (for Send), dropped
 *     for a conversation when a MembershipEvent of it arrives;
 *   - on the handle's core (client/core.h, struct cc_deliveries): the
 *     deliveries of the current connection, which this file takes in arrival
 *     (= cursor) order, at most CARECHAT_MAX_QUEUED; beyond that the rest of
 *     the connection's deliveries are dropped and, once the queue is drained,
 *     acknowledged up to what was taken and replayed with a new Sync (so
 *     nothing is lost and the cumulative Ack never covers a dropped entry);
 *   - `taken`: the cursor of the last delivery carechat_recv() took and
 *     processed, which carechat_ack() acknowledges and stores in the profile
 *     (a delivery whose processing failed, e.g. the sender's device list could
 *     not be fetched, is not taken: delivery restarts with a new Sync);
 *   - a ring of the last CARECHAT_DEDUP_IDS message ids returned.
 *
 *   connection: [not synced] --Sync--> [replaying] --QueueEmpty--> [live]
 *   any --connection closed--> [not synced] (queue dropped, `taken` kept)
 *
 * Plaintext never reaches the log. Runs on the caller's thread only.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "base/alloc.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "client/backup_sync.h"
#include "client/content.h"
#include "client/core.h"
#include "client/envelope.h"
#include "client/ledger.h"
#include "client/messaging.h"
#include "protocol/transcript.h"

#define MOD "carechat"
/* Accounts per ListDevices (carechat.proto: at most 64). */
#define LIST_DEVICES_MAX 64
/* Cached device lists and conversations; the caches start over beyond. */
#define MAX_CACHED 1024
#define MAX_MEMBERS 256
#define MAX_CONVERSATIONS 10000
#define PAGE_LIMIT 100

struct dev_entry {
    struct id device_id;
    uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN];
    bool has_key; /* key verified under identity_pk and not expired when fetched */
    struct envelope_device_key key;
};

struct acct_devs {
    struct id account_id;
    uint64_t version;
    bool blocked; /* its identity changed: no sending until the user confirms */
    size_t n;
    struct dev_entry devs[STATEMENT_MAX_DEVICES];
};

struct conv_entry {
    struct id conversation_id;
    size_t n;
    struct id *members; /* active members */
};

struct cc_msg {
    struct acct_devs *accts;
    size_t n_accts;
    struct conv_entry *convs;
    size_t n_convs;

    uint8_t taken[PROFILE_MAX_CURSOR];
    size_t taken_len;

    struct id seen[CARECHAT_DEDUP_IDS];
    size_t seen_next, seen_n;

    struct envelope_enc_key *own_key; /* from the profile, on first use */
    struct ledger *ledger;            /* the replay ledger, on first use */
};

static struct cc_msg *state(struct carechat *c) {
    if (c->msg == NULL)
        c->msg = xcalloc(1, sizeof *c->msg);
    return c->msg;
}

static void clear_caches(struct cc_msg *m) {
    free(m->accts);
    m->accts = NULL;
    m->n_accts = 0;
    for (size_t i = 0; i < m->n_convs; i++)
        free(m->convs[i].members);
    free(m->convs);
    m->convs = NULL;
    m->n_convs = 0;
}

void cc_msg_free(struct cc_msg *m) {
    if (m == NULL)
        return;
    clear_caches(m);
    envelope_enc_key_free(m->own_key);
    ledger_free(m->ledger);
    free(m);
}

static bool same(const struct id *a, const uint8_t *b) {
    return memcmp(a->b, b, ID_LEN) == 0;
}

static bool get_id(ProtobufCBinaryData b, struct id *out) {
    return id_from_bytes(b.data, b.len, out) == 0;
}

/* The handle's replay ledger, opened on first use. */
static int ledger_of(struct carechat *c, struct ledger **out) {
    struct cc_msg *m = state(c);
    if (m->ledger == NULL) {
        int rc = ledger_open(c->profile_dir, &m->ledger);
        if (rc != 0)
            return cc_fail(c, rc, CARECHAT_ERROR_PROFILE,
                           "the profile's replay ledger cannot be read (%s)", status_str(rc));
    }
    *out = m->ledger;
    return 0;
}

/* ---- device lists ---- */

static struct acct_devs *find_acct(struct cc_msg *m, const struct id *account) {
    for (size_t i = 0; i < m->n_accts; i++)
        if (same(&m->accts[i].account_id, account->b))
            return &m->accts[i];
    return NULL;
}

static void forget_acct(struct cc_msg *m, const struct id *account) {
    struct acct_devs *a = find_acct(m, account);
    if (a == NULL)
        return;
    *a = m->accts[m->n_accts - 1];
    m->n_accts--;
}

/* Takes one account's answer into the cache after verifying it. */
static int take_devices(struct carechat *c, const struct id *account,
                        const Carechat__V1__AccountDevices *ad, const char *what) {
    struct cc_msg *m = c->msg;
    struct statement_device entries[STATEMENT_MAX_DEVICES];
    size_t n = 0;
    /* Verified and judged against the pinned list (client/pins.h): a rollback
     * is refused, an unapproved change keeps the pinned devices and blocks. */
    bool blocked = false;
    int rc = cc_trusted_list(c, account, ad->list, entries, &n, &blocked);
    if (rc != 0)
        return rc;
    const uint64_t version = ad->list != NULL ? ad->list->version : 0;
    struct acct_devs *old = find_acct(m, account);
    (void)what;
    struct acct_devs fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.account_id = *account;
    fresh.version = version;
    fresh.blocked = blocked;
    const int64_t now = clock_now();
    for (size_t i = 0; i < n; i++) {
        struct dev_entry *d = &fresh.devs[fresh.n++];
        d->device_id = entries[i].device_id;
        memcpy(d->identity_pk, entries[i].identity_key, ENVELOPE_SIGN_PK_LEN);
        for (size_t j = 0; j < ad->n_devices; j++) {
            const Carechat__V1__DeviceKeys *k = ad->devices[j]->keys;
            if (k == NULL || k->device_id.len != ID_LEN || !same(&d->device_id, k->device_id.data))
                continue;
            if (k->identity_key.len != ENVELOPE_SIGN_PK_LEN ||
                memcmp(k->identity_key.data, d->identity_pk, ENVELOPE_SIGN_PK_LEN) != 0 ||
                k->encryption_key.len != ENVELOPE_ENC_PK_LEN ||
                k->signature.len != ENVELOPE_SIG_LEN || k->encryption_key_id == 0)
                break;
            d->key.device_id = d->device_id;
            d->key.key_id = k->encryption_key_id;
            d->key.expires_at_ms = k->encryption_key_expires_at;
            memcpy(d->key.pk, k->encryption_key.data, ENVELOPE_ENC_PK_LEN);
            memcpy(d->key.sig, k->signature.data, ENVELOPE_SIG_LEN);
            d->has_key = envelope_device_key_verify(&d->key, d->identity_pk, now) == 0;
            if (!d->has_key)
                log_warn(MOD, "a listed device's encryption key does not verify or has expired");
            break;
        }
    }
    if (old != NULL) {
        *old = fresh;
        return 0;
    }
    if (m->n_accts == MAX_CACHED) {
        free(m->accts);
        m->accts = NULL;
        m->n_accts = 0;
    }
    m->accts = xrealloc(m->accts, (m->n_accts + 1) * sizeof *m->accts);
    m->accts[m->n_accts++] = fresh;
    return 0;
}

/* Fetches and verifies the device lists of the `n` accounts at `accounts`
 * (all of them when `force`, else only those not cached). */
static int fetch_devices(struct carechat *c, const struct id *accounts, size_t n, bool force,
                         const char *what) {
    struct cc_msg *m = state(c);
    ProtobufCBinaryData ids[LIST_DEVICES_MAX];
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; i < n && k < LIST_DEVICES_MAX; i++)
            if (force || find_acct(m, &accounts[i]) == NULL)
                ids[k++] = (ProtobufCBinaryData){ID_LEN, (uint8_t *)accounts[i].b};
        if (k == 0)
            continue;
        Carechat__V1__ListDevices ld;
        carechat__v1__list_devices__init(&ld);
        ld.n_account_ids = k;
        ld.account_ids = ids;
        Carechat__V1__Frame req;
        carechat__v1__frame__init(&req);
        req.body_case = CARECHAT__V1__FRAME__BODY_LIST_DEVICES;
        req.list_devices = &ld;
        Carechat__V1__Frame *resp = NULL;
        int rc =
            cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_DEVICE_BUNDLES, what, NULL, &resp);
        for (size_t j = 0; rc == 0 && j < k; j++) {
            const Carechat__V1__DeviceBundles *b = resp->response->device_bundles;
            const Carechat__V1__AccountDevices *ad = NULL;
            for (size_t x = 0; x < b->n_accounts; x++)
                if (b->accounts[x]->account_id.len == ID_LEN &&
                    memcmp(b->accounts[x]->account_id.data, ids[j].data, ID_LEN) == 0)
                    ad = b->accounts[x];
            struct id account;
            memcpy(account.b, ids[j].data, ID_LEN);
            if (ad == NULL)
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "%s: the server left an account out of its answer", what);
            else
                rc = take_devices(c, &account, ad, what);
        }
        cc_free_response(resp);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void cc_msg_forget_account(struct carechat *c, const struct id *account) {
    forget_acct(state(c), account);
}

int cc_msg_refresh_account(struct carechat *c, const struct id *account) {
    return fetch_devices(c, account, 1, true, "fetching the device list");
}

/* The identity key the sender's signed list names for `device`, fetching the
 * list when the cache does not have the device. *found false: not listed. */
static int sender_identity(struct carechat *c, const struct id *account, const struct id *device,
                           uint8_t pk[ENVELOPE_SIGN_PK_LEN], bool *found) {
    *found = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1 || find_acct(c->msg, account) == NULL) {
            int rc = fetch_devices(c, account, 1, true, "fetching the sender's device list");
            if (rc != 0)
                return rc;
            attempt = 1;
        }
        const struct acct_devs *a = find_acct(c->msg, account);
        for (size_t i = 0; a != NULL && i < a->n; i++) {
            if (same(&a->devs[i].device_id, device->b)) {
                memcpy(pk, a->devs[i].identity_pk, ENVELOPE_SIGN_PK_LEN);
                *found = true;
                return 0;
            }
        }
    }
    return 0;
}

/* ---- conversations ---- */

void carechat_conversation_cleanup(struct carechat_conversation *conv) {
    if (conv == NULL)
        return;
    free(conv->members);
    conv->members = NULL;
    conv->n_members = 0;
}

/* Remembers the active members of a conversation for Send. */
static void cache_members(struct carechat *c, const struct carechat_conversation *conv) {
    struct cc_msg *m = state(c);
    struct conv_entry *e = NULL;
    for (size_t i = 0; i < m->n_convs && e == NULL; i++)
        if (same(&m->convs[i].conversation_id, conv->conversation_id.b))
            e = &m->convs[i];
    if (e == NULL) {
        if (m->n_convs == MAX_CACHED) {
            for (size_t i = 0; i < m->n_convs; i++)
                free(m->convs[i].members);
            m->n_convs = 0;
        }
        m->convs = xrealloc(m->convs, (m->n_convs + 1) * sizeof *m->convs);
        e = &m->convs[m->n_convs++];
        e->conversation_id = conv->conversation_id;
        e->members = NULL;
    }
    free(e->members);
    e->members = xcalloc(conv->n_members + 1, sizeof *e->members);
    e->n = 0;
    for (size_t i = 0; i < conv->n_members; i++)
        if (conv->members[i].state == CARECHAT__V1__MEMBER_STATE__MEMBER_ACTIVE)
            e->members[e->n++] = conv->members[i].account_id;
}

static void forget_members(struct carechat *c, const struct id *conv) {
    struct cc_msg *m = state(c);
    for (size_t i = 0; i < m->n_convs; i++) {
        if (same(&m->convs[i].conversation_id, conv->b)) {
            free(m->convs[i].members);
            m->convs[i] = m->convs[m->n_convs - 1];
            m->n_convs--;
            return;
        }
    }
}

/* Copies a Conversation from the server into *out. */
static int take_conversation(struct carechat *c, const Carechat__V1__Conversation *cv,
                             struct carechat_conversation *out, const char *what) {
    struct carechat_conversation conv;
    memset(&conv, 0, sizeof conv);
    if (cv == NULL || !get_id(cv->conversation_id, &conv.conversation_id) ||
        cv->n_members > MAX_MEMBERS)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "%s: malformed conversation from the server", what);
    conv.kind = (enum carechat_conversation_kind)cv->kind;
    cc_copy_text(conv.name, sizeof conv.name, cv->name);
    conv.created_at = cv->created_at;
    conv.last_seq = cv->last_seq;
    conv.members = xcalloc(cv->n_members + 1, sizeof *conv.members);
    for (size_t i = 0; i < cv->n_members; i++) {
        const Carechat__V1__Member *mb = cv->members[i];
        struct carechat_member *dst = &conv.members[conv.n_members];
        if (!get_id(mb->account_id, &dst->account_id)) {
            carechat_conversation_cleanup(&conv);
            return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                           "%s: malformed member from the server", what);
        }
        dst->role =
            mb->role >= CARECHAT__V1__ROLE__PATIENT && mb->role <= CARECHAT__V1__ROLE__SYSADMIN
                ? (enum carechat_role)mb->role
                : CARECHAT_ROLE_UNSPECIFIED;
        dst->state = (int)mb->state;
        cc_copy_text(dst->display_name, sizeof dst->display_name, mb->display_name);
        conv.n_members++;
    }
    cache_members(c, &conv);
    *out = conv;
    return 0;
}

int cc_msg_conversation_call(struct carechat *c, Carechat__V1__Frame *req, const char *what,
                             const char *not_found_hint, struct carechat_conversation *out) {
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, not_found_hint},
        {CARECHAT__V1__STATUS__FORBIDDEN,
         "not allowed (the account is deactivated, or the record is not visible)"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    int rc = cc_request(c, req, CARECHAT__V1__RESPONSE__RESULT_CONVERSATION, what, hints, &resp);
    if (rc != 0)
        return rc;
    rc = take_conversation(c, resp->response->conversation, out, what);
    cc_free_response(resp);
    return rc;
}

int carechat_open_direct_id(struct carechat *c, const struct id *peer_account_id,
                            struct carechat_conversation *out) {
    cc_clear_error(c);
    if (peer_account_id == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "open direct: a peer account is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__CreateDirect cd;
    carechat__v1__create_direct__init(&cd);
    cd.peer_account_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)peer_account_id->b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_CREATE_DIRECT;
    req.create_direct = &cd;
    return cc_msg_conversation_call(c, &req, "opening the direct conversation",
                                    "no account you may contact", out);
}

int carechat_open_direct(struct carechat *c, const char *peer_email,
                         struct carechat_conversation *out) {
    if (peer_email == NULL) {
        cc_clear_error(c);
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "open direct: an email is required");
    }
    struct carechat_account acc;
    int rc = carechat_lookup(c, peer_email, &acc);
    if (rc != 0)
        return rc;
    if (c->have_info && memcmp(acc.account_id.b, c->info.account_id.b, ID_LEN) == 0)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "open direct: that is your own account");
    return carechat_open_direct_id(c, &acc.account_id, out);
}

int carechat_get_conversation(struct carechat *c, const struct id *conversation_id,
                              struct carechat_conversation *out) {
    cc_clear_error(c);
    if (conversation_id == NULL || out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "conversation: an id is required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__GetConversation gc;
    carechat__v1__get_conversation__init(&gc);
    gc.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)conversation_id->b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_GET_CONVERSATION;
    req.get_conversation = &gc;
    return cc_msg_conversation_call(c, &req, "reading the conversation",
                                    "no such conversation, or you are not a member", out);
}

void carechat_conversations_free(struct carechat_conversations *list) {
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        carechat_conversation_cleanup(&list->items[i]);
    free(list->items);
    free(list);
}

int carechat_conversations(struct carechat *c, struct carechat_conversations **out) {
    cc_clear_error(c);
    if (out == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "conversations: no result pointer");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    const char *what = "listing conversations";
    struct carechat_conversations *list = xcalloc(1, sizeof *list);
    struct buf token;
    buf_init(&token);
    for (int page = 0; page < MAX_CONVERSATIONS / PAGE_LIMIT; page++) {
        Carechat__V1__ListConversations lc;
        carechat__v1__list_conversations__init(&lc);
        lc.page_token = (ProtobufCBinaryData){token.len, token.data};
        lc.limit = PAGE_LIMIT;
        Carechat__V1__Frame req;
        carechat__v1__frame__init(&req);
        req.body_case = CARECHAT__V1__FRAME__BODY_LIST_CONVERSATIONS;
        req.list_conversations = &lc;
        Carechat__V1__Frame *resp = NULL;
        rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_CONVERSATION_PAGE, what, NULL,
                        &resp);
        if (rc != 0)
            break;
        const Carechat__V1__ConversationPage *p = resp->response->conversation_page;
        if (p->n_conversations > PAGE_LIMIT)
            rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                         "%s: the server sent a page over the limit", what);
        if (rc == 0) {
            list->items =
                xrealloc(list->items, (list->n + p->n_conversations + 1) * sizeof *list->items);
            for (size_t i = 0; rc == 0 && i < p->n_conversations; i++) {
                rc = take_conversation(c, p->conversations[i], &list->items[list->n], what);
                if (rc == 0)
                    list->n++;
            }
        }
        bool more = rc == 0 && p->next_page_token.len > 0;
        if (more) {
            buf_reset(&token);
            buf_append(&token, p->next_page_token.data, p->next_page_token.len);
        }
        cc_free_response(resp);
        if (!more)
            break;
    }
    buf_cleanup(&token);
    if (rc != 0) {
        carechat_conversations_free(list);
        return rc;
    }
    *out = list;
    return 0;
}

/* The active members of `conv`, from the cache or GetConversation. */
static int members_of(struct carechat *c, const struct id *conv, const struct conv_entry **out) {
    struct cc_msg *m = state(c);
    for (int attempt = 0; attempt < 2; attempt++) {
        for (size_t i = 0; i < m->n_convs; i++) {
            if (same(&m->convs[i].conversation_id, conv->b)) {
                *out = &m->convs[i];
                return 0;
            }
        }
        if (attempt == 1)
            break;
        struct carechat_conversation cv;
        int rc = carechat_get_conversation(c, conv, &cv);
        if (rc != 0)
            return rc;
        carechat_conversation_cleanup(&cv);
    }
    return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL, "the conversation has no members");
}

/* ---- sending ---- */

/* Seals `body` for every device with a valid key of every account at
 * `accounts` (cached lists) and sends it; *resp gets the response frame, and
 * `body_key` the message's key (the caller wipes it). */
static int seal_and_send(struct carechat *c, const struct id *conv, const struct id *cmid,
                         const struct id *accounts, size_t n_accounts, const uint8_t *body,
                         size_t len, bool urgent, Carechat__V1__Frame **resp,
                         uint8_t body_key[ENVELOPE_BODY_KEY_LEN]) {
    struct cc_msg *m = c->msg;
    const char *what = "sending the message";
    for (size_t i = 0; i < n_accounts; i++) {
        const struct acct_devs *a = find_acct(m, &accounts[i]);
        if (a != NULL && a->blocked) {
            char hex[ID_HEX_LEN + 1];
            id_to_hex(&accounts[i], hex);
            return cc_fail(c, STATUS_CONFLICT, CARECHAT_ERROR_TRUST,
                           "%s: the identity of account %s changed (a device list this device "
                           "did not see approved): compare safety numbers, then run "
                           "carechat trust",
                           what, hex);
        }
    }
    struct envelope_recipient *to = xcalloc(n_accounts * STATEMENT_MAX_DEVICES + 1, sizeof *to);
    size_t n_to = 0;
    for (size_t i = 0; i < n_accounts; i++) {
        const struct acct_devs *a = find_acct(m, &accounts[i]);
        for (size_t j = 0; a != NULL && j < a->n; j++) {
            if (!a->devs[j].has_key)
                continue;
            to[n_to].key = &a->devs[j].key;
            memcpy(to[n_to].identity_pk, a->devs[j].identity_pk, ENVELOPE_SIGN_PK_LEN);
            n_to++;
        }
    }
    /* The counter is reserved durably before the Send: a crash never lets
     * two messages share one (a resend of the same client_msg_id keeps it). */
    struct ledger *ledger = NULL;
    uint64_t counter = 0;
    int lrc = ledger_of(c, &ledger);
    if (lrc == 0 &&
        (lrc = ledger_reserve(ledger, conv, &c->profile->device_id, cmid, &counter)) != 0)
        lrc =
            cc_fail(c, lrc, CARECHAT_ERROR_PROFILE, "%s: cannot record the message counter", what);
    if (lrc != 0) {
        free(to);
        return lrc;
    }
    struct envelope_identity *identity = NULL;
    CHECK(envelope_identity_import(c->profile->identity_seed, &identity) == 0);
    struct envelope_header h = {
        .conversation_id = *conv,
        .client_msg_id = *cmid,
        .sender_device_id = c->profile->device_id,
        .urgent = urgent,
        .sent_at = clock_now(),
        .counter = counter,
    };
    struct envelope env;
    int rc = envelope_seal_keep_key(&h, body, len, to, n_to, identity, &env, body_key);
    envelope_identity_free(identity);
    free(to);
    if (rc == STATUS_BAD_REQUEST)
        return cc_fail(c, rc, CARECHAT_ERROR_PROTOCOL,
                       "%s: no member device has a valid encryption key", what);
    if (rc != 0)
        return cc_fail(c, rc, CARECHAT_ERROR_PROTOCOL,
                       "%s: a member device's key does not verify or has expired", what);

    struct envelope_wire ew;
    envelope_wire(&env, &ew);
    Carechat__V1__Send send;
    carechat__v1__send__init(&send);
    send.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)conv->b};
    send.client_msg_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)cmid->b};
    send.envelope = &ew.pe;
    send.urgent = urgent;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_SEND;
    req.send = &send;
    rc = cc_call(c, &req, what, resp);
    envelope_wire_cleanup(&ew);
    envelope_cleanup(&env);
    return rc;
}

/* Seals the encoded content `body` (`len` bytes, at most CARECHAT_MAX_MESSAGE)
 * and sends it, refreshing device lists on CONFLICT and resending once after a
 * lost answer. */
static int send_message(struct carechat *c, const struct id *conversation_id, const uint8_t *body,
                        size_t len, const struct id *client_msg_id, bool urgent,
                        struct carechat_sent *out) {
    const char *what = "sending the message";
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    const struct conv_entry *ce = NULL;
    rc = members_of(c, conversation_id, &ce);
    if (rc != 0)
        return rc;
    size_t n_members = ce->n;
    struct id *members = xmemdup(ce->members, (n_members + 1) * sizeof *members);
    const struct id cmid = client_msg_id != NULL ? *client_msg_id : id_new();
    rc = fetch_devices(c, members, n_members, false, what);
    int conflicts = 0;
    bool resent = false;
    Carechat__V1__Frame *resp = NULL;
    uint8_t body_key[ENVELOPE_BODY_KEY_LEN];
    memset(body_key, 0, sizeof body_key);
    while (rc == 0) {
        rc = seal_and_send(c, conversation_id, &cmid, members, n_members, body, len, urgent, &resp,
                           body_key);
        if (rc != 0 && c->err_kind == CARECHAT_ERROR_CONNECTION && !resent) {
            /* The answer was lost: the same client_msg_id again. */
            resent = true;
            rc = cc_ensure_session(c);
            continue;
        }
        if (rc != 0)
            break;
        const Carechat__V1__Response *r = resp->response;
        if (r->status == CARECHAT__V1__STATUS__CONFLICT &&
            r->result_case == CARECHAT__V1__RESPONSE__RESULT_DEVICE_MISMATCH && conflicts == 0) {
            conflicts++;
            cc_free_response(resp);
            resp = NULL;
            log_info(MOD, "device set changed: refreshing the members and their device lists");
            /* A channel's members may have changed too. */
            forget_members(c, conversation_id);
            if ((rc = members_of(c, conversation_id, &ce)) != 0)
                break;
            free(members);
            n_members = ce->n;
            members = xmemdup(ce->members, (n_members + 1) * sizeof *members);
            rc = fetch_devices(c, members, n_members, true, what);
            continue;
        }
        const char *hint = NULL;
        if (r->status == CARECHAT__V1__STATUS__CONFLICT)
            hint = "the members' devices changed again, or the server wants a device that is not "
                   "in an account's signed device list";
        else if (r->status == CARECHAT__V1__STATUS__FORBIDDEN)
            hint = "you may not write here: not an active member, or the conversation is kept "
                   "read-only for review";
        else if (r->status == CARECHAT__V1__STATUS__NOT_FOUND)
            hint = "no such conversation";
        rc = cc_expect(c, resp, CARECHAT__V1__RESPONSE__RESULT_SEND, what, hint);
        if (rc == 0) {
            const Carechat__V1__SendResult *sr = resp->response->send;
            struct carechat_sent sent;
            memset(&sent, 0, sizeof sent);
            if (!get_id(sr->message_id, &sent.message_id)) {
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "%s: malformed answer from the server", what);
            } else {
                /* For a signed recall later: which client_msg_id this was. */
                uint64_t counter = 0;
                struct ledger *ledger = NULL;
                if (ledger_of(c, &ledger) == 0 &&
                    ledger_reserve(ledger, conversation_id, &c->profile->device_id, &cmid,
                                   &counter) == 0 &&
                    ledger_record(ledger, conversation_id, &c->profile->device_id, &cmid,
                                  &sent.message_id, counter) != 0)
                    log_warn(MOD, "the replay ledger could not record a sent message");
                /* What this device sent goes into the account's key backup
                 * (a retry answered with the first send's result carries a
                 * key of this attempt only when it was that send's). */
                if (!resent)
                    cc_bk_learn(c, &sent.message_id, conversation_id, body_key);
                sent.client_msg_id = cmid;
                sent.seq = sr->seq;
                sent.sent_at = sr->sent_at;
                sent.device_conflicts = conflicts;
                if (out != NULL)
                    *out = sent;
            }
        }
        break;
    }
    sodium_memzero(body_key, sizeof body_key);
    cc_free_response(resp);
    free(members);
    return rc;
}

/* FileBind: file `fid`, uploaded by this device, is carried by the message
 * with client_msg_id `cmid`. Returns 0 or a recorded failure. */
static int bind_file(struct carechat *c, const struct id *fid, const struct id *cmid) {
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__FileBind m;
    carechat__v1__file_bind__init(&m);
    m.file_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)fid->b};
    m.client_msg_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)cmid->b};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_FILE_BIND;
    req.file_bind = &m;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET,
                    "binding the file to the message", NULL, &resp);
    cc_free_response(resp);
    return rc;
}

int carechat_send_content(struct carechat *c, const struct id *conversation_id,
                          const struct carechat_content *content, const struct id *client_msg_id,
                          bool urgent, struct carechat_sent *out) {
    cc_clear_error(c);
    if (conversation_id == NULL || content == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "send: a conversation and a message are required");
    struct buf plain;
    buf_init(&plain);
    int rc = content_encode(content, &plain);
    if (rc == STATUS_TOO_LARGE)
        rc = cc_fail(c, rc, CARECHAT_ERROR_ARGUMENT,
                     "send: the message is over %d bytes once encoded", CARECHAT_MAX_MESSAGE);
    else if (rc != 0)
        rc = cc_fail(c, rc, CARECHAT_ERROR_ARGUMENT,
                     "send: not a valid message (text or attachments needed; text and names "
                     "UTF-8 without NUL bytes, within their limits): nothing was sent");
    /* Files this handle uploaded are bound to the message first, so that
     * recalling it stops their downloads. */
    struct id cmid = client_msg_id ? *client_msg_id : id_new();
    for (size_t i = 0; rc == 0 && i < content->n_attachments; i++) {
        const struct id *fid = &content->attachments[i].file.file_id;
        for (size_t j = 0; rc == 0 && j < CC_UPLOADED_MAX; j++)
            if (id_equal(&c->uploaded[j], fid))
                rc = bind_file(c, fid, &cmid);
    }
    if (rc == 0)
        rc = send_message(c, conversation_id, plain.data, plain.len, &cmid, urgent, out);
    buf_wipe(&plain);
    buf_cleanup(&plain);
    if (rc == 0)
        cc_bk_flush_quietly(c);
    return rc;
}

/* A text message: MessageContent { kind MESSAGE, text }. */
static int send_text(struct carechat *c, const struct id *conversation_id, const uint8_t *body,
                     size_t len, const struct id *client_msg_id, bool urgent,
                     struct carechat_sent *out) {
    if (body == NULL || len == 0) {
        cc_clear_error(c);
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "send: a conversation and a non-empty message are required");
    }
    const struct carechat_content content = {.text = (const char *)body, .text_len = len};
    return carechat_send_content(c, conversation_id, &content, client_msg_id, urgent, out);
}

int carechat_send(struct carechat *c, const struct id *conversation_id, const uint8_t *body,
                  size_t len, const struct id *client_msg_id, struct carechat_sent *out) {
    return send_text(c, conversation_id, body, len, client_msg_id, false, out);
}

int carechat_send_urgent(struct carechat *c, const struct id *conversation_id, const uint8_t *body,
                         size_t len, const struct id *client_msg_id, struct carechat_sent *out) {
    return send_text(c, conversation_id, body, len, client_msg_id, true, out);
}

/* ---- receiving ---- */

void carechat_message_cleanup(struct carechat_message *msg) {
    if (msg == NULL)
        return;
    if (msg->text != NULL) {
        sodium_memzero(msg->text, msg->text_len);
        free(msg->text);
    }
    if (msg->attachments != NULL) {
        sodium_memzero(msg->attachments, msg->n_attachments * sizeof *msg->attachments);
        free(msg->attachments);
    }
    msg->text = NULL;
    msg->text_len = 0;
    msg->attachments = NULL;
    msg->n_attachments = 0;
}

/* This device's encryption key with id `key_id` (the current one, or an old
 * one the profile still keeps). *out NULL: none with that id. */
static int own_key(struct carechat *c, uint32_t key_id, struct envelope_enc_key **out) {
    struct cc_msg *m = state(c);
    const struct profile *p = c->profile;
    const uint8_t *secret = NULL;
    int64_t expires_at = 0;
    if (key_id == p->encryption_key_id) {
        secret = p->encryption_secret;
        expires_at = p->encryption_key_expires_at;
    }
    for (size_t i = 0; secret == NULL && i < p->n_old_keys; i++) {
        if (p->old_keys[i].key_id == key_id) {
            secret = p->old_keys[i].secret;
            expires_at = p->old_keys[i].expires_at;
        }
    }
    *out = NULL;
    if (secret == NULL)
        return 0;
    if (m->own_key != NULL && envelope_enc_key_public(m->own_key)->key_id == key_id) {
        *out = m->own_key;
        return 0;
    }
    envelope_enc_key_free(m->own_key);
    m->own_key = NULL;
    struct envelope_identity *identity = NULL;
    CHECK(envelope_identity_import(p->identity_seed, &identity) == 0);
    int rc =
        envelope_enc_key_import(identity, &p->device_id, key_id, expires_at, secret, &m->own_key);
    envelope_identity_free(identity);
    if (rc != 0)
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROFILE,
                       "the profile's encryption key is unusable");
    *out = m->own_key;
    return 0;
}

/* Who signed a recall of the message (conversation, message_id,
 * client_msg_id) of `sender`: *by_sender when a device of the sender's signed
 * list signed the recall transcript; else *removed_by and *by_verified when
 * a device of `signer`'s signed list signed the removal transcript. Neither:
 * no signature, or one that does not verify (the server's claim). */
static int verify_recall(struct carechat *c, const struct id *conversation,
                         const struct id *message_id, const struct id *sender,
                         const struct id *client_msg_id, ProtobufCBinaryData signer_account,
                         ProtobufCBinaryData signer_device, ProtobufCBinaryData signature,
                         bool *by_sender, struct id *removed_by, bool *by_verified) {
    *by_sender = *by_verified = false;
    struct id account, dev;
    if (signature.len != ENVELOPE_SIG_LEN || !get_id(signer_account, &account) ||
        !get_id(signer_device, &dev))
        return 0;
    uint8_t pk[ENVELOPE_SIGN_PK_LEN];
    bool listed = false;
    int rc = sender_identity(c, &account, &dev, pk, &listed);
    if (rc != 0 || !listed) {
        if (rc == 0)
            log_warn(MOD, "a recall signed by a device not in its account's signed list");
        return rc;
    }
    uint8_t recall[TRANSCRIPT_RECALL_LEN], removal[TRANSCRIPT_REMOVAL_LEN];
    transcript_recall(conversation->b, client_msg_id->b, recall);
    transcript_removal(conversation->b, message_id->b, removal);
    if (id_equal(&account, sender) &&
        envelope_signature_verify(pk, recall, sizeof recall, signature.data) == 0)
        *by_sender = true;
    else if (envelope_signature_verify(pk, removal, sizeof removal, signature.data) == 0) {
        *removed_by = account;
        *by_verified = true;
    } else
        log_warn(MOD, "a recall whose signature does not verify");
    return 0;
}

int cc_msg_recall_signature(struct carechat *c, const struct id *conversation,
                            const struct id *message_id, uint8_t sig[64]) {
    struct ledger *ledger = NULL;
    int rc = ledger_of(c, &ledger);
    if (rc != 0)
        return rc;
    struct id cmid;
    uint8_t recall[TRANSCRIPT_RECALL_LEN], removal[TRANSCRIPT_REMOVAL_LEN];
    const bool sent_here =
        ledger_find_sent(ledger, conversation, &c->profile->device_id, message_id, &cmid) == 0;
    if (sent_here)
        transcript_recall(conversation->b, cmid.b, recall);
    else
        transcript_removal(conversation->b, message_id->b, removal);
    struct envelope_identity *identity = NULL;
    CHECK(envelope_identity_import(c->profile->identity_seed, &identity) == 0);
    if (sent_here)
        envelope_identity_sign(identity, recall, sizeof recall, sig);
    else
        envelope_identity_sign(identity, removal, sizeof removal, sig);
    envelope_identity_free(identity);
    return 0;
}

/* Turns a StoredMessage into *out: verified and decrypted, or with a state
 * saying why not. Returns 0, or a failure (malformed ids, network). */
static int open_stored(struct carechat *c, const Carechat__V1__StoredMessage *sm,
                       struct carechat_message *out) {
    struct carechat_message msg;
    memset(&msg, 0, sizeof msg);
    if (sm == NULL || !get_id(sm->message_id, &msg.message_id) ||
        !get_id(sm->conversation_id, &msg.conversation_id) ||
        !get_id(sm->sender_account_id, &msg.sender_account_id))
        return cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                       "malformed message from the server");
    (void)get_id(sm->client_msg_id, &msg.client_msg_id);
    msg.seq = sm->seq;
    msg.sent_at = sm->sent_at;
    msg.urgent = sm->urgent;
    const Carechat__V1__Envelope *pe = sm->envelope;
    if (sm->recalled_at != 0 || pe == NULL) {
        /* The sender's recall only when the sender's device signed it. */
        bool by_sender = false;
        int rc = verify_recall(c, &msg.conversation_id, &msg.message_id, &msg.sender_account_id,
                               &msg.client_msg_id, sm->recall_signer_account_id,
                               sm->recall_signer_device_id, sm->recall_signature, &by_sender,
                               &msg.removed_by, &msg.removed_by_verified);
        if (rc != 0)
            return rc;
        msg.state = by_sender ? CARECHAT_MESSAGE_RECALLED : CARECHAT_MESSAGE_REMOVED;
        *out = msg;
        return 0;
    }
    msg.state = CARECHAT_MESSAGE_INVALID;
    if (!get_id(pe->sender_device_id, &msg.sender_device_id) ||
        !get_id(sm->client_msg_id, &msg.client_msg_id) ||
        pe->body_nonce.len != ENVELOPE_NONCE_LEN || pe->signature.len != ENVELOPE_SIG_LEN ||
        pe->n_wraps > ENVELOPE_MAX_WRAPS) {
        *out = msg;
        return 0;
    }
    /* No wrap for this device (it joined the account after the message, or
     * its key was wiped): only a key from the account's key backup opens it. */
    uint8_t kept_key[ENVELOPE_BODY_KEY_LEN];
    bool kept = false;
    if (pe->n_wraps == 0) {
        kept = cc_bk_find(c, &msg.message_id, &msg.conversation_id, kept_key);
        if (!kept) {
            msg.state = CARECHAT_MESSAGE_NO_KEY;
            *out = msg;
            return 0;
        }
    }
    uint8_t sender_pk[ENVELOPE_SIGN_PK_LEN];
    bool listed = false;
    int rc = sender_identity(c, &msg.sender_account_id, &msg.sender_device_id, sender_pk, &listed);
    if (rc != 0 || !listed) {
        sodium_memzero(kept_key, sizeof kept_key);
        if (rc == 0) {
            log_warn(MOD, "a message from a device not in its account's signed device list");
            *out = msg;
        }
        return rc;
    }
    /* The wrap names the key it was made for: the current one or an old one. */
    uint32_t wrap_key_id = 0;
    for (size_t i = 0; i < pe->n_wraps; i++)
        if (pe->wraps[i]->device_id.len == ID_LEN &&
            same(&c->profile->device_id, pe->wraps[i]->device_id.data))
            wrap_key_id = pe->wraps[i]->key_id;
    struct envelope_enc_key *key = NULL;
    rc = pe->n_wraps > 0 ? own_key(c, wrap_key_id, &key) : 0;
    if (rc != 0) {
        sodium_memzero(kept_key, sizeof kept_key);
        return rc;
    }
    if (key == NULL && !kept)
        kept = cc_bk_find(c, &msg.message_id, &msg.conversation_id, kept_key);
    if (key == NULL && !kept) {
        msg.state = CARECHAT_MESSAGE_NO_KEY;
        *out = msg;
        return 0;
    }

    struct envelope env;
    memset(&env, 0, sizeof env);
    env.version = pe->version;
    env.header.conversation_id = msg.conversation_id;
    env.header.client_msg_id = msg.client_msg_id;
    env.header.sender_device_id = msg.sender_device_id;
    env.opaque_header = pe->header.data;
    env.opaque_header_len = pe->header.len;
    memcpy(env.nonce, pe->body_nonce.data, ENVELOPE_NONCE_LEN);
    env.body = pe->body.data;
    env.body_len = pe->body.len;
    memcpy(env.sig, pe->signature.data, ENVELOPE_SIG_LEN);
    env.wraps = xcalloc(pe->n_wraps + 1, sizeof *env.wraps);
    bool shaped = true;
    for (size_t i = 0; i < pe->n_wraps; i++) {
        const Carechat__V1__KeyWrap *w = pe->wraps[i];
        if (!get_id(w->device_id, &env.wraps[i].device_id) || w->enc.len != ENVELOPE_ENC_LEN ||
            w->wrapped_key.len != ENVELOPE_WRAPPED_KEY_LEN) {
            shaped = false;
            break;
        }
        env.wraps[i].key_id = w->key_id;
        memcpy(env.wraps[i].enc, w->enc.data, ENVELOPE_ENC_LEN);
        memcpy(env.wraps[i].wrapped_key, w->wrapped_key.data, ENVELOPE_WRAPPED_KEY_LEN);
    }
    env.n_wraps = pe->n_wraps;
    env.header.urgent = sm->urgent;
    env.header.sent_at = pe->sent_at;
    env.header.counter = pe->counter;
    /* The recipients the sender signed, as the server says: a lie about
     * them (or the urgent flag, the counter, the time) fails the open. */
    if (sm->n_recipients > ENVELOPE_MAX_WRAPS)
        shaped = false;
    env.recipients = xcalloc(sm->n_recipients + 1, sizeof *env.recipients);
    for (size_t i = 0; shaped && i < sm->n_recipients; i++) {
        if (!get_id(sm->recipients[i]->device_id, &env.recipients[i].device_id))
            shaped = false;
        env.recipients[i].key_id = sm->recipients[i]->key_id;
    }
    env.n_recipients = shaped ? sm->n_recipients : 0;
    struct buf plain;
    buf_init(&plain);
    /* Its wrap first; a key the device keeps for the backup when the wrap
     * is not there or is for a key it no longer holds. */
    uint8_t body_key[ENVELOPE_BODY_KEY_LEN];
    bool unwrapped = false;
    int orc = shaped ? STATUS_NOT_FOUND : STATUS_BAD_REQUEST;
    if (shaped && key != NULL) {
        orc = envelope_unwrap(&env, key, body_key);
        unwrapped = orc == 0;
        if (orc == 0)
            orc = envelope_open_body(&env, sender_pk, body_key, &plain);
    }
    if (shaped && (orc == STATUS_NOT_FOUND || orc == STATUS_CONFLICT) && !kept)
        kept = cc_bk_find(c, &msg.message_id, &msg.conversation_id, kept_key);
    if (shaped && (orc == STATUS_NOT_FOUND || orc == STATUS_CONFLICT) && kept)
        orc = envelope_open_body(&env, sender_pk, kept_key, &plain);
    sodium_memzero(kept_key, sizeof kept_key);
    free(env.wraps);
    free(env.recipients);
    /* What this device read goes into the account's key backup. */
    if (orc == 0 && unwrapped)
        cc_bk_learn(c, &msg.message_id, &msg.conversation_id, body_key);
    sodium_memzero(body_key, sizeof body_key);
    if (orc == 0) {
        /* Authenticated context: now the replay ledger may judge it. */
        msg.signed_sent_at = pe->sent_at;
        msg.counter = pe->counter;
        msg.n_recipients = sm->n_recipients > 0 ? sm->n_recipients : pe->n_wraps;
        struct ledger *ledger = NULL;
        rc = ledger_of(c, &ledger);
        if (rc != 0) {
            buf_wipe(&plain);
            buf_cleanup(&plain);
            return rc;
        }
        bool gap = false;
        enum ledger_verdict v =
            ledger_check(ledger, &msg.conversation_id, &msg.sender_device_id, &msg.client_msg_id,
                         pe->counter, &msg.message_id, &gap);
        if (v == LEDGER_NEW &&
            ledger_record(ledger, &msg.conversation_id, &msg.sender_device_id, &msg.client_msg_id,
                          &msg.message_id, pe->counter) != 0) {
            buf_wipe(&plain);
            buf_cleanup(&plain);
            return cc_fail(c, STATUS_IO, CARECHAT_ERROR_PROFILE,
                           "the replay ledger cannot be written");
        }
        msg.counter_gap = gap;
        if (gap)
            log_warn(MOD, "messages of a sender are missing before this one (counter gap)");
        if (v == LEDGER_REPLAY) {
            log_warn(MOD, "a replayed message (seen before under another message id): dropped");
            msg.state = CARECHAT_MESSAGE_REPLAYED;
            buf_wipe(&plain);
            buf_cleanup(&plain);
            *out = msg;
            return 0;
        }
        msg.state = content_decode(plain.data, plain.len, &msg);
        if (msg.state != CARECHAT_MESSAGE_OK)
            log_warn(MOD, "a verified message whose content this client cannot read (%s)",
                     msg.state == CARECHAT_MESSAGE_UNSUPPORTED ? "a newer kind" : "malformed");
    } else if (orc == STATUS_NOT_FOUND || orc == STATUS_CONFLICT) {
        msg.state = CARECHAT_MESSAGE_NO_KEY;
    } else {
        log_warn(MOD, "a message that does not verify or decrypt (%s)", status_str(orc));
    }
    buf_wipe(&plain);
    buf_cleanup(&plain);
    *out = msg;
    return 0;
}

int carechat_sync(struct carechat *c) {
    cc_clear_error(c);
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    /* Deliveries may come before the answer. */
    cc_deliveries_restart(c);
    Carechat__V1__Sync sy;
    carechat__v1__sync__init(&sy);
    sy.after_cursor = (ProtobufCBinaryData){c->profile->ack_cursor_len, c->profile->ack_cursor};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_SYNC;
    req.sync = &sy;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_SYNC, "starting delivery", NULL, &resp);
    cc_free_response(resp);
    if (rc != 0)
        c->deliveries.synced = false;
    return rc;
}

static bool seen_before(struct cc_msg *m, const struct id *id) {
    for (size_t i = 0; i < m->seen_n; i++)
        if (same(&m->seen[i], id->b))
            return true;
    return false;
}

static void remember(struct cc_msg *m, const struct id *id) {
    m->seen[m->seen_next] = *id;
    m->seen_next = (m->seen_next + 1) % CARECHAT_DEDUP_IDS;
    if (m->seen_n < CARECHAT_DEDUP_IDS)
        m->seen_n++;
}

/* Handles one taken delivery. *got is set when it produced a message. */
static int process(struct carechat *c, const Carechat__V1__Delivery *d,
                   struct carechat_message *msg, bool *got) {
    struct cc_msg *m = c->msg;
    struct carechat_event e;
    memset(&e, 0, sizeof e);
    struct id account;
    switch (d->item_case) {
    case CARECHAT__V1__DELIVERY__ITEM_MESSAGE: {
        struct id mid;
        if (d->message != NULL && get_id(d->message->message_id, &mid) && seen_before(m, &mid))
            return 0;
        int rc = open_stored(c, d->message, msg);
        if (rc != 0)
            return rc;
        remember(m, &msg->message_id);
        if (msg->state == CARECHAT_MESSAGE_REPLAYED) {
            carechat_message_cleanup(msg);
            return 0; /* shown once already, under its first message id */
        }
        *got = true;
        return 0;
    }
    case CARECHAT__V1__DELIVERY__ITEM_RECEIPT:
        e.kind = CARECHAT_EVENT_RECEIPT;
        if (get_id(d->receipt->conversation_id, &e.conversation_id) &&
            get_id(d->receipt->message_id, &e.message_id) &&
            get_id(d->receipt->account_id, &e.account_id)) {
            e.receipt = (enum carechat_receipt)d->receipt->kind;
            e.at = d->receipt->at;
            cc_push_event(c, &e);
        }
        return 0;
    case CARECHAT__V1__DELIVERY__ITEM_RECALL: {
        e.kind = CARECHAT_EVENT_RECALL;
        struct id sender, cmid;
        if (get_id(d->recall->conversation_id, &e.conversation_id) &&
            get_id(d->recall->message_id, &e.message_id)) {
            e.at = d->recall->recalled_at;
            if (get_id(d->recall->sender_account_id, &sender) &&
                get_id(d->recall->client_msg_id, &cmid)) {
                int rc = verify_recall(c, &e.conversation_id, &e.message_id, &sender, &cmid,
                                       d->recall->signer_account_id, d->recall->signer_device_id,
                                       d->recall->signature, &e.signed_by_sender, &e.by_account_id,
                                       &e.by_verified);
                if (rc != 0)
                    return rc;
            }
            cc_push_event(c, &e);
        }
        return 0;
    }
    case CARECHAT__V1__DELIVERY__ITEM_URGENT_ACK:
        e.kind = CARECHAT_EVENT_URGENT_ACK;
        if (get_id(d->urgent_ack->conversation_id, &e.conversation_id) &&
            get_id(d->urgent_ack->message_id, &e.message_id) &&
            get_id(d->urgent_ack->account_id, &e.account_id)) {
            e.at = d->urgent_ack->acknowledged_at;
            cc_push_event(c, &e);
        }
        return 0;
    case CARECHAT__V1__DELIVERY__ITEM_MEMBERSHIP:
        if (!get_id(d->membership->conversation_id, &e.conversation_id))
            return 0;
        /* The member set changed: fetched again before the next send. */
        forget_members(c, &e.conversation_id);
        e.kind = CARECHAT_EVENT_MEMBERSHIP;
        if (get_id(d->membership->account_id, &e.account_id) &&
            get_id(d->membership->by_account_id, &e.by_account_id)) {
            e.membership = d->membership->change >= CARECHAT__V1__MEMBERSHIP_CHANGE__JOINED &&
                                   d->membership->change <= CARECHAT__V1__MEMBERSHIP_CHANGE__REMOVED
                               ? (enum carechat_membership_change)d->membership->change
                               : CARECHAT_MEMBERSHIP_UNSPECIFIED;
            e.at = d->membership->at;
            cc_push_event(c, &e);
        }
        return 0;
    case CARECHAT__V1__DELIVERY__ITEM_DEVICE_LIST:
        /* Fetched again (and its version checked) before the next use. */
        if (get_id(d->device_list->account_id, &account)) {
            const struct acct_devs *a = find_acct(m, &account);
            if (a != NULL && d->device_list->version > a->version)
                forget_acct(m, &account);
        }
        return 0;
    default:
        return 0;
    }
}

/* Reconnection of a waiting carechat_recv(): the first pause and the most. */
#define RECONNECT_FIRST_MS 250
#define RECONNECT_MAX_MS 2000

/* After carechat_recv() failed with `rc`: when the connection was lost or
 * could not be made (a server restarting, closing with 1001; the network),
 * not ended by the server (ReplacedElsewhere, SessionRevoked), and a pause
 * of *pause_ms still ends before `deadline`, pauses, doubles *pause_ms (at
 * most RECONNECT_MAX_MS) and returns true: try again. */
static bool pause_to_reconnect(struct carechat *c, int rc, int64_t deadline, int *pause_ms) {
    if ((rc != STATUS_IO && rc != STATUS_UNAVAILABLE) || c->err_kind != CARECHAT_ERROR_CONNECTION ||
        c->ended_by != 0 || clock_monotonic_ms() + *pause_ms >= deadline)
        return false;
    log_info(MOD, "the connection was lost; connecting again in %d ms", *pause_ms);
    struct timespec ts = {.tv_sec = *pause_ms / 1000,
                          .tv_nsec = (long)(*pause_ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
    *pause_ms = *pause_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : *pause_ms * 2;
    return true;
}

int carechat_recv(struct carechat *c, int wait_ms, struct carechat_message *out) {
    cc_clear_error(c);
    if (out == NULL || wait_ms < 0)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "recv: a message pointer and a wait of 0 or more are required");
    struct cc_msg *m = state(c);
    struct cc_deliveries *d = &c->deliveries;
    const int64_t start = clock_monotonic_ms();
    int64_t replay_deadline = start + c->request_timeout_ms + wait_ms;
    /* When the queue was last seen empty: a lost connection is made again
     * until wait_ms after that. */
    int64_t quiet_since = start;
    int pause_ms = RECONNECT_FIRST_MS;
    /* Bounded: every round takes a delivery, receives a frame, pauses before
     * connecting again (until the wait ends), or ends. */
    for (;;) {
        if (!d->synced || c->t == NULL || !transport_is_open(c->t)) {
            int rc = carechat_sync(c);
            if (rc != 0 && pause_to_reconnect(c, rc, quiet_since + wait_ms, &pause_ms))
                continue;
            if (rc != 0)
                return rc;
            replay_deadline = clock_monotonic_ms() + c->request_timeout_ms + wait_ms;
        }
        Carechat__V1__Frame *f;
        while ((f = cc_take_delivery(c)) != NULL) {
            const Carechat__V1__Delivery *item = f->delivery;
            uint8_t prev[PROFILE_MAX_CURSOR];
            const size_t prev_len = m->taken_len;
            memcpy(prev, m->taken, prev_len);
            int rc = 0;
            if (item->cursor.len == 0 || item->cursor.len > PROFILE_MAX_CURSOR) {
                rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                             "a delivery with a malformed cursor");
            } else {
                memcpy(m->taken, item->cursor.data, item->cursor.len);
                m->taken_len = item->cursor.len;
            }
            bool got = false;
            struct carechat_message msg;
            memset(&msg, 0, sizeof msg);
            if (rc == 0)
                rc = process(c, item, &msg, &got);
            proto_free(f);
            if (rc != 0) {
                /* Not processed: not to be acknowledged either. The next call
                 * syncs again and the server replays it. */
                memcpy(m->taken, prev, prev_len);
                m->taken_len = prev_len;
                d->synced = false;
                return rc;
            }
            if (got) {
                *out = msg;
                return 0;
            }
        }
        if (d->overflowed) {
            int rc = carechat_ack(c);
            if (rc == 0)
                rc = carechat_sync(c);
            if (rc != 0)
                return rc;
            continue;
        }
        int64_t deadline = replay_deadline;
        if (d->queue_empty) {
            if (d->queue_empty_at > quiet_since)
                quiet_since = d->queue_empty_at;
            pause_ms = RECONNECT_FIRST_MS;
            deadline = quiet_since + wait_ms;
        }
        if (clock_monotonic_ms() >= deadline) {
            if (d->queue_empty)
                return STATUS_NOT_FOUND;
            return cc_fail(c, STATUS_UNAVAILABLE, CARECHAT_ERROR_CONNECTION,
                           "receiving: the server did not finish its replay in time");
        }
        int rc = cc_pump(c, deadline);
        if (rc != 0 && rc != STATUS_UNAVAILABLE &&
            !pause_to_reconnect(c, rc, quiet_since + wait_ms, &pause_ms))
            return rc;
    }
}

int carechat_ack(struct carechat *c) {
    cc_clear_error(c);
    struct cc_msg *m = state(c);
    struct profile *p = c->profile;
    if (m->taken_len == 0 ||
        (m->taken_len == p->ack_cursor_len && memcmp(m->taken, p->ack_cursor, m->taken_len) == 0))
        return 0;
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    Carechat__V1__Ack ack;
    carechat__v1__ack__init(&ack);
    ack.cursor = (ProtobufCBinaryData){m->taken_len, m->taken};
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_ACK;
    req.ack = &ack;
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET, "acknowledging deliveries",
                    NULL, &resp);
    cc_free_response(resp);
    if (rc != 0)
        return rc;
    memcpy(p->ack_cursor, m->taken, m->taken_len);
    p->ack_cursor_len = m->taken_len;
    p->last_ack_at = clock_now();
    rc = cc_save_profile(c);
    /* What was received is processed: its keys join the backup. */
    if (rc == 0)
        cc_bk_flush_quietly(c);
    return rc;
}

/* ---- history, receipts, typing ---- */

void carechat_messages_free(struct carechat_messages *list) {
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++)
        carechat_message_cleanup(&list->items[i]);
    free(list->items);
    free(list);
}

static int by_seq(const void *a, const void *b) {
    const struct carechat_message *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int carechat_history(struct carechat *c, const struct id *conversation_id, uint64_t before_seq,
                     unsigned limit, struct carechat_messages **out) {
    cc_clear_error(c);
    const char *what = "reading the history";
    if (conversation_id == NULL || out == NULL || limit > PAGE_LIMIT)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "history: a conversation and a limit of 0..100 are required");
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    state(c);
    Carechat__V1__History hi;
    carechat__v1__history__init(&hi);
    hi.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)conversation_id->b};
    hi.before_seq = before_seq;
    hi.limit = limit;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_HISTORY;
    req.history = &hi;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such conversation, or you are not a member"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, &req, CARECHAT__V1__RESPONSE__RESULT_HISTORY_PAGE, what, hints, &resp);
    if (rc != 0)
        return rc;
    const Carechat__V1__HistoryPage *page = resp->response->history_page;
    if (page->n_messages > PAGE_LIMIT)
        rc = cc_fail(c, STATUS_CORRUPT, CARECHAT_ERROR_PROTOCOL,
                     "%s: the server sent a page over the limit", what);
    struct carechat_messages *list = NULL;
    if (rc == 0) {
        list = xcalloc(1, sizeof *list);
        list->items = xcalloc(page->n_messages + 1, sizeof *list->items);
        list->more = page->more;
        for (size_t i = 0; rc == 0 && i < page->n_messages; i++) {
            rc = open_stored(c, page->messages[i], &list->items[list->n]);
            if (rc == 0)
                list->n++;
        }
    }
    cc_free_response(resp);
    if (rc != 0) {
        carechat_messages_free(list);
        return rc;
    }
    qsort(list->items, list->n, sizeof *list->items, by_seq);
    *out = list;
    cc_bk_flush_quietly(c);
    return 0;
}

int cc_msg_simple_call(struct carechat *c, Carechat__V1__Frame *req, const char *what) {
    int rc = cc_ensure_session(c);
    if (rc != 0)
        return rc;
    const struct cc_hint hints[] = {
        {CARECHAT__V1__STATUS__NOT_FOUND, "no such conversation or message"},
        {CARECHAT__V1__STATUS__OK, NULL},
    };
    Carechat__V1__Frame *resp = NULL;
    rc = cc_request(c, req, CARECHAT__V1__RESPONSE__RESULT__NOT_SET, what, hints, &resp);
    cc_free_response(resp);
    return rc;
}

int carechat_send_receipt(struct carechat *c, const struct id *conversation_id,
                          enum carechat_receipt kind, const struct id *message_ids, size_t n) {
    cc_clear_error(c);
    if (conversation_id == NULL || message_ids == NULL || n == 0 || n > 100 ||
        (kind != CARECHAT_RECEIPT_DELIVERED && kind != CARECHAT_RECEIPT_READ))
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "receipt: a conversation, a kind and 1..100 message ids are required");
    ProtobufCBinaryData ids[100];
    for (size_t i = 0; i < n; i++)
        ids[i] = (ProtobufCBinaryData){ID_LEN, (uint8_t *)message_ids[i].b};
    Carechat__V1__SendReceipt sr;
    carechat__v1__send_receipt__init(&sr);
    sr.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)conversation_id->b};
    sr.kind = (Carechat__V1__ReceiptKind)kind;
    sr.n_message_ids = n;
    sr.message_ids = ids;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_SEND_RECEIPT;
    req.send_receipt = &sr;
    return cc_msg_simple_call(c, &req, "sending receipts");
}

int carechat_typing(struct carechat *c, const struct id *conversation_id, bool typing) {
    cc_clear_error(c);
    if (conversation_id == NULL)
        return cc_fail(c, STATUS_BAD_REQUEST, CARECHAT_ERROR_ARGUMENT,
                       "typing: a conversation is required");
    Carechat__V1__Typing ty;
    carechat__v1__typing__init(&ty);
    ty.conversation_id = (ProtobufCBinaryData){ID_LEN, (uint8_t *)conversation_id->b};
    ty.typing = typing;
    Carechat__V1__Frame req;
    carechat__v1__frame__init(&req);
    req.body_case = CARECHAT__V1__FRAME__BODY_TYPING;
    req.typing = &ty;
    return cc_msg_simple_call(c, &req, "sending a typing hint");
}
