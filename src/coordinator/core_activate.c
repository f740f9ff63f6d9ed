/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Marble's activation (reference/marblerun.md §4.3; MarbleRun's coordinator/core/marbleapi.go
 * Activate, verifyManifestRequirement, customizeParameters) and the template data of §2.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "gotemplate.h"
#include "marble_quote.h"

#define K_ACTIVATIONS_PREFIX "activations:"

void coord_params_clear(struct coord_params* p) {
    for (size_t i = 0; i < p->n_files; i++) {
        OPENSSL_cleanse(p->files[i].data, p->files[i].len);
        free(p->files[i].data);
        free(p->files[i].name);
    }
    for (size_t i = 0; i < p->n_env; i++) {
        OPENSSL_cleanse(p->env[i].data, p->env[i].len);
        free(p->env[i].data);
        free(p->env[i].name);
    }
    for (size_t i = 0; i < p->argc; i++)
        free(p->argv[i]);
    free(p->files);
    free(p->env);
    free(p->argv);
    *p = (struct coord_params){0};
}
static void coord_params_clearp(struct coord_params* p) {
    coord_params_clear(p);
}

static const struct coord_param* find_param(const struct coord_param* v, size_t n,
                                            const char* name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}
const struct coord_param* coord_params_file(const struct coord_params* p, const char* name) {
    return find_param(p->files, p->n_files, name);
}
const struct coord_param* coord_params_env(const struct coord_params* p, const char* name) {
    return find_param(p->env, p->n_env, name);
}

/* Adds or replaces (the predefined env overwrites the manifest's, §2); takes `data`. */
static void params_put(struct coord_param** v, size_t* n, const char* name, uint8_t* data,
                       size_t len) {
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*v)[i].name, name) == 0) {
            OPENSSL_cleanse((*v)[i].data, (*v)[i].len);
            free((*v)[i].data);
            (*v)[i].data = data;
            (*v)[i].len  = len;
            return;
        }
    }
    *v       = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (struct coord_param){.name = xstrdup(name), .data = data, .len = len};
    (*n) += 1;
}

static int cmp_param(const void* a, const void* b) {
    return strcmp(((const struct coord_param*)a)->name, ((const struct coord_param*)b)->name);
}

/* ---------------------------------------------------------------------------------------- */
/* Template data (§2: manifest.TemplateSecrets)                                               */

static struct gotemplate_value* secret_value(const char* type, const struct moat_cert_key* ck) {
    struct gotemplate_secret s = {.type        = type,
                                  .cert        = ck->cert.p,
                                  .cert_len    = ck->cert.len,
                                  .private_key = ck->private_key.p,
                                  .private_len = ck->private_key.len,
                                  .public_key  = ck->public_key.p,
                                  .public_len  = ck->public_key.len};
    return gotemplate_secret_new(&s);
}

static struct gotemplate_value* cert_value(X509* cert) {
    uint8_t* der = NULL;
    int n        = i2d_X509(cert, &der);
    if (n <= 0)
        abort();
    struct gotemplate_secret s = {.cert = der, .cert_len = (size_t)n};
    struct gotemplate_value* v = gotemplate_secret_new(&s);
    OPENSSL_free(der);
    return v;
}

/* .Secrets: the shared set, the marble's own set, and user-defined secrets (`user`, NULL: none;
 * `missing` until uploaded, so rendering them fails "tried to parse secret with empty
 * value"). */
static int secrets_map(const struct core_specs* specs, const struct moat_secret_set* shared,
                       const struct moat_secret_set* own, const struct moat_secret_set* user,
                       const struct moat_cert_key* missing, struct gotemplate_value** ret) {
    struct gotemplate_value* map = gotemplate_map_new("map[string]manifest.Secret");
    int r                        = 0;
    for (size_t i = 0; r == 0 && i < specs->n; i++) {
        const struct moat_secret_spec* sp = &specs->v[i];
        const struct moat_secret* s       = moat_secret_set_find(shared, sp->name);
        if (!s)
            s = moat_secret_set_find(own, sp->name);
        if (!s && user && sp->user_defined)
            s = moat_secret_set_find(user, sp->name);
        r = gotemplate_set(map, sp->name, secret_value(sp->type, s ? &s->v : missing));
    }
    if (r < 0) {
        gotemplate_value_unref(map);
        return r;
    }
    *ret = map;
    return 0;
}

