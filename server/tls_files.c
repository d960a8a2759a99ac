/*
 * server/tls_files.c: the TLS certificate and key check (tls_files.h), with
 * OpenSSL's libcrypto, the library libwebsockets uses for TLS. Main thread.
 */
#include "server/tls_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "base/buf.h"
#include "base/status.h"

/* A key file larger than this is not a PEM key. */
#define KEY_FILE_MAX (64 * 1024)

static int refuse(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return STATUS_BAD_REQUEST;
}

/* Reads the key file into `out` after checking its type and mode. */
static int read_key_file(const char *path, struct buf *out, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return refuse(err, err_len, "--tls-key %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = refuse(err, err_len, "--tls-key %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = refuse(err, err_len, "--tls-key %s: not a regular file", path);
    else if (st.st_mode & 077)
        rc = refuse(err, err_len,
                    "--tls-key %s: mode %03o lets group or others read the private key; chmod "
                    "600 it",
                    path, (unsigned)(st.st_mode & 0777));
    else if (st.st_size > KEY_FILE_MAX)
        rc = refuse(err, err_len, "--tls-key %s: larger than a PEM key can be", path);
    uint8_t chunk[4096];
    ssize_t n;
    while (rc == 0 && (n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || out->len + (size_t)n > KEY_FILE_MAX)
            rc = refuse(err, err_len, "--tls-key %s: cannot read it", path);
        else
            buf_append(out, chunk, (size_t)n);
    }
    sodium_memzero(chunk, sizeof chunk);
    close(fd);
    return rc;
}

int tls_files_check(const char *cert, const char *key, char *err, size_t err_len) {
    struct buf pem;
    buf_init(&pem);
    X509 *x509 = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int rc = read_key_file(key, &pem, err, err_len);
    if (rc != 0)
        goto out;
    FILE *f = fopen(cert, "r");
    if (!f) {
        rc = refuse(err, err_len, "--tls-cert %s: %s", cert, strerror(errno));
        goto out;
    }
    x509 = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x509) {
        rc = refuse(err, err_len, "--tls-cert %s: no PEM certificate at its start", cert);
        goto out;
    }
    bio = BIO_new_mem_buf(pem.data, (int)pem.len);
    /* An empty passphrase callback: an encrypted key fails here, as it would
     * in libwebsockets, which has no way to ask for its passphrase. */
    pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
    if (!pkey) {
        rc = refuse(err, err_len,
                    "--tls-key %s: no PEM private key (or one with a passphrase) in it", key);
        goto out;
    }
    if (X509_check_private_key(x509, pkey) != 1)
        rc = refuse(err, err_len,
                    "--tls-key %s does not match the certificate in --tls-cert %s (a key of "
                    "another certificate?)",
                    key, cert);
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    X509_free(x509);
    buf_wipe(&pem);
    buf_cleanup(&pem);
    return rc;
}
