/*
 * client/envelope_test.c: the message envelope and device keys: round trips to
 * several devices, every kind of tampering, missing and wrong keys, and the byte
 * layouts documented in envelope.h, which are carechat.proto's DeviceKeys and
 * Envelope signatures (rebuilt here by hand from the proto's comments).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/rand.h"
#include "base/status.h"
#include "client/envelope.h"
#include "client/hpke.h"

#define NOW_MS INT64_C(1800000000000)
#define DAY_MS INT64_C(86400000)

/* A device as a test sees it: identity, encryption key, and its ids. */
struct device {
    struct id account_id;
    struct id device_id;
    struct envelope_identity *identity;
    uint8_t identity_pk[ENVELOPE_SIGN_PK_LEN];
    struct envelope_enc_key *key;
};

static void device_init(struct device *d, const struct id *account_id) {
    d->account_id = *account_id;
    d->device_id = id_new();
    assert_int_equal(envelope_identity_new(&d->identity), 0);
    envelope_identity_public(d->identity, d->identity_pk);
    assert_int_equal(
        envelope_enc_key_new(d->identity, &d->device_id, 7, NOW_MS + 30 * DAY_MS, &d->key), 0);
}

static void device_cleanup(struct device *d) {
    envelope_enc_key_free(d->key);
    envelope_identity_free(d->identity);
}

static struct envelope_recipient recipient_of(const struct device *d) {
    struct envelope_recipient r;
    r.key = envelope_enc_key_public(d->key);
    memcpy(r.identity_pk, d->identity_pk, sizeof r.identity_pk);
    return r;
}

static struct envelope_header header_from(const struct device *sender) {
    struct envelope_header h;
    memset(&h, 0, sizeof h);
    h.conversation_id = id_new();
    h.client_msg_id = id_new();
    h.sender_device_id = sender->device_id;
    h.sent_at = NOW_MS;
    h.counter = 1;
    return h;
}

/* A deep copy, so a test can tamper with one and keep the original. */
static void envelope_copy(const struct envelope *src, struct envelope *dst) {
    *dst = *src;
    dst->opaque_header =
        src->opaque_header_len > 0 ? xmemdup(src->opaque_header, src->opaque_header_len) : NULL;
    dst->body = xmemdup(src->body, src->body_len);
    dst->wraps = xmemdup(src->wraps, src->n_wraps * sizeof *src->wraps);
}

static void assert_opens_to(const struct envelope *env, const struct device *sender,
                            const struct device *d, const uint8_t *body, size_t body_len) {
    struct buf out;
    buf_init(&out);
    assert_int_equal(envelope_open(env, sender->identity_pk, d->key, &out), 0);
    assert_int_equal(out.len, body_len);
    if (body_len > 0)
        assert_memory_equal(out.data, body, body_len);
    buf_wipe(&out);
    buf_cleanup(&out);
}

static int open_status(const struct envelope *env, const struct device *sender,
                       const struct device *d) {
    struct buf out;
    buf_init(&out);
    buf_append(&out, "stale", 5);
    int rc = envelope_open(env, sender->identity_pk, d->key, &out);
    if (rc != 0)
        assert_int_equal(out.len, 0); /* nothing of the body on failure */
    buf_wipe(&out);
    buf_cleanup(&out);
    return rc;
}

static int setup_clock(void **state) {
    clock_set_manual(NOW_MS);
    return 0;
}

static int reset_clock(void **state) {
    clock_reset();
    return 0;
}

/* Sender S (account 1) writes to patient P (account 2, two devices) and S's own
 * second device: three wraps, each device reads the same body. */
