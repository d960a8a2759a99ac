/*
 * client/profile.c: the profile directory (profile.h): a small "name value"
 * text file written atomically with owner-only permissions.
 */
#include "client/profile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base/buf.h"
#include "base/check.h"
#include "base/status.h"
#include "base/hex.h"

#define HEADER "carechat-profile 1"
/* A valid profile is well under 1 KiB; anything much larger is not ours. */
#define MAX_FILE_BYTES 16384

int profile_new(struct profile **out) {
    CHECK(sodium_init() >= 0);
    struct profile *p = sodium_malloc(sizeof *p);
    CHECK(p != NULL);
    sodium_memzero(p, sizeof *p);
    *out = p;
    return 0;
}

void profile_free(struct profile *p) {
    sodium_free(p);
}

/* 0 when `st` is owned by us and closed to group and others. */
static int check_private(const struct stat *st) {
    if (st->st_uid != geteuid() || (st->st_mode & 077) != 0)
        return STATUS_FORBIDDEN;
    return 0;
}

static int file_path(const char *dir, const char *name, char out[PATH_MAX]) {
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    return n < 0 || n >= PATH_MAX ? STATUS_BAD_REQUEST : 0;
}

/* Reads the whole file at `fd` (at most MAX_FILE_BYTES) into `out`. */
static int read_all(int fd, struct buf *out) {
    uint8_t chunk[1024];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sodium_memzero(chunk, sizeof chunk);
            return STATUS_IO;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > MAX_FILE_BYTES) {
            sodium_memzero(chunk, sizeof chunk);
            return STATUS_CORRUPT;
        }
        buf_append(out, chunk, (size_t)n);
    }
    sodium_memzero(chunk, sizeof chunk);
    return 0;
}

static int parse_hex_exact(const char *v, uint8_t *out, size_t n) {
    struct buf b;
    buf_init(&b);
    int rc = hex_decode(v, strlen(v), &b);
    if (rc == 0 && b.len == n)
        memcpy(out, b.data, n);
    else
        rc = STATUS_CORRUPT;
    buf_wipe(&b);
    buf_cleanup(&b);
    return rc;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out) {
    if (*v < '0' || *v > '9')
        return STATUS_CORRUPT;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || x > max)
        return STATUS_CORRUPT;
    *out = x;
    return 0;
}

enum field {
    F_IDENTITY_SEED,
    F_ENCRYPTION_SECRET,
    F_ENCRYPTION_KEY_ID,
    F_ENCRYPTION_KEY_EXPIRES_AT,
    F_ACCOUNT_ID,
    F_DEVICE_ID,
    F_DEVICE_LIST_VERSION,
    F_SESSION_TOKEN,
    F_SESSION_EXPIRES_AT,
    F_ACK_CURSOR,
    F_LAST_ACK_AT,
    F_SESSION_STAY_SIGNED_IN,
    F_SERVER_URL,
    F_CA_FILE,
    F_KEY_BACKUP_KEY,
    F_KEY_BACKUP_DONE,
    F_COUNT,
};

static const char *const field_names[F_COUNT] = {
    "identity_seed",      "encryption_secret", "encryption_key_id",   "encryption_key_expires_at",
    "account_id",         "device_id",         "device_list_version", "session_token",
    "session_expires_at", "ack_cursor",        "last_ack_at",         "session_stay_signed_in",
    "server_url",         "ca_file",           "key_backup_key",      "key_backup_done",
};

#define OLD_KEY_FIELD "old_key"

bool profile_text_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PROFILE_MAX_TEXT)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    return true;
}

/* A remembered text value into `out` (PROFILE_MAX_TEXT + 1 bytes). */
static int parse_text(const char *v, char *out) {
    if (!profile_text_ok(v))
        return STATUS_CORRUPT;
    snprintf(out, PROFILE_MAX_TEXT + 1, "%s", v);
    return 0;
}

