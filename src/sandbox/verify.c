/* SPDX-License-Identifier: Apache-2.0 */
/* Verification of trusted files: see verify.h. */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "verify.h"

#define CHUNK_SIZE  (16 * 1024)           /* TRUSTED_CHUNK_SIZE = 4 pages */
#define BLOCK_SIZE  (16 * CHUNK_SIZE)     /* read and hashed at once */
#define COPY_BUDGET (1024L * 1024 * 1024) /* all verified copies together */
#define NLOCKS      64

struct verifier {
    const struct file_policy* policy;
    struct vfile* files; /* parallel to policy->trusted */
    pthread_mutex_t locks[NLOCKS];
    uint8_t mac_key[16]; /* chunk tags (never leaves the process) */
    size_t copy_max, copy_bytes;
    uint32_t next_order;
    pthread_t thread;
    bool prefetching, stop;
    pthread_mutex_t pause_lock; /* verifier_pause: the prefetcher waits at a safe point */
    pthread_cond_t pause_cond;
    bool pause_req, paused, done;
    char* hints; /* the order file's text */
    size_t hashed, prefetched;
    uint64_t hash_ns, wait_ns;
};

struct verifier* verifier_new(const struct file_policy* policy, size_t copy_max) {
    struct verifier* v = xcalloc(1, sizeof(*v));
    if (RAND_bytes(v->mac_key, sizeof(v->mac_key)) != 1)
        abort(); /* no randomness: nothing can be verified safely */
    v->policy   = policy;
    v->copy_max = copy_max;
    v->files    = xcalloc(policy->ntrusted ? policy->ntrusted : 1, sizeof(*v->files));
    for (size_t i = 0; i < policy->ntrusted; i++)
        v->files[i].copy = -1;
    for (size_t i = 0; i < NLOCKS; i++)
        pthread_mutex_init(&v->locks[i], NULL);
    pthread_mutex_init(&v->pause_lock, NULL);
    pthread_cond_init(&v->pause_cond, NULL);
    return v;
}

static size_t index_of(const struct verifier* v, const struct trusted_entry* t) {
    return (size_t)(t - v->policy->trusted);
}

static pthread_mutex_t* lock_of(struct verifier* v, size_t i) {
    return &v->locks[i % NLOCKS];
}

/* Chunk tags: AES-128-GMAC under a key drawn at start-up, with the file and chunk number as
 * IV. A tag cannot be forged without the key, so a chunk whose host bytes changed after the
 * whole-file check is caught; GMAC costs a fraction of SHA-256. */
static int chunk_tag(const struct verifier* v, size_t file, size_t chunk, const uint8_t* buf,
                     size_t len, uint8_t out[16]) {
    uint8_t iv[12];
    uint64_t c = chunk;
    uint32_t n = (uint32_t)file;
    memcpy(iv, &n, 4);
    memcpy(iv + 4, &c, 8);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int outl, ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, v->mac_key, iv) &&
                   EVP_EncryptUpdate(ctx, NULL, &outl, buf, (int)len) &&
                   EVP_EncryptFinal_ex(ctx, NULL, &outl) &&
                   EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

/* In the prefetcher, between blocks and files: where it holds no lock but its file's, and is
 * in neither malloc nor OpenSSL, it stops while verifier_pause() asks it to. */
static void pause_point(struct verifier* v) {
    pthread_mutex_lock(&v->pause_lock);
    if (v->pause_req) {
        v->paused = true;
        pthread_cond_broadcast(&v->pause_cond);
        while (v->pause_req)
            pthread_cond_wait(&v->pause_cond, &v->pause_lock);
        v->paused = false;
    }
    pthread_mutex_unlock(&v->pause_lock);
}

void verifier_pause(struct verifier* v) {
    if (!v || !v->prefetching)
        return;
    pthread_mutex_lock(&v->pause_lock);
    v->pause_req = true;
    while (!v->paused && !v->done)
        pthread_cond_wait(&v->pause_cond, &v->pause_lock);
    pthread_mutex_unlock(&v->pause_lock);
}

