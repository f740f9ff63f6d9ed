/* SPDX-License-Identifier: Apache-2.0 */
/* Files of encrypted mounts: see encfs.h. */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "encfs.h"
#include "hostpath.h"
#include "pf.h"

struct key {
    char* name;
    bool set; /* a known name may have no key yet (set at run time) */
    uint8_t bytes[16];
};

/* Keys are read by the FUSE workers at every open and set at run time through
 * /dev/attestation (devfs.c): under `lock`. */
struct encfs {
    pthread_mutex_t lock;
    struct key* keys;
    size_t nkeys, cap;
    struct hostpath* hp; /* host files are opened through it (NULL: none is app-controlled) */
};

/* Write-behind: a large write is copied to a queue and answered at once, and a thread of the
 * file's own applies it (pf_write: node copies, flushes of a full cache, encryption, disk
 * writes) while the app produces the next one, on the other core. Every other operation
 * waits for the queue to drain first, so reads, sizes, truncations, renames and fsync see
 * every write before them, in order; a write that fails later is reported by the next write,
 * fsync or close (as a file system with a page cache reports it). */
#define WB_MIN   (64 * 1024)       /* smaller writes are applied at once when nothing waits */
#define WB_QUEUE (8 * 1024 * 1024) /* bytes queued per file at most */

struct wb_item {
    struct wb_item* next;
    uint64_t off;
    size_t len, cap;
    uint8_t data[];
};
#define WB_SPARES 4 /* applied items kept for reuse (a fresh large malloc is a fresh mmap) */

struct encfile {
    int fd;
    struct pf_file* pf;
    bool writable;
    bool recovery; /* enable_recovery: <host>.gramine.recovery */
    char* host;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond; /* queue changed, or the writer became idle */
    struct wb_item *q_head, *q_tail;
    size_t q_bytes;
    struct wb_item* spares;
    size_t nspares;
    bool applying; /* the writer is inside pf_write */
    bool writer_started, writer_stop;
    pthread_t writer;
    int async_err; /* the first failure of a queued write (-EACCES), reported once */
};

struct encfs* encfs_new(void) {
    struct encfs* e = xcalloc(1, sizeof(struct encfs));
    pthread_mutex_init(&e->lock, NULL);
    return e;
}

