/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sgx.trusted_files expansion and hashing, as gramine-manifest does it (reference/gramine.md
 * §3, "Trusted-file expansion"; Gramine's python/graminelibos/manifest.py, TrustedFile and
 * Manifest.expand_all_trusted_files). Expansion is single-threaded and cheap (directory
 * listings); hashing, where the time goes, runs on a worker pool.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "trusted.h"

enum {
    HASH_BUF_SIZE = 256 * 1024, /* large sequential reads; the page cache does the rest */
    MAX_THREADS   = 256,
    MAX_DIR_DEPTH = 256, /* each level holds a directory fd open */
    MAX_SYMLINKS  = 256, /* per resolution inside --chroot */
};

/* ---------------------------------------------------------------------------------------- */
/* The expanded list: insertion order plus a URI index for merging duplicates                 */

struct tf_entry {
    char* uri;    /* as written for listed files, "file:" + expanded path for directory members */
    char* host;   /* what to open on this machine (--chroot applied) */
    char* sha256; /* given or computed, NULL until hashed */
    int stat_err; /* stat() failure of an unhashed listed file: reported only if no duplicate
                     supplies a hash, as gramine-manifest fails only when it opens the file */
};

struct tf_list {
    struct tf_entry* items;
    size_t n, cap;
    size_t* slots; /* open addressing, uri -> index; SIZE_MAX = empty */
    size_t nslots;
};

static uint64_t hash_str(const char* s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void index_rebuild(struct tf_list* l) {
    free(l->slots);
    l->nslots = 64;
    while (l->nslots < 2 * (l->n + 1))
        l->nslots *= 2;
    l->slots = xmalloc(l->nslots * sizeof(*l->slots));
    for (size_t i = 0; i < l->nslots; i++)
        l->slots[i] = SIZE_MAX;
    for (size_t i = 0; i < l->n; i++) {
        size_t s = hash_str(l->items[i].uri) & (l->nslots - 1);
        while (l->slots[s] != SIZE_MAX)
            s = (s + 1) & (l->nslots - 1);
        l->slots[s] = i;
    }
}

/* Returns the entry for uri, or NULL and the empty slot where it belongs. */
static struct tf_entry* tf_find(struct tf_list* l, const char* uri, size_t** ret_slot) {
    if (!l->slots || l->nslots < 2 * (l->n + 1))
        index_rebuild(l);
    size_t s = hash_str(uri) & (l->nslots - 1);
    while (l->slots[s] != SIZE_MAX) {
        if (strcmp(l->items[l->slots[s]].uri, uri) == 0)
            return &l->items[l->slots[s]];
        s = (s + 1) & (l->nslots - 1);
    }
    *ret_slot = &l->slots[s];
    return NULL;
}

/* Adds an entry, taking ownership of uri, host and sha256. Duplicates merge the way
 * expand_all_trusted_files does: a measured entry stays (a second, different hash is an
 * error); an unmeasured one is replaced by the newcomer, keeping its position. */
static int tf_add(struct tf_list* l, char* uri, char* host, char* sha256, int stat_err,
                  struct moat_error* err) {
    size_t* slot          = NULL;
    struct tf_entry* prev = tf_find(l, uri, &slot);
    if (!prev) {
        l->items         = xgrow(l->items, &l->cap, l->n + 1, sizeof(*l->items));
        *slot            = l->n;
        l->items[l->n++] = (struct tf_entry){uri, host, sha256, stat_err};
        return 0;
    }
    int ret = 0;
    if (prev->sha256) {
        if (sha256 && strcmp(sha256, prev->sha256) != 0)
            ret = moat_error_set(err, -EINVAL,
                                 "Two different sha256 values (%s and %s) for the same URI '%s'",
                                 prev->sha256, sha256, uri);
        free(host);
        free(sha256);
    } else {
        free(prev->host);
        prev->host     = host;
        prev->sha256   = sha256;
        prev->stat_err = stat_err;
    }
    free(uri);
    return ret;
}

static void tf_free(struct tf_list* l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].uri);
        free(l->items[i].host);
        free(l->items[i].sha256);
    }
    free(l->items);
    free(l->slots);
}

