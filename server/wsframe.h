/*
 * server/wsframe.h: the header of an unmasked, final, binary WebSocket frame
 * (RFC 6455 section 5.2), as the server sends it. ws.c frames its queued
 * messages itself when it writes several in one send (lws frames one message
 * per lws_write()).
 *
 * Pure; any thread.
 */
#ifndef SERVER_WSFRAME_H
#define SERVER_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/* The longest header: the opcode byte, 127 and a 64-bit length. */
#define WSFRAME_HEADER_MAX 10

/* Writes the header of a binary frame of `len` payload bytes into out[] (FIN
 * set, no mask, the shortest length form) and returns its length: 2 up to
 * 125 bytes, 4 up to 65535, else 10. */
size_t wsframe_header(uint8_t out[WSFRAME_HEADER_MAX], uint64_t len);

#endif
