/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest updates (reference/marblerun.md §1.8; MarbleRun's clientapi.UpdateManifest,
 * updateManifest, AcknowledgePendingUpdate, updateApply, updateSecrets, CancelPendingUpdate,
 * coordinator/multiupdate) and the update log (§3.4 "updateLog", coordinator/updatelog).
 *
 * Every step is one store transaction, so a kill -9 leaves the state before or after it:
 *   "pendingUpdate"       multiupdate's JSON {"manifestRaw": b64, "requiredUsers": {u: acked},
 *                         "missingAcknowledgments": n}; read from the store when needed, so it
 *                         survives a restart
 *   "package:<n>"         {"SecurityVersion": n} of a package update (the raw manifest stays as
 *                         uploaded; core_update_restore applies these at start)
 *   "previousSecret:<n>"  the shared secret before the last full update (.Previous.Secrets)
 *   "updateLog"           JSON lines
 * An applied update builds a new struct core_gen and swaps it in under the lock (activations
 * keep the one they started with).
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "recovery.h"

#define K_PENDING     "pendingUpdate"
#define K_UPDATE_LOG  "updateLog"
#define K_MANIFEST    "manifest"
#define K_ROOT_SECRET "rootSecret"
#define K_PREV_SECRET "previousRootSecret"
#define P_SECRET      "secret:"
#define P_PREV_SECRET "previousSecret:"
#define P_PACKAGE     "package:"

/* coordinator/user/user.go permission IDs */
#define PERM_UPDATE_PACKAGE  "updatesecurityversion"
#define PERM_UPDATE_MANIFEST "updatemanifest"

#define E_STATE "server is not in expected state"
#define E_NONE  "no update in progress"

/* ---------------------------------------------------------------------------------------- */
/* The update log                                                                             */

/* coordinator/updatelog: zap's JSON encoder with TimeKey "time", MessageKey "update", no level,
 * ISO 8601 time; we write UTC with milliseconds ("2006-01-02T15:04:05.000Z", RFC 3339). The
 * CLI's `manifest log` consolidation reads "update", "package" and "new version". */
char* core_update_log_line(const char* msg, const char* fields_json) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64], stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when, sizeof(when), "%s.%03ldZ", stamp, ts.tv_nsec / 1000000);
    json_t* o = json_object();
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "update", json_string(msg));
    json_t* f = fields_json ? json_loads(fields_json, 0, NULL) : NULL;
    const char* k;
    json_t* v;
    json_object_foreach(f, k, v) {
        json_object_set(o, k, v);
    }
    json_decref(f);
    char* text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        abort();
    char* line = xasprintf("%s\n", text);
    free(text);
    return line;
}

void core_update_log_append(struct store_txn* t, const char* msg, json_t* fields) {
    char* f = fields ? json_dumps(fields, JSON_COMPACT) : NULL;
    json_decref(fields);
    _cleanup_free_ char* line = core_update_log_line(msg, f);
    free(f);
    const uint8_t* old = NULL;
    size_t n           = 0;
    if (txn_get(t, K_UPDATE_LOG, &old, &n) < 0)
        n = 0;
    size_t ln    = strlen(line);
    uint8_t* buf = xmalloc(n + ln + 1);
    if (n)
        memcpy(buf, old, n);
    memcpy(buf + n, line, ln);
    txn_put(t, K_UPDATE_LOG, buf, n + ln);
    free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Users and roles                                                                            */

/* MarbleRun's User.IsGranted (coordinator/user/user.go): a role's Actions (lowercased) become
 * permissions over its ResourceNames, merged over all the user's roles; a permission is granted
 * when the user holds the action and every requested resource (none for updatemanifest). The
 * resource type is implied by the action (Check allows each action for one type only).
 * TODO(lead): dedupe with core_users.c's coord_core_user_allowed at merge. */
/* ---------------------------------------------------------------------------------------- */
/* The pending update (multiupdate.MultiPartyUpdate)                                          */

struct pending {
    uint8_t* raw;
    size_t len;
    size_t n;
    char** users; /* sorted */
    bool* acked;
    int64_t missing;
};

static void pending_clear(struct pending* p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->users[i]);
    free(p->users);
    free(p->acked);
    free(p->raw);
    *p = (struct pending){0};
}

