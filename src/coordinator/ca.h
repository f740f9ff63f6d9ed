/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Coordinator's certificate authority (MarbleRun reference §3.3, `setCAData`,
 * `coordinator/crypto/crypto.go` `GenerateCert`, `marbleapi.go` `generateCertFromCSR`).
 *
 * Three CA certificates, all ECDSA P-384, signed with ECDSA-SHA384:
 *   root          CN "MarbleRun Coordinator", self-signed;
 *   intermediate  CN "MarbleRun Coordinator - Intermediate CA", own key, signed by the root;
 *   marble root   the intermediate's subject and key, self-signed (a cross-signed pair).
 * Marble leaf certificates and `cert-*` secrets name the marble root as issuer and are signed
 * with the intermediate key, so one chain `leaf, intermediate` verifies against the root, the
 * intermediate or the marble root (§2, MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN).
 *
 * Private keys leave this module only as PKCS#8 DER in a `struct moat_der` that is wiped when
 * freed. Errors are negative errno codes with a message in `struct moat_error`; no key byte
 * ever appears in a message.
 */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

#define MOAT_CA_ROOT_CN         "MarbleRun Coordinator"
#define MOAT_CA_INTERMEDIATE_CN "MarbleRun Coordinator - Intermediate CA"
/* coordinator/oid/oid.go: the marble type, as raw bytes (not ASN.1-wrapped), in the leaf. */
#define MOAT_OID_MARBLE_TYPE "1.3.9903.2.1"

/* ---------------------------------------------------------------------------------------- */
/* Owned byte strings                                                                         */

struct moat_der {
    uint8_t* p;
    size_t len;
};
/* Wipes (OPENSSL_cleanse) and frees the bytes; leaves {NULL, 0}. Accepts an empty value. */
void moat_der_clear(struct moat_der* d);

/* A certificate with its key pair, as the template data needs it (§2: `.Cert` DER,
 * `.Private` PKCS#8 DER, `.Public` PKIX DER). */
struct moat_cert_key {
    struct moat_der cert;
    struct moat_der private_key; /* secret: wiped on clear */
    struct moat_der public_key;
};
void moat_cert_key_clear(struct moat_cert_key* ck);
static inline void moat_cert_key_clearp(struct moat_cert_key* ck) {
    moat_cert_key_clear(ck);
}

/* ---------------------------------------------------------------------------------------- */
/* X.509 naming, shared with the secret templates (secrets.h)                                 */

/* A subject as Go's pkix.Name (the fields the manifest may set). Lists are NULL-terminated;
 * NULL means none. Encoded in Go's order (C, ST, L, street, postal code, O, OU, CN,
 * serialNumber), several values of one attribute in one RDN, PrintableString when the value
 * is printable and UTF8String otherwise, as Go's crypto/x509 does. */
struct moat_x509_subject {
    const char* common_name;
    const char* serial_number;
    const char* const* country;
    const char* const* province;
    const char* const* locality;
    const char* const* street_address;
    const char* const* postal_code;
    const char* const* organization;
    const char* const* organizational_unit;
};

/* Builds the X509_NAME for `s`. Returns 0 or -EINVAL/-ENOMEM with `err` set. */
int moat_x509_name_build(const struct moat_x509_subject* s, X509_NAME** ret,
                         struct moat_error* err) WARN_UNUSED;

/* A fresh 128-bit random serial as util.GenerateCertificateSerialNumber (never zero). */
int moat_x509_random_serial(X509* cert) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* The CA                                                                                     */

/* All members are owned by the struct and read-only for callers. */
struct moat_ca {
    X509* root_cert;
    EVP_PKEY* root_key;
    X509* intermediate_cert;
    EVP_PKEY* intermediate_key; /* also the marble root's key */
    X509* marble_root_cert;
};

/* Generates a new root, intermediate and marble root (setCAData). `dns_names` (NULL-terminated,
 * may be NULL) become DNS SANs, entries that parse as IP addresses become IP SANs, after the
 * loopback addresses 127.0.0.1 and ::1 (EDG_COORDINATOR_DNS_NAMES). */
int moat_ca_generate(const char* const* dns_names, struct moat_ca** ret,
                     struct moat_error* err) WARN_UNUSED;

/* Replaces the intermediate and the marble root with a new key pair signed by the same root
 * (§3.3: rotated on every manifest update). On failure `ca` is unchanged. */
int moat_ca_rotate_intermediate(struct moat_ca* ca, const char* const* dns_names,
                                struct moat_error* err) WARN_UNUSED;

void moat_ca_free(struct moat_ca* ca);
static inline void moat_ca_freep(struct moat_ca** ca) {
    moat_ca_free(*ca);
}
#define _cleanup_ca_ _cleanup_(moat_ca_freep)

/* The CA as DER for sealing: three certificates and two PKCS#8 keys (wiped on clear). */
struct moat_ca_der {
    struct moat_der root_cert;
    struct moat_der root_key;
    struct moat_der intermediate_cert;
    struct moat_der intermediate_key;
    struct moat_der marble_root_cert;
};
void moat_ca_der_clear(struct moat_ca_der* d);
static inline void moat_ca_der_clearp(struct moat_ca_der* d) {
    moat_ca_der_clear(d);
}

int moat_ca_export(const struct moat_ca* ca, struct moat_ca_der* ret,
                   struct moat_error* err) WARN_UNUSED;
