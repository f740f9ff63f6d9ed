/* SPDX-License-Identifier: Apache-2.0 */
/* Verification of trusted files: see verify.h. */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#include "hostpath.h"
#include "vcache.h"
#include "verify.h"

#define CHUNK_SIZE  (16 * 1024)           /* TRUSTED_CHUNK_SIZE = 4 pages */
#define BLOCK_SIZE  (16 * CHUNK_SIZE)     /* read and hashed at once */
#define COPY_BUDGET (1024L * 1024 * 1024) /* all verified copies together */
#define NLOCKS      64

/* What hashing one host file produced; a verdict only once compared with the manifest. */
struct hashed {
    int err; /* 0, or -errno: no verdict (the file could not be read) */
    uint8_t digest[SHA256_DIGEST_SIZE];
    off_t size;
    int copy;              /* sealed memfd, or -1 */
    uint8_t (*chunks)[16]; /* or chunk tags */
    uint32_t tag_id;
    bool cached; /* digest from the verify cache (the bytes were read, not hashed) */
};

/* One line of the order file: hashed by the prefetcher (under `lock`), or by the first open
 * when the prefetcher has not reached it. */
struct prefetched {
    const char* path;
    pthread_mutex_t lock;
    bool done, adopted;
    struct hashed h;
};

struct verifier {
    const struct file_policy* policy;
    struct vfile* files; /* parallel to policy->trusted */
    pthread_mutex_t locks[NLOCKS];
    uint8_t mac_key[16]; /* chunk tags (never leaves the process) */
    size_t copy_max, copy_bytes;
    uint32_t next_order, next_tag_id;
    /* the prefetcher */
    pthread_t thread;
    bool prefetching, stop;
    char* hints;      /* the order file's text, split into the lines `pre` points to */
    char* hints_text; /* ... and as read */
    struct prefetched* pre;
    size_t npre;
    struct vcache* cache; /* NULL: every file is hashed */
    /* statistics */
    size_t hashed, prefetched, cached;
    uint64_t hash_ns, wait_ns;
};

struct verifier* verifier_new(size_t copy_max) {
    struct verifier* v = xcalloc(1, sizeof(*v));
    /* the kernel's CSPRNG directly: OpenSSL's first use costs ~2 ms, paid by the prefetcher */
    if (getrandom(v->mac_key, sizeof(v->mac_key), 0) != (ssize_t)sizeof(v->mac_key))
        abort(); /* no randomness: nothing can be verified safely */
    v->copy_max = copy_max;
    for (size_t i = 0; i < NLOCKS; i++)
        pthread_mutex_init(&v->locks[i], NULL);
    return v;
}

static size_t index_of(const struct verifier* v, const struct trusted_entry* t) {
    return (size_t)(t - v->policy->trusted);
}

static pthread_mutex_t* lock_of(struct verifier* v, size_t i) {
    return &v->locks[i % NLOCKS];
}

/* ---------------------------------------------------------------------------------------- */
/* Hashing                                                                                    */

/* AES-128-GCM, fetched once for the process: an implicit fetch per chunk would cost more than
 * the tag itself. */
static EVP_CIPHER* g_gcm;
static pthread_once_t g_gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void) {
    g_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
}

/* Chunk tags: AES-128-GMAC under a key drawn at start-up, with a per-hashing id and the chunk
 * number as IV (never reused under the key). A tag cannot be forged without the key, so a
 * chunk whose host bytes changed after the whole-file check is caught; GMAC costs a fraction
 * of SHA-256. */
