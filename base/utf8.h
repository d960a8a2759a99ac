/*
 * base/utf8.h: strict UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), the one validator of the codebase: the protocol
 * codec's string check (protocol/proto.h), the text a client sends, and the
 * CLI's output.
 *
 * No global state: safe from any thread.
 */
#ifndef BASE_UTF8_H
#define BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length (1..4) of the well-formed UTF-8 character that starts the `n`
 * bytes at `s`, or 0 when they do not start with one (or n is 0). */
size_t utf8_char_len(const uint8_t *s, size_t n);

/* True when the `n` bytes at `s` are well-formed UTF-8 (NUL bytes included:
 * U+0000 is a character; callers that refuse it check for it themselves). */
bool utf8_valid(const uint8_t *s, size_t n);

#endif