void encfs_free(struct encfs* e) {
    if (!e)
        return;
    for (size_t i = 0; i < e->nkeys; i++)
        free(e->keys[i].name);
    if (e->keys) /* key bytes, and the unused slots' zeros */
        OPENSSL_cleanse(e->keys, e->cap * sizeof(*e->keys));
    free(e->keys);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* The key named `name`, added (unset) if new; under e->lock. The array holds key bytes, so it
 * grows by copy and wipe, never by realloc (which frees the old block as it is). */
static struct key* key_slot(struct encfs* e, const char* name) {
    for (size_t i = 0; i < e->nkeys; i++)
        if (!strcmp(e->keys[i].name, name))
            return &e->keys[i];
    if (e->nkeys == e->cap) {
        size_t cap       = e->cap ? 2 * e->cap : 8;
        struct key* keys = xcalloc(cap, sizeof(*keys));
        if (e->nkeys) {
            memcpy(keys, e->keys, e->nkeys * sizeof(*keys));
            OPENSSL_cleanse(e->keys, e->nkeys * sizeof(*keys));
        }
        free(e->keys);
        e->keys = keys;
        e->cap  = cap;
    }
    e->keys[e->nkeys] = (struct key){.name = xstrdup(name)};
    return &e->keys[e->nkeys++];
}

void encfs_set_hostpath(struct encfs* e, struct hostpath* hp) {
    e->hp = hp;
}

void encfs_declare_key(struct encfs* e, const char* name) {
    pthread_mutex_lock(&e->lock);
    (void)key_slot(e, name);
    pthread_mutex_unlock(&e->lock);
}

void encfs_set_key(struct encfs* e, const char* name, const uint8_t key[16]) {
    pthread_mutex_lock(&e->lock);
    struct key* k = key_slot(e, name);
    memcpy(k->bytes, key, 16);
    k->set = true;
    pthread_mutex_unlock(&e->lock);
}

int encfs_get_key(struct encfs* e, const char* name, uint8_t ret[16]) {
    int r = -ENOENT;
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->nkeys; i++) {
        if (!strcmp(e->keys[i].name, name)) {
            r = e->keys[i].set ? 1 : 0;
            if (r)
                memcpy(ret, e->keys[i].bytes, 16);
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

char* encfs_key_name(struct encfs* e, size_t i) {
    pthread_mutex_lock(&e->lock);
    char* name = i < e->nkeys ? xstrdup(e->keys[i].name) : NULL;
    pthread_mutex_unlock(&e->lock);
    return name;
}

void encfs_load_keys(struct encfs* e, const struct manifest* m) {
    for (size_t i = 0; i < m->fs.nkeys; i++)
        encfs_set_key(e, m->fs.insecure_keys[i].name, m->fs.insecure_keys[i].key);
}

/* A key on the stack, wiped on every way out of its scope. */
static void key_wipe(uint8_t (*key)[16]) {
    OPENSSL_cleanse(*key, sizeof(*key));
}

static int open_pf(struct encfs* e, const struct mount_entry* m, const char* host, const char* bind,
                   bool create, bool write_ok, struct encfile** ret) {
    const char* name                    = m->key_name ? m->key_name : "default";
    _cleanup_(key_wipe) uint8_t key[16] = {0};
    if (encfs_get_key(e, name, key) <= 0) {
        moat_log(LOG_LEVEL_WARNING, "key '%s' is not set", name);
        return -EACCES;
    }
    int flags = create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR;
    int fd    = write_ok ? hostpath_open(e->hp, host, flags, 0600) : -EACCES;
    bool rw   = fd >= 0;
    if (fd < 0 && !create && (fd == -EACCES || fd == -EROFS || fd == -EPERM))
        fd = hostpath_open(e->hp, host, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    char embedded[PF_PATH_MAX_SIZE];
    struct pf_file* pf;
    int pf_flags = PF_OPEN_READ | (rw ? PF_OPEN_WRITE : 0) | (create ? PF_OPEN_CREATE : 0);
    _cleanup_free_ char* recovery = m->recovery ? xasprintf("%s.gramine.recovery", host) : NULL;
    enum pf_status s              = pf_open_ex(fd, bind, recovery, key, pf_flags, embedded, &pf);
    if (s != PF_SUCCESS) {
        if (s == PF_INVALID_PATH)
            moat_log(LOG_LEVEL_WARNING,
                     "pf_open failed: %s (the file is bound to \"%s\", this mount expects \"%s\")",
                     pf_strerror(s), embedded, bind);
        else
            moat_log(LOG_LEVEL_WARNING, "pf_open failed: %s", pf_strerror(s));
        close(fd);
        if (create && hostpath_unlink(e->hp, host, 0) < 0)
            moat_log(LOG_LEVEL_WARNING, "cannot remove '%s'", host);
        return -EACCES;
    }
    struct encfile* f = xcalloc(1, sizeof(*f));
    f->fd             = fd;
    f->pf             = pf;
    f->writable       = rw;
    f->host           = xstrdup(host);
    f->recovery       = m->recovery;
    pthread_mutex_init(&f->q_lock, NULL);
    pthread_cond_init(&f->q_cond, NULL);
    *ret = f;
    return 0;
}

int encfile_open(struct encfs* e, const struct mount_entry* m, const char* host, const char* bind,
                 bool create, struct encfile** ret) {
    return open_pf(e, m, host, bind, create, true, ret);
}

int encfile_peek_size(struct encfs* e, const struct mount_entry* m, const char* host,
                      const char* bind, uint64_t* ret) {
    struct encfile* f;
    int r = open_pf(e, m, host, bind, false, false, &f);
    if (r < 0)
        return r;
    *ret = pf_size(f->pf);
    return encfile_close(f);
}

bool encfile_writable(const struct encfile* f) {
    return f->writable;
}

static int status_errno(const char* what, enum pf_status s) {
    if (s == PF_SUCCESS)
        return 0;
    moat_log(LOG_LEVEL_WARNING, "%s failed: %s", what, pf_strerror(s));
    return -EACCES;
}

static void* writer_main(void* arg) {
    struct encfile* f = arg;
    pthread_mutex_lock(&f->q_lock);
    for (;;) {
        while (!f->q_head && !f->writer_stop)
            pthread_cond_wait(&f->q_cond, &f->q_lock);
        if (!f->q_head)
            break;
        struct wb_item* it = f->q_head;
        f->q_head          = it->next;
        if (!f->q_head)
            f->q_tail = NULL;
        f->applying = true;
        pthread_mutex_unlock(&f->q_lock);
        int r = f->async_err
                    ? f->async_err
                    : status_errno("pf_write", pf_write(f->pf, it->off, it->len, it->data));
        pthread_mutex_lock(&f->q_lock);
        f->q_bytes -= it->len;
        if (f->nspares < WB_SPARES) { /* plaintext stays in moat's memory until close */
            it->next  = f->spares;
            f->spares = it;
            f->nspares++;
        } else {
            OPENSSL_cleanse(it->data, it->len);
            free(it);
        }
        if (r < 0 && !f->async_err)
            f->async_err = r;
        f->applying = false;
        pthread_cond_broadcast(&f->q_cond);
    }
    pthread_mutex_unlock(&f->q_lock);
    return NULL;
}

/* Waits until every queued write is applied; returns (and clears) a failure among them. */
static int drain(struct encfile* f) {
    if (!f->writer_started)
        return 0;
    pthread_mutex_lock(&f->q_lock);
    while (f->q_head || f->applying)
        pthread_cond_wait(&f->q_cond, &f->q_lock);
    int r        = f->async_err;
    f->async_err = 0;
    pthread_mutex_unlock(&f->q_lock);
    return r;
}

uint64_t encfile_size(struct encfile* f) {
    (void)drain(f); /* a failure stays for the next write, fsync or close */
    return pf_size(f->pf);
}

int encfile_read(struct encfile* f, off_t off, size_t size, char* out, size_t* ret_len) {
    int r = drain(f);
    if (r < 0) {
        pthread_mutex_lock(&f->q_lock);
        f->async_err = r; /* reported to a writer, not to this read */
        pthread_mutex_unlock(&f->q_lock);
    }
    return status_errno("pf_read", pf_read(f->pf, (uint64_t)off, size, out, ret_len));
}

int encfile_write(struct encfile* f, off_t off, size_t size, const char* in) {
    if (!f->writable)
        return -EACCES;
    if (size < WB_MIN && !f->writer_started)
        return status_errno("pf_write", pf_write(f->pf, (uint64_t)off, size, in));
    pthread_mutex_lock(&f->q_lock);
    struct wb_item** link = &f->spares;
    while (*link && (*link)->cap < size)
        link = &(*link)->next;
    struct wb_item* it = *link;
    if (it) {
        *link = it->next;
        f->nspares--;
    }
    pthread_mutex_unlock(&f->q_lock);
    size_t cap = size < WB_MIN * 16 ? WB_MIN * 16 : size;
    if (!it && (it = malloc(sizeof(*it) + cap)))
        it->cap = cap;
    if (!it) { /* no room to queue it: apply it here, in order */
        int r = drain(f);
        return r < 0 ? r : status_errno("pf_write", pf_write(f->pf, (uint64_t)off, size, in));
    }
    it->next = NULL;
    it->off  = (uint64_t)off;
    it->len  = size;
    memcpy(it->data, in, size);
    pthread_mutex_lock(&f->q_lock);
    if (!f->writer_started) {
        if (pthread_create(&f->writer, NULL, writer_main, f) != 0) {
            pthread_mutex_unlock(&f->q_lock);
            free(it);
            return status_errno("pf_write", pf_write(f->pf, (uint64_t)off, size, in));
        }
        f->writer_started = true;
    }
    while (f->q_bytes && f->q_bytes + size > WB_QUEUE && !f->async_err)
        pthread_cond_wait(&f->q_cond, &f->q_lock);
    int r = f->async_err;
    if (r < 0) {
        f->async_err = 0;
        pthread_mutex_unlock(&f->q_lock);
        free(it);
        return r;
    }
    if (f->q_tail)
        f->q_tail->next = it;
    else
        f->q_head = it;
    f->q_tail = it;
    f->q_bytes += size;
    pthread_cond_broadcast(&f->q_cond);
    pthread_mutex_unlock(&f->q_lock);
    return 0;
}

int encfile_set_size(struct encfile* f, uint64_t size) {
    if (!f->writable)
        return -EACCES;
    int r = drain(f);
    return r < 0 ? r : status_errno("pf_set_size", pf_set_size(f->pf, size));
}

int encfile_rename(struct encfile* f, const char* new_bind) {
    if (!f->writable)
        return -EACCES;
    int r = drain(f);
    return r < 0 ? r : status_errno("pf_rename", pf_rename(f->pf, new_bind));
}

void encfile_moved(struct encfile* f, const char* new_host) {
    free(f->host);
    f->host = xstrdup(new_host);
    if (!f->recovery)
        return;
    _cleanup_free_ char* recovery = xasprintf("%s.gramine.recovery", new_host);
    (void)status_errno("pf_set_recovery_path", pf_set_recovery_path(f->pf, recovery));
}

int encfile_flush(struct encfile* f) {
    int r = drain(f);
    if (r == 0)
        r = status_errno("pf_flush", pf_flush(f->pf));
    if (r == 0 && f->writable && fsync(f->fd) < 0)
        r = -errno;
    return r;
}

int encfile_close(struct encfile* f) {
    int r = drain(f);
    if (f->writer_started) {
        pthread_mutex_lock(&f->q_lock);
        f->writer_stop = true;
        pthread_cond_broadcast(&f->q_cond);
        pthread_mutex_unlock(&f->q_lock);
        pthread_join(f->writer, NULL);
    }
    while (f->spares) {
        struct wb_item* it = f->spares;
        f->spares          = it->next;
        OPENSSL_cleanse(it->data, it->cap);
        free(it);
    }
    int c = status_errno("pf_close", pf_close(f->pf));
    close(f->fd);
    free(f->host);
    pthread_mutex_destroy(&f->q_lock);
    pthread_cond_destroy(&f->q_cond);
    free(f);
    return r < 0 ? r : c;
}
