/*
 * tests/interop/tool_json.h: the JSON lines the interop tools answer their
 * Node peers with, written through libjansson (the only JSON writer of the
 * codebase). Single-threaded test code.
 */
#ifndef TESTS_INTEROP_TOOL_JSON_H
#define TESTS_INTEROP_TOOL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A JSON string of the `n` bytes at `p` in lower-case hex. */
json_t *tool_json_hex(const uint8_t *p, size_t n);

/* Prints `obj` (taking it; NULL prints {"error":"internal"}) as one line on
 * stdout and flushes. Returns 0, or -1 when stdout fails. */
int tool_json_print(json_t *obj);

/* Prints {"error": status_str(status)}. */
void tool_json_error(int status);

#endif
