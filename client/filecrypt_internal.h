/*
 * client/filecrypt_internal.h: for client/'s own tests only (Bazel keeps it in
 * the package): filecrypt_encrypt_open() with a chosen format version, so a
 * test can make a stream whose additional data names another version.
 */
#ifndef CLIENT_FILECRYPT_INTERNAL_H
#define CLIENT_FILECRYPT_INTERNAL_H

#include "client/filecrypt.h"

/* filecrypt_encrypt_open() writing `version` into every chunk's additional
 * data and into the finished struct filecrypt_file. */
int filecrypt_encrypt_open_version(const struct id *file_id, uint64_t size, uint32_t version,
                                   struct buf *out, struct filecrypt_enc **enc);

#endif
