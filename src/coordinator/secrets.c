/* SPDX-License-Identifier: Apache-2.0 */
/* Manifest secrets (MarbleRun reference §1.3, §3.6): see secrets.h. */
#include "secrets.h"

#include "eckey.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <string.h>

#define HKDF_SHA256_MAX (255 * 32)

/* ---------------------------------------------------------------------------------------- */
/* Root secrets                                                                               */

int moat_root_secrets_init(struct moat_root_secrets* rs, struct moat_error* err) {
    moat_root_secrets_wipe(rs);
    if (RAND_priv_bytes(rs->current, sizeof(rs->current)) != 1) {
        ERR_clear_error();
        return moat_error_set(err, -EIO, "generating the root secret: no random bytes");
    }
    return 0;
}

int moat_root_secrets_rotate(struct moat_root_secrets* rs, struct moat_error* err) {
    uint8_t next[MOAT_ROOT_SECRET_SIZE];
    if (RAND_priv_bytes(next, sizeof(next)) != 1) {
        ERR_clear_error();
        OPENSSL_cleanse(next, sizeof(next));
        return moat_error_set(err, -EIO, "rotating the root secret: no random bytes");
    }
    memcpy(rs->previous, rs->current, sizeof(rs->previous));
    memcpy(rs->current, next, sizeof(rs->current));
    rs->has_previous = true;
    OPENSSL_cleanse(next, sizeof(next));
    return 0;
}

const uint8_t* moat_root_secrets_previous(const struct moat_root_secrets* rs) {
    return rs->has_previous ? rs->previous : rs->current;
}

void moat_root_secrets_wipe(struct moat_root_secrets* rs) {
    OPENSSL_cleanse(rs, sizeof(*rs));
}

/* ---------------------------------------------------------------------------------------- */
/* Sets                                                                                       */

void moat_secret_clear(struct moat_secret* s) {
    if (!s)
        return;
    free(s->name);
    free(s->type);
    moat_cert_key_clear(&s->v);
    *s = (struct moat_secret){0};
}

void moat_secret_set_clear(struct moat_secret_set* set) {
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        moat_secret_clear(&set->v[i]);
    free(set->v);
    *set = (struct moat_secret_set){0};
}

const struct moat_secret* moat_secret_set_find(const struct moat_secret_set* set,
                                               const char* name) {
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->v[i].name, name) == 0)
            return &set->v[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Symmetric keys                                                                             */

int moat_secret_derive(const struct moat_secret_binding* b, const char* name, uint8_t* out,
                       size_t len, struct moat_error* err) {
    if (len == 0 || len > HKDF_SHA256_MAX)
        return moat_error_set(err, -EINVAL, "hkdf: entropy limit reached");
    char uuid[MOAT_UUID_STR_SIZE];
    moat_uuid_format(b->uuid, uuid);
    _cleanup_free_ char* salt = xasprintf("%s%s", uuid, name); /* UUID.String() + name */
    size_t salt_len           = strlen(salt);
    const char* info          = b->marble_type ? b->marble_type : "";

    EVP_KDF* kdf     = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char*)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void*)b->root_secret,
                                          MOAT_ROOT_SECRET_SIZE),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void*)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx && EVP_KDF_derive(ctx, out, len, params) == 1;
    EVP_KDF_CTX_free(ctx); /* OpenSSL's HKDF context cleanses its key copy when freed */
    if (!ok) {
        OPENSSL_cleanse(out, len);
        ERR_clear_error();
        return moat_error_set(err, -EIO, "deriving secret %s: hkdf failed", name);
    }
    return 0;
}

