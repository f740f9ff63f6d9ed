/* SPDX-License-Identifier: Apache-2.0 */
/* /dev/attestation: see devfs.h. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "devfs.h"
#include "encfs.h"

enum {
    INO_ROOT    = 1,
    INO_KEYS    = 2,
    INO_PF_KEY  = 3,  /* protected_files_key */
    INO_KEY_MIN = 16, /* keys/<name>: INO_KEY_MIN + the key's index in encfs */
};

#define SNAPSHOT_MAX 64

struct devfs {
    struct encfs* keys;
    struct fuse_session* se;
    pthread_t thread;
    bool started;
};

/* An open pseudo-file: the content made at open(). */
struct handle {
    fuse_ino_t ino;
    size_t len;
    uint8_t data[SNAPSHOT_MAX];
};

static struct devfs* dev_of(fuse_req_t req) {
    return fuse_req_userdata(req);
}

/* The key name of a keys/ inode (malloc'd), or NULL. */
static char* key_name_of(struct devfs* d, fuse_ino_t ino) {
    return ino >= INO_KEY_MIN ? encfs_key_name(d->keys, ino - INO_KEY_MIN) : NULL;
}

static int attr_of(struct devfs* d, fuse_ino_t ino, struct stat* st) {
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    if (ino == INO_ROOT || ino == INO_KEYS) {
        st->st_mode  = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    st->st_nlink = 1;
    if (ino == INO_PF_KEY) {
        st->st_mode = S_IFREG | 0666;
        return 0;
    }
    _cleanup_free_ char* name = key_name_of(d, ino);
    if (!name)
        return -ENOENT;
    st->st_mode = S_IFREG | (name[0] == '_' ? 0444 : 0666); /* stat size 0, as Gramine's */
    return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct devfs* d = dev_of(req);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    if (parent == INO_ROOT && !strcmp(name, "keys"))
        e.ino = INO_KEYS;
    else if (parent == INO_ROOT && !strcmp(name, "protected_files_key"))
        e.ino = INO_PF_KEY;
    else if (parent == INO_KEYS) {
        for (size_t i = 0;; i++) {
            _cleanup_free_ char* k = encfs_key_name(d->keys, i);
            if (!k)
                break;
            if (!strcmp(k, name)) {
                e.ino = INO_KEY_MIN + i;
                break;
            }
        }
    }
    if (!e.ino) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    (void)attr_of(d, e.ino, &e.attr);
    e.entry_timeout = 1.0;
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)fi;
    struct stat st;
    int r = attr_of(dev_of(req), ino, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, 0);
}

