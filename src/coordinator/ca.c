/* SPDX-License-Identifier: Apache-2.0 */
/* The Coordinator's CA (MarbleRun reference §3.3): see ca.h. */
#include "ca.h"

#include "csr.h"
#include "eckey.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                              */

static void x509_freep(X509** p) {
    X509_free(*p);
}
static void pkey_freep(EVP_PKEY** p) {
    EVP_PKEY_free(*p);
}
static void name_freep(X509_NAME** p) {
    X509_NAME_free(*p);
}
static void gens_freep(GENERAL_NAMES** p) {
    GENERAL_NAMES_free(*p);
}
static void ossl_freep(void* p) {
    OPENSSL_free(*(void**)p);
}
#define _cleanup_x509_ _cleanup_(x509_freep)
#define _cleanup_pkey_ _cleanup_(pkey_freep)
#define _cleanup_name_ _cleanup_(name_freep)
#define _cleanup_gens_ _cleanup_(gens_freep)
#define _cleanup_ossl_ _cleanup_(ossl_freep)

/* An OpenSSL failure: the message names the step and OpenSSL's reason, never any data. */
static int ossl_error(struct moat_error* err, const char* what) {
    char reason[256] = "unknown error";
    unsigned long e  = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    return moat_error_set(err, -EIO, "%s: %s", what, reason);
}

void moat_der_clear(struct moat_der* d) {
    if (!d)
        return;
    OPENSSL_clear_free(d->p, d->len);
    *d = (struct moat_der){0};
}

void moat_cert_key_clear(struct moat_cert_key* ck) {
    if (!ck)
        return;
    moat_der_clear(&ck->cert);
    moat_der_clear(&ck->private_key);
    moat_der_clear(&ck->public_key);
}

static int der_x509(const X509* x, struct moat_der* ret) {
    unsigned char* p = NULL;
    int n            = i2d_X509(x, &p);
    if (n <= 0)
        return -EIO;
    *ret = (struct moat_der){p, (size_t)n};
    return 0;
}

/* PKCS#8 as Go's x509.MarshalPKCS8PrivateKey. The intermediate PKCS8_PRIV_KEY_INFO wipes its
 * key octets when freed (OpenSSL's pkey_cb). */
static int der_pkcs8(const EVP_PKEY* key, struct moat_der* ret) {
    unsigned char* ec = NULL;
    int nec           = moat_ec_pkcs8_der(key, &ec);
    if (nec != 0) {
        if (nec < 0)
            return nec;
        *ret = (struct moat_der){ec, (size_t)nec};
        return 0;
    }
    PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(key);
    if (!p8)
        return -EIO;
    unsigned char* p = NULL;
    int n            = i2d_PKCS8_PRIV_KEY_INFO(p8, &p);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0)
        return -EIO;
    *ret = (struct moat_der){p, (size_t)n};
    return 0;
}

static int der_pubkey(const EVP_PKEY* key, struct moat_der* ret) {
    unsigned char* p = NULL;
    int n            = moat_ec_spki_der(key, &p);
    if (n == 0)
        n = i2d_PUBKEY(key, &p);
    if (n <= 0)
        return -EIO;
    *ret = (struct moat_der){p, (size_t)n};
    return 0;
}

int moat_cert_key_set(struct moat_cert_key* ck, const X509* cert, EVP_PKEY* key,
                      struct moat_error* err) {
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key out = {0};
    if ((cert && der_x509(cert, &out.cert) < 0) || der_pkcs8(key, &out.private_key) < 0 ||
        der_pubkey(key, &out.public_key) < 0)
        return ossl_error(err, "encoding a certificate and key");
    moat_cert_key_clear(ck);
    *ck = out;
    out = (struct moat_cert_key){0};
    return 0;
}

static int keygen_p384(EVP_PKEY** ret, struct moat_error* err) {
    EVP_PKEY* k = moat_ec_keygen("P-384");
    if (!k)
        return ossl_error(err, "generating a P-384 key");
    *ret = k;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Names                                                                                      */

/* Go's asn1 marshalling: PrintableString when every byte is in the PrintableString set (Go
 * also lets '*' through), UTF8String otherwise. */
static bool go_printable(const char* s) {
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(" '()+,-./:=?*", c)))
            return false;
    }
    return true;
}

