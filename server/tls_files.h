/*
 * server/tls_files.h: the check of --tls-cert and --tls-key that runs with the
 * configuration's validation, before anything is opened or listened on.
 *
 * libwebsockets loads the files only when it creates the listeners, after the
 * data directory is open, and what it says about a bad pair is an OpenSSL
 * error string; a key file that group or others may read it takes without a
 * word. This check names the problem, and carechatd exits with status 2.
 *
 * Main thread.
 */
#ifndef SERVER_TLS_FILES_H
#define SERVER_TLS_FILES_H

#include <stddef.h>

/* Checks that `key` is a regular file readable by its owner only (no group or
 * other permission bits), that `cert` starts with a PEM certificate and `key`
 * holds a PEM private key without a passphrase, and that the key is the
 * certificate's. Returns 0, or STATUS_BAD_REQUEST with a one-line message
 * naming the file and what is wrong in err (at most err_len bytes,
 * NUL-terminated). The key's bytes are wiped from our buffers after use. */
int tls_files_check(const char *cert, const char *key, char *err, size_t err_len);

#endif