static void test_envelope_round_trip_to_three_devices(void **state) {
    struct id acct1 = id_new(), acct2 = id_new();
    struct device s, s2, p1, p2;
    device_init(&s, &acct1);
    device_init(&s2, &acct1);
    device_init(&p1, &acct2);
    device_init(&p2, &acct2);
    struct envelope_recipient to[3] = {recipient_of(&p1), recipient_of(&p2), recipient_of(&s2)};
    struct envelope_header h = header_from(&s);

    static const size_t sizes[] = {0, 1, 300, ENVELOPE_MAX_MESSAGE_LEN};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *body = xmalloc(sizes[i]);
        rand_bytes(body, sizes[i]);
        struct envelope env;
        assert_int_equal(envelope_seal(&h, body, sizes[i], to, 3, s.identity, &env), 0);
        assert_int_equal(env.n_wraps, 3);
        /* padded: the stored length tells the bucket, not the length */
        assert_int_equal(env.body_len,
                         ENVELOPE_SIG_LEN + envelope_padded_len(sizes[i]) + ENVELOPE_TAG_LEN);
        assert_int_equal(envelope_verify(&env, s.identity_pk), 0);
        assert_memory_equal(&env.header, &h, sizeof h);
        assert_int_equal(env.version, ENVELOPE_VERSION);
        assert_int_equal(env.opaque_header_len, 0);
        for (size_t w = 1; w < env.n_wraps; w++)
            assert_true(memcmp(env.wraps[w - 1].device_id.b, env.wraps[w].device_id.b, ID_LEN) < 0);
        assert_opens_to(&env, &s, &p1, body, sizes[i]);
        assert_opens_to(&env, &s, &p2, body, sizes[i]);
        assert_opens_to(&env, &s, &s2, body, sizes[i]);
        envelope_cleanup(&env);
        free(body);
    }
    device_cleanup(&s);
    device_cleanup(&s2);
    device_cleanup(&p1);
    device_cleanup(&p2);
}

