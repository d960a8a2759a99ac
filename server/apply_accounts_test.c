/*
 * server/apply_accounts_test.c: apply for the account kinds of entry.proto,
 * through the real journal and RocksDB in $TEST_TMPDIR: what each kind writes,
 * what it refuses, and that replaying the same entries on two empty stores
 * gives identical contents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/id.h"
#include "base/status.h"
#include "protocol/proto.h"
#include "server/apply.h"
#include "server/apply_fixture.h"
#include "server/audit.h"
#include "server/records.h"
#include "server/rules.h"
#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/store.h"

#define T0 FIXTURE_T0
#define DAY FIXTURE_DAY

/* ---- fixtures: people and devices -------------------------------------- */

struct person {
    struct id id;
    char email[64];
    uint8_t index[32];
};

static void person(struct person *p, const char *email) {
    p->id = id_new();
    snprintf(p->email, sizeof p->email, "%s", email);
    crypto_hash_sha256(p->index, (const uint8_t *)email, strlen(email));
}

struct dev {
    struct id id;
    uint8_t pk[32], sk[64], ek[32], sig[64];
    uint32_t key_id;
    int64_t expires;
};

static void sign_dev(struct dev *d) {
    uint8_t msg[70];
    memcpy(msg, "carechat.v1 encryption key", 26);
    memcpy(msg + 26, d->ek, 32);
    key_put_u32(msg + 58, d->key_id);
    key_put_u64(msg + 62, (uint64_t)d->expires);
    crypto_sign_detached(d->sig, NULL, msg, sizeof msg, d->sk);
}

static void dev(struct dev *d) {
    d->id = id_new();
    crypto_sign_keypair(d->pk, d->sk);
    randombytes_buf(d->ek, 32);
    d->key_id = 1;
    d->expires = T0 + 30 * DAY;
    sign_dev(d);
}

static void dev_entry(struct dev *d, Carechat__Entry__V1__DeviceNew *out) {
    carechat__entry__v1__device_new__init(out);
    out->device_id = fixture_bin(d->id.b, 16);
    out->identity_key = fixture_bin(d->pk, 32);
    out->encryption_key = fixture_bin(d->ek, 32);
    out->encryption_key_id = d->key_id;
    out->encryption_key_expires_at = d->expires;
    out->signature = fixture_bin(d->sig, 64);
    out->label = "phone";
}

static int bootstrap(struct fixture_db *db, struct person *p, int64_t t) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Bootstrap b;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__bootstrap__init(&b);
    b.account_id = fixture_bin(p->id.b, 16);
    b.email = p->email;
    b.email_index = fixture_bin(p->index, 32);
    b.password_hash = "$argon2id$fake";
    b.display_name = "Admin";
    e.time = t;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_BOOTSTRAP;
    e.bootstrap = &b;
    return fixture_propose(db, &e);
}

static int invite(struct fixture_db *db, const struct person *by, const struct person *to,
                  uint32_t role, const uint8_t code_hash[32], int64_t t) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__InviteCreate in;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__invite_create__init(&in);
    e.time = t;
    e.actor_account_id = fixture_bin(by->id.b, 16);
    in.code_hash = fixture_bin(code_hash, 32);
    in.email = (char *)to->email;
    in.email_index = fixture_bin(to->index, 32);
    in.role = role;
    in.expires_at = t + 7 * DAY;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_INVITE_CREATE;
    e.invite_create = &in;
    return fixture_propose(db, &e);
}

static int reg(struct fixture_db *db, const struct person *p, const uint8_t code_hash[32],
               const char *birth, struct dev *d, const uint8_t token_hash[32], int64_t t) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Register r;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__register__init(&r);
    carechat__entry__v1__session_new__init(&sn);
    e.time = t;
    r.account_id = fixture_bin(p->id.b, 16);
    r.code_hash = fixture_bin(code_hash, 32);
    r.email = (char *)p->email;
    r.email_index = fixture_bin(p->index, 32);
    r.password_hash = "$argon2id$fake2";
    r.birth_date = (char *)birth;
    r.display_name = "Someone";
    dev_entry(d, &dn);
    r.device = &dn;
    sn.token_hash = fixture_bin(token_hash, 32);
    sn.expires_at = t + DAY;
    sn.idle_expires_at = t + 900000;
    r.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER;
    e.register_ = &r;
    return fixture_propose(db, &e);
}

