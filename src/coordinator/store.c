/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed state store (store.h; reference/marblerun.md §3.4): the map, its transactions,
 * the sealed file pair and the crash-safe way it is replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define GCM_NONCE 12
#define GCM_TAG   16

static const char* const SEALED_DATA = "sealed_data";
static const char* const SEALED_KEY  = "sealed_key";

struct entry {
    char* key;
    uint8_t* val;
    size_t len;
};

struct map {
    struct entry* items; /* sorted by key */
    size_t len, cap;
};

struct store {
    char* dir;
    struct map map;
    pthread_mutex_t txn_lock; /* held from store_begin to the end of the transaction */
    /* seal keys: [0] the one of store_set_seal_key (ProductKey), [1] the other (UniqueKey);
     * `active` seals, both unseal */
    bool has_seal_key[2], has_dek, disabled;
    uint8_t seal_key[2][STORE_KEY_SIZE];
    char* keyinfo[2];
    int active;
    uint8_t dek[STORE_KEY_SIZE];
    size_t dek_len; /* STORE_KEY_SIZE, or STORE_LEGACY_KEY_SIZE for a recovered legacy state */
    char* recovery_data;
};

struct store_txn {
    struct store* s;
    struct map map; /* the transaction's view: a copy of the store's */
};

/* ---------------------------------------------------------------------------------------- */
/* The map                                                                                    */

static void map_clear(struct map* m) {
    for (size_t i = 0; i < m->len; i++) {
        free(m->items[i].key);
        OPENSSL_cleanse(m->items[i].val, m->items[i].len); /* secrets live in here */
        free(m->items[i].val);
    }
    free(m->items);
    memset(m, 0, sizeof(*m));
}

/* The index of key, or where it would go (*found false). */
static size_t map_find(const struct map* m, const char* key, bool* found) {
    size_t lo = 0, hi = m->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c      = strcmp(m->items[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void map_put(struct map* m, const char* key, const void* val, size_t len) {
    bool found;
    size_t i      = map_find(m, key, &found);
    uint8_t* copy = xmalloc(len ? len : 1);
    if (len)
        memcpy(copy, val, len);
    if (found) {
        OPENSSL_cleanse(m->items[i].val, m->items[i].len);
        free(m->items[i].val);
    } else {
        m->items = xgrow(m->items, &m->cap, m->len + 1, sizeof(*m->items));
        memmove(&m->items[i + 1], &m->items[i], (m->len - i) * sizeof(*m->items));
        m->items[i].key = xstrdup(key);
        m->len++;
    }
    m->items[i].val = copy;
    m->items[i].len = len;
}

static void map_delete(struct map* m, const char* key) {
    bool found;
    size_t i = map_find(m, key, &found);
    if (!found)
        return;
    free(m->items[i].key);
    OPENSSL_cleanse(m->items[i].val, m->items[i].len);
    free(m->items[i].val);
    memmove(&m->items[i], &m->items[i + 1], (m->len - i - 1) * sizeof(*m->items));
    m->len--;
}

static void map_copy(struct map* dst, const struct map* src) {
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->len; i++)
        map_put(dst, src->items[i].key, src->items[i].val, src->items[i].len);
}

static int map_get(const struct map* m, const char* key, const uint8_t** ret, size_t* ret_len) {
    bool found;
    size_t i = map_find(m, key, &found);
    if (!found)
        return -ENOENT;
    *ret     = m->items[i].val;
    *ret_len = m->items[i].len;
    return 0;
}

/* The JSON MarbleRun's stdstore writes: {"key": "<base64>", ...}, keys sorted. */
static char* map_to_json(const struct map* m) {
    json_t* obj = json_object();
    for (size_t i = 0; i < m->len; i++) {
        _cleanup_free_ char* b64 = base64_encode_alloc(m->items[i].val, m->items[i].len);
        json_object_set_new(obj, m->items[i].key, json_string(b64));
    }
    char* out = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    if (!out)
        abort(); /* out of memory: as xmalloc does */
    return out;
}

static int map_from_json(struct map* m, const char* text, size_t len, struct moat_error* err) {
    json_error_t jerr;
    json_t* obj = json_loadb(text, len, 0, &jerr);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return moat_error_set(err, -EBADMSG, "the sealed state is not a JSON object");
    }
    struct map out = {0};
    const char* key;
    json_t* v;
    int r = 0;
    json_object_foreach(obj, key, v) {
        uint8_t* bytes = NULL;
        size_t n       = 0;
        if (!json_is_string(v) ||
            base64_decode_alloc(json_string_value(v), json_string_length(v), &bytes, &n) < 0) {
            r = moat_error_set(err, -EBADMSG, "the sealed state's value of '%s' is not base64",
                               key);
            break;
        }
        map_put(&out, key, bytes, n);
        OPENSSL_cleanse(bytes, n);
        free(bytes);
    }
    json_decref(obj);
    if (r < 0) {
        map_clear(&out);
        return r;
    }
    map_clear(m);
    *m = out;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* AES-256-GCM as ego's ecrypto: nonce ‖ ciphertext ‖ tag                                     */

/* key_len 32: AES-256; 16: AES-128 (MarbleRun's DEKs before v1.9, §3.4). */
static int gcm(bool enc, const uint8_t* key, size_t key_len, const uint8_t nonce[GCM_NONCE],
               const uint8_t* aad, size_t aad_len, const uint8_t* in, size_t len, uint8_t* out,
               uint8_t tag[GCM_TAG]) {
    const EVP_CIPHER* cipher = key_len == STORE_LEGACY_KEY_SIZE ? EVP_aes_128_gcm()
                               : key_len == STORE_KEY_SIZE      ? EVP_aes_256_gcm()
                                                                : NULL;
    if (!cipher)
        return -EBADMSG;
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok = ctx != NULL;
    ok = ok && EVP_CipherInit_ex(ctx, cipher, NULL, key, nonce, enc ? 1 : 0);
    if (ok && aad_len)
        ok = EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len);
    ok = ok && (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, (int)len));
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, tag);
    ok = ok && EVP_CipherFinal_ex(ctx, out + (len ? n : 0), &n);
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -EBADMSG;
}