/* "ID EXPIRES RETIRED SECRET" of an old_key line. */
static int parse_old_key(struct profile *p, char *v) {
    if (p->n_old_keys == PROFILE_MAX_OLD_KEYS)
        return STATUS_CORRUPT;
    struct profile_old_key *k = &p->old_keys[p->n_old_keys];
    char *save = NULL;
    char *id = strtok_r(v, " ", &save), *exp = strtok_r(NULL, " ", &save);
    char *ret = strtok_r(NULL, " ", &save), *sec = strtok_r(NULL, " ", &save);
    uint64_t x, y, z;
    if (id == NULL || exp == NULL || ret == NULL || sec == NULL ||
        strtok_r(NULL, " ", &save) != NULL || parse_u64(id, UINT32_MAX, &x) != 0 || x == 0 ||
        parse_u64(exp, INT64_MAX, &y) != 0 || parse_u64(ret, INT64_MAX, &z) != 0 ||
        parse_hex_exact(sec, k->secret, PROFILE_SECRET_LEN) != 0)
        return STATUS_CORRUPT;
    k->key_id = (uint32_t)x;
    k->expires_at = (int64_t)y;
    k->retired_at = (int64_t)z;
    p->n_old_keys++;
    return 0;
}

static int parse_field(struct profile *p, enum field f, const char *v) {
    uint64_t x = 0;
    int rc;
    switch (f) {
    case F_IDENTITY_SEED:
        return parse_hex_exact(v, p->identity_seed, PROFILE_SECRET_LEN);
    case F_ENCRYPTION_SECRET:
        return parse_hex_exact(v, p->encryption_secret, PROFILE_SECRET_LEN);
    case F_ENCRYPTION_KEY_ID:
        rc = parse_u64(v, UINT32_MAX, &x);
        if (rc == 0 && x == 0)
            rc = STATUS_CORRUPT;
        p->encryption_key_id = (uint32_t)x;
        return rc;
    case F_ENCRYPTION_KEY_EXPIRES_AT:
        rc = parse_u64(v, INT64_MAX, &x);
        p->encryption_key_expires_at = (int64_t)x;
        return rc;
    case F_ACCOUNT_ID:
        return parse_hex_exact(v, p->account_id.b, ID_LEN);
    case F_DEVICE_ID:
        return parse_hex_exact(v, p->device_id.b, ID_LEN);
    case F_DEVICE_LIST_VERSION:
        return parse_u64(v, UINT64_MAX, &p->device_list_version);
    case F_SESSION_TOKEN:
        return parse_hex_exact(v, p->session_token, PROFILE_TOKEN_LEN);
    case F_SESSION_EXPIRES_AT:
        rc = parse_u64(v, INT64_MAX, &x);
        p->session_expires_at = (int64_t)x;
        return rc;
    case F_ACK_CURSOR: {
        struct buf b;
        buf_init(&b);
        rc = hex_decode(v, strlen(v), &b);
        if (rc == 0 && (b.len == 0 || b.len > PROFILE_MAX_CURSOR))
            rc = STATUS_CORRUPT;
        if (rc == 0) {
            memcpy(p->ack_cursor, b.data, b.len);
            p->ack_cursor_len = b.len;
        }
        buf_cleanup(&b);
        return rc == 0 ? 0 : STATUS_CORRUPT;
    }
    case F_LAST_ACK_AT:
        rc = parse_u64(v, INT64_MAX, &x);
        p->last_ack_at = (int64_t)x;
        return rc;
    case F_SESSION_STAY_SIGNED_IN:
        rc = parse_u64(v, 1, &x);
        p->session_stay_signed_in = x == 1;
        return rc;
    case F_SERVER_URL:
        return parse_text(v, p->server_url);
    case F_CA_FILE:
        return parse_text(v, p->ca_file);
    case F_KEY_BACKUP_KEY:
        p->has_backup_key = true;
        return parse_hex_exact(v, p->backup_key, PROFILE_SECRET_LEN);
    case F_KEY_BACKUP_DONE:
        return parse_u64(v, UINT64_MAX, &p->backup_done);
    case F_COUNT:
        break;
    }
    return STATUS_CORRUPT;
}

/* Parses the NUL-terminated text `s` (modified in place) into `p`. Each group
 * of values is all there or all absent. */