/* Adds values of one attribute as one RDN (Go's appendRDNs: a multi-valued RDN). */
static int name_add_rdn(X509_NAME* name, int nid, const char* const* values, size_t n,
                        struct moat_error* err) {
    for (size_t i = 0; i < n; i++) {
        int type = go_printable(values[i]) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
        if (!X509_NAME_add_entry_by_NID(name, nid, type, (const unsigned char*)values[i], -1, -1,
                                        i == 0 ? 0 : -1))
            return ossl_error(err, "building a certificate subject");
    }
    return 0;
}

static size_t strv_len(const char* const* v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

int moat_x509_name_build(const struct moat_x509_subject* s, X509_NAME** ret,
                         struct moat_error* err) {
    _cleanup_name_ X509_NAME* name = X509_NAME_new();
    if (!name)
        return ossl_error(err, "building a certificate subject");
    /* pkix.Name.ToRDNSequence order */
    const struct {
        int nid;
        const char* const* v;
    } lists[] = {
        {NID_countryName, s->country},
        {NID_stateOrProvinceName, s->province},
        {NID_localityName, s->locality},
        {NID_streetAddress, s->street_address},
        {NID_postalCode, s->postal_code},
        {NID_organizationName, s->organization},
        {NID_organizationalUnitName, s->organizational_unit},
    };
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        int r = name_add_rdn(name, lists[i].nid, lists[i].v, strv_len(lists[i].v), err);
        if (r < 0)
            return r;
    }
    if (s->common_name && *s->common_name) {
        int r = name_add_rdn(name, NID_commonName, &s->common_name, 1, err);
        if (r < 0)
            return r;
    }
    if (s->serial_number && *s->serial_number) {
        int r = name_add_rdn(name, NID_serialNumber, &s->serial_number, 1, err);
        if (r < 0)
            return r;
    }
    *ret = TAKE_PTR(name);
    return 0;
}

int moat_x509_random_serial(X509* cert) {
    uint8_t b[16];
    do {
        if (RAND_bytes(b, sizeof(b)) != 1)
            return -EIO;
    } while (CRYPTO_memcmp(b, (const uint8_t[16]){0}, 16) == 0);
    BIGNUM* bn = BN_bin2bn(b, sizeof(b), NULL);
    if (!bn)
        return -ENOMEM;
    ASN1_INTEGER* ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (!ai)
        return -ENOMEM;
    int ok = X509_set_serialNumber(cert, ai);
    ASN1_INTEGER_free(ai);
    return ok ? 0 : -EIO;
}

/* ---------------------------------------------------------------------------------------- */
/* Subject alternative names                                                                  */

static int san_push(GENERAL_NAMES* gens, int type, const char* v, struct moat_error* err) {
    GENERAL_NAME* g = NULL;
    if (type == GEN_IPADD) {
        ASN1_OCTET_STRING* ip = a2i_IPADDRESS(v);
        if (!ip) {
            ERR_clear_error();
            return moat_error_set(err, -EINVAL, "invalid IP address \"%s\"", v);
        }
        g = GENERAL_NAME_new();
        if (g)
            GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        else
            ASN1_OCTET_STRING_free(ip);
    } else {
        ASN1_IA5STRING* s = ASN1_IA5STRING_new();
        if (s && !ASN1_STRING_set(s, v, -1)) {
            ASN1_IA5STRING_free(s);
            s = NULL;
        }
        g = s ? GENERAL_NAME_new() : NULL;
        if (g)
            GENERAL_NAME_set0_value(g, type, s);
        else
            ASN1_IA5STRING_free(s);
    }
    if (!g || !sk_GENERAL_NAME_push(gens, g)) {
        GENERAL_NAME_free(g);
        return ossl_error(err, "building subject alternative names");
    }
    return 0;
}

