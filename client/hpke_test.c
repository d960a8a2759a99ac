/*
 * client/hpke_test.c: HPKE against RFC 9180 appendix A.2.1
 * (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode), step by
 * step, plus the failure rules: all-zero DH output, wrong key/info/aad,
 * tampering, message order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/rand.h"
#include "base/status.h"
#include "base/hex.h"
#include "client/hpke.h"
#include "client/hpke_internal.h"

/* RFC 9180 A.2.1 Base Setup Information (mode 0, kem_id 32, kdf_id 1, aead_id 3). */
#define A2_INFO "4f6465206f6e2061204772656369616e2055726e" /* "Ode on a Grecian Urn" */
#define A2_IKM_E "909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b"
#define A2_PK_EM "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"
#define A2_SK_EM "f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600"
#define A2_IKM_R "1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df"
#define A2_PK_RM "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a"
#define A2_SK_RM "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb"
#define A2_ENC "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"
#define A2_SHARED_SECRET "0bbe78490412b4bbea4812666f7916932b828bba79942424abb65244930d69a7"
#define A2_KEY_SCHEDULE_CONTEXT                                                                    \
    "00431df6cd95e11ff49d7013563baf7f11588c75a6611ee2a4404a49306ae4cfc5b69c5718a60cc5876c358d3f"   \
    "7fc31ddb598503f67be58ea1e798c0bb19eb9796"
#define A2_SECRET "5b9cd775e64b437a2335cf499361b2e0d5e444d5cb41a8a53336d8fe402282c6"
#define A2_KEY "ad2744de8e17f4ebba575b3f5f5a8fa1f69c2a07f6e7500bc60ca6e3e3ec1c91"
#define A2_BASE_NONCE "5c4d98150661b848853b547f"
#define A2_EXPORTER_SECRET "a3b010d4994890e2c6968a36f64470d3c824c8f5029942feb11e7a74b2921922"
/* Every encryption uses this plaintext ("Beauty is truth, truth beauty"). */
#define A2_PT "4265617574792069732074727574682c20747275746820626561757479"

/* A.2.1.1 Encryptions: sequence number, aad ("Count-<seq>"), nonce, ct. */
static const struct {
    unsigned seq;
    const char *aad, *nonce, *ct;
} a2_encryptions[] = {
    {0, "436f756e742d30", "5c4d98150661b848853b547f",
     "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"},
    {1, "436f756e742d31", "5c4d98150661b848853b547e",
     "6b53c051e4199c518de79594e1c4ab18b96f081549d45ce015be002090bb119e85285337cc95ba5f59992dc98c"},
    {2, "436f756e742d32", "5c4d98150661b848853b547d",
     "71146bd6795ccc9c49ce25dda112a48f202ad220559502cef1f34271e0cb4b02b4f10ecac6f48c32f878fae86b"},
    {4, "436f756e742d34", "5c4d98150661b848853b547b",
     "63357a2aa291f5a4e5f27db6baa2af8cf77427c7c1a909e0b37214dd47db122bb153495ff0b02e9e54a50dbe16"},
    {255, "436f756e742d323535", "5c4d98150661b848853b5480",
     "18ab939d63ddec9f6ac2b60d61d36a7375d2070c9b683861110757062c52b8880a5f6b3936da9cd6c23ef2a95c"},
    {256, "436f756e742d323536", "5c4d98150661b848853b557f",
     "7a4a13e9ef23978e2c520fd4d2e757514ae160cd0cd05e556ef692370ca53076214c0c40d4c728d6ed9e727a5b"},
};
#define N_A2_ENCRYPTIONS (sizeof a2_encryptions / sizeof a2_encryptions[0])

/* A.2.1.2 Exported Values (L = 32 each). */
static const struct {
    const char *context, *value;
} a2_exports[] = {
    {"", "4bbd6243b8bb54cec311fac9df81841b6fd61f56538a775e7c80a9f40160606e"},
    {"00", "8c1df14732580e5501b00f82b10a1647b40713191b7c1240ac80e2b68808ba69"},
    {"54657374436f6e74657874", "5acb09211139c43b3090489a9da433e8a30ee7188ba8b0a9a1ccf0c229283e53"},
};