static int login_new_device(struct fixture_db *db, const struct person *p, struct dev *d,
                            int64_t t) {
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__Login l;
    Carechat__Entry__V1__DeviceNew dn;
    Carechat__Entry__V1__SessionNew sn;
    uint8_t token_hash[32];
    randombytes_buf(token_hash, 32);
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__login__init(&l);
    carechat__entry__v1__session_new__init(&sn);
    e.time = t;
    e.actor_account_id = fixture_bin(p->id.b, 16);
    dev_entry(d, &dn);
    l.device_case = CARECHAT__ENTRY__V1__LOGIN__DEVICE_NEW_DEVICE;
    l.new_device = &dn;
    sn.token_hash = fixture_bin(token_hash, 32);
    sn.expires_at = t + DAY;
    sn.idle_expires_at = t + 900000;
    l.session = &sn;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_LOGIN;
    e.login = &l;
    return fixture_propose(db, &e);
}

static bool count_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    (*(int *)ctx)++;
    return true;
}

static int count(struct fixture_db *db, enum store_cf cf) {
    int n = 0;
    assert_true(store_scan(db->store, cf, NULL, 0, NULL, 0, 1000, count_one, &n) >= 0);
    return n;
}

static void read_account(struct fixture_db *db, const struct person *p, struct rec_account *a) {
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_ACCOUNTS, p->id.b, 16, &v), 0);
    assert_int_equal(rec_account_decode(v.data, v.len, a), 0);
    buf_cleanup(&v);
}

/* ---- the scenario --------------------------------------------------------- */