/* Restores a CA and checks that it is one: keys P-384 and matching their certificates, the
 * intermediate signed by the root, the marble root self-signed with the intermediate key and
 * subject. -EBADMSG with a message naming the part otherwise. */
int moat_ca_import(const struct moat_ca_der* d, struct moat_ca** ret,
                   struct moat_error* err) WARN_UNUSED;

/* What a certificate says, in Go's x509.Certificate terms. The Coordinator's certificates all
 * have BasicConstraintsValid; CA certificates get a SubjectKeyId (SHA-1 of the public key) and
 * every certificate with a different issuer gets that issuer's key id as AuthorityKeyId.
 * Extensions come in Go's order: KeyUsage (critical), ExtKeyUsage, BasicConstraints
 * (critical), SubjectKeyId, AuthorityKeyId, SubjectAltName, then the marble type. */
struct moat_cert_params {
    const X509_NAME* subject; /* borrowed */
    EVP_PKEY* key;            /* the subject's key (only its public part is used) */
    time_t not_before;
    time_t not_after;
    uint32_t key_usage;       /* Go x509.KeyUsage bits (bit n = X.509 KeyUsage bit n) */
    const int* ext_key_usage; /* Go x509.ExtKeyUsage values */
    size_t n_ext_key_usage;
    bool is_ca;
    const GENERAL_NAMES* san; /* borrowed; NULL or empty: no SubjectAltName */
    const char* marble_type;  /* NULL: no 1.3.9903.2.1 extension */
    /* the certificate will only be DER-encoded: an EC key goes in without OpenSSL's encoder
     * round trip, and the X509 then caches no EVP_PKEY (no TLS or chain checks with it) */
    bool encode_only;
};

/* Go's "effectively infinite" NotAfter: now + math.MaxInt64 nanoseconds. */
#define MOAT_CERT_INFINITE_SECONDS ((time_t)9223372036)

/* Go x509.KeyUsage bits (the ones the Coordinator sets itself). */
enum {
    MOAT_KU_DIGITAL_SIGNATURE = 1u << 0,
    MOAT_KU_KEY_AGREEMENT     = 1u << 4,
    MOAT_KU_CERT_SIGN         = 1u << 5,
};
/* Go x509.ExtKeyUsage values 0..13 (ExtKeyUsageAny .. MicrosoftKernelCodeSigning). */
enum {
    MOAT_EKU_SERVER_AUTH = 1,
    MOAT_EKU_CLIENT_AUTH = 2,
    MOAT_EKU_MAX         = 13,
};

/* Creates and signs a certificate. `issuer` NULL: self-signed with `issuer_key` (which must
 * then be the subject's key). Otherwise signed with `issuer_key` in the name of `issuer`.
 * Signature digest as Go picks it: SHA-256 for P-256 and RSA, SHA-384 for P-384, SHA-512 for
 * P-521, none for Ed25519. */
int moat_cert_create(const struct moat_cert_params* p, const X509* issuer, EVP_PKEY* issuer_key,
                     X509** ret, struct moat_error* err) WARN_UNUSED;

/* SubjectAltName as Go orders it: DNS names, e-mail addresses, IP addresses, URIs (all
 * NULL-terminated lists, NULL = none). An IP that does not parse: -EINVAL,
 * "invalid IP address \"<ip>\"". `ret` is NULL when there are no names. */
int moat_x509_san_build(const char* const* dns, const char* const* emails, const char* const* ips,
                        const char* const* uris, GENERAL_NAMES** ret,
                        struct moat_error* err) WARN_UNUSED;

/* Issues a certificate for `p` as the marble root (issuer name and key id of the marble root,
 * signed with the intermediate key): the issuer of marble leaves and of `cert-*` secrets. */
int moat_ca_issue(const struct moat_ca* ca, const struct moat_cert_params* p, X509** ret,
                  struct moat_error* err) WARN_UNUSED;

/* Encodes `cert` into ck->cert and `key` into ck->private_key (PKCS#8) and ck->public_key
 * (PKIX). On failure `ck` is unchanged. */
int moat_cert_key_set(struct moat_cert_key* ck, const X509* cert, EVP_PKEY* key,
                      struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Marble leaf certificates (§3.3 "Marble leaf", §4.3 step 5)                                 */

struct moat_marble_cert_req {
    /* The CSR from ActivationReq (DER). Its self-signature must verify ("signature over CSR is
     * invalid"); only its Subject, DNS and IP SANs are used, its key is not (MarbleRun
     * generates the marble's key itself). NULL/0: no CSR, an empty subject and no SANs. */
    const uint8_t* csr;
    size_t csr_len;
    const char* marble_type; /* into the 1.3.9903.2.1 extension; required */
    uint8_t uuid[16];        /* the subject CN, in canonical form */
};

/* Issues the leaf: a fresh P-384 key, subject = CSR subject with CN = UUID and O removed (the
 * marble root's issuer O is empty), KeyUsage DigitalSignature|KeyAgreement, EKU server+client
 * auth, CA:FALSE, NotAfter effectively infinite, the marble-type extension, issued by the
 * marble root. On success `ret` holds the certificate, PKCS#8 key and PKIX public key. */
int moat_ca_issue_marble_cert(const struct moat_ca* ca, const struct moat_marble_cert_req* req,
                              struct moat_cert_key* ret, struct moat_error* err) WARN_UNUSED;