static int gen_symmetric(const struct moat_ca* ca, const struct moat_secret_spec* spec,
                         const struct moat_secret_binding* b, struct moat_cert_key* ret,
                         struct moat_error* err) {
    (void)ca;
    if (spec->size == 0 || spec->size % 8 != 0)
        return moat_error_set(err, -EINVAL, "invalid secret size: %s", spec->name);
    size_t len    = spec->size / 8;
    uint8_t* key  = OPENSSL_malloc(len);
    uint8_t* copy = OPENSSL_malloc(len);
    int r         = 0;
    if (!key || !copy)
        r = moat_error_set(err, -ENOMEM, "secret %s: out of memory", spec->name);
    else if (b)
        r = moat_secret_derive(b, spec->name, key, len, err);
    else if (RAND_priv_bytes(key, (int)len) != 1)
        r = moat_error_set(err, -EIO, "secret %s: no random bytes", spec->name);
    if (r < 0) {
        OPENSSL_clear_free(key, key ? len : 0);
        OPENSSL_free(copy);
        ERR_clear_error();
        return r;
    }
    memcpy(copy, key, len);
    ret->private_key = (struct moat_der){key, len};
    ret->public_key  = (struct moat_der){copy, len};
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates (generateCertificateForSecret)                                                */

static void pkey_freep(EVP_PKEY** p) {
    EVP_PKEY_free(*p);
}

static const char* const default_dns[] = {"localhost", NULL};
static const char* const default_ips[] = {"127.0.0.1", "::1", NULL};
static const int default_eku[]         = {MOAT_EKU_SERVER_AUTH, MOAT_EKU_CLIENT_AUTH};
#define DEFAULT_CN "MarbleRun Generated Certificate"
#define DAY        ((time_t)86400)

/* NotAfter: the template's, else now + ValidFor days (default 365); for per-marble secrets a
 * ValidFor resets a template NotAfter too. */
static time_t secret_not_after(const struct moat_secret_spec* spec, time_t now) {
    const struct moat_cert_template* t = &spec->cert;
    if (t->not_after == 0)
        return now + (time_t)(spec->valid_for ? spec->valid_for : 365) * DAY;
    if (spec->valid_for != 0 && !spec->shared)
        return now + (time_t)spec->valid_for * DAY;
    return t->not_after;
}

static int secret_cert(const struct moat_ca* ca, const struct moat_secret_spec* spec, EVP_PKEY* key,
                       struct moat_cert_key* ret, struct moat_error* err) {
    const struct moat_cert_template* t = &spec->cert;
    const char* const* dns             = t->dns_names ? t->dns_names : default_dns;
    struct moat_x509_subject subject   = t->subject;
    if (!subject.common_name || !*subject.common_name)
        subject.common_name = dns[0] && !dns[1] ? dns[0] : DEFAULT_CN;

    X509_NAME* name    = NULL;
    GENERAL_NAMES* san = NULL;
    X509* cert         = NULL;
    int r              = moat_x509_name_build(&subject, &name, err);
    if (r == 0)
        r = moat_x509_san_build(dns, t->email_addresses,
                                t->ip_addresses ? t->ip_addresses : default_ips, t->uris, &san,
                                err);
    if (r == 0) {
        time_t now                = time(NULL);
        struct moat_cert_params p = {
            .subject    = name,
            .key        = key,
            .not_before = now,
            .not_after  = secret_not_after(spec, now),
            .key_usage =
                t->key_usage ? t->key_usage : MOAT_KU_DIGITAL_SIGNATURE | MOAT_KU_CERT_SIGN,
            .ext_key_usage   = t->ext_key_usage ? t->ext_key_usage : default_eku,
            .n_ext_key_usage = t->ext_key_usage ? t->n_ext_key_usage : ARRAY_SIZE(default_eku),
            .is_ca           = t->is_ca,
            .san             = san,
            .encode_only     = true, /* moat_cert_key_set below */
        };
        r = moat_ca_issue(ca, &p, &cert, err);
    }
    if (r == 0)
        r = moat_cert_key_set(ret, cert, key, err);
    if (r < 0)
        moat_error_prefix(err, "secret %s", spec->name);
    X509_free(cert);
    GENERAL_NAMES_free(san);
    X509_NAME_free(name);
    return r;
}

static int keygen(const char* alg, const char* arg, size_t bits, EVP_PKEY** ret, const char* name,
                  struct moat_error* err) {
    EVP_PKEY* k = arg && strcmp(alg, "EC") == 0 ? moat_ec_keygen(arg)
                  : arg                         ? EVP_PKEY_Q_keygen(NULL, NULL, alg, arg)
                  : bits                        ? EVP_PKEY_Q_keygen(NULL, NULL, alg, bits)
                                                : EVP_PKEY_Q_keygen(NULL, NULL, alg);
    if (!k) {
        ERR_clear_error();
        return moat_error_set(err, -EIO, "secret %s: generating a %s key failed", name, alg);
    }
    *ret = k;
    return 0;
}

static int gen_ecdsa(const struct moat_ca* ca, const struct moat_secret_spec* spec,
                     const struct moat_secret_binding* b, struct moat_cert_key* ret,
                     struct moat_error* err) {
    (void)b;
    static const struct {
        unsigned size;
        const char* curve;
    } curves[]        = {{224, "P-224"}, {256, "P-256"}, {384, "P-384"}, {521, "P-521"}};
    const char* curve = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(curves); i++)
        if (curves[i].size == spec->size)
            curve = curves[i].curve;
    if (!curve)
        return moat_error_set(err, -EINVAL,
                              "unsupported size %u: does not map to a supported curve", spec->size);
    _cleanup_(pkey_freep) EVP_PKEY* key = NULL;
    int r                               = keygen("EC", curve, 0, &key, spec->name, err);
    return r < 0 ? r : secret_cert(ca, spec, key, ret, err);
}

