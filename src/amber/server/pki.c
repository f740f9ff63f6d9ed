/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token service's own PKI (attestation.md §4.2 "Verification": the JWKS x5c chain ends at
 * ITA's root CA, and each certificate names a CRL): a root CA, a Signing CA and a token-signing
 * certificate, all RSA-3072, a nonce-signing key, and the TLS certificate. Made at first start
 * and kept in
 * the state directory (0700; files 0600, written atomically).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pck.h"
#include "server.h"

#define RSA_BITS       3072
#define ROOT_DAYS      3650
#define LEAF_DAYS      730
#define CRL_DAYS       30
#define ROOT_CN        "moat Amber Attestation Token Root CA"
#define CA_CN          "moat Amber Attestation Token Signing CA"
#define SIGNING_CN     "moat Amber Attestation Token Signing Certificate"
#define F_CA_CERT      "signing_ca.pem"
#define F_CA_KEY       "signing_ca.key"
#define F_ROOT_CERT    "root_ca.pem"
#define F_ROOT_KEY     "root_ca.key"
#define F_SIGNING_CERT "token_signing.pem"
#define F_SIGNING_KEY  "token_signing.key"
#define F_NONCE_KEY    "nonce_signing.key"
#define F_INSTANCE     "instance_id"
#define F_TLS_CERT     "tls.pem"
#define F_TLS_KEY      "tls.key"

void amber_pki_clear(struct amber_pki* p) {
    EVP_PKEY_free(p->root_key);
    X509_free(p->root);
    EVP_PKEY_free(p->ca_key);
    X509_free(p->ca);
    EVP_PKEY_free(p->signing_key);
    X509_free(p->signing);
    EVP_PKEY_free(p->nonce_key);
    OPENSSL_free(p->root_crl_der);
    OPENSSL_free(p->ca_crl_der);
    *p = (struct amber_pki){0};
}

void amber_tls_clear(struct net_tls_credentials* c) {
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    *c = (struct net_tls_credentials){0};
}

static int ossl_err(struct moat_error* err, const char* what) {
    return moat_error_set(err, -EIO, "%s failed (OpenSSL)", what);
}

/* ------------------------------------------------------------------------------------------ */
/* Sealing: private keys at rest under the machine's sealing key (as the Coordinator's store)   */

#define SEAL_MAGIC     "MOATAMB1"
#define SEAL_MAGIC_LEN 8
#define SEAL_IV_LEN    12
#define SEAL_TAG_LEN   16

/* AES-256-GCM; the file name is the associated data, so that sealed files cannot be swapped. */
static int seal_gcm(bool enc, const uint8_t key[32], const char* name, const uint8_t* iv,
                    const uint8_t* in, size_t len, uint8_t* out, uint8_t tag[SEAL_TAG_LEN]) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1 &&
                    EVP_CipherUpdate(ctx, NULL, &n, (const uint8_t*)name, (int)strlen(name)) == 1 &&
                    EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(ctx, out + n, &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -EKEYREJECTED;
}

/* magic ‖ iv ‖ tag ‖ AES-256-GCM(pem) */
static int seal(const uint8_t key[32], const char* name, const char* pem, size_t len, uint8_t** ret,
                size_t* ret_len) {
    size_t total = SEAL_MAGIC_LEN + SEAL_IV_LEN + SEAL_TAG_LEN + len;
    uint8_t* out = xmalloc(total);
    memcpy(out, SEAL_MAGIC, SEAL_MAGIC_LEN);
    uint8_t* iv  = out + SEAL_MAGIC_LEN;
    uint8_t* tag = iv + SEAL_IV_LEN;
    if (RAND_bytes(iv, SEAL_IV_LEN) != 1 ||
        seal_gcm(true, key, name, iv, (const uint8_t*)pem, len, tag + SEAL_TAG_LEN, tag) < 0) {
        free(out);
        return -EIO;
    }
    *ret     = out;
    *ret_len = total;
    return 0;
}