static void run_scenario(struct fixture_db *db) {
    struct person admin, prov, pat, kid;
    person(&admin, "admin@x.example");
    person(&prov, "doc@x.example");
    person(&pat, "pat@x.example");
    person(&kid, "kid@x.example");
    uint8_t code1[32], code2[32], code3[32], tok[32];
    randombytes_buf(code1, 32);
    randombytes_buf(code2, 32);
    randombytes_buf(code3, 32);
    randombytes_buf(tok, 32);
    struct dev d[8];
    for (int i = 0; i < 8; i++)
        dev(&d[i]);

    assert_int_equal(bootstrap(db, &admin, T0), 0);
    struct person admin2;
    person(&admin2, "other@x.example");
    assert_int_equal(bootstrap(db, &admin2, T0 + 1), STATUS_CONFLICT);

    /* Invitations: roles, the email must be free, the actor must exist. */
    assert_int_equal(invite(db, &admin, &prov, REC_ROLE_PROVIDER, code1, T0 + 2), 0);
    assert_int_equal(invite(db, &admin, &admin, REC_ROLE_PATIENT, code2, T0 + 3), STATUS_CONFLICT);
    assert_int_equal(invite(db, &kid, &pat, REC_ROLE_PATIENT, code2, T0 + 3),
                     STATUS_UNAUTHENTICATED);

    /* Register: 13 or older at the entry's time; the code works once. */
    assert_int_equal(reg(db, &prov, code1, "2014-05-01", &d[0], tok, T0 + 4), STATUS_FORBIDDEN);
    assert_int_equal(reg(db, &prov, code1, "1980-05-01", &d[0], tok, T0 + 5), 0);
    assert_int_equal(reg(db, &prov, code1, "1980-05-01", &d[1], tok, T0 + 6), STATUS_NOT_FOUND);
    struct rec_account a;
    read_account(db, &prov, &a);
    assert_int_equal(a.role, REC_ROLE_PROVIDER);
    assert_int_equal(a.n_devices, 1);
    assert_string_equal(a.birth_date, "1980-05-01");
    rec_account_cleanup(&a);
    assert_int_equal(count(db, CF_INVITES), 0);
    assert_int_equal(count(db, CF_SESSIONS), 1);

    /* A provider invites patients only; an expired invitation is refused. */
    assert_int_equal(invite(db, &prov, &pat, REC_ROLE_PROVIDER, code2, T0 + 7), STATUS_FORBIDDEN);
    assert_int_equal(invite(db, &prov, &pat, REC_ROLE_PATIENT, code2, T0 + 8), 0);
    uint8_t tok2[32];
    randombytes_buf(tok2, 32);
    assert_int_equal(reg(db, &pat, code2, "2000-01-01", &d[1], tok2, T0 + 8 + 8 * DAY),
                     STATUS_NOT_FOUND);
    /* The wrong email for a code. */
    assert_int_equal(reg(db, &kid, code2, "2000-01-01", &d[1], tok2, T0 + 9), STATUS_NOT_FOUND);
    assert_int_equal(reg(db, &pat, code2, "2000-01-01", &d[1], tok2, T0 + 10), 0);

    /* Under 13: RegisterRefused leaves one audit record and nothing else. */
    int audits = count(db, CF_AUDIT), accounts = count(db, CF_ACCOUNTS);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__RegisterRefused rr;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__register_refused__init(&rr);
    rr.reason = 1;
    e.time = T0 + 11;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_REGISTER_REFUSED;
    e.register_refused = &rr;
    assert_int_equal(fixture_propose(db, &e), 0);
    assert_int_equal(count(db, CF_AUDIT), audits + 1);
    assert_int_equal(count(db, CF_ACCOUNTS), accounts);
    uint8_t k[8];
    key_put_u64(k, (uint64_t)audits + 1);
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_AUDIT, k, 8, &v), 0);
    struct rec_audit au;
    assert_int_equal(rec_audit_decode(v.data, v.len, &au), 0);
    assert_int_equal(au.action, REC_AUDIT_REGISTER_UNDER_AGE);
    assert_true(au.time == T0 + 11);
    buf_cleanup(&v);

    /* At most 6 devices. */
    for (int i = 2; i < 7; i++)
        assert_int_equal(login_new_device(db, &prov, &d[i], T0 + 20 + i), 0);
    assert_int_equal(login_new_device(db, &prov, &d[7], T0 + 30), STATUS_TOO_LARGE);

    /* Remove one, then the list covers the remaining five exactly. */
    Carechat__Entry__V1__DeviceRemove rm;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__device_remove__init(&rm);
    e.time = T0 + 31;
    e.actor_account_id = fixture_bin(prov.id.b, 16);
    rm.device_id = fixture_bin(d[6].id.b, 16);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DEVICE_REMOVE;
    e.device_remove = &rm;
    assert_int_equal(fixture_propose(db, &e), 0);
    assert_int_equal(fixture_propose(db, &e), STATUS_NOT_FOUND);

    struct rec_list_item items[5];
    Carechat__Entry__V1__DeviceListItem its[5], *ptrs[5];
    int idx[5] = {0, 2, 3, 4, 5};
    for (int i = 0; i < 5; i++) {
        items[i].device_id = d[idx[i]].id;
        memcpy(items[i].identity_key, d[idx[i]].pk, 32);
        carechat__entry__v1__device_list_item__init(&its[i]);
        its[i].device_id = fixture_bin(items[i].device_id.b, 16);
        its[i].identity_key = fixture_bin(items[i].identity_key, 32);
        ptrs[i] = &its[i];
    }
    struct buf msg;
    buf_init(&msg);
    rules_device_list_message(&prov.id, 1, items, 5, NULL, &msg);
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, msg.data, msg.len, d[0].sk);
    buf_cleanup(&msg);
    Carechat__Entry__V1__DeviceListPublish pub;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__device_list_publish__init(&pub);
    e.time = T0 + 32;
    e.actor_account_id = fixture_bin(prov.id.b, 16);
    e.actor_device_id = fixture_bin(d[0].id.b, 16);
    pub.version = 1;
    pub.devices = ptrs;
    pub.signer_device_id = fixture_bin(d[0].id.b, 16);
    pub.signature = fixture_bin(sig, 64);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_DEVICE_LIST_PUBLISH;
    e.device_list_publish = &pub;
    pub.n_devices = 4; /* a subset is allowed, but the signature covers five */
    assert_int_equal(fixture_propose(db, &e), STATUS_BAD_REQUEST);
    pub.n_devices = 5;
    assert_int_equal(fixture_propose(db, &e), 0);
    assert_int_equal(fixture_propose(db, &e), STATUS_CONFLICT); /* version must be the next one */
    read_account(db, &prov, &a);
    assert_int_equal(a.list_version, 1);
    assert_int_equal(a.n_list, 5);
    assert_int_equal(a.n_devices, 5);
    rec_account_cleanup(&a);

    /* Key rotation: a higher key id signed by the same identity key. */
    d[0].key_id = 2;
    randombytes_buf(d[0].ek, 32);
    sign_dev(&d[0]);
    Carechat__Entry__V1__KeyRotate kr;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__key_rotate__init(&kr);
    e.time = T0 + 33;
    e.actor_account_id = fixture_bin(prov.id.b, 16);
    e.actor_device_id = fixture_bin(d[0].id.b, 16);
    kr.encryption_key = fixture_bin(d[0].ek, 32);
    kr.encryption_key_id = 2;
    kr.encryption_key_expires_at = d[0].expires;
    kr.signature = fixture_bin(d[0].sig, 64);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_KEY_ROTATE;
    e.key_rotate = &kr;
    assert_int_equal(fixture_propose(db, &e), 0);
    assert_int_equal(fixture_propose(db, &e), STATUS_BAD_REQUEST); /* key id not higher */

    /* Sessions: touch moves the idle expiry, end deletes. */
    Carechat__Entry__V1__SessionTouch st;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__session_touch__init(&st);
    e.time = T0 + 34;
    st.token_hash = fixture_bin(tok, 32);
    st.idle_expires_at = T0 + 2000000;
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_TOUCH;
    e.session_touch = &st;
    assert_int_equal(fixture_propose(db, &e), 0);
    buf_init(&v);
    assert_int_equal(store_get(db->store, CF_SESSIONS, tok, 32, &v), 0);
    struct rec_session s;
    assert_int_equal(rec_session_decode(v.data, v.len, &s), 0);
    assert_true(s.idle_expires_at == T0 + 2000000);
    buf_cleanup(&v);
    e.time = T0 + 3000000; /* after the idle expiry: too late */
    assert_int_equal(fixture_propose(db, &e), STATUS_UNAUTHENTICATED);
    Carechat__Entry__V1__SessionEnd se;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__session_end__init(&se);
    e.time = T0 + 35;
    se.token_hash = fixture_bin(tok, 32);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_SESSION_END;
    e.session_end = &se;
    assert_int_equal(fixture_propose(db, &e), 0);
    assert_int_equal(fixture_propose(db, &e), STATUS_NOT_FOUND);
}

