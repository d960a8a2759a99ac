/*
 * push/content.c: the fixed texts and opaque ids (contract in content.h).
 */
#include "push/content.h"

#include <string.h>

#include <sodium.h>

static const struct push_text TEXTS[PUSH_KIND_COUNT] = {
    [PUSH_KIND_NEW_MESSAGE] =
        {
            .subject = "You have a new secure message",
            .lead = "You have a new secure message in " PUSH_CONTENT_TITLE ".",
            .link_label = "Open the app or sign in to read it:",
            .alert = "You have a new secure message",
        },
    [PUSH_KIND_INVITATION] =
        {
            .subject = "Your invitation to " PUSH_CONTENT_TITLE,
            .lead = "You have been invited to " PUSH_CONTENT_TITLE ", a secure messaging service.",
            .code_label = "Your invitation code:",
            .link_label = "To accept the invitation, open:",
        },
    [PUSH_KIND_PASSWORD_RESET] =
        {
            .subject = "Your " PUSH_CONTENT_TITLE " password reset code",
            .lead = "A password reset was requested for your " PUSH_CONTENT_TITLE
                    " account. If you did not ask for it, ignore this message.",
            .code_label = "Your reset code:",
            .link_label = "Enter the code in the app, or open:",
        },
    [PUSH_KIND_BREACH_NOTICE] =
        {
            .subject = "Important notice about your " PUSH_CONTENT_TITLE " account",
            .lead = "We have an important notice about the security of your " PUSH_CONTENT_TITLE
                    " account.",
            .link_label = "Please sign in to read it:",
            .alert = "Important notice about your account",
        },
};

const struct push_text *push_content_text(enum push_kind kind) {
    if ((unsigned)kind >= PUSH_KIND_COUNT)
        kind = PUSH_KIND_NEW_MESSAGE;
    return &TEXTS[kind];
}

void push_content_opaque_id(const uint8_t id[PUSH_JOB_ID_LEN], const char *purpose,
                            char out[PUSH_CONTENT_ID_HEX]) {
    crypto_hash_sha256_state st;
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)"carechat-push/", 14);
    crypto_hash_sha256_update(&st, (const uint8_t *)purpose, strlen(purpose));
    crypto_hash_sha256_update(&st, (const uint8_t *)"/", 1);
    crypto_hash_sha256_update(&st, id, PUSH_JOB_ID_LEN);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, PUSH_CONTENT_ID_HEX, h, 16);
}
