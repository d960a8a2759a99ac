/*
 * tests/interop/envelope_tool.c: libcarechat's message envelope
 * (client/envelope.h, protocol/transcript.h) and device-list statement
 * (client/statement.h) behind a line protocol, so that a peer we did not
 * write (envelope_interop.mjs on @hpke/core and libsodium-wrappers) checks
 * every byte layout and signature independently, and seals to us.
 *
 * One request per line on stdin, one JSON object per line on stdout:
 *
 *   seal TEXT URGENT SENT_AT COUNTER
 *       a fresh sender identity and two fresh recipient devices; the
 *       envelope of TEXT (hex) with that context ->
 *       {"sender_pk","conv","cmid","sender_device","nonce","body","sig",
 *        "wraps":[{"device","key_id","enc","wrapped","sk"}...],
 *        "list_account","list_prev","list_sig","list_devices":[{"device","key"}]}
 *       (the list: version 2 of the sender's account, signed by the sender)
 *   open SENDER_PK SK DEVICE KEY_ID CONV CMID SENDER_DEVICE URGENT SENT_AT
 *        COUNTER NONCE BODY ENC WRAPPED RECIPIENTS
 *       envelope_open() of an envelope carrying one wrap, RECIPIENTS being
 *       "DEVICE:KEY_ID,..." (the signed recipient list) -> {"pt":HEX}
 *
 * A failed request answers {"error":"<status_str>"}. Test keys only.
 * Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/hex.h"
#include "base/status.h"
#include "client/envelope.h"
#include "client/hpke.h"
#include "client/statement.h"
#include "tests/interop/tool_json.h"

#define MAX_LINE (1 << 20)
#define MAX_FIELDS 16

static int unhex(const char *s, uint8_t *out, size_t n) {
    return hex_decode_exact(s, out, n);
}

static void do_seal(char **f, int nf) {
    if (nf != 5) {
        tool_json_error(STATUS_BAD_REQUEST);
        return;
    }
    struct buf text;
    buf_init(&text);
    if (strcmp(f[1], "-") != 0 && hex_decode(f[1], strlen(f[1]), &text) != 0) {
        tool_json_error(STATUS_BAD_REQUEST);
        return;
    }
    struct envelope_identity *sender = NULL;
    envelope_identity_new(&sender);
    uint8_t sender_pk[32];
    envelope_identity_public(sender, sender_pk);
    struct envelope_header h;
    memset(&h, 0, sizeof h);
    h.conversation_id = id_new();
    h.client_msg_id = id_new();
    h.sender_device_id = id_new();
    h.urgent = strcmp(f[2], "1") == 0;
    h.sent_at = strtoll(f[3], NULL, 10);
    h.counter = strtoull(f[4], NULL, 10);
    struct envelope_identity *rid[2] = {NULL, NULL};
    struct envelope_enc_key *rkey[2] = {NULL, NULL};
    uint8_t rsk[2][32];
    struct envelope_recipient to[2];
    for (int i = 0; i < 2; i++) {
        envelope_identity_new(&rid[i]);
        struct id dev = id_new();
        uint8_t pk[32];
        hpke_keypair(pk, rsk[i]);
        envelope_enc_key_import(rid[i], &dev, (uint32_t)(7 + i), INT64_MAX / 2, rsk[i], &rkey[i]);
        to[i].key = envelope_enc_key_public(rkey[i]);
        envelope_identity_public(rid[i], to[i].identity_pk);
    }
    struct envelope env;
    int rc = envelope_seal(&h, text.data, text.len, to, 2, sender, &env);
    if (rc != 0) {
        tool_json_error(rc);
    } else {
        json_t *wraps = json_array();
        for (size_t w = 0; w < env.n_wraps; w++) {
            int who = memcmp(env.wraps[w].device_id.b, to[0].key->device_id.b, 16) == 0 ? 0 : 1;
            json_array_append_new(wraps, json_pack("{s:o, s:I, s:o, s:o, s:o}", "device",
                                                   tool_json_hex(env.wraps[w].device_id.b, 16),
                                                   "key_id", (json_int_t)env.wraps[w].key_id, "enc",
                                                   tool_json_hex(env.wraps[w].enc, 32), "wrapped",
                                                   tool_json_hex(env.wraps[w].wrapped_key, 48),
                                                   "sk", tool_json_hex(rsk[who], 32)));
        }
        /* A device list, version 2, of the sender's device and one more. */
        struct id account = id_new();
        struct statement_device devs[2];
        devs[0].device_id = h.sender_device_id;
        memcpy(devs[0].identity_key, sender_pk, 32);
        devs[1].device_id = id_new();
        envelope_identity_public(rid[0], devs[1].identity_key);
        uint8_t prev[32];
        randombytes_buf(prev, sizeof prev);
        struct buf st;
        buf_init(&st);
        statement_device_list(&account, 2, devs, 2, prev, &st);
        uint8_t lsig[64];
        envelope_identity_sign(sender, st.data, st.len, lsig);
        buf_cleanup(&st);
        json_t *list_devices = json_array();
        for (int i = 0; i < 2; i++)
            json_array_append_new(list_devices,
                                  json_pack("{s:o, s:o}", "device",
                                            tool_json_hex(devs[i].device_id.b, 16), "key",
                                            tool_json_hex(devs[i].identity_key, 32)));
        json_t *o =
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "sender_pk",
                      tool_json_hex(sender_pk, 32), "conv", tool_json_hex(h.conversation_id.b, 16),
                      "cmid", tool_json_hex(h.client_msg_id.b, 16), "sender_device",
                      tool_json_hex(h.sender_device_id.b, 16), "nonce",
                      tool_json_hex(env.nonce, sizeof env.nonce), "body",
                      tool_json_hex(env.body, env.body_len), "sig", tool_json_hex(env.sig, 64),
                      "wraps", wraps);
        json_object_set_new(o, "list_account", tool_json_hex(account.b, 16));
        json_object_set_new(o, "list_prev", tool_json_hex(prev, 32));
        json_object_set_new(o, "list_sig", tool_json_hex(lsig, 64));
        json_object_set_new(o, "list_devices", list_devices);
        tool_json_print(o);
        envelope_cleanup(&env);
    }
    for (int i = 0; i < 2; i++) {
        envelope_enc_key_free(rkey[i]);
        envelope_identity_free(rid[i]);
    }
    sodium_memzero(rsk, sizeof rsk);
    envelope_identity_free(sender);
    buf_cleanup(&text);
}