static void test_envelope_tampering_fails_to_open(void **state) {
    struct id acct = id_new();
    struct device s, a, b, c;
    device_init(&s, &acct);
    device_init(&a, &acct);
    device_init(&b, &acct);
    device_init(&c, &acct);
    struct envelope_recipient to[3] = {recipient_of(&a), recipient_of(&b), recipient_of(&c)};
    struct envelope_header h = header_from(&s);
    const uint8_t body[] = "lab results are in; please call the clinic";
    struct envelope env;
    assert_int_equal(envelope_seal(&h, body, sizeof body, to, 3, s.identity, &env), 0);
    assert_opens_to(&env, &s, &a, body, sizeof body);

    struct envelope t;
    assert_int_equal(envelope_verify(&env, s.identity_pk), 0);
    /* every bound field (conversation, client_msg_id, sender device, urgent
     * flag, sender clock, counter, the recipient list): neither signature
     * holds */
    for (int field = 0; field < 7; field++) {
        envelope_copy(&env, &t);
        switch (field) {
        case 4:
            t.header.urgent = !t.header.urgent;
            break;
        case 5:
            t.header.sent_at += 1;
            break;
        case 6:
            t.header.counter += 1;
            break;
        case 7:
            /* the server claims another recipient set than the one signed */
            t.recipients = xcalloc(2, sizeof *t.recipients);
            t.recipients[0] = (struct envelope_ref){t.wraps[0].device_id, t.wraps[0].key_id};
            t.recipients[1] = (struct envelope_ref){t.wraps[1].device_id, t.wraps[1].key_id};
            t.n_recipients = 2;
            break;
        case 0:
            t.header.conversation_id.b[3] ^= 1;
            break;
        case 1:
            t.header.client_msg_id.b[0] ^= 1;
            break;
        default:
            t.header.sender_device_id.b[7] ^= 1;
            break;
        }
        assert_int_equal(open_status(&t, &s, &a), STATUS_CORRUPT);
        /* (the recipient list only matters to a recipient of one wrap) */
        if (field != 7)
            assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_CORRUPT);
        envelope_cleanup(&t);
    }
    /* another version */
    envelope_copy(&env, &t);
    t.version = 1;
    assert_int_equal(open_status(&t, &s, &a), STATUS_BAD_REQUEST);
    envelope_cleanup(&t);
    /* a header, which would have travelled in clear */
    envelope_copy(&env, &t);
    t.opaque_header = xmemdup("x", 1);
    t.opaque_header_len = 1;
    assert_int_equal(open_status(&t, &s, &a), STATUS_BAD_REQUEST);
    assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_BAD_REQUEST);
    envelope_cleanup(&t);
    /* the body: first, middle and last byte, and the nonce */
    size_t positions[] = {0, env.body_len / 2, env.body_len - 1};
    for (size_t i = 0; i < 3; i++) {
        envelope_copy(&env, &t);
        t.body[positions[i]] ^= 0x80;
        assert_int_equal(open_status(&t, &s, &a), STATUS_CORRUPT);
        assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_CORRUPT);
        envelope_cleanup(&t);
    }
    envelope_copy(&env, &t);
    t.nonce[23] ^= 1;
    assert_int_equal(open_status(&t, &s, &a), STATUS_CORRUPT);
    assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_CORRUPT);
    envelope_cleanup(&t);
    /* a truncated body */
    envelope_copy(&env, &t);
    t.body_len--;
    assert_int_equal(open_status(&t, &s, &a), STATUS_CORRUPT);
    envelope_cleanup(&t);
    /* every wrap: its key id, enc and wrapped key. The outer signature covers
     * them all; the recipient whose wrap it is cannot open it. */
    for (size_t w = 0; w < env.n_wraps; w++) {
        const bool own = memcmp(env.wraps[w].device_id.b, a.device_id.b, ID_LEN) == 0;
        for (int part = 0; part < 3; part++) {
            envelope_copy(&env, &t);
            if (part == 0)
                t.wraps[w].key_id ^= 1;
            else if (part == 1)
                t.wraps[w].enc[5] ^= 1;
            else
                t.wraps[w].wrapped_key[40] ^= 1;
            assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_CORRUPT);
            if (own)
                assert_int_equal(open_status(&t, &s, &a),
                                 part == 0 ? STATUS_CONFLICT : STATUS_CORRUPT);
            envelope_cleanup(&t);
        }
    }
    /* a wrap dropped: the outer signature breaks; a recipient given only its
     * own wrap and the signed recipient list (as the server delivers) still
     * opens it, but not without the list */
    envelope_copy(&env, &t);
    t.n_wraps--;
    assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_CORRUPT);
    envelope_cleanup(&t);
    envelope_copy(&env, &t);
    for (size_t w = 0; w < env.n_wraps; w++)
        if (memcmp(env.wraps[w].device_id.b, a.device_id.b, ID_LEN) == 0)
            t.wraps[0] = env.wraps[w];
    t.n_wraps = 1;
    assert_int_equal(open_status(&t, &s, &a), STATUS_CORRUPT);
    t.recipients = xcalloc(env.n_wraps, sizeof *t.recipients);
    for (size_t w = 0; w < env.n_wraps; w++)
        t.recipients[w] = (struct envelope_ref){env.wraps[w].device_id, env.wraps[w].key_id};
    t.n_recipients = env.n_wraps;
    assert_opens_to(&t, &s, &a, body, sizeof body);
    /* ... but not when the single wrap is someone else's key for this device */
    t.wraps[0].wrapped_key[0] ^= 1;
    assert_int_equal(open_status(&t, &s, &a), STATUS_CORRUPT);
    envelope_cleanup(&t);
    /* the outer signature */
    envelope_copy(&env, &t);
    t.sig[10] ^= 1;
    assert_int_equal(envelope_verify(&t, s.identity_pk), STATUS_CORRUPT);
    envelope_cleanup(&t);
    /* another sender's identity key: neither signature verifies */
    assert_int_equal(open_status(&env, &b, &a), STATUS_CORRUPT);
    assert_int_equal(envelope_verify(&env, b.identity_pk), STATUS_CORRUPT);
    /* and the original still opens */
    assert_opens_to(&env, &s, &a, body, sizeof body);

    envelope_cleanup(&env);
    device_cleanup(&s);
    device_cleanup(&a);
    device_cleanup(&b);
    device_cleanup(&c);
}

/* A body key obtained otherwise (the sender's own copy, a key backup) opens
 * the envelope as a device without a wrap receives it: no wraps, the signed
 * recipient list. Another key, a recipient list the sender did not sign, or
 * neither wraps nor recipients do not. */
