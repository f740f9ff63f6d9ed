/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Coordinator's state machine and SetManifest (reference/marblerun.md §3.2, §3.3, §3.4,
 * §3.6; MarbleRun's coordinator/core/core.go NewCore, clientapi.SetManifest).
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "marble_quote.h"
#include "recovery.h"
#include "verify.h"

/* §3.4 store keys */
#define K_STATE         "state"
#define K_MANIFEST      "manifest"
#define K_ROOT_CERT     "certificate:coordinatorRootCert"
#define K_INTERM_CERT   "certificate:coordinatorIntermediateCert"
#define K_MROOT_CERT    "certificate:marbleRootCert"
#define K_ROOT_KEY      "privateKey:coordinatorRootKey"
#define K_INTERM_KEY    "privateKey:coordinatorIntermediateKey"
#define K_ROOT_SECRET   "rootSecret"
#define K_PREV_SECRET   "previousRootSecret"
#define K_SECRET_PREFIX "secret:"

/* §3.2 status messages, by state. */
static const char* const STATE_MESSAGES[] = {
    [COORD_STATE_UNINITIALIZED] = "",
    [COORD_STATE_RECOVERY] =
        ("Coordinator is in recovery mode. Either upload a key to unseal the saved state, or set "
         "a new manifest. For more information on how to proceed, consult the documentation."),
    [COORD_STATE_ACCEPTING_MANIFEST] = "Coordinator is ready to accept a manifest.",
    [COORD_STATE_ACCEPTING_MARBLES] =
        "Coordinator is running correctly and ready to accept marbles.",
};

const char* coord_state_message(enum coord_state s) {
    return (unsigned)s < ARRAY_SIZE(STATE_MESSAGES) ? STATE_MESSAGES[s] : "";
}

const char* coord_status_name(enum coord_status s) {
    switch (s) {
        case COORD_STATUS_OK:
            return "OK";
        case COORD_STATUS_INVALID_ARGUMENT:
            return "InvalidArgument";
        case COORD_STATUS_PERMISSION_DENIED:
            return "PermissionDenied";
        case COORD_STATUS_FAILED_PRECONDITION:
            return "FailedPrecondition";
        case COORD_STATUS_INTERNAL:
            return "Internal";
        case COORD_STATUS_UNAUTHENTICATED:
            return "Unauthenticated";
    }
    return "Unknown";
}

