/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app's view of its chroot mounts, served over FUSE by the supervisor from the host mount
 * namespace (../shared/ARCHITECTURE.md: it never resolves a path through its own mount).
 * Trusted files follow Gramine's rules (reference/gramine.md §6): whole-file SHA-256 checked at
 * the first lookup (mismatch: EPERM), 16 KiB chunk hashes kept and every chunk re-verified when
 * it is read (mismatch: EPERM), read-only (EACCES with Gramine's messages). Unlisted files are
 * refused under "strict" and logged under "allow_all_but_log". Host symlinks are followed, as
 * Gramine's PAL opens host paths.
 */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fusefs.h"

#define CHUNK_SIZE     (16 * 1024)         /* TRUSTED_CHUNK_SIZE = 4 pages */
#define CONTENT_MAX    (1024 * 1024)       /* trusted files up to this size are kept ... */
#define CONTENT_BUDGET (256 * 1024 * 1024) /* ... within this total */
#define LONG_TIMEOUT   3600.0              /* the view does not change while the app runs */

struct node {
    char* app_path;
    char* host_path; /* NULL: synthetic directory (or file, see synthetic_file) */
    bool synthetic_file;
    uint64_t nlookup;
    enum file_class cls;
    const struct trusted_entry* trusted;
    pthread_mutex_t lock;
    bool checked;          /* trusted: whole-file hash compared */
    bool bad;              /* trusted: mismatch seen */
    off_t size;            /* trusted: frozen at lookup */
    uint8_t (*chunks)[16]; /* or: */
    uint8_t* content;      /* the verified bytes of a small file */
    size_t nchunks;
};

enum { ST_LOOKUP, ST_GETATTR, ST_OPEN, ST_READ, ST_READDIR, ST_HASH, ST_OTHER, ST_MAX };
static const char* const g_stat_names[ST_MAX] = {"lookup",  "getattr", "open", "read",
                                                 "readdir", "hash",    "other"};

struct learned {
    char* host_path;
    bool written;
};

struct fusefs {
    uint64_t stat_count[ST_MAX], stat_ns[ST_MAX]; /* for loader.log_level = "debug" */
    bool learn;                                   /* --learn: record every file used */
    uint8_t mac_key[16];                          /* chunk tags (never leaves the process) */
    size_t content_bytes;                         /* verified bytes kept in memory */
    struct learned* learned;
    size_t nlearned, learned_cap;
    const struct mount_plan* plan;
    const struct file_policy* policy;
    pthread_mutex_t lock; /* the node table */
    struct node** nodes;  /* index = ino - 1 */
    size_t nnodes, cap;
    size_t* index; /* open addressing: app path -> ino, 0 = empty */
    size_t nindex;
    struct fuse_session* se;
};

static struct fusefs* fs_of(fuse_req_t req) {
    return fuse_req_userdata(req);
}

static void account(struct fusefs* fs, int kind, uint64_t start_ns) {
    __atomic_add_fetch(&fs->stat_count[kind], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fs->stat_ns[kind], time_now_ns() - start_ns, __ATOMIC_RELAXED);
}

static struct node* node_get(struct fusefs* fs, fuse_ino_t ino) {
    pthread_mutex_lock(&fs->lock);
    struct node* n = ino >= 1 && ino <= fs->nnodes ? fs->nodes[ino - 1] : NULL;
    pthread_mutex_unlock(&fs->lock);
    return n;
}

/* Finds or creates the node for an app path; returns its inode number. */
static size_t path_hash(const char* s) {
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void index_insert(struct fusefs* fs, size_t ino) {
    size_t mask = fs->nindex - 1;
    size_t i    = path_hash(fs->nodes[ino - 1]->app_path) & mask;
    while (fs->index[i])
        i = (i + 1) & mask;
    fs->index[i] = ino;
}

static fuse_ino_t node_intern(struct fusefs* fs, const char* app_path, const char* host_path) {
    pthread_mutex_lock(&fs->lock);
    if (fs->nindex) {
        size_t mask = fs->nindex - 1;
        for (size_t i = path_hash(app_path) & mask; fs->index[i]; i = (i + 1) & mask) {
            if (!strcmp(fs->nodes[fs->index[i] - 1]->app_path, app_path)) {
                fuse_ino_t ino = fs->index[i];
                pthread_mutex_unlock(&fs->lock);
                return ino;
            }
        }
    }
    struct node* n = xcalloc(1, sizeof(*n));
    n->app_path    = xstrdup(app_path);
    n->host_path   = host_path ? xstrdup(host_path) : NULL;
    n->cls = host_path ? file_policy_classify(fs->policy, host_path, &n->trusted) : FILE_ALLOWED;
    pthread_mutex_init(&n->lock, NULL);
    fs->nodes               = xgrow(fs->nodes, &fs->cap, fs->nnodes + 1, sizeof(*fs->nodes));
    fs->nodes[fs->nnodes++] = n;
    fuse_ino_t ino          = fs->nnodes;
    if (2 * fs->nnodes > fs->nindex) {
        free(fs->index);
        fs->nindex = fs->nindex ? fs->nindex * 4 : 1024;
        fs->index  = xcalloc(fs->nindex, sizeof(*fs->index));
        for (size_t i = 1; i <= fs->nnodes; i++)
            index_insert(fs, i);
    } else {
        index_insert(fs, ino);
    }
    pthread_mutex_unlock(&fs->lock);
    return ino;
}

/* The mount whose mount point is exactly app, or NULL. */
static const struct mount_entry* mount_point(const struct mount_plan* plan, const char* app) {
    for (size_t i = plan->len; i-- > 1;)
        if (!strcmp(plan->items[i].path, app))
            return &plan->items[i];
    return NULL;
}

static void learn(struct fusefs* fs, const char* host_path, bool written) {
    if (!fs->learn)
        return;
    pthread_mutex_lock(&fs->lock);
    size_t i = 0;
    for (; i < fs->nlearned && strcmp(fs->learned[i].host_path, host_path); i++)
        ;
    if (i == fs->nlearned) {
        fs->learned = xgrow(fs->learned, &fs->learned_cap, fs->nlearned + 1, sizeof(*fs->learned));
        fs->learned[fs->nlearned++] = (struct learned){xstrdup(host_path), written};
    } else {
        fs->learned[i].written |= written;
    }
    pthread_mutex_unlock(&fs->lock);
}

static const char* base_name(const char* path) {
    const char* s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---------------------------------------------------------------------------------------- */
/* Trusted files                                                                              */

/* Chunk tags: AES-128-GMAC under a key drawn at start-up and never leaving this process, with
 * the node and chunk number as IV. A tag cannot be forged without the key, so a chunk whose
 * host bytes changed after the whole-file check is caught; GMAC costs a fraction of SHA-256. */
static int chunk_tag(const struct fusefs* fs, size_t node_id, size_t chunk, const uint8_t* buf,
                     size_t len, uint8_t out[16]) {
    uint8_t iv[12];
    uint64_t c = chunk;
    uint32_t n = (uint32_t)node_id;
    memcpy(iv, &n, 4);
    memcpy(iv + 4, &c, 8);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int outl, ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, fs->mac_key, iv) &&
                   EVP_EncryptUpdate(ctx, NULL, &outl, buf, (int)len) &&
                   EVP_EncryptFinal_ex(ctx, NULL, &outl) &&
                   EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

/* Whole-file check at first lookup (SHA-256 against the manifest). Small files keep their
 * verified bytes in memory (reads are then served from it); larger ones keep a tag per
 * 16 KiB chunk, checked on every read. */
static int trusted_check(struct fusefs* fs, struct node* n, size_t node_id) {
    if (n->checked)
        return n->bad ? -EPERM : 0;
    int fd = open(n->host_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t size = (size_t)st.st_size;
    bool keep   = size <= CONTENT_MAX &&
                __atomic_add_fetch(&fs->content_bytes, size, __ATOMIC_RELAXED) <= CONTENT_BUDGET;
    size_t nchunks       = (size + CHUNK_SIZE - 1) / CHUNK_SIZE;
    uint8_t* content     = keep ? xmalloc(size ? size : 1) : NULL;
    uint8_t(*chunks)[16] = keep ? NULL : xcalloc(nchunks + 1, 16);
    uint8_t* buf         = keep ? NULL : xmalloc(CHUNK_SIZE);
    struct sha256_ctx ctx;
    int r = sha256_init(&ctx);
    for (size_t i = 0; r == 0 && i < nchunks; i++) {
        uint8_t* dst = keep ? content + i * CHUNK_SIZE : buf;
        size_t want  = size - i * CHUNK_SIZE < CHUNK_SIZE ? size - i * CHUNK_SIZE : CHUNK_SIZE;
        ssize_t got  = read_full(fd, dst, want);
        if (got != (ssize_t)want) {
            r = got < 0 ? (int)got : -EIO;
            break;
        }
        r = sha256_update(&ctx, dst, want);
        if (r == 0 && !keep)
            r = chunk_tag(fs, node_id, i, dst, want, chunks[i]);
    }
    uint8_t digest[32];
    if (r == 0)
        r = sha256_final(&ctx, digest);
    sha256_ctx_free(&ctx);
    free(buf);
    close(fd);
    n->checked = true;
    if (r < 0 || CRYPTO_memcmp(digest, n->trusted->sha256, 32) != 0) {
        moat_log(LOG_LEVEL_WARNING,
                 "Hash of trusted file '%s' does not match with the reference hash in manifest",
                 n->host_path);
        n->bad = true;
        free(chunks);
        free(content);
        if (keep)
            __atomic_sub_fetch(&fs->content_bytes, size, __ATOMIC_RELAXED);
        return -EPERM;
    }
    if (!keep && size <= CONTENT_MAX)
        __atomic_sub_fetch(&fs->content_bytes, size, __ATOMIC_RELAXED);
    n->size    = (off_t)size;
    n->content = content;
    n->chunks  = chunks;
    n->nchunks = nchunks;
    return 0;
}

/* Reads [off, off+size) of a verified trusted file: from memory, or re-reading and checking
 * every covering chunk on the host. */
static int trusted_read(const struct fusefs* fs, struct node* n, size_t node_id, int fd, off_t off,
                        size_t size, char* out, size_t* ret_len) {
    if (off >= n->size) {
        *ret_len = 0;
        return 0;
    }
    if ((off_t)size > n->size - off)
        size = (size_t)(n->size - off);
    if (n->content) {
        memcpy(out, n->content + off, size);
        *ret_len = size;
        return 0;
    }
    uint8_t* buf = xmalloc(CHUNK_SIZE);
    size_t done  = 0;
    int r        = 0;
    for (size_t c = (size_t)(off / CHUNK_SIZE); done < size; c++) {
        off_t cstart = (off_t)c * CHUNK_SIZE;
        size_t clen  = (size_t)(n->size - cstart < CHUNK_SIZE ? n->size - cstart : CHUNK_SIZE);
        ssize_t got  = pread(fd, buf, clen, cstart);
        uint8_t h[16];
        if (got != (ssize_t)clen || chunk_tag(fs, node_id, c, buf, clen, h) < 0 ||
            CRYPTO_memcmp(h, n->chunks[c], 16) != 0) {
            moat_log(LOG_LEVEL_ERROR,
                     "Trusted file '%s' changed on the host: chunk %zu does not match its hash",
                     n->host_path, c);
            r = -EPERM;
            break;
        }
        size_t from = off > cstart ? (size_t)(off - cstart) : 0;
        size_t take = clen - from < size - done ? clen - from : size - done;
        memcpy(out + done, buf + from, take);
        done += take;
    }
    free(buf);
    *ret_len = done;
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Attributes and lookup                                                                      */

static void synthetic_attr(struct stat* st, fuse_ino_t ino) {
    memset(st, 0, sizeof(*st));
    st->st_ino   = ino;
    st->st_mode  = S_IFDIR | 0755;
    st->st_nlink = 2;
}

static int node_attr(struct node* n, fuse_ino_t ino, struct stat* st) {
    if (!n->host_path) {
        synthetic_attr(st, ino);
        if (n->synthetic_file) {
            st->st_mode  = S_IFREG | 0644;
            st->st_nlink = 1;
        }
        return 0;
    }
    if (stat(n->host_path, st) < 0)
        return -errno;
    st->st_ino = ino;
    if (n->cls == FILE_TRUSTED && n->checked && !n->bad)
        st->st_size = n->size;
    return 0;
}

static double timeout_for(const struct node* n) {
    return n->cls == FILE_TRUSTED || !n->host_path ? LONG_TIMEOUT : 1.0;
}

static void do_lookup(fuse_req_t req, fuse_ino_t parent, const char* name);

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct fusefs* fs = fs_of(req); /* req is gone once replied to */
    uint64_t t        = time_now_ns();
    do_lookup(req, parent, name);
    account(fs, ST_LOOKUP, t);
}

static void do_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct fusefs* fs = fs_of(req);
    struct node* p    = node_get(fs, parent);
    if (!p) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    _cleanup_free_ char* app    = path_join(p->app_path, name);
    _cleanup_free_ char* host   = NULL;
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, &host);
    struct stat st;
    bool exists                  = m && stat(host, &st) == 0;
    const struct mount_entry* mp = m ? NULL : mount_point(fs->plan, app);
    bool synthetic               = !exists && (mount_plan_is_synthetic_dir(fs->plan, app) || mp);
    if (!exists && !synthetic) {
        struct fuse_entry_param e = {.ino = 0, .entry_timeout = 1.0};
        fuse_reply_entry(req, &e); /* negative entry, cached briefly */
        return;
    }
    fuse_ino_t ino = node_intern(fs, app, exists ? host : NULL);
    struct node* n = node_get(fs, ino);
    if (mp && mp->type == MOUNT_PSEUDO_FILE)
        n->synthetic_file = true;
    if (n->cls == FILE_TRUSTED && n->host_path && S_ISREG(st.st_mode)) {
        pthread_mutex_lock(&n->lock);
        uint64_t t = time_now_ns();
        bool first = !n->checked;
        int r      = trusted_check(fs, n, ino);
        if (first)
            account(fs, ST_HASH, t);
        pthread_mutex_unlock(&n->lock);
        if (r < 0) {
            fuse_reply_err(req, -r);
            return;
        }
    }
    struct fuse_entry_param e = {
        .ino = ino, .attr_timeout = timeout_for(n), .entry_timeout = timeout_for(n)};
    int r = node_attr(n, ino, &e.attr);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    n->nlookup++;
    pthread_mutex_unlock(&fs->lock);
    fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    struct fusefs* fs = fs_of(req);
    struct node* n    = node_get(fs, ino);
    if (n) {
        pthread_mutex_lock(&fs->lock);
        n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
        pthread_mutex_unlock(&fs->lock);
    }
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)fi;
    account(fs_of(req), ST_GETATTR, time_now_ns());
    struct node* n = node_get(fs_of(req), ino);
    struct stat st;
    int r = n ? node_attr(n, ino, &st) : -ENOENT;
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, timeout_for(n));
}

