/* SPDX-License-Identifier: Apache-2.0 */
/* The caller-built data tree of the Go template subset: structs, maps, secrets, byte strings. */
#include <string.h>

#include <openssl/crypto.h>

#include "gotemplate_impl.h"

static struct gotemplate_value* value_new(enum gt_kind kind, const char* go_type) {
    struct gotemplate_value* v = xcalloc(1, sizeof(*v));
    v->refs                    = 1;
    v->kind                    = kind;
    v->go_type                 = xstrdup(go_type);
    return v;
}

static void value_set_bytes(struct gotemplate_value* v, const void* data, size_t len) {
    v->data = xmalloc(len + 1);
    if (len)
        memcpy(v->data, data, len);
    v->data[len] = '\0';
    v->len       = len;
}

struct gotemplate_value* gotemplate_struct_new(const char* go_type) {
    return value_new(GT_STRUCT, go_type ? go_type : "struct {}");
}

struct gotemplate_value* gotemplate_map_new(const char* go_type) {
    return value_new(GT_MAP, go_type ? go_type : "map[string]interface {}");
}

struct gotemplate_value* gotemplate_bytes_new(const void* data, size_t len) {
    struct gotemplate_value* v = value_new(GT_BYTES, "[]uint8");
    value_set_bytes(v, data, len);
    return v;
}

struct gotemplate_value* gotemplate_string_new(const char* s, const char* go_type) {
    struct gotemplate_value* v = value_new(GT_STRING, go_type ? go_type : "string");
    value_set_bytes(v, s, strlen(s));
    return v;
}

static struct gotemplate_value* leaf_new(enum gt_kind kind, const char* go_type, const void* data,
                                         size_t len) {
    struct gotemplate_value* v = value_new(kind, go_type);
    value_set_bytes(v, data, len);
    return v;
}

/* The field names are MarbleRun's manifest.Secret; x509.Certificate exposes Raw (§2). */
struct gotemplate_value* gotemplate_secret_new(const struct gotemplate_secret* s) {
    struct gotemplate_value* secret = value_new(GT_SECRET, "manifest.Secret");
    struct gotemplate_value* cert =
        leaf_new(GT_CERT, "manifest.Certificate", s->cert, s->cert ? s->cert_len : 0);
    int r = gotemplate_set(cert, "Raw", gotemplate_bytes_new(cert->data, cert->len));
    r |= gotemplate_set(secret, "Cert", cert);
    r |= gotemplate_set(secret, "Private",
                        leaf_new(GT_PRIVATE, "manifest.PrivateKey", s->private_key,
                                 s->private_key ? s->private_len : 0));
    r |= gotemplate_set(secret, "Public",
                        leaf_new(GT_PUBLIC, "manifest.PublicKey", s->public_key,
                                 s->public_key ? s->public_len : 0));
    r |= gotemplate_set(secret, "Type",
                        gotemplate_string_new(s->type ? s->type : "", "manifest.SecretType"));
    if (r != 0)
        abort(); /* cannot happen: containers and non-empty keys */
    return secret;
}

bool gt_value_is_container(const struct gotemplate_value* v) {
    return v->kind == GT_STRUCT || v->kind == GT_MAP || v->kind == GT_SECRET || v->kind == GT_CERT;
}

int gotemplate_set(struct gotemplate_value* obj, const char* key, struct gotemplate_value* val) {
    if (!obj || !val || !key || !*key || !gt_value_is_container(obj)) {
        gotemplate_value_unref(val);
        return -EINVAL;
    }
    for (size_t i = 0; i < obj->n; i++) {
        if (strcmp(obj->keys[i], key) == 0) {
            gotemplate_value_unref(obj->vals[i]);
            obj->vals[i] = val;
            return 0;
        }
    }
    size_t cap          = obj->cap;
    obj->keys           = xgrow(obj->keys, &cap, obj->n + 1, sizeof(*obj->keys));
    obj->vals           = xgrow(obj->vals, &obj->cap, obj->n + 1, sizeof(*obj->vals));
    obj->keys[obj->n]   = xstrdup(key);
    obj->vals[obj->n++] = val;
    return 0;
}

const struct gotemplate_value* gt_value_get(const struct gotemplate_value* v, const char* key,
                                            size_t key_len) {
    for (size_t i = 0; i < v->n; i++)
        if (strlen(v->keys[i]) == key_len && memcmp(v->keys[i], key, key_len) == 0)
            return v->vals[i];
    return NULL;
}

struct gotemplate_value* gotemplate_value_ref(struct gotemplate_value* v) {
    if (v)
        v->refs++;
    return v;
}

void gotemplate_value_unref(struct gotemplate_value* v) {
    if (!v || --v->refs > 0)
        return;
    for (size_t i = 0; i < v->n; i++) {
        free(v->keys[i]);
        gotemplate_value_unref(v->vals[i]);
    }
    free(v->keys);
    free(v->vals);
    if (v->data)
        OPENSSL_cleanse(v->data, v->len);
    free(v->data);
    free(v->go_type);
    free(v);
}