static int parse(char *s, struct profile *p) {
    bool seen[F_COUNT] = {false};
    char *save = NULL;
    char *line = strtok_r(s, "\n", &save);
    if (line == NULL || strcmp(line, HEADER) != 0)
        return STATUS_CORRUPT;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        char *sp = strchr(line, ' ');
        if (sp == NULL)
            return STATUS_CORRUPT;
        *sp = '\0';
        if (strcmp(line, OLD_KEY_FIELD) == 0) {
            int rc = parse_old_key(p, sp + 1);
            if (rc != 0)
                return rc;
            continue;
        }
        int f = 0;
        while (f < F_COUNT && strcmp(field_names[f], line) != 0)
            f++;
        if (f == F_COUNT || seen[f])
            return STATUS_CORRUPT;
        seen[f] = true;
        int rc = parse_field(p, (enum field)f, sp + 1);
        if (rc != 0)
            return rc;
    }
    static const enum field groups[3][4] = {
        {F_IDENTITY_SEED, F_ENCRYPTION_SECRET, F_ENCRYPTION_KEY_ID, F_ENCRYPTION_KEY_EXPIRES_AT},
        {F_ACCOUNT_ID, F_DEVICE_ID, F_DEVICE_LIST_VERSION, F_DEVICE_LIST_VERSION},
        {F_SESSION_TOKEN, F_SESSION_EXPIRES_AT, F_SESSION_TOKEN, F_SESSION_TOKEN},
    };
    bool present[3];
    for (int g = 0; g < 3; g++) {
        present[g] = seen[groups[g][0]];
        for (int i = 1; i < 4; i++)
            if (seen[groups[g][i]] != present[g])
                return STATUS_CORRUPT;
    }
    p->has_keys = present[0];
    p->has_device = present[1];
    p->has_session = present[2];
    /* A device needs its keys, and a session its device. */
    if ((p->has_device && !p->has_keys) || (p->has_session && !p->has_device) ||
        (seen[F_ACK_CURSOR] && !p->has_device) || (p->n_old_keys > 0 && !p->has_keys) ||
        (seen[F_SESSION_STAY_SIGNED_IN] && !p->has_session) ||
        (p->has_backup_key && !p->has_device) || (seen[F_KEY_BACKUP_DONE] && !p->has_backup_key))
        return STATUS_CORRUPT;
    return 0;
}

int profile_load(const char *dir, struct profile **out) {
    char path[PATH_MAX];
    if (file_path(dir, PROFILE_FILE, path) != 0)
        return STATUS_BAD_REQUEST;
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO;
    if (!S_ISDIR(st.st_mode))
        return STATUS_IO;
    int rc = check_private(&st);
    if (rc != 0)
        return rc;

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO;
    struct profile *p = NULL;
    struct buf text;
    buf_init(&text);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = STATUS_IO;
        goto fail;
    }
    rc = check_private(&st);
    if (rc != 0)
        goto fail;
    rc = read_all(fd, &text);
    if (rc != 0)
        goto fail;
    if (text.len == 0 || memchr(text.data, '\0', text.len) != NULL) {
        rc = STATUS_CORRUPT;
        goto fail;
    }
    profile_new(&p);
    rc = parse((char *)text.data, p);
    if (rc != 0)
        goto fail;
    buf_wipe(&text);
    buf_cleanup(&text);
    close(fd);
    *out = p;
    return 0;
fail:
    profile_free(p);
    buf_wipe(&text);
    buf_cleanup(&text);
    close(fd);
    return rc;
}

static void put_hex(struct buf *b, const char *name, const uint8_t *v, size_t n) {
    buf_printf(b, "%s ", name);
    hex_encode(v, n, b);
    buf_append_u8(b, '\n');
}

