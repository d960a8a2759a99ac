/*
 * tests/totp_test.c: two-factor sign-in (TOTP, issue 13) on the real
 * carechatd through libcarechat.
 *
 * The codes are computed here, independently of server/totp.c: the test
 * decodes the base32 secret the server answered and runs RFC 6238 with
 * OpenSSL's HMAC-SHA1 (checked first against RFC 6238 appendix B).
 *
 *   - enrolment, a wrong and a right confirmation, the URI without personal
 *     data; a login without a code, with a wrong one, with a right one, the
 *     same code replayed; a recovery code once (and again, refused), typed
 *     another way; disable with a wrong password, a spent recovery code, then
 *     right; then a login needs no code; every step in the audit log;
 *   - wrong codes count as failed sign-ins: past the burst, RATE_LIMITED;
 *   - --require-2fa staff: the bootstrap sysadmin's session can only enrol,
 *     then does everything; its next login needs a code; it cannot disable; a
 *     provider registering gets an enrol-only session; a patient does not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "base/status.h"
#include "tests/fixture.h"
#include "tests/harness.h"

#define PASSWORD "correct-horse-battery-staple"

/* ---- an independent RFC 6238 ---------------------------------------------------- */

static unsigned hotp(const uint8_t *key, size_t key_len, uint64_t counter, unsigned digits) {
    uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    for (int i = 0; i < 8; i++)
        msg[i] = (uint8_t)(counter >> (56 - 8 * i));
    assert_non_null(HMAC(EVP_sha1(), key, (int)key_len, msg, 8, mac, &len));
    assert_int_equal(len, 20);
    int off = mac[19] & 15;
    unsigned v = ((unsigned)(mac[off] & 0x7f) << 24) | ((unsigned)mac[off + 1] << 16) |
                 ((unsigned)mac[off + 2] << 8) | mac[off + 3];
    unsigned mod = 1;
    while (digits--)
        mod *= 10;
    return v % mod;
}

