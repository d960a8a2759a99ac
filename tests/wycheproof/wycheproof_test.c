/*
 * tests/wycheproof/wycheproof_test.c: the primitives CareChat's end-to-end and
 * at-rest crypto stand on, against Project Wycheproof's test vectors
 * (C2SP/wycheproof, testvectors_v1; README.md here names the commit):
 *   - X25519 (libsodium crypto_scalarmult: HPKE's DH in client/hpke.c);
 *   - ChaCha20-Poly1305 and XChaCha20-Poly1305, IETF (libsodium; HPKE's AEAD
 *     and the message body in client/envelope.c);
 *   - AES-256-GCM through both sealing implementations of storage/seal.c
 *     (libsodium where the CPU has AES-NI, and OpenSSL);
 *   - Ed25519 verification (libsodium crypto_sign_verify_detached: every
 *     signature the server and clients check).
 * Every vector is run: "valid" must compute exactly the expected bytes and
 * open; "invalid" must be refused; "acceptable" may go either way, but a
 * result that is produced must be the expected one (X25519: libsodium refuses
 * only an all-zero shared secret). Groups of parameters we never use (other
 * key, nonce or tag sizes) are skipped and counted; each file must yield at
 * least a floor of checked vectors, so an unread or truncated file fails.
 * Prints per file: checked, skipped, acceptable taken either way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/hex.h"
#include "base/status.h"
#include "storage/seal.h"

struct tally {
    const char *file;
    unsigned checked, skipped, acceptable;
};

/* The vectors file `name` (runfiles, or the working directory). */
static json_t *load(const char *name) {
    char path[4096];
    const char *src = getenv("TEST_SRCDIR");
    const char *ws = getenv("TEST_WORKSPACE");
    if (src != NULL && ws != NULL)
        snprintf(path, sizeof path, "%s/%s/tests/wycheproof/%s", src, ws, name);
    else
        snprintf(path, sizeof path, "tests/wycheproof/%s", name);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (root == NULL)
        fail_msg("%s: %s (line %d)", path, err.text, err.line);
    return root;
}

/* The bytes of hex string field `key` of `obj` into `out` (reset first). */
static void field_bytes(const json_t *obj, const char *key, struct buf *out) {
    const char *hex = json_string_value(json_object_get(obj, key));
    if (hex == NULL)
        fail_msg("no string field %s", key);
    buf_reset(out);
    assert_int_equal(hex_decode(hex, strlen(hex), out), 0);
}

static int field_int(const json_t *obj, const char *key) {
    return (int)json_integer_value(json_object_get(obj, key));
}

enum result { VALID, INVALID, ACCEPTABLE };

static enum result result_of(const json_t *t) {
    const char *r = json_string_value(json_object_get(t, "result"));
    assert_non_null(r);
    if (strcmp(r, "valid") == 0)
        return VALID;
    if (strcmp(r, "invalid") == 0)
        return INVALID;
    assert_string_equal(r, "acceptable");
    return ACCEPTABLE;
}

/* Checks that `ok` (the primitive accepted the vector) agrees with its
 * result; fails the test naming the vector otherwise. */
static void judge(struct tally *t, const json_t *v, bool ok) {
    enum result r = result_of(v);
    int id = field_int(v, "tcId");
    if (r == VALID && !ok)
        fail_msg("%s tcId %d: valid, but refused (%s)", t->file, id,
                 json_string_value(json_object_get(v, "comment")));
    if (r == INVALID && ok)
        fail_msg("%s tcId %d: invalid, but accepted (%s)", t->file, id,
                 json_string_value(json_object_get(v, "comment")));
    if (r == ACCEPTABLE)
        t->acceptable++;
    t->checked++;
}

static void report(const struct tally *t, unsigned floor) {
    printf("%s: %u checked, %u skipped (parameters not used), %u acceptable\n", t->file, t->checked,
           t->skipped, t->acceptable);
    assert_true(t->checked >= floor);
}

/* ---- X25519 ---------------------------------------------------------------------- */

