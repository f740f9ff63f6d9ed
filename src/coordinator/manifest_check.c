/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MarbleRun's Manifest.Check, CheckUpdate and IsUpdateManifest (reference/marblerun.md §1.7,
 * §1.8) with their exact error strings, in their order. Go walks maps in random order; we walk
 * them sorted by key, so of several offending entries the smallest name is reported.
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "coordinator.h"
#include "manifest_internal.h"

/* coordinator/user/user.go permission IDs */
#define PERM_UPDATE_PACKAGE  "updatesecurityversion"
#define PERM_READ_SECRET     "readsecret"
#define PERM_WRITE_SECRET    "writesecret"
#define PERM_UPDATE_MANIFEST "updatemanifest"

static int fail(struct moat_error* err, const char* fmt, ...) PRINTF_FMT(2, 3);
static int fail(struct moat_error* err, const char* fmt, ...) {
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    return moat_error_set(err, -EINVAL, "%s", sb.buf);
}

/* strings.ToLower(a) == b for an ASCII-lowercase b */
static bool lower_eq(const char* a, const char* b) {
    return strcasecmp(a, b) == 0;
}

static int missing_value(const struct coord_package* p, const char* field, struct moat_error* err) {
    if (p->debug) {
        log_warning("manifest misses value for %s in package %s (accepted in debug mode)", field,
                    p->name);
        return 0;
    }
    return fail(err, "manifest misses value for %s in package %s", field, p->name);
}

static int check_marbles(const struct coord_manifest* m, struct moat_error* err) {
    for (size_t i = 0; i < m->n_marbles; i++) {
        const struct coord_marble* mb = &m->marbles[i];
        const struct coord_package* p = coord_manifest_package(m, mb->package);
        if (!p)
            return fail(err, "manifest does not contain marble package %s", mb->package);
        if (*p->unique_id && (*p->signer_id || p->has_product_id || p->has_security_version)) {
            if (!p->debug)
                return fail(err,
                            "manifest specifies both UniqueID *and* "
                            "SignerID/ProductID/SecurityVersion in package %s",
                            mb->package);
            log_warning(
                "manifest specifies UniqueID *and* SignerID/ProductID/SecurityVersion in "
                "package %s (accepted in debug mode only)",
                mb->package);
        } else if (!*p->unique_id) {
            int r = 0;
            if (!*p->signer_id)
                r = missing_value(p, "SignerID", err);
            if (r == 0 && !p->has_product_id)
                r = missing_value(p, "ProductID", err);
            if (r == 0 && !p->has_security_version)
                r = missing_value(p, "SecurityVersion", err);
            if (r < 0)
                return r;
        }
        for (size_t j = 0; j < mb->tls.n; j++)
            if (!coord_manifest_tls(m, mb->tls.v[j]))
                return fail(err, "manifest misses TLS entry for %s", mb->tls.v[j]);
    }
    return 0;
}

static int check_tls(const struct coord_manifest* m, struct moat_error* err) {
    for (size_t i = 0; i < m->n_tls; i++) {
        const struct coord_tls_tag* t = &m->tls[i];
        for (size_t j = 0; j < t->n_incoming; j++) {
            const struct coord_tls_entry* e = &t->incoming[j];
            if (!*e->port)
                return fail(err, "manifest misses Port in TLS.Incoming.%s", t->name);
            if (*e->cert) {
                if (!coord_manifest_secret(m, e->cert))
                    return fail(err, "TLS.Incoming.%s references undefined secret %s", t->name,
                                e->cert);
                if (!e->disable_client_auth)
                    return fail(err,
                                "TLS.Incoming.%s defines Cert but does not disable client "
                                "authentication",
                                t->name);
            } else if (e->disable_client_auth) {
                return fail(err, "TLS.Incoming.%s disables client authentication", t->name);
            }
        }
        for (size_t j = 0; j < t->n_outgoing; j++) {
            const struct coord_tls_entry* e = &t->outgoing[j];
            if (!*e->addr)
                return fail(err, "manifest misses Addr in TLS.Outgoing.%s", t->name);
            if (!*e->port)
                return fail(err, "manifest misses Port in TLS.Outgoing.%s", t->name);
        }
    }
    return 0;
}

static int check_users(const struct coord_manifest* m, struct moat_error* err) {
    for (size_t i = 0; i < m->n_users; i++) {
        const struct coord_user* u = &m->users[i];
        if (!*u->certificate)
            return fail(err, "manifest does not contain a certificate for user %s", u->name);
        for (size_t j = 0; j < u->roles.n; j++)
            if (!coord_manifest_role(m, u->roles.v[j]))
                return fail(err, "manifest specifies role %s for user %s, but role does not exist",
                            u->roles.v[j], u->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(m->users[j].certificate, u->certificate) == 0)
                return fail(err, "manifest contains the same certificate for users %s and %s",
                            u->name, m->users[j].name);
    }
    return 0;
}