void verifier_resume(struct verifier* v) {
    if (!v)
        return;
    pthread_mutex_lock(&v->pause_lock);
    v->pause_req = false;
    pthread_cond_broadcast(&v->pause_cond);
    pthread_mutex_unlock(&v->pause_lock);
}

/* The whole-file check; called with the file's lock held and f->state == VF_UNCHECKED.
 * `prefetch`: called by the prefetcher, which may be paused between blocks. */
static int check(struct verifier* v, size_t i, bool prefetch) {
    const struct trusted_entry* t = &v->policy->trusted[i];
    struct vfile* f               = &v->files[i];
    uint64_t start                = time_now_ns();
    int fd                        = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno; /* not a verdict: the file may appear later */
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISREG(st.st_mode) ? -errno : -EACCES;
        close(fd);
        return e;
    }
    size_t size = (size_t)st.st_size;
    bool keep   = size <= v->copy_max &&
                __atomic_add_fetch(&v->copy_bytes, size, __ATOMIC_RELAXED) <= COPY_BUDGET;
    if (!keep && size <= v->copy_max)
        __atomic_sub_fetch(&v->copy_bytes, size, __ATOMIC_RELAXED);
    size_t nchunks       = (size + CHUNK_SIZE - 1) / CHUNK_SIZE;
    uint8_t(*chunks)[16] = keep ? NULL : xcalloc(nchunks + 1, 16);
    int copy     = keep ? memfd_create("moat-trusted", MFD_CLOEXEC | MFD_ALLOW_SEALING) : -1;
    int r        = keep && copy < 0 ? -errno : 0;
    uint8_t* buf = xmalloc(BLOCK_SIZE);
    struct sha256_ctx ctx;
    bool ctx_ok = false;
    if (r == 0 && (r = sha256_init(&ctx)) == 0)
        ctx_ok = true;
    for (size_t off = 0; r == 0 && off < size; off += BLOCK_SIZE) {
        if (prefetch)
            pause_point(v);
        size_t want = size - off < BLOCK_SIZE ? size - off : BLOCK_SIZE;
        ssize_t got = read_full(fd, buf, want);
        if (got != (ssize_t)want) {
            r = got < 0 ? (int)got : -EIO; /* shorter than at fstat: changed while hashed */
            break;
        }
        r = sha256_update(&ctx, buf, want);
        for (size_t c = 0; r == 0 && !keep && c * CHUNK_SIZE < want; c++) {
            size_t clen = want - c * CHUNK_SIZE < CHUNK_SIZE ? want - c * CHUNK_SIZE : CHUNK_SIZE;
            r           = chunk_tag(v, i, off / CHUNK_SIZE + c, buf + c * CHUNK_SIZE, clen,
                                    chunks[off / CHUNK_SIZE + c]);
        }
        if (r == 0 && keep)
            r = write_all(copy, buf, want);
    }
    uint8_t digest[32];
    if (r == 0)
        r = sha256_final(&ctx, digest);
    if (ctx_ok)
        sha256_ctx_free(&ctx);
    if (r == 0 && keep &&
        fcntl(copy, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        r = -errno;
    free(buf);
    close(fd);
    __atomic_add_fetch(&v->hashed, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&v->hash_ns, time_now_ns() - start, __ATOMIC_RELAXED);
    if (r < 0 || CRYPTO_memcmp(digest, t->sha256, 32) != 0) {
        moat_log(LOG_LEVEL_WARNING,
                 "Hash of trusted file '%s' does not match with the reference hash in manifest",
                 t->path);
        f->state = VF_BAD;
        free(chunks);
        if (copy >= 0)
            close(copy);
        if (keep)
            __atomic_sub_fetch(&v->copy_bytes, size, __ATOMIC_RELAXED);
        return -EPERM;
    }
    f->size   = (off_t)size;
    f->copy   = copy;
    f->chunks = chunks;
    f->state  = VF_OK;
    return 0;
}

int verifier_open(struct verifier* v, const struct trusted_entry* t, struct vfile** ret) {
    size_t i        = index_of(v, t);
    struct vfile* f = &v->files[i];
    uint64_t start  = time_now_ns();
    pthread_mutex_lock(lock_of(v, i));
    int r = f->state == VF_OK ? 0 : f->state == VF_BAD ? -EPERM : check(v, i, false);
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
    size_t file  = index_of(v, t);
    uint8_t* buf = xmalloc(CHUNK_SIZE);
    size_t done  = 0;
    int r        = 0;
    for (size_t c = (size_t)(off / CHUNK_SIZE); done < size; c++) {
        off_t cstart = (off_t)c * CHUNK_SIZE;
        size_t clen  = (size_t)(f->size - cstart < CHUNK_SIZE ? f->size - cstart : CHUNK_SIZE);
        ssize_t got  = pread(host_fd, buf, clen, cstart);
        uint8_t h[16];
        if (got != (ssize_t)clen || chunk_tag(v, file, c, buf, clen, h) < 0 ||
            CRYPTO_memcmp(h, f->chunks[c], 16) != 0) {
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
    char* save         = NULL;
    for (char* line = strtok_r(v->hints, "\n", &save);
         line && !__atomic_load_n(&v->stop, __ATOMIC_RELAXED); line = strtok_r(NULL, "\n", &save)) {
        pause_point(v);
        const struct trusted_entry* t;
        if (file_policy_classify(v->policy, line, &t) != FILE_TRUSTED)
            continue; /* the manifest changed since: not listed any more */
        size_t i = index_of(v, t);
        pthread_mutex_lock(lock_of(v, i));
        if (v->files[i].state == VF_UNCHECKED && check(v, i, true) != -EPERM)
            v->prefetched++;
        pthread_mutex_unlock(lock_of(v, i));
    }
    pthread_mutex_lock(&v->pause_lock);
    v->done = true;
    pthread_cond_broadcast(&v->pause_cond);
    pthread_mutex_unlock(&v->pause_lock);
    return NULL;
}

void verifier_prefetch(struct verifier* v, const char* order_file) {
    size_t len;
    struct moat_error err = {0};
    if (v->prefetching || !order_file || read_file(order_file, &v->hints, &len, &err) < 0)
        return;
    v->prefetching = pthread_create(&v->thread, NULL, prefetch_main, v) == 0;
}

void verifier_stop(struct verifier* v) {
    if (!v->prefetching)
        return;
    __atomic_store_n(&v->stop, true, __ATOMIC_RELAXED);
    verifier_resume(v);
    pthread_join(v->thread, NULL);
    v->prefetching = false;
}

static int order_cmp(const void* a, const void* b) {
    uint32_t x = (*(const struct vfile* const*)a)->order;
    uint32_t y = (*(const struct vfile* const*)b)->order;
    return x < y ? -1 : x > y;
}

int verifier_save_order(struct verifier* v, const char* order_file, struct moat_error* err) {
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
    int r = n ? write_file_atomic(order_file, sb.buf, sb.len, 0600, err) : 0;
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
    for (size_t i = 0; i < v->policy->ntrusted; i++) {
        free(v->files[i].chunks);
        if (v->files[i].copy >= 0)
            close(v->files[i].copy);
    }
    free(v->files);
    free(v->hints);
    for (size_t i = 0; i < NLOCKS; i++)
        pthread_mutex_destroy(&v->locks[i]);
    pthread_mutex_destroy(&v->pause_lock);
    pthread_cond_destroy(&v->pause_cond);
    OPENSSL_cleanse(v->mac_key, sizeof(v->mac_key));
    free(v);
}
