/*
 * tests/rawproto.h: helpers for the integration tests that speak carechat.v1
 * frames directly (tests/wsclient.h) instead of through libcarechat: a device's
 * keys signed the way carechat.proto's DeviceKeys says, the DeviceRegistration
 * that carries them, and a status check with the server's detail in the failure.
 *
 * Test code only; single-threaded; aborts the current cmocka test on failure.
 */
#ifndef TESTS_RAWPROTO_H
#define TESTS_RAWPROTO_H

#include <stdint.h>

#include <sodium.h>

#include "protocol/proto.h"

/* A device as the test holds it: Ed25519 identity key pair, an X25519 public
 * encryption key (no private half is needed: tests never decrypt) with its key
 * id, expiry and signature, and the id the server assigned. */
struct raw_device {
    uint8_t ipk[crypto_sign_PUBLICKEYBYTES], isk[crypto_sign_SECRETKEYBYTES];
    uint8_t epk[32];
    uint32_t key_id;
    int64_t expires_at;
    uint8_t sig[64];
    uint8_t id[16]; /* assigned by the server */
};

/* Fresh keys: key id 1, expiring 30 days after clock_now(), signed. */
void raw_device_make(struct raw_device *d);

/* Signs d->epk, d->key_id and d->expires_at with the identity key into d->sig
 * (carechat.proto's encryption key statement); call again after changing them. */
void raw_device_sign_key(struct raw_device *d);

/* Fills `reg` and `k` (caller-owned, both initialised here) with d's public keys
 * and a fixed label; `reg` points at `k` and at d's bytes, so d and k must
 * outlive the frame that carries `reg`. */
void raw_registration(Carechat__V1__DeviceRegistration *reg, Carechat__V1__DeviceKeys *k,
                      struct raw_device *d);

/* Fails the test, naming both statuses and the server's detail, unless the
 * Response frame `r` carries the wire status of `status` (0 or STATUS_*). */
void raw_expect_status(const Carechat__V1__Frame *r, int status);

#endif