static int write_all(int fd, const uint8_t *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return STATUS_IO;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Makes sure `dir` exists, is a directory and is private, creating it and
 * its missing parents (0700). */
static int prepare_dir(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return STATUS_IO;
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int made = mkdir(path, 0700);
        *p = '/';
        if (made != 0 && errno != EEXIST)
            return STATUS_IO;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return STATUS_IO;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return STATUS_IO;
    return check_private(&st);
}

/* Writes `len` bytes to `tmp`, syncs, renames it over `path` and syncs `dir`. */
static int write_atomic(const char *dir, const char *path, const char *tmp, const uint8_t *data,
                        size_t len) {
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return STATUS_IO;
    int rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = STATUS_IO;
    if (close(fd) != 0 && rc == 0)
        rc = STATUS_IO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = STATUS_IO;
    if (rc != 0) {
        (void)unlink(tmp);
        return rc;
    }
    /* The rename is durable once the directory is synced. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            rc = STATUS_IO;
        close(dfd);
    }
    return rc;
}

int profile_write_file(const char *dir, const char *name, const uint8_t *data, size_t len) {
    char path[PATH_MAX], tmp[PATH_MAX], tmpname[NAME_MAX];
    if (snprintf(tmpname, sizeof tmpname, "%s.tmp", name) >= (int)sizeof tmpname ||
        file_path(dir, name, path) != 0 || file_path(dir, tmpname, tmp) != 0)
        return STATUS_BAD_REQUEST;
    int rc = prepare_dir(dir);
    if (rc != 0)
        return rc;
    return write_atomic(dir, path, tmp, data, len);
}

int profile_read_file(const char *dir, const char *name, size_t max, struct buf *out) {
    char path[PATH_MAX];
    if (file_path(dir, name, path) != 0)
        return STATUS_BAD_REQUEST;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? STATUS_NOT_FOUND : STATUS_IO;
    struct stat st;
    int rc = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ? STATUS_IO : check_private(&st);
    if (rc == 0 && (uint64_t)st.st_size > max)
        rc = STATUS_CORRUPT;
    uint8_t chunk[4096];
    while (rc == 0) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = STATUS_IO;
        else if (n == 0)
            break;
        else if (out->len + (size_t)n > max)
            rc = STATUS_CORRUPT;
        else
            buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    return rc;
}

int profile_save(const char *dir, const struct profile *p) {
    char path[PATH_MAX], tmp[PATH_MAX];
    if (file_path(dir, PROFILE_FILE, path) != 0 || file_path(dir, PROFILE_FILE ".tmp", tmp) != 0)
        return STATUS_BAD_REQUEST;
    int rc = prepare_dir(dir);
    if (rc != 0)
        return rc;

    struct buf text;
    buf_init(&text);
    buf_printf(&text, "%s\n", HEADER);
    if (p->has_keys) {
        put_hex(&text, field_names[F_IDENTITY_SEED], p->identity_seed, PROFILE_SECRET_LEN);
        put_hex(&text, field_names[F_ENCRYPTION_SECRET], p->encryption_secret, PROFILE_SECRET_LEN);
        buf_printf(&text, "%s %" PRIu32 "\n%s %" PRId64 "\n", field_names[F_ENCRYPTION_KEY_ID],
                   p->encryption_key_id, field_names[F_ENCRYPTION_KEY_EXPIRES_AT],
                   p->encryption_key_expires_at);
        for (size_t i = 0; i < p->n_old_keys; i++) {
            const struct profile_old_key *k = &p->old_keys[i];
            buf_printf(&text, "%s %" PRIu32 " %" PRId64 " %" PRId64 " ", OLD_KEY_FIELD, k->key_id,
                       k->expires_at, k->retired_at);
            hex_encode(k->secret, PROFILE_SECRET_LEN, &text);
            buf_append_u8(&text, '\n');
        }
    }
    if (p->last_ack_at > 0)
        buf_printf(&text, "%s %" PRId64 "\n", field_names[F_LAST_ACK_AT], p->last_ack_at);
    if (p->has_device) {
        put_hex(&text, field_names[F_ACCOUNT_ID], p->account_id.b, ID_LEN);
        put_hex(&text, field_names[F_DEVICE_ID], p->device_id.b, ID_LEN);
        buf_printf(&text, "%s %" PRIu64 "\n", field_names[F_DEVICE_LIST_VERSION],
                   p->device_list_version);
        if (p->ack_cursor_len > 0)
            put_hex(&text, field_names[F_ACK_CURSOR], p->ack_cursor, p->ack_cursor_len);
        if (p->has_backup_key) {
            put_hex(&text, field_names[F_KEY_BACKUP_KEY], p->backup_key, PROFILE_SECRET_LEN);
            if (p->backup_done > 0)
                buf_printf(&text, "%s %" PRIu64 "\n", field_names[F_KEY_BACKUP_DONE],
                           p->backup_done);
        }
    }
    if (p->has_session) {
        put_hex(&text, field_names[F_SESSION_TOKEN], p->session_token, PROFILE_TOKEN_LEN);
        buf_printf(&text, "%s %" PRId64 "\n", field_names[F_SESSION_EXPIRES_AT],
                   p->session_expires_at);
        if (p->session_stay_signed_in)
            buf_printf(&text, "%s 1\n", field_names[F_SESSION_STAY_SIGNED_IN]);
    }
    if (p->server_url[0] != '\0')
        buf_printf(&text, "%s %s\n", field_names[F_SERVER_URL], p->server_url);
    if (p->ca_file[0] != '\0')
        buf_printf(&text, "%s %s\n", field_names[F_CA_FILE], p->ca_file);

    rc = write_atomic(dir, path, tmp, text.data, text.len);
    buf_wipe(&text);
    buf_cleanup(&text);
    return rc;
}
