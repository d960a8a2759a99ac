/* tests/rawproto.c: device keys, registrations and status checks for raw-frame tests. */
#include "tests/rawproto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/status.h"
#include "storage/keys.h"

void raw_device_sign_key(struct raw_device *d) {
    uint8_t msg[26 + 32 + 4 + 8];
    memcpy(msg, "carechat.v1 encryption key", 26);
    memcpy(msg + 26, d->epk, 32);
    key_put_u32(msg + 58, d->key_id);
    key_put_u64(msg + 62, (uint64_t)d->expires_at);
    crypto_sign_detached(d->sig, NULL, msg, sizeof msg, d->isk);
}

void raw_device_make(struct raw_device *d) {
    memset(d, 0, sizeof *d);
    crypto_sign_keypair(d->ipk, d->isk);
    randombytes_buf(d->epk, sizeof d->epk);
    d->key_id = 1;
    d->expires_at = clock_now() + 30LL * 24 * 3600 * 1000;
    raw_device_sign_key(d);
}

void raw_registration(Carechat__V1__DeviceRegistration *reg, Carechat__V1__DeviceKeys *k,
                      struct raw_device *d) {
    carechat__v1__device_registration__init(reg);
    carechat__v1__device_keys__init(k);
    k->identity_key = (ProtobufCBinaryData){32, d->ipk};
    k->encryption_key = (ProtobufCBinaryData){32, d->epk};
    k->encryption_key_id = d->key_id;
    k->encryption_key_expires_at = d->expires_at;
    k->signature = (ProtobufCBinaryData){64, d->sig};
    reg->keys = k;
    reg->label = "test device";
}

void raw_expect_status(const Carechat__V1__Frame *r, int status) {
    if (r->response->status != (Carechat__V1__Status)status_wire(status))
        fail_msg("expected status %d, got %d (%s)", status_wire(status), r->response->status,
                 r->response->detail);
}