/* open(O_TRUNC) of a pseudo-file: nothing to truncate (the content is made at open) */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                       struct fuse_file_info* fi) {
    (void)attr;
    (void)fi;
    if (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                   FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    op_getattr(req, ino, NULL);
}

static void add_entry(fuse_req_t req, char* buf, size_t size, size_t* pos, const char* name,
                      fuse_ino_t ino, mode_t mode, off_t next) {
    struct stat st = {.st_ino = ino, .st_mode = mode};
    size_t need    = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    if (*pos + need > size)
        return;
    *pos += fuse_add_direntry(req, buf + *pos, size - *pos, name, &st, next);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info* fi) {
    (void)fi;
    struct devfs* d = dev_of(req);
    if (ino != INO_ROOT && ino != INO_KEYS) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    _cleanup_free_ char* buf = xmalloc(size);
    size_t pos               = 0;
    /* offsets: 1 ".", 2 "..", 3 + i the i-th entry */
    if (off < 1)
        add_entry(req, buf, size, &pos, ".", ino, S_IFDIR, 1);
    if (off < 2)
        add_entry(req, buf, size, &pos, "..", INO_ROOT, S_IFDIR, 2);
    if (ino == INO_ROOT) {
        if (off < 3)
            add_entry(req, buf, size, &pos, "keys", INO_KEYS, S_IFDIR, 3);
        if (off < 4)
            add_entry(req, buf, size, &pos, "protected_files_key", INO_PF_KEY, S_IFREG, 4);
    } else {
        for (size_t i = off < 3 ? 0 : (size_t)off - 2;; i++) {
            _cleanup_free_ char* k = encfs_key_name(d->keys, i);
            if (!k)
                break;
            size_t before = pos;
            add_entry(req, buf, size, &pos, k, INO_KEY_MIN + i, S_IFREG, (off_t)i + 3);
            if (pos == before)
                break;
        }
    }
    fuse_reply_buf(req, buf, pos);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct devfs* d = dev_of(req);
    if (ino == INO_ROOT || ino == INO_KEYS) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    struct handle* h = xcalloc(1, sizeof(*h));
    h->ino           = ino;
    uint8_t key[16];
    int set = 0;
    if (ino == INO_PF_KEY) {
        set = encfs_get_key(d->keys, "default", key);
        if (set > 0) {
            h->len = (size_t)hex_encode(key, 16, (char*)h->data, sizeof(h->data));
        }
    } else {
        _cleanup_free_ char* name = key_name_of(d, ino);
        set                       = name ? encfs_get_key(d->keys, name, key) : -ENOENT;
        if (set >= 0 && (fi->flags & O_ACCMODE) != O_RDONLY && name[0] == '_')
            set = -EACCES; /* special keys come from the platform, never from the app */
        if (set > 0) {
            memcpy(h->data, key, 16);
            h->len = 16;
        }
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (set < 0) {
        free(h);
        fuse_reply_err(req, -set);
        return;
    }
    fi->fh        = (uintptr_t)h;
    fi->direct_io = 1; /* every read and write reaches us as the app made it */
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info* fi) {
    (void)ino;
    struct handle* h = (struct handle*)(uintptr_t)fi->fh;
    if (off < 0 || (size_t)off >= h->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = h->len - (size_t)off;
    fuse_reply_buf(req, (const char*)h->data + off, n < size ? n : size);
}

/* Graphene's /dev/attestation/protected_files_key: 32 hex digits, a trailing newline or NUL
 * tolerated (echo and C strings). */
static bool parse_hex_key(const char* buf, size_t size, uint8_t key[16]) {
    while (size > 32 && (buf[size - 1] == '\n' || buf[size - 1] == '\0'))
        size--;
    return size == 32 && hex_decode(buf, 32, key, 16) == 16;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                     struct fuse_file_info* fi) {
    (void)off;
    struct devfs* d  = dev_of(req);
    struct handle* h = (struct handle*)(uintptr_t)fi->fh;
    uint8_t key[16];
    if (ino == INO_PF_KEY) {
        if (!parse_hex_key(buf, size, key)) {
            moat_log(LOG_LEVEL_WARNING,
                     "/dev/attestation/protected_files_key: expected 32 hex digits, got %zu bytes",
                     size);
            fuse_reply_err(req, EACCES);
            return;
        }
        encfs_set_key(d->keys, "default", key);
        h->len = (size_t)hex_encode(key, 16, (char*)h->data, sizeof(h->data));
    } else {
        _cleanup_free_ char* name = key_name_of(d, ino);
        if (!name || name[0] == '_' || size != 16) {
            if (name && size != 16)
                moat_log(LOG_LEVEL_WARNING,
                         "/dev/attestation/keys/%s: a key is written as exactly 16 bytes in one "
                         "write (got %zu)",
                         name, size);
            fuse_reply_err(req, EACCES);
            return;
        }
        memcpy(key, buf, 16);
        encfs_set_key(d->keys, name, key);
        memcpy(h->data, key, 16);
        h->len = 16;
        moat_log(LOG_LEVEL_DEBUG, "encrypted-files key '%s' set through /dev/attestation", name);
    }
    OPENSSL_cleanse(key, sizeof(key));
    fuse_reply_write(req, size);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)ino;
    struct handle* h = (struct handle*)(uintptr_t)fi->fh;
    OPENSSL_cleanse(h, sizeof(*h));
    free(h);
    fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    if (ino != INO_ROOT && ino != INO_KEYS)
        fuse_reply_err(req, ENOTDIR);
    else
        fuse_reply_open(req, fi);
}

static const struct fuse_lowlevel_ops g_ops = {
    .lookup  = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .open    = op_open,
    .read    = op_read,
    .write   = op_write,
    .release = op_release,
};

struct devfs* devfs_new(struct encfs* keys, struct moat_error* err) {
    struct devfs* d       = xcalloc(1, sizeof(*d));
    d->keys               = keys;
    char* argv[]          = {(char*)"moat-dev", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    d->se                 = fuse_session_new(&args, &g_ops, sizeof(g_ops), d);
    fuse_opt_free_args(&args);
    if (!d->se) {
        moat_error_set(err, -EIO, "cannot create the /dev/attestation FUSE session");
        free(d);
        return NULL;
    }
    return d;
}

static ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
    (void)userdata;
    return read(fd, buf, len);
}

static ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata) {
    (void)userdata;
    return writev(fd, iov, count);
}

static void* serve(void* arg) {
    struct devfs* d = arg;
    (void)fuse_session_loop(d->se); /* ends with the connection (ENODEV) */
    return NULL;
}

int devfs_start(struct devfs* d, int fuse_fd, struct moat_error* err) {
    static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
    if (fuse_session_custom_io(d->se, &io, fuse_fd) != 0) {
        close(fuse_fd);
        return moat_error_set(err, -EIO, "cannot attach to the /dev/attestation FUSE connection");
    }
    if (pthread_create(&d->thread, NULL, serve, d) != 0)
        return moat_error_set(err, -EAGAIN, "cannot start the /dev/attestation server");
    d->started = true;
    return 0;
}

void devfs_wait(struct devfs* d) {
    if (d && d->started) {
        pthread_join(d->thread, NULL);
        d->started = false;
    }
}

void devfs_free(struct devfs* d) {
    if (!d)
        return;
    devfs_wait(d);
    fuse_session_destroy(d->se); /* closes the connection's fd */
    free(d);
}
