/* storage/testutil.c: helpers for the storage tests (see testutil.h). */
#define _GNU_SOURCE
#include "storage/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/check.h"
#include "base/id.h"
#include "base/log.h"
#include "base/rand.h"

static int counter;

char *testutil_path(const char *dir, const char *name) {
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s/%s", dir, name);
    return (char *)buf_steal(&b, NULL);
}

void testutil_remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char *p = testutil_path(path, de->d_name);
            testutil_remove_tree(p);
            free(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

enum store_mode testutil_store_mode(const char *data_dir) {
    char *db = testutil_path(data_dir, "db");
    struct stat st;
    enum store_mode mode = stat(db, &st) == 0 ? STORE_OPEN : STORE_CREATE;
    free(db);
    return mode;
}

char *testutil_fresh_dir(const char *name) {
    const char *base = getenv("TEST_TMPDIR");
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s/%s-%d-%d", base && *base ? base : "/tmp", name, (int)getpid(), counter++);
    char *dir = (char *)buf_steal(&b, NULL);
    testutil_remove_tree(dir);
    CHECK(mkdir(dir, 0700) == 0);
    return dir;
}

uint8_t *testutil_read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct buf b;
    buf_init(&b);
    uint8_t chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        buf_append(&b, chunk, (size_t)n);
    close(fd);
    buf_append(&b, "", 0);
    return buf_steal(&b, len);
}

int testutil_write_file(const char *path, const void *data, size_t len, unsigned mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    int rc = write(fd, data, len) == (ssize_t)len ? 0 : -1;
    if (fchmod(fd, mode) != 0)
        rc = -1;
    close(fd);
    return rc;
}

bool testutil_tree_contains(const char *dir, const void *needle, size_t len) {
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = testutil_path(dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            found = testutil_tree_contains(p, needle, len);
        } else if (S_ISREG(st.st_mode)) {
            size_t n = 0;
            uint8_t *data = testutil_read_file(p, &n);
            found = data && memmem(data, n, needle, len) != NULL;
            free(data);
        }
        free(p);
    }
    closedir(d);
    return found;
}

int testutil_copy_tree(const char *from, const char *to) {
    if (mkdir(to, 0700) != 0)
        return -1;
    DIR *d = opendir(from);
    if (!d)
        return -1;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *src = testutil_path(from, de->d_name);
        char *dst = testutil_path(to, de->d_name);
        struct stat st;
        if (lstat(src, &st) != 0) {
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc = testutil_copy_tree(src, dst);
        } else if (S_ISREG(st.st_mode)) {
            size_t n = 0;
            uint8_t *data = testutil_read_file(src, &n);
            rc = data ? testutil_write_file(dst, data, n, st.st_mode & 0777) : -1;
            free(data);
        }
        free(src);
        free(dst);
    }
    closedir(d);
    return rc;
}

static int saved_stderr = -1;
static char *capture_path;

void testutil_capture_begin(void) {
    CHECK(saved_stderr < 0);
    char *dir = testutil_fresh_dir("capture");
    capture_path = testutil_path(dir, "stderr.txt");
    free(dir);
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && saved_stderr >= 0);
    dup2(fd, 2);
    close(fd);
}

char *testutil_capture_end(void) {
    CHECK(saved_stderr >= 0);
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    size_t n = 0;
    char *text = (char *)testutil_read_file(capture_path, &n);
    free(capture_path);
    capture_path = NULL;
    return text ? text : xstrdup("");
}

void testutil_waker_init(struct testutil_waker *w) {
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->wakes = 0;
}

void testutil_waker_cleanup(struct testutil_waker *w) {
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

void testutil_wake(void *ctx) {
    struct testutil_waker *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->wakes++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

uint64_t testutil_waker_wait(struct testutil_waker *w, uint64_t seen, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (w->wakes <= seen) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
            break;
    }
    uint64_t n = w->wakes;
    pthread_mutex_unlock(&w->lock);
    return n;
}

int64_t testutil_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double testutil_thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct store *testutil_bench_store(const char *name, struct store_config cfg, char **dir, size_t n,
                                   struct id **devices) {
    log_set_level(LOG_ERROR);
    *dir = testutil_fresh_dir(name);
    cfg.data_dir = *dir;
    cfg.mode = STORE_CREATE;
    struct store *s = NULL;
    int rc = store_open(&cfg, &s);
    if (rc != 0) {
        fprintf(stderr, "%s: store_open failed: %d\n", name, rc);
        exit(1);
    }
    *devices = xcalloc(n ? n : 1, sizeof **devices);
    for (size_t d = 0; d < n; d++)
        rand_bytes((*devices)[d].b, ID_LEN);
    return s;
}