static int unseal(const uint8_t key[32], const char* name, const uint8_t* in, size_t len,
                  char** ret, size_t* ret_len) {
    size_t head = SEAL_MAGIC_LEN + SEAL_IV_LEN + SEAL_TAG_LEN;
    if (len < head || memcmp(in, SEAL_MAGIC, SEAL_MAGIC_LEN) != 0)
        return -EBADMSG;
    uint8_t tag[SEAL_TAG_LEN];
    memcpy(tag, in + SEAL_MAGIC_LEN + SEAL_IV_LEN, SEAL_TAG_LEN);
    char* out = OPENSSL_secure_zalloc(len - head + 1);
    if (!out)
        return -ENOMEM;
    if (seal_gcm(false, key, name, in + SEAL_MAGIC_LEN, in + head, len - head, (uint8_t*)out, tag) <
        0) {
        OPENSSL_secure_clear_free(out, len - head + 1);
        return -EKEYREJECTED;
    }
    *ret     = out;
    *ret_len = len - head;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                        */

/* The sealing key of the state (NULL: keys in plain PEM, --no-seal). */
static const uint8_t* g_seal_key;

static int save_pem(const char* dir, const char* name, X509* cert, EVP_PKEY* key,
                    struct moat_error* err) {
    BIO* b                    = BIO_new(BIO_s_secmem());
    int ok                    = b && (cert ? PEM_write_bio_X509(b, cert)
                                           : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
    char* data                = NULL;
    long len                  = ok ? BIO_get_mem_data(b, &data) : 0;
    int r                     = ok && len > 0 ? 0 : ossl_err(err, "PEM encoding");
    _cleanup_free_ char* path = path_join(dir, name);
    if (r == 0 && key && g_seal_key) {
        _cleanup_free_ uint8_t* sealed = NULL;
        size_t sealed_len              = 0;
        r = seal(g_seal_key, name, data, (size_t)len, &sealed, &sealed_len);
        r = r < 0 ? moat_error_set(err, r, "cannot seal %s", path)
                  : write_file_atomic(path, sealed, sealed_len, 0600, err);
    } else if (r == 0) {
        r = write_file_atomic(path, data, (size_t)len, 0600, err);
    }
    BIO_free(b); /* secure memory: wiped */
    return r;
}

static int load_pem_path(const char* path, X509** ret_cert, EVP_PKEY** ret_key,
                         struct moat_error* err) {
    FILE* f = fopen(path, "re");
    if (!f)
        return moat_error_set_errno(err, -errno, "%s", path);
    if (ret_cert)
        *ret_cert = PEM_read_X509(f, NULL, NULL, NULL);
    else
        *ret_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (ret_cert ? !*ret_cert : !*ret_key)
        return moat_error_set(err, -EBADMSG, "%s: not a PEM %s", path,
                              ret_cert ? "certificate" : "private key");
    return 0;
}

/* A private key of the state directory: sealed unless --no-seal (and then plain PEM). */
static int load_state_key(const char* dir, const char* name, EVP_PKEY** ret,
                          struct moat_error* err) {
    _cleanup_free_ char* path = path_join(dir, name);
    _cleanup_free_ char* buf  = NULL;
    size_t len                = 0;
    int r                     = read_file(path, &buf, &len, err);
    if (r < 0)
        return r;
    bool sealed = len >= SEAL_MAGIC_LEN && memcmp(buf, SEAL_MAGIC, SEAL_MAGIC_LEN) == 0;
    if (sealed && !g_seal_key)
        return moat_error_set(err, -EPERM, "%s is sealed: run without --no-seal", path);
    if (!sealed && g_seal_key)
        return moat_error_set(err, -EPERM,
                              "%s is not sealed: it was written with --no-seal (give it again) "
                              "or by someone else",
                              path);
    char* pem      = buf;
    size_t pem_len = len;
    if (sealed && (r = unseal(g_seal_key, name, (const uint8_t*)buf, len, &pem, &pem_len)) < 0)
        return moat_error_set(err, r,
                              "cannot unseal %s: sealed on another machine or with another "
                              "machine secret, or damaged",
                              path);
    BIO* b = BIO_new_mem_buf(pem, (int)pem_len);
    *ret   = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (sealed)
        OPENSSL_secure_clear_free(pem, pem_len + 1);
    else
        OPENSSL_cleanse(buf, len);
    return *ret ? 0 : moat_error_set(err, -EBADMSG, "%s: not a PEM private key", path);
}

static int load_pem(const char* dir, const char* name, X509** ret_cert, EVP_PKEY** ret_key,
                    struct moat_error* err) {
    if (ret_key)
        return load_state_key(dir, name, ret_key, err);
    _cleanup_free_ char* path = path_join(dir, name);
    return load_pem_path(path, ret_cert, ret_key, err);
}

static bool exists(const char* dir, const char* name) {
    _cleanup_free_ char* path = path_join(dir, name);
    return access(path, F_OK) == 0;
}

static int make_dir(const char* dir, struct moat_error* err) {
    if (mkdir_parents(dir, 0700) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return moat_error_set_errno(err, -errno, "cannot create the state directory %s", dir);
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return moat_error_set(err, -ENOTDIR, "%s: not a directory", dir);
    if ((st.st_mode & 077) && chmod(dir, 0700) < 0)
        return moat_error_set_errno(err, -errno, "cannot make %s private (0700)", dir);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Certificates                                                                                 */

static bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok             = ext && X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static bool random_serial(X509* cert) {
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    b[0]       = (uint8_t)((b[0] & 0x7f) | 0x01);
    BIGNUM* bn = BN_bin2bn(b, sizeof(b), NULL);
    bool ok    = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    return ok;
}

/* A certificate for `key`: a CA (self-signed when issuer is NULL) or a leaf for `usage`. */
static X509* make_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                       unsigned days, const char* usage, const char* cdp, const char* san) {
    X509* c        = X509_new();
    X509_NAME* sub = X509_NAME_new();
    bool ok =
        c && sub &&
        X509_NAME_add_entry_by_txt(sub, "CN", MBSTRING_UTF8, (const unsigned char*)cn, -1, -1, 0) &&
        X509_NAME_add_entry_by_txt(sub, "O", MBSTRING_UTF8, (const unsigned char*)"moat", -1, -1,
                                   0) &&
        X509_set_version(c, 2) && random_serial(c) && X509_set_subject_name(c, sub) &&
        X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : sub) &&
        X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
        X509_gmtime_adj(X509_getm_notAfter(c), (long)days * 86400) && X509_set_pubkey(c, key) &&
        add_ext(c, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
        add_ext(c, issuer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : usage) &&
        add_ext(c, issuer, NID_subject_key_identifier, "hash") &&
        (!issuer || add_ext(c, issuer, NID_authority_key_identifier, "keyid:always")) &&
        (!cdp || add_ext(c, issuer, NID_crl_distribution_points, cdp)) &&
        (!san || add_ext(c, issuer, NID_subject_alt_name, san));
    X509_NAME_free(sub);
    const EVP_MD* md =
        EVP_PKEY_is_a(issuer_key ? issuer_key : key, "RSA") ? EVP_sha384() : EVP_sha256();
    if (ok && X509_sign(c, issuer_key ? issuer_key : key, md) <= 0)
        ok = false;
    if (!ok) {
        X509_free(c);
        return NULL;
    }
    return c;
}

/* An empty CRL of a CA, valid CRL_DAYS from now, numbered by the time it was made. */
static X509_CRL* make_crl(X509* issuer, EVP_PKEY* key) {
    X509_CRL* crl    = X509_CRL_new();
    ASN1_TIME* now   = X509_gmtime_adj(NULL, -60);
    ASN1_TIME* next  = X509_gmtime_adj(NULL, (long)CRL_DAYS * 86400);
    ASN1_INTEGER* no = ASN1_INTEGER_new();
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
    X509_EXTENSION* aki =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    bool ok = crl && now && next && no && aki && X509_CRL_set_version(crl, 1) &&
              X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) &&
              X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next) &&
              ASN1_INTEGER_set_int64(no, (int64_t)time(NULL)) &&
              X509_CRL_add1_ext_i2d(crl, NID_crl_number, no, 0, 0) &&
              X509_CRL_add_ext(crl, aki, -1) && X509_CRL_sign(crl, key, EVP_sha384()) > 0;
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(no);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    if (!ok) {
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

static int crl_der(X509* issuer, EVP_PKEY* key, uint8_t** ret, size_t* ret_len) {
    X509_CRL* crl = make_crl(issuer, key);
    int n         = crl ? i2d_X509_CRL(crl, ret) : -1;
    X509_CRL_free(crl);
    if (n <= 0)
        return -EIO;
    *ret_len = (size_t)n;
    return 0;
}

/* ITA's key ids are 96 hex digits (§4.2): SHA-384 of the DER of what is named. */
static int kid_of(const uint8_t* der, size_t len, char out[97]) {
    uint8_t h[48];
    unsigned n = 0;
    if (EVP_Digest(der, len, h, &n, EVP_sha384(), NULL) != 1)
        return -EIO;
    return hex_encode(h, sizeof(h), out, 97) < 0 ? -EIO : 0;
}

/* One JWK per algorithm, so that a verifier that holds a key to the algorithm it was
 * published for (RFC 7517 "alg") verifies RS256 tokens too. */
static int cert_kids(X509* c, char ps384[97], char rs256[97]) {
    uint8_t* der = NULL;
    int len      = i2d_X509(c, &der);
    int r        = len > 0 ? kid_of(der, (size_t)len, ps384) : -EIO;
    if (r == 0) {
        uint8_t* tagged = xmalloc((size_t)len + 5);
        memcpy(tagged, "RS256", 5);
        memcpy(tagged + 5, der, (size_t)len);
        r = kid_of(tagged, (size_t)len + 5, rs256);
        free(tagged);
    }
    OPENSSL_free(der);
    return r;
}

static int pubkey_kid(EVP_PKEY* k, char out[97]) {
    uint8_t* der = NULL;
    int len      = i2d_PUBKEY(k, &der);
    int r        = len > 0 ? kid_of(der, (size_t)len, out) : -EIO;
    OPENSSL_free(der);
    return r;
}

/* First start: every key and certificate anew. */
static int pki_create(const char* dir, const char* public_url, struct amber_pki* p,
                      struct moat_error* err) {
    slog("info",
         "first start: making the root CA, Signing CA, token-signing and nonce-signing keys "
         "(RSA-3072) in %s",
         dir);
    p->root_key    = EVP_RSA_gen(RSA_BITS);
    p->ca_key      = EVP_RSA_gen(RSA_BITS);
    p->signing_key = EVP_RSA_gen(RSA_BITS);
    p->nonce_key   = EVP_RSA_gen(RSA_BITS);
    if (!p->root_key || !p->ca_key || !p->signing_key || !p->nonce_key)
        return ossl_err(err, "RSA key generation");
    _cleanup_free_ char* root_cdp = xasprintf("URI:%s/crl/root.crl", public_url);
    _cleanup_free_ char* ca_cdp   = xasprintf("URI:%s/crl/signing-ca.crl", public_url);
    p->root    = make_cert(ROOT_CN, p->root_key, NULL, NULL, true, ROOT_DAYS, NULL, NULL, NULL);
    p->ca      = p->root ? make_cert(CA_CN, p->ca_key, p->root, p->root_key, true, ROOT_DAYS, NULL,
                                     root_cdp, NULL)
                         : NULL;
    p->signing = p->ca ? make_cert(SIGNING_CN, p->signing_key, p->ca, p->ca_key, false, LEAF_DAYS,
                                   "critical,digitalSignature", ca_cdp, NULL)
                       : NULL;
    if (!p->signing)
        return ossl_err(err, "certificate");
    moat_uuid4(p->instance_id);
    int r;
    if ((r = save_pem(dir, F_ROOT_KEY, NULL, p->root_key, err)) < 0 ||
        (r = save_pem(dir, F_CA_KEY, NULL, p->ca_key, err)) < 0 ||
        (r = save_pem(dir, F_SIGNING_KEY, NULL, p->signing_key, err)) < 0 ||
        (r = save_pem(dir, F_NONCE_KEY, NULL, p->nonce_key, err)) < 0 ||
        (r = save_pem(dir, F_ROOT_CERT, p->root, NULL, err)) < 0 ||
        (r = save_pem(dir, F_CA_CERT, p->ca, NULL, err)) < 0 ||
        (r = save_pem(dir, F_SIGNING_CERT, p->signing, NULL, err)) < 0)
        return r;
    _cleanup_free_ char* ip = path_join(dir, F_INSTANCE);
    return write_file_atomic(ip, p->instance_id, strlen(p->instance_id), 0600, err);
}

static int pki_read(const char* dir, struct amber_pki* p, struct moat_error* err) {
    int r;
    if ((r = load_pem(dir, F_ROOT_KEY, NULL, &p->root_key, err)) < 0 ||
        (r = load_pem(dir, F_CA_KEY, NULL, &p->ca_key, err)) < 0 ||
        (r = load_pem(dir, F_SIGNING_KEY, NULL, &p->signing_key, err)) < 0 ||
        (r = load_pem(dir, F_NONCE_KEY, NULL, &p->nonce_key, err)) < 0 ||
        (r = load_pem(dir, F_ROOT_CERT, &p->root, NULL, err)) < 0 ||
        (r = load_pem(dir, F_CA_CERT, &p->ca, NULL, err)) < 0 ||
        (r = load_pem(dir, F_SIGNING_CERT, &p->signing, NULL, err)) < 0)
        return r;
    if (X509_check_private_key(p->root, p->root_key) != 1 ||
        X509_check_private_key(p->ca, p->ca_key) != 1 ||
        X509_check_private_key(p->signing, p->signing_key) != 1)
        return moat_error_set(err, -EINVAL, "%s: a key does not match its certificate", dir);
    _cleanup_free_ char* ip  = path_join(dir, F_INSTANCE);
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    uint8_t u[16];
    if ((r = read_file(ip, &buf, &len, err)) < 0)
        return r;
    buf[strcspn(buf, "\n")] = '\0';
    if (moat_uuid_parse(buf, u, err) < 0)
        return moat_error_prefix(err, "%s", ip);
    moat_uuid_format(u, p->instance_id);
    return 0;
}

int amber_pki_load(const char* dir, const char* public_url, const uint8_t* seal_key,
                   struct amber_pki* ret, struct moat_error* err) {
    g_seal_key         = seal_key;
    struct amber_pki p = {0};
    int r              = make_dir(dir, err);
    if (r == 0)
        r = exists(dir, F_ROOT_KEY) ? pki_read(dir, &p, err) : pki_create(dir, public_url, &p, err);
    if (r == 0 && ((r = cert_kids(p.signing, p.kid, p.kid_rs256)) < 0 ||
                   (r = pubkey_kid(p.nonce_key, p.nonce_kid)) < 0))
        moat_error_set(err, r, "key id");
    if (r == 0 && ((r = crl_der(p.root, p.root_key, &p.root_crl_der, &p.root_crl_len)) < 0 ||
                   (r = crl_der(p.ca, p.ca_key, &p.ca_crl_der, &p.ca_crl_len)) < 0))
        ossl_err(err, "CRL");
    if (r < 0) {
        amber_pki_clear(&p);
        return r;
    }
    *ret = p;
    return 0;
}

int amber_tls_load(const char* dir, const char* cert_file, const char* key_file,
                   const uint8_t* seal_key, struct net_tls_credentials* ret,
                   struct moat_error* err) {
    g_seal_key                   = seal_key;
    struct net_tls_credentials c = {0};
    int r                        = 0;
    if (cert_file || key_file) {
        if (!cert_file || !key_file)
            return moat_error_set(err, -EINVAL, "--tls-cert and --tls-key go together");
        if ((r = load_pem_path(cert_file, &c.cert, NULL, err)) < 0 ||
            (r = load_pem_path(key_file, NULL, &c.key, err)) < 0)
            goto fail;
    } else if (exists(dir, F_TLS_CERT) && exists(dir, F_TLS_KEY)) {
        if ((r = load_pem(dir, F_TLS_CERT, &c.cert, NULL, err)) < 0 ||
            (r = load_pem(dir, F_TLS_KEY, NULL, &c.key, err)) < 0)
            goto fail;
    } else {
        if ((r = make_dir(dir, err)) < 0)
            goto fail;
        c.key  = EVP_EC_gen("P-256");
        c.cert = c.key ? make_cert("localhost", c.key, NULL, NULL, false, LEAF_DAYS,
                                   "critical,digitalSignature", NULL,
                                   "DNS:localhost,IP:127.0.0.1,IP:::1")
                       : NULL;
        if (!c.cert) {
            r = ossl_err(err, "TLS certificate");
            goto fail;
        }
        if ((r = save_pem(dir, F_TLS_KEY, NULL, c.key, err)) < 0 ||
            (r = save_pem(dir, F_TLS_CERT, c.cert, NULL, err)) < 0)
            goto fail;
        slog("info", "made a self-signed TLS certificate for localhost in %s/%s", dir, F_TLS_CERT);
    }
    if (X509_check_private_key(c.cert, c.key) != 1) {
        r = moat_error_set(err, -EINVAL, "the TLS key does not match the TLS certificate");
        goto fail;
    }
    *ret = c;
    return 0;
fail:
    amber_tls_clear(&c);
    return r;
}