static struct buf unhex(const char *hex) {
    struct buf b;
    buf_init(&b);
    assert_int_equal(hex_decode(hex, strlen(hex), &b), 0);
    buf_append(&b, "", 0); /* data is non-NULL even for "" */
    return b;
}

/* Decodes exactly n bytes into out. */
static void unhex_to(const char *hex, uint8_t *out, size_t n) {
    struct buf b = unhex(hex);
    assert_int_equal(b.len, n);
    memcpy(out, b.data, n);
    buf_cleanup(&b);
}

static void assert_hex_equal(const uint8_t *got, size_t n, const char *want) {
    struct buf text;
    buf_init(&text);
    hex_encode(got, n, &text);
    assert_string_equal((char *)text.data, want);
    buf_cleanup(&text);
}

/* A rand_bytes() source that hands out one fixed 32-byte value. */
static void fixed_source(void *ctx, void *buf, size_t n) {
    assert_int_equal(n, 32);
    memcpy(buf, ctx, n);
}

static void test_hpke_rfc9180_a2_derive_key_pair(void **state) {
    uint8_t ikm[32], pk[HPKE_PK_LEN], sk[HPKE_SK_LEN];
    unhex_to(A2_IKM_E, ikm, sizeof ikm);
    assert_int_equal(hpke_derive_keypair(ikm, sizeof ikm, pk, sk), 0);
    assert_hex_equal(sk, sizeof sk, A2_SK_EM);
    assert_hex_equal(pk, sizeof pk, A2_PK_EM);
    unhex_to(A2_IKM_R, ikm, sizeof ikm);
    assert_int_equal(hpke_derive_keypair(ikm, sizeof ikm, pk, sk), 0);
    assert_hex_equal(sk, sizeof sk, A2_SK_RM);
    assert_hex_equal(pk, sizeof pk, A2_PK_RM);
    assert_int_equal(hpke_derive_keypair(ikm, HPKE_SK_LEN - 1, pk, sk), STATUS_BAD_REQUEST);
}

static void test_hpke_rfc9180_a2_encap_decap_and_key_schedule(void **state) {
    uint8_t pk_r[32], sk_r[32], sk_e[32], enc[32], ss[32], ss_r[32];
    unhex_to(A2_PK_RM, pk_r, 32);
    unhex_to(A2_SK_RM, sk_r, 32);
    unhex_to(A2_SK_EM, sk_e, 32);

    assert_int_equal(hpke_encap_with_ephemeral(pk_r, sk_e, ss, enc), 0);
    assert_hex_equal(enc, sizeof enc, A2_ENC);
    assert_hex_equal(ss, sizeof ss, A2_SHARED_SECRET);
    assert_int_equal(hpke_decap(enc, sk_r, ss_r), 0);
    assert_hex_equal(ss_r, sizeof ss_r, A2_SHARED_SECRET);

    struct buf info = unhex(A2_INFO);
    struct hpke_schedule ks;
    hpke_key_schedule(ss, info.data, info.len, &ks);
    assert_hex_equal(ks.key_schedule_context, sizeof ks.key_schedule_context,
                     A2_KEY_SCHEDULE_CONTEXT);
    assert_hex_equal(ks.secret, sizeof ks.secret, A2_SECRET);
    assert_hex_equal(ks.key, sizeof ks.key, A2_KEY);
    assert_hex_equal(ks.base_nonce, sizeof ks.base_nonce, A2_BASE_NONCE);
    assert_hex_equal(ks.exporter_secret, sizeof ks.exporter_secret, A2_EXPORTER_SECRET);
    buf_cleanup(&info);
}

/* Seals sequence numbers 0..256 with aad "Count-<seq>" in one context and checks
 * the vector's entries among them; a recipient context opens all 257 in order. */
