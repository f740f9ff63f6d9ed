/* SPDX-License-Identifier: Apache-2.0 */
/* configfs-tsm reports: see tsm.h. */
#include "tsm.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSM_ATTEMPTS 3
/* far above any real report: a file that never ends is an error */
#define TSM_READ_MAX (16 * 1024 * 1024)

static int posix_mkdir(void* ctx, const char* path) {
    (void)ctx;
    return mkdir(path, 0700) < 0 ? -errno : 0;
}

static int posix_rmdir(void* ctx, const char* path) {
    (void)ctx;
    return rmdir(path) < 0 ? -errno : 0;
}

/* configfs attributes report a size of 4096 whatever they hold: read until end of file */
static int posix_read(void* ctx, const char* path, uint8_t** ret, size_t* ret_len) {
    (void)ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0, cap = 4096;
    uint8_t* buf = xmalloc(cap);
    int r        = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= TSM_READ_MAX) {
                r = -EFBIG;
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : 0;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (r < 0) {
        free(buf);
        return r;
    }
    *ret     = buf;
    *ret_len = len;
    return 0;
}

static int posix_write(void* ctx, const char* path, const uint8_t* data, size_t len) {
    (void)ctx;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, data, len); /* one write: the kernel takes the blob whole */
    int r     = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
    close(fd);
    return r;
}

const struct tsm_fs* tsm_fs_posix(void) {
    static const struct tsm_fs fs = {
        .mkdir = posix_mkdir, .rmdir = posix_rmdir, .read = posix_read, .write = posix_write};
    return &fs;
}

bool tsm_available(const char* root) {
    struct stat st;
    return stat(root ? root : TSM_ROOT, &st) == 0 && S_ISDIR(st.st_mode);
}

void tsm_report_free(struct tsm_report* r) {
    if (!r)
        return;
    free(r->outblob);
    free(r->auxblob);
    memset(r, 0, sizeof(*r));
}

/* An attribute of the instance: "<dir>/<name>". */
static int attr_read(const struct tsm_fs* fs, const char* dir, const char* name, uint8_t** ret,
                     size_t* ret_len) {
    _cleanup_free_ char* path = xasprintf("%s/%s", dir, name);
    return fs->read(fs->ctx, path, ret, ret_len);
}

static int read_generation(const struct tsm_fs* fs, const char* dir, uint32_t* ret) {
    _cleanup_free_ uint8_t* text = NULL;
    size_t len                   = 0;
    int r                        = attr_read(fs, dir, "generation", &text, &len);
    if (r < 0)
        return r;
    char num[16] = {0};
    if (len == 0 || len >= sizeof(num))
        return -EBADMSG;
    memcpy(num, text, len);
    unsigned long v;
    char end;
    if (sscanf(num, "%lu%c", &v, &end) < 1 || v > UINT32_MAX)
        return -EBADMSG;
    *ret = (uint32_t)v;
    return 0;
}

/* One attempt in a fresh instance; -EAGAIN when another writer changed it meanwhile. */
static int one_report(const struct tsm_fs* fs, const char* dir, const uint8_t* data, size_t len,
                      struct tsm_report* ret, struct moat_error* err) {
    uint32_t before = 0, after = 0;
    _cleanup_free_ char* inblob = xasprintf("%s/inblob", dir);
    int r                       = read_generation(fs, dir, &before);
    if (r < 0)
        return moat_error_set(err, r, "%s/generation: %s", dir, strerror(-r));
    if ((r = fs->write(fs->ctx, inblob, data, len)) < 0)
        return moat_error_set(err, r, "%s: %s", inblob, strerror(-r));
    if ((r = attr_read(fs, dir, "outblob", &ret->outblob, &ret->outblob_len)) < 0)
        return moat_error_set(err, r, "%s/outblob: %s%s", dir, strerror(-r),
                              r == -EFBIG ? " (the report exceeds the kernel's limit)" : "");
    uint8_t* provider = NULL;
    size_t plen       = 0;
    if ((r = attr_read(fs, dir, "provider", &provider, &plen)) < 0)
        return moat_error_set(err, r, "%s/provider: %s", dir, strerror(-r));
    while (plen && (provider[plen - 1] == '\n' || provider[plen - 1] == '\0'))
        plen--;
    snprintf(ret->provider, sizeof(ret->provider), "%.*s", (int)plen, (const char*)provider);
    free(provider);
    r = attr_read(fs, dir, "auxblob", &ret->auxblob, &ret->auxblob_len);
    if (r < 0 && r != -ENOENT)
        return moat_error_set(err, r, "%s/auxblob: %s", dir, strerror(-r));
    if ((r = read_generation(fs, dir, &after)) < 0)
        return moat_error_set(err, r, "%s/generation: %s", dir, strerror(-r));
    ret->generation = after;
    if (after != before + 1)
        return moat_error_set(err, -EAGAIN,
                              "%s: generation went from %u to %u during one request: another "
                              "writer used the instance",
                              dir, before, after);
    return 0;
}

int tsm_get_report(const struct tsm_fs* fs, const char* root, const uint8_t* report_data,
                   size_t len, struct tsm_report* ret, struct moat_error* err) {
    memset(ret, 0, sizeof(*ret));
    if (len > TSM_REPORT_DATA_MAX)
        return moat_error_set(err, -EINVAL, "report data is %zu bytes; configfs-tsm takes %d", len,
                              TSM_REPORT_DATA_MAX);
    static unsigned g_seq;
    int r = -EAGAIN;
    for (int attempt = 0; attempt < TSM_ATTEMPTS && r == -EAGAIN; attempt++) {
        /* one instance per request: concurrent requesters never share one */
        _cleanup_free_ char* dir = xasprintf("%s/moat-%d-%u", root ? root : TSM_ROOT, (int)getpid(),
                                             __atomic_add_fetch(&g_seq, 1, __ATOMIC_RELAXED));
        r                        = fs->mkdir(fs->ctx, dir);
        if (r < 0)
            return moat_error_set(err, r, "cannot create the configfs-tsm report %s: %s", dir,
                                  strerror(-r));
        tsm_report_free(ret);
        r = one_report(fs, dir, report_data, len, ret, err);
        (void)fs->rmdir(fs->ctx, dir);
    }
    if (r < 0)
        tsm_report_free(ret);
    return r;
}
