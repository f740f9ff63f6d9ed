/* SPDX-License-Identifier: Apache-2.0 */
/* The simulated platform: creating and loading it, its collateral, its quotes. See sim.h. */
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collateral.h"
#include "sim_internal.h"

#define SIM_PARAMS "platform.json" /* the parameters the PCK certificate carries */

/* The simulated quoting enclave (what its QE identity describes and its QE reports carry). */
#define SIM_QE_ISVPRODID 1
#define SIM_QE_ISVSVN    8
static const char g_qe_signer_label[]  = "moat simulated quoting enclave signer";
static const char g_qe_enclave_label[] = "moat simulated quoting enclave";
/* Intel's QE vendor ID: the quote format's, so that parsers treat simulated quotes alike; the
 * simulated root, never Intel's, is what tells them apart */
static const uint8_t g_qe_vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                        0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

static int ossl_fail(struct moat_error* err, const char* what) {
    return moat_error_set(err, -EIO, "simulated platform: %s failed (OpenSSL)", what);
}

static char* in_dir(const char* dir, const char* name) {
    return path_join(dir, name);
}

/* ---------------------------------------------------------------------------------------- */
/* Keys and signatures                                                                        */

static EVP_PKEY* new_key(void) {
    return EVP_EC_gen("P-256");
}

/* ECDSA-P256-SHA256 of `data` as raw r||s (the quote's and the collateral's form). */
static bool sign_raw(EVP_PKEY* key, const void* data, size_t len, uint8_t out[64]) {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    uint8_t der[80];
    size_t der_len = sizeof(der);
    bool ok        = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestSign(md, der, &der_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    const unsigned char* p = der;
    ECDSA_SIG* sig         = ok ? d2i_ECDSA_SIG(NULL, &p, (long)der_len) : NULL;
    ok                     = sig && BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32) == 32 &&
         BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok;
}

/* The public key as raw x||y. */
static bool pub_raw(EVP_PKEY* key, uint8_t out[64]) {
    uint8_t pt[65];
    size_t n = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt),
                                        &n) != 1 ||
        n != 65 || pt[0] != 0x04)
        return false;
    memcpy(out, pt + 1, 64);
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Collateral: TCB info and QE identity, signed over the exact bytes of the inner object      */

static void iso_time(time_t t, char out[32]) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char* signed_json(const char* outer_key, json_t* inner, EVP_PKEY* key) {
    char* text = json_dumps(inner, JSON_COMPACT | JSON_PRESERVE_ORDER);
    uint8_t sig[64];
    char* out = NULL;
    if (text && sign_raw(key, text, strlen(text), sig)) {
        _cleanup_free_ char* hex = hex_encode_alloc(sig, sizeof(sig));
        out = xasprintf("{\"%s\":%s,\"signature\":\"%s\"}\n", outer_key, text, hex);
    }
    free(text);
    return out;
}

static json_t* validity(json_t* o, unsigned days) {
    char now[32], next[32];
    time_t t = time(NULL);
    iso_time(t - 3600, now);
    iso_time(t + (time_t)days * 86400, next);
    json_object_set_new(o, "issueDate", json_string(now));
    json_object_set_new(o, "nextUpdate", json_string(next));
    json_object_set_new(o, "tcbEvaluationDataNumber", json_integer(17));
    return o;
}

