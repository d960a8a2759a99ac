/*
 * tests/interop/tool_json.c: JSON lines of the interop tools
 * (tests/interop/tool_json.h).
 */
#include "tests/interop/tool_json.h"

#include <stdio.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/hex.h"
#include "base/status.h"

json_t *tool_json_hex(const uint8_t *p, size_t n) {
    struct buf text;
    buf_init(&text);
    hex_encode(p, n, &text);
    buf_append_u8(&text, '\0');
    json_t *j = json_string((const char *)text.data);
    buf_cleanup(&text);
    CHECK(j != NULL);
    return j;
}

int tool_json_print(json_t *obj) {
    if (obj == NULL)
        obj = json_pack("{s:s}", "error", "internal");
    int rc = json_dumpf(obj, stdout, JSON_COMPACT);
    json_decref(obj);
    if (fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        rc = -1;
    return rc;
}

void tool_json_error(int status) {
    tool_json_print(json_pack("{s:s}", "error", status_str(status)));
}