/* ---------------------------------------------------------------------------------------- */
/* Paths                                                                                      */

/* Python's str(PurePosixPath(p)), which is how gramine-manifest spells expanded paths:
 * repeated '/' collapsed, "." components and a trailing '/' dropped, ".." kept as is,
 * "" => "."; exactly two leading slashes stay (POSIX). */
static char* pure_path(const char* p) {
    size_t lead = strspn(p, "/");
    char* out   = xmalloc(strlen(p) + 2);
    size_t o    = 0;
    if (lead == 2)
        out[o++] = '/';
    if (lead > 0)
        out[o++] = '/';
    size_t root = o;
    for (const char* s = p + lead; *s; s += strspn(s, "/")) {
        size_t n = strcspn(s, "/");
        if (!(n == 1 && s[0] == '.')) {
            if (o > root)
                out[o++] = '/';
            memcpy(out + o, s, n);
            o += n;
        }
        s += n;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    return out;
}

/* pathlib's `dir / name` for a pure path: "." vanishes, "/" is not doubled. */
static char* child_path(const char* dir, const char* name) {
    if (strcmp(dir, ".") == 0)
        return xstrdup(name);
    return xasprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
}

/* Resolves the absolute `path` inside `root` like Gramine's resolve_symlinks(): every
 * component is looked up below root, absolute link targets restart at root and ".." stops at
 * "/", so the result never leaves root. The result is the path as seen inside root
 * ("/usr/lib/x"); missing components are kept (the caller's stat() reports them). */
static int chroot_resolve(const char* root, const char* path, char** ret_inner) {
    _cleanup_free_ char* todo           = xstrdup(path);
    _cleanup_strbuf_ struct strbuf done = STRBUF_INIT;
    strbuf_puts(&done, "");
    int links = 0;
    for (const char* p = todo; *(p += strspn(p, "/"));) {
        size_t n = strcspn(p, "/");
        if (n == 1 && p[0] == '.') {
            p += n;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            char* slash        = strrchr(done.buf, '/'); /* "/.." is "/" */
            done.len           = slash ? (size_t)(slash - done.buf) : 0;
            done.buf[done.len] = '\0';
            p += n;
            continue;
        }
        size_t parent = done.len;
        strbuf_putc(&done, '/');
        strbuf_append(&done, p, n);
        p += n;
        _cleanup_free_ char* host = xasprintf("%s%s", root, done.buf);
        char target[PATH_MAX];
        ssize_t tlen = readlink(host, target, sizeof(target) - 1);
        if (tlen <= 0)
            continue; /* not a symlink (or missing): a resolved component */
        if ((size_t)tlen >= sizeof(target) - 1)
            return -ENAMETOOLONG;
        if (++links > MAX_SYMLINKS)
            return -ELOOP;
        target[tlen]       = '\0';
        done.len           = target[0] == '/' ? 0 : parent;
        done.buf[done.len] = '\0';
        char* rest         = xasprintf("%s%s", target, p);
        free(todo);
        todo = rest;
        p    = todo;
    }
    *ret_inner = done.len ? strbuf_take(&done, NULL) : xstrdup("/");
    return 0;
}

struct expand {
    struct tf_list list;
    const char* root; /* --chroot without trailing '/' ("" for "/"), or NULL */
    struct moat_error* err;
};

static void expand_free(struct expand* x) {
    tf_free(&x->list);
}

/* Where the written path `path` (already pure) lives on this machine. *ret_prefix is how
 * directory members are spelled: the path itself, or inside --chroot the resolved path (as
 * TrustedFile.from_realpath derives member URIs from the resolved directory). */
static int locate(const struct expand* x, const char* key, const char* uri, const char* path,
                  char** ret_prefix, char** ret_host) {
    if (!x->root) {
        *ret_prefix = xstrdup(path);
        *ret_host   = xstrdup(path);
        return 0;
    }
    if (path[0] != '/')
        return moat_error_set(x->err, -EINVAL,
                              "%s: only absolute paths can be measured in chroot: '%s'", key, uri);
    char* inner = NULL;
    int ret     = chroot_resolve(x->root, path, &inner);
    if (ret < 0)
        return moat_error_set_errno(x->err, ret, "%s: cannot resolve '%s' inside chroot '%s'", key,
                                    uri, x->root[0] ? x->root : "/");
    *ret_host   = xasprintf("%s%s", x->root, inner);
    *ret_prefix = inner;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Expansion                                                                                  */

struct dir_name {
    char* name;
    unsigned char type; /* d_type */
};

static int dir_name_cmp(const void* a, const void* b) {
    /* Python's sorted() on sibling paths compares names; for UTF-8 that is byte order */
    return strcmp(((const struct dir_name*)a)->name, ((const struct dir_name*)b)->name);
}

static void closedirp(DIR** d) {
    if (*d)
        closedir(*d);
}

static size_t read_names(DIR* d, struct dir_name** ret_names) {
    struct dir_name* names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent* de; (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        names      = xgrow(names, &cap, n + 1, sizeof(*names));
        names[n++] = (struct dir_name){xstrdup(de->d_name), de->d_type};
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), dir_name_cmp);
    *ret_names = names;
    return n;
}

/* A symlink found while expanding: a link to a readable regular file is kept and hashed
 * through the link; anything else (links to directories included) is skipped. */
static int expand_link(struct expand* x, int dfd, const char* name, const char* path,
                       const char* host) {
    _cleanup_free_ char* target = NULL;
    struct stat st;
    if (x->root) {
        _cleanup_free_ char* inner = NULL;
        if (chroot_resolve(x->root, path, &inner) < 0)
            return 0; /* a loop is as good as a dangling link */
        target = xasprintf("%s%s", x->root, inner);
        if (stat(target, &st) < 0 || !S_ISREG(st.st_mode) ||
            faccessat(AT_FDCWD, target, R_OK, AT_EACCESS) < 0)
            return 0;
    } else {
        if (fstatat(dfd, name, &st, 0) < 0 || !S_ISREG(st.st_mode) ||
            faccessat(dfd, name, R_OK, AT_EACCESS) < 0)
            return 0;
        target = xstrdup(host);
    }
    return tf_add(&x->list, xasprintf("file:%s", path), TAKE_PTR(target), NULL, 0, x->err);
}

/* Adds every readable regular file below the directory spelled `dir` (pure path) at `host`,
 * in TrustedFile.expand_directory's order: sorted names, depth first. Unreadable directories
 * and entries that are neither files nor directories are skipped. */
static int expand_dir(struct expand* x, const char* dir, const char* host, int depth) {
    if (depth > MAX_DIR_DEPTH)
        return moat_error_set(x->err, -ELOOP, "trusted directory '%s' is nested too deeply", dir);
    _cleanup_(closedirp) DIR* d = opendir(host);
    if (!d)
        return 0;
    struct dir_name* names = NULL;
    size_t n               = read_names(d, &names);
    int dfd                = dirfd(d);
    int ret                = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        const char* name               = names[i].name;
        _cleanup_free_ char* path      = child_path(dir, name);
        _cleanup_free_ char* host_path = child_path(host, name);
        unsigned char type             = names[i].type;
        struct stat st;
        if (type == DT_UNKNOWN) {
            if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            type = S_ISDIR(st.st_mode)   ? DT_DIR
                   : S_ISREG(st.st_mode) ? DT_REG
                   : S_ISLNK(st.st_mode) ? DT_LNK
                                         : DT_UNKNOWN;
        }
        if (type == DT_DIR)
            ret = expand_dir(x, path, host_path, depth + 1);
        else if (type == DT_LNK)
            ret = expand_link(x, dfd, name, path, host_path);
        else if (type == DT_REG && faccessat(dfd, name, R_OK, AT_EACCESS) == 0)
            ret =
                tf_add(&x->list, xasprintf("file:%s", path), TAKE_PTR(host_path), NULL, 0, x->err);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i].name);
    free(names);
    return ret;
}