int moat_x509_san_build(const char* const* dns, const char* const* emails, const char* const* ips,
                        const char* const* uris, GENERAL_NAMES** ret, struct moat_error* err) {
    _cleanup_gens_ GENERAL_NAMES* gens = GENERAL_NAMES_new();
    if (!gens)
        return ossl_error(err, "building subject alternative names");
    const struct {
        int type;
        const char* const* v;
    } lists[] = {{GEN_DNS, dns}, {GEN_EMAIL, emails}, {GEN_IPADD, ips}, {GEN_URI, uris}};
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
        for (size_t j = 0; lists[i].v && lists[i].v[j]; j++) {
            int r = san_push(gens, lists[i].type, lists[i].v[j], err);
            if (r < 0)
                return r;
        }
    *ret = sk_GENERAL_NAME_num(gens) > 0 ? TAKE_PTR(gens) : NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates                                                                               */

/* Go's x509.ExtKeyUsage values, by index. */
static const char* const eku_oids[MOAT_EKU_MAX + 1] = {
    "2.5.29.37.0",            /* Any */
    "1.3.6.1.5.5.7.3.1",      /* ServerAuth */
    "1.3.6.1.5.5.7.3.2",      /* ClientAuth */
    "1.3.6.1.5.5.7.3.3",      /* CodeSigning */
    "1.3.6.1.5.5.7.3.4",      /* EmailProtection */
    "1.3.6.1.5.5.7.3.5",      /* IPSECEndSystem */
    "1.3.6.1.5.5.7.3.6",      /* IPSECTunnel */
    "1.3.6.1.5.5.7.3.7",      /* IPSECUser */
    "1.3.6.1.5.5.7.3.8",      /* TimeStamping */
    "1.3.6.1.5.5.7.3.9",      /* OCSPSigning */
    "1.3.6.1.4.1.311.10.3.3", /* MicrosoftServerGatedCrypto */
    "2.16.840.1.113730.4.1",  /* NetscapeServerGatedCrypto */
    "1.3.6.1.4.1.311.2.1.22", /* MicrosoftCommercialCodeSigning */
    "1.3.6.1.4.1.311.61.1.1", /* MicrosoftKernelCodeSigning */
};

static int add_key_usage(X509* x, uint32_t ku) {
    if (!ku)
        return 0;
    ASN1_BIT_STRING* bs = ASN1_BIT_STRING_new();
    int ok              = bs != NULL;
    for (int bit = 0; ok && bit < 9; bit++)
        if (ku & (1u << bit))
            ok = ASN1_BIT_STRING_set_bit(bs, bit, 1);
    ok = ok && X509_add1_ext_i2d(x, NID_key_usage, bs, 1, X509V3_ADD_DEFAULT) == 1;
    ASN1_BIT_STRING_free(bs);
    return ok ? 0 : -EIO;
}

static int add_ext_key_usage(X509* x, const int* eku, size_t n, struct moat_error* err) {
    if (!n)
        return 0;
    EXTENDED_KEY_USAGE* s = sk_ASN1_OBJECT_new_null();
    if (!s)
        return -ENOMEM;
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        if (eku[i] < 0 || eku[i] > MOAT_EKU_MAX) {
            r = moat_error_set(err, -EINVAL, "x509: unknown extended key usage");
            break;
        }
        ASN1_OBJECT* o = OBJ_txt2obj(eku_oids[eku[i]], 1);
        if (!o || !sk_ASN1_OBJECT_push(s, o)) {
            ASN1_OBJECT_free(o);
            r = -EIO;
        }
    }
    if (r == 0 && X509_add1_ext_i2d(x, NID_ext_key_usage, s, 0, X509V3_ADD_DEFAULT) != 1)
        r = -EIO;
    sk_ASN1_OBJECT_pop_free(s, ASN1_OBJECT_free);
    return r;
}

static int add_basic_constraints(X509* x, bool is_ca) {
    BASIC_CONSTRAINTS* bc = BASIC_CONSTRAINTS_new();
    if (!bc)
        return -ENOMEM;
    bc->ca = is_ca ? 0xff : 0;
    int ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1;
    BASIC_CONSTRAINTS_free(bc);
    return ok ? 0 : -EIO;
}

