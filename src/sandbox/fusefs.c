/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app's view of its chroot mounts, served over FUSE by the supervisor from the host mount
 * namespace (../shared/ARCHITECTURE.md: it never resolves a path through its own mount).
 * Trusted files follow Gramine's rules (reference/gramine.md §6): verified at the first open
 * (verify.c; mismatch: EPERM), only verified bytes are served (mismatch: EPERM), read-only
 * (EACCES with Gramine's messages). Where the kernel and moat's privileges allow it, a verified
 * copy is handed to the kernel with FUSE passthrough, so reads and mmap cost no request.
 * Unlisted files are refused under "strict" and logged under "allow_all_but_log". Every host
 * path goes through hostpath.c: host symlinks in read-only content are followed, as Gramine's
 * PAL opens host paths; a symlink below an allowed directory is the app's, presented as a
 * symlink (LOOKUP and GETATTR do not follow it, READLINK returns its target) so that the
 * sandbox's kernel resolves it inside the sandbox, and moat never opens anything through it.
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
#include "fusefs_internal.h"
#include "verify.h"

static const char* const g_stat_names[ST_MAX] = {"lookup", "getattr", "open",
                                                 "read",   "readdir", "other"};

struct fusefs* fs_of(fuse_req_t req) {
    return fuse_req_userdata(req);
}

void fs_account(struct fusefs* fs, int kind, uint64_t start_ns) {
    __atomic_add_fetch(&fs->stat_count[kind], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fs->stat_ns[kind], time_now_ns() - start_ns, __ATOMIC_RELAXED);
}

struct node* fs_node_get(struct fusefs* fs, fuse_ino_t ino) {
    pthread_mutex_lock(&fs->lock);
    struct node* n = ino >= 1 && ino <= fs->nnodes ? fs->nodes[ino - 1] : NULL;
    pthread_mutex_unlock(&fs->lock);
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* The node table: inode number -> node, and an index app path -> inode number. A node lives
 * while the kernel may name it (its lookups not all forgotten), while an operation in progress
 * counts a lookup on it (fs_node_intern), and while its encrypted file is open; then its
 * number is reused with a new generation. Workers read nodes and their paths without the lock
 * (the kernel holds the inode of each request), so what is freed or replaced is retired and
 * freed only once every worker has moved on to another request (fs_retire). */

static size_t path_hash(const char* s) {
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void fs_index_insert(struct fusefs* fs, struct node* n) {
    size_t mask = fs->nindex - 1;
    n->hash     = path_hash(n->app_path);
    size_t i    = n->hash & mask;
    while (fs->index[i])
        i = (i + 1) & mask;
    fs->index[i] = n->ino;
}

struct node* fs_index_find(struct fusefs* fs, const char* app_path) {
    if (!fs->nindex)
        return NULL;
    size_t mask = fs->nindex - 1, h = path_hash(app_path);
    for (size_t i = h & mask; fs->index[i]; i = (i + 1) & mask) {
        struct node* n = fs->nodes[fs->index[i] - 1];
        if (n->hash == h && !strcmp(n->app_path, app_path))
            return n;
    }
    return NULL;
}

/* Linear probing without tombstones: the entries after the hole that could not sit in their
 * own slot move back into it (Knuth's algorithm R). */
void fs_index_remove(struct fusefs* fs, struct node* n) {
    size_t mask = fs->nindex - 1, i = n->hash & mask;
    while (fs->index[i] && fs->index[i] != n->ino)
        i = (i + 1) & mask;
    if (!fs->index[i])
        return;
    for (size_t j = (i + 1) & mask; fs->index[j]; j = (j + 1) & mask) {
        size_t k = fs->nodes[fs->index[j] - 1]->hash & mask;
        /* the entry at j stays unless its home k lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        fs->index[i] = fs->index[j];
        i            = j;
    }
    fs->index[i] = 0;
}

static void index_rebuild(struct fusefs* fs, size_t nindex) {
    free(fs->index);
    fs->nindex = nindex;
    fs->index  = xcalloc(fs->nindex, sizeof(*fs->index));
    for (size_t i = 0; i < fs->nnodes; i++)
        if (fs->nodes[i])
            fs_index_insert(fs, fs->nodes[i]);
}

static void node_destroy(struct node* n) {
    free(n->app_path);
    free(n->host_path);
    if (n->ef) /* still open when the sandbox went: flushed now */
        (void)encfile_close(n->ef);
    free(n->bind);
    pthread_mutex_destroy(&n->enc_lock);
    free(n);
}

/* Frees what was retired before every worker's current request began. Amortized: runs when
 * the list has doubled since the last pass. */
static void reclaim(struct fusefs* fs, bool all) {
    uint64_t oldest = UINT64_MAX;
    for (size_t w = 0; w < FUSE_WORKERS && !all; w++) {
        uint64_t s = __atomic_load_n(&fs->seen[w], __ATOMIC_SEQ_CST);
        oldest     = s < oldest ? s : oldest;
    }
    size_t kept = 0;
    for (size_t i = 0; i < fs->nretired; i++) {
        struct retired r = fs->retired[i];
        if (r.epoch > oldest) /* a worker that began in an earlier epoch may still hold it */
            fs->retired[kept++] = r;
        else if (r.node)
            node_destroy(r.p);
        else
            free(r.p);
    }
    fs->nretired   = kept;
    fs->reclaim_at = 2 * kept > 64 ? 2 * kept : 64;
}

static void retire(struct fusefs* fs, void* p, bool node) {
    if (!p)
        return;
    uint64_t e  = __atomic_add_fetch(&fs->epoch, 1, __ATOMIC_SEQ_CST);
    fs->retired = xgrow(fs->retired, &fs->retired_cap, fs->nretired + 1, sizeof(*fs->retired));
    fs->retired[fs->nretired++] = (struct retired){p, e, node};
    if (fs->nretired >= fs->reclaim_at)
        reclaim(fs, false);
}

void fs_retire(struct fusefs* fs, void* p) {
    retire(fs, p, false);
}

/* Under fs->lock: frees n if nothing uses it any more. */
static void node_maybe_free(struct fusefs* fs, struct node* n) {
    if (n->nlookup || n->ino == FUSE_ROOT_ID || fs->nodes[n->ino - 1] != n)
        return;
    pthread_mutex_lock(&n->enc_lock); /* fs->lock, then enc_lock: never the other way */
    bool open = n->ef != NULL;
    pthread_mutex_unlock(&n->enc_lock);
    if (open) /* freed when closed (fs_node_closed) */
        return;
    fs_index_remove(fs, n);
    fs->nodes[n->ino - 1] = NULL;
    fs->free_inos = xgrow(fs->free_inos, &fs->free_cap, fs->nfree + 1, sizeof(*fs->free_inos));
    fs->free_inos[fs->nfree++] = n->ino;
    fs->nlive--;
    fs->nfreed++;
    retire(fs, n, true);
}

void fs_node_forget(struct fusefs* fs, struct node* n, uint64_t count) {
    pthread_mutex_lock(&fs->lock);
    n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
    node_maybe_free(fs, n);
    pthread_mutex_unlock(&fs->lock);
}

void fs_node_closed(struct fusefs* fs, struct node* n) {
    pthread_mutex_lock(&fs->lock);
    node_maybe_free(fs, n);
    pthread_mutex_unlock(&fs->lock);
}

/* Sets a node's paths (taking them) and what follows from them: its class under the file
 * policy, and for a file under an encrypted mount the mount and the path it is bound to. */
void fs_node_place(struct fusefs* fs, struct node* n, char* app_path, char* host_path) {
    n->app_path  = app_path;
    n->host_path = host_path;
    n->cls = host_path ? file_policy_classify(fs->policy, host_path, &n->trusted) : FILE_ALLOWED;
    const struct mount_entry* m   = host_path ? mount_plan_resolve(fs->plan, app_path, NULL) : NULL;
    const struct mount_entry* enc = NULL;
    char* bind                    = NULL;
    if (m && m->type == MOUNT_ENCRYPTED) {
        /* encrypted files follow their own rules, not sgx.trusted_files / allowed_files */
        size_t l         = strlen(m->path);
        const char* rest = !strcmp(m->path, "/") ? app_path + 1 : app_path + l;
        rest += *rest == '/';
        _cleanup_free_ char* joined = *rest ? path_join(m->bind, rest) : xstrdup(m->bind);
        enc                         = m;
        bind                        = path_normalize(joined);
        n->cls                      = FILE_ALLOWED;
        n->trusted                  = NULL;
    }
    /* a rename re-places a node other workers may be reading (without the table lock): each
     * field goes from its old value to its new one, never through NULL (the old bind path is
     * retired by the caller, freed once no worker can hold it) */
    __atomic_store_n(&n->bind, bind, __ATOMIC_RELEASE);
    __atomic_store_n(&n->enc, enc, __ATOMIC_RELEASE);
}

struct node* fs_node_intern(struct fusefs* fs, const char* app_path, const char* host_path) {
    pthread_mutex_lock(&fs->lock);
    struct node* n = fs_index_find(fs, app_path);
    if (n) {
        n->nlookup++;
        pthread_mutex_unlock(&fs->lock);
        return n;
    }
    n = xcalloc(1, sizeof(*n));
    pthread_mutex_init(&n->enc_lock, NULL);
    fs_node_place(fs, n, xstrdup(app_path), host_path ? xstrdup(host_path) : NULL);
    n->nlookup    = 1;
    n->generation = fs->next_generation++;
    if (fs->nfree) {
        n->ino = fs->free_inos[--fs->nfree];
    } else {
        fs->nodes = xgrow(fs->nodes, &fs->cap, fs->nnodes + 1, sizeof(*fs->nodes));
        n->ino    = ++fs->nnodes;
    }
    fs->nodes[n->ino - 1] = n;
    if (++fs->nlive > fs->peak_live)
        fs->peak_live = fs->nlive;
    if (2 * fs->nlive > fs->nindex)
        index_rebuild(fs, fs->nindex ? fs->nindex * 4 : 1024);
    else
        fs_index_insert(fs, n);
    pthread_mutex_unlock(&fs->lock);
    return n;
}

/* The mount whose mount point is exactly app, or NULL. */
static const struct mount_entry* mount_point(const struct mount_plan* plan, const char* app) {
    for (size_t i = plan->len; i-- > 1;)
        if (!strcmp(plan->items[i].path, app))
            return &plan->items[i];
    return NULL;
}

void fs_learn(struct fusefs* fs, const char* host_path, bool written) {
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

const char* fs_base_name(const char* path) {
    const char* s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---------------------------------------------------------------------------------------- */
/* Trusted files (verify.c)                                                                   */

/* Registers the sealed copy of a verified file with the kernel for passthrough (once, under the
 * file's lock); on the first refusal passthrough is off for the rest of the run. */
void fs_register_backing(void* arg, struct vfile* f) {
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

static void synthetic_attr(const struct fusefs* fs, struct stat* st, fuse_ino_t ino) {
    memset(st, 0, sizeof(*st));
    st->st_uid   = fs->owner_uid;
    st->st_gid   = fs->owner_gid;
    st->st_ino   = ino;
    st->st_mode  = S_IFDIR | 0755;
    st->st_nlink = 2;
}

/* An encrypted file's size is its plaintext size (the host size when it cannot be opened). */
static void enc_attr(struct fusefs* fs, struct node* n, struct stat* st) {
    const struct mount_entry* enc = __atomic_load_n(&n->enc, __ATOMIC_ACQUIRE);
    if (!enc || !S_ISREG(st->st_mode))
        return;
    pthread_mutex_lock(&n->enc_lock);
    uint64_t size;
    bool same = n->peek_valid && n->peek_host.st_ino == st->st_ino &&
                n->peek_host.st_size == st->st_size &&
                !memcmp(&n->peek_host.st_mtim, &st->st_mtim, sizeof(st->st_mtim)) &&
                !memcmp(&n->peek_host.st_ctim, &st->st_ctim, sizeof(st->st_ctim));
    if (n->ef) {
        st->st_size = (off_t)encfile_size(n->ef);
    } else if (same) { /* the host file has not changed since its metadata was read */
        st->st_size = (off_t)n->peek_size;
    } else if (encfile_peek_size(fs->encfs, enc, n->host_path, n->bind, &size) == 0) {
        n->peek_host  = *st;
        n->peek_size  = size;
        n->peek_valid = true;
        st->st_size   = (off_t)size;
    }
    pthread_mutex_unlock(&n->enc_lock);
}

/* The owner the app sees. The kernel reads the ids in a FUSE reply in the user namespace the
 * connection was mounted in, and refuses every write to an inode whose owner does not map there
 * (inode_permission: HAS_UNMAPPED_ID), before moat sees the request. So moat's own host ids
 * become the app's (fusefs_set_owner), in every reply: LOOKUP and READDIRPLUS as GETATTR. As an
 * ordinary user, the namespace maps moat's ids only: any other host id, which would name some
 * id inside instead, is sent as one that maps to nothing (shown as the overflow id). */
void fs_owner_attr(const struct fusefs* fs, struct stat* st) {
    if (st->st_uid == fs->host_uid)
        st->st_uid = fs->owner_uid;
    else if (fs->foreign_unmapped)
        st->st_uid = (uid_t)-1;
    if (st->st_gid == fs->host_gid)
        st->st_gid = fs->owner_gid;
    else if (fs->foreign_unmapped)
        st->st_gid = (gid_t)-1;
}

int fs_node_attr(struct fusefs* fs, struct node* n, fuse_ino_t ino, struct stat* st) {
    (void)ino; /* the app sees fs_app_ino(n), not the kernel's node id */
    if (!n->host_path) {
        synthetic_attr(fs, st, fs_app_ino(n));
        if (n->synthetic_file) {
            st->st_mode  = S_IFREG | 0644;
            st->st_nlink = 1;
        }
        return 0;
    }
    int r = n->unlinked ? 0 : hostpath_stat(fs->hp, n->host_path, st);
    if (r < 0)
        return r;
    if (n->unlinked)
        *st = n->unlinked_st; /* its host path may name a new file now */
    fs_owner_attr(fs, st);
    st->st_ino      = fs_app_ino(n);
    struct vfile* f = __atomic_load_n(&n->verified, __ATOMIC_ACQUIRE);
    if (f)
        st->st_size = f->size;
    enc_attr(fs, n, st);
    return 0;
}

double fs_timeout_for(const struct node* n) {
    if (n->enc)
        return 1.0;
    return n->cls == FILE_TRUSTED || !n->host_path ? LONG_TIMEOUT : 1.0;
}

/* The entry for `name` in directory `p` (what LOOKUP answers, and READDIRPLUS for each name):
 * e->ino = 0 for a name that does not exist (a negative entry). Counts a lookup on success:
 * the caller replies with the entry or gives the lookup back (fs_node_forget). */
static int fs_lookup_entry(struct fusefs* fs, const struct node* p, const char* name,
                           struct fuse_entry_param* e) {
    _cleanup_free_ char* app    = path_join(p->app_path, name);
    _cleanup_free_ char* host   = NULL;
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, &host);
    struct stat st;
    bool exists = m && hostpath_stat(fs->hp, host, &st) == 0;
    if (exists && hostpath_is_allowed_dir(fs->hp, &st) && !hostpath_app_controlled(fs->hp, host)) {
        /* an allowed directory reached through a host alias: its symlinks would be followed */
        moat_log(LOG_LEVEL_WARNING,
                 "'%s' is an allowed directory reached through a symbolic link: not shown", host);
        exists = false;
    }
    const struct mount_entry* mp = m ? NULL : mount_point(fs->plan, app);
    bool synthetic               = !exists && (mount_plan_is_synthetic_dir(fs->plan, app) || mp);
    memset(e, 0, sizeof(*e));
    if (!exists && !synthetic) {
        e->entry_timeout = 1.0; /* negative entry, cached briefly */
        return 0;
    }
    struct node* n = fs_node_intern(fs, app, exists ? host : NULL);
    fuse_ino_t ino = n->ino;
    if (mp && mp->type == MOUNT_PSEUDO_FILE)
        n->synthetic_file = true;
    e->ino           = ino;
    e->generation    = n->generation;
    e->attr_timeout  = fs_timeout_for(n);
    e->entry_timeout = fs_timeout_for(n);
    if (exists) {
        e->attr = st;
        fs_owner_attr(fs, &e->attr);
        e->attr.st_ino  = fs_app_ino(n);
        struct vfile* f = __atomic_load_n(&n->verified, __ATOMIC_ACQUIRE);
        if (f)
            e->attr.st_size = f->size;
        enc_attr(fs, n, &e->attr);
    } else {
        int r = fs_node_attr(fs, n, ino, &e->attr);
        if (r < 0) {
            fs_node_forget(fs, n, 1);
            memset(e, 0, sizeof(*e));
            return r;
        }
    }
    return 0; /* the lookup fs_node_intern counted is the reply's */
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    struct fusefs* fs = fs_of(req); /* req is gone once replied to */
    uint64_t t        = time_now_ns();
    struct node* p    = fs_node_get(fs, parent);
    struct fuse_entry_param e;
    int r = p ? fs_lookup_entry(fs, p, name, &e) : -ENOENT;
    if (r < 0)
        fuse_reply_err(req, -r);
    else if (fuse_reply_entry(req, &e) == -ENOENT && e.ino) /* the request was interrupted */
        fs_node_forget(fs, fs_node_get(fs, e.ino), 1);      /* and the kernel counted nothing */
    fs_account(fs, ST_LOOKUP, t);
}

/* READLINK: only symlinks below allowed directories are presented as symlinks (the app's own,
 * resolved by the sandbox's kernel inside the sandbox); moat reads the link, never follows it. */
static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
    struct fusefs* fs         = fs_of(req);
    struct node* n            = fs_node_get(fs, ino);
    _cleanup_free_ char* link = NULL;
    int r = n && n->host_path ? hostpath_readlink(fs->hp, n->host_path, &link) : -EINVAL;
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_readlink(req, link);
}

/* FORGET: the kernel dropped its inode; the node goes when nothing else uses it. */
static void forget_one(struct fusefs* fs, fuse_ino_t ino, uint64_t nlookup) {
    pthread_mutex_lock(&fs->lock);
    struct node* n = ino >= 1 && ino <= fs->nnodes ? fs->nodes[ino - 1] : NULL;
    if (n) {
        n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
        node_maybe_free(fs, n);
    }
    pthread_mutex_unlock(&fs->lock);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    forget_one(fs_of(req), ino, nlookup);
    fuse_reply_none(req);
}

/* BATCH_FORGET: what the kernel sends when it evicts many inodes at once (memory pressure). */
static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
    struct fusefs* fs = fs_of(req);
    for (size_t i = 0; i < count; i++)
        forget_one(fs, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    fs_account(fs, ST_GETATTR, time_now_ns());
    struct node* n = fs_node_get(fs, ino);
    struct stat st;
    int r = n ? fs_node_attr(fs, n, ino, &st) : -ENOENT;
    struct stat open_st;
    /* fstat of a removed file's open fd: its host fd tells the current size (a regular file's
     * fh is a host fd or -1; a directory's is its listing) */
    if (r == 0 && n->unlinked && !n->enc && S_ISREG(st.st_mode) && fi && fi->fh != (uint64_t)-1 &&
        fstat((int)fi->fh, &open_st) == 0) {
        st.st_size   = open_st.st_size;
        st.st_blocks = open_st.st_blocks;
        st.st_mtim   = open_st.st_mtim;
    }
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, fs_timeout_for(n));
}

/* ---------------------------------------------------------------------------------------- */
/* Directories                                                                                */

/* A directory's listing, taken at the first READDIR and again at every rewind: the host
 * directory's names plus the mount points directly below it. Offsets are entry indexes + 1, the
 * same for READDIR and READDIRPLUS (the kernel may mix them on one open directory). */
struct dirlist {
    struct dirent_item {
        char* name;
        mode_t mode;
    } * items;
    size_t len, cap;
    bool filled;
    pthread_mutex_t lock; /* the kernel serializes READDIR on one open dir; moat does not rely
                             on it (a refill frees the names) */
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

/* Reads the directory's names (the host directory's plus the mount points directly below it)
 * into d, replacing what it held: at the first READDIR and at every one from offset 0, so that
 * rewinddir() or lseek(fd, 0, SEEK_SET) shows the names created and removed since, as on Linux
 * (Gramine's getdents_lseek test). */
static void dirlist_fill(struct fusefs* fs, const struct node* n, struct dirlist* d) {
    for (size_t i = 0; i < d->len; i++)
        free(d->items[i].name);
    d->len    = 0;
    d->filled = true;
    dirlist_add(d, ".", S_IFDIR);
    dirlist_add(d, "..", S_IFDIR);
    int dfd  = n->host_path ? hostpath_open(fs->hp, n->host_path, O_RDONLY | O_DIRECTORY, 0) : -1;
    DIR* dir = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (dfd >= 0 && !dir)
        close(dfd);
    struct dirent* de;
    /* outside allowed directories the view follows host symlinks: their type is the target's,
     * which LOOKUP tells */
    bool app_links = n->host_path && hostpath_app_controlled(fs->hp, n->host_path);
    while (dir && (de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            dirlist_add(d, de->d_name,
                        de->d_type == DT_LNK && !app_links ? 0 : (mode_t)DTTOIF(de->d_type));
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
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    fs_account(fs, ST_READDIR, time_now_ns());
    if (!fs_node_get(fs, ino)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    /* the names are read at the first READDIR (dirlist_fill) */
    struct dirlist* d = xcalloc(1, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    fi->fh = (uint64_t)(uintptr_t)d;
    fuse_reply_open(req, fi);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info* fi, bool plus) {
    struct fusefs* fs = fs_of(req);
    struct dirlist* d = (struct dirlist*)(uintptr_t)fi->fh;
    struct node* p    = fs_node_get(fs, ino);
    pthread_mutex_lock(&d->lock);
    if (p && (off == 0 || !d->filled))
        dirlist_fill(fs, p, d);
    if (!plus)
        p = NULL;
    char* buf   = xmalloc(size ? size : 1);
    size_t used = 0;
    for (size_t i = (size_t)off; i < d->len; i++) {
        const char* name = d->items[i].name;
        size_t need;
        if (plus) {
            struct fuse_entry_param e = {0};
            bool dot                  = !strcmp(name, ".") || !strcmp(name, "..");
            if (dot || !p || fs_lookup_entry(fs, p, name, &e) < 0) {
                memset(&e, 0, sizeof(e)); /* listed without an entry: looked up on use */
                e.attr.st_mode = d->items[i].mode;
            }
            need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)i + 1);
            if (need > size - used) {
                if (e.ino) /* did not fit: the kernel will not count this lookup */
                    fs_node_forget(fs, fs_node_get(fs, e.ino), 1);
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
    pthread_mutex_unlock(&d->lock);
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
    pthread_mutex_destroy(&d->lock);
    free(d);
    fuse_reply_err(req, 0);
}

static void op_init(void* userdata, struct fuse_conn_info* conn) {
    (void)userdata;
    /* the view does not change behind the kernel's back (trusted content is immutable, writes
     * go through this server or through bind mounts): no revalidation on every read */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

/* The directory half of the view's operations; fusefs_file_ops() adds the file half. */
static void view_ops(struct fuse_lowlevel_ops* ops) {
    *ops = (struct fuse_lowlevel_ops){
        .init         = op_init,
        .lookup       = fs_op_lookup,
        .forget       = op_forget,
        .forget_multi = op_forget_multi,
        .getattr      = op_getattr,
        .readlink     = op_readlink,
        .opendir      = op_opendir,
        .readdir      = op_readdir,
        .readdirplus  = op_readdirplus,
        .releasedir   = op_releasedir,
    };
    fusefs_file_ops(ops);
}

/* ---------------------------------------------------------------------------------------- */

static void* worker_main(void* arg);

struct fusefs* fusefs_new(const struct mount_plan* plan, const struct file_policy* policy,
                          struct verifier* verifier, struct moat_error* err) {
    struct fusefs* fs = xcalloc(1, sizeof(*fs));
    fs->plan          = plan;
    fs->policy        = policy;
    fs->verifier      = verifier;
    fs->hp            = hostpath_new(policy->allowed, policy->nallowed);
    fs->fuse_fd       = -1;
    pthread_mutex_init(&fs->park_lock, NULL);
    pthread_cond_init(&fs->park_cond, NULL);
    for (size_t w = 0; w < FUSE_WORKERS; w++)
        fs->seen[w] = UINT64_MAX; /* a worker that never starts holds nothing */
    char* argv[]          = {(char*)"moat", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    struct fuse_lowlevel_ops ops;
    view_ops(&ops);
    fs->se = fuse_session_new(&args, &ops, sizeof(ops), fs); /* copies ops */
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
    fs->host_uid = fs->owner_uid = geteuid();
    fs->host_gid = fs->owner_gid = getegid();
    pthread_mutex_init(&fs->lock, NULL);
    fs_node_intern(fs, "/", plan->items[0].host); /* FUSE_ROOT_ID = 1, never freed */
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
    size_t w = fs->nstarted++; /* this worker's slot in fs->seen */
    pthread_mutex_unlock(&fs->park_lock);
    struct fuse_buf buf = {0};
    while (fs->fuse_fd >= 0 && !fuse_session_exited(fs->se)) {
        __atomic_store_n(&fs->seen[w], UINT64_MAX, __ATOMIC_SEQ_CST); /* idle: holds nothing */
        int r = fuse_session_receive_buf(fs->se, &buf);
        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0) { /* ENODEV: the sandbox is gone and its mount with it */
            fuse_session_exit(fs->se);
            break;
        }
        __atomic_store_n(&fs->seen[w], __atomic_load_n(&fs->epoch, __ATOMIC_SEQ_CST),
                         __ATOMIC_SEQ_CST);
        fuse_session_process_buf(fs->se, &buf);
    }
    __atomic_store_n(&fs->seen[w], UINT64_MAX, __ATOMIC_SEQ_CST);
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
    encfs_set_hostpath(e, fs->hp);
}

void fusefs_set_owner(struct fusefs* fs, uid_t uid, gid_t gid, bool foreign_unmapped) {
    fs->owner_uid        = uid;
    fs->owner_gid        = gid;
    fs->foreign_unmapped = foreign_unmapped;
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
    /* the file may be in an allowed directory: never written through a symlink there */
    int r = hostpath_write_atomic(fs->hp, path, sb.buf, sb.len, 0644, true, err);
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
        moat_log(LOG_LEVEL_DEBUG, "FUSE nodes: %zu live, %zu freed (at most %zu live at once)",
                 fs->nlive, fs->nfreed, fs->peak_live);
        strbuf_free(&sb);
    }
    if (fs->se) {
        fuse_session_unmount(fs->se);
        fuse_session_destroy(fs->se); /* closes the connection's fd */
    }
    pthread_mutex_destroy(&fs->park_lock);
    pthread_cond_destroy(&fs->park_cond);
    for (size_t i = 0; i < fs->nnodes; i++)
        if (fs->nodes[i])
            node_destroy(fs->nodes[i]);
    free(fs->nodes);
    free(fs->free_inos);
    free(fs->index);
    reclaim(fs, true); /* the workers have ended */
    free(fs->retired);
    for (size_t i = 0; i < fs->nlearned; i++)
        free(fs->learned[i].host_path);
    free(fs->learned);
    hostpath_free(fs->hp);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}