/* RFC 4648 base32 without padding into key (20 bytes). */
static void base32_decode(const char *s, uint8_t key[20]) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    assert_int_equal(strlen(s), 32);
    uint64_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        const char *q = strchr(alphabet, *p);
        assert_non_null(q);
        acc = (acc << 5) | (uint64_t)(q - alphabet);
        bits += 5;
        if (bits >= 8) {
            key[n++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    assert_int_equal(n, 20);
}

static uint64_t step_now(void) {
    return (uint64_t)time(NULL) / 30;
}

static void code_at(const uint8_t key[20], uint64_t step, char out[7]) {
    snprintf(out, 7, "%06u", hotp(key, 20, step, 6));
}

static void test_totp_reference_matches_rfc6238(void **state) {
    (void)state;
    const uint8_t *key = (const uint8_t *)"12345678901234567890";
    assert_int_equal(hotp(key, 20, 59 / 30, 8), 94287082);
    assert_int_equal(hotp(key, 20, 1111111109 / 30, 8), 7081804);
    assert_int_equal(hotp(key, 20, 2000000000 / 30, 8), 69279037);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Enrols and confirms two-factor sign-in on `c`; the secret into key, the
 * step confirmed into *step, the recovery codes into codes. */
static void enable(struct carechat *c, uint8_t key[20], uint64_t *step,
                   char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1]) {
    struct carechat_totp_enrollment e;
    FIXTURE_ASSERT_OK(c, carechat_totp_enroll(c, &e));
    base32_decode(e.secret, key);
    assert_non_null(strstr(e.otpauth_uri, "otpauth://totp/CareChat:"));
    assert_non_null(strstr(e.otpauth_uri, e.secret));
    assert_non_null(strstr(e.otpauth_uri, "issuer=CareChat"));
    assert_null(strchr(e.otpauth_uri, '@')); /* no email in it */
    *step = step_now();
    char code[7];
    code_at(key, *step, code);
    FIXTURE_ASSERT_OK(c, carechat_totp_confirm(c, code, codes));
    for (int i = 0; i < CARECHAT_RECOVERY_CODES; i++)
        assert_int_equal(strlen(codes[i]), CARECHAT_RECOVERY_CODE_LEN);
    assert_string_not_equal(codes[0], codes[1]);
}

static bool audited(struct carechat *admin, const struct id *actor, const char *action,
                    int outcome) {
    struct carechat_audit_filter f = {.actor = actor};
    struct carechat_audit_records *r = NULL;
    FIXTURE_ASSERT_OK(admin, carechat_audit_query(admin, &f, &r));
    bool found = false;
    for (size_t i = 0; i < r->n; i++)
        found |= strcmp(r->items[i].action, action) == 0 && r->items[i].outcome == outcome;
    carechat_audit_records_free(r);
    return found;
}

/* ---- the tests ------------------------------------------------------------------------ */

static void test_totp_login_replay_recovery_disable(void **state) {
    (void)state;
    struct harness *h = NULL;
    assert_int_equal(fixture_start_bootstrapped(NULL, &h), 0);
    char url[FIXTURE_URL_LEN], dir[FIXTURE_DIR_LEN], email[FIXTURE_EMAIL_LEN];
    fixture_url(h, url);
    fixture_fresh_profile("root", dir);
    struct carechat *root = fixture_open(url, dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    fixture_email("pat", email);
    struct carechat *pat =
        fixture_invite_register(url, root, email, CARECHAT_ROLE_PATIENT, PASSWORD, "Pat", NULL);
    struct carechat_session_info who;
    FIXTURE_ASSERT_OK(pat, carechat_session(pat, &who));
    assert_false(who.must_enrol_second_factor);

    /* Confirmation needs a pending secret, then a right code. */
    char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1];
    assert_int_equal(carechat_totp_confirm(pat, "123456", codes), STATUS_CONFLICT);
    struct carechat_totp_enrollment e;
    FIXTURE_ASSERT_OK(pat, carechat_totp_enroll(pat, &e));
    uint8_t key[20];
    base32_decode(e.secret, key);
    char wrong[7];
    code_at(key, step_now() + 5, wrong);
    assert_int_equal(carechat_totp_confirm(pat, wrong, codes), STATUS_FORBIDDEN);
    uint64_t step;
    enable(pat, key, &step, codes); /* a new secret replaces the pending one */
    struct carechat_totp_enrollment again;
    assert_int_equal(carechat_totp_enroll(pat, &again), STATUS_CONFLICT);

    /* Another device of Pat logs in. */
    char dir_b[FIXTURE_DIR_LEN];
    fixture_fresh_profile("pat-b", dir_b);
    struct carechat *b = fixture_open(url, dir_b);
    assert_int_equal(carechat_login(b, email, PASSWORD), STATUS_UNAUTHENTICATED);
    assert_non_null(strstr(carechat_error(b), "second factor required"));
    assert_int_equal(carechat_login_2fa(b, email, "not-the-password", "000000"),
                     STATUS_UNAUTHENTICATED);
    assert_null(strstr(carechat_error(b), "second factor"));
    code_at(key, step + 7, wrong);
    assert_int_equal(carechat_login_2fa(b, email, PASSWORD, wrong), STATUS_UNAUTHENTICATED);
    assert_non_null(strstr(carechat_error(b), "wrong second factor"));
    /* The code of the step after the confirmed one (within the window). */
    char code[7];
    code_at(key, step + 1, code);
    FIXTURE_ASSERT_OK(b, carechat_login_2fa(b, email, PASSWORD, code));
    /* The same code again: refused (replay), and the confirmed step too. */
    assert_int_equal(carechat_login_2fa(b, email, PASSWORD, code), STATUS_UNAUTHENTICATED);
    assert_non_null(strstr(carechat_error(b), "wrong second factor"));
    code_at(key, step, code);
    assert_int_equal(carechat_login_2fa(b, email, PASSWORD, code), STATUS_UNAUTHENTICATED);

    /* A recovery code works once; typed in lower case without dashes too. */
    FIXTURE_ASSERT_OK(b, carechat_login_2fa(b, email, PASSWORD, codes[0]));
    assert_int_equal(carechat_login_2fa(b, email, PASSWORD, codes[0]), STATUS_UNAUTHENTICATED);
    char typed[32];
    size_t n = 0;
    for (const char *p = codes[1]; *p; p++)
        if (*p != '-')
            typed[n++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    typed[n] = '\0';
    FIXTURE_ASSERT_OK(b, carechat_login_2fa(b, email, PASSWORD, typed));

    /* Disable: the password and an unspent factor. */
    assert_int_equal(carechat_totp_disable(b, "not-the-password", codes[2]),
                     STATUS_UNAUTHENTICATED);
    assert_int_equal(carechat_totp_disable(b, PASSWORD, codes[0]), STATUS_UNAUTHENTICATED);
    FIXTURE_ASSERT_OK(b, carechat_totp_disable(b, PASSWORD, codes[2]));
    assert_int_equal(carechat_totp_disable(b, PASSWORD, codes[3]), STATUS_CONFLICT);
    FIXTURE_ASSERT_OK(b, carechat_login(b, email, PASSWORD));

    /* Every step is in the audit log. */
    assert_true(audited(root, &who.account_id, "account.2fa_enroll", 0));
    assert_true(audited(root, &who.account_id, "account.2fa_confirm", 0));
    assert_true(audited(root, &who.account_id, "account.2fa_confirm", 3)); /* FORBIDDEN */
    assert_true(audited(root, &who.account_id, "session.2fa_refused", 2)); /* UNAUTHENTICATED */
    assert_true(audited(root, &who.account_id, "account.2fa_recovery_used", 0));
    assert_true(audited(root, &who.account_id, "account.2fa_disable", 0));
    carechat_close(b);
    carechat_close(pat);
    carechat_close(root);
    assert_int_equal(fixture_stop(h), 0);
}

static void test_totp_wrong_codes_count_as_failed_sign_ins(void **state) {
    (void)state;
    struct harness *h = NULL;
    assert_int_equal(fixture_start_bootstrapped(NULL, &h), 0);
    char url[FIXTURE_URL_LEN], dir[FIXTURE_DIR_LEN], email[FIXTURE_EMAIL_LEN];
    fixture_url(h, url);
    fixture_fresh_profile("root", dir);
    struct carechat *root = fixture_open(url, dir);
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    fixture_email("doc", email);
    struct carechat *doc =
        fixture_invite_register(url, root, email, CARECHAT_ROLE_PROVIDER, PASSWORD, "Doc", NULL);
    uint8_t key[20];
    uint64_t step;
    char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1];
    enable(doc, key, &step, codes);
    /* --login-burst (5) wrong codes from this network with the right password,
     * from the account's own device... */
    char wrong[7];
    code_at(key, step + 7, wrong);
    for (int i = 0; i < 5; i++)
        assert_int_equal(carechat_login_2fa(doc, email, PASSWORD, wrong), STATUS_UNAUTHENTICATED);
    /* ...and even the right factor now has to wait. */
    assert_int_equal(carechat_login_2fa(doc, email, PASSWORD, codes[0]), STATUS_RATE_LIMITED);
    carechat_close(doc);
    carechat_close(root);
    assert_int_equal(fixture_stop(h), 0);
}

static void test_totp_required_for_staff(void **state) {
    (void)state;
    const char *args[] = {"--require-2fa", "staff", NULL};
    struct harness *h = NULL;
    assert_int_equal(fixture_start_bootstrapped(args, &h), 0);
    char url[FIXTURE_URL_LEN], dir[FIXTURE_DIR_LEN], email[FIXTURE_EMAIL_LEN];
    fixture_url(h, url);
    fixture_fresh_profile("root", dir);
    struct carechat *root = fixture_open(url, dir);
    /* The sysadmin without a second factor: a session that can only enrol. */
    FIXTURE_ASSERT_OK(root, carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD));
    struct carechat_session_info who;
    FIXTURE_ASSERT_OK(root, carechat_session(root, &who));
    assert_true(who.must_enrol_second_factor);
    fixture_email("pat", email);
    char code_out[CARECHAT_MAX_CODE + 1];
    assert_int_equal(carechat_invite(root, email, CARECHAT_ROLE_PATIENT, code_out, NULL),
                     STATUS_FORBIDDEN);
    assert_non_null(strstr(carechat_error(root), "two-factor sign-in required"));
    /* So is a reconnect of that session (Authenticate). */
    carechat_close(root);
    root = fixture_open(url, dir);
    assert_int_equal(carechat_invite(root, email, CARECHAT_ROLE_PATIENT, code_out, NULL),
                     STATUS_FORBIDDEN);
    /* Enrolled and confirmed: the same session does everything. */
    uint8_t key[20];
    uint64_t step;
    char codes[CARECHAT_RECOVERY_CODES][CARECHAT_RECOVERY_CODE_LEN + 1];
    enable(root, key, &step, codes);
    FIXTURE_ASSERT_OK(root, carechat_session(root, &who));
    assert_false(who.must_enrol_second_factor);
    struct carechat *pat =
        fixture_invite_register(url, root, email, CARECHAT_ROLE_PATIENT, PASSWORD, "Pat", NULL);
    /* Patients are not held. */
    struct carechat_session_info pi;
    FIXTURE_ASSERT_OK(pat, carechat_session(pat, &pi));
    assert_false(pi.must_enrol_second_factor);
    /* Staff cannot turn it off. */
    assert_int_equal(carechat_totp_disable(root, FIXTURE_ROOT_PASSWORD, codes[0]),
                     STATUS_FORBIDDEN);
    /* The next login of the sysadmin needs the factor. */
    assert_int_equal(carechat_login(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD),
                     STATUS_UNAUTHENTICATED);
    char code[7];
    code_at(key, step + 1, code);
    FIXTURE_ASSERT_OK(root,
                      carechat_login_2fa(root, FIXTURE_ROOT_EMAIL, FIXTURE_ROOT_PASSWORD, code));
    FIXTURE_ASSERT_OK(root, carechat_session(root, &who));
    assert_false(who.must_enrol_second_factor);
    /* A provider registering gets a session that must enrol. */
    char doc_email[FIXTURE_EMAIL_LEN];
    fixture_email("doc", doc_email);
    struct carechat *doc = fixture_invite_register(url, root, doc_email, CARECHAT_ROLE_PROVIDER,
                                                   PASSWORD, "Doc", NULL);
    struct carechat_session_info di;
    FIXTURE_ASSERT_OK(doc, carechat_session(doc, &di));
    assert_true(di.must_enrol_second_factor);
    struct carechat_devices *devs = NULL;
    assert_int_equal(carechat_devices(doc, &devs), STATUS_FORBIDDEN);
    uint8_t doc_key[20];
    enable(doc, doc_key, &step, codes);
    FIXTURE_ASSERT_OK(doc, carechat_devices(doc, &devs));
    assert_int_equal(devs->n, 1);
    assert_true(devs->devices[0].listed); /* published once enrolled */
    carechat_devices_free(devs);
    carechat_close(doc);
    carechat_close(pat);
    carechat_close(root);
    assert_int_equal(fixture_stop(h), 0);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totp_reference_matches_rfc6238),
        cmocka_unit_test(test_totp_login_replay_recovery_disable),
        cmocka_unit_test(test_totp_wrong_codes_count_as_failed_sign_ins),
        cmocka_unit_test(test_totp_required_for_staff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