char* core_pem(const char* type, const uint8_t* der, size_t len, size_t* ret_len) {
    BIO* b = BIO_new(BIO_s_mem());
    if (!b || PEM_write_bio(b, type, "", der, (long)len) <= 0)
        abort(); /* out of memory: as xmalloc */
    char* p;
    long n    = BIO_get_mem_data(b, &p);
    char* out = xstrndup(p, (size_t)n);
    BIO_free(b);
    if (ret_len)
        *ret_len = (size_t)n;
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* The manifest's Secrets as specs (§1.3: the Cert template uses Go x509.Certificate names)   */

void core_specs_clear(struct core_specs* s) {
    for (size_t i = 0; i < s->n_allocs; i++)
        free(s->allocs[i]);
    free(s->allocs);
    free(s->v);
    *s = (struct core_specs){0};
}

static void* specs_keep(struct core_specs* s, void* p) {
    s->allocs                = xrealloc(s->allocs, (s->n_allocs + 1) * sizeof(void*));
    s->allocs[s->n_allocs++] = p;
    return p;
}

/* A Go []string field: NULL when absent or null (nil), else a NULL-terminated list of the
 * strings (borrowed from the manifest's tree). */
static const char* const* tmpl_strings(struct core_specs* s, json_t* obj, const char* name) {
    json_t* a = obj ? coord_json_field(obj, name) : NULL;
    if (!json_is_array(a))
        return NULL;
    const char** v = specs_keep(s, xcalloc(json_array_size(a) + 1, sizeof(char*)));
    size_t n       = 0, i;
    json_t* e;
    json_array_foreach(a, i, e) {
        if (json_is_string(e))
            v[n++] = json_string_value(e);
    }
    return v;
}

static const char* tmpl_string(json_t* obj, const char* name) {
    json_t* v = obj ? coord_json_field(obj, name) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void spec_template(struct core_specs* s, const struct coord_secret* cs,
                          struct moat_cert_template* t) {
    json_t* c                      = cs->cert_template;
    json_t* subj                   = c ? coord_json_field(c, "Subject") : NULL;
    t->subject.common_name         = tmpl_string(subj, "CommonName");
    t->subject.serial_number       = tmpl_string(subj, "SerialNumber");
    t->subject.country             = tmpl_strings(s, subj, "Country");
    t->subject.province            = tmpl_strings(s, subj, "Province");
    t->subject.locality            = tmpl_strings(s, subj, "Locality");
    t->subject.street_address      = tmpl_strings(s, subj, "StreetAddress");
    t->subject.postal_code         = tmpl_strings(s, subj, "PostalCode");
    t->subject.organization        = tmpl_strings(s, subj, "Organization");
    t->subject.organizational_unit = tmpl_strings(s, subj, "OrganizationalUnit");
    t->dns_names                   = tmpl_strings(s, c, "DNSNames");
    t->ip_addresses                = tmpl_strings(s, c, "IPAddresses");
    t->email_addresses             = tmpl_strings(s, c, "EmailAddresses");
    json_t* ku                     = c ? coord_json_field(c, "KeyUsage") : NULL;
    t->key_usage                   = json_is_integer(ku) ? (uint32_t)json_integer_value(ku) : 0;
    json_t* eku                    = c ? coord_json_field(c, "ExtKeyUsage") : NULL;
    if (json_is_array(eku)) {
        int* v = specs_keep(s, xcalloc(json_array_size(eku) + 1, sizeof(int)));
        size_t i;
        json_t* e;
        json_array_foreach(eku, i, e) {
            v[t->n_ext_key_usage++] = (int)json_integer_value(e);
        }
        t->ext_key_usage = v;
    }
    json_t* is_ca = c ? coord_json_field(c, "IsCA") : NULL;
    t->is_ca      = json_is_true(is_ca);
    t->not_after  = cs->has_not_after ? cs->not_after : 0;
}

int core_specs_build(const struct coord_manifest* m, struct core_specs* ret,
                     struct moat_error* err) {
    struct core_specs s = {.n = m->n_secrets};
    s.v                 = xcalloc(m->n_secrets + 1, sizeof(*s.v));
    for (size_t i = 0; i < m->n_secrets; i++) {
        const struct coord_secret* cs = &m->secrets[i];
        if (cs->size > UINT32_MAX || cs->valid_for > UINT32_MAX) {
            core_specs_clear(&s);
            return moat_error_set(err, -EINVAL, "invalid secret size: %s", cs->name);
        }
        s.v[i] = (struct moat_secret_spec){.name         = cs->name,
                                           .type         = cs->type,
                                           .size         = (unsigned)cs->size,
                                           .shared       = cs->shared,
                                           .user_defined = cs->user_defined,
                                           .valid_for    = (unsigned)cs->valid_for};
        spec_template(&s, cs, &s.v[i].cert);
    }
    *ret = s;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Sealed values                                                                              */

static void put_b64(json_t* o, const char* key, const struct moat_der* d) {
    char* b = base64_encode_alloc(d->p ? d->p : (const uint8_t*)"", d->len);
    json_object_set_new(o, key, json_string(b));
    OPENSSL_cleanse(b, strlen(b));
    free(b);
}

/* secret:<n> = {"Type", "Cert", "Private", "Public"} with base64 bytes (MarbleRun's state form). */
void core_txn_put_secret(struct store_txn* t, const char* prefix, const struct moat_secret* s) {
    json_t* o = json_object();
    json_object_set_new(o, "Type", json_string(s->type));
    put_b64(o, "Cert", &s->v.cert);
    put_b64(o, "Private", &s->v.private_key);
    put_b64(o, "Public", &s->v.public_key);
    char* text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!text)
        abort();
    _cleanup_free_ char* key = xasprintf("%s%s", prefix, s->name);
    txn_put(t, key, text, strlen(text));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

static int get_b64(json_t* o, const char* key, struct moat_der* ret) {
    const char* v = tmpl_string(o, key);
    if (!v)
        return -EBADMSG;
    if (!*v)
        return 0;
    return base64_decode_alloc(v, strlen(v), &ret->p, &ret->len) < 0 ? -EBADMSG : 0;
}

int core_load_secret(struct store* st, const char* prefix, const char* name,
                     struct moat_secret* ret) {
    _cleanup_free_ char* key = xasprintf("%s%s", prefix, name);
    const uint8_t* v;
    size_t n;
    if (store_get(st, key, &v, &n) < 0)
        return -EBADMSG;
    json_t* o            = json_loadb((const char*)v, n, 0, NULL);
    struct moat_secret s = {.name = xstrdup(name)};
    int r                = -EBADMSG;
    const char* type     = tmpl_string(o, "Type");
    if (type) {
        s.type = xstrdup(type);
        r      = get_b64(o, "Cert", &s.v.cert);
        if (r == 0)
            r = get_b64(o, "Private", &s.v.private_key);
        if (r == 0)
            r = get_b64(o, "Public", &s.v.public_key);
    }
    json_decref(o);
    if (r < 0) {
        moat_secret_clear(&s);
        return r;
    }
    *ret = s;
    return 0;
}

void core_txn_put_ca(struct store_txn* t, const struct moat_ca_der* d) {
    txn_put(t, K_ROOT_CERT, d->root_cert.p, d->root_cert.len);
    txn_put(t, K_ROOT_KEY, d->root_key.p, d->root_key.len);
    txn_put(t, K_INTERM_CERT, d->intermediate_cert.p, d->intermediate_cert.len);
    txn_put(t, K_INTERM_KEY, d->intermediate_key.p, d->intermediate_key.len);
    txn_put(t, K_MROOT_CERT, d->marble_root_cert.p, d->marble_root_cert.len);
}

static void txn_put_state(struct store_txn* t, enum coord_state s) {
    char v[4];
    int n = snprintf(v, sizeof(v), "%d", (int)s);
    txn_put(t, K_STATE, v, (size_t)n);
}

/* The CA, root secrets and state of a new core (setCAData) in one transaction. */
static int put_ca_and_root(struct coord_core* c, struct store_txn* t, struct moat_error* err) {
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    int r                                              = moat_ca_export(c->gen->ca, &d, err);
    if (r < 0)
        return r;
    core_txn_put_ca(t, &d);
    txn_put(t, K_ROOT_SECRET, c->gen->root.current, sizeof(c->gen->root.current));
    if (c->gen->root.has_previous)
        txn_put(t, K_PREV_SECRET, c->gen->root.previous, sizeof(c->gen->root.previous));
    return 0;
}

static int get_der(struct store* st, const char* key, struct moat_der* ret) {
    const uint8_t* v;
    size_t n;
    if (store_get(st, key, &v, &n) < 0)
        return -EBADMSG;
    ret->p   = xmalloc(n ? n : 1);
    ret->len = n;
    memcpy(ret->p, v, n);
    return 0;
}

static int restore_ca(struct coord_core* c, struct moat_error* err) {
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    if (get_der(c->store, K_ROOT_CERT, &d.root_cert) < 0 ||
        get_der(c->store, K_ROOT_KEY, &d.root_key) < 0 ||
        get_der(c->store, K_INTERM_CERT, &d.intermediate_cert) < 0 ||
        get_der(c->store, K_INTERM_KEY, &d.intermediate_key) < 0 ||
        get_der(c->store, K_MROOT_CERT, &d.marble_root_cert) < 0)
        return moat_error_set(err, -EBADMSG, "the sealed state has no complete CA");
    return moat_ca_import(&d, &c->gen->ca, err);
}

static int restore_root(struct coord_core* c, struct moat_error* err) {
    const uint8_t* v;
    size_t n;
    if (store_get(c->store, K_ROOT_SECRET, &v, &n) < 0 || n != MOAT_ROOT_SECRET_SIZE)
        return moat_error_set(err, -EBADMSG, "the sealed state has no root secret");
    memcpy(c->gen->root.current, v, n);
    if (store_get(c->store, K_PREV_SECRET, &v, &n) == 0 && n == MOAT_ROOT_SECRET_SIZE) {
        memcpy(c->gen->root.previous, v, n);
        c->gen->root.has_previous = true;
    }
    return 0;
}

/* The manifest, its specs and the shared secrets of a state in AcceptingMarbles. */
static int restore_manifest(struct coord_core* c, struct moat_error* err) {
    const uint8_t* raw;
    size_t len;
    if (store_get(c->store, K_MANIFEST, &raw, &len) < 0)
        return moat_error_set(err, -EBADMSG, "the sealed state has no manifest");
    int r = coord_manifest_parse(raw, len, &c->gen->manifest, err);
    if (r == 0)
        r = core_specs_build(c->gen->manifest, &c->gen->specs, err);
    if (r < 0)
        return moat_error_prefix(err, "the sealed manifest");
    for (size_t i = 0; i < c->gen->specs.n; i++) {
        const struct moat_secret_spec* sp = &c->gen->specs.v[i];
        if (!sp->shared || sp->user_defined)
            continue;
        struct moat_secret s;
        if (core_load_secret(c->store, K_SECRET_PREFIX, sp->name, &s) < 0)
            return moat_error_set(err, -EBADMSG, "the sealed state lacks secret %s", sp->name);
        struct moat_secret_set* set = &c->gen->shared.current;
        set->v                      = xrealloc(set->v, (set->n + 1) * sizeof(*set->v));
        set->v[set->n++]            = s;
    }
    r = core_update_restore(c, err);
    return r < 0 ? r : core_users_restore(c, err);
}

int core_restore(struct coord_core* c, struct moat_error* err) {
    const uint8_t* v;
    size_t n;
    char buf[4] = {0};
    if (store_get(c->store, K_STATE, &v, &n) < 0 || n != 1)
        return moat_error_set(err, -EBADMSG, "the sealed state has no valid state");
    memcpy(buf, v, n);
    if (buf[0] != '2' && buf[0] != '3')
        return moat_error_set(err, -EBADMSG, "the sealed state has state %s", buf);
    int r = restore_ca(c, err);
    if (r == 0)
        r = restore_root(c, err);
    if (r == 0 && buf[0] == '3')
        r = restore_manifest(c, err);
    if (r == 0 && buf[0] == '3')
        r = core_apply_seal_mode(c, c->gen->manifest, err);
    if (r == 0)
        c->state = (enum coord_state)(buf[0] - '0');
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* NewCore                                                                                    */

static int fresh_ca(struct coord_core* c, struct moat_error* err) {
    int r = moat_ca_generate((const char* const*)c->dns_names, &c->gen->ca, err);
    if (r == 0)
        r = moat_root_secrets_init(&c->gen->root, err);
    return r;
}

static int first_start(struct coord_core* c, struct moat_error* err) {
    int r = fresh_ca(c, err);
    if (r < 0)
        return r;
    /* a DEK for the state before any manifest; SetManifest replaces it (§3.4) */
    uint8_t dek[STORE_KEY_SIZE];
    if (RAND_bytes(dek, sizeof(dek)) != 1)
        return moat_error_set(err, -EIO, "cannot generate the data encryption key");
    store_set_dek(c->store, dek);
    OPENSSL_cleanse(dek, sizeof(dek));
    struct store_txn* t = store_begin(c->store);
    r                   = put_ca_and_root(c, t, err);
    if (r < 0) {
        store_rollback(t);
        return r;
    }
    txn_put_state(t, COORD_STATE_ACCEPTING_MANIFEST);
    r = store_commit(t, err);
    if (r == 0)
        c->state = COORD_STATE_ACCEPTING_MANIFEST;
    return r;
}

static char** copy_strv(const char* const* v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    if (!v)
        n = 1;
    char** out = xcalloc(n + 1, sizeof(char*));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v ? v[i] : "localhost");
    return out;
}

int coord_core_new(const struct coord_core_opts* opts, struct coord_core** ret,
                   struct moat_error* err) {
    if (!opts->simulation &&
        ((!opts->collateral && !opts->collateral_for_quote) || !opts->verify_opts))
        return moat_error_set(err, -EINVAL,
                              "coordinator: quote validation needs collateral and verify "
                              "options (or simulation mode)");
    struct coord_core* c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    for (size_t i = 0; i < CORE_VERIFY_SLOTS; i++) {
        pthread_mutex_init(&c->verify[i].lock, NULL);
        if (!opts->simulation)
            c->verify[i].cache = attest_verify_cache_new();
    }
    c->dns_names            = copy_strv(opts->dns_names);
    c->simulation           = opts->simulation;
    c->collateral           = opts->collateral;
    c->verify_opts          = opts->verify_opts;
    c->collateral_for_quote = opts->collateral_for_quote;
    c->collateral_ctx       = opts->collateral_ctx;
    c->store                = store_new(opts->seal_dir);
    c->gen                  = core_gen_new();
    if (opts->seal_key)
        store_set_seal_key(c->store, opts->seal_key,
                           opts->seal_key_info ? opts->seal_key_info : "moat-seal-v1");
    if (opts->seal_key && opts->unique_seal_key)
        store_set_other_seal_key(
            c->store, opts->unique_seal_key,
            opts->unique_seal_key_info ? opts->unique_seal_key_info : "moat-seal-v1 unique");
    if (c->simulation)
        log_warning(
            "coordinator: SIMULATION MODE: the Coordinator has no quote, so Marble "
            "quotes are NOT validated and any Marble is accepted (MarbleRun's "
            "simulation mode)");
    if (!opts->seal_key)
        log_warning("coordinator: SealMode Disabled: the state is kept in memory only");

    int r = store_load(c->store, err);
    if (r == 0) {
        r = core_restore(c, err);
    } else if (r == -ENOENT) {
        moat_error_clear(err);
        r = first_start(c, err);
    } else if (r == -EBADMSG) {
        /* §3.2: a temporary CA, and recovery (/recover or a new manifest) */
        log_warning(
            "Failed to decrypt sealed state. Proceeding with a new state. Use the /recover "
            "API endpoint to load the old state, or set a new manifest to overwrite it. "
            "(coordinator: %s)",
            err ? err->msg : "");
        moat_error_clear(err);
        r = fresh_ca(c, err);
        if (r == 0)
            c->state = COORD_STATE_RECOVERY;
    }
    if (r < 0) {
        coord_core_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

struct core_gen* core_gen_new(void) {
    struct core_gen* g = xcalloc(1, sizeof(*g));
    g->refs            = 1;
    return g;
}

struct core_gen* core_gen_ref(struct core_gen* g) {
    __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

void core_gen_unref(struct core_gen* g) {
    if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    coord_manifest_free(g->manifest);
    core_specs_clear(&g->specs);
    moat_ca_free(g->ca);
    moat_root_secrets_wipe(&g->root);
    moat_shared_secrets_clear(&g->shared);
    free(g);
}

void coord_core_free(struct coord_core* c) {
    if (!c)
        return;
    core_recovery_free(c->recovery);
    store_free(c->store);
    core_gen_unref(c->gen);
    free(c->manifest_sig);
    moat_secret_set_clear(&c->user_secrets);
    for (size_t i = 0; c->dns_names[i]; i++)
        free(c->dns_names[i]);
    free(c->dns_names);
    pthread_mutex_destroy(&c->lock);
    for (size_t i = 0; i < CORE_VERIFY_SLOTS; i++) {
        pthread_mutex_destroy(&c->verify[i].lock);
        attest_verify_cache_free(c->verify[i].cache);
    }
    free(c);
}

struct core_verify_slot* core_verify_acquire(struct coord_core* c,
                                             struct attest_verify_opts* ret_opts) {
    unsigned start                = atomic_fetch_add(&c->next_verify, 1);
    struct core_verify_slot* slot = NULL;
    for (unsigned i = 0; i < CORE_VERIFY_SLOTS && !slot; i++) {
        struct core_verify_slot* s = &c->verify[(start + i) % CORE_VERIFY_SLOTS];
        if (pthread_mutex_trylock(&s->lock) == 0)
            slot = s;
    }
    if (!slot) {
        slot = &c->verify[start % CORE_VERIFY_SLOTS];
        pthread_mutex_lock(&slot->lock);
    }
    *ret_opts       = *c->verify_opts;
    ret_opts->cache = slot->cache;
    if (ret_opts->at == 0) /* a long-running Coordinator judges each quote at its own time */
        ret_opts->at = time(NULL);
    return slot;
}

int core_collateral(struct coord_core* c, const uint8_t* quote, size_t len,
                    const struct collateral** ret, struct moat_error* err) {
    if (!c->collateral_for_quote) {
        *ret = c->collateral;
        return 0;
    }
    const uint8_t* raw = quote;
    size_t raw_len     = len;
    if (len >= OE_REPORT_HEADER_SIZE && quote[0] == 1 &&
        marble_quote_unwrap(quote, len, &raw, &raw_len, err) < 0)
        return -EPERM;
    return c->collateral_for_quote(c->collateral_ctx, raw, raw_len, ret, err);
}

void core_verify_release(struct core_verify_slot* slot) {
    pthread_mutex_unlock(&slot->lock);
}

enum coord_state coord_core_state(struct coord_core* c) {
    pthread_mutex_lock(&c->lock);
    enum coord_state s = c->state;
    pthread_mutex_unlock(&c->lock);
    return s;
}

int coord_core_root_cert(struct coord_core* c, uint8_t** ret, size_t* ret_len) {
    pthread_mutex_lock(&c->lock);
    uint8_t* der = NULL;
    int n        = i2d_X509(c->gen->ca->root_cert, &der);
    pthread_mutex_unlock(&c->lock);
    if (n <= 0)
        return -ENOMEM;
    *ret     = der;
    *ret_len = (size_t)n;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* SetManifest                                                                                */

void coord_recovery_secrets_clear(struct coord_recovery_secrets* rs) {
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->names[i]);
        free(rs->secrets_b64[i]);
    }
    free(rs->names);
    free(rs->secrets_b64);
    *rs = (struct coord_recovery_secrets){0};
}

/* Parse, Check, the user certificates (clientapi.SetManifest). */
static int manifest_accept(const void* raw, size_t len, struct coord_manifest** ret,
                           struct core_specs* ret_specs, struct moat_error* err) {
    _cleanup_coord_manifest_ struct coord_manifest* m = NULL;
    int r                                             = coord_manifest_parse(raw, len, &m, err);
    if (r == 0 && coord_manifest_check(m, err) < 0)
        r = moat_error_prefix(err, "checking manifest");
    if (r == 0 && coord_manifest_check_env_nul(m, err) < 0)
        r = moat_error_prefix(err, "running manifest template dry run");
    if (r == 0)
        r = coord_manifest_check_user_certs(m, err);
    if (r == 0)
        r = core_specs_build(m, ret_specs, err);
    if (r == 0)
        *ret = TAKE_PTR(m);
    return r;
}

int core_recovery_for(const struct coord_manifest* m, struct recovery_setup* ret,
                      struct moat_error* err) {
    _cleanup_free_ const char** names = xcalloc(m->n_recovery_keys + 1, sizeof(char*));
    _cleanup_free_ const char** pems  = xcalloc(m->n_recovery_keys + 1, sizeof(char*));
    for (size_t i = 0; i < m->n_recovery_keys; i++) {
        names[i] = m->recovery_keys[i].name;
        pems[i]  = m->recovery_keys[i].value;
    }
    if (m->config.recovery_threshold > UINT32_MAX)
        return moat_error_set(err, -EINVAL, "invalid RecoveryThreshold");
    return recovery_setup_new(names, pems, m->n_recovery_keys,
                              (unsigned)m->config.recovery_threshold, ret, err);
}

void core_recovery_secrets_from(const struct recovery_setup* rs,
                                struct coord_recovery_secrets* ret) {
    ret->n           = rs->n;
    ret->names       = xcalloc(rs->n + 1, sizeof(char*));
    ret->secrets_b64 = xcalloc(rs->n + 1, sizeof(char*));
    for (size_t i = 0; i < rs->n; i++) {
        ret->names[i]       = xstrdup(rs->names[i]);
        ret->secrets_b64[i] = xstrdup(rs->secrets_b64[i]);
    }
}

/* Everything of the new manifest in one transaction; on failure nothing changes. */
static int commit_manifest(struct coord_core* c, const struct coord_manifest* m,
                           const struct moat_secret_set* shared, struct moat_error* err) {
    struct store_txn* t = store_begin(c->store);
    int r               = put_ca_and_root(c, t, err);
    if (r < 0) {
        store_rollback(t);
        return r;
    }
    txn_put(t, K_MANIFEST, m->raw, m->raw_len);
    for (size_t i = 0; i < shared->n; i++)
        core_txn_put_secret(t, K_SECRET_PREFIX, &shared->v[i]);
    txn_put_state(t, COORD_STATE_ACCEPTING_MARBLES);
    _cleanup_free_ char* log = core_update_log_line("Initial manifest set", NULL);
    txn_put(t, "updateLog", log, strlen(log)); /* §3.4: PutUpdateLog starts it afresh */
    return store_commit(t, err);
}

int core_check_seal_mode(struct coord_core* c, const struct coord_manifest* m,
                         struct moat_error* err) {
    const char* mode = m && m->config.seal_mode ? m->config.seal_mode : "";
    if (strcmp(mode, "UniqueKey") == 0 && !store_can_select_seal_key(c->store, true))
        return moat_error_set(err, -EINVAL,
                              "SealMode UniqueKey: the Coordinator has no unique sealing key "
                              "here (it has only a product key)");
    return 0;
}

int core_apply_seal_mode(struct coord_core* c, const struct coord_manifest* m,
                         struct moat_error* err) {
    const char* mode = m && m->config.seal_mode ? m->config.seal_mode : "";
    bool unique = strcmp(mode, "UniqueKey") == 0, disabled = strcmp(mode, "Disabled") == 0;
    int r = core_check_seal_mode(c, m, err);
    if (r < 0)
        return r;
    if (store_select_seal_key(c->store, unique, disabled) < 0)
        return moat_error_set(err, -EINVAL, "SealMode %s: no such sealing key", mode);
    if (disabled)
        log_warning(
            "coordinator: SealMode Disabled: from now on the state is kept in memory "
            "only and lost when the Coordinator stops");
    return 0;
}

static int set_manifest_locked(struct coord_core* c, const void* raw, size_t len,
                               struct coord_recovery_secrets* ret_recovery,
                               struct moat_error* err) {
    /* §3.2: SetManifest needs AcceptingManifest or Recovery */
    if (c->state != COORD_STATE_ACCEPTING_MANIFEST && c->state != COORD_STATE_RECOVERY)
        return moat_error_set(err, -EPERM, "server is not in expected state");
    _cleanup_coord_manifest_ struct coord_manifest* m   = NULL;
    _cleanup_(core_specs_clear) struct core_specs specs = {0};
    int r = manifest_accept(raw, len, &m, &specs, err);
    if (r < 0)
        return r;
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set shared = {0};
    r = moat_secrets_generate_shared(c->gen->ca, specs.v, specs.n, &shared, err);
    if (r < 0)
        return moat_error_prefix(err, "generating secrets from manifest");
    r = core_template_dry_run(m, &specs, c->gen->ca, &shared, err);
    if (r < 0)
        return moat_error_prefix(err, "running manifest template dry run");
    struct recovery_setup rs = {0};
    r                        = core_recovery_for(m, &rs, err);
    if (r < 0)
        return r;
    /* If the commit fails the store keeps this DEK: harmless, SetManifest runs only before
     * any manifest (AcceptingManifest) or over an unreadable state (Recovery). */
    r = core_apply_seal_mode(c, m, err);
    if (r < 0) {
        recovery_setup_free(&rs);
        return r;
    }
    store_set_dek(c->store, rs.dek);
    store_set_recovery_data(c->store, rs.recovery_data);
    r = commit_manifest(c, m, &shared, err);
    if (r == 0 && ret_recovery)
        core_recovery_secrets_from(&rs, ret_recovery);
    recovery_setup_free(&rs);
    if (r < 0)
        return r;
    coord_manifest_free(c->gen->manifest);
    c->gen->manifest = TAKE_PTR(m);
    core_specs_clear(&c->gen->specs);
    c->gen->specs = specs;
    specs         = (struct core_specs){0};
    moat_shared_secrets_clear(&c->gen->shared);
    c->gen->shared.current = shared;
    shared                 = (struct moat_secret_set){0};
    c->state               = COORD_STATE_ACCEPTING_MARBLES;
    /* a recovery in progress ends here: the old state is discarded (§3.2) */
    core_recovery_free(c->recovery);
    c->recovery = NULL;
    return 0;
}

int coord_core_set_manifest(struct coord_core* c, const void* raw, size_t len,
                            struct coord_recovery_secrets* ret_recovery, struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    int r = set_manifest_locked(c, raw, len, ret_recovery, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}