static void test_envelope_open_with_body_key(void **state) {
    struct id acct1 = id_new(), acct2 = id_new();
    struct device s, p, late;
    device_init(&s, &acct1);
    device_init(&p, &acct2);
    device_init(&late, &acct2);
    struct envelope_recipient to[2] = {recipient_of(&p), recipient_of(&s)};
    struct envelope_header h = header_from(&s);
    const uint8_t body[] = "history for a new phone";
    struct envelope env;
    uint8_t key[ENVELOPE_BODY_KEY_LEN], unwrapped[ENVELOPE_BODY_KEY_LEN];
    assert_int_equal(envelope_seal_keep_key(&h, body, sizeof body, to, 2, s.identity, &env, key),
                     0);
    /* The wrap holds the same key. */
    assert_int_equal(envelope_unwrap(&env, p.key, unwrapped), 0);
    assert_memory_equal(unwrapped, key, sizeof key);
    assert_int_equal(envelope_unwrap(&env, late.key, unwrapped), STATUS_NOT_FOUND);

    /* As the server hands it to `late`: no wrap, the signed recipients. */
    struct envelope t;
    envelope_copy(&env, &t);
    t.n_wraps = 0;
    t.recipients = xcalloc(env.n_wraps, sizeof *t.recipients);
    for (size_t w = 0; w < env.n_wraps; w++)
        t.recipients[w] = (struct envelope_ref){env.wraps[w].device_id, env.wraps[w].key_id};
    t.n_recipients = env.n_wraps;
    struct buf out;
    buf_init(&out);
    assert_int_equal(envelope_open_body(&t, s.identity_pk, key, &out), 0);
    assert_int_equal(out.len, sizeof body);
    assert_memory_equal(out.data, body, sizeof body);
    assert_int_equal(open_status(&t, &s, &late), STATUS_BAD_REQUEST);
    /* Another key; another sender. */
    uint8_t other[ENVELOPE_BODY_KEY_LEN];
    memcpy(other, key, sizeof other);
    other[31] ^= 1;
    assert_int_equal(envelope_open_body(&t, s.identity_pk, other, &out), STATUS_CORRUPT);
    assert_int_equal(out.len, 0);
    assert_int_equal(envelope_open_body(&t, p.identity_pk, key, &out), STATUS_CORRUPT);
    /* A recipient list the sender did not sign (one left out). */
    t.n_recipients--;
    assert_int_equal(envelope_open_body(&t, s.identity_pk, key, &out), STATUS_CORRUPT);
    /* Neither wraps nor recipients: no binding to check against. */
    t.n_recipients = 0;
    assert_int_equal(envelope_open_body(&t, s.identity_pk, key, &out), STATUS_BAD_REQUEST);
    envelope_cleanup(&t);
    /* The whole envelope opens with the key too. */
    assert_int_equal(envelope_open_body(&env, s.identity_pk, key, &out), 0);
    buf_wipe(&out);
    buf_cleanup(&out);
    envelope_cleanup(&env);
    device_cleanup(&s);
    device_cleanup(&p);
    device_cleanup(&late);
}

static void test_envelope_device_without_wrap_is_not_found(void **state) {
    struct id acct = id_new();
    struct device s, a, outsider;
    device_init(&s, &acct);
    device_init(&a, &acct);
    device_init(&outsider, &acct);
    struct envelope_recipient to[1] = {recipient_of(&a)};
    struct envelope_header h = header_from(&s);
    struct envelope env;
    assert_int_equal(envelope_seal(&h, (const uint8_t *)"hi", 2, to, 1, s.identity, &env), 0);
    assert_int_equal(open_status(&env, &s, &outsider), STATUS_NOT_FOUND);
    assert_int_equal(open_status(&env, &s, &s), STATUS_NOT_FOUND);
    envelope_cleanup(&env);
    device_cleanup(&s);
    device_cleanup(&a);
    device_cleanup(&outsider);
}

/* A device opening with a key other than the one its wrap names: a rotated-away
 * key gets CONFLICT (the wrap's key id says which key it needs). */
static void test_envelope_wrong_recipient_key_id_is_conflict(void **state) {
    struct id acct = id_new();
    struct device s, a;
    device_init(&s, &acct);
    device_init(&a, &acct);
    struct envelope_enc_key *old_key = a.key;
    assert_int_equal(envelope_enc_key_new(a.identity, &a.device_id, 8, NOW_MS + DAY_MS, &a.key), 0);
    struct envelope_recipient to[1] = {recipient_of(&a)};
    struct envelope_header h = header_from(&s);
    struct envelope env;
    assert_int_equal(envelope_seal(&h, (const uint8_t *)"rotated", 7, to, 1, s.identity, &env), 0);
    assert_opens_to(&env, &s, &a, (const uint8_t *)"rotated", 7);

    struct envelope_enc_key *new_key = a.key;
    a.key = old_key;
    assert_int_equal(open_status(&env, &s, &a), STATUS_CONFLICT);
    a.key = new_key;
    envelope_enc_key_free(old_key);
    envelope_cleanup(&env);
    device_cleanup(&s);
    device_cleanup(&a);
}