static bool is_str(const struct toml_value* v) {
    return v && v->type == TOML_STRING && strlen(v->u.str.ptr) == v->u.str.len;
}

static bool is_sha256_hex(const struct toml_value* v) {
    if (!is_str(v) || v->u.str.len != 2 * SHA256_DIGEST_SIZE)
        return false;
    return strspn(v->u.str.ptr, "0123456789abcdefABCDEF") == v->u.str.len;
}

/* One sgx.trusted_files entry (TrustedFile.expand_directory, same checks in the same order).
 * A given sha256 is kept verbatim and the file need not exist. */
static int add_entry(struct expand* x, const char* key, const char* uri, const char* sha256) {
    if (strncmp(uri, "file:", 5) != 0)
        return moat_error_set(x->err, -EINVAL, "%s: Unsupported URI type: %s", key, uri);
    _cleanup_free_ char* path   = pure_path(uri + 5);
    _cleanup_free_ char* prefix = NULL;
    _cleanup_free_ char* host   = NULL;
    int ret                     = locate(x, key, uri, path, &prefix, &host);
    if (ret < 0)
        return ret;
    struct stat st;
    int stat_err = stat(host, &st) < 0 ? -errno : 0;
    bool is_dir  = stat_err == 0 && S_ISDIR(st.st_mode);
    if (uri[strlen(uri) - 1] == '/') {
        if (!is_dir)
            return moat_error_set(x->err, -EINVAL,
                                  "URI '%s' ends with \"/\" but is not a directory", uri);
        if (sha256)
            return moat_error_set(x->err, -EINVAL, "Directory URI ('%s') has sha256 specified",
                                  uri);
        return expand_dir(x, prefix, host, 0);
    }
    if (is_dir)
        return moat_error_set(x->err, -EINVAL, "Directory URI ('%s') does not end with \"/\"", uri);
    if (!sha256 && stat_err == 0 && !S_ISREG(st.st_mode))
        return moat_error_set(x->err, -EINVAL, "trusted file '%s' is not a regular file", uri + 5);
    return tf_add(&x->list, xstrdup(uri), TAKE_PTR(host), sha256 ? xstrdup(sha256) : NULL,
                  sha256 ? 0 : stat_err, x->err);
}