static void test_hpke_rfc9180_a2_encryptions_in_sequence(void **state) {
    uint8_t pk_r[32], sk_r[32], sk_e[32], enc[32];
    unhex_to(A2_PK_RM, pk_r, 32);
    unhex_to(A2_SK_RM, sk_r, 32);
    unhex_to(A2_SK_EM, sk_e, 32);
    struct buf info = unhex(A2_INFO), pt = unhex(A2_PT);

    uint8_t key[HPKE_KEY_LEN];
    unhex_to(A2_KEY, key, sizeof key);

    struct hpke_ctx *sender = NULL, *recipient = NULL;
    assert_int_equal(
        hpke_setup_sender_with_ephemeral(pk_r, info.data, info.len, sk_e, enc, &sender), 0);
    assert_hex_equal(enc, sizeof enc, A2_ENC);
    assert_int_equal(hpke_setup_recipient(sk_r, enc, info.data, info.len, &recipient), 0);

    size_t next = 0;
    uint8_t ct[64], opened[64];
    assert_true(pt.len + HPKE_TAG_LEN <= sizeof ct);
    for (unsigned seq = 0; seq <= 256; seq++) {
        char aad[16];
        int aad_len = snprintf(aad, sizeof aad, "Count-%u", seq);
        assert_int_equal(
            hpke_ctx_seal(sender, (const uint8_t *)aad, (size_t)aad_len, pt.data, pt.len, ct), 0);
        if (next < N_A2_ENCRYPTIONS && a2_encryptions[next].seq == seq) {
            assert_hex_equal((const uint8_t *)aad, (size_t)aad_len, a2_encryptions[next].aad);
            assert_hex_equal(ct, pt.len + HPKE_TAG_LEN, a2_encryptions[next].ct);
            /* The nonce column: the vector's key with the listed nonce opens it. */
            uint8_t nonce[HPKE_NONCE_LEN];
            unhex_to(a2_encryptions[next].nonce, nonce, sizeof nonce);
            assert_int_equal(crypto_aead_chacha20poly1305_ietf_decrypt(
                                 opened, NULL, NULL, ct, pt.len + HPKE_TAG_LEN,
                                 (const uint8_t *)aad, (size_t)aad_len, nonce, key),
                             0);
            assert_memory_equal(opened, pt.data, pt.len);
            next++;
        }
        assert_int_equal(hpke_ctx_open(recipient, (const uint8_t *)aad, (size_t)aad_len, ct,
                                       pt.len + HPKE_TAG_LEN, opened),
                         0);
        assert_memory_equal(opened, pt.data, pt.len);
    }
    assert_int_equal(next, N_A2_ENCRYPTIONS);

    hpke_ctx_free(sender);
    hpke_ctx_free(recipient);
    buf_cleanup(&info);
    buf_cleanup(&pt);
}

/* The nonce column: a recipient context opening entry k directly needs
 * exactly k earlier opens, so opening the vector's ciphertexts at the wrong
 * position fails and at the right one succeeds. */