static void strv_go(struct strbuf* sb, const struct coord_strv* sv) {
    strbuf_putc(sb, '[');
    for (size_t i = 0; i < sv->n; i++)
        strbuf_printf(sb, "%s%s", i ? " " : "", sv->v[i]);
    strbuf_putc(sb, ']');
}

static int check_role(const struct coord_manifest* m, const struct coord_role* r,
                      struct moat_error* err) {
    if (strcmp(r->resource_type, "Packages") == 0) {
        for (size_t i = 0; i < r->resource_names.n; i++)
            if (!coord_manifest_package(m, r->resource_names.v[i]))
                return fail(err, "role %s: resource %s of type Packages is not defined in manifest",
                            r->name, r->resource_names.v[i]);
        for (size_t i = 0; i < r->actions.n; i++)
            if (!lower_eq(r->actions.v[i], PERM_UPDATE_PACKAGE))
                return fail(err, "unknown action: %s for type Packages in role: %s",
                            r->actions.v[i], r->name);
        return 0;
    }
    if (strcmp(r->resource_type, "Secrets") == 0) {
        bool read = false, write = false;
        for (size_t i = 0; i < r->actions.n; i++) {
            const char* a = r->actions.v[i];
            if (!lower_eq(a, PERM_WRITE_SECRET) && !lower_eq(a, PERM_READ_SECRET))
                return fail(err, "unknown action: %s for type Secrets in role: %s", a, r->name);
            write |= lower_eq(a, PERM_WRITE_SECRET);
            read |= lower_eq(a, PERM_READ_SECRET);
        }
        for (size_t i = 0; i < r->resource_names.n; i++) {
            const char* name             = r->resource_names.v[i];
            const struct coord_secret* s = coord_manifest_secret(m, name);
            if (!s)
                return fail(err, "role %s: resource %s of type Secrets is not defined in manifest",
                            r->name, name);
            if (!s->user_defined && write)
                return fail(err,
                            "manifest specifies write permission for role %s and secret %s, but "
                            "secret is not user-defined",
                            r->name, name);
            if (!s->shared && !s->user_defined && read)
                return fail(err,
                            "manifest specifies read permission for role %s and "
                            "per-marble-unique secret %s",
                            r->name, name);
        }
        return 0;
    }
    if (strcmp(r->resource_type, "Manifest") == 0) {
        if (r->resource_names.n)
            return fail(err, "role %s: resource names are not allowed for type Manifest", r->name);
        for (size_t i = 0; i < r->actions.n; i++)
            if (!lower_eq(r->actions.v[i], PERM_UPDATE_MANIFEST))
                return fail(err, "unknown action: %s for type Manifest in role: %s",
                            r->actions.v[i], r->name);
        return 0;
    }
    /* upstream formats the whole Role struct with %s: {Type [names] [actions]} */
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb, "{%s ", r->resource_type);
    strv_go(&sb, &r->resource_names);
    strbuf_putc(&sb, ' ');
    strv_go(&sb, &r->actions);
    strbuf_putc(&sb, '}');
    return fail(err, "unrecognized resource type: %s for role: %s", sb.buf, r->name);
}

static int check_secrets(const struct coord_manifest* m, struct moat_error* err) {
    for (size_t i = 0; i < m->n_secrets; i++) {
        const struct coord_secret* s = &m->secrets[i];
        if (strcmp(s->type, "plain") == 0 || strcmp(s->type, "symmetric-key") == 0)
            continue;
        if (strcmp(s->type, "cert-rsa") == 0 || strcmp(s->type, "cert-ed25519") == 0 ||
            strcmp(s->type, "cert-ecdsa") == 0) {
            if (s->has_not_after && s->valid_for != 0)
                return fail(err,
                            "ambiguous certificate validity duration for secret: %s, both "
                            "NotAfter and ValidFor are specified",
                            s->name);
            continue;
        }
        return fail(err, "unknown type: %s for secret: %s", s->type, s->name);
    }
    return 0;
}

static bool user_may_update_manifest(const struct coord_manifest* m, const struct coord_user* u) {
    for (size_t j = 0; j < u->roles.n; j++) {
        const struct coord_role* r = coord_manifest_role(m, u->roles.v[j]);
        /* upstream looks at Actions[0] only (and would panic on an empty list) */
        if (r && strcmp(r->resource_type, "Manifest") == 0 && r->actions.n &&
            lower_eq(r->actions.v[0], PERM_UPDATE_MANIFEST))
            return true;
    }
    return false;
}

static const char* const azure_hsm_env[] = {
    "EDG_MAA_URL",         "EDG_AZURE_HSM_VAULT_URL", "EDG_AZURE_HSM_KEY_NAME",
    "EDG_AZURE_CLIENT_ID", "EDG_AZURE_TENANT_ID",
};