/* A string "file:..." or a { uri = "file:...", sha256 = "..." } table. */
static int add_value(struct expand* x, const char* key, const struct toml_value* e) {
    if (is_str(e))
        return add_entry(x, key, e->u.str.ptr, NULL);
    if (!e || e->type != TOML_TABLE)
        return moat_error_set(x->err, -EINVAL,
                              "%s: Unknown trusted file format (expected a string or a { uri, "
                              "sha256 } table)",
                              key);
    const struct toml_value* uri    = toml_table_get(e, "uri");
    const struct toml_value* sha256 = toml_table_get(e, "sha256");
    for (size_t i = 0; i < e->u.tab.len; i++) {
        const char* name = e->u.tab.items[i].key;
        if (strcmp(name, "uri") != 0 && strcmp(name, "sha256") != 0)
            return moat_error_set(x->err, -EINVAL, "%s: Leftover trusted file items: '%s'", key,
                                  name);
    }
    if (!is_str(uri))
        return moat_error_set(x->err, -EINVAL, "%s.uri must be a string", key);
    if (sha256 && !is_sha256_hex(sha256))
        return moat_error_set(x->err, -EINVAL, "%s.sha256 must be 64 hex digits", key);
    return add_entry(x, key, uri->u.str.ptr, sha256 ? sha256->u.str.ptr : NULL);
}

/* The array form, or the Graphene-era table form sgx.trusted_files.<id> (converted: its
 * values in key order). */
