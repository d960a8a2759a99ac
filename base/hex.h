/*
 * base/hex.h: lower-case hexadecimal text for bytes, both ways.
 *
 * For people and tools: ids in logs, key fingerprints in the CLI, the interop tool's
 * JSON lines, known-answer vectors in tests. Appends to a caller-owned
 * struct buf (base/buf.h), whose trailing NUL makes encoded text a C string.
 * Bytes that were secret must be wiped from the buffer by the caller. No global
 * state: safe from any thread.
 */
#ifndef BASE_HEX_H
#define BASE_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Appends the 2 * n lower-case hex digits of the n bytes at `in` to `out`;
 * afterwards out->data is a NUL-terminated string (also when n is 0). */
void hex_encode(const uint8_t *in, size_t n, struct buf *out);

/* Appends the bytes spelt by the `len` hex digits at `hex` (either case) to
 * `out`. Returns 0, or STATUS_BAD_REQUEST when `len` is odd or a character is not
 * a hex digit; then `out` is left as it was. */
int hex_decode(const char *hex, size_t len, struct buf *out);

/* Decodes the hex string `hex` (NUL-terminated) into exactly `n` bytes at
 * `out`. Returns 0, or STATUS_BAD_REQUEST when it is not hex or does not spell
 * exactly n bytes (`out` then unchanged). */
int hex_decode_exact(const char *hex, uint8_t *out, size_t n);

#endif
