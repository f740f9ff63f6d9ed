/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Users, roles and user-defined secrets (reference/marblerun.md §1.3, §1.4, §3.5; MarbleRun's
 * coordinator/user/user.go, clientapi.VerifyUser, GetSecrets, WriteSecrets and
 * manifest.ParseUserSecrets).
 *
 * User-defined secrets live in the store under "secret:<name>" as MarbleRun's Secret JSON (Go's
 * field order, `null` for nil bytes) and in memory in c->user_secrets, which only the core's
 * lock guards: activations take a deep copy under the lock (core_user_secrets_snapshot).
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core_internal.h"
#include "manifest_internal.h"
#include "pck.h" /* _cleanup_x509_ */

#define K_SECRET_PREFIX "secret:"

static const char NOT_IN_STATE[] = "server is not in expected state";

/* ---------------------------------------------------------------------------------------- */
/* Authentication and permissions (§1.4, §3.5 "User auth")                                   */

/* The DER of the first PEM block of a user's Certificate, as Go's pem.Decode. */
static int user_cert_der(const struct coord_user* u, uint8_t** ret, size_t* ret_len) {
    BIO* b = BIO_new_mem_buf(u->certificate, -1);
    if (!b)
        return -ENOMEM;
    char *name = NULL, *header = NULL;
    uint8_t* data = NULL;
    long len      = 0;
    int ok        = PEM_read_bio(b, &name, &header, &data, &len);
    BIO_free(b);
    OPENSSL_free(name);
    OPENSSL_free(header);
    if (ok != 1 || len <= 0) {
        OPENSSL_free(data);
        return -EINVAL;
    }
    *ret     = data;
    *ret_len = (size_t)len;
    return 0;
}

int coord_core_auth_user(struct coord_core* c, const uint8_t* cert_der, size_t len, char** ret_user,
                         struct moat_error* err) {
    if (!cert_der || len == 0)
        return moat_error_set(err, -ENOKEY, "no client certificate provided");
    pthread_mutex_lock(&c->lock);
    int r = 0;
    if (c->state != COORD_STATE_ACCEPTING_MARBLES || !c->gen->manifest) {
        r = moat_error_set(err, -EPERM, "%s", NOT_IN_STATE);
        goto out;
    }
    /* x509.Certificate.Equal: the raw bytes; no chain, issuer or expiry check (§3.5) */
    for (size_t i = 0; i < c->gen->manifest->n_users; i++) {
        const struct coord_user* u = &c->gen->manifest->users[i];
        uint8_t* der               = NULL;
        size_t n                   = 0;
        if (user_cert_der(u, &der, &n) < 0)
            continue;
        bool same = n == len && memcmp(der, cert_der, len) == 0;
        OPENSSL_free(der);
        if (same) {
            *ret_user = xstrdup(u->name);
            goto out;
        }
    }
    r = moat_error_set(err, -EACCES,
                       "unauthorized user: client certificate did not match any MarbleRun users");
out:
    pthread_mutex_unlock(&c->lock);
    return r;
}

static bool strv_has(const struct coord_strv* sv, const char* s, bool nocase) {
    for (size_t i = 0; i < sv->n; i++)
        if (nocase ? !strcasecmp(sv->v[i], s) : !strcmp(sv->v[i], s))
            return true;
    return false;
}

/* user.User.IsGranted with one resource: a permission is the action (lowercased) with the union
 * of the ResourceNames of every role of the user granting it; the resource type is not part of
 * it in MarbleRun (Check ties actions to types), here it must also match when given. */
bool core_manifest_user_allowed(const struct coord_manifest* m, const char* user,
                                const char* resource_type, const char* resource_name,
                                const char* action) {
    if (!m || !user || !action)
        return false;
    const struct coord_user* u = coord_manifest_user(m, user);
    if (!u)
        return false;
    for (size_t i = 0; i < u->roles.n; i++) {
        const struct coord_role* role = coord_manifest_role(m, u->roles.v[i]);
        if (!role || !strv_has(&role->actions, action, true))
            continue;
        if (resource_type && strcmp(role->resource_type, resource_type) != 0)
            continue;
        if (!resource_name || strv_has(&role->resource_names, resource_name, false))
            return true;
    }
    return false;
}

