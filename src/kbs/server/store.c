/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys and key-transfer policies of the key broker, in the state directory (docs/kbs.md):
 *   master.key         "MOATKBS1" ‖ IV ‖ tag ‖ AES-256-GCM(sealing key, aad "master.key")(32
 *                      bytes), or "MOATKBS0" ‖ the 32 bytes with --no-seal
 *   policies/<id>.json the policy in canonical form with its "id"
 *   keys/<id>.json     {"id", "transfer_policy_id", "key_info": {"algorithm", "key_length"},
 *                      "sealed": base64(IV ‖ tag ‖ AES-256-GCM(master key, aad = id)(key))}
 * Files 0600 in 0700 directories, written atomically before the service answers.
 */
#include <dirent.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/stat.h>

#include "server.h"

#define MAGIC_SEALED "MOATKBS1"
#define MAGIC_PLAIN  "MOATKBS0"
#define MAGIC_LEN    8

static int make_dir(const char* dir, struct moat_error* err) {
    if (mkdir_parents(dir, 0700) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return moat_error_set_errno(err, -errno, "cannot create %s", dir);
    if (chmod(dir, 0700) < 0)
        return moat_error_set_errno(err, -errno, "cannot make %s private (0700)", dir);
    return 0;
}

static int master_key(struct kbs_store* s, const uint8_t* seal_key, struct moat_error* err) {
    _cleanup_free_ char* path = path_join(s->dir, "master.key");
    _cleanup_free_ char* buf  = NULL;
    size_t len                = 0;
    uint8_t file[MAGIC_LEN + 12 + 16 + 32];
    if (access(path, F_OK) != 0) {
        if (RAND_bytes(s->master, 32) != 1 || RAND_bytes(file + MAGIC_LEN, 12) != 1)
            return moat_error_set(err, -EIO, "RAND_bytes");
        size_t n = MAGIC_LEN + 32;
        if (seal_key) {
            memcpy(file, MAGIC_SEALED, MAGIC_LEN);
            if (kbs_gcm(true, seal_key, file + MAGIC_LEN, "master.key", 10, s->master, 32,
                        file + MAGIC_LEN + 28, file + MAGIC_LEN + 12) < 0)
                return moat_error_set(err, -EIO, "cannot seal the master key");
            n = sizeof(file);
        } else {
            memcpy(file, MAGIC_PLAIN, MAGIC_LEN);
            memcpy(file + MAGIC_LEN, s->master, 32);
        }
        int r = write_file_atomic(path, file, n, 0600, err);
        OPENSSL_cleanse(file, sizeof(file));
        return r;
    }
    int r = read_file(path, &buf, &len, err);
    if (r < 0)
        return r;
    bool sealed = len == sizeof(file) && memcmp(buf, MAGIC_SEALED, MAGIC_LEN) == 0;
    bool plain  = len == MAGIC_LEN + 32 && memcmp(buf, MAGIC_PLAIN, MAGIC_LEN) == 0;
    if (!sealed && !plain)
        r = moat_error_set(err, -EBADMSG, "%s: not a moat-kbs master key", path);
    else if (sealed && !seal_key)
        r = moat_error_set(err, -EPERM, "%s is sealed: run without --no-seal", path);
    else if (plain && seal_key)
        r = moat_error_set(err, -EPERM,
                           "%s is not sealed: it was written with --no-seal (give it again)", path);
    else if (plain)
        memcpy(s->master, buf + MAGIC_LEN, 32);
    else {
        const uint8_t* b = (const uint8_t*)buf;
        uint8_t tag[16];
        memcpy(tag, b + MAGIC_LEN + 12, 16);
        if (kbs_gcm(false, seal_key, b + MAGIC_LEN, "master.key", 10, b + MAGIC_LEN + 28, 32,
                    s->master, tag) < 0)
            r = moat_error_set(err, -EKEYREJECTED,
                               "cannot unseal %s: sealed on another machine or damaged", path);
    }
    OPENSSL_cleanse(buf, len);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Records                                                                                      */

static int write_json(const char* dir, const char* sub, const char* id, const json_t* j,
                      struct moat_error* err) {
    _cleanup_free_ char* path = xasprintf("%s/%s/%s.json", dir, sub, id);
    _cleanup_free_ char* text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text)
        return moat_error_set(err, -ENOMEM, "json_dumps");
    return write_file_atomic(path, text, strlen(text), 0600, err);
}

static void new_id(char out[MOAT_UUID_STR_SIZE]) {
    uint8_t u[16];
    if (RAND_bytes(u, sizeof(u)) != 1)
        abort();
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    moat_uuid_format(u, out);
}

static int add_policy(struct kbs_store* s, const char* id, struct kbs_policy* p) {
    s->policies = xrealloc(s->policies, (s->n_policies + 1) * sizeof(*s->policies));
    struct kbs_stored_policy* sp = &s->policies[s->n_policies++];
    *sp                          = (struct kbs_stored_policy){.policy = *p};
    *p                           = (struct kbs_policy){0};
    snprintf(sp->id, sizeof(sp->id), "%s", id);
    sp->json = kbs_policy_to_json(&sp->policy);
    json_object_set_new(sp->json, "id", json_string(sp->id));
    return 0;
}

int kbs_store_add_policy(struct kbs_store* s, struct kbs_policy* p,
                         const struct kbs_stored_policy** ret, struct moat_error* err) {
    char id[MOAT_UUID_STR_SIZE];
    new_id(id);
    json_t* j = kbs_policy_to_json(p);
    json_object_set_new(j, "id", json_string(id));
    int r = write_json(s->dir, "policies", id, j, err);
    json_decref(j);
    if (r < 0)
        return r;
    if ((r = add_policy(s, id, p)) < 0)
        return r;
    *ret = &s->policies[s->n_policies - 1];
    return 0;
}

json_t* kbs_stored_key_json(const struct kbs_stored_key* k) {
    return json_pack("{s:s, s:s, s:{s:s, s:i}}", "id", k->id, "transfer_policy_id", k->policy_id,
                     "key_info", "algorithm", k->algorithm, "key_length", (int)k->key_length);
}

int kbs_store_add_key(struct kbs_store* s, const char* policy_id, unsigned key_length,
                      const uint8_t* secret, const struct kbs_stored_key** ret,
                      struct moat_error* err) {
    struct kbs_stored_key k = {.key_length = key_length};
    size_t len              = key_length / 8;
    uint8_t fresh[32];
    new_id(k.id);
    snprintf(k.policy_id, sizeof(k.policy_id), "%s", policy_id);
    snprintf(k.algorithm, sizeof(k.algorithm), "AES");
    if (!secret && RAND_bytes(fresh, (int)len) != 1)
        return moat_error_set(err, -EIO, "RAND_bytes");
    k.sealed_len = 12 + 16 + len;
    k.sealed     = xmalloc(k.sealed_len);
    int r        = RAND_bytes(k.sealed, 12) == 1 &&
                    kbs_gcm(true, s->master, k.sealed, k.id, strlen(k.id), secret ? secret : fresh,
                                   len, k.sealed + 28, k.sealed + 12) == 0
                       ? 0
                       : moat_error_set(err, -EIO, "cannot encrypt the key");
    OPENSSL_cleanse(fresh, sizeof(fresh));
    if (r == 0) {
        json_t* j                 = kbs_stored_key_json(&k);
        _cleanup_free_ char* seal = base64_encode_alloc(k.sealed, k.sealed_len);
        json_object_set_new(j, "sealed", json_string(seal));
        r = write_json(s->dir, "keys", k.id, j, err);
        json_decref(j);
    }
    if (r < 0) {
        free(k.sealed);
        return r;
    }
    s->keys              = xrealloc(s->keys, (s->n_keys + 1) * sizeof(*s->keys));
    s->keys[s->n_keys++] = k;
    *ret                 = &s->keys[s->n_keys - 1];
    return 0;
}

int kbs_store_secret(const struct kbs_store* s, const struct kbs_stored_key* k, uint8_t** ret,
                     size_t* ret_len, struct moat_error* err) {
    if (k->sealed_len <= 28)
        return moat_error_set(err, -EBADMSG, "key %s is damaged", k->id);
    size_t len = k->sealed_len - 28;
    uint8_t tag[16];
    memcpy(tag, k->sealed + 12, 16);
    uint8_t* out = xmalloc(len);
    if (kbs_gcm(false, s->master, k->sealed, k->id, strlen(k->id), k->sealed + 28, len, out, tag) <
        0) {
        free(out);
        return moat_error_set(err, -EKEYREJECTED, "key %s does not decrypt", k->id);
    }
    *ret     = out;
    *ret_len = len;
    return 0;
}

const struct kbs_stored_policy* kbs_store_policy(const struct kbs_store* s, const char* id) {
    for (size_t i = 0; i < s->n_policies; i++)
        if (strcmp(s->policies[i].id, id) == 0)
            return &s->policies[i];
    return NULL;
}

const struct kbs_stored_key* kbs_store_key(const struct kbs_store* s, const char* id) {
    for (size_t i = 0; i < s->n_keys; i++)
        if (strcmp(s->keys[i].id, id) == 0)
            return &s->keys[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                      */

static int load_one(struct kbs_store* s, bool keys, const char* id, json_t* j,
                    struct moat_error* err) {
    if (!keys) {
        struct kbs_policy p = {0};
        int r               = kbs_policy_parse(j, &p, err);
        return r < 0 ? r : add_policy(s, id, &p);
    }
    struct kbs_stored_key k = {0};
    const char *pid = NULL, *alg = NULL, *sealed = NULL;
    int bits = 0;
    if (json_unpack(j, "{s:s, s:{s:s, s:i}, s:s}", "transfer_policy_id", &pid, "key_info",
                    "algorithm", &alg, "key_length", &bits, "sealed", &sealed) < 0 ||
        strcmp(alg, "AES") != 0 || strlen(pid) >= sizeof(k.policy_id) ||
        base64_decode_alloc(sealed, strlen(sealed), &k.sealed, &k.sealed_len) < 0) {
        return moat_error_set(err, -EBADMSG, "not a moat-kbs key record");
    }
    snprintf(k.id, sizeof(k.id), "%s", id);
    snprintf(k.policy_id, sizeof(k.policy_id), "%s", pid);
    snprintf(k.algorithm, sizeof(k.algorithm), "AES");
    k.key_length         = (unsigned)bits;
    s->keys              = xrealloc(s->keys, (s->n_keys + 1) * sizeof(*s->keys));
    s->keys[s->n_keys++] = k;
    return 0;
}

static int load_dir(struct kbs_store* s, bool keys, struct moat_error* err) {
    const char* sub           = keys ? "keys" : "policies";
    _cleanup_free_ char* path = path_join(s->dir, sub);
    int r                     = make_dir(path, err);
    if (r < 0)
        return r;
    DIR* d = opendir(path);
    if (!d)
        return moat_error_set_errno(err, -errno, "%s", path);
    struct dirent* e;
    while (r == 0 && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        uint8_t u[16];
        char id[MOAT_UUID_STR_SIZE];
        if (l != MOAT_UUID_STR_SIZE - 1 + 5 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        snprintf(id, sizeof(id), "%.*s", (int)(l - 5), e->d_name);
        if (moat_uuid_parse(id, u, NULL) < 0)
            continue;
        _cleanup_free_ char* file = path_join(path, e->d_name);
        json_error_t je;
        struct moat_error inner = {0};
        json_t* j               = json_load_file(file, 0, &je);
        if (!j)
            r = moat_error_set(err, -EBADMSG, "%s: %s", file, je.text);
        else if ((r = load_one(s, keys, id, j, &inner)) < 0)
            r = moat_error_set(err, r, "%s: %s", file, inner.msg);
        json_decref(j);
    }
    closedir(d);
    return r;
}

int kbs_store_open(struct kbs_store* s, const char* dir, const uint8_t* seal_key,
                   struct moat_error* err) {
    s->dir = dir;
    int r;
    if ((r = make_dir(dir, err)) < 0 || (r = master_key(s, seal_key, err)) < 0 ||
        (r = load_dir(s, false, err)) < 0 || (r = load_dir(s, true, err)) < 0)
        return r;
    return 0;
}

void kbs_store_close(struct kbs_store* s) {
    for (size_t i = 0; i < s->n_policies; i++) {
        kbs_policy_clear(&s->policies[i].policy);
        json_decref(s->policies[i].json);
    }
    free(s->policies);
    for (size_t i = 0; i < s->n_keys; i++) {
        OPENSSL_cleanse(s->keys[i].sealed, s->keys[i].sealed_len);
        free(s->keys[i].sealed);
    }
    free(s->keys);
    OPENSSL_cleanse(s->master, sizeof(s->master));
    *s = (struct kbs_store){0};
}