static void test_apply_accounts_scenario(void **state) {
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "apply-acc");
    run_scenario(&db);
    fixture_close(&db);
    fixture_log_cleanup();
}

/* Appends every record but those of CF_META, then the CF_META records apply
 * keeps, as fixture_dump() does. */
static void dump(struct fixture_db *db, struct buf *out) {
    fixture_dump(db, CF_ACCOUNTS, CF_COUNT - 1, out);
    static const char *const meta[] = {REC_META_SYSADMIN, REC_META_AUDIT_NEXT, "applied_pos"};
    struct buf v;
    buf_init(&v);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(store_get(db->store, CF_META, meta[i], strlen(meta[i]), &v), 0);
        fixture_dump_one(out, (const uint8_t *)meta[i], strlen(meta[i]), v.data, v.len);
    }
    buf_cleanup(&v);
}

/* Proposes TotpEnroll of a 20-byte secret of `fill` by `p`. */
static int totp_enroll(struct fixture_db *db, const struct fixture_person *p, uint8_t fill,
                       int64_t t) {
    uint8_t secret[REC_TOTP_SECRET_LEN];
    memset(secret, fill, sizeof secret);
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__TotpEnroll m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__totp_enroll__init(&m);
    e.time = t;
    e.actor_account_id = fixture_bin(p->id.b, 16);
    m.secret = fixture_bin(secret, sizeof secret);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_TOTP_ENROLL;
    e.totp_enroll = &m;
    return fixture_propose(db, &e);
}

