/* SPDX-License-Identifier: Apache-2.0 */
/* /dev/attestation: see devfs.h. */
#define FUSE_USE_VERSION 312
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devfs.h"
#include "encfs.h"
#include "pseudofs.h"
#include "sigstruct.h"

enum {
    INO_ROOT    = 1,
    INO_KEYS    = 2,
    INO_PF_KEY  = 3, /* protected_files_key */
    INO_TYPE    = 4, /* attestation_type */
    INO_URD     = 5, /* user_report_data */
    INO_TI      = 6, /* target_info */
    INO_MY_TI   = 7, /* my_target_info */
    INO_REPORT  = 8,
    INO_QUOTE   = 9,
    INO_KEY_MIN = 16, /* keys/<name>: INO_KEY_MIN + the key's index in encfs */
};

static const struct {
    const char* name;
    fuse_ino_t ino;
    mode_t mode;
} g_files[] = {
    {"keys", INO_KEYS, S_IFDIR | 0755},
    {"protected_files_key", INO_PF_KEY, S_IFREG | 0666},
    {"attestation_type", INO_TYPE, S_IFREG | 0444},
    {"user_report_data", INO_URD, S_IFREG | 0666},
    {"target_info", INO_TI, S_IFREG | 0666},
    {"my_target_info", INO_MY_TI, S_IFREG | 0444},
    {"report", INO_REPORT, S_IFREG | 0444},
    {"quote", INO_QUOTE, S_IFREG | 0444},
};

#define URD_SIZE    64
#define TI_SIZE     512
#define REPORT_SIZE 432
#define THREADS_MAX 256 /* threads whose user_report_data / target_info are kept */

/* What one process of the app last wrote (as Gramine keeps it). */
struct thread_state {
    uint32_t pid; /* the requesting process (thread group), 0: free */
    uint64_t used;
    uint8_t urd[URD_SIZE];
    uint8_t ti[TI_SIZE];
};

struct devfs {
    struct encfs* keys;
    struct attest_provider* provider; /* not owned; may be NULL */
    struct attest_identity id;
    const char* manifest; /* the bytes id.mrenclave is the measurement of (not owned) */
    size_t manifest_len;
    bool measured;    /* id.mrenclave is set (under lock) */
    bool remote_dcap; /* sgx.remote_attestation = "dcap": the quote file exists */
    pid_t sandbox;    /* the sandbox's init, in moat's pid namespace (0: not known) */
    uid_t owner_uid;  /* the app's user as the connection's user namespace sees it */
    gid_t owner_gid;
    pthread_mutex_t lock;
    struct thread_state states[THREADS_MAX];
    uint64_t clock;
    struct fuse_session* se;
    pthread_t thread;
    bool started;
    struct handle* open; /* under lock */
};

/* An open pseudo-file: the content made at open(). */
struct handle {
    fuse_ino_t ino;
    size_t len;
    uint8_t* data;
    struct handle *prev, *next; /* open handles (a release may never come: freed at the end) */
};

static struct devfs* dev_of(fuse_req_t req) {
    return fuse_req_userdata(req);
}

/* The key name of a keys/ inode (malloc'd), or NULL. */
static char* key_name_of(struct devfs* d, fuse_ino_t ino) {
    return ino >= INO_KEY_MIN ? encfs_key_name(d->keys, ino - INO_KEY_MIN) : NULL;
}

/* Whether a root entry exists in this run: quote only with sgx.remote_attestation = "dcap". */
static bool file_exists(const struct devfs* d, fuse_ino_t ino) {
    return ino != INO_QUOTE || d->remote_dcap;
}

