/*
 * tests/interop/hpke_tool.c: libcarechat's HPKE (client/hpke.h) behind a line
 * protocol, so a peer we did not write (hpke_interop.mjs with @hpke/core) can
 * seal to us and open what we seal.
 *
 * One request per line on stdin, one JSON object per line on stdout, in order.
 * Byte strings are lower-case hex; "-" stands for an empty string.
 *
 *   keygen                      -> {"pk":HEX,"sk":HEX}
 *   seal PK INFO AAD PT         -> {"enc":HEX,"ct":HEX}
 *   open SK INFO AAD ENC CT     -> {"pt":HEX}
 *
 * A request that fails answers {"error":"<status_str>"} ("corrupt data" for a
 * ciphertext that does not open) and the tool goes on with the next line. It
 * exits 0 at the end of its input, 2 for a line over MAX_LINE bytes. A test
 * tool: the private keys it prints are for throwaway test keys only.
 * Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/status.h"
#include "base/hex.h"
#include "client/hpke.h"
#include "tests/interop/tool_json.h"

#define MAX_LINE (8 << 20) /* room for a 4 MiB message in hex */
#define MAX_FIELDS 6

/* Decodes field `s` ("-" or hex) into `out`; returns 0 or STATUS_BAD_REQUEST. */
static int field_bytes(const char *s, struct buf *out) {
    buf_reset(out);
    buf_append(out, "", 0);
    if (strcmp(s, "-") == 0)
        return 0;
    return hex_decode(s, strlen(s), out);
}

static void do_keygen(void) {
    uint8_t pk[HPKE_PK_LEN], sk[HPKE_SK_LEN];
    hpke_keypair(pk, sk);
    tool_json_print(json_pack("{s:o, s:o}", "pk", tool_json_hex(pk, sizeof pk), "sk",
                              tool_json_hex(sk, sizeof sk)));
}

static int do_seal(char **f) {
    uint8_t pk[HPKE_PK_LEN], enc[HPKE_ENC_LEN];
    struct buf info, aad, pt, ct;
    buf_init(&info);
    buf_init(&aad);
    buf_init(&pt);
    buf_init(&ct);
    int rc = hex_decode_exact(f[1], pk, sizeof pk);
    if (rc == 0)
        rc = field_bytes(f[2], &info);
    if (rc == 0)
        rc = field_bytes(f[3], &aad);
    if (rc == 0)
        rc = field_bytes(f[4], &pt);
    if (rc == 0) {
        buf_reserve(&ct, pt.len + HPKE_TAG_LEN);
        rc = hpke_seal(pk, info.data, info.len, aad.data, aad.len, pt.data, pt.len, enc, ct.data);
    }
    if (rc == 0) {
        tool_json_print(json_pack("{s:o, s:o}", "enc", tool_json_hex(enc, sizeof enc), "ct",
                                  tool_json_hex(ct.data, pt.len + HPKE_TAG_LEN)));
    }
    buf_cleanup(&info);
    buf_cleanup(&aad);
    buf_cleanup(&pt);
    buf_cleanup(&ct);
    return rc;
}

static int do_open(char **f) {
    uint8_t sk[HPKE_SK_LEN], enc[HPKE_ENC_LEN];
    struct buf info, aad, ct, pt;
    buf_init(&info);
    buf_init(&aad);
    buf_init(&ct);
    buf_init(&pt);
    int rc = hex_decode_exact(f[1], sk, sizeof sk);
    if (rc == 0)
        rc = field_bytes(f[2], &info);
    if (rc == 0)
        rc = field_bytes(f[3], &aad);
    if (rc == 0)
        rc = hex_decode_exact(f[4], enc, sizeof enc);
    if (rc == 0)
        rc = field_bytes(f[5], &ct);
    if (rc == 0) {
        size_t pt_len = ct.len >= HPKE_TAG_LEN ? ct.len - HPKE_TAG_LEN : 0;
        buf_reserve(&pt, pt_len);
        rc = hpke_open(sk, enc, info.data, info.len, aad.data, aad.len, ct.data, ct.len, pt.data);
        if (rc == 0) {
            tool_json_print(json_pack("{s:o}", "pt", tool_json_hex(pt.data, pt_len)));
        }
    }
    buf_cleanup(&info);
    buf_cleanup(&aad);
    buf_cleanup(&ct);
    buf_cleanup(&pt);
    return rc;
}

/* Splits `line` in place at spaces; returns the number of fields (at most max). */
static int split(char *line, char **fields, int max) {
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        if (n == max)
            return max + 1;
        fields[n++] = tok;
    }
    return n;
}

int main(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > MAX_LINE) {
            fprintf(stderr, "hpke_tool: line over %d bytes\n", MAX_LINE);
            free(line);
            return 2;
        }
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        char *f[MAX_FIELDS];
        int n = split(line, f, MAX_FIELDS);
        int rc = STATUS_BAD_REQUEST;
        if (n == 1 && strcmp(f[0], "keygen") == 0) {
            do_keygen();
            rc = 0;
        } else if (n == 5 && strcmp(f[0], "seal") == 0) {
            rc = do_seal(f);
        } else if (n == 6 && strcmp(f[0], "open") == 0) {
            rc = do_open(f);
        }
        if (rc != 0)
            tool_json_error(rc);
        fflush(stdout);
    }
    free(line);
    return 0;
}