/* .Secrets and .Previous.Secrets of the template data (§2). */
static int set_secrets(struct gotemplate_value* root, struct gotemplate_value* secrets,
                       struct gotemplate_value* previous) {
    int r                         = gotemplate_set(root, "Secrets", gotemplate_value_ref(secrets));
    struct gotemplate_value* prev = gotemplate_struct_new("manifest.PreviousSecrets");
    if (r == 0)
        r = gotemplate_set(root, "Previous", prev);
    else
        gotemplate_value_unref(prev);
    if (r == 0)
        r = gotemplate_set(prev, "Secrets", gotemplate_value_ref(previous));
    return r;
}

/*
 * Graphene-era manifests (seeds 000/001) write `.Marblerun.*` and `{{ hex .Marblerun.SealKey }}`,
 * which MarbleRun no longer accepts. moat does: `.Marblerun` is `.MarbleRun` under its old name,
 * and SealKey a per-marble 128-bit key derived like a per-marble symmetric-key secret (§3.6:
 * HKDF from the root secret, the UUID and the marble type) under a name no manifest secret can
 * shadow, so it is stable across restarts of the same Marble (docs/coordinator.md).
 */
#define SEAL_KEY_NAME "moat:.Marblerun.SealKey"
#define SEAL_KEY_SIZE 16

static const char* const RESERVED[] = {"RootCA", "MarbleCert", "CoordinatorRoot",
                                       "CoordinatorIntermediate"};

/* .MarbleRun (manifest.ReservedSecrets) from `v` (one value per RESERVED name, taken), and the
 * Graphene-era .Marblerun: the same values and SealKey (taken; NULL: none). */
static int set_reserved(struct gotemplate_value* root, struct gotemplate_value* v[4],
                        struct gotemplate_value* seal_key) {
    struct gotemplate_value* mr  = gotemplate_struct_new("manifest.ReservedSecrets");
    struct gotemplate_value* old = gotemplate_struct_new("manifest.ReservedSecrets");
    int r                        = gotemplate_set(root, "MarbleRun", mr);
    if (r == 0)
        r = gotemplate_set(root, "Marblerun", old);
    else
        gotemplate_value_unref(old);
    for (size_t i = 0; i < ARRAY_SIZE(RESERVED); i++) {
        if (r == 0)
            r = gotemplate_set(mr, RESERVED[i], gotemplate_value_ref(v[i]));
        if (r == 0)
            r = gotemplate_set(old, RESERVED[i], v[i]);
        else
            gotemplate_value_unref(v[i]);
    }
    if (r == 0 && seal_key)
        r = gotemplate_set(old, "SealKey", seal_key);
    else if (seal_key)
        gotemplate_value_unref(seal_key);
    return r;
}