static char* upper_hex(const void* p, size_t len) {
    char* h = hex_encode_alloc(p, len);
    for (char* c = h; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    return h;
}

/* TCB info v3, id "SGX": one level, exactly the platform's SVNs, UpToDate. */
static char* tcb_info(const struct sim_params* sp, unsigned days, EVP_PKEY* key) {
    json_t* comps = json_array();
    for (int i = 0; i < 16; i++)
        json_array_append_new(comps, json_pack("{s:i}", "svn", sp->comp_svn[i]));
    char date[32];
    iso_time(time(NULL) - 86400, date);
    json_t* level =
        json_pack("{s:{s:o,s:i},s:s,s:s,s:[]}", "tcb", "sgxtcbcomponents", comps, "pcesvn",
                  sp->pcesvn, "tcbDate", date, "tcbStatus", "UpToDate", "advisoryIDs");
    _cleanup_free_ char* fmspc = upper_hex(sp->fmspc, sizeof(sp->fmspc));
    _cleanup_free_ char* pceid = upper_hex(sp->pceid, sizeof(sp->pceid));
    json_t* info               = json_pack("{s:s,s:i}", "id", "SGX", "version", 3);
    validity(info, days);
    json_object_set_new(info, "fmspc", json_string(fmspc));
    json_object_set_new(info, "pceId", json_string(pceid));
    json_object_set_new(info, "tcbType", json_integer(0));
    json_object_set_new(info, "tcbLevels", json_pack("[o]", level));
    char* out = signed_json("tcbInfo", info, key);
    json_decref(info);
    return out;
}

static void label_hash(const char* label, uint8_t out[32]) {
    EVP_Digest(label, strlen(label), out, NULL, EVP_sha256(), NULL);
}

/* QE identity v2, id "QE", describing the simulated quoting enclave. */
static char* qe_identity(unsigned days, EVP_PKEY* key) {
    uint8_t signer[32];
    label_hash(g_qe_signer_label, signer);
    _cleanup_free_ char* mrsigner = upper_hex(signer, sizeof(signer));
    char date[32];
    iso_time(time(NULL) - 86400, date);
    json_t* id = json_pack("{s:s,s:i}", "id", "QE", "version", 2);
    validity(id, days);
    json_object_set_new(id, "miscselect", json_string("00000000"));
    json_object_set_new(id, "miscselectMask", json_string("FFFFFFFF"));
    json_object_set_new(id, "attributes", json_string("11000000000000000000000000000000"));
    json_object_set_new(id, "attributesMask", json_string("FBFFFFFFFFFFFFFF0000000000000000"));
    json_object_set_new(id, "mrsigner", json_string(mrsigner));
    json_object_set_new(id, "isvprodid", json_integer(SIM_QE_ISVPRODID));
    json_object_set_new(id, "tcbLevels",
                        json_pack("[{s:{s:i},s:s,s:s}]", "tcb", "isvsvn", SIM_QE_ISVSVN, "tcbDate",
                                  date, "tcbStatus", "UpToDate"));
    char* out = signed_json("enclaveIdentity", id, key);
    json_decref(id);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Creating and loading                                                                       */

static bool new_params(struct sim_params* sp) {
    static const uint8_t comps[16] = {7, 7, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};
    memset(sp, 0, sizeof(*sp));
    memcpy(sp->comp_svn, comps, sizeof(comps));
    memcpy(sp->cpusvn, comps, sizeof(comps));
    sp->pcesvn = 13;
    /* an FMSPC no Intel platform has: family byte 0xff */
    static const uint8_t fmspc[6] = {0xff, 0x5e, 0x51, 0x00, 0x00, 0x00};
    memcpy(sp->fmspc, fmspc, sizeof(fmspc));
    return RAND_bytes(sp->ppid, sizeof(sp->ppid)) == 1;
}

static json_t* params_json(const struct sim_params* sp) {
    _cleanup_free_ char* ppid   = hex_encode_alloc(sp->ppid, sizeof(sp->ppid));
    _cleanup_free_ char* cpusvn = hex_encode_alloc(sp->cpusvn, sizeof(sp->cpusvn));
    _cleanup_free_ char* comps  = hex_encode_alloc(sp->comp_svn, sizeof(sp->comp_svn));
    _cleanup_free_ char* fmspc  = hex_encode_alloc(sp->fmspc, sizeof(sp->fmspc));
    _cleanup_free_ char* pceid  = hex_encode_alloc(sp->pceid, sizeof(sp->pceid));
    return json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "note",
                     "a SIMULATED SGX platform made by 'moat attest init': it proves nothing "
                     "about hardware",
                     "ppid", ppid, "cpusvn", cpusvn, "pcesvn", sp->pcesvn, "tcb_comp_svn", comps,
                     "fmspc", fmspc, "pceid", pceid);
}

static bool hex_field(json_t* o, const char* key, uint8_t* out, size_t len) {
    const char* s = json_string_value(json_object_get(o, key));
    return s && strlen(s) == 2 * len && hex_decode(s, 2 * len, out, len) == (int)len;
}

static int params_parse(const char* text, size_t len, struct sim_params* sp,
                        struct moat_error* err) {
    json_error_t jerr;
    json_t* o = json_loadb(text, len, 0, &jerr);
    json_int_t pcesvn =
        o ? json_integer_value(json_object_get(o, "pcesvn")) : -1; /* 0 when missing */
    bool ok = o && hex_field(o, "ppid", sp->ppid, 16) && hex_field(o, "cpusvn", sp->cpusvn, 16) &&
              hex_field(o, "tcb_comp_svn", sp->comp_svn, 16) &&
              hex_field(o, "fmspc", sp->fmspc, 6) && hex_field(o, "pceid", sp->pceid, 2) &&
              pcesvn >= 0 && pcesvn <= 0xffff;
    sp->pcesvn = (uint16_t)pcesvn;
    json_decref(o);
    return ok ? 0
              : moat_error_set(err, -EBADMSG, "%s: not a simulated platform's parameters",
                               SIM_PARAMS);
}

static char* pem_of(int (*write)(BIO*, void*), void* obj, size_t* ret_len) {
    BIO* b    = BIO_new(BIO_s_mem());
    char* out = NULL;
    if (b && write(b, obj) == 1) {
        char* p;
        long n = BIO_get_mem_data(b, &p);
        out    = xmalloc((size_t)n + 1);
        memcpy(out, p, (size_t)n);
        out[n] = '\0';
        if (ret_len)
            *ret_len = (size_t)n;
    }
    BIO_free(b);
    return out;
}

static int w_cert(BIO* b, void* x) {
    return PEM_write_bio_X509(b, x);
}

static int w_key(BIO* b, void* k) {
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int save(const char* dir, const char* name, const void* data, size_t len, mode_t mode,
                struct moat_error* err) {
    _cleanup_free_ char* path = in_dir(dir, name);
    return write_file_atomic(path, data, len, mode, err);
}

static int save_crl(const char* dir, const char* name, X509_CRL* crl, struct moat_error* err) {
    unsigned char* der = NULL;
    int n              = i2d_X509_CRL(crl, &der);
    if (n <= 0)
        return ossl_fail(err, "encoding a CRL");
    int r = save(dir, name, der, (size_t)n, 0644, err);
    OPENSSL_free(der);
    return r;
}

struct sim_new {
    EVP_PKEY *root_key, *ca_key, *pck_key, *tcb_key, *att_key;
    X509 *root, *ca, *pck, *tcb;
    X509_CRL *root_crl, *pck_crl;
};

static void sim_new_free(struct sim_new* n) {
    EVP_PKEY_free(n->root_key);
    EVP_PKEY_free(n->ca_key);
    EVP_PKEY_free(n->pck_key);
    EVP_PKEY_free(n->tcb_key);
    EVP_PKEY_free(n->att_key);
    X509_free(n->root);
    X509_free(n->ca);
    X509_free(n->pck);
    X509_free(n->tcb);
    X509_CRL_free(n->root_crl);
    X509_CRL_free(n->pck_crl);
}

static bool make_pki(struct sim_new* n, const struct sim_params* sp, unsigned days) {
    _cleanup_strbuf_ struct strbuf ext = STRBUF_INIT;
    simi_sgx_extension(sp, &ext);
    n->root_key = new_key(), n->ca_key = new_key(), n->pck_key = new_key();
    n->tcb_key = new_key(), n->att_key = new_key();
    if (!n->root_key || !n->ca_key || !n->pck_key || !n->tcb_key || !n->att_key)
        return false;
    n->root = simi_cert("moat SIMULATED SGX Root CA", n->root_key, NULL, NULL, true, days, NULL);
    n->ca   = n->root ? simi_cert("moat SIMULATED SGX PCK Platform CA", n->ca_key, n->root,
                                  n->root_key, true, days, NULL)
                      : NULL;
    n->pck  = n->ca ? simi_cert("moat SIMULATED SGX PCK Certificate", n->pck_key, n->ca, n->ca_key,
                                false, days, &ext)
                    : NULL;
    n->tcb = n->root ? simi_cert("moat SIMULATED SGX TCB Signing", n->tcb_key, n->root, n->root_key,
                                 false, days, NULL)
                     : NULL;
    n->root_crl = n->root ? simi_crl(n->root, n->root_key, days) : NULL;
    n->pck_crl  = n->ca ? simi_crl(n->ca, n->ca_key, days) : NULL;
    return n->pck && n->tcb && n->root_crl && n->pck_crl;
}

static int write_platform(const char* dir, struct sim_new* n, const struct sim_params* sp,
                          unsigned days, struct moat_error* err) {
    _cleanup_free_ char* root = pem_of(w_cert, n->root, NULL);
    _cleanup_free_ char* ca   = pem_of(w_cert, n->ca, NULL);
    _cleanup_free_ char* pck  = pem_of(w_cert, n->pck, NULL);
    _cleanup_free_ char* tcb  = pem_of(w_cert, n->tcb, NULL);
    _cleanup_free_ char* k1   = pem_of(w_key, n->pck_key, NULL);
    _cleanup_free_ char* k2   = pem_of(w_key, n->att_key, NULL);
    _cleanup_free_ char* ti   = tcb_info(sp, days, n->tcb_key);
    _cleanup_free_ char* qe   = qe_identity(days, n->tcb_key);
    json_t* pj                = params_json(sp);
    _cleanup_free_ char* pt   = pj ? json_dumps(pj, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(pj);
    if (!root || !ca || !pck || !tcb || !k1 || !k2 || !ti || !qe || !pt)
        return ossl_fail(err, "encoding the platform");
    _cleanup_free_ char* chain = xasprintf("%s%s%s", pck, ca, root);
    _cleanup_free_ char* tcbc  = xasprintf("%s%s", tcb, root);
    _cleanup_free_ char* keys  = xasprintf("%s%s", k1, k2);
    int r                      = save(dir, SIM_KEYS, keys, strlen(keys), 0600, err);
    OPENSSL_cleanse(keys, strlen(keys));
    OPENSSL_cleanse(k1, strlen(k1));
    OPENSSL_cleanse(k2, strlen(k2));
    if (r == 0)
        r = save(dir, SIM_ROOT_CERT, root, strlen(root), 0644, err);
    if (r == 0)
        r = save(dir, SIM_PCK_CHAIN, chain, strlen(chain), 0644, err);
    if (r == 0)
        r = save(dir, SIM_TCB_CHAIN, tcbc, strlen(tcbc), 0644, err);
    if (r == 0)
        r = save_crl(dir, SIM_ROOT_CRL, n->root_crl, err);
    if (r == 0)
        r = save_crl(dir, SIM_PCK_CRL, n->pck_crl, err);
    if (r == 0)
        r = save(dir, SIM_TCB_INFO, ti, strlen(ti), 0644, err);
    if (r == 0)
        r = save(dir, SIM_QE_IDENTITY, qe, strlen(qe), 0644, err);
    if (r == 0) /* last: its presence marks a complete platform */
        r = save(dir, SIM_PARAMS, pt, strlen(pt), 0644, err);
    return r;
}

int sim_create(const char* dir, unsigned days, bool force, struct moat_error* err) {
    _cleanup_free_ char* params = in_dir(dir, SIM_PARAMS);
    if (!force && access(params, F_OK) == 0)
        return moat_error_set(err, -EEXIST,
                              "%s already holds a simulated platform (--force makes a new one; "
                              "quotes of the old one will no longer verify against it)",
                              dir);
    _cleanup_free_ char* probe = in_dir(dir, "x");
    int r                      = mkdir_parents(probe, 0700);
    if (r < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return moat_error_set_errno(err, r < 0 ? r : -errno, "cannot create %s", dir);
    struct sim_params sp;
    struct sim_new n = {0};
    if (!new_params(&sp) || !make_pki(&n, &sp, days))
        r = ossl_fail(err, "making the certificates");
    else
        r = write_platform(dir, &n, &sp, days, err);
    sim_new_free(&n);
    return r;
}

void sim_free(struct sim_platform* p) {
    if (!p)
        return;
    EVP_PKEY_free(p->pck_key);
    EVP_PKEY_free(p->att_key);
    free(p->pck_chain);
    free(p);
}

static int load_file(const char* dir, const char* name, char** ret, size_t* ret_len,
                     struct moat_error* err) {
    _cleanup_free_ char* path = in_dir(dir, name);
    int r                     = read_file(path, ret, ret_len, err);
    if (r == -ENOENT)
        return moat_error_set(
            err, r, "%s: no simulated platform here (make one with 'moat attest init')", dir);
    return r;
}

int sim_load(const char* dir, struct sim_platform** ret, struct moat_error* err) {
    struct sim_platform* p    = xcalloc(1, sizeof(*p));
    _cleanup_free_ char* text = NULL;
    _cleanup_free_ char* keys = NULL;
    size_t len = 0, keys_len = 0;
    int r = load_file(dir, SIM_PARAMS, &text, &len, err);
    if (r == 0)
        r = params_parse(text, len, &p->params, err);
    if (r == 0)
        r = load_file(dir, SIM_PCK_CHAIN, &p->pck_chain, &p->pck_chain_len, err);
    if (r == 0)
        r = load_file(dir, SIM_KEYS, &keys, &keys_len, err);
    if (r == 0) {
        BIO* b     = BIO_new_mem_buf(keys, (int)keys_len);
        p->pck_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        p->att_key = p->pck_key ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (!p->att_key)
            r = moat_error_set(err, -EBADMSG, "%s/%s: not two PEM private keys", dir, SIM_KEYS);
    }
    if (keys)
        OPENSSL_cleanse(keys, keys_len);
    if (r < 0) {
        sim_free(p);
        return r;
    }
    *ret = p;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Quotes (reference §1.2, §1.3)                                                              */

#define Q_HEADER    48
#define Q_BODY      384
#define Q_SIGNED    (Q_HEADER + Q_BODY)
#define Q_AUTH_DATA 32

static void put16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t* p, uint32_t v) {
    put16(p, (uint16_t)v), put16(p + 2, (uint16_t)(v >> 16));
}

/* An SGX report body (384 bytes): attributes flags INIT | MODE64BIT (| DEBUG), XFRM x87|SSE. */
static void report_body(uint8_t* b, const uint8_t cpusvn[16], const uint8_t mrenclave[32],
                        const uint8_t mrsigner[32], uint16_t prodid, uint16_t svn, bool debug,
                        uint64_t extra_flags, const uint8_t report_data[64]) {
    memset(b, 0, Q_BODY);
    memcpy(b, cpusvn, 16);
    uint64_t flags = 0x05 | (debug ? 0x02 : 0) | extra_flags, xfrm = 0x03;
    memcpy(b + 48, &flags, 8);
    memcpy(b + 56, &xfrm, 8);
    memcpy(b + 64, mrenclave, 32);
    memcpy(b + 128, mrsigner, 32);
    put16(b + 256, prodid);
    put16(b + 258, svn);
    memcpy(b + 320, report_data, 64);
}

int sim_quote(const struct sim_platform* p, const struct sim_enclave* e, uint8_t** ret,
              size_t* ret_len, struct moat_error* err) {
    size_t cert_len = p->pck_chain_len;
    size_t sig_len  = 64 + 64 + Q_BODY + 64 + 2 + Q_AUTH_DATA + 2 + 4 + cert_len;
    size_t total    = Q_SIGNED + 4 + sig_len;
    uint8_t* q      = xcalloc(1, total);
    put16(q, 3);     /* version */
    put16(q + 2, 2); /* ECDSA-256-with-P-256 */
    put16(q + 8, SIM_QE_ISVSVN);
    put16(q + 10, p->params.pcesvn);
    memcpy(q + 12, g_qe_vendor, 16);
    memcpy(q + 28, "MOAT SIMULATED\0\0", 16); /* user_data: says what this is */
    report_body(q + Q_HEADER, p->params.cpusvn, e->mrenclave, e->mrsigner, e->isvprodid, e->isvsvn,
                e->debug, 0, e->report_data);
    put32(q + Q_SIGNED, (uint32_t)sig_len);
    uint8_t* s  = q + Q_SIGNED + 4;
    uint8_t *qe = s + 128, auth[Q_AUTH_DATA], qe_data[64] = {0}, mre[32], mrs[32];
    for (int i = 0; i < Q_AUTH_DATA; i++)
        auth[i] = (uint8_t)i;
    label_hash(g_qe_enclave_label, mre);
    label_hash(g_qe_signer_label, mrs);
    bool ok = pub_raw(p->att_key, s + 64);
    /* the QE report binds the attestation key: SHA-256(attestation key || auth data) */
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    ok             = ok && md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(md, s + 64, 64) && EVP_DigestUpdate(md, auth, sizeof(auth)) &&
         EVP_DigestFinal_ex(md, qe_data, NULL);
    EVP_MD_CTX_free(md);
    report_body(qe, p->params.cpusvn, mre, mrs, SIM_QE_ISVPRODID, SIM_QE_ISVSVN, false,
                0x10 /* PROVISIONKEY */, qe_data);
    ok =
        ok && sign_raw(p->pck_key, qe, Q_BODY, qe + Q_BODY) && sign_raw(p->att_key, q, Q_SIGNED, s);
    uint8_t* tail = qe + Q_BODY + 64;
    put16(tail, Q_AUTH_DATA);
    memcpy(tail + 2, auth, Q_AUTH_DATA);
    put16(tail + 2 + Q_AUTH_DATA, 5); /* certification data: the PCK chain */
    put32(tail + 4 + Q_AUTH_DATA, (uint32_t)cert_len);
    memcpy(tail + 8 + Q_AUTH_DATA, p->pck_chain, cert_len);
    if (!ok) {
        free(q);
        return ossl_fail(err, "signing the quote");
    }
    *ret     = q;
    *ret_len = total;
    return 0;
}

int sim_load_verifier(const char* dir, struct collateral** ret_collateral, X509** ret_anchor,
                      struct moat_error* err) {
    *ret_collateral         = NULL;
    *ret_anchor             = NULL;
    _cleanup_free_ char *ti = path_join(dir, SIM_TCB_INFO), *qi = path_join(dir, SIM_QE_IDENTITY);
    _cleanup_free_ char *tc = path_join(dir, SIM_TCB_CHAIN), *rc = path_join(dir, SIM_ROOT_CRL);
    _cleanup_free_ char *pc = path_join(dir, SIM_PCK_CRL), *rp = path_join(dir, SIM_ROOT_CERT);
    struct collateral_pcs_files files = {.tcb_info                 = ti,
                                         .tcb_info_issuer_chain    = tc,
                                         .qe_identity              = qi,
                                         .qe_identity_issuer_chain = tc,
                                         .root_ca_crl              = rc,
                                         .pck_crl                  = pc};
    int r                             = collateral_load_pcs_files(&files, ret_collateral, err);
    if (r < 0)
        return r;
    _cleanup_free_ char* pem = NULL;
    size_t len               = 0;
    r                        = read_file(rp, &pem, &len, err);
    if (r == 0)
        r = x509_parse(pem, len, ret_anchor, err);
    if (r < 0) {
        collateral_free(*ret_collateral);
        *ret_collateral = NULL;
    }
    return r;
}