/* Go: SubjectKeyId = SHA-1 over the subjectPublicKey bits, for CA certificates. */
static int add_subject_key_id(X509* x) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!X509_pubkey_digest(x, EVP_sha1(), md, &len))
        return -EIO;
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    int ok                = os && ASN1_OCTET_STRING_set(os, md, (int)len) &&
             X509_add1_ext_i2d(x, NID_subject_key_identifier, os, 0, X509V3_ADD_DEFAULT) == 1;
    ASN1_OCTET_STRING_free(os);
    return ok ? 0 : -EIO;
}

static int add_authority_key_id(X509* x, const X509* issuer) {
    const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id((X509*)issuer);
    if (!skid)
        return 0;
    AUTHORITY_KEYID* akid = AUTHORITY_KEYID_new();
    if (!akid)
        return -ENOMEM;
    akid->keyid = ASN1_OCTET_STRING_dup(skid);
    int ok      = akid->keyid &&
             X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
    AUTHORITY_KEYID_free(akid);
    return ok ? 0 : -EIO;
}

/* 1.3.9903.2.1 with the marble type's raw bytes as extnValue (not ASN.1-wrapped). */
static int add_marble_type(X509* x, const char* type) {
    ASN1_OBJECT* obj      = OBJ_txt2obj(MOAT_OID_MARBLE_TYPE, 1);
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    X509_EXTENSION* ext   = NULL;
    int ok = obj && os && ASN1_OCTET_STRING_set(os, (const unsigned char*)type, (int)strlen(type));
    ok     = ok && (ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os)) != NULL;
    ok     = ok && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return ok ? 0 : -EIO;
}

/* Go's signingParamsForPublicKey for the signer's key. */
static const EVP_MD* sign_digest(const EVP_PKEY* key) {
    if (EVP_PKEY_is_a(key, "ED25519"))
        return NULL;
    if (EVP_PKEY_is_a(key, "EC")) {
        int bits = EVP_PKEY_get_bits(key);
        return bits > 384 ? EVP_sha512() : bits > 256 ? EVP_sha384() : EVP_sha256();
    }
    return EVP_sha256();
}

static int set_validity(X509* x, time_t not_before, time_t not_after) {
    return ASN1_TIME_set(X509_getm_notBefore(x), not_before) &&
                   ASN1_TIME_set(X509_getm_notAfter(x), not_after)
               ? 0
               : -EIO;
}

/* X509_set_pubkey; for a certificate that will only be encoded, without OpenSSL's encoder
 * round trip for EC keys (eckey.h) */
static bool set_pubkey(X509* x, EVP_PKEY* key, bool encode_only) {
    int r = encode_only ? moat_ec_x509_set_pubkey(x, key) : 0;
    return r == 0 ? X509_set_pubkey(x, key) == 1 : r == 1;
}

int moat_cert_create(const struct moat_cert_params* p, const X509* issuer, EVP_PKEY* issuer_key,
                     X509** ret, struct moat_error* err) {
    _cleanup_x509_ X509* x = X509_new();
    if (!x || !X509_set_version(x, X509_VERSION_3) || moat_x509_random_serial(x) < 0 ||
        !X509_set_subject_name(x, (X509_NAME*)p->subject) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : (X509_NAME*)p->subject) ||
        !set_pubkey(x, p->key, p->encode_only) || set_validity(x, p->not_before, p->not_after) < 0)
        return ossl_error(err, "creating a certificate");
    int r = add_key_usage(x, p->key_usage);
    if (r == 0)
        r = add_ext_key_usage(x, p->ext_key_usage, p->n_ext_key_usage, err);
    if (r == -EINVAL)
        return r;
    if (r == 0)
        r = add_basic_constraints(x, p->is_ca);
    if (r == 0 && p->is_ca)
        r = add_subject_key_id(x);
    /* Go sets AuthorityKeyId only when the issuer's name differs from the subject's */
    if (r == 0 && issuer && X509_NAME_cmp(X509_get_subject_name(issuer), p->subject) != 0)
        r = add_authority_key_id(x, issuer);
    if (r == 0 && p->san && sk_GENERAL_NAME_num(p->san) > 0 &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, (GENERAL_NAMES*)p->san, 0, X509V3_ADD_DEFAULT) !=
            1)
        r = -EIO;
    if (r == 0 && p->marble_type)
        r = add_marble_type(x, p->marble_type);
    if (r < 0)
        return ossl_error(err, "adding certificate extensions");
    if (X509_sign(x, issuer_key, sign_digest(issuer_key)) <= 0)
        return ossl_error(err, "signing a certificate");
    *ret = TAKE_PTR(x);
    return 0;
}