static int cmp_str(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

static int pending_load(struct store_txn* t, struct pending* ret, struct moat_error* err) {
    const uint8_t* v;
    size_t n;
    if (txn_get(t, K_PENDING, &v, &n) < 0)
        return moat_error_set(err, -ENOENT, E_NONE);
    json_t* o        = json_loadb((const char*)v, n, 0, NULL);
    json_t* raw      = json_object_get(o, "manifestRaw");
    json_t* users    = json_object_get(o, "requiredUsers");
    json_t* missing  = json_object_get(o, "missingAcknowledgments");
    struct pending p = {0};
    int r            = -EBADMSG;
    if (json_is_string(raw) && json_is_object(users) &&
        base64_decode_alloc(json_string_value(raw), json_string_length(raw), &p.raw, &p.len) == 0) {
        p.users = xcalloc(json_object_size(users) + 1, sizeof(char*));
        p.acked = xcalloc(json_object_size(users) + 1, sizeof(bool));
        const char* k;
        json_t* a;
        json_object_foreach(users, k, a) {
            p.users[p.n++] = xstrdup(k);
        }
        qsort(p.users, p.n, sizeof(char*), cmp_str);
        size_t not_acked = 0;
        for (size_t i = 0; i < p.n; i++) {
            p.acked[i] = json_is_true(json_object_get(users, p.users[i]));
            not_acked += !p.acked[i];
        }
        /* multiupdate's fallback when the field is absent: the users still missing */
        p.missing = json_is_integer(missing) ? json_integer_value(missing) : (int64_t)not_acked;
        r         = 0;
    }
    json_decref(o);
    if (r < 0) {
        pending_clear(&p);
        return moat_error_set(err, r, "the sealed pending update is corrupt");
    }
    *ret = p;
    return 0;
}

static void pending_store(struct store_txn* t, const struct pending* p) {
    json_t* o   = json_object();
    char* b64   = base64_encode_alloc(p->raw, p->len);
    json_t* map = json_object();
    for (size_t i = 0; i < p->n; i++)
        json_object_set_new(map, p->users[i], json_boolean(p->acked[i]));
    json_object_set_new(o, "manifestRaw", json_string(b64));
    json_object_set_new(o, "requiredUsers", map);
    json_object_set_new(o, "missingAcknowledgments", json_integer(p->missing));
    free(b64);
    char* text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        abort();
    txn_put(t, K_PENDING, text, strlen(text));
    free(text);
}

/* AddAcknowledgment */
static int pending_ack(struct pending* p, const void* raw, size_t len, const char* user,
                       struct moat_error* err) {
    size_t i = 0;
    while (i < p->n && strcmp(p->users[i], user ? user : "") != 0)
        i++;
    if (i == p->n)
        return moat_error_set(err, -EACCES,
                              "user %s is not allowed to acknowledge manifest updates", user);
    if (len != p->len || memcmp(raw, p->raw, len) != 0)
        return moat_error_set(err, -EINVAL,
                              "provided manifest does not match the pending manifest");
    if (!p->acked[i])
        p->missing--;
    p->acked[i] = true;
    return 0;
}

static json_t* pending_missing_json(const struct pending* p) {
    json_t* a = json_array();
    for (size_t i = 0; i < p->n; i++)
        if (!p->acked[i])
            json_array_append_new(a, json_string(p->users[i]));
    return a;
}

static void pending_result(const struct pending* p, struct coord_update_result* ret) {
    ret->missing_acks  = p->missing > 0 ? (uint64_t)p->missing : 0;
    ret->missing_users = xcalloc(p->n + 1, sizeof(char*));
    for (size_t i = 0; i < p->n; i++)
        if (!p->acked[i])
            ret->missing_users[ret->n_missing_users++] = xstrdup(p->users[i]);
}

static char* fingerprint_of(const void* raw, size_t len) {
    uint8_t d[SHA256_DIGEST_SIZE];
    if (sha256_buf(raw, len, d) < 0)
        abort();
    return hex_encode_alloc(d, sizeof(d));
}

void coord_update_result_clear(struct coord_update_result* r) {
    for (size_t i = 0; i < r->n_missing_users; i++)
        free(r->missing_users[i]);
    free(r->missing_users);
    coord_recovery_secrets_clear(&r->recovery);
    free(r->message);
    *r = (struct coord_update_result){0};
}

/* ---------------------------------------------------------------------------------------- */
/* Building a new generation                                                                  */

static uint8_t* bytes_dup(const uint8_t* p, size_t n) {
    uint8_t* d = xmalloc(n ? n : 1);
    memcpy(d, p, n);
    return d;
}

static void secret_dup(const struct moat_secret* s, struct moat_secret* ret) {
    struct moat_der* out[]      = {&ret->v.cert, &ret->v.private_key, &ret->v.public_key};
    const struct moat_der* in[] = {&s->v.cert, &s->v.private_key, &s->v.public_key};
    ret->name                   = xstrdup(s->name);
    ret->type                   = xstrdup(s->type);
    for (size_t i = 0; i < ARRAY_SIZE(out); i++) {
        out[i]->len = in[i]->len;
        out[i]->p   = in[i]->len ? bytes_dup(in[i]->p, in[i]->len) : NULL;
    }
}

static void set_add(struct moat_secret_set* set, struct moat_secret* s) {
    set->v           = xrealloc(set->v, (set->n + 1) * sizeof(*set->v));
    set->v[set->n++] = *s;
    *s               = (struct moat_secret){0};
}

static void set_add_dup(struct moat_secret_set* set, const struct moat_secret* s) {
    struct moat_secret d = {0};
    secret_dup(s, &d);
    set_add(set, &d);
}

/* A copy of the CA with a new intermediate and marble root (§3.3: rotated on every update). */
static int ca_rotated(const struct coord_core* c, const struct moat_ca* ca, struct moat_ca** ret,
                      struct moat_error* err) {
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    int r                                              = moat_ca_export(ca, &d, err);
    struct moat_ca* copy                               = NULL;
    if (r == 0)
        r = moat_ca_import(&d, &copy, err);
    if (r == 0)
        r = moat_ca_rotate_intermediate(copy, (const char* const*)c->dns_names, err);
    if (r < 0) {
        moat_ca_free(copy);
        return moat_error_prefix(err, "generating new intermediate CA for Marble authentication");
    }
    *ret = copy;
    return 0;
}

static void root_copy(const struct moat_root_secrets* in, struct moat_root_secrets* out) {
    memcpy(out, in, sizeof(*out));
}

/* The current manifest's package SecurityVersions onto `m` (a re-parse of the same raw). */
static void copy_svns(const struct coord_manifest* from, struct coord_manifest* m) {
    for (size_t i = 0; i < m->n_packages; i++) {
        const struct coord_package* p = coord_manifest_package(from, m->packages[i].name);
        if (p) {
            m->packages[i].has_security_version = p->has_security_version;
            m->packages[i].security_version     = p->security_version;
        }
    }
}

static struct coord_package* package_mut(struct coord_manifest* m, const char* name) {
    return (struct coord_package*)coord_manifest_package(m, name);
}

int core_update_restore(struct coord_core* c, struct moat_error* err) {
    struct core_gen* g = c->gen;
    for (size_t i = 0; i < g->manifest->n_packages; i++) {
        struct coord_package* p  = &g->manifest->packages[i];
        _cleanup_free_ char* key = xasprintf(P_PACKAGE "%s", p->name);
        const uint8_t* v;
        size_t n;
        if (store_get(c->store, key, &v, &n) < 0)
            continue;
        json_t* o   = json_loadb((const char*)v, n, 0, NULL);
        json_t* svn = json_object_get(o, "SecurityVersion");
        bool ok     = json_is_integer(svn) && json_integer_value(svn) >= 0;
        if (ok) {
            p->has_security_version = true;
            p->security_version     = (uint64_t)json_integer_value(svn);
        }
        json_decref(o);
        if (!ok)
            return moat_error_set(err, -EBADMSG, "the sealed state has a corrupt %s", key);
    }
    for (size_t i = 0; i < g->specs.n; i++) {
        const struct moat_secret_spec* sp = &g->specs.v[i];
        struct moat_secret s;
        if (!sp->shared || sp->user_defined ||
            core_load_secret(c->store, P_PREV_SECRET, sp->name, &s) < 0)
            continue;
        set_add(&g->shared.previous, &s);
        g->shared.has_previous = true;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* (a) Package update                                                                         */

static int package_update(struct coord_core* c, const char* user, const struct coord_manifest* up,
                          struct coord_update_result* ret, struct moat_error* err) {
    const struct core_gen* cur = c->gen;
    for (size_t i = 0; i < up->n_packages; i++) {
        if (core_manifest_user_allowed(cur->manifest, user, NULL, up->packages[i].name,
                                       PERM_UPDATE_PACKAGE))
            continue;
        /* Go's %v of []string */
        _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
        for (size_t j = 0; j < up->n_packages; j++)
            strbuf_printf(&sb, "%s%s", j ? " " : "", up->packages[j].name);
        return moat_error_set(err, -EACCES,
                              "user %s is not allowed to update one or more packages of [%s]", user,
                              sb.buf ? sb.buf : "");
    }
    int r = coord_manifest_check_update(up, cur->manifest, err);
    if (r < 0)
        return moat_error_prefix(err, "checking update manifest");

    _cleanup_(core_gen_unrefp) struct core_gen* g = core_gen_new();
    r = coord_manifest_parse(cur->manifest->raw, cur->manifest->raw_len, &g->manifest, err);
    if (r == 0)
        r = core_specs_build(g->manifest, &g->specs, err);
    if (r < 0)
        return r;
    copy_svns(cur->manifest, g->manifest);
    for (size_t i = 0; i < up->n_packages; i++) {
        struct coord_package* p = package_mut(g->manifest, up->packages[i].name);
        p->has_security_version = true;
        p->security_version     = up->packages[i].security_version;
    }
    r = ca_rotated(c, cur->ca, &g->ca, err);
    if (r < 0)
        return r;
    root_copy(&cur->root, &g->root);
    /* shared certificates are signed by the old intermediate: regenerated; symmetric kept */
    for (size_t i = 0; i < g->specs.n; i++) {
        const struct moat_secret_spec* sp = &g->specs.v[i];
        if (!sp->shared || sp->user_defined)
            continue;
        const struct moat_secret* old = moat_secret_set_find(&cur->shared.current, sp->name);
        struct moat_secret s          = {0};
        if (old && strcmp(sp->type, "symmetric-key") == 0) {
            set_add_dup(&g->shared.current, old);
            continue;
        }
        r = moat_secret_generate(g->ca, sp, NULL, &s, err);
        if (r < 0)
            return moat_error_prefix(err, "regenerating shared secrets for updated manifest");
        set_add(&g->shared.current, &s);
    }
    for (size_t i = 0; i < cur->shared.previous.n; i++)
        set_add_dup(&g->shared.previous, &cur->shared.previous.v[i]);
    g->shared.has_previous = cur->shared.has_previous;

    struct store_txn* t                                = store_begin(c->store);
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    r                                                  = moat_ca_export(g->ca, &d, err);
    if (r < 0) {
        store_rollback(t);
        return r;
    }
    core_txn_put_ca(t, &d);
    for (size_t i = 0; i < g->shared.current.n; i++)
        core_txn_put_secret(t, P_SECRET, &g->shared.current.v[i]);
    for (size_t i = 0; i < up->n_packages; i++) {
        const struct coord_package* p = &up->packages[i];
        _cleanup_free_ char* key      = xasprintf(P_PACKAGE "%s", p->name);
        _cleanup_free_ char* val =
            xasprintf("{\"SecurityVersion\":%llu}", (unsigned long long)p->security_version);
        txn_put(t, key, val, strlen(val));
        core_update_log_append(t, "SecurityVersion increased",
                               json_pack("{s:s, s:s, s:I}", "user", user, "package", p->name,
                                         "new version", (json_int_t)p->security_version));
    }
    r = store_commit(t, err);
    if (r < 0)
        return moat_error_prefix(err, "updating manifest failed: committing store transaction");
    log_warning(
        "coordinator: an update manifest overriding package settings was set; restart "
        "the Marbles to enforce it");
    struct core_gen* old = c->gen;
    c->gen               = TAKE_PTR(g);
    core_gen_unref(old);
    c->ca_generation++;
    ret->applied = true;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* (b) Full update: apply (updateApply, updateSecrets)                                        */

/* Secret.EqualDefinition */
static bool secret_def_equal(const struct coord_secret* a, const struct coord_secret* b) {
    if (strcmp(a->type, b->type) != 0 || a->size != b->size || a->shared != b->shared ||
        a->user_defined != b->user_defined || a->valid_for != b->valid_for)
        return false;
    if (!a->cert_template || !b->cert_template)
        return !a->cert_template && !b->cert_template;
    return json_equal(a->cert_template, b->cert_template);
}

static const char* kv_find(const struct coord_manifest* m, const char* name) {
    for (size_t i = 0; i < m->n_recovery_keys; i++)
        if (strcmp(m->recovery_keys[i].name, name) == 0)
            return m->recovery_keys[i].value;
    return NULL;
}

/* recoveryKeysHaveChanged */
static bool recovery_changed(const struct coord_manifest* a, const struct coord_manifest* b) {
    if (a->n_recovery_keys != b->n_recovery_keys)
        return true;
    uint64_t ta = a->config.recovery_threshold, tb = b->config.recovery_threshold;
    if ((ta == 0 && b->n_recovery_keys == tb) || (tb == 0 && a->n_recovery_keys == ta) ||
        ta == tb) {
        for (size_t i = 0; i < a->n_recovery_keys; i++) {
            const char* v = kv_find(b, a->recovery_keys[i].name);
            if (!v || strcmp(v, a->recovery_keys[i].value) != 0)
                return true;
        }
        return false;
    }
    return true;
}

/* The new generation's secrets (updateSecrets): certificates are regenerated (new CA),
 * symmetric keys kept unless new, changed or RotateRootSecret; the value before the update
 * becomes .Previous. */
static int apply_secrets(const struct core_gen* cur, struct core_gen* g, struct moat_error* err) {
    bool rotate = g->manifest->config.rotate_root_secret;
    for (size_t i = 0; i < g->specs.n; i++) {
        const struct moat_secret_spec* sp = &g->specs.v[i];
        if (!sp->shared || sp->user_defined)
            continue;
        const struct coord_secret* od  = coord_manifest_secret(cur->manifest, sp->name);
        const struct coord_secret* nd  = coord_manifest_secret(g->manifest, sp->name);
        const struct moat_secret* oldv = moat_secret_set_find(&cur->shared.current, sp->name);
        bool unchanged                 = od && oldv && secret_def_equal(od, nd);
        if (unchanged && strcmp(sp->type, "symmetric-key") == 0 && !rotate) {
            set_add_dup(&g->shared.current, oldv);
            const struct moat_secret* prev =
                cur->shared.has_previous ? moat_secret_set_find(&cur->shared.previous, sp->name)
                                         : NULL;
            set_add_dup(&g->shared.previous, prev ? prev : oldv);
            continue;
        }
        struct moat_secret s = {0};
        int r                = moat_secret_generate(g->ca, sp, NULL, &s, err);
        if (r < 0)
            return moat_error_prefix(err, "generating secrets from manifest");
        set_add_dup(&g->shared.previous, unchanged ? oldv : &s);
        set_add(&g->shared.current, &s);
    }
    g->shared.has_previous = true;
    return 0;
}

static int new_generation(struct coord_core* c, const uint8_t* raw, size_t len,
                          struct core_gen** ret, struct moat_error* err) {
    const struct core_gen* cur                    = c->gen;
    _cleanup_(core_gen_unrefp) struct core_gen* g = core_gen_new();
    int r = coord_manifest_parse(raw, len, &g->manifest, err);
    if (r < 0)
        return moat_error_prefix(err, "unmarshaling update manifest");
    r = coord_manifest_check_user_certs(g->manifest, err);
    if (r < 0)
        return moat_error_prefix(err, "generating users from manifest");
    r = core_specs_build(g->manifest, &g->specs, err);
    if (r == 0)
        r = ca_rotated(c, cur->ca, &g->ca, err);
    if (r < 0)
        return r;
    root_copy(&cur->root, &g->root);
    if (g->manifest->config.rotate_root_secret && moat_root_secrets_rotate(&g->root, err) < 0)
        return moat_error_prefix(err, "generating new root secret");
    r = apply_secrets(cur, g, err);
    if (r == 0 && core_template_dry_run(g->manifest, &g->specs, g->ca, &g->shared.current, err) < 0)
        r = moat_error_prefix(err, "running manifest template dry run");
    if (r == 0)
        *ret = TAKE_PTR(g);
    return r;
}

static int put_generation(struct store_txn* t, const struct core_gen* cur, const struct core_gen* g,
                          struct moat_error* err) {
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    int r                                              = moat_ca_export(g->ca, &d, err);
    if (r < 0)
        return r;
    core_txn_put_ca(t, &d);
    txn_put(t, K_ROOT_SECRET, g->root.current, sizeof(g->root.current));
    if (g->root.has_previous)
        txn_put(t, K_PREV_SECRET, g->root.previous, sizeof(g->root.previous));
    txn_put(t, K_MANIFEST, g->manifest->raw, g->manifest->raw_len);
    /* removed secrets and changed definitions (user-defined values included) go */
    for (size_t i = 0; i < cur->manifest->n_secrets; i++) {
        const struct coord_secret* od = &cur->manifest->secrets[i];
        const struct coord_secret* nd = coord_manifest_secret(g->manifest, od->name);
        if (nd && secret_def_equal(od, nd))
            continue;
        _cleanup_free_ char* k1 = xasprintf(P_SECRET "%s", od->name);
        _cleanup_free_ char* k2 = xasprintf(P_PREV_SECRET "%s", od->name);
        txn_delete(t, k1);
        txn_delete(t, k2);
    }
    for (size_t i = 0; i < g->shared.current.n; i++)
        core_txn_put_secret(t, P_SECRET, &g->shared.current.v[i]);
    for (size_t i = 0; i < g->shared.previous.n; i++)
        core_txn_put_secret(t, P_PREV_SECRET, &g->shared.previous.v[i]);
    /* package updates applied to the old manifest do not carry over */
    for (size_t i = 0; i < cur->manifest->n_packages; i++) {
        _cleanup_free_ char* k = xasprintf(P_PACKAGE "%s", cur->manifest->packages[i].name);
        txn_delete(t, k);
    }
    txn_delete(t, K_PENDING);
    return 0;
}

/* Applies the pending manifest `raw` in `t` (which already holds the acknowledgement's writes)
 * and commits. Activation counters are kept, as MarbleRun keeps them. */
static int apply_update(struct coord_core* c, struct store_txn* t, const uint8_t* raw, size_t len,
                        struct coord_update_result* ret, struct moat_error* err) {
    struct core_gen* g = NULL;
    int r              = new_generation(c, raw, len, &g, err);
    if (r == 0)
        r = put_generation(t, c->gen, g, err);
    if (r < 0) {
        store_rollback(t);
        core_gen_unref(g);
        return r;
    }
    _cleanup_free_ char* fp = fingerprint_of(raw, len);
    core_update_log_append(t, "Complete Manifest updated",
                           json_pack("{s:s}", "manifestFingerprint", fp));

    struct recovery_setup rs = {0};
    bool new_dek             = recovery_changed(c->gen->manifest, g->manifest);
    uint8_t old_dek[STORE_KEY_SIZE];
    _cleanup_free_ char* old_rd = NULL;
    if (new_dek) {
        r = core_recovery_for(g->manifest, &rs, err);
        if (r < 0) {
            store_rollback(t);
            core_gen_unref(g);
            return moat_error_prefix(err, "generating recovery encryption key");
        }
        store_get_dek(c->store, old_dek);
        old_rd = store_recovery_data(c->store) ? xstrdup(store_recovery_data(c->store)) : NULL;
        store_set_dek(c->store, rs.dek);
        store_set_recovery_data(c->store, rs.recovery_data);
    }
    r = store_commit(t, err);
    if (r < 0 && new_dek) { /* the state on disk is still under the old DEK */
        store_set_dek(c->store, old_dek);
        store_set_recovery_data(c->store, old_rd);
    }
    OPENSSL_cleanse(old_dek, sizeof(old_dek));
    if (r == 0 && new_dek)
        core_recovery_secrets_from(&rs, &ret->recovery);
    recovery_setup_free(&rs);
    if (r < 0) {
        core_gen_unref(g);
        return moat_error_prefix(err, "committing store transaction");
    }
    log_warning(
        "coordinator: an updated manifest overriding the original manifest was set; "
        "restart the Marbles to enforce it");
    struct core_gen* old = c->gen;
    c->gen               = g;
    core_gen_unref(old);
    c->ca_generation++;
    ret->applied        = true;
    struct moat_error e = {0};
    if (core_apply_seal_mode(c, c->gen->manifest, &e) < 0)
        log_error("coordinator: the updated manifest's SealMode is not applied: %s", e.msg);
    return 0;
}

/* A failed apply cancels the pending update (updateApply's deferred cleanup). */
static void cancel_after_failure(struct coord_core* c, const uint8_t* raw, size_t len) {
    struct store_txn* t = store_begin(c->store);
    txn_delete(t, K_PENDING);
    _cleanup_free_ char* fp = fingerprint_of(raw, len);
    core_update_log_append(t, "Complete Manifest update cancelled due to error during apply",
                           json_pack("{s:s}", "manifestFingerprint", fp));
    struct moat_error e = {0};
    if (store_commit(t, &e) < 0)
        log_warning("coordinator: failed to cancel the pending update: %s", e.msg);
    moat_error_clear(&e);
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points                                                                               */

static void users_with_update_permission(const struct coord_manifest* m, struct pending* p) {
    p->users = xcalloc(m->n_users + 1, sizeof(char*));
    p->acked = xcalloc(m->n_users + 1, sizeof(bool));
    for (size_t i = 0; i < m->n_users; i++) /* sorted: the manifest's maps are */
        if (core_manifest_user_allowed(m, m->users[i].name, NULL, NULL, PERM_UPDATE_MANIFEST))
            p->users[p->n++] = xstrdup(m->users[i].name);
}

static int full_update(struct coord_core* c, const char* user, const struct coord_manifest* m,
                       struct coord_update_result* ret, struct moat_error* err) {
    const struct coord_manifest* cur = c->gen->manifest;
    if (!core_manifest_user_allowed(cur, user, NULL, NULL, PERM_UPDATE_MANIFEST))
        return moat_error_set(err, -EACCES,
                              "user %s is not allowed to update the complete manifest", user);
    int r = coord_manifest_check(m, err);
    if (r == 0)
        r = coord_manifest_check_env_nul(m, err);
    if (r == 0)
        r = core_check_seal_mode(c, m, err);
    if (r < 0)
        return moat_error_prefix(err, "invalid manifest");
    struct pending p = {.raw = bytes_dup(m->raw, m->raw_len), .len = m->raw_len};
    users_with_update_permission(cur, &p);
    p.missing = cur->config.update_threshold ? (int64_t)cur->config.update_threshold : (int64_t)p.n;
    r         = pending_ack(&p, m->raw, m->raw_len, user, err);
    if (r < 0) {
        pending_clear(&p);
        return moat_error_prefix(err, "adding acknowledgment");
    }
    struct store_txn* t     = store_begin(c->store);
    _cleanup_free_ char* fp = fingerprint_of(m->raw, m->raw_len);
    if (p.missing <= 0) {
        core_update_log_append(
            t,
            "Complete Manifest update initiated by user. No further acknowledgements "
            "required",
            json_pack("{s:s, s:s}", "user", user, "manifestFingerprint", fp));
        r = apply_update(c, t, p.raw, p.len, ret, err);
        pending_clear(&p);
        return r;
    }
    pending_store(t, &p);
    core_update_log_append(
        t,
        "Complete Manifest update initiated by user. Waiting for acknowledgments to "
        "apply the update",
        json_pack("{s:s, s:I, s:o, s:s}", "user", user, "missingAcknowledgments",
                  (json_int_t)p.missing, "missingUsers", pending_missing_json(&p),
                  "manifestFingerprint", fp));
    r = store_commit(t, err);
    if (r == 0)
        pending_result(&p, ret);
    pending_clear(&p);
    return r < 0 ? moat_error_prefix(err, "committing store transaction") : 0;
}

static bool has_pending(struct coord_core* c) {
    const uint8_t* v;
    size_t n;
    return store_get(c->store, K_PENDING, &v, &n) == 0;
}

static int update_locked(struct coord_core* c, const char* user, const void* raw, size_t len,
                         struct coord_update_result* ret, struct moat_error* err) {
    if (c->state != COORD_STATE_ACCEPTING_MARBLES)
        return moat_error_set(err, -EPERM, E_STATE);
    _cleanup_coord_manifest_ struct coord_manifest* m = NULL;
    int r                                             = coord_manifest_parse(raw, len, &m, err);
    if (r < 0)
        return moat_error_prefix(err, "unmarshaling update manifest");
    if (has_pending(c))
        return moat_error_set(err, -EBUSY,
                              "update already in progress. Acknowledge the update to apply it, "
                              "or cancel it to start a new one");
    if (coord_manifest_is_update(m))
        return package_update(c, user, m, ret, err);
    return full_update(c, user, m, ret, err);
}

int coord_core_update_manifest(struct coord_core* c, const char* user, const void* raw, size_t len,
                               struct coord_update_result* ret, struct moat_error* err) {
    struct coord_update_result res = {0};
    pthread_mutex_lock(&c->lock);
    int r = update_locked(c, user ? user : "", raw, len, &res, err);
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        coord_update_result_clear(&res);
    else
        *ret = res;
    return r;
}

/* MarbleRun's v2 UpdateManifestPost message while acknowledgements are missing. */
static char* ack_message(const struct coord_update_result* r) {
    struct strbuf sb = STRBUF_INIT;
    if (r->missing_acks == 1)
        strbuf_puts(&sb, "1 user still needs to acknowledge the update manifest.");
    else
        strbuf_printf(&sb, "%llu users still need to acknowledge the update manifest.",
                      (unsigned long long)r->missing_acks);
    strbuf_puts(&sb, "\nThe following users have not yet accepted: ");
    for (size_t i = 0; i < r->n_missing_users; i++)
        strbuf_printf(&sb, "%s%s", i ? ", " : "", r->missing_users[i]);
    strbuf_putc(&sb, '\0');
    return strbuf_take(&sb, NULL);
}

static int ack_locked(struct coord_core* c, const char* user, const void* raw, size_t len,
                      struct coord_update_result* ret, struct moat_error* err) {
    if (c->state != COORD_STATE_ACCEPTING_MARBLES)
        return moat_error_set(err, -EPERM, E_STATE);
    struct store_txn* t = store_begin(c->store);
    struct pending p    = {0};
    int r               = pending_load(t, &p, err);
    if (r == 0)
        r = pending_ack(&p, raw, len, user, err);
    if (r < 0) {
        store_rollback(t);
        pending_clear(&p);
        return r;
    }
    pending_store(t, &p);
    _cleanup_free_ char* fp = fingerprint_of(p.raw, p.len);
    core_update_log_append(t, "Complete Manifest update acknowledged by user",
                           json_pack("{s:s, s:I, s:o, s:s}", "user", user, "missingAcknowledgments",
                                     (json_int_t)(p.missing > 0 ? p.missing : 0), "missingUsers",
                                     pending_missing_json(&p), "manifestFingerprint", fp));
    if (p.missing > 0) {
        r = store_commit(t, err);
        if (r == 0) {
            pending_result(&p, ret);
            ret->message = ack_message(ret);
        }
        pending_clear(&p);
        return r;
    }
    r = apply_update(c, t, p.raw, p.len, ret, err);
    if (r < 0)
        cancel_after_failure(c, p.raw, p.len);
    else
        ret->message =
            xstrdup("All users have acknowledged the update manifest. Update successfully applied");
    pending_clear(&p);
    return r;
}

int coord_core_ack_update(struct coord_core* c, const char* user, const void* raw, size_t len,
                          struct coord_update_result* ret, struct moat_error* err) {
    struct coord_update_result res = {0};
    pthread_mutex_lock(&c->lock);
    int r = ack_locked(c, user ? user : "", raw, len, &res, err);
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        coord_update_result_clear(&res);
    else
        *ret = res;
    return r;
}

int coord_core_pending_update(struct coord_core* c, uint8_t** ret_raw, size_t* ret_len,
                              struct coord_update_result* ret, struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    struct store_txn* t = store_begin(c->store);
    struct pending p    = {0};
    int r               = pending_load(t, &p, err);
    store_rollback(t);
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    struct coord_update_result res = {0};
    pending_result(&p, &res);
    res.message = res.missing_acks == 1
                      ? xstrdup("1 user still needs to acknowledge the update manifest")
                      : xasprintf("%llu users still need to acknowledge the update manifest",
                                  (unsigned long long)res.missing_acks);
    *ret_raw    = TAKE_PTR(p.raw);
    *ret_len    = p.len;
    *ret        = res;
    pending_clear(&p);
    return 0;
}

int coord_core_cancel_update(struct coord_core* c, const char* user, struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    int r = 0;
    if (c->state != COORD_STATE_ACCEPTING_MARBLES)
        r = moat_error_set(err, -EPERM, E_STATE);
    else if (!core_manifest_user_allowed(c->gen->manifest, user, NULL, NULL, PERM_UPDATE_MANIFEST))
        r = moat_error_set(err, -EACCES, "user %s is not allowed to cancel the manifest update",
                           user ? user : "");
    struct store_txn* t = r == 0 ? store_begin(c->store) : NULL;
    struct pending p    = {0};
    if (t)
        r = pending_load(t, &p, err);
    if (r == 0) {
        txn_delete(t, K_PENDING);
        _cleanup_free_ char* fp = fingerprint_of(p.raw, p.len);
        core_update_log_append(t, "Complete Manifest update cancelled by user",
                               json_pack("{s:s, s:s}", "user", user, "manifestFingerprint", fp));
        r = store_commit(t, err);
    } else if (t) {
        store_rollback(t);
    }
    pthread_mutex_unlock(&c->lock);
    pending_clear(&p);
    return r;
}

int coord_core_update_log(struct coord_core* c, char*** ret_lines, size_t* ret_n,
                          struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    if (c->state != COORD_STATE_ACCEPTING_MARBLES) {
        pthread_mutex_unlock(&c->lock);
        return moat_error_set(err, -EPERM, E_STATE);
    }
    const uint8_t* v = NULL;
    size_t n         = 0;
    if (store_get(c->store, K_UPDATE_LOG, &v, &n) < 0)
        n = 0;
    _cleanup_free_ char* text = xstrndup(n ? (const char*)v : "", n);
    pthread_mutex_unlock(&c->lock);
    /* strings.Split(strings.TrimSpace(log), "\n") */
    char** lines = xcalloc(1, sizeof(char*));
    size_t count = 0;
    char* p      = text;
    while (*p) {
        char* nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        if (l > 0) {
            lines          = xrealloc(lines, (count + 2) * sizeof(char*));
            lines[count++] = xstrndup(p, l);
            lines[count]   = NULL;
        }
        p += l + (nl ? 1 : 0);
    }
    *ret_lines = lines;
    *ret_n     = count;
    return 0;
}

uint64_t coord_core_ca_generation(struct coord_core* c) {
    pthread_mutex_lock(&c->lock);
    uint64_t g = c->ca_generation;
    pthread_mutex_unlock(&c->lock);
    return g;
}