/* Go's rsa.GenerateKey takes any size; OpenSSL refuses above 16384 bits and Go >= 1.24 below
 * 1024, so both bounds are checked here with one message. */
static int gen_rsa(const struct moat_ca* ca, const struct moat_secret_spec* spec,
                   const struct moat_secret_binding* b, struct moat_cert_key* ret,
                   struct moat_error* err) {
    (void)b;
    if (spec->size < 1024 || spec->size > 16384)
        return moat_error_set(err, -EINVAL,
                              "invalid secret size for cert-rsa: %s (%u bits; 1024 to 16384)",
                              spec->name, spec->size);
    _cleanup_(pkey_freep) EVP_PKEY* key = NULL;
    int r                               = keygen("RSA", NULL, spec->size, &key, spec->name, err);
    return r < 0 ? r : secret_cert(ca, spec, key, ret, err);
}

static int gen_ed25519(const struct moat_ca* ca, const struct moat_secret_spec* spec,
                       const struct moat_secret_binding* b, struct moat_cert_key* ret,
                       struct moat_error* err) {
    (void)b;
    if (spec->size != 0)
        return moat_error_set(err, -EINVAL,
                              "invalid secret size for cert-ed25519, none is expected. given: %s",
                              spec->name);
    _cleanup_(pkey_freep) EVP_PKEY* key = NULL;
    int r                               = keygen("ED25519", NULL, 0, &key, spec->name, err);
    return r < 0 ? r : secret_cert(ca, spec, key, ret, err);
}

static const struct {
    const char* type;
    int (*generate)(const struct moat_ca*, const struct moat_secret_spec*,
                    const struct moat_secret_binding*, struct moat_cert_key*, struct moat_error*);
} generators[] = {
    {"symmetric-key", gen_symmetric},
    {"cert-ecdsa", gen_ecdsa},
    {"cert-rsa", gen_rsa},
    {"cert-ed25519", gen_ed25519},
    /* "plain" has no generator: MarbleRun fails with "unsupported secret of type plain" */
};

int moat_secret_generate(const struct moat_ca* ca, const struct moat_secret_spec* spec,
                         const struct moat_secret_binding* b, struct moat_secret* ret,
                         struct moat_error* err) {
    const char* type = spec->type ? spec->type : "";
    for (size_t i = 0; i < ARRAY_SIZE(generators); i++) {
        if (strcmp(generators[i].type, type) != 0)
            continue;
        struct moat_cert_key v = {0};
        int r                  = generators[i].generate(ca, spec, b, &v, err);
        if (r < 0)
            return r;
        *ret = (struct moat_secret){xstrdup(spec->name), xstrdup(type), v};
        return 0;
    }
    return moat_error_set(err, -EINVAL, "unsupported secret of type %s", type);
}

static int generate_set(const struct moat_ca* ca, const struct moat_secret_spec* specs, size_t n,
                        bool shared, const struct moat_secret_binding* b,
                        struct moat_secret_set* ret, struct moat_error* err) {
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set set = {0};
    set.v = n ? xcalloc(n, sizeof(*set.v)) : NULL;
    for (size_t i = 0; i < n; i++) {
        /* user-defined secrets are uploaded later; the others only in their context */
        if (specs[i].user_defined || specs[i].shared != shared)
            continue;
        int r = moat_secret_generate(ca, &specs[i], b, &set.v[set.n], err);
        if (r < 0)
            return r;
        set.n++;
    }
    *ret = set;
    set  = (struct moat_secret_set){0};
    return 0;
}

int moat_secrets_generate_shared(const struct moat_ca* ca, const struct moat_secret_spec* specs,
                                 size_t n, struct moat_secret_set* ret, struct moat_error* err) {
    return generate_set(ca, specs, n, true, NULL, ret, err);
}

int moat_secrets_generate_marble(const struct moat_ca* ca, const struct moat_secret_spec* specs,
                                 size_t n, const struct moat_secret_binding* b,
                                 struct moat_secret_set* ret, struct moat_error* err) {
    return generate_set(ca, specs, n, false, b, ret, err);
}

void moat_shared_secrets_clear(struct moat_shared_secrets* ss) {
    moat_secret_set_clear(&ss->current);
    moat_secret_set_clear(&ss->previous);
    ss->has_previous = false;
}

int moat_shared_secrets_rotate(struct moat_shared_secrets* ss, const struct moat_ca* ca,
                               const struct moat_secret_spec* specs, size_t n,
                               struct moat_error* err) {
    struct moat_secret_set next = {0};
    int r                       = moat_secrets_generate_shared(ca, specs, n, &next, err);
    if (r < 0)
        return r;
    moat_secret_set_clear(&ss->previous);
    ss->previous     = ss->current;
    ss->current      = next;
    ss->has_previous = true;
    return 0;
}