/* Appends nonce ‖ AES-GCM(key, aad, plain) ‖ tag to sb. */
static int seal_into(struct strbuf* sb, const uint8_t* key, size_t key_len, const uint8_t* aad,
                     size_t aad_len, const void* plain, size_t len) {
    uint8_t nonce[GCM_NONCE], tag[GCM_TAG];
    if (len > INT32_MAX || RAND_bytes(nonce, sizeof(nonce)) != 1)
        return -EIO;
    uint8_t* ct = xmalloc(len ? len : 1);
    int r       = gcm(true, key, key_len, nonce, aad, aad_len, plain, len, ct, tag);
    if (r == 0) {
        strbuf_append(sb, (const char*)nonce, sizeof(nonce));
        strbuf_append(sb, (const char*)ct, len);
        strbuf_append(sb, (const char*)tag, sizeof(tag));
    }
    free(ct);
    return r;
}

/* Opens nonce ‖ ciphertext ‖ tag; *ret is malloc'd (plus a NUL), wiped by the caller. */
static int unseal_from(struct cursor* c, const uint8_t* key, size_t key_len, const uint8_t* aad,
                       size_t aad_len, uint8_t** ret, size_t* ret_len) {
    const uint8_t *nonce, *ct, *tag;
    if (c->len < GCM_NONCE + GCM_TAG || c->len - GCM_NONCE - GCM_TAG > INT32_MAX)
        return -EBADMSG;
    size_t len = c->len - GCM_NONCE - GCM_TAG;
    if (cur_ptr(c, GCM_NONCE, &nonce) < 0 || cur_ptr(c, len, &ct) < 0 ||
        cur_ptr(c, GCM_TAG, &tag) < 0)
        return -EBADMSG;
    uint8_t* out = xmalloc(len + 1);
    uint8_t t[GCM_TAG];
    memcpy(t, tag, sizeof(t));
    int r = gcm(false, key, key_len, nonce, aad, aad_len, ct, len, out, t);
    if (r < 0) {
        OPENSSL_cleanse(out, len);
        free(out);
        return r;
    }
    out[len] = 0;
    *ret     = out;
    *ret_len = len;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The sealed files                                                                           */

static char* path_in(const struct store* s, const char* name, const char* suffix) {
    return xasprintf("%s/%s%s", s->dir, name, suffix);
}

/* Replaces dir/name with buf: temporary file, fsync, the current one kept as name.old, rename,
 * fsync of the directory. */
static int replace_file(const struct store* s, const char* name, const char* buf, size_t len,
                        struct moat_error* err) {
    _cleanup_free_ char* path = path_in(s, name, "");
    _cleanup_free_ char* old  = path_in(s, name, ".old");
    return write_file_replace(path, buf, len, 0600, old, err);
}

static int persist(struct store* s, const struct map* m, struct moat_error* err) {
    if (!s->dir || !s->has_seal_key[s->active] || s->disabled)
        return 0; /* SealMode "Disabled", or a store in memory */
    if (!s->has_dek)
        return moat_error_set(err, -EINVAL, "the state has no data encryption key yet");
    _cleanup_free_ char* json = map_to_json(m);
    const char* rd            = s->recovery_data ? s->recovery_data : "null";
    struct strbuf data        = STRBUF_INIT;
    uint8_t len_le[4]         = {(uint8_t)strlen(rd), (uint8_t)(strlen(rd) >> 8),
                                 (uint8_t)(strlen(rd) >> 16), (uint8_t)(strlen(rd) >> 24)};
    strbuf_append(&data, (const char*)len_le, 4);
    strbuf_puts(&data, rd);
    int r = seal_into(&data, s->dek, s->dek_len, NULL, 0, json, strlen(json));
    OPENSSL_cleanse(json, strlen(json));
    uint8_t aad[SHA256_DIGEST_SIZE];
    if (r == 0)
        r = sha256_buf(data.buf, data.len, aad);
    struct strbuf key = STRBUF_INIT;
    const char* info  = s->keyinfo[s->active] ? s->keyinfo[s->active] : "";
    size_t ki         = strlen(info);
    uint8_t ki_le[4]  = {(uint8_t)ki, (uint8_t)(ki >> 8), (uint8_t)(ki >> 16), (uint8_t)(ki >> 24)};
    strbuf_append(&key, (const char*)ki_le, 4);
    strbuf_puts(&key, info);
    if (r == 0)
        r = seal_into(&key, s->seal_key[s->active], STORE_KEY_SIZE, aad, sizeof(aad), s->dek,
                      s->dek_len);
    if (r < 0)
        r = moat_error_set(err, r, "cannot seal the state");
    /* sealed_data first; the rename of sealed_key is the commit point */
    if (r == 0)
        r = replace_file(s, SEALED_DATA, data.buf, data.len, err);
    if (r == 0)
        r = replace_file(s, SEALED_KEY, key.buf, key.len, err);
    strbuf_free(&data);
    strbuf_free(&key);
    return r;
}

struct sealed_file {
    char* buf;
    size_t len;
    bool present;
};

static int read_sealed(const struct store* s, const char* name, const char* suffix,
                       struct sealed_file* ret, struct moat_error* err) {
    _cleanup_free_ char* path = path_in(s, name, suffix);
    struct moat_error rerr    = {0};
    int r                     = read_file(path, &ret->buf, &ret->len, &rerr);
    ret->present              = r == 0;
    if (r == -ENOENT)
        return 0;
    return r < 0 ? moat_error_set_errno(err, r, "cannot read '%s'", path) : 0;
}

/* The DEK sealed_key holds for this sealed_data (32 bytes, or 16 for a legacy one), or
 * -EBADMSG. */
static int unseal_dek(const struct store* s, const struct sealed_file* key,
                      const struct sealed_file* data, uint8_t dek[STORE_KEY_SIZE],
                      size_t* ret_len) {
    if (!key->present || !data->present)
        return -EBADMSG;
    uint8_t aad[SHA256_DIGEST_SIZE];
    struct cursor c = cursor_init(key->buf, key->len);
    uint32_t ki;
    uint8_t* plain = NULL;
    size_t n       = 0;
    if (sha256_buf(data->buf, data->len, aad) < 0 || cur_u32le(&c, &ki) < 0 || cur_skip(&c, ki) < 0)
        return -EBADMSG;
    bool ok = false;
    for (int k = 0; k < 2 && !ok; k++) {
        int i                = (s->active + k) % 2;
        struct cursor sealed = c;
        ok = s->has_seal_key[i] && unseal_from(&sealed, s->seal_key[i], STORE_KEY_SIZE, aad,
                                               sizeof(aad), &plain, &n) == 0;
    }
    if (!ok)
        return -EBADMSG;
    int r = n == STORE_KEY_SIZE || n == STORE_LEGACY_KEY_SIZE ? 0 : -EBADMSG;
    if (r == 0) {
        memcpy(dek, plain, n);
        *ret_len = n;
    }
    OPENSSL_cleanse(plain, n);
    free(plain);
    return r;
}

/* Decrypts sealed_data with dek into the map (and its recovery data). */
static int open_data(struct store* s, const struct sealed_file* data, const uint8_t* dek,
                     size_t dek_len, struct moat_error* err) {
    struct cursor c = cursor_init(data->buf, data->len);
    uint32_t rd_len;
    const uint8_t* rd;
    uint8_t* json = NULL;
    size_t n      = 0;
    if (cur_u32le(&c, &rd_len) < 0 || cur_ptr(&c, rd_len, &rd) < 0 ||
        unseal_from(&c, dek, dek_len, NULL, 0, &json, &n) < 0)
        return moat_error_set(err, -EBADMSG, "the sealed state cannot be decrypted");
    int r = map_from_json(&s->map, (const char*)json, n, err);
    OPENSSL_cleanse(json, n);
    free(json);
    if (r < 0)
        return r;
    free(s->recovery_data);
    s->recovery_data = xstrndup((const char*)rd, rd_len);
    memset(s->dek, 0, sizeof(s->dek));
    memcpy(s->dek, dek, dek_len);
    s->dek_len = dek_len;
    s->has_dek = true;
    return 0;
}

struct sealed_pair {
    struct sealed_file key, key_old, data, data_old;
};

static void pair_free(struct sealed_pair* p) {
    free(p->key.buf);
    free(p->key_old.buf);
    free(p->data.buf);
    free(p->data_old.buf);
}

static int read_pair(const struct store* s, struct sealed_pair* p, struct moat_error* err) {
    memset(p, 0, sizeof(*p));
    int r = read_sealed(s, SEALED_KEY, "", &p->key, err);
    r     = r ?: read_sealed(s, SEALED_KEY, ".old", &p->key_old, err);
    r     = r ?: read_sealed(s, SEALED_DATA, "", &p->data, err);
    r     = r ?: read_sealed(s, SEALED_DATA, ".old", &p->data_old, err);
    return r;
}

int store_load(struct store* s, struct moat_error* err) {
    if (!s->dir || (!s->has_seal_key[0] && !s->has_seal_key[1]))
        return -ENOENT;
    struct sealed_pair p;
    int r = read_pair(s, &p, err);
    if (r == 0 && !p.key.present && !p.key_old.present && !p.data.present && !p.data_old.present)
        r = -ENOENT;
    /* the newest pair that verifies: a crash between the renames of a commit leaves the
     * previous commit's pair (see replace_file and persist) */
    const struct sealed_file* const order[][2] = {
        {&p.key, &p.data},
        {&p.key, &p.data_old},
        {&p.key_old, &p.data_old},
        {&p.key_old, &p.data},
    };
    uint8_t dek[STORE_KEY_SIZE];
    size_t dek_len = 0;
    int found      = -1;
    /* sealed_key.old is only for a crash that left no sealed_key: a sealed_key we cannot
     * unseal (another identity's key, or tampered) is recovery, never the previous state */
    size_t n_pairs = p.key.present ? 2 : ARRAY_SIZE(order);
    for (size_t i = 0; r == 0 && found < 0 && i < n_pairs; i++)
        if (unseal_dek(s, order[i][0], order[i][1], dek, &dek_len) == 0)
            found = (int)i;
    if (r == 0 && found < 0)
        r = moat_error_set(err, -EBADMSG,
                           "cannot unseal the state in '%s' (another machine or identity, or "
                           "the files were changed)",
                           s->dir);
    if (r == 0)
        r = open_data(s, order[found][1], dek, dek_len, err);
    OPENSSL_cleanse(dek, sizeof(dek));
    pair_free(&p);
    return r;
}

int store_load_with_dek(struct store* s, const uint8_t* dek, size_t dek_len,
                        struct moat_error* err) {
    if (dek_len != STORE_KEY_SIZE && dek_len != STORE_LEGACY_KEY_SIZE)
        return moat_error_set(err, -EBADMSG, "the recovery key does not decrypt the state");
    if (!s->dir)
        return moat_error_set(err, -ENOENT, "the store has no seal directory");
    struct sealed_pair p;
    int r = read_pair(s, &p, err);
    if (r == 0 && !p.data.present && !p.data_old.present)
        r = moat_error_set(err, -ENOENT, "there is no sealed state in '%s'", s->dir);
    if (r == 0 && (!p.data.present || open_data(s, &p.data, dek, dek_len, err) < 0)) {
        moat_error_clear(err);
        r = p.data_old.present ? open_data(s, &p.data_old, dek, dek_len, err) : -EBADMSG;
        if (r < 0)
            r = moat_error_set(err, -EBADMSG, "the recovery key does not decrypt the state");
    }
    pair_free(&p);
    return r;
}

int store_read_recovery_data(struct store* s, char** ret, struct moat_error* err) {
    struct sealed_pair p;
    int r = s->dir ? read_pair(s, &p, err) : -ENOENT;
    if (r < 0)
        return r;
    const struct sealed_file* d = p.data.present ? &p.data : &p.data_old;
    struct cursor c             = cursor_init(d->buf, d->len);
    uint32_t n;
    const uint8_t* rd;
    if (!d->present || cur_u32le(&c, &n) < 0 || cur_ptr(&c, n, &rd) < 0)
        r = moat_error_set(err, -EBADMSG, "there is no readable sealed state in '%s'", s->dir);
    else
        *ret = xstrndup((const char*)rd, n);
    pair_free(&p);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* The store and its transactions                                                             */

struct store* store_new(const char* dir) {
    struct store* s = xcalloc(1, sizeof(*s));
    s->dir          = dir ? xstrdup(dir) : NULL;
    pthread_mutex_init(&s->txn_lock, NULL);
    if (dir)
        (void)mkdir(dir, 0700);
    return s;
}

void store_free(struct store* s) {
    if (!s)
        return;
    map_clear(&s->map);
    OPENSSL_cleanse(s->seal_key, sizeof(s->seal_key));
    OPENSSL_cleanse(s->dek, sizeof(s->dek));
    pthread_mutex_destroy(&s->txn_lock);
    free(s->keyinfo[0]);
    free(s->keyinfo[1]);
    free(s->recovery_data);
    free(s->dir);
    free(s);
}

static void set_key(struct store* s, int i, const uint8_t key[STORE_KEY_SIZE],
                    const char* keyinfo) {
    s->has_seal_key[i] = key != NULL;
    if (key)
        memcpy(s->seal_key[i], key, STORE_KEY_SIZE);
    else
        OPENSSL_cleanse(s->seal_key[i], STORE_KEY_SIZE);
    free(s->keyinfo[i]);
    s->keyinfo[i] = xstrdup(keyinfo ? keyinfo : "");
}

void store_set_seal_key(struct store* s, const uint8_t key[STORE_KEY_SIZE], const char* keyinfo) {
    set_key(s, 0, key, keyinfo);
    s->active = 0;
}

void store_set_other_seal_key(struct store* s, const uint8_t key[STORE_KEY_SIZE],
                              const char* keyinfo) {
    set_key(s, 1, key, keyinfo);
}

bool store_can_select_seal_key(const struct store* s, bool other) {
    return s->has_seal_key[other ? 1 : 0] || !s->has_seal_key[other ? 0 : 1];
}

int store_select_seal_key(struct store* s, bool other, bool disabled) {
    if (!disabled && !store_can_select_seal_key(s, other))
        return -ENOKEY;
    s->active   = other ? 1 : 0;
    s->disabled = disabled;
    return 0;
}

void store_set_dek(struct store* s, const uint8_t dek[STORE_KEY_SIZE]) {
    memcpy(s->dek, dek, STORE_KEY_SIZE);
    s->dek_len = STORE_KEY_SIZE;
    s->has_dek = true;
}

void store_unload(struct store* s) {
    map_clear(&s->map);
    OPENSSL_cleanse(s->dek, sizeof(s->dek));
    s->dek_len = 0;
    s->has_dek = false;
    free(s->recovery_data);
    s->recovery_data = NULL;
}

int store_reseal(struct store* s, struct moat_error* err) {
    /* an empty transaction writes the whole map again: a new sealed_data nonce, and the DEK in
     * sealed_key under the current seal key, both replaced atomically (§3.4) */
    return store_commit(store_begin(s), err);
}

void store_set_recovery_data(struct store* s, const char* json) {
    free(s->recovery_data);
    s->recovery_data = json ? xstrdup(json) : NULL;
}

bool store_has_dek(const struct store* s) {
    return s->has_dek;
}

int store_get(struct store* s, const char* key, const uint8_t** ret, size_t* ret_len) {
    return map_get(&s->map, key, ret, ret_len);
}

struct store_txn* store_begin(struct store* s) {
    pthread_mutex_lock(&s->txn_lock);
    struct store_txn* t = xcalloc(1, sizeof(*t));
    t->s                = s;
    map_copy(&t->map, &s->map);
    return t;
}

int txn_get(struct store_txn* t, const char* key, const uint8_t** ret, size_t* ret_len) {
    return map_get(&t->map, key, ret, ret_len);
}

void txn_put(struct store_txn* t, const char* key, const void* val, size_t len) {
    map_put(&t->map, key, val, len);
}

void txn_delete(struct store_txn* t, const char* key) {
    map_delete(&t->map, key);
}

int txn_iterate(struct store_txn* t, const char* prefix,
                int (*fn)(const char* key, const uint8_t* val, size_t len, void* ctx), void* ctx) {
    bool found;
    size_t n = strlen(prefix);
    for (size_t i = map_find(&t->map, prefix, &found); i < t->map.len; i++) {
        const struct entry* e = &t->map.items[i];
        if (strncmp(e->key, prefix, n) != 0)
            break; /* sorted: the keys with the prefix are together */
        int r = fn(e->key, e->val, e->len, ctx);
        if (r)
            return r;
    }
    return 0;
}

static void txn_end(struct store_txn* t) {
    map_clear(&t->map);
    pthread_mutex_unlock(&t->s->txn_lock);
    free(t);
}

int store_commit(struct store_txn* t, struct moat_error* err) {
    struct store* s = t->s;
    int r           = persist(s, &t->map, err);
    if (r == 0) {
        map_clear(&s->map);
        s->map = t->map;
        memset(&t->map, 0, sizeof(t->map));
    }
    txn_end(t);
    return r;
}

void store_rollback(struct store_txn* t) {
    if (t)
        txn_end(t);
}

void store_get_dek(const struct store* s, uint8_t ret[STORE_KEY_SIZE]) {
    memcpy(ret, s->dek, STORE_KEY_SIZE);
}

const char* store_recovery_data(const struct store* s) {
    return s->recovery_data;
}