/* Proposes TotpConfirm by `p` of the secret of `fill` (its SHA-256). */
static int totp_confirm(struct fixture_db *db, const struct fixture_person *p, uint8_t fill,
                        int64_t t) {
    uint8_t secret[REC_TOTP_SECRET_LEN], hash[32], recovery[32];
    memset(secret, fill, sizeof secret);
    crypto_hash_sha256(hash, secret, sizeof secret);
    memset(recovery, 0x5e, sizeof recovery);
    ProtobufCBinaryData hashes[1] = {fixture_bin(recovery, 32)};
    Carechat__Entry__V1__Entry e;
    Carechat__Entry__V1__TotpConfirm m;
    carechat__entry__v1__entry__init(&e);
    carechat__entry__v1__totp_confirm__init(&m);
    e.time = t;
    e.actor_account_id = fixture_bin(p->id.b, 16);
    m.totp_step = 1;
    m.n_recovery_hashes = 1;
    m.recovery_hashes = hashes;
    m.secret_hash = fixture_bin(hash, 32);
    e.kind_case = CARECHAT__ENTRY__V1__ENTRY__KIND_TOTP_CONFIRM;
    e.totp_confirm = &m;
    return fixture_propose(db, &e);
}

/* A confirmation activates only the secret whose code was verified: when the
 * user enrolled again meanwhile, it is CONFLICT and the new secret stays
 * pending (the authenticator app holds the first one). */
static void test_apply_accounts_totp_confirm_binds_its_secret(void **state) {
    fixture_log_reset();
    struct fixture_db db;
    fixture_open(&db, "apply-totp");
    struct fixture_person admin;
    fixture_person(&admin, "admin@x.example", 1);
    fixture_bootstrap(&db, &admin);
    assert_int_equal(totp_enroll(&db, &admin, 0x11, T0 + 10), 0);
    assert_int_equal(totp_enroll(&db, &admin, 0x22, T0 + 11), 0);
    assert_int_equal(totp_confirm(&db, &admin, 0x11, T0 + 12), STATUS_CONFLICT);
    struct rec_account a;
    struct buf v;
    buf_init(&v);
    assert_int_equal(store_get(db.store, CF_ACCOUNTS, admin.id.b, ID_LEN, &v), 0);
    assert_int_equal(rec_account_decode(v.data, v.len, &a), 0);
    assert_int_equal(a.totp_state, REC_TOTP_PENDING);
    rec_account_cleanup(&a);
    assert_int_equal(totp_confirm(&db, &admin, 0x22, T0 + 13), 0);
    assert_int_equal(store_get(db.store, CF_ACCOUNTS, admin.id.b, ID_LEN, &v), 0);
    assert_int_equal(rec_account_decode(v.data, v.len, &a), 0);
    assert_int_equal(a.totp_state, REC_TOTP_ACTIVE);
    uint8_t want[REC_TOTP_SECRET_LEN];
    memset(want, 0x22, sizeof want);
    assert_memory_equal(a.totp_secret, want, sizeof want);
    rec_account_cleanup(&a);
    buf_cleanup(&v);
    fixture_close(&db);
    fixture_log_cleanup();
}

static void test_apply_accounts_replay_is_deterministic(void **state) {
    fixture_log_reset();
    struct fixture_db first;
    fixture_open(&first, "apply-acc");
    run_scenario(&first);
    struct buf dumps[3];
    buf_init(&dumps[0]);
    dump(&first, &dumps[0]);
    fixture_close(&first);
    for (int r = 1; r < 3; r++) {
        struct fixture_db db;
        fixture_open(&db, "apply-acc");
        fixture_replay(&db);
        buf_init(&dumps[r]);
        dump(&db, &dumps[r]);
        fixture_close(&db);
    }
    assert_true(dumps[0].len > 1000);
    for (int r = 1; r < 3; r++) {
        assert_int_equal(dumps[r].len, dumps[0].len);
        assert_memory_equal(dumps[r].data, dumps[0].data, dumps[0].len);
        buf_cleanup(&dumps[r]);
    }
    buf_cleanup(&dumps[0]);
    /* The same entries, in batches, with and without the read cache. */
    fixture_check_read_cache("apply-acc-cache");
    fixture_log_cleanup();
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_accounts_scenario),
        cmocka_unit_test(test_apply_accounts_replay_is_deterministic),
        cmocka_unit_test(test_apply_accounts_totp_confirm_binds_its_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