static void test_hpke_rfc9180_a2_open_vector_ciphertexts(void **state) {
    uint8_t sk_r[32], enc[32];
    unhex_to(A2_SK_RM, sk_r, 32);
    unhex_to(A2_ENC, enc, 32);
    struct buf info = unhex(A2_INFO), pt = unhex(A2_PT);
    for (size_t i = 0; i < N_A2_ENCRYPTIONS; i++) {
        struct hpke_ctx *r = NULL;
        assert_int_equal(hpke_setup_recipient(sk_r, enc, info.data, info.len, &r), 0);
        struct buf aad = unhex(a2_encryptions[i].aad), ct = unhex(a2_encryptions[i].ct);
        uint8_t out[64];
        assert_true(ct.len <= sizeof out);
        /* Advance to the entry's sequence number with messages of our own: a
         * recipient context's seq moves only on a successful open, so step it by
         * opening what a twin sender context sealed. */
        struct hpke_ctx *twin = NULL;
        uint8_t sk_e[32], enc2[32], pk_r[32], filler[HPKE_TAG_LEN];
        unhex_to(A2_SK_EM, sk_e, 32);
        unhex_to(A2_PK_RM, pk_r, 32);
        assert_int_equal(
            hpke_setup_sender_with_ephemeral(pk_r, info.data, info.len, sk_e, enc2, &twin), 0);
        for (unsigned s = 0; s < a2_encryptions[i].seq; s++) {
            assert_int_equal(hpke_ctx_seal(twin, NULL, 0, NULL, 0, filler), 0);
            if (s + 1 == a2_encryptions[i].seq) {
                /* One step early the entry must not open (wrong nonce). */
                assert_int_equal(hpke_ctx_open(r, aad.data, aad.len, ct.data, ct.len, out),
                                 STATUS_CORRUPT);
            }
            assert_int_equal(hpke_ctx_open(r, NULL, 0, filler, sizeof filler, out), 0);
        }
        assert_int_equal(hpke_ctx_open(r, aad.data, aad.len, ct.data, ct.len, out), 0);
        assert_memory_equal(out, pt.data, pt.len);
        hpke_ctx_free(twin);
        hpke_ctx_free(r);
        buf_cleanup(&aad);
        buf_cleanup(&ct);
    }
    buf_cleanup(&info);
    buf_cleanup(&pt);
}

static void test_hpke_rfc9180_a2_exported_values(void **state) {
    uint8_t sk_r[32], enc[32], out[32];
    unhex_to(A2_SK_RM, sk_r, 32);
    unhex_to(A2_ENC, enc, 32);
    struct buf info = unhex(A2_INFO);
    struct hpke_ctx *r = NULL;
    assert_int_equal(hpke_setup_recipient(sk_r, enc, info.data, info.len, &r), 0);
    for (size_t i = 0; i < sizeof a2_exports / sizeof a2_exports[0]; i++) {
        struct buf context = unhex(a2_exports[i].context);
        assert_int_equal(hpke_ctx_export(r, context.data, context.len, out, sizeof out), 0);
        assert_hex_equal(out, sizeof out, a2_exports[i].value);
        buf_cleanup(&context);
    }
    static uint8_t big[HPKE_MAX_EXPORT + 1];
    assert_int_equal(hpke_ctx_export(r, NULL, 0, big, HPKE_MAX_EXPORT), 0);
    assert_int_equal(hpke_ctx_export(r, NULL, 0, big, HPKE_MAX_EXPORT + 1), STATUS_BAD_REQUEST);
    hpke_ctx_free(r);
    buf_cleanup(&info);
}

/* The single-shot API with the ephemeral key fed through the rand seam gives
 * the vector's sequence-0 ciphertext, and opens it. */
static void test_hpke_rfc9180_a2_single_shot(void **state) {
    uint8_t pk_r[32], sk_r[32], sk_e[32], enc[32], ct[64], pt_out[64];
    unhex_to(A2_PK_RM, pk_r, 32);
    unhex_to(A2_SK_RM, sk_r, 32);
    unhex_to(A2_SK_EM, sk_e, 32);
    struct buf info = unhex(A2_INFO), pt = unhex(A2_PT), aad = unhex(a2_encryptions[0].aad);

    rand_set_source(fixed_source, sk_e);
    int rc = hpke_seal(pk_r, info.data, info.len, aad.data, aad.len, pt.data, pt.len, enc, ct);
    rand_set_source(NULL, NULL);
    assert_int_equal(rc, 0);
    assert_hex_equal(enc, sizeof enc, A2_ENC);
    assert_hex_equal(ct, pt.len + HPKE_TAG_LEN, a2_encryptions[0].ct);

    assert_int_equal(hpke_open(sk_r, enc, info.data, info.len, aad.data, aad.len, ct,
                               pt.len + HPKE_TAG_LEN, pt_out),
                     0);
    assert_memory_equal(pt_out, pt.data, pt.len);
    buf_cleanup(&info);
    buf_cleanup(&pt);
    buf_cleanup(&aad);
}