static int chunk_tag(const struct verifier* v, uint32_t tag_id, size_t chunk, const uint8_t* buf,
                     size_t len, uint8_t out[16]) {
    uint8_t iv[12];
    uint64_t c = chunk;
    memcpy(iv, &tag_id, 4);
    memcpy(iv + 4, &c, 8);
    pthread_once(&g_gcm_once, gcm_fetch);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int outl, ok = ctx && g_gcm && EVP_EncryptInit_ex(ctx, g_gcm, NULL, v->mac_key, iv) &&
                   EVP_EncryptUpdate(ctx, NULL, &outl, buf, (int)len) &&
                   EVP_EncryptFinal_ex(ctx, NULL, &outl) &&
                   EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

static void hashed_discard(struct verifier* v, struct hashed* h) {
    if (h->copy >= 0) {
        close(h->copy);
        __atomic_sub_fetch(&v->copy_bytes, (size_t)h->size, __ATOMIC_RELAXED);
    }
    free(h->chunks);
    h->copy   = -1;
    h->chunks = NULL;
}

/* What the verify cache says about the file open as `fd`, before it is read: *hit with the
 * digest it stored, or whether a verdict from this reading may be stored (*settled). */
struct cache_probe {
    bool keyed, hit, settled;
    struct vcache_key key;
    uint8_t digest[SHA256_DIGEST_SIZE];
    const char* why;   /* no hit: why */
    const char* unfit; /* no store: why (NULL: not needed or stored) */
};

static void cache_probe(struct verifier* v, int fd, struct cache_probe* p) {
    *p = (struct cache_probe){.why = "the verify cache is off"};
    if (!v->cache)
        return;
    p->keyed = vcache_key_of(fd, &p->key, &p->why) == 0;
    p->hit   = p->keyed && vcache_lookup(v->cache, &p->key, p->digest, &p->why);
    /* judged before the bytes are read: a write from now on gets another ctime */
    p->settled = p->keyed && !p->hit && vcache_settled(fd, &p->key, &p->unfit);
}

/* True if the identity of `fd` is still the one probed (the bytes read are those it names). */
static bool cache_unchanged(int fd, const struct cache_probe* p) {
    struct vcache_key now;
    const char* why;
    return p->keyed && vcache_key_of(fd, &now, &why) == 0 && !memcmp(&now, &p->key, sizeof(now));
}

/* SHA-256 of the host file at `path`, keeping its bytes in a sealed memfd (up to copy_max) or
 * a tag per chunk. With `use_cache`, a digest the verify cache holds for the file's identity
 * replaces the SHA-256: the bytes are still read into the copy (or tagged) and the identity
 * is checked again after the last byte was read, so what the app gets is what the verdict
 * was about. */
static void hash_file_ex(struct verifier* v, const char* path, struct hashed* h, bool use_cache) {
    uint64_t start = time_now_ns();
    *h             = (struct hashed){.copy = -1};
    int fd         = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        h->err = fd < 0 || S_ISREG(st.st_mode) ? -errno : -EACCES;
        if (fd >= 0)
            close(fd);
        return;
    }
    struct cache_probe probe = {.why = "the cached digest is not the manifest's"};
    if (use_cache)
        cache_probe(v, fd, &probe);
    size_t size = (size_t)st.st_size;
    bool keep   = size <= v->copy_max &&
                __atomic_add_fetch(&v->copy_bytes, size, __ATOMIC_RELAXED) <= COPY_BUDGET;
    if (!keep && size <= v->copy_max)
        __atomic_sub_fetch(&v->copy_bytes, size, __ATOMIC_RELAXED);
    h->size   = (off_t)size;
    h->tag_id = __atomic_add_fetch(&v->next_tag_id, 1, __ATOMIC_RELAXED);
    if (keep && (h->copy = memfd_create("moat-trusted", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0) {
        h->err = -errno;
        __atomic_sub_fetch(&v->copy_bytes, size, __ATOMIC_RELAXED);
        close(fd);
        return;
    }
    size_t nchunks = (size + CHUNK_SIZE - 1) / CHUNK_SIZE;
    if (!keep)
        h->chunks = xcalloc(nchunks + 1, 16);
    uint8_t* buf          = xmalloc(BLOCK_SIZE);
    struct sha256_ctx ctx = {0};
    int r                 = probe.hit ? 0 : sha256_init(&ctx);
    size_t done           = 0;
    /* a hit needs the bytes in the copy, not in moat: the kernel copies them (one copy, not
     * read() and write()'s two) */
    for (off_t in = 0; r == 0 && probe.hit && keep && done < size; done = (size_t)in) {
        ssize_t n = sendfile(h->copy, fd, &in, size - done);
        if (n <= 0)
            r = n < 0 ? -errno : -EIO; /* shorter than at fstat: changed while read */
    }
    for (size_t off = done; r == 0 && off < size; off += BLOCK_SIZE) {
        size_t want = size - off < BLOCK_SIZE ? size - off : BLOCK_SIZE;
        ssize_t got = read_full(fd, buf, want);
        if (got != (ssize_t)want) {
            r = got < 0 ? (int)got : -EIO; /* shorter than at fstat: changed while hashed */
            break;
        }
        if (!probe.hit)
            r = sha256_update(&ctx, buf, want);
        for (size_t c = 0; r == 0 && !keep && c * CHUNK_SIZE < want; c++) {
            size_t clen = want - c * CHUNK_SIZE < CHUNK_SIZE ? want - c * CHUNK_SIZE : CHUNK_SIZE;
            r           = chunk_tag(v, h->tag_id, off / CHUNK_SIZE + c, buf + c * CHUNK_SIZE, clen,
                                    h->chunks[off / CHUNK_SIZE + c]);
        }
        if (r == 0 && keep)
            r = write_all(h->copy, buf, want);
    }
    if (r == 0 && probe.hit)
        memcpy(h->digest, probe.digest, sizeof(h->digest));
    else if (r == 0)
        r = sha256_final(&ctx, h->digest);
    else if (ctx.md)
        sha256_ctx_free(&ctx);
    if (r == 0 && keep &&
        fcntl(h->copy, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        r = -errno;
    free(buf);
    bool unchanged = r == 0 && (probe.hit || probe.settled) && cache_unchanged(fd, &probe);
    close(fd);
    if (r < 0) {
        /* a read error or a file that changed while it was hashed: it cannot be verified */
        hashed_discard(v, h);
        memset(h->digest, 0, sizeof(h->digest));
    }
    if (probe.hit && !unchanged) {
        /* changed while it was copied: the bytes are not those the entry names */
        moat_log(LOG_LEVEL_DEBUG, "verify cache: '%s' changed while it was read: verified", path);
        hashed_discard(v, h);
        hash_file_ex(v, path, h, false);
        return;
    }
    h->cached = probe.hit;
    if (probe.hit) {
        moat_log(LOG_LEVEL_DEBUG, "verify cache: '%s' cached (identity unchanged)", path);
        __atomic_add_fetch(&v->cached, 1, __ATOMIC_RELAXED);
    } else {
        if (unchanged)
            vcache_store(v->cache, &probe.key, h->digest);
        else if (probe.settled)
            probe.unfit = "changed while it was hashed";
        moat_log(LOG_LEVEL_DEBUG, "verify cache: '%s' verified: %s%s%s%s", path,
                 r < 0 ? "it could not be read whole" : probe.why,
                 probe.unfit ? " (not stored: " : "", probe.unfit ? probe.unfit : "",
                 probe.unfit ? ")" : "");
    }
    __atomic_add_fetch(&v->hashed, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&v->hash_ns, time_now_ns() - start, __ATOMIC_RELAXED);
}

static void hash_file(struct verifier* v, const char* path, struct hashed* h) {
    hash_file_ex(v, path, h, true);
}

/* The verdict on file i from a hash: its state becomes VF_OK (taking the copy or tags) or
 * VF_BAD. Called with the file's lock held. */
static int adopt(struct verifier* v, size_t i, struct hashed* h) {
    const struct trusted_entry* t = &v->policy->trusted[i];
    struct vfile* f               = &v->files[i];
    bool ok                       = h->err == 0 && (h->copy >= 0 || h->chunks || h->size == 0) &&
              CRYPTO_memcmp(h->digest, t->sha256, SHA256_DIGEST_SIZE) == 0;
    if (!ok) {
        moat_log(LOG_LEVEL_WARNING,
                 "Hash of trusted file '%s' does not match with the reference hash in manifest",
                 t->uri ? t->uri : t->path);
        hashed_discard(v, h);
        f->state = VF_BAD;
        return -EPERM;
    }
    f->size   = h->size;
    f->copy   = h->copy;
    f->chunks = h->chunks;
    f->tag_id = h->tag_id;
    h->copy   = -1;
    h->chunks = NULL;
    f->state  = VF_OK;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The manifest's files                                                                       */

void verifier_use_cache(struct verifier* v, bool on) {
    struct moat_error err = {0};
    if (!on) {
        moat_log(LOG_LEVEL_DEBUG,
                 "verify cache: off (--no-verify-cache or "
                 "moat.verify_cache = false): every trusted file is hashed");
        return;
    }
    v->cache = vcache_open(&err);
    if (!v->cache) {
        /* a directory someone else owns or could write is refused, loudly */
        moat_log(err.code == -EPERM ? LOG_LEVEL_WARNING : LOG_LEVEL_DEBUG,
                 "verify cache: not used: %s", err.msg);
        return;
    }
    /* vcache_settled's read lease: a writer opening the file right then breaks it, and the
     * break notification (SIGIO, whose default action is to terminate) must not kill moat.
     * The sandbox's processes were cloned before this */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGIO, &ign, NULL);
}

void verifier_set_policy(struct verifier* v, const struct file_policy* policy) {
    v->policy = policy;
    v->files  = xcalloc(policy->ntrusted ? policy->ntrusted : 1, sizeof(*v->files));
    for (size_t i = 0; i < policy->ntrusted; i++)
        v->files[i].copy = -1;
    for (size_t k = 0; k < v->npre; k++) {
        const struct trusted_entry* t;
        if (file_policy_classify(policy, v->pre[k].path, &t) == FILE_TRUSTED)
            v->files[index_of(v, t)].pre = &v->pre[k];
    }
}

int verifier_open(struct verifier* v, const struct trusted_entry* t, struct vfile** ret) {
    size_t i        = index_of(v, t);
    struct vfile* f = &v->files[i];
    uint64_t start  = time_now_ns();
    int r           = 0;
    pthread_mutex_lock(lock_of(v, i));
    if (f->state == VF_BAD) {
        r = -EPERM;
    } else if (f->state == VF_UNCHECKED) {
        struct prefetched* p = f->pre;
        struct hashed fresh;
        struct hashed* h = &fresh;
        if (p) {
            pthread_mutex_lock(&p->lock); /* waits while the prefetcher hashes it */
            if (!p->done || p->h.err) {   /* not reached, or could not read it then */
                hashed_discard(v, &p->h);
                hash_file(v, t->path, &p->h);
                p->done = true;
            }
            p->adopted = true;
            h          = &p->h;
        } else {
            hash_file(v, t->path, &fresh);
        }
        if (!h->err && h->cached && CRYPTO_memcmp(h->digest, t->sha256, SHA256_DIGEST_SIZE) != 0) {
            /* the entry names other bytes than the manifest (an old manifest, or a corrupt
             * entry): only a hash may condemn a file */
            hashed_discard(v, h);
            hash_file_ex(v, t->path, h, false);
        }
        r = h->err ? h->err : adopt(v, i, h); /* an unreadable file gets no verdict */
        if (h->err)
            hashed_discard(v, h);
        if (p)
            pthread_mutex_unlock(&p->lock);
    }
    if (r == 0 && !f->order)
        f->order = __atomic_add_fetch(&v->next_order, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(lock_of(v, i));
    __atomic_add_fetch(&v->wait_ns, time_now_ns() - start, __ATOMIC_RELAXED);
    *ret = f;
    return r;
}

void verifier_locked(struct verifier* v, const struct vfile* f, void (*fn)(void*, struct vfile*),
                     void* arg) {
    size_t i = (size_t)(f - v->files);
    pthread_mutex_lock(lock_of(v, i));
    fn(arg, &v->files[i]);
    pthread_mutex_unlock(lock_of(v, i));
}

int verifier_read(struct verifier* v, const struct vfile* f, const struct trusted_entry* t,
                  int host_fd, off_t off, size_t size, char* out, size_t* ret_len) {
    *ret_len = 0;
    if (off >= f->size)
        return 0;
    if ((off_t)size > f->size - off)
        size = (size_t)(f->size - off);
    if (f->copy >= 0) {
        ssize_t got = pread(f->copy, out, size, off);
        if (got < 0)
            return -errno;
        *ret_len = (size_t)got;
        return 0;
    }
    uint8_t* buf = xmalloc(CHUNK_SIZE);
    size_t done  = 0;
    int r        = 0;
    for (size_t c = (size_t)(off / CHUNK_SIZE); done < size; c++) {
        off_t cstart = (off_t)c * CHUNK_SIZE;
        size_t clen  = (size_t)(f->size - cstart < CHUNK_SIZE ? f->size - cstart : CHUNK_SIZE);
        ssize_t got  = pread(host_fd, buf, clen, cstart);
        uint8_t tag[16];
        if (got != (ssize_t)clen || chunk_tag(v, f->tag_id, c, buf, clen, tag) < 0 ||
            CRYPTO_memcmp(tag, f->chunks[c], 16) != 0) {
            moat_log(LOG_LEVEL_ERROR,
                     "Trusted file '%s' changed on the host: chunk %zu does not match its hash",
                     t->path, c);
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
/* Prefetching                                                                                */

static void* prefetch_main(void* arg) {
    struct verifier* v = arg;
    /* OpenSSL's set-up (providers, method store) happens here, off the app's path */
    uint8_t digest[SHA256_DIGEST_SIZE];
    if (sha256_buf("", 0, digest) < 0)
        moat_log(LOG_LEVEL_DEBUG, "OpenSSL's SHA-256 is not available");
    pthread_once(&g_gcm_once, gcm_fetch);
    for (size_t k = 0; k < v->npre && !__atomic_load_n(&v->stop, __ATOMIC_RELAXED); k++) {
        struct prefetched* p = &v->pre[k];
        pthread_mutex_lock(&p->lock);
        if (!p->done && !p->adopted) {
            hash_file(v, p->path, &p->h);
            p->done = true;
            __atomic_add_fetch(&v->prefetched, 1, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

void verifier_prefetch(struct verifier* v, const char* order_file) {
    size_t len;
    struct moat_error err = {0};
    if (v->prefetching)
        return;
    if (!order_file || read_file(order_file, &v->hints, &len, &err) < 0)
        v->hints = xstrdup(""); /* nothing to hash ahead; OpenSSL still warms up there */
    v->hints_text = xstrdup(v->hints);
    char* save    = NULL;
    for (char* line = strtok_r(v->hints, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != '/')
            continue;
        v->pre          = xrealloc(v->pre, (v->npre + 1) * sizeof(*v->pre));
        v->pre[v->npre] = (struct prefetched){.path = line, .h = {.copy = -1}};
        pthread_mutex_init(&v->pre[v->npre].lock, NULL);
        v->npre++;
    }
    v->prefetching = pthread_create(&v->thread, NULL, prefetch_main, v) == 0;
}

void verifier_stop(struct verifier* v) {
    if (!v->prefetching)
        return;
    __atomic_store_n(&v->stop, true, __ATOMIC_RELAXED);
    pthread_join(v->thread, NULL);
    v->prefetching = false;
}

static int order_cmp(const void* a, const void* b) {
    uint32_t x = (*(const struct vfile* const*)a)->order;
    uint32_t y = (*(const struct vfile* const*)b)->order;
    return x < y ? -1 : x > y;
}

int verifier_save_order(struct verifier* v, const char* order_file, struct moat_error* err) {
    if (!v->policy)
        return 0;
    size_t n            = 0;
    struct vfile** used = xcalloc(v->policy->ntrusted + 1, sizeof(*used));
    for (size_t i = 0; i < v->policy->ntrusted; i++)
        if (v->files[i].order)
            used[n++] = &v->files[i];
    qsort(used, n, sizeof(*used), order_cmp);
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++)
        strbuf_printf(&sb, "%s\n", v->policy->trusted[used[i] - v->files].path);
    free(used);
    /* unchanged: nothing to write. Otherwise a replace through a fresh temporary file
     * (O_EXCL | O_NOFOLLOW, never a symlink someone put there, even when the cache is in an
     * allowed directory); a hint needs no fsync, and a torn one only costs the next run some
     * time */
    int r = 0;
    if (n && !(v->hints_text && !strcmp(v->hints_text, sb.buf))) {
        _cleanup_hostpath_ struct hostpath* hp =
            hostpath_new(v->policy->allowed, v->policy->nallowed);
        r = hostpath_write_atomic(hp, order_file, sb.buf, sb.len, 0600, false, err);
    }
    strbuf_free(&sb);
    return r;
}

void verifier_stats(const struct verifier* v, size_t* hashed, size_t* prefetched, double* hash_ms,
                    double* wait_ms) {
    *hashed     = v->hashed;
    *prefetched = v->prefetched;
    *hash_ms    = (double)v->hash_ns / 1e6;
    *wait_ms    = (double)v->wait_ns / 1e6;
}

void verifier_free(struct verifier* v) {
    if (!v)
        return;
    verifier_stop(v);
    for (size_t i = 0; v->policy && i < v->policy->ntrusted; i++) {
        free(v->files[i].chunks);
        if (v->files[i].copy >= 0)
            close(v->files[i].copy);
    }
    for (size_t k = 0; k < v->npre; k++) {
        hashed_discard(v, &v->pre[k].h);
        pthread_mutex_destroy(&v->pre[k].lock);
    }
    if (v->cache)
        moat_log(LOG_LEVEL_DEBUG,
                 "verify cache: %zu trusted files taken from the cache, %zu hashed", v->cached,
                 v->hashed - v->cached);
    vcache_free(v->cache);
    free(v->pre);
    free(v->files);
    free(v->hints);
    free(v->hints_text);
    for (size_t i = 0; i < NLOCKS; i++)
        pthread_mutex_destroy(&v->locks[i]);
    OPENSSL_cleanse(v->mac_key, sizeof(v->mac_key));
    free(v);
}