static void test_wycheproof_x25519(void **state) {
    (void)state;
    struct tally t = {.file = "x25519_test.json"};
    json_t *root = load(t.file);
    struct buf pub, priv, shared;
    buf_init(&pub);
    buf_init(&priv);
    buf_init(&shared);
    size_t gi, vi;
    json_t *g, *v;
    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        json_array_foreach(json_object_get(g, "tests"), vi, v) {
            field_bytes(v, "public", &pub);
            field_bytes(v, "private", &priv);
            field_bytes(v, "shared", &shared);
            if (pub.len != crypto_scalarmult_BYTES || priv.len != crypto_scalarmult_SCALARBYTES) {
                t.skipped++;
                continue;
            }
            uint8_t out[crypto_scalarmult_BYTES];
            bool ok = crypto_scalarmult(out, priv.data, pub.data) == 0;
            if (ok && memcmp(out, shared.data, sizeof out) != 0)
                fail_msg("x25519 tcId %d: wrong shared secret", field_int(v, "tcId"));
            /* libsodium refuses exactly the all-zero result */
            if (!ok && !sodium_is_zero(shared.data, shared.len))
                fail_msg("x25519 tcId %d: refused a non-zero shared secret", field_int(v, "tcId"));
            judge(&t, v, ok);
        }
    }
    buf_cleanup(&pub);
    buf_cleanup(&priv);
    buf_cleanup(&shared);
    json_decref(root);
    report(&t, 500);
}

/* ---- AEADs ----------------------------------------------------------------------- */

/* One AEAD under test: encrypt writes ct || tag; decrypt returns 0 when
 * the tag verifies. */
struct aead {
    const char *name;
    int key_bits, iv_bits;
    int (*encrypt)(const struct aead *a, const uint8_t *key, const uint8_t *iv, const uint8_t *ad,
                   size_t ad_len, const uint8_t *m, size_t m_len, uint8_t *out);
    int (*decrypt)(const struct aead *a, const uint8_t *key, const uint8_t *iv, const uint8_t *ad,
                   size_t ad_len, const uint8_t *c, size_t c_len, uint8_t *out);
    enum seal_impl impl; /* AES-256-GCM */
};

static int chacha_encrypt(const struct aead *a, const uint8_t *key, const uint8_t *iv,
                          const uint8_t *ad, size_t ad_len, const uint8_t *m, size_t m_len,
                          uint8_t *out) {
    (void)a;
    return crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, m, m_len, ad, ad_len, NULL, iv,
                                                     key);
}

static int chacha_decrypt(const struct aead *a, const uint8_t *key, const uint8_t *iv,
                          const uint8_t *ad, size_t ad_len, const uint8_t *c, size_t c_len,
                          uint8_t *out) {
    (void)a;
    return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, c, c_len, ad, ad_len, iv,
                                                     key);
}

static int xchacha_encrypt(const struct aead *a, const uint8_t *key, const uint8_t *iv,
                           const uint8_t *ad, size_t ad_len, const uint8_t *m, size_t m_len,
                           uint8_t *out) {
    (void)a;
    return crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, m, m_len, ad, ad_len, NULL, iv,
                                                      key);
}

static int xchacha_decrypt(const struct aead *a, const uint8_t *key, const uint8_t *iv,
                           const uint8_t *ad, size_t ad_len, const uint8_t *c, size_t c_len,
                           uint8_t *out) {
    (void)a;
    return crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, c, c_len, ad, ad_len, iv,
                                                      key);
}

static int gcm_encrypt(const struct aead *a, const uint8_t *key, const uint8_t *iv,
                       const uint8_t *ad, size_t ad_len, const uint8_t *m, size_t m_len,
                       uint8_t *out) {
    return seal_aead_encrypt(a->impl, key, iv, ad, ad_len, m, m_len, out);
}

static int gcm_decrypt(const struct aead *a, const uint8_t *key, const uint8_t *iv,
                       const uint8_t *ad, size_t ad_len, const uint8_t *c, size_t c_len,
                       uint8_t *out) {
    return seal_aead_decrypt(a->impl, key, iv, ad, ad_len, c, c_len, out);
}