/* X25519 points whose product with any clamped scalar is all zeros: u = 0 and
 * u = 1 (orders 2 and 4). RFC 9180 7.1.4: fail, never derive. */
static void test_hpke_rejects_all_zero_dh_output(void **state) {
    uint8_t low[2][32] = {{0}, {1}};
    uint8_t pk[32], sk[32], enc[32], ct[32 + HPKE_TAG_LEN] = {0}, pt[32] = {0};
    hpke_keypair(pk, sk);
    for (int i = 0; i < 2; i++) {
        struct hpke_ctx *ctx = NULL;
        assert_int_equal(hpke_seal(low[i], NULL, 0, NULL, 0, pt, sizeof pt, enc, ct),
                         STATUS_BAD_REQUEST);
        assert_int_equal(hpke_setup_sender(low[i], NULL, 0, enc, &ctx), STATUS_BAD_REQUEST);
        assert_null(ctx);
        assert_int_equal(hpke_open(sk, low[i], NULL, 0, NULL, 0, ct, sizeof ct, pt),
                         STATUS_CORRUPT);
        assert_int_equal(hpke_setup_recipient(sk, low[i], NULL, 0, &ctx), STATUS_CORRUPT);
        assert_null(ctx);
    }
}

static void test_hpke_round_trip_sizes(void **state) {
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 65536};
    uint8_t pk[32], sk[32], enc[32];
    hpke_keypair(pk, sk);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct buf pt, ct, out;
        buf_init(&pt);
        buf_init(&ct);
        buf_init(&out);
        buf_reserve(&pt, sizes[i]);
        rand_bytes(pt.data, sizes[i]);
        pt.len = sizes[i];
        buf_reserve(&ct, sizes[i] + HPKE_TAG_LEN);
        buf_reserve(&out, sizes[i]);
        const uint8_t info[] = "info", aad[] = "aad";
        assert_int_equal(
            hpke_seal(pk, info, sizeof info, aad, sizeof aad, pt.data, pt.len, enc, ct.data), 0);
        assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct.data,
                                   sizes[i] + HPKE_TAG_LEN, out.data),
                         0);
        assert_memory_equal(out.data, pt.data, sizes[i]);
        buf_cleanup(&pt);
        buf_cleanup(&ct);
        buf_cleanup(&out);
    }
}

static void test_hpke_open_fails_on_any_mismatch(void **state) {
    uint8_t pk[32], sk[32], other_pk[32], other_sk[32], enc[32];
    hpke_keypair(pk, sk);
    hpke_keypair(other_pk, other_sk);
    const uint8_t info[] = "carechat test info", aad[] = "header";
    const uint8_t msg[] = "the key to wrap, 32 bytes long!";
    uint8_t ct[sizeof msg + HPKE_TAG_LEN], out[sizeof msg];
    assert_int_equal(hpke_seal(pk, info, sizeof info, aad, sizeof aad, msg, sizeof msg, enc, ct),
                     0);
    assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct, sizeof ct, out), 0);
    assert_memory_equal(out, msg, sizeof msg);

    /* wrong private key */
    assert_int_equal(
        hpke_open(other_sk, enc, info, sizeof info, aad, sizeof aad, ct, sizeof ct, out),
        STATUS_CORRUPT);
    /* wrong info, wrong aad */
    assert_int_equal(hpke_open(sk, enc, info, sizeof info - 1, aad, sizeof aad, ct, sizeof ct, out),
                     STATUS_CORRUPT);
    assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad - 1, ct, sizeof ct, out),
                     STATUS_CORRUPT);
    /* a flipped bit anywhere in enc or ct */
    for (size_t i = 0; i < sizeof enc; i += 7) {
        enc[i] ^= 0x40;
        assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct, sizeof ct, out),
                         STATUS_CORRUPT);
        enc[i] ^= 0x40;
    }
    for (size_t i = 0; i < sizeof ct; i++) {
        ct[i] ^= 0x01;
        assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct, sizeof ct, out),
                         STATUS_CORRUPT);
        ct[i] ^= 0x01;
    }
    /* truncated: shorter than the tag, or missing its last byte */
    assert_int_equal(
        hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct, HPKE_TAG_LEN - 1, out),
        STATUS_CORRUPT);
    assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct, sizeof ct - 1, out),
                     STATUS_CORRUPT);
    /* and the untouched message still opens */
    assert_int_equal(hpke_open(sk, enc, info, sizeof info, aad, sizeof aad, ct, sizeof ct, out), 0);
}