static int template_data(const struct core_gen* g, const struct moat_cert_key* leaf,
                         const uint8_t* seal_key, struct gotemplate_value* secrets,
                         struct gotemplate_value* previous, struct gotemplate_value** ret) {
    _cleanup_gotemplate_value_ struct gotemplate_value* root =
        gotemplate_struct_new("manifest.TemplateSecrets");
    struct gotemplate_value* v[4] = {cert_value(g->ca->marble_root_cert),
                                     secret_value("cert-ecdsa", leaf), cert_value(g->ca->root_cert),
                                     cert_value(g->ca->intermediate_cert)};
    /* a symmetric key is its Private and its Public (what raw/hex/base64 take), as MarbleRun's */
    const struct moat_cert_key k = {.private_key = {(uint8_t*)seal_key, SEAL_KEY_SIZE},
                                    .public_key  = {(uint8_t*)seal_key, SEAL_KEY_SIZE}};
    int r                        = set_reserved(root, v, secret_value("symmetric-key", &k));
    if (r == 0)
        r = set_secrets(root, secrets, previous);
    if (r == 0)
        *ret = TAKE_PTR(root);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* customizeParameters                                                                        */

static int render_all(const struct coord_files* in, enum gotemplate_funcs funcs,
                      const struct gotemplate_value* data, const char* what,
                      struct coord_param** out, size_t* n_out, struct moat_error* err) {
    for (size_t i = 0; i < in->n; i++) {
        const struct coord_file* f = &in->v[i];
        uint8_t* bytes;
        size_t len;
        if (f->no_templates) {
            bytes = xmalloc(f->len + 1);
            memcpy(bytes, f->data, f->len);
            bytes[f->len] = 0;
            len           = f->len;
        } else {
            int r = gotemplate_render("data", (const char*)f->data, f->len, funcs, data, &bytes,
                                      &len, err);
            if (r < 0)
                return moat_error_prefix(err, "parsing secrets for %s \"%s\"", what, f->name);
        }
        params_put(out, n_out, f->name, bytes, len);
    }
    return 0;
}

static uint8_t* pem_bytes(const char* type, const struct moat_der* d, size_t* ret_len) {
    return (uint8_t*)core_pem(type, d->p, d->len, ret_len);
}

static uint8_t* cert_pem(X509* cert, size_t* ret_len) {
    uint8_t* der = NULL;
    int n        = i2d_X509(cert, &der);
    if (n <= 0)
        abort();
    uint8_t* p = (uint8_t*)core_pem("CERTIFICATE", der, (size_t)n, ret_len);
    OPENSSL_free(der);
    return p;
}

/* §2 the always-injected env, after the manifest's (overwriting it). */
static void predefined_env(const struct core_gen* g, const struct moat_cert_key* leaf,
                           struct coord_params* p) {
    size_t n;
    uint8_t* v = cert_pem(g->ca->marble_root_cert, &n);
    params_put(&p->env, &p->n_env, "MARBLE_PREDEFINED_ROOT_CA", v, n);
    size_t n1, n2;
    _cleanup_free_ uint8_t* l = pem_bytes("CERTIFICATE", &leaf->cert, &n1);
    _cleanup_free_ uint8_t* i = cert_pem(g->ca->intermediate_cert, &n2);
    uint8_t* chain            = xmalloc(n1 + n2 + 1);
    memcpy(chain, l, n1);
    memcpy(chain + n1, i, n2);
    chain[n1 + n2] = 0;
    params_put(&p->env, &p->n_env, "MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN", chain, n1 + n2);
    v = pem_bytes("PRIVATE KEY", &leaf->private_key, &n);
    params_put(&p->env, &p->n_env, "MARBLE_PREDEFINED_PRIVATE_KEY", v, n);
    v = cert_pem(g->ca->root_cert, &n);
    params_put(&p->env, &p->n_env, "MARBLE_PREDEFINED_COORDINATOR_ROOT_CA", v, n);
}

static int customize(const struct core_gen* g, const struct coord_marble* mb,
                     const struct moat_cert_key* leaf, const struct gotemplate_value* data,
                     struct coord_params* ret, struct moat_error* err) {
    _cleanup_(coord_params_clearp) struct coord_params p = {0};
    int r = render_all(&mb->files, GOTEMPLATE_FUNCS_FILES, data, "file", &p.files, &p.n_files, err);
    if (r == 0)
        r = render_all(&mb->env, GOTEMPLATE_FUNCS_ENV, data, "env variable", &p.env, &p.n_env, err);
    if (r < 0)
        return r;
    predefined_env(g, leaf, &p);
    if (p.n_files > 0)
        qsort(p.files, p.n_files, sizeof(*p.files), cmp_param);
    qsort(p.env, p.n_env, sizeof(*p.env), cmp_param); /* never empty: the predefined env */
    p.argv = xcalloc(mb->argv.n + 1, sizeof(char*));
    for (; p.argc < mb->argv.n; p.argc++)
        p.argv[p.argc] = xstrdup(mb->argv.v[p.argc]);
    *ret = p;
    p    = (struct coord_params){0};
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Activate                                                                                   */

static uint64_t activations_locked(struct coord_core* c, const char* type) {
    _cleanup_free_ char* key = xasprintf(K_ACTIVATIONS_PREFIX "%s", type);
    const uint8_t* v;
    size_t n;
    uint64_t count = 0;
    char buf[24]   = {0};
    if (store_get(c->store, key, &v, &n) == 0 && n > 0 && n < sizeof(buf)) {
        memcpy(buf, v, n);
        if (parse_u64(buf, 16, &count) < 0)
            count = 0;
    }
    return count;
}

static int max_activations_check(struct coord_core* c, const struct coord_marble* mb,
                                 struct moat_error* err) {
    if (mb->max_activations == 0)
        return 0;
    if (activations_locked(c, mb->name) >= mb->max_activations)
        return moat_error_set(err, -EPERM,
                              "reached max activations count (%llu) for marble type \"%s\"",
                              (unsigned long long)mb->max_activations, mb->name);
    return 0;
}

/* §4.3 step 6: counted (and committed) only for a marble with MaxActivations. */
static int count_activation(struct coord_core* c, const struct coord_marble* mb,
                            struct moat_error* err) {
    if (mb->max_activations == 0)
        return 0;
    int r = max_activations_check(c, mb, err);
    if (r < 0)
        return r;
    _cleanup_free_ char* key = xasprintf(K_ACTIVATIONS_PREFIX "%s", mb->name);
    char v[24];
    int n = snprintf(v, sizeof(v), "%llx", (unsigned long long)activations_locked(c, mb->name) + 1);
    struct store_txn* t = store_begin(c->store);
    txn_put(t, key, v, (size_t)n);
    return store_commit(t, err);
}

static void package_of(const struct coord_package* p, struct marble_package* ret) {
    *ret = (struct marble_package){
        .debug                   = p->debug,
        .unique_id               = *p->unique_id ? p->unique_id : NULL,
        .signer_id               = *p->signer_id ? p->signer_id : NULL,
        .product_id              = p->has_product_id ? &p->product_id : NULL,
        .security_version        = p->has_security_version ? &p->security_version : NULL,
        .accepted_tcb_statuses   = (const char* const*)p->accepted_tcb_statuses.v,
        .n_accepted_tcb_statuses = p->accepted_tcb_statuses.n,
        .accepted_advisories     = (const char* const*)p->accepted_advisories.v,
        .n_accepted_advisories   = p->accepted_advisories.n,
    };
}

/* verifyManifestRequirement: errors are PermissionDenied "marble verification failed: …". */
static int verify_marble(struct coord_core* c, const struct core_gen* g, const uint8_t* quote,
                         size_t quote_len, const uint8_t* cert, size_t cert_len, const char* type,
                         const struct coord_marble** ret, struct moat_error* err) {
    const struct coord_marble* mb = coord_manifest_marble(g->manifest, type ? type : "");
    if (!mb)
        return moat_error_set(err, -EPERM, "unknown marble type requested");
    const struct coord_package* pkg = coord_manifest_package(g->manifest, mb->package);
    if (!pkg)
        return moat_error_set(err, -EPERM, "undefined package \"%s\"", mb->package);
    if (!c->simulation) { /* §6: in simulation mode quotes are not validated */
        struct marble_package mp;
        package_of(pkg, &mp);
        const struct collateral* col = NULL;
        int r                        = core_collateral(c, quote, quote_len, &col, err);
        if (r == 0) {
            struct attest_verify_opts vo;
            struct core_verify_slot* slot = core_verify_acquire(c, &vo);
            r = marble_quote_validate(quote, quote_len, cert, cert_len, &mp, col, &vo, err);
            core_verify_release(slot);
        }
        if (r < 0)
            return moat_error_prefix(err, "invalid quote");
    }
    pthread_mutex_lock(&c->lock);
    int r = max_activations_check(c, mb, err);
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    *ret = mb;
    return 0;
}

/* Step 5: leaf, secrets, parameters. Errors are Internal. */
static int build_params(struct coord_core* c, const struct core_gen* g,
                        const struct coord_marble* mb, const uint8_t* csr, size_t csr_len,
                        const uint8_t uuid[16], struct coord_params* ret, struct moat_error* err) {
    struct moat_marble_cert_req req = {.csr = csr, .csr_len = csr_len, .marble_type = mb->name};
    memcpy(req.uuid, uuid, 16);
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key leaf = {0};
    int r = moat_ca_issue_marble_cert(g->ca, &req, &leaf, err);
    if (r < 0)
        return moat_error_prefix(err, "generating marble authentication secrets");

    struct moat_secret_binding b = {.root_secret = g->root.current,
                                    .marble_type = mb->disable_secret_binding ? "" : mb->name};
    memcpy(b.uuid, uuid, 16);
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set own = {0}, own_prev = {0};
    r = moat_secrets_generate_marble(g->ca, g->specs.v, g->specs.n, &b, &own, err);
    if (r == 0 && g->root.has_previous) {
        b.root_secret = moat_root_secrets_previous(&g->root);
        r = moat_secrets_generate_marble(g->ca, g->specs.v, g->specs.n, &b, &own_prev, err);
    }
    if (r < 0)
        return moat_error_prefix(err, "generating secrets for marble");

    _cleanup_gotemplate_value_ struct gotemplate_value *secrets = NULL, *previous = NULL,
                                                       *data = NULL;
    const struct moat_cert_key empty                         = {0};
    /* user-defined secrets change under the lock (POST /secrets): render from a copy */
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set user = {0};
    core_user_secrets_snapshot(c, &user);
    r = secrets_map(&g->specs, &g->shared.current, &own, &user, &empty, &secrets);
    /* §3.6 .Previous.Secrets: the shared secrets before the last update (previousSecret:<n>)
     * and per-marble ones from previousRootSecret */
    if (r == 0 && (g->root.has_previous || g->shared.has_previous))
        r = secrets_map(&g->specs,
                        g->shared.has_previous ? &g->shared.previous : &g->shared.current,
                        g->root.has_previous ? &own_prev : &own, &user, &empty, &previous);
    else if (r == 0)
        previous = gotemplate_value_ref(secrets); /* no rotation: .Previous = current (§2) */
    uint8_t seal_key[SEAL_KEY_SIZE];
    b.root_secret = g->root.current;
    if (r == 0)
        r = moat_secret_derive(&b, SEAL_KEY_NAME, seal_key, sizeof(seal_key), err) < 0 ? -EIO : 0;
    if (r == 0)
        r = template_data(g, &leaf, seal_key, secrets, previous, &data);
    OPENSSL_cleanse(seal_key, sizeof(seal_key));
    if (r < 0)
        return moat_error_set(err, r, "customizing marble parameters: building template data");
    /* §1.5: TTLS (MARBLE_TTLS_CONFIG) is for EGo marbles; a Gramine premain rejects it */
    if (mb->tls.n > 0)
        return moat_error_set(err, -ENOTSUP,
                              "creating TTLS config: marble TLS tags are not supported by moat");
    r = customize(g, mb, &leaf, data, ret, err);
    if (r < 0)
        return moat_error_prefix(err, "customizing marble parameters");
    return 0;
}

static int fail(enum coord_status* ret_status, enum coord_status s, int r) {
    *ret_status = s;
    return r;
}

int coord_core_activate(struct coord_core* c, const uint8_t* quote, size_t quote_len,
                        const uint8_t* csr, size_t csr_len, const char* marble_type,
                        const char* uuid, const uint8_t* peer_cert, size_t peer_cert_len,
                        struct coord_params* ret_params, enum coord_status* ret_status,
                        struct moat_error* err) {
    /* 1. the state, and a reference to the generation this activation works with: an update
     * may swap in a new one meanwhile (core_internal.h) */
    pthread_mutex_lock(&c->lock);
    bool accepting                                = c->state == COORD_STATE_ACCEPTING_MARBLES;
    _cleanup_(core_gen_unrefp) struct core_gen* g = accepting ? core_gen_ref(c->gen) : NULL;
    pthread_mutex_unlock(&c->lock);
    if (!accepting)
        return fail(ret_status, COORD_STATUS_FAILED_PRECONDITION,
                    moat_error_set(err, -EPERM, "cannot accept marbles in current state"));
    /* 2. the peer's TLS certificate */
    if (!peer_cert || peer_cert_len == 0)
        return fail(ret_status, COORD_STATUS_UNAUTHENTICATED,
                    moat_error_set(err, -EACCES, "couldn't get marble TLS certificate"));
    /* 3. verifyManifestRequirement */
    const struct coord_marble* mb = NULL;
    int r = verify_marble(c, g, quote, quote_len, peer_cert, peer_cert_len, marble_type, &mb, err);
    if (r < 0)
        return fail(ret_status, COORD_STATUS_PERMISSION_DENIED,
                    moat_error_prefix(err, "marble verification failed"));
    /* 4. the UUID */
    uint8_t id[16];
    r = moat_uuid_parse(uuid ? uuid : "", id, err);
    if (r < 0)
        return fail(ret_status, COORD_STATUS_INVALID_ARGUMENT,
                    moat_error_prefix(err, "invalid UUID"));
    /* 5. certificate, secrets, parameters */
    _cleanup_(coord_params_clearp) struct coord_params p = {0};
    r = build_params(c, g, mb, csr, csr_len, id, &p, err);
    if (r < 0)
        return fail(ret_status, COORD_STATUS_INTERNAL, r);
    /* 6. the activation counter (checked again: another activation may have taken the last) */
    pthread_mutex_lock(&c->lock);
    r = count_activation(c, mb, err);
    pthread_mutex_unlock(&c->lock);
    if (r == -EPERM)
        return fail(ret_status, COORD_STATUS_PERMISSION_DENIED,
                    moat_error_prefix(err, "marble verification failed"));
    if (r < 0)
        return fail(ret_status, COORD_STATUS_INTERNAL, moat_error_prefix(err, "activate"));
    *ret_params = p;
    p           = (struct coord_params){0};
    *ret_status = COORD_STATUS_OK;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* TemplateDryRun (§1.7): every template of every marble against the real shared secrets,     */
/* per-marble ones for a random UUID, and the dummy byte 0x41 for .MarbleRun.* and            */
/* user-defined secrets.                                                                      */

static int dry_run_data(const struct core_specs* specs, const struct moat_secret_set* shared,
                        const struct moat_secret_set* own, struct gotemplate_value** ret) {
    static uint8_t dummy_byte        = 0x41;
    const struct moat_cert_key dummy = {
        .cert = {&dummy_byte, 1}, .private_key = {&dummy_byte, 1}, .public_key = {&dummy_byte, 1}};
    _cleanup_gotemplate_value_ struct gotemplate_value* secrets = NULL;
    _cleanup_gotemplate_value_ struct gotemplate_value* root =
        gotemplate_struct_new("manifest.TemplateSecrets");
    int r = secrets_map(specs, shared, own, NULL, &dummy, &secrets);
    if (r < 0)
        return r;
    struct gotemplate_value* v[4];
    for (size_t i = 0; i < ARRAY_SIZE(v); i++)
        v[i] = secret_value("cert-ecdsa", &dummy);
    r = set_reserved(root, v, secret_value("symmetric-key", &dummy));
    if (r == 0)
        r = set_secrets(root, secrets, secrets);
    if (r == 0)
        *ret = TAKE_PTR(root);
    return r;
}

static int dry_run_files(const struct coord_marble* mb, const struct coord_files* files,
                         enum gotemplate_funcs funcs, const char* what,
                         const struct gotemplate_value* data, struct moat_error* err) {
    for (size_t i = 0; i < files->n; i++) {
        const struct coord_file* f = &files->v[i];
        if (f->no_templates)
            continue;
        uint8_t* out;
        size_t len;
        int r =
            gotemplate_render("data", (const char*)f->data, f->len, funcs, data, &out, &len, err);
        if (r < 0)
            return moat_error_prefix(err, "in Marble %s: %s %s", mb->name, what, f->name);
        OPENSSL_cleanse(out, len);
        free(out);
    }
    return 0;
}

int core_template_dry_run(const struct coord_manifest* m, const struct core_specs* specs,
                          const struct moat_ca* ca, const struct moat_secret_set* shared,
                          struct moat_error* err) {
    uint8_t root_secret[MOAT_ROOT_SECRET_SIZE];
    struct moat_secret_binding b = {.root_secret = root_secret, .marble_type = ""};
    if (RAND_bytes(root_secret, sizeof(root_secret)) != 1 || RAND_bytes(b.uuid, 16) != 1)
        return moat_error_set(err, -EIO, "cannot generate random bytes");
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set own = {0};
    int r = moat_secrets_generate_marble(ca, specs->v, specs->n, &b, &own, err);
    OPENSSL_cleanse(root_secret, sizeof(root_secret));
    if (r < 0)
        return r;
    _cleanup_gotemplate_value_ struct gotemplate_value* data = NULL;
    r = dry_run_data(specs, shared, &own, &data);
    if (r < 0)
        return moat_error_set(err, r, "building template data");
    bool graphene = false;
    for (size_t i = 0; i < m->n_marbles; i++) {
        const struct coord_files* sets[2] = {&m->marbles[i].files, &m->marbles[i].env};
        for (size_t k = 0; k < 2; k++)
            for (size_t j = 0; j < sets[k]->n; j++)
                graphene |= !sets[k]->v[j].no_templates &&
                            memmem(sets[k]->v[j].data, sets[k]->v[j].len, ".Marblerun.", 11);
    }
    if (graphene)
        log_warning(
            "coordinator: the manifest uses the Graphene-era template names "
            ".Marblerun.* (MarbleRun itself no longer accepts them): moat accepts them as "
            ".MarbleRun.*, and .Marblerun.SealKey is a per-marble 128-bit key derived "
            "from the Coordinator's root secret, the Marble's UUID and type");
    for (size_t i = 0; r == 0 && i < m->n_marbles; i++) {
        const struct coord_marble* mb = &m->marbles[i];
        r = dry_run_files(mb, &mb->files, GOTEMPLATE_FUNCS_FILES, "file", data, err);
        if (r == 0)
            r = dry_run_files(mb, &mb->env, GOTEMPLATE_FUNCS_ENV, "env variable", data, err);
    }
    return r;
}