/* Runs the file's vectors of the AEAD's sizes (16-byte tags) through it. */
static void run_aead(const struct aead *a, const char *file, unsigned floor) {
    struct tally t = {.file = file};
    json_t *root = load(file);
    struct buf key, iv, ad, msg, ct, tag, expect;
    struct buf *all[] = {&key, &iv, &ad, &msg, &ct, &tag, &expect};
    for (size_t i = 0; i < 7; i++)
        buf_init(all[i]);
    size_t gi, vi;
    json_t *g, *v;
    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        const bool ours = field_int(g, "keySize") == a->key_bits &&
                          field_int(g, "ivSize") == a->iv_bits && field_int(g, "tagSize") == 128;
        json_array_foreach(json_object_get(g, "tests"), vi, v) {
            if (!ours) {
                t.skipped++;
                continue;
            }
            field_bytes(v, "key", &key);
            field_bytes(v, "iv", &iv);
            field_bytes(v, "aad", &ad);
            field_bytes(v, "msg", &msg);
            field_bytes(v, "ct", &ct);
            field_bytes(v, "tag", &tag);
            buf_reset(&expect);
            buf_append(&expect, ct.data, ct.len);
            buf_append(&expect, tag.data, tag.len);
            /* (room for an empty message) */
            uint8_t *out = malloc(expect.len + 1), *plain = malloc(ct.len + 1);
            assert_non_null(out);
            assert_non_null(plain);
            bool ok = a->decrypt(a, key.data, iv.data, ad.data, ad.len, expect.data, expect.len,
                                 plain) == 0;
            if (ok && (ct.len != msg.len || memcmp(plain, msg.data, msg.len) != 0))
                fail_msg("%s %s tcId %d: opened to other bytes", a->name, file,
                         field_int(v, "tcId"));
            /* Sealing the message again gives exactly ct || tag, for vectors
             * that are valid. */
            if (ok) {
                assert_int_equal(
                    a->encrypt(a, key.data, iv.data, ad.data, ad.len, msg.data, msg.len, out), 0);
                if (memcmp(out, expect.data, expect.len) != 0)
                    fail_msg("%s %s tcId %d: sealed to other bytes", a->name, file,
                             field_int(v, "tcId"));
            }
            free(out);
            free(plain);
            judge(&t, v, ok);
        }
    }
    for (size_t i = 0; i < 7; i++)
        buf_cleanup(all[i]);
    json_decref(root);
    printf("%s ", a->name);
    report(&t, floor);
}

static void test_wycheproof_chacha20_poly1305(void **state) {
    (void)state;
    const struct aead a = {"chacha20-poly1305", 256, 96, chacha_encrypt, chacha_decrypt, 0};
    run_aead(&a, "chacha20_poly1305_test.json", 250);
}

static void test_wycheproof_xchacha20_poly1305(void **state) {
    (void)state;
    const struct aead a = {"xchacha20-poly1305", 256, 192, xchacha_encrypt, xchacha_decrypt, 0};
    run_aead(&a, "xchacha20_poly1305_test.json", 250);
}

/* Both implementations of storage/seal.c; libsodium's only on a CPU with
 * AES-NI (said so when skipped). */
static void test_wycheproof_aes256_gcm_both_seal_paths(void **state) {
    (void)state;
    const struct aead ossl = {
        "aes-256-gcm (OpenSSL)", 256, 96, gcm_encrypt, gcm_decrypt, SEAL_OPENSSL};
    run_aead(&ossl, "aes_gcm_test.json", 60);
    if (!seal_sodium_available()) {
        printf("aes-256-gcm (libsodium): not run, this CPU has no AES-NI\n");
        return;
    }
    const struct aead sod = {
        "aes-256-gcm (libsodium)", 256, 96, gcm_encrypt, gcm_decrypt, SEAL_SODIUM};
    run_aead(&sod, "aes_gcm_test.json", 60);
}

/* ---- Ed25519 --------------------------------------------------------------------- */

static void test_wycheproof_ed25519_verify(void **state) {
    (void)state;
    struct tally t = {.file = "ed25519_test.json"};
    json_t *root = load(t.file);
    struct buf pk, msg, sig;
    buf_init(&pk);
    buf_init(&msg);
    buf_init(&sig);
    size_t gi, vi;
    json_t *g, *v;
    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        field_bytes(json_object_get(g, "publicKey"), "pk", &pk);
        assert_int_equal(pk.len, crypto_sign_PUBLICKEYBYTES);
        json_array_foreach(json_object_get(g, "tests"), vi, v) {
            field_bytes(v, "msg", &msg);
            field_bytes(v, "sig", &sig);
            /* Our callers take exactly 64 bytes (REC_SIG_LEN): anything
             * else is refused before libsodium sees it. */
            bool ok = sig.len == crypto_sign_BYTES &&
                      crypto_sign_verify_detached(sig.data, msg.data, msg.len, pk.data) == 0;
            judge(&t, v, ok);
        }
    }
    buf_cleanup(&pk);
    buf_cleanup(&msg);
    buf_cleanup(&sig);
    json_decref(root);
    report(&t, 150);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wycheproof_x25519),
        cmocka_unit_test(test_wycheproof_chacha20_poly1305),
        cmocka_unit_test(test_wycheproof_xchacha20_poly1305),
        cmocka_unit_test(test_wycheproof_aes256_gcm_both_seal_paths),
        cmocka_unit_test(test_wycheproof_ed25519_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