int moat_ca_issue(const struct moat_ca* ca, const struct moat_cert_params* p, X509** ret,
                  struct moat_error* err) {
    return moat_cert_create(p, ca->marble_root_cert, ca->intermediate_key, ret, err);
}

/* ---------------------------------------------------------------------------------------- */
/* The CA certificates (setCAData, GenerateCert)                                              */

static const char* const loopback_ips[] = {"127.0.0.1", "::1", NULL};

/* SANs of a CA certificate: the DNS names that are not IPs; loopback IPs, then the IPs. */
static int ca_san(const char* const* dns_names, GENERAL_NAMES** ret, struct moat_error* err) {
    size_t n                        = strv_len(dns_names);
    _cleanup_free_ const char** dns = xcalloc(n + 1, sizeof(char*));
    _cleanup_free_ const char** ips = xcalloc(n + 3, sizeof(char*));
    size_t nd = 0, ni = 0;
    ips[ni++] = loopback_ips[0];
    ips[ni++] = loopback_ips[1];
    for (size_t i = 0; i < n; i++) {
        ASN1_OCTET_STRING* ip = a2i_IPADDRESS(dns_names[i]);
        ERR_clear_error();
        if (ip)
            ips[ni++] = dns_names[i];
        else
            dns[nd++] = dns_names[i];
        ASN1_OCTET_STRING_free(ip);
    }
    return moat_x509_san_build(dns, NULL, ips, NULL, ret, err);
}

/* GenerateCert: a CA certificate for `key` named `cn`, self-signed when `issuer` is NULL. */
static int ca_cert(const char* const* dns_names, const char* cn, EVP_PKEY* key, const X509* issuer,
                   EVP_PKEY* issuer_key, X509** ret, struct moat_error* err) {
    _cleanup_name_ X509_NAME* name    = NULL;
    _cleanup_gens_ GENERAL_NAMES* san = NULL;
    int r = moat_x509_name_build(&(struct moat_x509_subject){.common_name = cn}, &name, err);
    if (r == 0)
        r = ca_san(dns_names, &san, err);
    if (r < 0)
        return r;
    time_t now                = time(NULL);
    static const int eku[]    = {MOAT_EKU_SERVER_AUTH, MOAT_EKU_CLIENT_AUTH};
    struct moat_cert_params p = {
        .subject         = name,
        .key             = key,
        .not_before      = now,
        .not_after       = now + MOAT_CERT_INFINITE_SECONDS,
        .key_usage       = MOAT_KU_DIGITAL_SIGNATURE | MOAT_KU_CERT_SIGN,
        .ext_key_usage   = eku,
        .n_ext_key_usage = ARRAY_SIZE(eku),
        .is_ca           = true,
        .san             = san,
    };
    return moat_cert_create(&p, issuer, issuer ? issuer_key : key, ret, err);
}

void moat_ca_free(struct moat_ca* ca) {
    if (!ca)
        return;
    X509_free(ca->root_cert);
    EVP_PKEY_free(ca->root_key);
    X509_free(ca->intermediate_cert);
    EVP_PKEY_free(ca->intermediate_key);
    X509_free(ca->marble_root_cert);
    free(ca);
}

/* The intermediate (signed by the root) and the marble root (self-signed, same key and
 * subject): "a cross-signed pair" (§3.3, marblerun issue #175). */