static void test_hpke_context_roles_and_order(void **state) {
    uint8_t pk[32], sk[32], enc[32];
    hpke_keypair(pk, sk);
    struct hpke_ctx *s = NULL, *r = NULL;
    assert_int_equal(hpke_setup_sender(pk, NULL, 0, enc, &s), 0);
    assert_int_equal(hpke_setup_recipient(sk, enc, NULL, 0, &r), 0);
    uint8_t ct0[1 + HPKE_TAG_LEN], ct1[1 + HPKE_TAG_LEN], out[1];
    const uint8_t m0 = 'a', m1 = 'b';
    assert_int_equal(hpke_ctx_seal(s, NULL, 0, &m0, 1, ct0), 0);
    assert_int_equal(hpke_ctx_seal(s, NULL, 0, &m1, 1, ct1), 0);
    /* Out of order does not open, and does not move the recipient on. */
    assert_int_equal(hpke_ctx_open(r, NULL, 0, ct1, sizeof ct1, out), STATUS_CORRUPT);
    assert_int_equal(hpke_ctx_open(r, NULL, 0, ct0, sizeof ct0, out), 0);
    assert_int_equal(out[0], 'a');
    assert_int_equal(hpke_ctx_open(r, NULL, 0, ct1, sizeof ct1, out), 0);
    assert_int_equal(out[0], 'b');
    /* Replaying a message already opened fails. */
    assert_int_equal(hpke_ctx_open(r, NULL, 0, ct1, sizeof ct1, out), STATUS_CORRUPT);
    /* Each role does only its own half. */
    assert_int_equal(hpke_ctx_open(s, NULL, 0, ct0, sizeof ct0, out), STATUS_BAD_REQUEST);
    assert_int_equal(hpke_ctx_seal(r, NULL, 0, &m0, 1, ct0), STATUS_BAD_REQUEST);
    /* Both ends export the same secret. */
    uint8_t es[32], er[32];
    assert_int_equal(hpke_ctx_export(s, (const uint8_t *)"x", 1, es, sizeof es), 0);
    assert_int_equal(hpke_ctx_export(r, (const uint8_t *)"x", 1, er, sizeof er), 0);
    assert_memory_equal(es, er, sizeof es);
    hpke_ctx_free(s);
    hpke_ctx_free(r);
    hpke_ctx_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hpke_rfc9180_a2_derive_key_pair),
        cmocka_unit_test(test_hpke_rfc9180_a2_encap_decap_and_key_schedule),
        cmocka_unit_test(test_hpke_rfc9180_a2_encryptions_in_sequence),
        cmocka_unit_test(test_hpke_rfc9180_a2_open_vector_ciphertexts),
        cmocka_unit_test(test_hpke_rfc9180_a2_exported_values),
        cmocka_unit_test(test_hpke_rfc9180_a2_single_shot),
        cmocka_unit_test(test_hpke_rejects_all_zero_dh_output),
        cmocka_unit_test(test_hpke_round_trip_sizes),
        cmocka_unit_test(test_hpke_open_fails_on_any_mismatch),
        cmocka_unit_test(test_hpke_context_roles_and_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
