/*
 * client/content.h: the end-to-end plaintext of a message (carechat.proto
 * MessageContent; PROTOCOL.md section 10) to and from libcarechat's structs
 * (carechat.h struct carechat_content, struct carechat_message), over the
 * codec in protocol/proto.h.
 *
 * Both directions hold the same rules: kind MESSAGE; text and names UTF-8
 * without NUL; at most CARECHAT_MAX_ATTACHMENTS attachments, each with a
 * 16-byte file id, a 32-byte key and digest, a size up to FILECRYPT_MAX_SIZE,
 * a name up to CARECHAT_MAX_FILE_NAME and a media type up to
 * CARECHAT_MAX_MEDIA_TYPE bytes; a reply-to id of 16 bytes or none. Received
 * content may carry fields and kinds this version does not know (newer
 * clients); a kind it does not know is reported, never shown as text.
 *
 * Plaintext and file keys pass through here: buffers are wiped. No global
 * state: safe from any thread.
 */
#ifndef CLIENT_CONTENT_H
#define CLIENT_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "client/carechat.h"

/* Appends the encoding of `in` (borrowed) to `out` (the caller wipes it).
 * Returns 0; STATUS_BAD_REQUEST when `in` breaks the rules above or has
 * neither text nor attachments (`out` unchanged); STATUS_TOO_LARGE when the
 * encoding is over CARECHAT_MAX_MESSAGE bytes (`out` unchanged). */
int content_encode(const struct carechat_content *in, struct buf *out);

/* Decodes the `len` plaintext bytes at `data` into m's text, attachments and
 * reply_to (owned by `m`: carechat_message_cleanup()) and returns
 * CARECHAT_MESSAGE_OK; or returns CARECHAT_MESSAGE_MALFORMED (not a
 * MessageContent, or it breaks the rules above) or
 * CARECHAT_MESSAGE_UNSUPPORTED (a kind this library does not know), leaving
 * m's content fields untouched. */
enum carechat_message_state content_decode(const uint8_t *data, size_t len,
                                           struct carechat_message *m);

#endif
