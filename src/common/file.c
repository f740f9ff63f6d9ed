/* SPDX-License-Identifier: Apache-2.0 */
/* File helpers. Writes are atomic (temp + fsync + rename + fsync of the directory) so a crash
 * or a failed write never leaves a half-written manifest, key or signature behind. */
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

ssize_t read_full(int fd, void* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = read(fd, (char*)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int mkdir_parents(const char* path, mode_t mode) {
    _cleanup_free_ char* dir = xstrdup(path);
    for (char* p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

int write_all(int fd, const void* buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char*)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

static int read_fd_all(int fd, char** ret_buf, size_t* ret_len) {
    struct strbuf sb = STRBUF_INIT;
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = -errno;
            strbuf_free(&sb);
            return e;
        }
        if (n == 0)
            break;
        strbuf_append(&sb, chunk, (size_t)n);
    }
    *ret_buf = strbuf_take(&sb, ret_len);
    return 0;
}

int read_file(const char* path, char** ret_buf, size_t* ret_len, struct moat_error* err) {
    if (strcmp(path, "-") == 0) {
        int r = read_fd_all(STDIN_FILENO, ret_buf, ret_len);
        return r < 0 ? moat_error_set_errno(err, r, "cannot read standard input") : 0;
    }
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "cannot open '%s'", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return moat_error_set_errno(err, -errno, "cannot stat '%s'", path);
    if (S_ISDIR(st.st_mode))
        return moat_error_set(err, -EISDIR, "cannot read '%s': is a directory", path);
    int r = read_fd_all(fd, ret_buf, ret_len);
    if (r < 0)
        return moat_error_set_errno(err, r, "cannot read '%s'", path);
    return 0;
}

int fsync_parent_dir(const char* path) {
    _cleanup_free_ char* copy = xstrdup(path);
    const char* dir           = dirname(copy);
    _cleanup_close_ int dfd   = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    if (fsync(dfd) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

int write_file_replace(const char* path, const void* buf, size_t len, mode_t mode,
                       const char* keep_as, struct moat_error* err) {
    _cleanup_free_ char* tmp = xasprintf("%s.tmp.XXXXXX", path);
    _cleanup_close_ int fd   = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "cannot create a temporary file next to '%s'",
                                    path);
    int r = write_all(fd, buf, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && close(TAKE_FD(fd)) < 0)
        r = -errno;
    if (r == 0 && keep_as && rename(path, keep_as) < 0 && errno != ENOENT)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return moat_error_set_errno(err, r, "cannot write '%s'", path);
    }
    r = fsync_parent_dir(path);
    if (r < 0)
        return moat_error_set_errno(err, r, "cannot sync the directory of '%s'", path);
    return 0;
}

int write_file_atomic(const char* path, const void* buf, size_t len, mode_t mode,
                      struct moat_error* err) {
    if (strcmp(path, "-") == 0) {
        int r = write_all(STDOUT_FILENO, buf, len);
        return r < 0 ? moat_error_set_errno(err, r, "cannot write to standard output") : 0;
    }
    return write_file_replace(path, buf, len, mode, NULL, err);
}