bool core_user_allowed_locked(struct coord_core* c, const char* user, const char* resource_type,
                              const char* resource_name, const char* action) {
    return core_manifest_user_allowed(c->gen->manifest, user, resource_type, resource_name, action);
}

bool coord_core_user_allowed(struct coord_core* c, const char* user, const char* resource_type,
                             const char* resource_name, const char* action) {
    pthread_mutex_lock(&c->lock);
    bool ok = c->state == COORD_STATE_ACCEPTING_MARBLES &&
              core_user_allowed_locked(c, user, resource_type, resource_name, action);
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Secrets as MarbleRun serialises manifest.Secret (§3.5: Go's []byte is base64, nil is null; */
/* Certificate marshals its Raw bytes)                                                        */

static json_t* bytes_json(const uint8_t* p, size_t len) {
    if (!p)
        return json_null();
    char* b   = base64_encode_alloc(len ? p : (const uint8_t*)"", len);
    json_t* s = json_string(b);
    OPENSSL_cleanse(b, strlen(b));
    free(b);
    return s;
}

/* {Type, Size, Shared, UserDefined, Cert, ValidFor, Private, Public} in Go's field order. */
static json_t* secret_json(const struct coord_secret* def, const struct moat_cert_key* v) {
    json_t* o = json_object();
    json_object_set_new(o, "Type", json_string(def->type));
    json_object_set_new(o, "Size", json_integer((json_int_t)def->size));
    json_object_set_new(o, "Shared", json_boolean(def->shared));
    json_object_set_new(o, "UserDefined", json_boolean(def->user_defined));
    if (v) {
        json_object_set_new(o, "Cert", bytes_json(v->cert.len ? v->cert.p : NULL, v->cert.len));
        json_object_set_new(o, "ValidFor", json_integer((json_int_t)def->valid_for));
        json_object_set_new(o, "Private", bytes_json(v->private_key.p, v->private_key.len));
        json_object_set_new(o, "Public", bytes_json(v->public_key.p, v->public_key.len));
    } else { /* the definition as SetManifest stored it: the manifest's own values */
        json_object_set_new(o, "Cert", bytes_json(def->cert_der, def->cert_der_len));
        json_object_set_new(o, "ValidFor", json_integer((json_int_t)def->valid_for));
        json_object_set_new(o, "Private", bytes_json(def->private_key, def->private_len));
        json_object_set_new(o, "Public", bytes_json(def->public_key, def->public_len));
    }
    return o;
}

static int put_user_secret(struct store_txn* t, const struct coord_secret* def,
                           const struct moat_secret* s) {
    json_t* o  = secret_json(def, &s->v);
    char* text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return -ENOMEM;
    _cleanup_free_ char* key = xasprintf(K_SECRET_PREFIX "%s", s->name);
    txn_put(t, key, text, strlen(text));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return 0;
}

/* A stored []byte: null → nil (p NULL), a string → its bytes. */
static int get_bytes(json_t* o, const char* key, struct moat_der* ret) {
    json_t* v = coord_json_field(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -EBADMSG;
    char msg[96];
    return go_base64_decode(json_string_value(v), json_string_length(v), &ret->p, &ret->len, msg,
                            sizeof(msg)) < 0
               ? -EBADMSG
               : 0;
}

static int load_user_secret(struct store* st, const char* name, const char* type,
                            struct moat_secret* ret) {
    _cleanup_free_ char* key = xasprintf(K_SECRET_PREFIX "%s", name);
    const uint8_t* v;
    size_t n;
    if (store_get(st, key, &v, &n) < 0)
        return -ENOENT;
    json_t* o = json_loadb((const char*)v, n, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -EBADMSG;
    }
    struct moat_secret s = {.name = xstrdup(name), .type = xstrdup(type)};
    int r                = get_bytes(o, "Cert", &s.v.cert);
    if (r == 0)
        r = get_bytes(o, "Private", &s.v.private_key);
    if (r == 0)
        r = get_bytes(o, "Public", &s.v.public_key);
    json_decref(o);
    if (r < 0) {
        moat_secret_clear(&s);
        return r;
    }
    *ret = s;
    return 0;
}

/* The uploaded values of the manifest's user-defined secrets (at start-up). A secret that was
 * never uploaded has no key in the store. */
int core_users_restore(struct coord_core* c, struct moat_error* err) {
    for (size_t i = 0; i < c->gen->specs.n; i++) {
        const struct moat_secret_spec* sp = &c->gen->specs.v[i];
        if (!sp->user_defined)
            continue;
        struct moat_secret s;
        int r = load_user_secret(c->store, sp->name, sp->type, &s);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return moat_error_set(err, -EBADMSG, "the sealed state has a corrupt secret %s",
                                  sp->name);
        struct moat_secret_set* set = &c->user_secrets;
        set->v                      = xrealloc(set->v, (set->n + 1) * sizeof(*set->v));
        set->v[set->n++]            = s;
    }
    return 0;
}

static void der_copy(struct moat_der* dst, const struct moat_der* src) {
    dst->len = src->len;
    dst->p   = NULL;
    if (src->p) {
        dst->p = xmalloc(src->len ? src->len : 1);
        memcpy(dst->p, src->p, src->len);
    }
}

static void secret_copy(struct moat_secret* dst, const struct moat_secret* src) {
    dst->name = xstrdup(src->name);
    dst->type = xstrdup(src->type);
    der_copy(&dst->v.cert, &src->v.cert);
    der_copy(&dst->v.private_key, &src->v.private_key);
    der_copy(&dst->v.public_key, &src->v.public_key);
}

void core_user_secrets_snapshot(struct coord_core* c, struct moat_secret_set* ret) {
    pthread_mutex_lock(&c->lock);
    struct moat_secret_set set = {.n = c->user_secrets.n};
    set.v                      = xcalloc(set.n + 1, sizeof(*set.v));
    for (size_t i = 0; i < set.n; i++)
        secret_copy(&set.v[i], &c->user_secrets.v[i]);
    pthread_mutex_unlock(&c->lock);
    *ret = set;
}

/* ---------------------------------------------------------------------------------------- */
/* GET /secrets (clientapi.GetSecrets)                                                        */

static void go_strv(struct strbuf* sb, const char* const* names, size_t n) {
    strbuf_putc(sb, '[');
    for (size_t i = 0; i < n; i++)
        strbuf_printf(sb, "%s%s", i ? " " : "", names[i]);
    strbuf_putc(sb, ']');
}

static int get_secrets_locked(struct coord_core* c, const char* user, const char* const* names,
                              size_t n, json_t** ret, struct moat_error* err) {
    if (c->state != COORD_STATE_ACCEPTING_MARBLES || !c->gen->manifest)
        return moat_error_set(err, -EPERM, "%s", NOT_IN_STATE);
    /* IsGranted(readsecret, names): every name (none: the permission at all) */
    bool granted = n > 0 || core_user_allowed_locked(c, user, "Secrets", NULL, "readsecret");
    for (size_t i = 0; granted && i < n; i++)
        granted = core_user_allowed_locked(c, user, "Secrets", names[i], "readsecret");
    if (!granted) {
        struct strbuf sb = STRBUF_INIT;
        go_strv(&sb, names, n);
        int r = moat_error_set(err, -EACCES,
                               "user %s is not allowed to read one or more secrets of: %s",
                               user ? user : "", sb.buf ? sb.buf : "[]");
        strbuf_free(&sb);
        return r;
    }
    json_t* out = json_object();
    for (size_t i = 0; i < n; i++) {
        const struct coord_secret* def = coord_manifest_secret(c->gen->manifest, names[i]);
        const struct moat_secret* s    = NULL;
        if (def && def->user_defined)
            s = moat_secret_set_find(&c->user_secrets, names[i]);
        else if (def && def->shared)
            s = moat_secret_set_find(&c->gen->shared.current, names[i]);
        if (!def || (!s && !def->user_defined)) {
            /* Check allows readsecret on shared and user-defined secrets only */
            json_decref(out);
            return moat_error_set(
                err, -ENOENT, "loading secret %s from store: requested value not set", names[i]);
        }
        json_object_set_new(out, names[i], secret_json(def, s ? &s->v : NULL));
    }
    *ret = out;
    return 0;
}

int coord_core_get_secrets(struct coord_core* c, const char* user, const char* const* names,
                           size_t n, struct json_t** ret, struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    int r = get_secrets_locked(c, user, names, n, ret, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* POST /secrets (clientapi.WriteSecrets, manifest.ParseUserSecrets)                          */

/* A UserSecret []byte field: absent/null → nil; a base64 string → bytes. */
static int user_bytes(json_t* us, const char* name, const char* field, struct moat_der* ret,
                      struct moat_error* err) {
    json_t* v = coord_json_field(us, field);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return moat_error_set(err, -EINVAL, "secret %s: %s must be a base64 string", name, field);
    char msg[96];
    if (go_base64_decode(json_string_value(v), json_string_length(v), &ret->p, &ret->len, msg,
                         sizeof(msg)) < 0)
        return moat_error_set(err, -EINVAL, "secret %s: %s: %s", name, field, msg);
    return 0;
}

/* UserSecret.Cert: a base64 DER string is parsed (x509.ParseCertificate); the x509 object form
 * carries no Raw bytes, so it counts as no certificate, as in MarbleRun. */
static int user_cert(json_t* us, const char* name, X509** ret, struct moat_der* ret_der,
                     struct moat_error* err) {
    json_t* v = coord_json_field(us, "Cert");
    if (!v || !json_is_string(v))
        return 0;
    int r = user_bytes(us, name, "Cert", ret_der, err);
    if (r < 0)
        return r;
    const uint8_t* p = ret_der->p;
    X509* x          = d2i_X509(NULL, &p, (long)ret_der->len);
    if (!x || p != ret_der->p + ret_der->len) {
        X509_free(x);
        return moat_error_set(err, -EINVAL, "secret %s: Cert: not a DER X.509 certificate", name);
    }
    *ret = x;
    return 0;
}

/* One entry of ParseUserSecrets, with MarbleRun's messages. */
static int parse_user_secret(const struct coord_secret* def, const char* name, json_t* us,
                             struct moat_secret* ret, struct moat_error* err) {
    if (!json_is_object(us) && !json_is_null(us))
        return moat_error_set(err, -EINVAL, "secret %s: a user secret must be an object", name);
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key v = {0};
    struct moat_der key                                    = {0};
    _cleanup_x509_ X509* cert                              = NULL;
    int r = json_is_null(us) ? 0 : user_bytes(us, name, "Key", &key, err);
    if (r == 0 && !json_is_null(us))
        r = user_bytes(us, name, "Private", &v.private_key, err);
    if (r == 0 && !json_is_null(us))
        r = user_cert(us, name, &cert, &v.cert, err);
    if (r < 0) {
        moat_der_clear(&key);
        return r;
    }
    bool has_cert = cert || v.private_key.p;
    if (!strcmp(def->type, "symmetric-key")) {
        if (def->size == 0 || def->size % 8 != 0)
            r = moat_error_set(err, -EINVAL, "invalid secret size: %s", name);
        else if (key.len != def->size / 8)
            r = moat_error_set(err, -EINVAL, "declared size and actual size don't match: %s", name);
    } else if (!strcmp(def->type, "plain")) {
        /* (sic: MarbleRun's text names symmetric-key for plain secrets too) */
    } else if (!strncmp(def->type, "cert-", 5)) {
        if (key.p)
            r = moat_error_set(err, -EINVAL,
                               "secret %s is set to be of type %s but specified values for a "
                               "symmetric-key",
                               name, def->type);
        else if (!cert)
            r = moat_error_set(err, -EINVAL, "x509: unsupported public key type: <nil>");
    } else {
        r = moat_error_set(err, -EINVAL, "unsupported secret of type %s", def->type);
    }
    if (r == 0 && strncmp(def->type, "cert-", 5) != 0 && has_cert)
        r = moat_error_set(err, -EINVAL,
                           "secret %s is set to be of type symmetric-key but specified values "
                           "for a certificate",
                           name);
    if (r < 0) {
        moat_der_clear(&key);
        return r;
    }
    if (cert) { /* Public = PKIX of the certificate's key; Private as given (not checked) */
        uint8_t* pub = NULL;
        int n        = i2d_PUBKEY(X509_get0_pubkey(cert), &pub);
        if (n <= 0)
            return moat_error_set(err, -EINVAL, "secret %s: cannot encode the public key", name);
        v.public_key.p   = xmalloc((size_t)n);
        v.public_key.len = (size_t)n;
        memcpy(v.public_key.p, pub, (size_t)n);
        OPENSSL_free(pub);
    } else { /* symmetric-key, plain: Private = Public = Key */
        moat_der_clear(&v.private_key);
        v.private_key = key;
        der_copy(&v.public_key, &key);
    }
    *ret = (struct moat_secret){.name = xstrdup(name), .type = xstrdup(def->type), .v = v};
    v    = (struct moat_cert_key){0};
    return 0;
}

static int cmp_str(const void* a, const void* b) {
    return strcmp(*(const char* const*)a, *(const char* const*)b);
}

/* The body's names in byte order (Go ranges over a map in random order; we report the
 * smallest offending name, as the manifest code does). */
static const char** sorted_keys(json_t* body, size_t* ret_n) {
    size_t n = json_object_size(body), i = 0;
    const char** names = xcalloc(n + 1, sizeof(char*));
    const char* k;
    json_t* v;
    json_object_foreach(body, k, v) {
        names[i++] = k;
    }
    qsort(names, n, sizeof(char*), cmp_str);
    *ret_n = n;
    return names;
}

static int parse_all(struct coord_core* c, json_t* body, const char* const* names, size_t n,
                     struct moat_secret_set* ret, struct moat_error* err) {
    if (n == 0)
        return moat_error_set(err, -EINVAL, "parsing new secrets: no new secrets defined");
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set set = {0};
    set.v                                                        = xcalloc(n, sizeof(*set.v));
    for (size_t i = 0; i < n; i++) {
        const struct coord_secret* def = coord_manifest_secret(c->gen->manifest, names[i]);
        int r                          = 0;
        if (!def)
            r = moat_error_set(err, -EINVAL,
                               "secret manifest specifies a secret which the original manifest "
                               "does not contain");
        else if (!def->user_defined)
            r = moat_error_set(err, -EINVAL, "secret %s is not writeable", names[i]);
        else
            r = parse_user_secret(def, names[i], json_object_get(body, names[i]), &set.v[set.n],
                                  err);
        if (r < 0)
            return moat_error_prefix(err, "parsing new secrets");
        set.n++;
    }
    *ret = set;
    set  = (struct moat_secret_set){0};
    return 0;
}

/* The TemplateDryRun with the new values and the dummy byte for the other user-defined
 * secrets. The set handed to it borrows the secrets of `shared` and `fresh`. */
static int dry_run(struct coord_core* c, const struct moat_secret_set* fresh,
                   struct moat_error* err) {
    const struct moat_secret_set* shared = &c->gen->shared.current;
    struct moat_secret_set all           = {.n = shared->n + fresh->n};
    all.v                                = xcalloc(all.n + 1, sizeof(*all.v));
    memcpy(all.v, fresh->v, fresh->n * sizeof(*all.v));
    if (shared->n)
        memcpy(all.v + fresh->n, shared->v, shared->n * sizeof(*all.v));
    int r = core_template_dry_run(c->gen->manifest, &c->gen->specs, c->gen->ca, &all, err);
    free(all.v); /* borrowed entries */
    return r < 0 ? moat_error_prefix(err, "running manifest template dry run") : 0;
}

/* Replaces or adds the committed values in memory; takes the secrets of `fresh`. */
static void user_secrets_merge(struct coord_core* c, struct moat_secret_set* fresh) {
    struct moat_secret_set* set = &c->user_secrets;
    for (size_t i = 0; i < fresh->n; i++) {
        struct moat_secret* old = (struct moat_secret*)moat_secret_set_find(set, fresh->v[i].name);
        if (old) {
            moat_secret_clear(old);
            *old = fresh->v[i];
        } else {
            set->v           = xrealloc(set->v, (set->n + 1) * sizeof(*set->v));
            set->v[set->n++] = fresh->v[i];
        }
    }
    free(fresh->v);
    *fresh = (struct moat_secret_set){0};
}

static int write_secrets_locked(struct coord_core* c, const char* user, json_t* body,
                                struct moat_error* err) {
    if (c->state != COORD_STATE_ACCEPTING_MARBLES || !c->gen->manifest)
        return moat_error_set(err, -EPERM, "%s", NOT_IN_STATE);
    size_t n                                                       = 0;
    _cleanup_free_ const char** names                              = sorted_keys(body, &n);
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set fresh = {0};
    int r = parse_all(c, body, names, n, &fresh, err);
    if (r == 0)
        r = dry_run(c, &fresh, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        if (!core_user_allowed_locked(c, user, "Secrets", names[i], "writesecret"))
            return moat_error_set(err, -EACCES, "user %s is not allowed to update secret: %s",
                                  user ? user : "", names[i]);
    /* all or nothing: one transaction */
    struct store_txn* t = store_begin(c->store);
    for (size_t i = 0; i < fresh.n; i++) {
        r = put_user_secret(t, coord_manifest_secret(c->gen->manifest, fresh.v[i].name),
                            &fresh.v[i]);
        if (r < 0) {
            store_rollback(t);
            return moat_error_set(err, r, "saving secret %s to store", fresh.v[i].name);
        }
    }
    /* the update log records who set which secret (never its value) */
    for (size_t i = 0; i < fresh.n; i++)
        core_update_log_append(t, "Secret set",
                               json_pack("{s:s, s:s, s:s}", "user", user ? user : "", "secret",
                                         fresh.v[i].name, "type", fresh.v[i].type));
    r = store_commit(t, err);
    if (r < 0)
        return moat_error_prefix(err, "committing store transaction");
    for (size_t i = 0; i < fresh.n; i++)
        log_debug("coordinator: secret set: user %s, secret %s, type %s", user ? user : "",
                  fresh.v[i].name, fresh.v[i].type);
    user_secrets_merge(c, &fresh);
    return 0;
}

int coord_core_write_secrets(struct coord_core* c, const char* user, const void* json, size_t len,
                             struct moat_error* err) {
    json_error_t je;
    json_t* body = json_loadb(json, len, JSON_DECODE_ANY, &je);
    if (!body)
        return moat_error_set(err, -EINVAL, "invalid secrets: %s", je.text);
    if (!json_is_object(body) && !json_is_null(body)) {
        json_decref(body);
        return moat_error_set(err, -EINVAL,
                              "invalid secrets: want an object of secret name to "
                              "{Cert, Private, Key}");
    }
    if (json_is_null(body)) { /* a nil map: no secrets */
        json_decref(body);
        body = json_object();
    }
    pthread_mutex_lock(&c->lock);
    int r = write_secrets_locked(c, user, body, err);
    pthread_mutex_unlock(&c->lock);
    json_decref(body); /* holds key material: jansson frees, the parsed copies are wiped */
    return r;
}
