#include "server/wsframe.h"

#define FIN_BINARY 0x82

size_t wsframe_header(uint8_t out[WSFRAME_HEADER_MAX], uint64_t len) {
    out[0] = FIN_BINARY;
    if (len <= 125) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return WSFRAME_HEADER_MAX;
}
