/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest secrets (MarbleRun reference §1.3 Secret, §3.6 `Core.GenerateSecrets`).
 *
 * A `struct moat_secret_spec` is one manifest Secret in C terms; the manifest model maps onto
 * it. Generation follows MarbleRun:
 *   symmetric-key  Size bits (a non-zero multiple of 8). Shared: random. Per marble:
 *                  HKDF-SHA256(IKM = root secret, salt = UUID string + secret name,
 *                  info = marble type, or "" with DisableSecretBinding), so one UUID gets the
 *                  same key after a restart. `.Private` == `.Public` == the key.
 *   cert-ecdsa     Size 224/256/384/521 (the NIST curve of that size).
 *   cert-rsa       Size modulus bits.
 *   cert-ed25519   Size must be 0.
 *   plain          never generated (user-defined); generating it fails.
 * Certificates are issued by the marble root (intermediate key, ca.h) from the Cert template
 * with MarbleRun's defaults; `.Private` is PKCS#8 DER, `.Public` PKIX DER. Per-marble
 * certificates are fresh on every activation.
 *
 * Key bytes live in `struct moat_der`s that are wiped when cleared; the root secrets are
 * fixed-size arrays wiped by moat_root_secrets_wipe(). No message carries key material.
 */
#pragma once

#include "ca.h"

#define MOAT_ROOT_SECRET_SIZE 32

/* The root secrets per-marble keys derive from (§3.6: 32 random bytes, v1.9+), and the one
 * before the last RotateRootSecret (`.Previous`). */
struct moat_root_secrets {
    uint8_t current[MOAT_ROOT_SECRET_SIZE];
    uint8_t previous[MOAT_ROOT_SECRET_SIZE];
    bool has_previous;
};

/* Fills `current` with random bytes, no previous. */
int moat_root_secrets_init(struct moat_root_secrets* rs, struct moat_error* err) WARN_UNUSED;
/* RotateRootSecret: the current secret becomes the previous one, a new random one current.
 * On failure `rs` is unchanged. */
int moat_root_secrets_rotate(struct moat_root_secrets* rs, struct moat_error* err) WARN_UNUSED;
/* The secret `.Previous.Secrets` derive from: the previous one, or the current one when there
 * was no rotation (then `.Previous` equals the current values, §2). */
const uint8_t* moat_root_secrets_previous(const struct moat_root_secrets* rs);
void moat_root_secrets_wipe(struct moat_root_secrets* rs);

/* The Cert template of a secret (Go x509.Certificate fields a manifest may set). NULL lists
 * mean "not given" (Go nil) and get the default; an empty list (just the NULL terminator)
 * means "none". */
struct moat_cert_template {
    struct moat_x509_subject subject; /* CN default: the only DNS name, else
                                         "MarbleRun Generated Certificate" */
    const char* const* dns_names;     /* default {"localhost"} */
    const char* const* ip_addresses;  /* textual; default 127.0.0.1, ::1 */
    const char* const* email_addresses;
    const char* const* uris;
    uint32_t key_usage;       /* Go x509.KeyUsage; 0: DigitalSignature|CertSign */
    const int* ext_key_usage; /* Go x509.ExtKeyUsage; NULL: ServerAuth, ClientAuth */
    size_t n_ext_key_usage;
    time_t not_after; /* 0: unset, ValidFor applies */
    bool is_ca;
};

struct moat_secret_spec {
    const char* name;
    const char* type; /* "cert-ecdsa", "cert-rsa", "cert-ed25519", "symmetric-key", "plain" */
    unsigned size;    /* bits */
    bool shared;
    bool user_defined;
    unsigned valid_for; /* days; 0: 365 */
    struct moat_cert_template cert;
};

/* A generated secret. For symmetric keys `v.cert` is empty and `v.private_key` and
 * `v.public_key` hold the same bytes. */
struct moat_secret {
    char* name;
    char* type;
    struct moat_cert_key v;
};
void moat_secret_clear(struct moat_secret* s);

struct moat_secret_set {
    struct moat_secret* v;
    size_t n;
};
void moat_secret_set_clear(struct moat_secret_set* set);
static inline void moat_secret_set_clearp(struct moat_secret_set* set) {
    moat_secret_set_clear(set);
}
const struct moat_secret* moat_secret_set_find(const struct moat_secret_set* set, const char* name);

/* What a per-marble secret is bound to (§3.6). */
struct moat_secret_binding {
    const uint8_t* root_secret; /* MOAT_ROOT_SECRET_SIZE bytes */
    uint8_t uuid[16];
    const char* marble_type; /* NULL or "" with DisableSecretBinding */
};

/* HKDF-SHA256(IKM = root secret, salt = canonical UUID string + name, info = marble type),
 * `len` bytes into `out`. More than 255*32 bytes: -EINVAL "hkdf: entropy limit reached". */
int moat_secret_derive(const struct moat_secret_binding* b, const char* name, uint8_t* out,
                       size_t len, struct moat_error* err) WARN_UNUSED;

/* Generates one secret. `b` NULL: a shared secret (random symmetric key); otherwise a
 * per-marble one. Errors (-EINVAL, MarbleRun's texts): "invalid secret size: <name>",
 * "unsupported size <n>: does not map to a supported curve",
 * "invalid secret size for cert-ed25519, none is expected. given: <name>",
 * "unsupported secret of type <type>", and for the template "invalid IP address \"<ip>\"",
 * "x509: unknown extended key usage". */
int moat_secret_generate(const struct moat_ca* ca, const struct moat_secret_spec* spec,
                         const struct moat_secret_binding* b, struct moat_secret* ret,
                         struct moat_error* err) WARN_UNUSED;

/* SetManifest: every shared, not user-defined secret of `specs`. */
int moat_secrets_generate_shared(const struct moat_ca* ca, const struct moat_secret_spec* specs,
                                 size_t n, struct moat_secret_set* ret,
                                 struct moat_error* err) WARN_UNUSED;
/* Activate: every per-marble (not shared), not user-defined secret of `specs` for `b`. For
 * `.Previous.Secrets` call it again with b->root_secret = moat_root_secrets_previous(). */
int moat_secrets_generate_marble(const struct moat_ca* ca, const struct moat_secret_spec* specs,
                                 size_t n, const struct moat_secret_binding* b,
                                 struct moat_secret_set* ret, struct moat_error* err) WARN_UNUSED;

/* Shared secrets across RotateRootSecret: `previous` is the set before the last rotation. */
struct moat_shared_secrets {
    struct moat_secret_set current;
    struct moat_secret_set previous;
    bool has_previous;
};
void moat_shared_secrets_clear(struct moat_shared_secrets* ss);
/* Generates a new shared set; on success the current set becomes `previous` (the old previous
 * set is wiped). On failure `ss` is unchanged. */
int moat_shared_secrets_rotate(struct moat_shared_secrets* ss, const struct moat_ca* ca,
                               const struct moat_secret_spec* specs, size_t n,
                               struct moat_error* err) WARN_UNUSED;
