/*
 * client/hpke_internal.h: the steps of HPKE that client/hpke.h does not expose,
 * for the known-answer tests in client/ (RFC 9180 appendix A.2 checks each
 * intermediate, so a wrong step is named rather than only "open failed").
 *
 * Not part of libcarechat's API: only hpke.c and tests in client/ include it.
 * Everything written here is secret; callers wipe it.
 */
#ifndef CLIENT_HPKE_INTERNAL_H
#define CLIENT_HPKE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "client/hpke.h"

/* The outputs of KeySchedule (RFC 9180 5.1) in base mode. */
struct hpke_schedule {
    uint8_t key_schedule_context[1 + 2 * 32]; /* mode | psk_id_hash | info_hash */
    uint8_t secret[32];
    uint8_t key[HPKE_KEY_LEN];
    uint8_t base_nonce[HPKE_NONCE_LEN];
    uint8_t exporter_secret[32];
};

/* Encap(pkR) with the ephemeral private key `sk_e` given: writes the shared
 * secret and enc. Returns 0 or STATUS_BAD_REQUEST (all-zero DH output). */
int hpke_encap_with_ephemeral(const uint8_t pk_r[HPKE_PK_LEN], const uint8_t sk_e[HPKE_SK_LEN],
                              uint8_t shared_secret[HPKE_SECRET_LEN], uint8_t enc[HPKE_ENC_LEN]);

/* Decap(enc, skR): writes the shared secret. Returns 0 or STATUS_CORRUPT (all-zero
 * DH output). */
int hpke_decap(const uint8_t enc[HPKE_ENC_LEN], const uint8_t sk_r[HPKE_SK_LEN],
               uint8_t shared_secret[HPKE_SECRET_LEN]);

/* KeySchedule(mode_base, shared_secret, info, "", ""). */
void hpke_key_schedule(const uint8_t shared_secret[HPKE_SECRET_LEN], const uint8_t *info,
                       size_t info_len, struct hpke_schedule *out);

#endif