static int attr_of(struct devfs* d, fuse_ino_t ino, struct stat* st) {
    memset(st, 0, sizeof(*st));
    st->st_ino   = ino;
    st->st_nlink = 1;
    st->st_uid   = d->owner_uid; /* an owner the namespace maps, or the kernel refuses writes */
    st->st_gid   = d->owner_gid;
    if (ino == INO_ROOT) {
        st->st_mode  = S_IFDIR | 0755;
        st->st_nlink = 2;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_files); i++) {
        if (g_files[i].ino == ino && file_exists(d, ino)) {
            st->st_mode  = g_files[i].mode; /* stat size 0, as Gramine's */
            st->st_nlink = S_ISDIR(st->st_mode) ? 2 : 1;
            return 0;
        }
    }
    _cleanup_free_ char* name = key_name_of(d, ino);
    if (!name)
        return -ENOENT;
    st->st_mode = S_IFREG | (name[0] == '_' ? 0444 : 0666);
    return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct devfs* d = dev_of(req);
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    for (size_t i = 0; parent == INO_ROOT && i < ARRAY_SIZE(g_files); i++)
        if (!strcmp(name, g_files[i].name) && file_exists(d, g_files[i].ino))
            e.ino = g_files[i].ino;
    if (parent == INO_KEYS) {
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
    if (!pseudofs_setattr_ok(to_set)) {
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
        for (size_t i = 0; i < ARRAY_SIZE(g_files); i++)
            if (off < (off_t)i + 3 && file_exists(d, g_files[i].ino))
                add_entry(req, buf, size, &pos, g_files[i].name, g_files[i].ino, g_files[i].mode,
                          (off_t)i + 3);
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

static void handle_set(struct handle* h, const void* data, size_t len) {
    if (h->data)
        OPENSSL_cleanse(h->data, h->len);
    free(h->data);
    h->data = xmalloc(len ? len : 1);
    memcpy(h->data, data, len);
    h->len = len;
}

/* The process of a requesting thread. FUSE gives the thread's ID in the sandbox's pid
 * namespace; its thread group is in the sandbox's /proc, which moat reaches through the
 * init's root (a path that crosses no file of moat's own FUSE views but their mount points).
 * The thread's ID when that fails (it then stands for its process). */
static uint32_t process_of(const struct devfs* d, uint32_t tid) {
    if (!d->sandbox)
        return tid;
    char path[96], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/root/proc/%u/status", (int)d->sandbox, tid);
    int fd    = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return tid;
    buf[n]           = '\0';
    const char* tgid = strstr(buf, "\nTgid:");
    unsigned v       = 0;
    return tgid && sscanf(tgid + 6, "%u", &v) == 1 && v ? v : tid;
}

/* The state of the requesting process (the least recently used slot when it is new). Called
 * with d->lock held. */
static struct thread_state* thread_state(struct devfs* d, uint32_t pid) {
    struct thread_state* lru = &d->states[0];
    for (size_t i = 0; i < THREADS_MAX; i++) {
        if (d->states[i].pid == pid) {
            d->states[i].used = ++d->clock;
            return &d->states[i];
        }
        if (d->states[i].used < lru->used)
            lru = &d->states[i];
    }
    memset(lru, 0, sizeof(*lru));
    lru->pid  = pid;
    lru->used = ++d->clock;
    return lru;
}

/* The app's identity, its measurement taken at the first need (most apps never ask): NULL
 * when it cannot be computed. */
static const struct attest_identity* identity(struct devfs* d) {
    pthread_mutex_lock(&d->lock);
    if (!d->measured && moat_measurement(d->manifest, d->manifest_len, d->id.mrenclave) == 0)
        d->measured = true;
    bool ok = d->measured;
    pthread_mutex_unlock(&d->lock);
    return ok ? &d->id : NULL;
}

/* The app's SGX report body (reference/attestation.md §1.2) for `report_data`. */
static void app_body(const struct attest_identity* id, const uint8_t report_data[URD_SIZE],
                     uint8_t b[384]) {
    memset(b, 0, 384);
    uint64_t flags = 0x05 | (id->debug ? 0x02 : 0), xfrm = 0x03; /* INIT|MODE64BIT, x87|SSE */
    memcpy(b + 48, &flags, 8);
    memcpy(b + 56, &xfrm, 8);
    memcpy(b + 64, id->mrenclave, 32);
    memcpy(b + 128, id->mrsigner, 32);
    memcpy(b + 256, &id->isvprodid, 2);
    memcpy(b + 258, &id->isvsvn, 2);
    memcpy(b + 320, report_data, URD_SIZE);
}

/* The content of an attestation file at open (Gramine's load callbacks). */
static int load_attestation(struct devfs* d, fuse_req_t req, fuse_ino_t ino, struct handle* h) {
    uint8_t urd[URD_SIZE], ti[TI_SIZE], buf[TI_SIZE] = {0};
    uint32_t proc = process_of(d, (uint32_t)fuse_req_ctx(req)->pid);
    pthread_mutex_lock(&d->lock);
    struct thread_state* st = thread_state(d, proc);
    memcpy(urd, st->urd, sizeof(urd));
    memcpy(ti, st->ti, sizeof(ti));
    pthread_mutex_unlock(&d->lock);
    const struct attest_identity* id = ino == INO_TYPE ? &d->id : identity(d);
    if (!id)
        return -EACCES;
    if (ino == INO_TYPE) {
        const char* t =
            d->remote_dcap && attest_provider_kind(d->provider) != ATTEST_NONE ? "dcap" : "none";
        handle_set(h, t, strlen(t));
    } else if (ino == INO_MY_TI) { /* TARGETINFO: measurement, attributes, misc_select */
        app_body(id, urd, buf + 64);
        memcpy(buf, id->mrenclave, 32);
        memcpy(buf + 32, buf + 64 + 48, 16);
        memset(buf + 64, 0, 384);
        handle_set(h, buf, TI_SIZE);
    } else if (ino == INO_REPORT) { /* body, key ID, MAC: no hardware key behind the MAC */
        app_body(id, urd, buf);
        EVP_Digest(ti, sizeof(ti), buf + 384, NULL, EVP_sha256(), NULL); /* key ID */
        uint8_t mac[32];
        EVP_Digest(buf, 416, mac, NULL, EVP_sha256(), NULL);
        memcpy(buf + 416, mac, 16);
        handle_set(h, buf, REPORT_SIZE);
    } else if (ino == INO_QUOTE) {
        uint8_t* quote        = NULL;
        size_t len            = 0;
        struct moat_error err = {0};
        if (attest_provider_quote(d->provider, id, urd, &quote, &len, &err) < 0) {
            moat_log(LOG_LEVEL_WARNING, "/dev/attestation/quote: %s", err.msg);
            return -EACCES;
        }
        handle_set(h, quote, len);
        free(quote);
    }
    return 0; /* user_report_data, target_info: nothing at open */
}

int devfs_quote(struct devfs* d, const uint8_t report_data[64], uint8_t** ret_quote,
                size_t* ret_len, struct moat_error* err) {
    const struct attest_identity* id = identity(d);
    if (!id)
        return moat_error_set(err, -EACCES, "the app's measurement cannot be computed");
    if (!d->remote_dcap || attest_provider_kind(d->provider) == ATTEST_NONE)
        return moat_error_set(err, -EACCES, "no quotes: %s",
                              !d->remote_dcap ? "sgx.remote_attestation is not \"dcap\""
                                              : "no attestation provider (moat attest init "
                                                "makes a SIMULATED one)");
    int r = attest_provider_quote(d->provider, id, report_data, ret_quote, ret_len, err);
    return r < 0 ? r : 0;
}

bool devfs_quote_is_vm(const struct devfs* d) {
    return attest_provider_kind(d->provider) == ATTEST_TSM;
}

bool devfs_quote_is_simulated(const struct devfs* d) {
    return attest_provider_kind(d->provider) == ATTEST_SIM;
}

static int load_key(struct devfs* d, fuse_ino_t ino, int flags, struct handle* h) {
    uint8_t key[16];
    int set = 0;
    if (ino == INO_PF_KEY) {
        set = encfs_get_key(d->keys, "default", key);
        if (set > 0) {
            char hex[33];
            handle_set(h, hex, (size_t)hex_encode(key, 16, hex, sizeof(hex)));
        }
    } else {
        _cleanup_free_ char* name = key_name_of(d, ino);
        set                       = name ? encfs_get_key(d->keys, name, key) : -ENOENT;
        if (set >= 0 && (flags & O_ACCMODE) != O_RDONLY && name[0] == '_')
            set = -EACCES; /* special keys come from the platform, never from the app */
        bool sealing = name && (!strcmp(name, "_sgx_mrenclave") || !strcmp(name, "_sgx_mrsigner"));
        if (set == 0 && sealing && !strcmp(name, "_sgx_mrsigner") && !d->id.signer_verified) {
            /* an unsigned app's MRSIGNER is zero: the key would be every unsigned app's */
            moat_log(LOG_LEVEL_ERROR,
                     "/dev/attestation/keys/_sgx_mrsigner: the app is not signed, so it has no "
                     "MRSIGNER sealing key (it would be shared with every unsigned app on this "
                     "machine): sign the manifest with 'moat sign', or use _sgx_mrenclave");
            set = -EACCES;
        } else if (set == 0 && sealing) { /* derived at the first use */
            struct moat_error err            = {0};
            const struct attest_identity* id = identity(d);
            if (!id || attest_seal_key(NULL, !strcmp(name, "_sgx_mrsigner"), id, key, &err) < 0) {
                moat_log(LOG_LEVEL_ERROR, "/dev/attestation/keys/%s: %s", name, err.msg);
                set = -EACCES;
            } else {
                encfs_set_key(d->keys, name, key);
                set = 1;
            }
        }
        if (set > 0)
            handle_set(h, key, 16);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return set < 0 ? set : 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct devfs* d = dev_of(req);
    if (ino == INO_ROOT || ino == INO_KEYS) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    bool writes = (fi->flags & O_ACCMODE) != O_RDONLY;
    if (writes && (ino == INO_TYPE || ino == INO_MY_TI || ino == INO_REPORT || ino == INO_QUOTE)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    struct handle* h = xcalloc(1, sizeof(*h));
    h->ino           = ino;
    int r            = ino >= INO_TYPE && ino <= INO_QUOTE ? load_attestation(d, req, ino, h)
                                                           : load_key(d, ino, fi->flags, h);
    if (r < 0) {
        free(h->data);
        free(h);
        fuse_reply_err(req, -r);
        return;
    }
    pthread_mutex_lock(&d->lock);
    h->next = d->open;
    if (d->open)
        d->open->prev = h;
    d->open = h;
    pthread_mutex_unlock(&d->lock);
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

/* user_report_data (64 bytes) and target_info (512): shorter writes are zero-padded, longer
 * ones cut; the process's quote and report use them, and this handle reads them back. */
static void save_attestation(struct devfs* d, fuse_req_t req, fuse_ino_t ino, const char* buf,
                             size_t size, struct handle* h) {
    size_t cap             = ino == INO_URD ? URD_SIZE : TI_SIZE;
    uint8_t value[TI_SIZE] = {0};
    memcpy(value, buf, size < cap ? size : cap);
    uint32_t proc = process_of(d, (uint32_t)fuse_req_ctx(req)->pid);
    pthread_mutex_lock(&d->lock);
    struct thread_state* st = thread_state(d, proc);
    memcpy(ino == INO_URD ? st->urd : st->ti, value, cap);
    pthread_mutex_unlock(&d->lock);
    handle_set(h, value, cap);
}

static int save_key(struct devfs* d, fuse_ino_t ino, const char* buf, size_t size,
                    struct handle* h) {
    uint8_t key[16];
    if (ino == INO_PF_KEY) {
        if (!parse_hex_key(buf, size, key)) {
            OPENSSL_cleanse(key, sizeof(key)); /* a partial decode */
            moat_log(LOG_LEVEL_WARNING,
                     "/dev/attestation/protected_files_key: expected 32 hex digits, got %zu bytes",
                     size);
            return -EACCES;
        }
        encfs_set_key(d->keys, "default", key);
        char hex[33];
        handle_set(h, hex, (size_t)hex_encode(key, 16, hex, sizeof(hex)));
        OPENSSL_cleanse(hex, sizeof(hex));
    } else {
        _cleanup_free_ char* name = key_name_of(d, ino);
        if (!name || name[0] == '_' || size != 16) {
            if (name && size != 16)
                moat_log(LOG_LEVEL_WARNING,
                         "/dev/attestation/keys/%s: a key is written as exactly 16 bytes in one "
                         "write (got %zu)",
                         name, size);
            return -EACCES;
        }
        memcpy(key, buf, 16);
        encfs_set_key(d->keys, name, key);
        handle_set(h, key, 16);
        moat_log(LOG_LEVEL_DEBUG, "encrypted-files key '%s' set through /dev/attestation", name);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                     struct fuse_file_info* fi) {
    (void)off;
    struct devfs* d  = dev_of(req);
    struct handle* h = (struct handle*)(uintptr_t)fi->fh;
    int r            = 0;
    if (ino == INO_URD || ino == INO_TI)
        save_attestation(d, req, ino, buf, size, h);
    else
        r = save_key(d, ino, buf, size, h);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_write(req, size);
}

/* Unlinks h from the open handles (d->lock held) and frees it, its content wiped. */
static void handle_free(struct devfs* d, struct handle* h) {
    if (h->prev)
        h->prev->next = h->next;
    else
        d->open = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (h->data)
        OPENSSL_cleanse(h->data, h->len);
    free(h->data);
    free(h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)ino;
    struct devfs* d = dev_of(req);
    pthread_mutex_lock(&d->lock);
    handle_free(d, (struct handle*)(uintptr_t)fi->fh);
    pthread_mutex_unlock(&d->lock);
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

struct devfs* devfs_new(struct encfs* keys, struct attest_provider* provider,
                        const struct attest_identity* id, bool measured, const char* manifest,
                        size_t manifest_len, bool remote_dcap, struct moat_error* err) {
    struct devfs* d = xcalloc(1, sizeof(*d));
    d->keys         = keys;
    d->provider     = provider;
    d->id           = *id;
    d->measured     = measured;
    d->manifest     = manifest;
    d->manifest_len = manifest_len;
    d->remote_dcap  = remote_dcap;
    pthread_mutex_init(&d->lock, NULL);
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

void devfs_set_owner(struct devfs* d, uid_t uid, gid_t gid) {
    d->owner_uid = uid;
    d->owner_gid = gid;
}

void devfs_set_sandbox(struct devfs* d, pid_t init) {
    d->sandbox = init;
}

int devfs_start(struct devfs* d, int fuse_fd, struct moat_error* err) {
    if (pseudofs_start(d->se, fuse_fd, &d->thread, "/dev/attestation", err) < 0)
        return err->code;
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
    while (d->open)              /* files the sandbox had open when it ended */
        handle_free(d, d->open);
    pthread_mutex_destroy(&d->lock);
    OPENSSL_cleanse(d->states, sizeof(d->states));
    free(d);
}