/* The encryption key statement, built by hand from carechat.proto's
 * DeviceKeys.signature comment and signed with a raw Ed25519 key. */
static void sign_statement_by_hand(struct envelope_device_key *k, const uint8_t ed_sk[64]) {
    uint8_t st[70];
    memcpy(st, "carechat.v1 encryption key", 26);
    memcpy(st + 26, k->pk, 32);
    for (int i = 0; i < 4; i++)
        st[58 + i] = (uint8_t)(k->key_id >> (24 - 8 * i));
    uint64_t e = (uint64_t)k->expires_at_ms;
    for (int i = 0; i < 8; i++)
        st[62 + i] = (uint8_t)(e >> (56 - 8 * i));
    assert_int_equal(crypto_sign_detached(k->sig, NULL, st, sizeof st, ed_sk), 0);
}

/* A sender fooled into wrapping for a key that carries A's device and key id but
 * is not A's: A cannot unwrap it (CORRUPT), though the signature is fine. */
static void test_envelope_wrap_to_wrong_key_fails(void **state) {
    struct id acct = id_new();
    struct device s, a;
    device_init(&s, &acct);
    device_init(&a, &acct);
    uint8_t ed_pk[32], ed_sk[64], x_sk[32];
    crypto_sign_keypair(ed_pk, ed_sk);
    struct envelope_device_key forged = *envelope_enc_key_public(a.key);
    hpke_keypair(forged.pk, x_sk);
    sign_statement_by_hand(&forged, ed_sk);
    struct envelope_recipient to[1];
    to[0].key = &forged;
    memcpy(to[0].identity_pk, ed_pk, 32);
    struct envelope_header h = header_from(&s);
    struct envelope env;
    assert_int_equal(envelope_seal(&h, (const uint8_t *)"x", 1, to, 1, s.identity, &env), 0);
    assert_int_equal(open_status(&env, &s, &a), STATUS_CORRUPT);
    envelope_cleanup(&env);
    device_cleanup(&s);
    device_cleanup(&a);
}

/* Rebuilds the signed transcript, the wrap's HPKE info and aad and the body's
 * aad from the layout comment alone, and checks them against what seal made. */