static int make_intermediate(const struct moat_ca* ca, const char* const* dns_names,
                             EVP_PKEY** ret_key, X509** ret_inter, X509** ret_mroot,
                             struct moat_error* err) {
    _cleanup_pkey_ EVP_PKEY* key = NULL;
    _cleanup_x509_ X509 *inter = NULL, *mroot = NULL;
    int r = keygen_p384(&key, err);
    if (r == 0)
        r = ca_cert(dns_names, MOAT_CA_INTERMEDIATE_CN, key, ca->root_cert, ca->root_key, &inter,
                    err);
    if (r == 0)
        r = ca_cert(dns_names, MOAT_CA_INTERMEDIATE_CN, key, NULL, NULL, &mroot, err);
    if (r < 0)
        return r;
    *ret_key   = TAKE_PTR(key);
    *ret_inter = TAKE_PTR(inter);
    *ret_mroot = TAKE_PTR(mroot);
    return 0;
}

int moat_ca_generate(const char* const* dns_names, struct moat_ca** ret, struct moat_error* err) {
    _cleanup_ca_ struct moat_ca* ca = xcalloc(1, sizeof(*ca));
    int r                           = keygen_p384(&ca->root_key, err);
    if (r == 0)
        r = ca_cert(dns_names, MOAT_CA_ROOT_CN, ca->root_key, NULL, NULL, &ca->root_cert, err);
    if (r == 0)
        r = make_intermediate(ca, dns_names, &ca->intermediate_key, &ca->intermediate_cert,
                              &ca->marble_root_cert, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(ca);
    return 0;
}

int moat_ca_rotate_intermediate(struct moat_ca* ca, const char* const* dns_names,
                                struct moat_error* err) {
    EVP_PKEY* key = NULL;
    X509 *inter = NULL, *mroot = NULL;
    int r = make_intermediate(ca, dns_names, &key, &inter, &mroot, err);
    if (r < 0)
        return r;
    EVP_PKEY_free(ca->intermediate_key);
    X509_free(ca->intermediate_cert);
    X509_free(ca->marble_root_cert);
    ca->intermediate_key  = key;
    ca->intermediate_cert = inter;
    ca->marble_root_cert  = mroot;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Export and import (for sealing)                                                            */

void moat_ca_der_clear(struct moat_ca_der* d) {
    if (!d)
        return;
    moat_der_clear(&d->root_cert);
    moat_der_clear(&d->root_key);
    moat_der_clear(&d->intermediate_cert);
    moat_der_clear(&d->intermediate_key);
    moat_der_clear(&d->marble_root_cert);
}

int moat_ca_export(const struct moat_ca* ca, struct moat_ca_der* ret, struct moat_error* err) {
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    if (der_x509(ca->root_cert, &d.root_cert) < 0 || der_pkcs8(ca->root_key, &d.root_key) < 0 ||
        der_x509(ca->intermediate_cert, &d.intermediate_cert) < 0 ||
        der_pkcs8(ca->intermediate_key, &d.intermediate_key) < 0 ||
        der_x509(ca->marble_root_cert, &d.marble_root_cert) < 0)
        return ossl_error(err, "encoding the coordinator CA");
    *ret = d;
    d    = (struct moat_ca_der){0};
    return 0;
}

static int import_cert(const struct moat_der* d, const char* what, X509** ret,
                       struct moat_error* err) {
    const unsigned char* p = d->p;
    X509* x                = d->p ? d2i_X509(NULL, &p, (long)d->len) : NULL;
    if (!x || p != d->p + d->len) {
        X509_free(x);
        ERR_clear_error();
        return moat_error_set(err, -EBADMSG, "the %s certificate does not parse", what);
    }
    *ret = x;
    return 0;
}

static bool is_p384(const EVP_PKEY* k) {
    char curve[32] = "";
    return EVP_PKEY_is_a(k, "EC") &&
           EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof(curve),
                                          NULL) &&
           strcmp(curve, "secp384r1") == 0;
}

static int import_key(const struct moat_der* d, const char* what, EVP_PKEY** ret,
                      struct moat_error* err) {
    const unsigned char* p = d->p;
    EVP_PKEY* k            = d->p ? d2i_AutoPrivateKey(NULL, &p, (long)d->len) : NULL;
    ERR_clear_error();
    if (!k || !is_p384(k)) {
        EVP_PKEY_free(k);
        return moat_error_set(err, -EBADMSG, "the %s key is not a PKCS#8 P-384 key", what);
    }
    *ret = k;
    return 0;
}

static int ca_check(const struct moat_ca* ca, struct moat_error* err) {
    const char* bad = NULL;
    if (X509_check_private_key(ca->root_cert, ca->root_key) != 1)
        bad = "the root certificate does not match the root key";
    else if (X509_verify(ca->root_cert, ca->root_key) != 1)
        bad = "the root certificate is not self-signed";
    else if (X509_check_private_key(ca->intermediate_cert, ca->intermediate_key) != 1)
        bad = "the intermediate certificate does not match the intermediate key";
    else if (X509_verify(ca->intermediate_cert, ca->root_key) != 1)
        bad = "the intermediate certificate is not signed by the root";
    else if (X509_check_private_key(ca->marble_root_cert, ca->intermediate_key) != 1)
        bad = "the marble root certificate does not match the intermediate key";
    else if (X509_verify(ca->marble_root_cert, ca->intermediate_key) != 1)
        bad = "the marble root certificate is not self-signed";
    else if (X509_NAME_cmp(X509_get_subject_name(ca->marble_root_cert),
                           X509_get_subject_name(ca->intermediate_cert)) != 0)
        bad = "the marble root and intermediate subjects differ";
    ERR_clear_error();
    return bad ? moat_error_set(err, -EBADMSG, "invalid coordinator CA: %s", bad) : 0;
}

int moat_ca_import(const struct moat_ca_der* d, struct moat_ca** ret, struct moat_error* err) {
    _cleanup_ca_ struct moat_ca* ca = xcalloc(1, sizeof(*ca));
    int r                           = import_cert(&d->root_cert, "root", &ca->root_cert, err);
    if (r == 0)
        r = import_key(&d->root_key, "root", &ca->root_key, err);
    if (r == 0)
        r = import_cert(&d->intermediate_cert, "intermediate", &ca->intermediate_cert, err);
    if (r == 0)
        r = import_key(&d->intermediate_key, "intermediate", &ca->intermediate_key, err);
    if (r == 0)
        r = import_cert(&d->marble_root_cert, "marble root", &ca->marble_root_cert, err);
    if (r == 0)
        r = ca_check(ca, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(ca);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Marble leaf (generateCertFromCSR)                                                          */

/* Go's FillFromRDNSequence + ToRDNSequence over the CSR subject: the known string attributes
 * in Go's order, all values of one attribute in one RDN (serialNumber: the last one), CN
 * replaced by the UUID and O dropped (the marble root's issuer has no O). */
static const int csr_name_nids[] = {
    NID_countryName,   NID_stateOrProvinceName, NID_localityName,
    NID_streetAddress, NID_postalCode,          NID_organizationalUnitName,
};

static int name_copy_nid(X509_NAME* out, const X509_NAME* in, int nid, bool last_only,
                         struct moat_error* err) {
    bool first = true;
    for (int i = -1; (i = X509_NAME_get_index_by_NID(in, nid, i)) >= 0;) {
        if (last_only && X509_NAME_get_index_by_NID(in, nid, i) >= 0)
            continue;
        const ASN1_STRING* v               = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(in, i));
        _cleanup_ossl_ unsigned char* utf8 = NULL;
        if (ASN1_STRING_to_UTF8(&utf8, v) < 0) {
            ERR_clear_error();
            continue; /* not a string: Go skips it */
        }
        const char* s = (const char*)utf8;
        int type      = go_printable(s) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
        if (!X509_NAME_add_entry_by_NID(out, nid, type, utf8, -1, -1, first ? 0 : -1))
            return ossl_error(err, "copying the CSR subject");
        first = false;
    }
    return 0;
}

static int leaf_subject(const X509_NAME* in, const uint8_t uuid[16], X509_NAME** ret,
                        struct moat_error* err) {
    _cleanup_name_ X509_NAME* name = X509_NAME_new();
    if (!name)
        return ossl_error(err, "building the marble subject");
    for (size_t i = 0; in && i < ARRAY_SIZE(csr_name_nids); i++) {
        int r = name_copy_nid(name, in, csr_name_nids[i], false, err);
        if (r < 0)
            return r;
    }
    char cn[MOAT_UUID_STR_SIZE];
    moat_uuid_format(uuid, cn);
    const char* cnp = cn;
    int r           = name_add_rdn(name, NID_commonName, &cnp, 1, err);
    if (r == 0 && in)
        r = name_copy_nid(name, in, NID_serialNumber, true, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(name);
    return 0;
}

/* The CSR's DNS names, then its IP addresses (Go copies only these two). */
static int leaf_san(const STACK_OF(X509_EXTENSION) * exts, GENERAL_NAMES** ret,
                    struct moat_error* err) {
    *ret = NULL;
    _cleanup_gens_ GENERAL_NAMES* in =
        exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    ERR_clear_error();
    if (!in)
        return 0;
    _cleanup_gens_ GENERAL_NAMES* out = GENERAL_NAMES_new();
    if (!out)
        return ossl_error(err, "copying the CSR names");
    static const int types[] = {GEN_DNS, GEN_IPADD};
    for (size_t t = 0; t < ARRAY_SIZE(types); t++)
        for (int i = 0; i < sk_GENERAL_NAME_num(in); i++) {
            GENERAL_NAME* g = sk_GENERAL_NAME_value(in, i);
            if (g->type != types[t])
                continue;
            GENERAL_NAME* c = GENERAL_NAME_dup(g);
            if (!c || !sk_GENERAL_NAME_push(out, c)) {
                GENERAL_NAME_free(c);
                return ossl_error(err, "copying the CSR names");
            }
        }
    *ret = TAKE_PTR(out);
    return 0;
}

int moat_ca_issue_marble_cert(const struct moat_ca* ca, const struct moat_marble_cert_req* rq,
                              struct moat_cert_key* ret, struct moat_error* err) {
    if (!rq->marble_type)
        return moat_error_set(err, -EINVAL, "no marble type for the marble certificate");
    _cleanup_(moat_csr_clear) struct moat_csr csr = {0};
    _cleanup_name_ X509_NAME* subject             = NULL;
    _cleanup_gens_ GENERAL_NAMES* san             = NULL;
    _cleanup_pkey_ EVP_PKEY* key                  = NULL;
    _cleanup_x509_ X509* cert                     = NULL;
    int r = rq->csr ? moat_csr_parse(rq->csr, rq->csr_len, &csr, err) : 0;
    if (r == 0)
        r = leaf_subject(csr.subject, rq->uuid, &subject, err);
    if (r == 0)
        r = leaf_san(csr.exts, &san, err);
    if (r == 0)
        r = keygen_p384(&key, err); /* §3.3: the CSR's key is not used */
    if (r < 0)
        return r;
    time_t now                = time(NULL);
    static const int eku[]    = {MOAT_EKU_SERVER_AUTH, MOAT_EKU_CLIENT_AUTH};
    struct moat_cert_params p = {
        .subject         = subject,
        .key             = key,
        .not_before      = now,
        .not_after       = now + MOAT_CERT_INFINITE_SECONDS,
        .key_usage       = MOAT_KU_DIGITAL_SIGNATURE | MOAT_KU_KEY_AGREEMENT,
        .ext_key_usage   = eku,
        .n_ext_key_usage = ARRAY_SIZE(eku),
        .is_ca           = false,
        .san             = san,
        .marble_type     = rq->marble_type,
        .encode_only     = true, /* moat_cert_key_set below */
    };
    r = moat_ca_issue(ca, &p, &cert, err);
    if (r == 0)
        r = moat_cert_key_set(ret, cert, key, err);
    return r;
}
