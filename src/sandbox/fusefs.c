/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app's view of its chroot mounts, served over FUSE by the supervisor from the host mount
 * namespace (../shared/ARCHITECTURE.md: it never resolves a path through its own mount).
 * Trusted files follow Gramine's rules (reference/gramine.md §6): verified at the first open
 * (verify.c; mismatch: EPERM), only verified bytes are served (mismatch: EPERM), read-only
 * (EACCES with Gramine's messages). Where the kernel and moat's privileges allow it, a verified
 * copy is handed to the kernel with FUSE passthrough, so reads and mmap cost no request.
 * Unlisted files are refused under "strict" and logged under "allow_all_but_log". Host symlinks
 * are followed, as Gramine's PAL opens host paths.
 */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include "encfs.h"
#include "fusefs.h"
#include "verify.h"

#define CHUNK_SIZE   (16 * 1024)           /* TRUSTED_CHUNK_SIZE = 4 pages */
#define COPY_MAX     (1024 * 1024)         /* trusted files up to this size are kept ... */
#define COPY_MAX_PT  (64 * 1024 * 1024)    /* ... (this size when passthrough works) ... */
#define COPY_BUDGET  (1024L * 1024 * 1024) /* ... within this total */
#define LONG_TIMEOUT 3600.0                /* the view does not change while the app runs */
#define FUSE_WORKERS 6

/* FUSE passthrough (Linux >= 6.9; the libfuse and kernel headers of Debian 12 predate it):
 * the kernel serves read and mmap of an open file straight from a backing file the server
 * registered, with no request per read. moat registers the sealed in-memory copy of a
 * verified trusted file, so the app reads verified bytes at page-cache speed. */
#define PT_INIT_EXT       (1u << 30) /* FUSE_INIT_EXT: flags2 is valid */
#define PT_FLAG2          (1u << 5)  /* FUSE_PASSTHROUGH = 1ULL << 37, in flags2 */
#define PT_FOPEN          (1u << 7)  /* FOPEN_PASSTHROUGH */
#define PT_INIT_OUT_DEPTH (offsetof(struct fuse_init_out, flags2) + 4) /* max_stack_depth */
struct pt_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define PT_IOC_BACKING_OPEN  _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

struct node {
    char* app_path;
    char* host_path; /* NULL: synthetic directory (or file, see synthetic_file) */
    bool synthetic_file;
    uint64_t nlookup;
    enum file_class cls;
    const struct trusted_entry* trusted;
    struct vfile* verified; /* trusted, once opened and verified */
    /* under an encrypted mount: the bound path and the shared open file */
    const struct mount_entry* enc;
    char* bind;
    pthread_mutex_t enc_lock;
    struct encfile* ef;
    unsigned ef_refs;
};

enum { ST_LOOKUP, ST_GETATTR, ST_OPEN, ST_READ, ST_READDIR, ST_OTHER, ST_MAX };
static const char* const g_stat_names[ST_MAX] = {"lookup", "getattr", "open",
                                                 "read",   "readdir", "other"};

struct learned {
    char* host_path;
    bool written;
};

struct fusefs {
    uint64_t stat_count[ST_MAX], stat_ns[ST_MAX]; /* for loader.log_level = "debug" */
    bool learn;                                   /* --learn: record every file used */
    struct verifier* verifier;
    struct encfs* encfs;
    int fuse_fd;
    bool want_passthrough; /* root in the initial user namespace: backing files can be opened */
    bool passthrough;      /* the kernel offered it and we asked for it in INIT */
    uint64_t init_unique;  /* the INIT request, whose reply asks for passthrough */
    struct learned* learned;
    size_t nlearned, learned_cap;
    const struct mount_plan* plan;
    const struct file_policy* policy;
    pthread_mutex_t lock; /* the node table */
    struct node** nodes;  /* index = ino - 1 */
    size_t nnodes, cap;
    size_t* index; /* open addressing: app path -> ino, 0 = empty */
    size_t nindex;
    /* paths a rename replaced: other threads may still read them, so they live to the end */
    char** retired;
    size_t nretired, retired_cap;
    struct fuse_session* se;
    pthread_t workers[FUSE_WORKERS];
    size_t nworkers;
    bool go;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
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

/* Sets a node's paths (taking them) and what follows from them: its class under the file
 * policy, and for a file under an encrypted mount the mount and the path it is bound to. */
static void node_place(struct fusefs* fs, struct node* n, char* app_path, char* host_path) {
    n->app_path  = app_path;
    n->host_path = host_path;
    n->cls  = host_path ? file_policy_classify(fs->policy, host_path, &n->trusted) : FILE_ALLOWED;
    n->enc  = NULL;
    n->bind = NULL;
    const struct mount_entry* m = host_path ? mount_plan_resolve(fs->plan, app_path, NULL) : NULL;
    if (m && m->type == MOUNT_ENCRYPTED) {
        /* encrypted files follow their own rules, not sgx.trusted_files / allowed_files */
        size_t l         = strlen(m->path);
        const char* rest = !strcmp(m->path, "/") ? app_path + 1 : app_path + l;
        rest += *rest == '/';
        _cleanup_free_ char* joined = *rest ? path_join(m->bind, rest) : xstrdup(m->bind);
        n->enc                      = m;
        n->bind                     = path_normalize(joined);
        n->cls                      = FILE_ALLOWED;
        n->trusted                  = NULL;
    }
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
    pthread_mutex_init(&n->enc_lock, NULL);
    node_place(fs, n, xstrdup(app_path), host_path ? xstrdup(host_path) : NULL);
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
/* Trusted files (verify.c)                                                                   */

/* Registers the sealed copy of a verified file with the kernel for passthrough (once, under the
 * file's lock); on the first refusal passthrough is off for the rest of the run. */
static void register_backing(void* arg, struct vfile* f) {
    struct fusefs* fs = arg;
    if (f->backing_id || f->copy < 0 || !__atomic_load_n(&fs->passthrough, __ATOMIC_RELAXED))
        return;
    struct pt_backing_map map = {.fd = f->copy};
    int id                    = ioctl(fs->fuse_fd, PT_IOC_BACKING_OPEN, &map);
    if (id > 0) {
        __atomic_store_n(&f->backing_id, id, __ATOMIC_RELEASE);
        return;
    }
    moat_log(LOG_LEVEL_DEBUG, "FUSE passthrough refused (%s): moat serves trusted files itself",
             strerror(errno));
    __atomic_store_n(&fs->passthrough, false, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------------------------------- */
/* Attributes and lookup                                                                      */

static void synthetic_attr(struct stat* st, fuse_ino_t ino) {
    memset(st, 0, sizeof(*st));
    st->st_ino   = ino;
    st->st_mode  = S_IFDIR | 0755;
    st->st_nlink = 2;
}

/* An encrypted file's size is its plaintext size (the host size when it cannot be opened). */
static void enc_attr(struct fusefs* fs, struct node* n, struct stat* st) {
    if (!n->enc || !S_ISREG(st->st_mode))
        return;
    pthread_mutex_lock(&n->enc_lock);
    uint64_t size;
    if (n->ef)
        st->st_size = (off_t)encfile_size(n->ef);
    else if (encfile_peek_size(fs->encfs, n->enc, n->host_path, n->bind, &size) == 0)
        st->st_size = (off_t)size;
    pthread_mutex_unlock(&n->enc_lock);
}

static int node_attr(struct fusefs* fs, struct node* n, fuse_ino_t ino, struct stat* st) {
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
    st->st_ino      = ino;
    struct vfile* f = __atomic_load_n(&n->verified, __ATOMIC_ACQUIRE);
    if (f)
        st->st_size = f->size;
    enc_attr(fs, n, st);
    return 0;
}

static double timeout_for(const struct node* n) {
    if (n->enc)
        return 1.0;
    return n->cls == FILE_TRUSTED || !n->host_path ? LONG_TIMEOUT : 1.0;
}

/* The entry for `name` in directory `p` (what LOOKUP answers, and READDIRPLUS for each name):
 * e->ino = 0 for a name that does not exist (a negative entry). Counts a lookup on success. */
static int lookup_entry(struct fusefs* fs, const struct node* p, const char* name,
                        struct fuse_entry_param* e) {
    _cleanup_free_ char* app    = path_join(p->app_path, name);
    _cleanup_free_ char* host   = NULL;
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, &host);
    struct stat st;
    bool exists                  = m && stat(host, &st) == 0;
    const struct mount_entry* mp = m ? NULL : mount_point(fs->plan, app);
    bool synthetic               = !exists && (mount_plan_is_synthetic_dir(fs->plan, app) || mp);
    memset(e, 0, sizeof(*e));
    if (!exists && !synthetic) {
        e->entry_timeout = 1.0; /* negative entry, cached briefly */
        return 0;
    }
    fuse_ino_t ino = node_intern(fs, app, exists ? host : NULL);
    struct node* n = node_get(fs, ino);
    if (mp && mp->type == MOUNT_PSEUDO_FILE)
        n->synthetic_file = true;
    e->ino           = ino;
    e->attr_timeout  = timeout_for(n);
    e->entry_timeout = timeout_for(n);
    if (exists) {
        e->attr         = st;
        e->attr.st_ino  = ino;
        struct vfile* f = __atomic_load_n(&n->verified, __ATOMIC_ACQUIRE);
        if (f)
            e->attr.st_size = f->size;
        enc_attr(fs, n, &e->attr);
    } else {
        int r = node_attr(fs, n, ino, &e->attr);
        if (r < 0)
            return r;
    }
    pthread_mutex_lock(&fs->lock);
    n->nlookup++;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct fusefs* fs = fs_of(req); /* req is gone once replied to */
    uint64_t t        = time_now_ns();
    struct node* p    = node_get(fs, parent);
    struct fuse_entry_param e;
    int r = p ? lookup_entry(fs, p, name, &e) : -ENOENT;
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_entry(req, &e);
    account(fs, ST_LOOKUP, t);
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
    struct fusefs* fs = fs_of(req);
    account(fs, ST_GETATTR, time_now_ns());
    struct node* n = node_get(fs, ino);
    struct stat st;
    int r = n ? node_attr(fs, n, ino, &st) : -ENOENT;
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, timeout_for(n));
}

/* ---------------------------------------------------------------------------------------- */
/* Directories                                                                                */

/* A directory's listing, taken at opendir: the host directory's names plus the mount points
 * directly below it. Offsets are entry indexes + 1, the same for READDIR and READDIRPLUS (the
 * kernel may mix them on one open directory). */
struct dirlist {
    struct dirent_item {
        char* name;
        mode_t mode;
    } * items;
    size_t len, cap;
};

static bool dirlist_has(const struct dirlist* d, const char* name) {
    for (size_t i = 0; i < d->len; i++)
        if (!strcmp(d->items[i].name, name))
            return true;
    return false;
}

static void dirlist_add(struct dirlist* d, const char* name, mode_t mode) {
    d->items           = xgrow(d->items, &d->cap, d->len + 1, sizeof(*d->items));
    d->items[d->len++] = (struct dirent_item){xstrdup(name), mode};
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    account(fs, ST_READDIR, time_now_ns());
    struct node* n = node_get(fs, ino);
    if (!n) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct dirlist* d = xcalloc(1, sizeof(*d));
    dirlist_add(d, ".", S_IFDIR);
    dirlist_add(d, "..", S_IFDIR);
    DIR* dir = n->host_path ? opendir(n->host_path) : NULL;
    struct dirent* de;
    while (dir && (de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            dirlist_add(d, de->d_name, (mode_t)DTTOIF(de->d_type));
    if (dir)
        closedir(dir);
    /* mount points directly below this directory */
    size_t plen = strlen(n->app_path);
    for (size_t i = 1; i < fs->plan->len; i++) {
        const char* mp   = fs->plan->items[i].path;
        const char* rest = !strcmp(n->app_path, "/")                            ? mp + 1
                           : !strncmp(mp, n->app_path, plen) && mp[plen] == '/' ? mp + plen + 1
                                                                                : NULL;
        if (!rest || !*rest)
            continue;
        _cleanup_free_ char* child = xstrndup(rest, strcspn(rest, "/"));
        if (!dirlist_has(d, child))
            dirlist_add(d, child, S_IFDIR);
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info* fi, bool plus) {
    struct fusefs* fs = fs_of(req);
    struct dirlist* d = (struct dirlist*)(uintptr_t)fi->fh;
    struct node* p    = plus ? node_get(fs, ino) : NULL;
    char* buf         = xmalloc(size ? size : 1);
    size_t used       = 0;
    for (size_t i = (size_t)off; i < d->len; i++) {
        const char* name = d->items[i].name;
        size_t need;
        if (plus) {
            struct fuse_entry_param e = {0};
            bool dot                  = !strcmp(name, ".") || !strcmp(name, "..");
            if (dot || !p || lookup_entry(fs, p, name, &e) < 0) {
                memset(&e, 0, sizeof(e)); /* listed without an entry: looked up on use */
                e.attr.st_mode = d->items[i].mode;
            }
            need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1);
            if (need > size - used) {
                if (e.ino) { /* did not fit: the kernel will not count this lookup */
                    struct node* n = node_get(fs, e.ino);
                    pthread_mutex_lock(&fs->lock);
                    n->nlookup--;
                    pthread_mutex_unlock(&fs->lock);
                }
                break;
            }
        } else {
            struct stat st = {.st_mode = d->items[i].mode, .st_ino = 1};
            need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
            if (need > size - used)
                break;
        }
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info* fi) {
    readdir_common(req, ino, size, off, fi, false);
}

/* READDIRPLUS: every name comes with its entry, so the kernel needs no LOOKUP for the names an
 * app lists and then stats (an interpreter's module search does exactly that). */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info* fi) {
    readdir_common(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    (void)ino;
    struct dirlist* d = (struct dirlist*)(uintptr_t)fi->fh;
    for (size_t i = 0; i < d->len; i++)
        free(d->items[i].name);
    free(d->items);
    free(d);
    fuse_reply_err(req, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

/* The shared open state of an encrypted file: opened (or created) by the first open, closed
 * (flushed) by the last release. Called with nothing locked. */
static int enc_acquire(struct fusefs* fs, struct node* n, bool create, bool write, bool trunc) {
    pthread_mutex_lock(&n->enc_lock);
    int r = 0;
    if (!n->ef)
        r = encfile_open(fs->encfs, n->enc, n->host_path, n->bind, create, &n->ef);
    if (r == 0 && write && !encfile_writable(n->ef))
        r = -EACCES;
    if (r == 0 && trunc)
        r = encfile_set_size(n->ef, 0);
    if (r == 0)
        n->ef_refs++;
    else if (n->ef && !n->ef_refs) {
        (void)encfile_close(n->ef);
        n->ef = NULL;
    }
    pthread_mutex_unlock(&n->enc_lock);
    return r;
}

static void enc_release(struct node* n) {
    pthread_mutex_lock(&n->enc_lock);
    if (n->ef_refs && --n->ef_refs == 0) {
        (void)encfile_close(n->ef); /* a failed flush is logged; the app has closed the file */
        n->ef = NULL;
    }
    pthread_mutex_unlock(&n->enc_lock);
}

static bool wants_write(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND));
}

/* The reply to an OPEN that asks the kernel to serve the file from a registered backing file:
 * libfuse 3.14 cannot say so, so the reply is amended on its way out (io_writev). */
static _Thread_local int32_t tls_backing_id;

static void reply_open_passthrough(fuse_req_t req, struct fuse_file_info* fi, int32_t id) {
    fi->keep_cache = 0;
    tls_backing_id = id;
    fuse_reply_open(req, fi);
    tls_backing_id = 0;
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
    if (n->enc) {
        int r = enc_acquire(fs, n, false, wants_write(fi->flags), (fi->flags & O_TRUNC) != 0);
        if (r < 0) {
            fuse_reply_err(req, -r);
            return;
        }
        learn(fs, n->host_path, wants_write(fi->flags));
        fi->fh = (uint64_t)-1;
        fuse_reply_open(req, fi);
        return;
    }
    int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
    switch (n->cls) {
        case FILE_TRUSTED: {
            if (wants_write(fi->flags)) {
                moat_log(LOG_LEVEL_ERROR, "Disallowing write/append to a trusted file '%s'",
                         base_name(n->app_path));
                fuse_reply_err(req, EACCES);
                return;
            }
            struct vfile* f;
            int r = verifier_open(fs->verifier, n->trusted, &f);
            if (r < 0) {
                fuse_reply_err(req, -r);
                return;
            }
            __atomic_store_n(&n->verified, f, __ATOMIC_RELEASE);
            learn(fs, n->host_path, false);
            int32_t id = __atomic_load_n(&f->backing_id, __ATOMIC_ACQUIRE);
            if (f->copy >= 0 && !id && __atomic_load_n(&fs->passthrough, __ATOMIC_RELAXED)) {
                verifier_locked(fs->verifier, f, register_backing, fs);
                id = __atomic_load_n(&f->backing_id, __ATOMIC_ACQUIRE);
            }
            if (id > 0) {
                fi->fh = (uint64_t)-1;
                reply_open_passthrough(req, fi, id);
                return;
            }
            if (f->copy >= 0) { /* reads come from the copy */
                fi->fh         = (uint64_t)-1;
                fi->keep_cache = 1;
                fuse_reply_open(req, fi);
                return;
            }
            flags          = O_RDONLY;
            fi->keep_cache = 1; /* verified pages stay cached: native speed afterwards */
            break;
        }
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
    if (n->cls != FILE_TRUSTED) /* trusted files were recorded when verified */
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
    struct vfile* f   = n ? __atomic_load_n(&n->verified, __ATOMIC_ACQUIRE) : NULL;
    if (n && n->enc) {
        pthread_mutex_lock(&n->enc_lock);
        r = n->ef ? encfile_read(n->ef, off, size, buf, &len) : -EBADF;
        pthread_mutex_unlock(&n->enc_lock);
    } else if (n && n->cls == FILE_TRUSTED) {
        r = f ? verifier_read(fs->verifier, f, n->trusted, (int)fi->fh, off, size, buf, &len)
              : -EIO;
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
    if (n && n->enc) {
        pthread_mutex_lock(&n->enc_lock);
        int r = n->ef ? encfile_write(n->ef, off, size, buf) : -EBADF;
        pthread_mutex_unlock(&n->enc_lock);
        if (r < 0)
            fuse_reply_err(req, -r);
        else
            fuse_reply_write(req, size);
        return;
    }
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
    struct node* n = node_get(fs_of(req), ino);
    if (n && n->enc)
        enc_release(n);
    else if (fi->fh != (uint64_t)-1)
        close((int)fi->fh);
    fuse_reply_err(req, 0);
}

/* fsync: encrypted files are flushed (every changed node and the metadata) and synced. */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi) {
    (void)datasync;
    struct node* n = node_get(fs_of(req), ino);
    int r          = 0;
    if (n && n->enc) {
        pthread_mutex_lock(&n->enc_lock);
        r = n->ef ? encfile_flush(n->ef) : 0;
        pthread_mutex_unlock(&n->enc_lock);
    } else if (fi->fh != (uint64_t)-1 && fsync((int)fi->fh) < 0) {
        r = -errno;
    }
    fuse_reply_err(req, -r);
}

/* The app path and host path of `name` in directory `parent`, for operations that create or
 * remove names; -EACCES when the name is not on a chroot mount. */
static int child_paths(struct fusefs* fs, fuse_ino_t parent, const char* name, char** ret_app,
                       char** ret_host) {
    struct node* p = node_get(fs, parent);
    if (!p)
        return -ENOENT;
    char* app                   = path_join(p->app_path, name);
    char* host                  = NULL;
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, &host);
    if (!m) {
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
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, NULL);
    if (m && m->type == MOUNT_ENCRYPTED)
        return 0; /* encrypted mounts have no file-check rules */
    switch (file_policy_classify(fs->policy, host, &t)) {
        case FILE_TRUSTED:
            moat_log(LOG_LEVEL_ERROR, "Disallowing creating a trusted file '%s'", host);
            return -EACCES;
        case FILE_ALLOWED:
            return 0;
        case FILE_NONE:
            break;
    }
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
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, NULL);
    bool enc                    = m && m->type == MOUNT_ENCRYPTED;
    int fd = enc ? -1 : open(host, (fi->flags | O_CREAT | O_CLOEXEC) & ~O_NOCTTY, mode);
    if (!enc && fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    learn(fs, host, true);
    fuse_ino_t ino = node_intern(fs, app, host);
    struct node* n = node_get(fs, ino);
    if (enc) {
        struct stat st;
        bool exists = stat(host, &st) == 0;
        if (exists && (fi->flags & O_EXCL)) {
            fuse_reply_err(req, EEXIST);
            return;
        }
        r = enc_acquire(fs, n, !exists, true, exists && (fi->flags & O_TRUNC));
        if (r < 0) {
            fuse_reply_err(req, -r);
            return;
        }
        (void)fchmodat(AT_FDCWD, host, mode & 07777, 0);
    }
    struct fuse_entry_param e = {.ino = ino, .attr_timeout = 1.0, .entry_timeout = 1.0};
    if (node_attr(fs, n, ino, &e.attr) < 0) {
        if (enc)
            enc_release(n);
        else
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
    if ((to_set & FUSE_SET_ATTR_SIZE) && n->enc) {
        r = enc_acquire(fs, n, false, true, false);
        if (r == 0) {
            pthread_mutex_lock(&n->enc_lock);
            r = encfile_set_size(n->ef, (uint64_t)attr->st_size);
            pthread_mutex_unlock(&n->enc_lock);
            enc_release(n);
        }
        if (r < 0) {
            fuse_reply_err(req, -r);
            return;
        }
    } else if (to_set & FUSE_SET_ATTR_SIZE) {
        r = fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(n->host_path, attr->st_size);
    }
    if (r == 0 && (to_set & FUSE_SET_ATTR_MODE))
        r = chmod(n->host_path, attr->st_mode & 07777);
    if (r < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    struct stat st;
    r = node_attr(fs, n, ino, &st);
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
static void retire(struct fusefs* fs, char* s) {
    if (!s)
        return;
    fs->retired = xgrow(fs->retired, &fs->retired_cap, fs->nretired + 1, sizeof(*fs->retired));
    fs->retired[fs->nretired++] = s;
}

static bool path_under(const char* path, const char* dir, size_t dir_len) {
    return !strncmp(path, dir, dir_len) && (path[dir_len] == '\0' || path[dir_len] == '/');
}

/* After `from` was renamed to `to`: the kernel now knows the renamed inode (and everything
 * below it) by the new names, so its node takes the new paths, and a node the rename replaced
 * can no longer be found by name. */
static void nodes_renamed(struct fusefs* fs, const char* from, const char* to) {
    size_t from_len = strlen(from), to_len = strlen(to);
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < fs->nnodes; i++) {
        struct node* n = fs->nodes[i];
        if (path_under(n->app_path, to, to_len) && !path_under(n->app_path, from, from_len)) {
            retire(fs, n->app_path); /* replaced: its open files go on, its name is gone */
            n->app_path = xasprintf("//replaced/%zu", i + 1);
        }
    }
    for (size_t i = 0; i < fs->nnodes; i++) {
        struct node* n = fs->nodes[i];
        if (!path_under(n->app_path, from, from_len))
            continue;
        char* app  = xasprintf("%s%s", to, n->app_path + from_len);
        char* host = NULL;
        if (!mount_plan_resolve(fs->plan, app, &host))
            host = n->host_path ? xstrdup(n->host_path) : NULL;
        retire(fs, n->app_path);
        retire(fs, n->host_path);
        retire(fs, n->bind);
        node_place(fs, n, app, host);
    }
    memset(fs->index, 0, fs->nindex * sizeof(*fs->index));
    for (size_t i = 1; i <= fs->nnodes; i++)
        index_insert(fs, i);
    pthread_mutex_unlock(&fs->lock);
}

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
    const struct mount_entry* from = r == 0 ? mount_plan_resolve(fs->plan, app, NULL) : NULL;
    const struct mount_entry* to   = r == 0 ? mount_plan_resolve(fs->plan, newapp, NULL) : NULL;
    struct stat st;
    if (r == 0 && from != to && (from->type == MOUNT_ENCRYPTED || to->type == MOUNT_ENCRYPTED))
        r = -EXDEV; /* in or out of an encrypted mount: the app copies, as across devices */
    if (r == 0 && from->type == MOUNT_ENCRYPTED && stat(host, &st) == 0 && S_ISREG(st.st_mode)) {
        /* the file is bound to its path: rebind it first (pf_rename), then move it */
        struct node* src = node_get(fs, node_intern(fs, app, host));
        struct node* dst = node_get(fs, node_intern(fs, newapp, newhost));
        r                = enc_acquire(fs, src, false, true, false);
        if (r == 0) {
            pthread_mutex_lock(&src->enc_lock);
            r = encfile_rename(src->ef, dst->bind);
            pthread_mutex_unlock(&src->enc_lock);
            enc_release(src);
        }
    }
    if (r == 0 && renameat2(AT_FDCWD, host, AT_FDCWD, newhost, flags) < 0)
        r = -errno;
    if (r == 0 && (flags & RENAME_EXCHANGE)) {
        nodes_renamed(fs, app, "//exchanging"); /* three steps: the names swap */
        nodes_renamed(fs, newapp, app);
        nodes_renamed(fs, "//exchanging", newapp);
    } else if (r == 0) {
        nodes_renamed(fs, app, newapp);
    }
    if (r == 0 && from->type == MOUNT_ENCRYPTED) {
        /* a file the app still has open follows its host file (and its recovery file) */
        struct node* moved = node_get(fs, node_intern(fs, newapp, newhost));
        pthread_mutex_lock(&moved->enc_lock);
        if (moved->ef)
            encfile_moved(moved->ef, newhost);
        pthread_mutex_unlock(&moved->enc_lock);
    }
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
    .init        = op_init,
    .lookup      = op_lookup,
    .forget      = op_forget,
    .getattr     = op_getattr,
    .setattr     = op_setattr,
    .opendir     = op_opendir,
    .readdir     = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir  = op_releasedir,
    .open        = op_open,
    .read        = op_read,
    .write       = op_write,
    .release     = op_release,
    .fsync       = op_fsync,
    .create      = op_create,
    .unlink      = op_unlink,
    .rmdir       = op_rmdir,
    .mkdir       = op_mkdir,
    .rename      = op_rename,
    .statfs      = op_statfs,
};

/* ---------------------------------------------------------------------------------------- */

static void* worker_main(void* arg);

struct fusefs* fusefs_new(const struct mount_plan* plan, const struct file_policy* policy,
                          struct verifier* verifier, struct moat_error* err) {
    struct fusefs* fs = xcalloc(1, sizeof(*fs));
    fs->plan          = plan;
    fs->policy        = policy;
    fs->verifier      = verifier;
    fs->fuse_fd       = -1;
    pthread_mutex_init(&fs->park_lock, NULL);
    pthread_cond_init(&fs->park_cond, NULL);
    char* argv[]          = {(char*)"moat", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    fs->se                = fuse_session_new(&args, &g_ops, sizeof(g_ops), fs);
    fuse_opt_free_args(&args);
    if (!fs->se) {
        moat_error_set(err, -EIO, "cannot create the FUSE session");
        fusefs_free(fs);
        return NULL;
    }
    /* several workers: a slow request (hashing a large trusted file) never stalls the rest */
    for (; fs->nworkers < FUSE_WORKERS; fs->nworkers++)
        if (pthread_create(&fs->workers[fs->nworkers], NULL, worker_main, fs) != 0)
            break;
    if (!fs->nworkers) {
        moat_error_set(err, -EAGAIN, "cannot start the FUSE workers");
        fusefs_free(fs);
        return NULL;
    }
    /* the kernel lets only CAP_SYS_ADMIN in the initial user namespace register backing files */
    fs->want_passthrough = geteuid() == 0;
    pthread_mutex_init(&fs->lock, NULL);
    node_intern(fs, "/", plan->items[0].host); /* FUSE_ROOT_ID = 1 */
    return fs;
}

/* Requests and replies pass through here (libfuse's custom I/O) so that moat can ask for
 * passthrough, which libfuse 3.14 does not know: the INIT reply gets FUSE_PASSTHROUGH and a
 * stack depth of 1 when the kernel offers it, and OPEN replies get their backing file. */
static ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
    struct fusefs* fs               = userdata;
    ssize_t got                     = read(fd, buf, len);
    const struct fuse_in_header* in = buf;
    if (got >= (ssize_t)(sizeof(*in) + offsetof(struct fuse_init_in, unused)) &&
        in->opcode == FUSE_INIT) {
        const struct fuse_init_in* init = (const void*)(in + 1);
        if ((init->flags & PT_INIT_EXT) && (init->flags2 & PT_FLAG2) && fs->want_passthrough)
            fs->init_unique = in->unique;
    }
    return got;
}

static ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata) {
    struct fusefs* fs = userdata;
    if (count == 2 && iov[0].iov_len == sizeof(struct fuse_out_header)) {
        struct fuse_out_header* out = iov[0].iov_base;
        uint8_t* arg                = iov[1].iov_base;
        if (out->error == 0 && fs->init_unique && out->unique == fs->init_unique &&
            iov[1].iov_len >= PT_INIT_OUT_DEPTH + 4) {
            struct fuse_init_out* init = (void*)arg;
            init->flags |= PT_INIT_EXT;
            init->flags2 |= PT_FLAG2;
            uint32_t depth = 1;
            memcpy(arg + PT_INIT_OUT_DEPTH, &depth, 4);
            fs->init_unique = 0;
            __atomic_store_n(&fs->passthrough, true, __ATOMIC_RELAXED);
        } else if (out->error == 0 && tls_backing_id > 0 &&
                   iov[1].iov_len == sizeof(struct fuse_open_out)) {
            struct fuse_open_out* open_out = (void*)arg;
            open_out->open_flags |= PT_FOPEN;
            memcpy(&open_out->padding, &tls_backing_id, 4); /* backing_id */
        }
    }
    return writev(fd, iov, count);
}

/* Workers: started while the sandbox child sets up and waiting for its connection, so that the
 * first request is answered at once; each reads and answers requests until the connection
 * ends. */
static void* worker_main(void* arg) {
    struct fusefs* fs = arg;
    pthread_mutex_lock(&fs->park_lock);
    while (!fs->go)
        pthread_cond_wait(&fs->park_cond, &fs->park_lock);
    pthread_mutex_unlock(&fs->park_lock);
    struct fuse_buf buf = {0};
    while (fs->fuse_fd >= 0 && !fuse_session_exited(fs->se)) {
        int r = fuse_session_receive_buf(fs->se, &buf);
        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0) { /* ENODEV: the sandbox is gone and its mount with it */
            fuse_session_exit(fs->se);
            break;
        }
        fuse_session_process_buf(fs->se, &buf);
    }
    free(buf.mem);
    return NULL;
}

int fusefs_start(struct fusefs* fs, int fuse_fd, struct moat_error* err) {
    static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
    int r                                 = fuse_session_custom_io(fs->se, &io, fuse_fd);
    pthread_mutex_lock(&fs->park_lock);
    fs->fuse_fd = r == 0 ? fuse_fd : -1;
    fs->go      = true;
    pthread_cond_broadcast(&fs->park_cond);
    pthread_mutex_unlock(&fs->park_lock);
    if (r != 0) {
        close(fuse_fd);
        return moat_error_set(err, -EIO, "cannot attach to the FUSE connection");
    }
    return 0;
}

void fusefs_wait(struct fusefs* fs) {
    if (!fs)
        return;
    pthread_mutex_lock(&fs->park_lock);
    fs->go = true; /* never started: the parked workers just end */
    pthread_cond_broadcast(&fs->park_cond);
    pthread_mutex_unlock(&fs->park_lock);
    for (size_t i = 0; i < fs->nworkers; i++)
        pthread_join(fs->workers[i], NULL);
    fs->nworkers = 0;
}

void fusefs_set_encfs(struct fusefs* fs, struct encfs* e) {
    fs->encfs = e;
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
    if (fs && fs->se)
        fuse_session_exit(fs->se);
}

void fusefs_free(struct fusefs* fs) {
    if (!fs)
        return;
    fusefs_wait(fs);
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        struct strbuf sb = STRBUF_INIT;
        for (int i = 0; i < ST_MAX; i++)
            if (fs->stat_count[i] && (i == ST_LOOKUP || i == ST_READ))
                strbuf_printf(&sb, " %s %llu (%.1f ms)", g_stat_names[i],
                              (unsigned long long)fs->stat_count[i], fs->stat_ns[i] / 1e6);
            else if (fs->stat_count[i])
                strbuf_printf(&sb, " %s %llu", g_stat_names[i],
                              (unsigned long long)fs->stat_count[i]);
        size_t hashed, prefetched;
        double hash_ms, wait_ms;
        verifier_stats(fs->verifier, &hashed, &prefetched, &hash_ms, &wait_ms);
        moat_log(LOG_LEVEL_DEBUG,
                 "file system requests:%s; trusted files verified %zu (%.1f ms, %zu ahead of "
                 "use), the app waited %.1f ms; passthrough %s",
                 sb.buf ? sb.buf : " none", hashed, hash_ms, prefetched, wait_ms,
                 fs->passthrough ? "on" : "off");
        strbuf_free(&sb);
    }
    if (fs->se) {
        fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se); /* closes the connection's fd */
    }
    pthread_mutex_destroy(&fs->park_lock);
    pthread_cond_destroy(&fs->park_cond);
    for (size_t i = 0; i < fs->nnodes; i++) {
        free(fs->nodes[i]->app_path);
        free(fs->nodes[i]->host_path);
        if (fs->nodes[i]->ef) /* still open when the sandbox went: flushed now */
            (void)encfile_close(fs->nodes[i]->ef);
        free(fs->nodes[i]->bind);
        pthread_mutex_destroy(&fs->nodes[i]->enc_lock);
        free(fs->nodes[i]);
    }
    free(fs->nodes);
    free(fs->index);
    for (size_t i = 0; i < fs->nretired; i++)
        free(fs->retired[i]);
    free(fs->retired);
    for (size_t i = 0; i < fs->nlearned; i++)
        free(fs->learned[i].host_path);
    free(fs->learned);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}
