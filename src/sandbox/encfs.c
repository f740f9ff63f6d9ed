/* SPDX-License-Identifier: Apache-2.0 */
/* Files of encrypted mounts: see encfs.h. */
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "encfs.h"
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
};

struct encfile {
    int fd;
    struct pf_file* pf;
    bool writable;
    bool recovery; /* enable_recovery: <host>.gramine.recovery */
    char* host;
};

struct encfs* encfs_new(void) {
    struct encfs* e = xcalloc(1, sizeof(struct encfs));
    pthread_mutex_init(&e->lock, NULL);
    return e;
}

void encfs_free(struct encfs* e) {
    if (!e)
        return;
    for (size_t i = 0; i < e->nkeys; i++) {
        free(e->keys[i].name);
        OPENSSL_cleanse(e->keys[i].bytes, 16);
    }
    free(e->keys);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* The key named `name`, added (unset) if new; under e->lock. */
static struct key* key_slot(struct encfs* e, const char* name) {
    for (size_t i = 0; i < e->nkeys; i++)
        if (!strcmp(e->keys[i].name, name))
            return &e->keys[i];
    e->keys           = xgrow(e->keys, &e->cap, e->nkeys + 1, sizeof(*e->keys));
    e->keys[e->nkeys] = (struct key){.name = xstrdup(name)};
    return &e->keys[e->nkeys++];
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

int encfs_load_keys(struct encfs* e, const struct toml_value* manifest, struct moat_error* err) {
    const struct toml_value* keys = toml_get_path(manifest, "fs.insecure__keys");
    if (!keys)
        return 0;
    if (keys->type != TOML_TABLE)
        return moat_error_set(err, -EINVAL, "'fs.insecure__keys' must be a table");
    for (size_t i = 0; i < keys->u.tab.len; i++) {
        const struct toml_kv* kv = &keys->u.tab.items[i];
        uint8_t key[16];
        if (kv->value->type != TOML_STRING || strlen(kv->value->u.str.ptr) != 32 ||
            hex_decode(kv->value->u.str.ptr, 32, key, sizeof(key)) != 16)
            return moat_error_set(
                err, -EINVAL, "'fs.insecure__keys.%s' must be 32 hex digits (16 bytes)", kv->key);
        encfs_set_key(e, kv->key, key);
        OPENSSL_cleanse(key, sizeof(key));
    }
    return 0;
}

static int open_pf(struct encfs* e, const struct mount_entry* m, const char* host, const char* bind,
                   bool create, bool write_ok, struct encfile** ret) {
    const char* name = m->key_name ? m->key_name : "default";
    uint8_t key[16];
    if (encfs_get_key(e, name, key) <= 0) {
        moat_log(LOG_LEVEL_WARNING, "key '%s' is not set", name);
        return -EACCES;
    }
    int flags = create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR;
    int fd    = write_ok ? open(host, flags | O_CLOEXEC, 0600) : -1;
    bool rw   = fd >= 0;
    if (fd < 0 && !create && (!write_ok || errno == EACCES || errno == EROFS || errno == EPERM))
        fd = open(host, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char embedded[PF_PATH_MAX_SIZE];
    struct pf_file* pf;
    int pf_flags = PF_OPEN_READ | (rw ? PF_OPEN_WRITE : 0) | (create ? PF_OPEN_CREATE : 0);
    _cleanup_free_ char* recovery = m->recovery ? xasprintf("%s.gramine.recovery", host) : NULL;
    enum pf_status s              = pf_open_ex(fd, bind, recovery, key, pf_flags, embedded, &pf);
    OPENSSL_cleanse(key, sizeof(key));
    if (s != PF_SUCCESS) {
        if (s == PF_INVALID_PATH)
            moat_log(LOG_LEVEL_WARNING,
                     "pf_open failed: %s (the file is bound to \"%s\", this mount expects \"%s\")",
                     pf_strerror(s), embedded, bind);
        else
            moat_log(LOG_LEVEL_WARNING, "pf_open failed: %s", pf_strerror(s));
        close(fd);
        if (create)
            unlink(host);
        return -EACCES;
    }
    struct encfile* f = xcalloc(1, sizeof(*f));
    f->fd             = fd;
    f->pf             = pf;
    f->writable       = rw;
    f->host           = xstrdup(host);
    f->recovery       = m->recovery;
    *ret              = f;
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

uint64_t encfile_size(const struct encfile* f) {
    return pf_size(f->pf);
}

static int status_errno(const char* what, enum pf_status s) {
    if (s == PF_SUCCESS)
        return 0;
    moat_log(LOG_LEVEL_WARNING, "%s failed: %s", what, pf_strerror(s));
    return -EACCES;
}

int encfile_read(struct encfile* f, off_t off, size_t size, char* out, size_t* ret_len) {
    return status_errno("pf_read", pf_read(f->pf, (uint64_t)off, size, out, ret_len));
}

int encfile_write(struct encfile* f, off_t off, size_t size, const char* in) {
    if (!f->writable)
        return -EACCES;
    return status_errno("pf_write", pf_write(f->pf, (uint64_t)off, size, in));
}

int encfile_set_size(struct encfile* f, uint64_t size) {
    if (!f->writable)
        return -EACCES;
    return status_errno("pf_set_size", pf_set_size(f->pf, size));
}

int encfile_rename(struct encfile* f, const char* new_bind) {
    if (!f->writable)
        return -EACCES;
    return status_errno("pf_rename", pf_rename(f->pf, new_bind));
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
    int r = status_errno("pf_flush", pf_flush(f->pf));
    if (r == 0 && f->writable && fsync(f->fd) < 0)
        r = -errno;
    return r;
}

int encfile_close(struct encfile* f) {
    int r = status_errno("pf_close", pf_close(f->pf));
    close(f->fd);
    free(f->host);
    free(f);
    return r;
}