static void test_envelope_byte_layout_matches_header_comment(void **state) {
    struct id acct = id_new();
    struct device s;
    device_init(&s, &acct);
    /* a recipient whose private keys the test holds */
    uint8_t ed_pk[32], ed_sk[64], x_sk[32];
    crypto_sign_keypair(ed_pk, ed_sk);
    struct envelope_device_key dk;
    dk.device_id = id_new();
    dk.key_id = 0x01020304;
    dk.expires_at_ms = NOW_MS + DAY_MS;
    hpke_keypair(dk.pk, x_sk);
    sign_statement_by_hand(&dk, ed_sk);
    assert_int_equal(envelope_device_key_verify(&dk, ed_pk, NOW_MS), 0);

    struct envelope_recipient to[1];
    to[0].key = &dk;
    memcpy(to[0].identity_pk, ed_pk, 32);
    struct envelope_header h = header_from(&s);
    h.urgent = true;
    h.sent_at = 0x010203040506;
    h.counter = 0x0107;
    const uint8_t body[] = "layout check";
    struct envelope env;
    assert_int_equal(envelope_seal(&h, body, sizeof body, to, 1, s.identity, &env), 0);

    /* the recipient hash: "carechat.v2 recipients" | count | device | key id */
    const uint8_t key_id[4] = {1, 2, 3, 4};
    struct buf rh;
    buf_init(&rh);
    buf_append(&rh, "carechat.v2 recipients", 22);
    const uint8_t one[4] = {0, 0, 0, 1};
    buf_append(&rh, one, 4);
    buf_append(&rh, dk.device_id.b, 16);
    buf_append(&rh, key_id, 4);
    uint8_t recipients_hash[32];
    crypto_hash_sha256(recipients_hash, rh.data, rh.len);
    buf_cleanup(&rh);
    /* binding B: version, conversation, client_msg_id, sender device,
     * urgent, sent_at, counter, recipient hash */
    uint8_t H[101] = {0, 0, 0, 2};
    memcpy(H + 4, h.conversation_id.b, 16);
    memcpy(H + 20, h.client_msg_id.b, 16);
    memcpy(H + 36, h.sender_device_id.b, 16);
    H[52] = 1;
    const uint8_t sent_at[8] = {0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
    memcpy(H + 53, sent_at, 8);
    const uint8_t counter[8] = {0, 0, 0, 0, 0, 0, 0x01, 0x07};
    memcpy(H + 61, counter, 8);
    memcpy(H + 69, recipients_hash, 32);

    /* carechat.proto Envelope.signature (protocol/transcript.h) */
    struct buf t;
    buf_init(&t);
    buf_append(&t, "carechat.v2 envelope", 20);
    buf_append(&t, H, sizeof H);
    uint8_t header_hash[32];
    crypto_hash_sha256(header_hash, NULL, 0);
    buf_append(&t, header_hash, 32);
    struct buf hashed;
    buf_init(&hashed);
    buf_append(&hashed, env.nonce, 24);
    buf_append(&hashed, env.body, env.body_len);
    uint8_t body_hash[32];
    crypto_hash_sha256(body_hash, hashed.data, hashed.len);
    buf_append(&t, body_hash, 32);
    buf_append(&t, one, 4);
    buf_append(&t, env.wraps[0].device_id.b, 16);
    buf_append(&t, key_id, 4);
    buf_append(&t, env.wraps[0].enc, 32);
    buf_append(&t, env.wraps[0].wrapped_key, 48);
    assert_int_equal(t.len, 20 + 101 + 32 + 32 + 4 + 100);
    assert_int_equal(crypto_sign_verify_detached(env.sig, t.data, t.len, s.identity_pk), 0);
    assert_int_equal(envelope_verify(&env, s.identity_pk), 0);

    uint8_t info[36];
    memcpy(info, "carechat.v1 wrap", 16);
    memcpy(info + 16, dk.device_id.b, 16);
    memcpy(info + 32, key_id, 4);
    uint8_t body_key[32];
    assert_int_equal(hpke_open(x_sk, env.wraps[0].enc, info, sizeof info, H, sizeof H,
                               env.wraps[0].wrapped_key, 48, body_key),
                     0);
    /* inner signature | length | message | zeros, padded to 256 */
    uint8_t plain[64 + 256];
    assert_int_equal(env.body_len, sizeof plain + 16);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, env.body,
                                                                env.body_len, H, sizeof H,
                                                                env.nonce, body_key),
                     0);
    const uint8_t len_be[4] = {0, 0, 0, sizeof body};
    assert_memory_equal(plain + 64, len_be, 4);
    assert_memory_equal(plain + 68, body, sizeof body);
    for (size_t i = 68 + sizeof body; i < sizeof plain; i++)
        assert_int_equal(plain[i], 0);
    /* the inner signature: "carechat.v2 message" | B | SHA-256(header) | SHA-256(message) */
    uint8_t inner[19 + 101 + 32 + 32];
    memcpy(inner, "carechat.v2 message", 19);
    memcpy(inner + 19, H, 101);
    crypto_hash_sha256(inner + 120, NULL, 0);
    crypto_hash_sha256(inner + 152, body, sizeof body);
    assert_int_equal(crypto_sign_verify_detached(plain, inner, sizeof inner, s.identity_pk), 0);

    buf_cleanup(&t);
    buf_cleanup(&hashed);
    envelope_cleanup(&env);
    device_cleanup(&s);
}