static void do_open(char **f, int nf) {
    uint8_t sender_pk[32], sk[32];
    struct envelope env;
    memset(&env, 0, sizeof env);
    struct buf body;
    buf_init(&body);
    struct envelope_wrap wrap;
    struct id device;
    int rc = nf == 16 ? 0 : STATUS_BAD_REQUEST;
    if (rc == 0 && (unhex(f[1], sender_pk, 32) || unhex(f[2], sk, 32) ||
                    unhex(f[3], device.b, 16) || unhex(f[5], env.header.conversation_id.b, 16) ||
                    unhex(f[6], env.header.client_msg_id.b, 16) ||
                    unhex(f[7], env.header.sender_device_id.b, 16) || unhex(f[11], env.nonce, 24) ||
                    hex_decode(f[12], strlen(f[12]), &body) || unhex(f[13], wrap.enc, 32) ||
                    unhex(f[14], wrap.wrapped_key, 48)))
        rc = STATUS_BAD_REQUEST;
    struct envelope_ref refs[ENVELOPE_MAX_WRAPS];
    size_t n_refs = 0;
    for (char *save = NULL, *r = rc == 0 ? strtok_r(f[15], ",", &save) : NULL; r != NULL;
         r = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(r, ':');
        if (colon == NULL || n_refs == ENVELOPE_MAX_WRAPS) {
            rc = STATUS_BAD_REQUEST;
            break;
        }
        *colon = '\0';
        if (unhex(r, refs[n_refs].device_id.b, 16) != 0) {
            rc = STATUS_BAD_REQUEST;
            break;
        }
        refs[n_refs++].key_id = (uint32_t)strtoul(colon + 1, NULL, 10);
    }
    struct envelope_identity *id = NULL;
    struct envelope_enc_key *key = NULL;
    if (rc == 0) {
        uint32_t key_id = (uint32_t)strtoul(f[4], NULL, 10);
        envelope_identity_new(&id);
        rc = envelope_enc_key_import(id, &device, key_id, INT64_MAX / 2, sk, &key);
        wrap.device_id = device;
        wrap.key_id = key_id;
    }
    if (rc == 0) {
        env.version = ENVELOPE_VERSION;
        env.header.urgent = strcmp(f[8], "1") == 0;
        env.header.sent_at = strtoll(f[9], NULL, 10);
        env.header.counter = strtoull(f[10], NULL, 10);
        env.body = body.data;
        env.body_len = body.len;
        env.wraps = &wrap;
        env.n_wraps = 1;
        env.recipients = refs;
        env.n_recipients = n_refs;
        struct buf out;
        buf_init(&out);
        rc = envelope_open(&env, sender_pk, key, &out);
        if (rc == 0)
            tool_json_print(json_pack("{s:o}", "pt", tool_json_hex(out.data, out.len)));
        buf_wipe(&out);
        buf_cleanup(&out);
    }
    if (rc != 0)
        tool_json_error(rc);
    envelope_enc_key_free(key);
    envelope_identity_free(id);
    buf_cleanup(&body);
    sodium_memzero(sk, sizeof sk);
}

int main(void) {
    if (sodium_init() < 0)
        return 1;
    char *line = malloc(MAX_LINE);
    while (fgets(line, MAX_LINE, stdin) != NULL) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        char *f[MAX_FIELDS + 1];
        int nf = 0;
        for (char *save = NULL, *t = strtok_r(line, " ", &save); t != NULL && nf <= MAX_FIELDS;
             t = strtok_r(NULL, " ", &save))
            f[nf++] = t;
        if (nf > 0 && strcmp(f[0], "seal") == 0)
            do_seal(f, nf);
        else if (nf > 0 && strcmp(f[0], "open") == 0)
            do_open(f, nf);
        else
            tool_json_error(STATUS_BAD_REQUEST);
        fflush(stdout);
    }
    free(line);
    return 0;
}
