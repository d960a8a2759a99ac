/*
 * tests/interop/filecrypt_tool.c: libcarechat's file encryption
 * (client/filecrypt.h) as a command, so a peer we did not write
 * (filecrypt_interop.mjs with libsodium-wrappers) can decrypt what we encrypt
 * and we what it encrypts. Files are streamed through 10000-byte reads, so
 * chunk boundaries fall inside them.
 *
 *   filecrypt_tool encrypt FILE_ID IN OUT
 *       -> {"key": HEX, "sha256": HEX, "size": N, "version": V}
 *   filecrypt_tool decrypt FILE_ID KEY SHA256 SIZE VERSION IN OUT
 *       -> {"size": N}, or {"error": "<status_str>"} ("corrupt data" for a
 *          ciphertext that does not decrypt or check out)
 *
 * Byte strings are lower-case hex. Prints one JSON line (with jansson) and
 * exits 0 when it printed a result, 1 after {"error": ...}, 2 for bad
 * arguments or unreadable files. A test tool: the keys it prints are for
 * throwaway test files only. Single-threaded.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/hex.h"
#include "base/id.h"
#include "base/status.h"
#include "client/filecrypt.h"
#include "tests/interop/tool_json.h"

#define READ_LEN 10000

/* Writes what `out` holds to `f` and empties it. */
static int drain(struct buf *out, FILE *f) {
    int rc = out->len == 0 || fwrite(out->data, 1, out->len, f) == out->len ? 0 : STATUS_IO;
    buf_reset(out);
    return rc;
}

static int encrypt_file(const struct id *file_id, FILE *in, FILE *out) {
    if (fseek(in, 0, SEEK_END) != 0)
        return STATUS_IO;
    long size = ftell(in);
    rewind(in);
    struct buf ct;
    buf_init(&ct);
    struct filecrypt_enc *enc = NULL;
    int rc = filecrypt_encrypt_open(file_id, (uint64_t)size, &ct, &enc);
    uint8_t chunk[READ_LEN];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, in)) > 0) {
        rc = filecrypt_encrypt_update(enc, chunk, n, &ct);
        if (rc == 0)
            rc = drain(&ct, out);
    }
    struct filecrypt_file file;
    if (rc == 0)
        rc = filecrypt_encrypt_finish(enc, &ct, &file);
    if (rc == 0)
        rc = drain(&ct, out);
    filecrypt_encrypt_free(enc);
    buf_cleanup(&ct);
    if (rc != 0)
        return rc;
    tool_json_print(json_pack("{s:o, s:o, s:I, s:i}", "key",
                              tool_json_hex(file.key, sizeof file.key), "sha256",
                              tool_json_hex(file.sha256, sizeof file.sha256), "size",
                              (json_int_t)file.size, "version", (int)file.version));
    return 0;
}

static int decrypt_file(const struct filecrypt_file *file, FILE *in, FILE *out) {
    struct filecrypt_dec *dec = NULL;
    int rc = filecrypt_decrypt_open(file, &dec);
    struct buf plain;
    buf_init(&plain);
    uint8_t chunk[READ_LEN];
    size_t n;
    uint64_t total = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, in)) > 0) {
        rc = filecrypt_decrypt_update(dec, chunk, n, &plain);
        total += plain.len;
        if (rc == 0)
            rc = drain(&plain, out);
    }
    if (rc == 0)
        rc = filecrypt_decrypt_finish(dec);
    filecrypt_decrypt_free(dec);
    buf_cleanup(&plain);
    if (rc != 0)
        return rc;
    tool_json_print(json_pack("{s:I}", "size", (json_int_t)total));
    return 0;
}

int main(int argc, char **argv) {
    if (sodium_init() < 0)
        return 2;
    struct filecrypt_file file;
    memset(&file, 0, sizeof file);
    const bool enc = argc == 5 && strcmp(argv[1], "encrypt") == 0;
    const bool dec = argc == 9 && strcmp(argv[1], "decrypt") == 0;
    if ((!enc && !dec) || id_from_hex(argv[2], &file.file_id) != 0 ||
        (dec && (hex_decode_exact(argv[3], file.key, sizeof file.key) != 0 ||
                 hex_decode_exact(argv[4], file.sha256, sizeof file.sha256) != 0 ||
                 sscanf(argv[5], "%" SCNu64, &file.size) != 1 ||
                 sscanf(argv[6], "%" SCNu32, &file.version) != 1))) {
        fprintf(stderr, "usage: filecrypt_tool encrypt FILE_ID IN OUT | decrypt FILE_ID KEY "
                        "SHA256 SIZE VERSION IN OUT\n");
        return 2;
    }
    FILE *in = fopen(argv[argc - 2], "rb");
    FILE *out = fopen(argv[argc - 1], "wb");
    if (in == NULL || out == NULL) {
        fprintf(stderr, "filecrypt_tool: cannot open %s or %s\n", argv[argc - 2], argv[argc - 1]);
        return 2;
    }
    int rc = enc ? encrypt_file(&file.file_id, in, out) : decrypt_file(&file, in, out);
    fclose(in);
    if (fclose(out) != 0 && rc == 0)
        rc = STATUS_IO;
    sodium_memzero(&file, sizeof file);
    if (rc != 0) {
        tool_json_error(rc);
        return 1;
    }
    return 0;
}