static int check_config(const struct coord_manifest* m, struct moat_error* err) {
    const struct coord_config* c = &m->config;
    uint64_t updaters            = 0;
    for (size_t i = 0; i < m->n_users; i++)
        updaters += user_may_update_manifest(m, &m->users[i]);
    if (updaters < c->update_threshold)
        return fail(err,
                    "not enough users with manifest update permissions (%llu) to meet the "
                    "threshold of %llu",
                    (unsigned long long)updaters, (unsigned long long)c->update_threshold);

    static const char* const seal_modes[] = {"", "ProductKey", "UniqueKey", "Disabled"};
    bool known                            = false;
    for (size_t i = 0; i < ARRAY_SIZE(seal_modes); i++)
        known |= strcmp(c->seal_mode, seal_modes[i]) == 0;
    if (!known)
        return fail(err, "unknown seal mode: %s", c->seal_mode);

    bool azure = false;
    for (size_t i = 0; i < c->feature_gates.n; i++) {
        const char* f = c->feature_gates.v[i];
        if (strcasecmp(f, "AzureHSMSealing") == 0)
            azure = true;
        else if (strcasecmp(f, "SignQuoteEndpoint") != 0 && strcasecmp(f, "MonotonicCounter") != 0)
            return fail(err, "unknown feature gate: %s", f);
    }
    if (azure) {
        _cleanup_strbuf_ struct strbuf missing = STRBUF_INIT;
        for (size_t i = 0; i < ARRAY_SIZE(azure_hsm_env); i++)
            if (!getenv(azure_hsm_env[i]))
                strbuf_printf(&missing, "%s%s", missing.len ? " " : "", azure_hsm_env[i]);
        /* a client secret, or workload identity's federated token */
        if (!getenv("EDG_AZURE_CLIENT_SECRET") && !getenv("AZURE_FEDERATED_TOKEN_FILE"))
            strbuf_printf(&missing, "%s%s", missing.len ? " " : "", "EDG_AZURE_CLIENT_SECRET");
        if (missing.len)
            return fail(err,
                        "manifest enables sealing with Azure HSM key, but required environment "
                        "variables are not set: [%s]",
                        missing.buf);
    }

    if (c->recovery_threshold) {
        if (m->n_recovery_keys < c->recovery_threshold)
            return fail(err,
                        "not enough recovery keys (%zu) defined to meet the recovery threshold "
                        "of %llu",
                        m->n_recovery_keys, (unsigned long long)c->recovery_threshold);
        if (c->recovery_threshold < 2)
            return fail(err, "invalid recovery threshold: if set, threshold must be at least 2");
    }
    return 0;
}

int coord_manifest_check(const struct coord_manifest* m, struct moat_error* err) {
    if (m->n_packages == 0)
        return fail(err, "no allowed packages defined");
    if (m->n_marbles == 0)
        return fail(err, "no allowed marbles defined");
    int r = check_marbles(m, err);
    if (r == 0)
        r = check_tls(m, err);
    if (r == 0)
        r = check_users(m, err);
    for (size_t i = 0; r == 0 && i < m->n_roles; i++)
        r = check_role(m, &m->roles[i], err);
    if (r == 0)
        r = check_secrets(m, err);
    if (r == 0)
        r = check_config(m, err);
    return r;
}

int coord_manifest_check_env_nul(const struct coord_manifest* m, struct moat_error* err) {
    for (size_t i = 0; i < m->n_marbles; i++) {
        const struct coord_files* env = &m->marbles[i].env;
        for (size_t j = 0; j < env->n; j++)
            if (memchr(env->v[j].data, 0, env->v[j].len))
                return fail(err, "in Marble %s: env variable: %s: content contains null bytes",
                            m->marbles[i].name, env->v[j].name);
    }
    return 0;
}

int coord_manifest_check_user_certs(const struct coord_manifest* m, struct moat_error* err) {
    for (size_t i = 0; i < m->n_users; i++) {
        const struct coord_user* u = &m->users[i];
        BIO* bio                   = BIO_new_mem_buf(u->certificate, (int)strlen(u->certificate));
        X509* x                    = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!x)
            return fail(err, "received invalid certificate for user %s", u->name);
        X509_free(x);
    }
    return 0;
}

bool coord_manifest_is_update(const struct coord_manifest* m) {
    return m->n_infrastructures == 0 && m->n_marbles == 0 && m->n_users == 0 &&
           m->n_recovery_keys == 0 && m->n_roles == 0 && m->n_secrets == 0 && m->n_tls == 0;
}

int coord_manifest_check_update(const struct coord_manifest* update,
                                const struct coord_manifest* original, struct moat_error* err) {
    if (update->n_packages == 0)
        return fail(err, "no packages defined");
    for (size_t i = 0; i < update->n_packages; i++) {
        const struct coord_package* p = &update->packages[i];
        const struct coord_package* o = coord_manifest_package(original, p->name);
        if (!o)
            return fail(err,
                        "update manifest specifies a package which the original manifest "
                        "does not contain");
        if (p->debug || *p->unique_id || *p->signer_id || p->has_product_id)
            return fail(err, "update manifest contains unupdatable values");
        if (!p->has_security_version)
            return fail(err, "update manifest does not specify a SecurityVersion to update");
        if (o->has_security_version && p->security_version < o->security_version)
            return fail(err,
                        "update manifest tries to downgrade SecurityVersion of the original "
                        "manifest");
    }
    return 0;
}