static void test_envelope_device_key_verify(void **state) {
    struct id acct = id_new();
    struct device a, b;
    device_init(&a, &acct);
    device_init(&b, &acct);
    const struct envelope_device_key *pub = envelope_enc_key_public(a.key);
    assert_true(memcmp(pub->device_id.b, a.device_id.b, ID_LEN) == 0);
    assert_int_equal(envelope_device_key_verify(pub, a.identity_pk, NOW_MS), 0);
    /* signed by another identity */
    assert_int_equal(envelope_device_key_verify(pub, b.identity_pk, NOW_MS), STATUS_CORRUPT);
    /* any field changed */
    for (int field = 1; field < 5; field++) {
        struct envelope_device_key k = *pub;
        switch (field) {
        case 1:
            k.key_id ^= 1;
            break;
        case 2:
            k.expires_at_ms += DAY_MS;
            break;
        case 3:
            k.pk[31] ^= 1;
            break;
        default:
            k.sig[0] ^= 1;
            break;
        }
        assert_int_equal(envelope_device_key_verify(&k, a.identity_pk, NOW_MS), STATUS_CORRUPT);
    }
    /* expired at and after its expiry */
    assert_int_equal(envelope_device_key_verify(pub, a.identity_pk, pub->expires_at_ms - 1), 0);
    assert_int_equal(envelope_device_key_verify(pub, a.identity_pk, pub->expires_at_ms),
                     STATUS_CONFLICT);
    /* a key must expire in the future */
    struct envelope_enc_key *k = NULL;
    assert_int_equal(envelope_enc_key_new(a.identity, &a.device_id, 1, NOW_MS, &k),
                     STATUS_BAD_REQUEST);
    assert_null(k);
    /* key id 0 is not a key id */
    assert_int_equal(envelope_enc_key_new(a.identity, &a.device_id, 0, NOW_MS + DAY_MS, &k),
                     STATUS_BAD_REQUEST);
    assert_null(k);
    /* an imported private key signs the same public statement */
    uint8_t pk[32], sk[32];
    hpke_keypair(pk, sk);
    assert_int_equal(envelope_enc_key_import(a.identity, &a.device_id, 9, NOW_MS + DAY_MS, sk, &k),
                     0);
    assert_memory_equal(envelope_enc_key_public(k)->pk, pk, 32);
    assert_int_equal(envelope_device_key_verify(envelope_enc_key_public(k), a.identity_pk, NOW_MS),
                     0);
    envelope_enc_key_free(k);
    device_cleanup(&a);
    device_cleanup(&b);
}

static void test_envelope_seal_refuses_bad_recipients(void **state) {
    struct id acct = id_new();
    struct device s, a, b;
    device_init(&s, &acct);
    device_init(&a, &acct);
    device_init(&b, &acct);
    struct envelope_header h = header_from(&s);
    struct envelope env;
    memset(&env, 0, sizeof env);
    const uint8_t body[] = "x";

    assert_int_equal(envelope_seal(&h, body, 1, NULL, 0, s.identity, &env), STATUS_BAD_REQUEST);
    struct envelope_recipient twice[2] = {recipient_of(&a), recipient_of(&a)};
    assert_int_equal(envelope_seal(&h, body, 1, twice, 2, s.identity, &env), STATUS_BAD_REQUEST);
    /* a key not signed by the identity the device list names */
    struct envelope_recipient wrong_identity = recipient_of(&a);
    memcpy(wrong_identity.identity_pk, b.identity_pk, 32);
    assert_int_equal(envelope_seal(&h, body, 1, &wrong_identity, 1, s.identity, &env),
                     STATUS_CORRUPT);
    /* too large */
    struct envelope_recipient ok = recipient_of(&a);
    uint8_t *big = xcalloc(ENVELOPE_MAX_BODY_LEN, 1);
    assert_int_equal(envelope_seal(&h, big, ENVELOPE_MAX_MESSAGE_LEN + 1, &ok, 1, s.identity, &env),
                     STATUS_TOO_LARGE);
    free(big);
    /* an expired key */
    clock_set_manual(NOW_MS + 31 * DAY_MS);
    assert_int_equal(envelope_seal(&h, body, 1, &ok, 1, s.identity, &env), STATUS_CONFLICT);
    clock_set_manual(NOW_MS);
    /* nothing was written on any failure */
    assert_null(env.body);
    assert_null(env.wraps);

    device_cleanup(&s);
    device_cleanup(&a);
    device_cleanup(&b);
}