static int collect(struct expand* x, const struct toml_value* tf) {
    bool table = tf->type == TOML_TABLE;
    size_t n   = table ? tf->u.tab.len : tf->u.arr.len;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char* key = table ? xasprintf("sgx.trusted_files.%s", tf->u.tab.items[i].key)
                                         : xasprintf("sgx.trusted_files[%zu]", i);
        int ret = add_value(x, key, table ? tf->u.tab.items[i].value : tf->u.arr.items[i]);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* The first listed file that could not be stat()ed and got no hash from a duplicate. */
static int report_missing(const struct expand* x) {
    for (size_t i = 0; i < x->list.n; i++) {
        const struct tf_entry* e = &x->list.items[i];
        if (e->sha256 || e->stat_err == 0)
            continue;
        if (e->stat_err == -ENOENT || e->stat_err == -ENOTDIR)
            return moat_error_set(x->err, -ENOENT, "Missing trusted file: '%s'", e->uri + 5);
        return moat_error_set_errno(x->err, e->stat_err, "cannot access trusted file '%s'",
                                    e->uri + 5);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Parallel hashing                                                                           */

struct hash_pool {
    const char* const* paths;
    size_t n;
    char (*hex)[SHA256_HEX_SIZE];
    atomic_size_t next;  /* next index to take: work is handed out one file at a time */
    atomic_size_t done;  /* files hashed, for the progress bar */
    atomic_ullong bytes; /* bytes hashed, for the progress bar */
    atomic_bool failed;
    pthread_mutex_t lock; /* guards the fields below and *err */
    pthread_cond_t cond;  /* signalled when a worker thread exits */
    size_t running;
    size_t fail_index;
    int fail_code;
    struct moat_error* err;
};

static int hash_one(struct hash_pool* pool, const char* path, char hex[SHA256_HEX_SIZE],
                    uint8_t* buf) {
    /* O_NONBLOCK: a FIFO swapped in for a file must fail, not hang */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct sha256_ctx ctx;
    int ret = sha256_init(&ctx);
    if (ret < 0)
        return ret;
    for (;;) {
        ssize_t n = read(fd, buf, HASH_BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -errno : 0;
            break;
        }
        atomic_fetch_add_explicit(&pool->bytes, (unsigned long long)n, memory_order_relaxed);
        ret = sha256_update(&ctx, buf, (size_t)n);
        if (ret < 0)
            break;
    }
    if (ret < 0) {
        sha256_ctx_free(&ctx);
        return ret;
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    ret = sha256_final(&ctx, digest);
    if (ret == 0 && hex_encode(digest, sizeof(digest), hex, SHA256_HEX_SIZE) < 0)
        ret = -ENOBUFS;
    return ret;
}

/* Keeps the failure of the lowest index seen, so that the report does not depend on timing
 * more than it must. */
static void hash_failed(struct hash_pool* pool, size_t i, int code) {
    pthread_mutex_lock(&pool->lock);
    if (!atomic_load(&pool->failed) || i < pool->fail_index) {
        pool->fail_index = i;
        pool->fail_code  = code;
        if (code == -ENOENT)
            moat_error_set(pool->err, code, "Missing trusted file: '%s'", pool->paths[i]);
        else if (code == -EINVAL)
            moat_error_set(pool->err, code, "cannot hash trusted file '%s': not a regular file",
                           pool->paths[i]);
        else
            moat_error_set_errno(pool->err, code, "cannot hash trusted file '%s'", pool->paths[i]);
        atomic_store(&pool->failed, true);
    }
    pthread_mutex_unlock(&pool->lock);
}

static void hash_work(struct hash_pool* pool) {
    _cleanup_free_ uint8_t* buf = xmalloc(HASH_BUF_SIZE);
    while (!atomic_load_explicit(&pool->failed, memory_order_relaxed)) {
        size_t i = atomic_fetch_add(&pool->next, 1);
        if (i >= pool->n)
            break;
        int ret = hash_one(pool, pool->paths[i], pool->hex[i], buf);
        if (ret < 0) {
            hash_failed(pool, i, ret);
            break;
        }
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_relaxed);
    }
}

static void* hash_thread(void* arg) {
    struct hash_pool* pool = arg;
    hash_work(pool);
    pthread_mutex_lock(&pool->lock);
    pool->running--;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static unsigned long long total_bytes(const struct hash_pool* pool) {
    unsigned long long total = 0;
    for (size_t i = 0; i < pool->n; i++) {
        struct stat st;
        if (stat(pool->paths[i], &st) == 0)
            total += (unsigned long long)st.st_size;
    }
    return total;
}

static void timespec_add_ms(struct timespec* ts, long ms) {
    ts->tv_nsec += ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

/* Runs on the calling thread while the workers hash: after 1 s, one updating line on stderr
 * (the only output of this library), cleared once the workers are done. */
static void watch_progress(struct hash_pool* pool) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    timespec_add_ms(&deadline, 1000);
    unsigned long long total_mb = 0;
    bool shown                  = false;
    pthread_mutex_lock(&pool->lock);
    while (pool->running > 0) {
        if (pthread_cond_timedwait(&pool->cond, &pool->lock, &deadline) != ETIMEDOUT ||
            pool->running == 0)
            continue;
        pthread_mutex_unlock(&pool->lock);
        if (!shown)
            total_mb = total_bytes(pool) >> 20;
        shown = true;
        fprintf(stderr, "\rhashing trusted files: %zu/%zu files, %llu/%llu MB",
                atomic_load(&pool->done), pool->n, atomic_load(&pool->bytes) >> 20, total_mb);
        fflush(stderr);
        clock_gettime(CLOCK_MONOTONIC, &deadline); /* from now: stat()ing the list takes time */
        timespec_add_ms(&deadline, 200);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    if (shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

int hash_files_parallel(const char* const* paths, size_t n, char (*hex_out)[SHA256_HEX_SIZE],
                        const struct trusted_opts* opts, struct moat_error* err) {
    if (n == 0)
        return 0;
    size_t want = (size_t)(opts && opts->threads > 0 ? opts->threads : cpu_count());
    want        = want > n ? n : want > MAX_THREADS ? MAX_THREADS : want;
    /* with a progress bar the calling thread only draws it; otherwise it hashes too */
    bool progress = opts && opts->progress && isatty(STDERR_FILENO);
    size_t spawn  = progress ? want : want - 1;

    struct hash_pool pool = {.paths = paths, .n = n, .hex = hex_out, .err = err};
    pthread_mutex_init(&pool.lock, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.cond, &cattr);
    pthread_condattr_destroy(&cattr);

    _cleanup_free_ pthread_t* tids = xcalloc(spawn + 1, sizeof(*tids));
    size_t started                 = 0;
    for (; started < spawn; started++) {
        pthread_mutex_lock(&pool.lock);
        pool.running++;
        pthread_mutex_unlock(&pool.lock);
        if (pthread_create(&tids[started], NULL, hash_thread, &pool) != 0) {
            pthread_mutex_lock(&pool.lock);
            pool.running--;
            pthread_mutex_unlock(&pool.lock);
            break;
        }
    }
    if (progress && started > 0)
        watch_progress(&pool);
    else
        hash_work(&pool); /* also the fallback when no thread could be started */
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_cond_destroy(&pool.cond);
    pthread_mutex_destroy(&pool.lock);
    return atomic_load(&pool.failed) ? pool.fail_code : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The manifest                                                                               */

/* loader.entrypoint = { uri = "file:..." } gets its sha256 unless it has one. */
static int hash_entrypoint(struct toml_value* root, struct expand* x,
                           const struct trusted_opts* opts) {
    static const char key[]       = "loader.entrypoint.uri";
    struct toml_value* ep         = toml_get_path(root, "loader.entrypoint");
    const struct toml_value* uriv = ep ? toml_table_get(ep, "uri") : NULL;
    if (!is_str(uriv) || toml_table_get(ep, "sha256"))
        return 0; /* absent or malformed: the schema check reports it */
    const char* uri = uriv->u.str.ptr;
    if (strncmp(uri, "file:", 5) != 0)
        return moat_error_set(x->err, -EINVAL, "%s: Unsupported URI type: %s", key, uri);
    _cleanup_free_ char* path   = pure_path(uri + 5);
    _cleanup_free_ char* prefix = NULL;
    _cleanup_free_ char* host   = NULL;
    int ret                     = locate(x, key, uri, path, &prefix, &host);
    if (ret < 0)
        return ret;
    struct stat st;
    if (stat(host, &st) < 0)
        return moat_error_set(x->err, -ENOENT, "%s: Missing trusted file: '%s'", key, uri + 5);
    if (!S_ISREG(st.st_mode))
        return moat_error_set(x->err, -EINVAL, "%s: '%s' is not a regular file", key, uri + 5);
    char hex[1][SHA256_HEX_SIZE];
    const char* paths[1]    = {host};
    struct trusted_opts one = {.threads = 1, .progress = false, .chroot = opts->chroot};
    ret                     = hash_files_parallel(paths, 1, hex, &one, x->err);
    if (ret < 0)
        return moat_error_prefix(x->err, "%s", key);
    toml_table_set(ep, "sha256", toml_new_string(hex[0]));
    return 0;
}

/* Hashes every entry without a hash, all at once. */
static int hash_pending(struct expand* x, const struct trusted_opts* opts) {
    size_t todo = 0;
    for (size_t i = 0; i < x->list.n; i++)
        todo += !x->list.items[i].sha256;
    _cleanup_free_ const char** paths          = xcalloc(todo + 1, sizeof(*paths));
    _cleanup_free_ size_t* which               = xcalloc(todo + 1, sizeof(*which));
    _cleanup_free_ char(*hex)[SHA256_HEX_SIZE] = xcalloc(todo + 1, SHA256_HEX_SIZE);
    size_t k                                   = 0;
    for (size_t i = 0; i < x->list.n; i++) {
        if (!x->list.items[i].sha256) {
            paths[k]   = x->list.items[i].host;
            which[k++] = i;
        }
    }
    int ret = hash_files_parallel(paths, todo, hex, opts, x->err);
    for (size_t j = 0; ret == 0 && j < todo; j++)
        x->list.items[which[j]].sha256 = xstrdup(hex[j]);
    return ret;
}

int manifest_expand_trusted_files(struct toml_value* root, const struct trusted_opts* opts,
                                  struct moat_error* err) {
    static const struct trusted_opts no_opts = {0};
    if (!opts)
        opts = &no_opts;
    _cleanup_free_ char* croot = NULL;
    if (opts->chroot) {
        size_t len = strlen(opts->chroot);
        while (len > 0 && opts->chroot[len - 1] == '/')
            len--;
        croot = xstrndup(opts->chroot, len);
    }
    _cleanup_(expand_free) struct expand x = {.root = croot, .err = err};

    int ret = hash_entrypoint(root, &x, opts);
    if (ret < 0)
        return ret;
    struct toml_value* sgx = toml_get_path(root, "sgx");
    struct toml_value* tf  = sgx ? toml_table_get(sgx, "trusted_files") : NULL;
    if (!tf)
        return 0;
    if (tf->type != TOML_ARRAY && tf->type != TOML_TABLE)
        return moat_error_set(err, -EINVAL,
                              "Unsupported trusted files syntax, more info: "
                              "https://gramine.readthedocs.io/en/latest/"
                              "manifest-syntax.html#trusted-files");
    ret = collect(&x, tf);
    if (ret == 0)
        ret = report_missing(&x);
    if (ret == 0)
        ret = hash_pending(&x, opts);
    if (ret < 0)
        return ret;

    struct toml_value* out = toml_new_array();
    for (size_t i = 0; i < x.list.n; i++) {
        struct toml_value* e = toml_new_table();
        toml_table_set(e, "uri", toml_new_string(x.list.items[i].uri));
        toml_table_set(e, "sha256", toml_new_string(x.list.items[i].sha256));
        toml_array_append(out, e);
    }
    toml_table_set(sgx, "trusted_files", out);
    return 0;
}