/* ---------------------------------------------------------------------------------------- */
/* Directories                                                                                */

struct dirbuf {
    char* p;
    size_t size;
};

static void dirbuf_add(fuse_req_t req, struct dirbuf* b, const char* name, mode_t mode) {
    struct stat st = {.st_mode = mode, .st_ino = 1};
    size_t old     = b->size;
    b->size += fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    b->p = xrealloc(b->p, b->size);
    fuse_add_direntry(req, b->p + old, b->size - old, name, &st, (off_t)b->size);
}

static bool dirbuf_has(const struct dirbuf* names, const char* name) {
    for (const char* s = names->p; s && s < names->p + names->size; s += strlen(s) + 1)
        if (!strcmp(s, name))
            return true;
    return false;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    account(fs, ST_READDIR, time_now_ns());
    struct node* n = node_get(fs, ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct dirbuf* b    = xcalloc(1, sizeof(*b));
    struct dirbuf names = {0}; /* NUL-separated names already listed */
    dirbuf_add(req, b, ".", S_IFDIR);
    dirbuf_add(req, b, "..", S_IFDIR);
    DIR* d = n->host_path ? opendir(n->host_path) : NULL;
    struct dirent* de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        dirbuf_add(req, b, de->d_name, (mode_t)DTTOIF(de->d_type));
        size_t len = strlen(de->d_name) + 1;
        names.p    = xrealloc(names.p, names.size + len);
        memcpy(names.p + names.size, de->d_name, len);
        names.size += len;
    }
    if (d)
        closedir(d);
    /* mount points directly below this directory */
    for (size_t i = 1; i < fs->plan->len; i++) {
        const char* mp   = fs->plan->items[i].path;
        size_t plen      = strlen(n->app_path);
        const char* rest = !strcmp(n->app_path, "/")                            ? mp + 1
                           : !strncmp(mp, n->app_path, plen) && mp[plen] == '/' ? mp + plen + 1
                                                                                : NULL;
        if (!rest || !*rest)
            continue;
        _cleanup_free_ char* child = xstrndup(rest, strcspn(rest, "/"));
        if (!dirbuf_has(&names, child)) {
            dirbuf_add(req, b, child, S_IFDIR);
            size_t len = strlen(child) + 1;
            names.p    = xrealloc(names.p, names.size + len);
            memcpy(names.p + names.size, child, len);
            names.size += len;
        }
    }
    free(names.p);
    fi->fh = (uint64_t)(uintptr_t)b;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info* fi) {
    (void)ino;
    struct dirbuf* b = (struct dirbuf*)(uintptr_t)fi->fh;
    if ((size_t)off >= b->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    /* reply from a private copy: once the reply is written the app may close the directory
     * and RELEASEDIR (on another thread) frees b */
    size_t n  = b->size - (size_t)off < size ? b->size - (size_t)off : size;
    char* out = xmalloc(n);
    memcpy(out, b->p + off, n);
    fuse_reply_buf(req, out, n);
    free(out);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)ino;
    struct dirbuf* b = (struct dirbuf*)(uintptr_t)fi->fh;
    free(b->p);
    free(b);
    fuse_reply_err(req, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

static bool wants_write(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    account(fs, ST_OPEN, time_now_ns());
    struct node* n = node_get(fs, ino);
    if (!n || !n->host_path) {
        fuse_reply_err(req, n ? EISDIR : ENOENT);
        return;
    }
    struct stat st;
    if (stat(n->host_path, &st) < 0 || !S_ISREG(st.st_mode)) {
        fuse_reply_err(req, EACCES); /* FIFOs and devices need sgx.allowed_files + a bind */
        return;
    }
    int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
    switch (n->cls) {
        case FILE_TRUSTED:
            if (wants_write(fi->flags)) {
                moat_log(LOG_LEVEL_ERROR, "Disallowing write/append to a trusted file '%s'",
                         base_name(n->app_path));
                fuse_reply_err(req, EACCES);
                return;
            }
            flags          = O_RDONLY;
            fi->keep_cache = 1; /* verified pages stay cached: native speed afterwards */
            break;
        case FILE_ALLOWED:
            break;
        case FILE_NONE:
            if (fs->policy->strict) {
                moat_log(LOG_LEVEL_WARNING, "Disallowing access to file '%s'; file is not allowed.",
                         base_name(n->app_path));
                fuse_reply_err(req, EACCES);
                return;
            }
            moat_log(LOG_LEVEL_WARNING,
                     "Allowing access to unknown file '%s' due to file_check_policy.",
                     base_name(n->app_path));
            break;
    }
    int fd = open(n->host_path, flags | O_CLOEXEC);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    learn(fs, n->host_path, wants_write(fi->flags));
    fi->fh = (uint64_t)fd;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    uint64_t t0       = time_now_ns();
    struct node* n    = node_get(fs_of(req), ino);
    char* buf         = xmalloc(size ? size : 1);
    size_t len        = 0;
    int r             = 0;
    if (n && n->cls == FILE_TRUSTED) {
        r = trusted_read(fs, n, ino, (int)fi->fh, off, size, buf, &len);
    } else {
        ssize_t got = pread((int)fi->fh, buf, size, off);
        if (got < 0)
            r = -errno;
        else
            len = (size_t)got;
    }
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_buf(req, buf, len);
    free(buf);
    account(fs, ST_READ, t0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                     struct fuse_file_info* fi) {
    struct node* n = node_get(fs_of(req), ino);
    if (n && n->cls == FILE_TRUSTED) {
        moat_log(LOG_LEVEL_ERROR, "Writing to a trusted file is disallowed!");
        fuse_reply_err(req, EACCES);
        return;
    }
    ssize_t done = pwrite((int)fi->fh, buf, size, off);
    if (done < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_write(req, (size_t)done);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)ino;
    close((int)fi->fh);
    fuse_reply_err(req, 0);
}

/* The app path and host path of `name` in directory `parent`, for operations that create or
 * remove names; -EACCES when the name is not on a chroot mount. */
static int child_paths(struct fusefs* fs, fuse_ino_t parent, const char* name, char** ret_app,
                       char** ret_host) {
    struct node* p = node_get(fs, parent);
    if (!p)
        return -ENOENT;
    char* app  = path_join(p->app_path, name);
    char* host = NULL;
    if (!mount_plan_resolve(fs->plan, app, &host)) {
        free(app);
        return -EACCES;
    }
    *ret_app  = app;
    *ret_host = host;
    return 0;
}

/* Creating files: Gramine's is_create_allowed. */
static int create_allowed(struct fusefs* fs, const char* host, const char* app) {
    const struct trusted_entry* t;
    switch (file_policy_classify(fs->policy, host, &t)) {
        case FILE_TRUSTED:
            moat_log(LOG_LEVEL_ERROR, "Disallowing creating a trusted file '%s'", host);
            return -EACCES;
        case FILE_ALLOWED:
            return 0;
        case FILE_NONE:
            break;
    }
    (void)app;
    if (fs->policy->strict) {
        moat_log(LOG_LEVEL_WARNING,
                 "Disallowing creating file '%s'; file is not trusted or allowed.", host);
        return -EACCES;
    }
    moat_log(LOG_LEVEL_WARNING, "Allowing creating unknown file '%s' due to file_check_policy.",
             host);
    return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                      struct fuse_file_info* fi) {
    struct fusefs* fs         = fs_of(req);
    _cleanup_free_ char* app  = NULL;
    _cleanup_free_ char* host = NULL;
    int r                     = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    int fd = open(host, (fi->flags | O_CREAT | O_CLOEXEC) & ~O_NOCTTY, mode);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    learn(fs, host, true);
    fuse_ino_t ino            = node_intern(fs, app, host);
    struct node* n            = node_get(fs, ino);
    struct fuse_entry_param e = {.ino = ino, .attr_timeout = 1.0, .entry_timeout = 1.0};
    if (node_attr(n, ino, &e.attr) < 0) {
        close(fd);
        fuse_reply_err(req, EIO);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    n->nlookup++;
    pthread_mutex_unlock(&fs->lock);
    fi->fh = (uint64_t)fd;
    fuse_reply_create(req, &e, fi);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                       struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    struct node* n    = node_get(fs, ino);
    if (!n || !n->host_path) {
        fuse_reply_err(req, n ? EPERM : ENOENT);
        return;
    }
    bool writable = n->cls == FILE_ALLOWED || (n->cls == FILE_NONE && !fs->policy->strict);
    if ((to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE)) && !writable) {
        fuse_reply_err(req, EACCES);
        return;
    }
    int r = 0;
    if (to_set & FUSE_SET_ATTR_SIZE)
        r = fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(n->host_path, attr->st_size);
    if (r == 0 && (to_set & FUSE_SET_ATTR_MODE))
        r = chmod(n->host_path, attr->st_mode & 07777);
    if (r < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    struct stat st;
    r = node_attr(n, ino, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, timeout_for(n));
}

static void modify_entry(fuse_req_t req, fuse_ino_t parent, const char* name, int op) {
    struct fusefs* fs         = fs_of(req);
    _cleanup_free_ char* app  = NULL;
    _cleanup_free_ char* host = NULL;
    int r                     = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r == 0) {
        if (op == 'u')
            r = unlink(host) < 0 ? -errno : 0;
        else
            r = rmdir(host) < 0 ? -errno : 0;
    }
    fuse_reply_err(req, -r);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    modify_entry(req, parent, name, 'u');
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    modify_entry(req, parent, name, 'r');
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    struct fusefs* fs         = fs_of(req);
    _cleanup_free_ char* app  = NULL;
    _cleanup_free_ char* host = NULL;
    int r                     = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r == 0 && mkdir(host, mode) < 0)
        r = -errno;
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    op_lookup(req, parent, name);
}

/* rename: both names must be creatable (allowed, or unknown under allow_all_but_log). */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                      const char* newname, unsigned int flags) {
    struct fusefs* fs        = fs_of(req);
    _cleanup_free_ char *app = NULL, *host = NULL;
    _cleanup_free_ char *newapp = NULL, *newhost = NULL;
    int r = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = child_paths(fs, newparent, newname, &newapp, &newhost);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r == 0)
        r = create_allowed(fs, newhost, newapp);
    if (r == 0 && renameat2(AT_FDCWD, host, AT_FDCWD, newhost, flags) < 0)
        r = -errno;
    if (r == 0)
        learn(fs, newhost, true);
    fuse_reply_err(req, -r);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
    struct fusefs* fs = fs_of(req);
    (void)ino;
    struct statvfs sv;
    if (statvfs(fs->plan->items[0].host ? fs->plan->items[0].host : "/", &sv) < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

static void op_init(void* userdata, struct fuse_conn_info* conn) {
    (void)userdata;
    /* the view does not change behind the kernel's back (trusted content is immutable, writes
     * go through this server or through bind mounts): no revalidation on every read */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

static const struct fuse_lowlevel_ops g_ops = {
    .init       = op_init,
    .lookup     = op_lookup,
    .forget     = op_forget,
    .getattr    = op_getattr,
    .setattr    = op_setattr,
    .opendir    = op_opendir,
    .readdir    = op_readdir,
    .releasedir = op_releasedir,
    .open       = op_open,
    .read       = op_read,
    .write      = op_write,
    .release    = op_release,
    .create     = op_create,
    .unlink     = op_unlink,
    .rmdir      = op_rmdir,
    .mkdir      = op_mkdir,
    .rename     = op_rename,
    .statfs     = op_statfs,
};

/* ---------------------------------------------------------------------------------------- */

struct fusefs* fusefs_new(const struct mount_plan* plan, const struct file_policy* policy) {
    struct fusefs* fs = xcalloc(1, sizeof(*fs));
    if (RAND_bytes(fs->mac_key, sizeof(fs->mac_key)) != 1)
        abort(); /* no randomness: nothing can be verified safely */
    fs->plan   = plan;
    fs->policy = policy;
    pthread_mutex_init(&fs->lock, NULL);
    node_intern(fs, "/", plan->items[0].host); /* FUSE_ROOT_ID = 1 */
    return fs;
}

int fusefs_serve(struct fusefs* fs, int fuse_fd, struct moat_error* err) {
    char* argv[]          = {(char*)"moat", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    fs->se                = fuse_session_new(&args, &g_ops, sizeof(g_ops), fs);
    fuse_opt_free_args(&args);
    if (!fs->se)
        return moat_error_set(err, -EIO, "cannot create the FUSE session");
    char mountpoint[32];
    snprintf(mountpoint, sizeof(mountpoint), "/dev/fd/%d", fuse_fd);
    if (fuse_session_mount(fs->se, mountpoint) != 0)
        return moat_error_set(err, -EIO, "cannot attach to the FUSE connection");
    /* several threads: a slow request (hashing a large trusted file) never stalls the rest */
    struct fuse_loop_config* cfg = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(cfg, 8);
    int r = fuse_session_loop_mt(fs->se, cfg);
    fuse_loop_cfg_destroy(cfg);
    return r < 0 ? moat_error_set(err, -EIO, "FUSE session failed") : 0;
}

void fusefs_set_learn(struct fusefs* fs, bool on) {
    fs->learn = on;
}

static int learned_cmp(const void* a, const void* b) {
    return strcmp(((const struct learned*)a)->host_path, ((const struct learned*)b)->host_path);
}

int fusefs_write_learned(struct fusefs* fs, const char* path, struct moat_error* err) {
    qsort(fs->learned, fs->nlearned, sizeof(*fs->learned), learned_cmp);
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb,
                "# Files the app used under 'moat run --learn' (sgx.file_check_policy was\n"
                "# \"allow_all_but_log\"). Review before adding these to the manifest template:\n"
                "# files only read become trusted files, files written become allowed files.\n");
    for (int written = 0; written < 2; written++) {
        strbuf_printf(&sb, "%s = [\n", written ? "sgx.allowed_files" : "sgx.trusted_files");
        for (size_t i = 0; i < fs->nlearned; i++) {
            if (fs->learned[i].written != (bool)written)
                continue;
            _cleanup_free_ char* uri = xasprintf("file:%s", fs->learned[i].host_path);
            struct toml_value* v     = toml_new_string(uri);
            strbuf_puts(&sb, "  ");
            toml_write_inline(&sb, v);
            strbuf_puts(&sb, ",\n");
            toml_free(v);
        }
        strbuf_puts(&sb, "]\n");
    }
    int r = write_file_atomic(path, sb.buf, sb.len, 0644, err);
    strbuf_free(&sb);
    return r;
}

void fusefs_stop(struct fusefs* fs) {
    if (fs->se)
        fuse_session_exit(fs->se);
}

void fusefs_free(struct fusefs* fs) {
    if (!fs)
        return;
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        struct strbuf sb = STRBUF_INIT;
        for (int i = 0; i < ST_MAX; i++)
            if (fs->stat_count[i] && (i == ST_LOOKUP || i == ST_HASH || i == ST_READ))
                strbuf_printf(&sb, " %s %llu (%.1f ms)", g_stat_names[i],
                              (unsigned long long)fs->stat_count[i], fs->stat_ns[i] / 1e6);
            else if (fs->stat_count[i])
                strbuf_printf(&sb, " %s %llu", g_stat_names[i],
                              (unsigned long long)fs->stat_count[i]);
        moat_log(LOG_LEVEL_DEBUG, "file system requests:%s", sb.buf ? sb.buf : " none");
        strbuf_free(&sb);
    }
    if (fs->se) {
        fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se);
    }
    for (size_t i = 0; i < fs->nnodes; i++) {
        free(fs->nodes[i]->app_path);
        free(fs->nodes[i]->host_path);
        free(fs->nodes[i]->chunks);
        free(fs->nodes[i]->content);
        pthread_mutex_destroy(&fs->nodes[i]->lock);
        free(fs->nodes[i]);
    }
    free(fs->nodes);
    free(fs->index);
    for (size_t i = 0; i < fs->nlearned; i++)
        free(fs->learned[i].host_path);
    free(fs->learned);
    OPENSSL_cleanse(fs->mac_key, sizeof(fs->mac_key));
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}