static void test_envelope_open_refuses_malformed(void **state) {
    struct id acct = id_new();
    struct device s, a, b;
    device_init(&s, &acct);
    device_init(&a, &acct);
    device_init(&b, &acct);
    struct envelope_recipient to[2] = {recipient_of(&a), recipient_of(&b)};
    struct envelope_header h = header_from(&s);
    struct envelope env, t;
    assert_int_equal(envelope_seal(&h, (const uint8_t *)"m", 1, to, 2, s.identity, &env), 0);

    /* wraps out of order (swapped) or a device listed twice */
    envelope_copy(&env, &t);
    struct envelope_wrap w0 = t.wraps[0];
    t.wraps[0] = t.wraps[1];
    t.wraps[1] = w0;
    assert_int_equal(open_status(&t, &s, &a), STATUS_BAD_REQUEST);
    t.wraps[1] = t.wraps[0];
    assert_int_equal(open_status(&t, &s, &a), STATUS_BAD_REQUEST);
    envelope_cleanup(&t);
    /* no wraps; a body shorter than its tag; too many wraps; too long a body */
    envelope_copy(&env, &t);
    t.n_wraps = 0;
    assert_int_equal(open_status(&t, &s, &a), STATUS_BAD_REQUEST);
    t.n_wraps = env.n_wraps;
    t.body_len = ENVELOPE_SIG_LEN + ENVELOPE_TAG_LEN - 1;
    assert_int_equal(open_status(&t, &s, &a), STATUS_BAD_REQUEST);
    t.body_len = env.body_len;
    t.n_wraps = ENVELOPE_MAX_WRAPS + 1; /* refused before the array is read */
    assert_int_equal(open_status(&t, &s, &a), STATUS_TOO_LARGE);
    t.n_wraps = env.n_wraps;
    t.body_len = ENVELOPE_MAX_BODY_LEN + 1; /* likewise */
    assert_int_equal(open_status(&t, &s, &a), STATUS_TOO_LARGE);
    t.body_len = env.body_len;
    envelope_cleanup(&t);

    envelope_cleanup(&env);
    envelope_cleanup(NULL);
    device_cleanup(&s);
    device_cleanup(&a);
    device_cleanup(&b);
}

/* An exported identity imports to the same key pair: signatures made by the
 * import verify under the original's public key, and a changed message or a
 * different key does not verify. */
static void test_envelope_identity_export_import_sign(void **state) {
    (void)state;
    struct envelope_identity *a = NULL, *b = NULL, *other = NULL;
    assert_int_equal(envelope_identity_new(&a), 0);
    assert_int_equal(envelope_identity_new(&other), 0);
    uint8_t seed[ENVELOPE_IDENTITY_SEED_LEN];
    envelope_identity_export(a, seed);
    assert_int_equal(envelope_identity_import(seed, &b), 0);
    sodium_memzero(seed, sizeof seed);

    uint8_t pk_a[ENVELOPE_SIGN_PK_LEN], pk_b[ENVELOPE_SIGN_PK_LEN], pk_o[ENVELOPE_SIGN_PK_LEN];
    envelope_identity_public(a, pk_a);
    envelope_identity_public(b, pk_b);
    envelope_identity_public(other, pk_o);
    assert_memory_equal(pk_a, pk_b, sizeof pk_a);

    const uint8_t msg[] = "carechat.v1 device list and some bytes";
    uint8_t sig[ENVELOPE_SIG_LEN];
    envelope_identity_sign(b, msg, sizeof msg, sig);
    assert_int_equal(envelope_signature_verify(pk_a, msg, sizeof msg, sig), 0);
    assert_int_equal(envelope_signature_verify(pk_o, msg, sizeof msg, sig), STATUS_CORRUPT);
    uint8_t changed[sizeof msg];
    memcpy(changed, msg, sizeof msg);
    changed[3] ^= 1;
    assert_int_equal(envelope_signature_verify(pk_a, changed, sizeof changed, sig), STATUS_CORRUPT);
    sig[0] ^= 1;
    assert_int_equal(envelope_signature_verify(pk_a, msg, sizeof msg, sig), STATUS_CORRUPT);

    envelope_identity_free(a);
    envelope_identity_free(b);
    envelope_identity_free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_round_trip_to_three_devices),
        cmocka_unit_test(test_envelope_tampering_fails_to_open),
        cmocka_unit_test(test_envelope_device_without_wrap_is_not_found),
        cmocka_unit_test(test_envelope_wrong_recipient_key_id_is_conflict),
        cmocka_unit_test(test_envelope_wrap_to_wrong_key_fails),
        cmocka_unit_test(test_envelope_byte_layout_matches_header_comment),
        cmocka_unit_test(test_envelope_device_key_verify),
        cmocka_unit_test(test_envelope_seal_refuses_bad_recipients),
        cmocka_unit_test(test_envelope_open_refuses_malformed),
        cmocka_unit_test_setup_teardown(test_envelope_open_with_body_key, setup_clock, reset_clock),
        cmocka_unit_test(test_envelope_identity_export_import_sign),
    };
    return cmocka_run_group_tests(tests, setup_clock, reset_clock);
}
