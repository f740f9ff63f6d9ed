/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sgx.trusted_files expansion and hashing, as gramine-manifest does it
 * (reference/gramine.md §3, "Trusted-file expansion"): directory URIs end with '/' and are
 * expanded recursively in sorted order, non-regular and unreadable entries are skipped,
 * symlinked directories are not followed (symlinked files are kept and hashed through the
 * link), given sha256 values are kept, duplicates merged, hashes are lowercase hex.
 * Hashing runs on all cores.
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

struct tf_entry {
    char* uri;    /* "file:<path as written>" */
    char* host;   /* path to open on the host (chroot applied) */
    char* sha256; /* given or computed lowercase hex, or NULL */
};

struct tf_list {
    struct tf_entry* items;
    size_t n, cap;
    /* open-addressing index uri -> position, for merging duplicates */
    size_t* slots;
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

/* Adds (or merges) an entry; takes ownership of uri/host/sha256. */
static int tf_add(struct tf_list* l, char* uri, char* host, char* sha256, struct moat_error* err) {
    size_t* slot          = NULL;
    struct tf_entry* prev = tf_find(l, uri, &slot);
    if (prev) {
        int ret = 0;
        if (sha256 && prev->sha256 && strcmp(sha256, prev->sha256) != 0)
            ret = moat_error_set(err, -EINVAL,
                                 "trusted file '%s' is listed twice with different sha256 values "
                                 "(%s and %s)",
                                 uri, prev->sha256, sha256);
        else if (sha256 && !prev->sha256)
            prev->sha256 = TAKE_PTR(sha256);
        free(uri);
        free(host);
        free(sha256);
        return ret;
    }
    l->items         = xgrow(l->items, &l->cap, l->n + 1, sizeof(*l->items));
    *slot            = l->n;
    l->items[l->n++] = (struct tf_entry){uri, host, sha256};
    return 0;
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
/* Paths inside --chroot                                                                      */

/* Resolves `path` inside `root` (symlinks, '..' and absolute link targets stay inside root).
 * Returns root + resolved path; the last component is resolved too. */
static char* chroot_resolve(const char* root, const char* path) {
    char* todo = xstrdup(path);
    char* done = xstrdup("");
    int links  = 0;
    char* p    = todo;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char* end   = strchrnul(p, '/');
        size_t clen = (size_t)(end - p);
        if (clen == 1 && p[0] == '.') {
            p = end;
            continue;
        }
        if (clen == 2 && p[0] == '.' && p[1] == '.') {
            char* slash = strrchr(done, '/');
            if (slash)
                *slash = '\0';
            p = end;
            continue;
        }
        char* next = xasprintf("%s/%.*s", done, (int)clen, p);
        char* host = xasprintf("%s%s", root, next);
        char target[PATH_MAX];
        ssize_t tlen = readlink(host, target, sizeof(target) - 1);
        free(host);
        if (tlen > 0 && links++ < 40) {
            target[tlen] = '\0';
            char* rest   = xasprintf("%s%s", target, end);
            free(todo);
            todo = rest;
            p    = todo;
            if (target[0] == '/')
                done[0] = '\0';
            free(next);
            continue;
        }
        free(done);
        done = next;
        p    = end;
    }
    char* out = xasprintf("%s%s", root, done[0] ? done : "/");
    free(todo);
    free(done);
    return out;
}

static char* host_path(const struct trusted_opts* opts, const char* path) {
    if (!opts->chroot)
        return xstrdup(path);
    if (path[0] == '/')
        return chroot_resolve(opts->chroot, path);
    return path_join(opts->chroot, path);
}

/* ---------------------------------------------------------------------------------------- */
/* Expansion                                                                                  */

static int name_cmp(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

static bool readable(const char* host) {
    int fd = open(host, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Adds every regular file below directory `path` (as written, ends with '/'). */
static int expand_dir(struct tf_list* l, const char* path, const char* host,
                      const struct trusted_opts* opts, int depth, struct moat_error* err) {
    if (depth > 64)
        return moat_error_set(err, -ELOOP, "trusted directory '%s' is nested too deeply", path);
    DIR* d = opendir(host);
    if (!d)
        return 0; /* unreadable directories are skipped, as gramine-manifest does */
    size_t n = 0, cap = 0;
    char** names = NULL;
    struct dirent* de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        names      = xgrow(names, &cap, n + 1, sizeof(*names));
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);

    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        _cleanup_free_ char* child_host = path_join(host, names[i]);
        _cleanup_free_ char* child_path = xasprintf("%s%s", path, names[i]);
        struct stat lst, st;
        if (lstat(child_host, &lst) < 0)
            continue;
        if (S_ISLNK(lst.st_mode)) {
            /* a symlinked file is kept; a symlinked directory is not descended into */
            _cleanup_free_ char* target = host_path(opts, child_path);
            if (stat(opts->chroot ? target : child_host, &st) < 0 || !S_ISREG(st.st_mode))
                continue;
            if (readable(opts->chroot ? target : child_host))
                ret = tf_add(l, xasprintf("file:%s", child_path), TAKE_PTR(target), NULL, err);
        } else if (S_ISDIR(lst.st_mode)) {
            _cleanup_free_ char* sub = xasprintf("%s/", child_path);
            ret                      = expand_dir(l, sub, child_host, opts, depth + 1, err);
        } else if (S_ISREG(lst.st_mode) && readable(child_host)) {
            ret = tf_add(l, xasprintf("file:%s", child_path), TAKE_PTR(child_host), NULL, err);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ret;
}

static int add_uri(struct tf_list* l, const char* key, const char* uri, const char* sha256,
                   const struct trusted_opts* opts, struct moat_error* err) {
    if (strncmp(uri, "file:", 5) != 0)
        return moat_error_set(err, -EINVAL, "%s: URI '%s' must start with 'file:'", key, uri);
    const char* path = uri + 5;
    if (!*path)
        return moat_error_set(err, -EINVAL, "%s: URI '%s' has an empty path", key, uri);
    _cleanup_free_ char* host = host_path(opts, path);
    bool slash                = path[strlen(path) - 1] == '/';
    char* lower               = NULL;
    if (sha256) {
        lower = xstrdup(sha256);
        for (char* c = lower; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
    }
    /* a given hash is kept as is: the file is not even opened (it may only exist at run time) */
    if (lower && !slash)
        return tf_add(l, xstrdup(uri), TAKE_PTR(host), lower, err);
    free(lower);
    struct stat st;
    if (stat(host, &st) < 0) {
        if (errno == ENOTDIR && slash)
            return moat_error_set(err, -EINVAL, "URI '%s' ends with \"/\" but is not a directory",
                                  uri);
        return moat_error_set(err, -ENOENT, "Missing trusted file: '%s'", path);
    }
    if (slash) {
        if (!S_ISDIR(st.st_mode))
            return moat_error_set(err, -EINVAL, "URI '%s' ends with \"/\" but is not a directory",
                                  uri);
        if (sha256)
            return moat_error_set(err, -EINVAL,
                                  "%s: directory URI '%s' cannot have a sha256 (its files are "
                                  "hashed one by one)",
                                  key, uri);
        return expand_dir(l, path, host, opts, 0, err);
    }
    if (S_ISDIR(st.st_mode))
        return moat_error_set(err, -EINVAL, "Directory URI ('%s') does not end with \"/\"", uri);
    if (!S_ISREG(st.st_mode))
        return moat_error_set(err, -EINVAL, "trusted file '%s' is not a regular file", path);
    return tf_add(l, xstrdup(uri), TAKE_PTR(host), NULL, err);
}

static bool is_str(const struct toml_value* v) {
    return v && v->type == TOML_STRING && strlen(v->u.str.ptr) == v->u.str.len;
}

static int collect(const struct toml_value* tf, struct tf_list* l, const struct trusted_opts* opts,
                   struct moat_error* err) {
    for (size_t i = 0; i < tf->u.arr.len; i++) {
        const struct toml_value* e = tf->u.arr.items[i];
        _cleanup_free_ char* key   = xasprintf("sgx.trusted_files[%zu]", i);
        const struct toml_value* uri;
        const struct toml_value* sha256 = NULL;
        if (e->type == TOML_TABLE) {
            uri    = toml_table_get(e, "uri");
            sha256 = toml_table_get(e, "sha256");
            if (sha256 && (!is_str(sha256) || sha256->u.str.len != 64))
                return moat_error_set(err, -EINVAL, "%s.sha256 must be 64 hex digits", key);
        } else {
            uri = e;
        }
        if (!is_str(uri))
            return moat_error_set(err, -EINVAL, "%s must be a string or a { uri, sha256 } table",
                                  key);
        int ret = add_uri(l, key, uri->u.str.ptr, sha256 ? sha256->u.str.ptr : NULL, opts, err);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Parallel hashing                                                                           */

struct hash_job {
    const char* const* paths;
    size_t n;
    char (*hex)[SHA256_HEX_SIZE];
    atomic_size_t next;
    atomic_size_t done;
    atomic_ullong bytes;
    atomic_bool failed;
    pthread_mutex_t lock;
    struct moat_error* err;
};

static int hash_one(const char* path, char hex[SHA256_HEX_SIZE], uint8_t* buf, size_t bufsize,
                    unsigned long long* ret_bytes) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct sha256_ctx ctx;
    int ret                  = sha256_init(&ctx);
    unsigned long long total = 0;
    while (ret == 0) {
        ssize_t n = read(fd, buf, bufsize);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        total += (unsigned long long)n;
        ret = sha256_update(&ctx, buf, (size_t)n);
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    if (ret == 0)
        ret = sha256_final(&ctx, digest);
    sha256_ctx_free(&ctx);
    close(fd);
    if (ret == 0 && hex_encode(digest, sizeof(digest), hex, SHA256_HEX_SIZE) < 0)
        ret = -ENOBUFS;
    *ret_bytes = total;
    return ret;
}

static void* hash_worker(void* arg) {
    struct hash_job* job = arg;
    size_t bufsize       = 256 * 1024;
    uint8_t* buf         = xmalloc(bufsize);
    for (;;) {
        size_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n || atomic_load(&job->failed))
            break;
        unsigned long long bytes = 0;
        int ret                  = hash_one(job->paths[i], job->hex[i], buf, bufsize, &bytes);
        if (ret < 0) {
            pthread_mutex_lock(&job->lock);
            if (!atomic_exchange(&job->failed, true))
                moat_error_set(job->err, ret, "cannot hash trusted file '%s': %s", job->paths[i],
                               strerror(-ret));
            pthread_mutex_unlock(&job->lock);
            break;
        }
        atomic_fetch_add(&job->bytes, bytes);
        atomic_fetch_add(&job->done, 1);
    }
    free(buf);
    return NULL;
}

static void show_progress(struct hash_job* job, bool final) {
    if (final) {
        fprintf(stderr, "\r\033[K");
    } else {
        fprintf(stderr, "\rhashing trusted files: %zu/%zu files, %llu MB", atomic_load(&job->done),
                job->n, atomic_load(&job->bytes) >> 20);
    }
    fflush(stderr);
}

int hash_files_parallel(const char* const* paths, size_t n, char (*hex_out)[SHA256_HEX_SIZE],
                        const struct trusted_opts* opts, struct moat_error* err) {
    if (n == 0)
        return 0;
    struct hash_job job = {.paths = paths, .n = n, .hex = hex_out, .err = err};
    pthread_mutex_init(&job.lock, NULL);
    size_t nthreads = (size_t)(opts->threads > 0 ? opts->threads : cpu_count());
    if (nthreads > n)
        nthreads = n;
    if (nthreads > 64)
        nthreads = 64;
    pthread_t threads[64];
    size_t started = 0;
    for (size_t i = 0; i + 1 < nthreads; i++)
        if (pthread_create(&threads[started], NULL, hash_worker, &job) == 0)
            started++;

    bool tty = opts->progress && isatty(STDERR_FILENO);
    if (!tty) {
        hash_worker(&job); /* the calling thread works too */
    } else {
        /* one worker thread more, and this thread draws the progress bar after 1 s */
        pthread_t extra;
        bool have_extra = pthread_create(&extra, NULL, hash_worker, &job) == 0;
        uint64_t start  = time_now_ns();
        bool shown      = false;
        if (!have_extra)
            hash_worker(&job);
        while (atomic_load(&job.done) < n && !atomic_load(&job.failed) && have_extra) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (time_now_ns() - start > 1000000000ULL) {
                show_progress(&job, false);
                shown = true;
            }
        }
        if (have_extra)
            pthread_join(extra, NULL);
        if (shown)
            show_progress(&job, true);
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&job.lock);
    return atomic_load(&job.failed) ? (err->code ? err->code : -EIO) : 0;
}

/* ---------------------------------------------------------------------------------------- */

static int hash_entrypoint(struct toml_value* root, const struct trusted_opts* opts,
                           struct moat_error* err) {
    struct toml_value* ep = toml_get_path(root, "loader.entrypoint");
    if (!ep || ep->type != TOML_TABLE || toml_table_get(ep, "sha256"))
        return 0;
    const struct toml_value* uri = toml_table_get(ep, "uri");
    if (!is_str(uri))
        return 0;
    if (strncmp(uri->u.str.ptr, "file:", 5) != 0)
        return moat_error_set(err, -EINVAL,
                              "'loader.entrypoint.uri' is missing the 'file:' prefix");
    _cleanup_free_ char* host = host_path(opts, uri->u.str.ptr + 5);
    char hex[SHA256_HEX_SIZE];
    const char* paths[1]    = {host};
    struct trusted_opts one = *opts;
    one.progress            = false;
    int ret                 = hash_files_parallel(paths, 1, &hex, &one, err);
    if (ret < 0)
        return moat_error_prefix(err, "loader.entrypoint.uri");
    toml_table_set(ep, "sha256", toml_new_string(hex));
    return 0;
}

int manifest_expand_trusted_files(struct toml_value* root, const struct trusted_opts* opts,
                                  struct moat_error* err) {
    int ret = hash_entrypoint(root, opts, err);
    if (ret < 0)
        return ret;
    struct toml_value* sgx = toml_table_get(root, "sgx");
    struct toml_value* tf  = sgx ? toml_table_get(sgx, "trusted_files") : NULL;
    if (!tf)
        return 0;
    if (tf->type != TOML_ARRAY)
        return moat_error_set(err, -EINVAL,
                              "Unsupported trusted files syntax, more info: "
                              "https://gramine.readthedocs.io/en/latest/"
                              "manifest-syntax.html#trusted-files");

    struct tf_list l = {0};
    ret              = collect(tf, &l, opts, err);
    if (ret < 0)
        goto out;

    /* hash what has no given hash */
    size_t todo = 0;
    for (size_t i = 0; i < l.n; i++)
        todo += !l.items[i].sha256;
    const char** paths          = xcalloc(todo + 1, sizeof(*paths));
    char(*hex)[SHA256_HEX_SIZE] = xcalloc(todo + 1, SHA256_HEX_SIZE);
    size_t* which               = xcalloc(todo + 1, sizeof(*which));
    size_t k                    = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (!l.items[i].sha256) {
            paths[k]   = l.items[i].host;
            which[k++] = i;
        }
    }
    ret = hash_files_parallel(paths, todo, hex, opts, err);
    for (size_t j = 0; ret == 0 && j < todo; j++)
        l.items[which[j]].sha256 = xstrdup(hex[j]);
    free(paths);
    free(hex);
    free(which);
    if (ret < 0)
        goto out;

    struct toml_value* out = toml_new_array();
    for (size_t i = 0; i < l.n; i++) {
        struct toml_value* e = toml_new_table();
        toml_table_set(e, "uri", toml_new_string(l.items[i].uri));
        toml_table_set(e, "sha256", toml_new_string(l.items[i].sha256));
        toml_array_append(out, e);
    }
    toml_table_set(sgx, "trusted_files", out);
out:
    tf_free(&l);
    return ret;
}
