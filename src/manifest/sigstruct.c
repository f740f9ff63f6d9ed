/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SIGSTRUCT with Gramine's byte layout and signing rules (reference/gramine.md §3,
 * python/graminelibos/sigstruct.py): signed bytes = sig[0:128] || sig[900:1028],
 * RSASSA-PKCS1-v1_5 with SHA-256, modulus/signature/q1/q2 little-endian,
 * q1 = floor(s^2 / n), q2 = floor((s^2 mod n) * s / n).
 */
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sigstruct.h"

static const uint8_t g_header[16]  = {0x06, 0x00, 0x00, 0x00, 0xe1, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
static const uint8_t g_header2[16] = {0x01, 0x01, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00,
                                      0x60, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};

static int ossl_fail(struct moat_error* err, const char* what) {
    unsigned long e = ERR_get_error();
    char buf[256]   = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return moat_error_set(err, -EIO, "%s: %s", what, buf);
}

static void put_u16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void sigstruct_serialize(const struct sigstruct* s, uint8_t out[SIGSTRUCT_SIZE]) {
    memset(out, 0, SIGSTRUCT_SIZE);
    memcpy(out + SIGSTRUCT_OFF_HEADER, g_header, 16);
    put_u32(out + SIGSTRUCT_OFF_VENDOR, s->vendor);
    put_u32(out + SIGSTRUCT_OFF_DATE, s->date);
    memcpy(out + SIGSTRUCT_OFF_HEADER2, g_header2, 16);
    put_u32(out + SIGSTRUCT_OFF_SWDEFINED, s->swdefined);
    memcpy(out + SIGSTRUCT_OFF_MODULUS, s->modulus, SIGSTRUCT_KEY_BYTES);
    put_u32(out + SIGSTRUCT_OFF_EXPONENT, s->exponent);
    memcpy(out + SIGSTRUCT_OFF_SIGNATURE, s->signature, SIGSTRUCT_KEY_BYTES);
    put_u32(out + SIGSTRUCT_OFF_MISC_SELECT, s->misc_select);
    put_u32(out + SIGSTRUCT_OFF_MISC_MASK, s->misc_mask);
    out[SIGSTRUCT_OFF_CET_ATTRS]      = s->cet_attributes;
    out[SIGSTRUCT_OFF_CET_ATTRS_MASK] = s->cet_attributes_mask;
    memcpy(out + SIGSTRUCT_OFF_ISV_FAMILY_ID, s->isv_family_id, 16);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTES, s->attr_flags);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTES + 8, s->attr_xfrm);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTE_MASK, s->attr_mask_flags);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTE_MASK + 8, s->attr_mask_xfrm);
    memcpy(out + SIGSTRUCT_OFF_ENCLAVE_HASH, s->enclave_hash, 32);
    memcpy(out + SIGSTRUCT_OFF_ISVEXT_PROD_ID, s->isvext_prod_id, 16);
    put_u16(out + SIGSTRUCT_OFF_ISV_PROD_ID, s->isv_prod_id);
    put_u16(out + SIGSTRUCT_OFF_ISV_SVN, s->isv_svn);
    memcpy(out + SIGSTRUCT_OFF_Q1, s->q1, SIGSTRUCT_KEY_BYTES);
    memcpy(out + SIGSTRUCT_OFF_Q2, s->q2, SIGSTRUCT_KEY_BYTES);
}

/* Takes n reserved bytes; *ret_bad gets the offset of the first non-zero one (if none yet). */
static int cur_reserved(struct cursor* c, size_t n, const uint8_t* base, size_t* ret_bad) {
    const uint8_t* p;
    int r = cur_ptr(c, n, &p);
    for (size_t i = 0; r == 0 && i < n && *ret_bad == SIZE_MAX; i++)
        if (p[i] != 0)
            *ret_bad = (size_t)(p + i - base);
    return r;
}

/* Every read goes through the bounds-checked cursor (STYLE.md §4). */
int sigstruct_parse(const uint8_t* buf, size_t len, struct sigstruct* ret, struct moat_error* err) {
    if (len != SIGSTRUCT_SIZE)
        return moat_error_set(err, -EINVAL, "not a SIGSTRUCT: %zu bytes, expected %d", len,
                              SIGSTRUCT_SIZE);
    struct cursor c = cursor_init(buf, len);
    struct sigstruct s;
    uint8_t header[16], header2[16];
    size_t bad = SIZE_MAX;
    memset(&s, 0, sizeof(s));
    int r = cur_bytes(&c, header, 16);
    r     = r ?: cur_u32le(&c, &s.vendor);
    r     = r ?: cur_u32le(&c, &s.date);
    r     = r ?: cur_bytes(&c, header2, 16);
    r     = r ?: cur_u32le(&c, &s.swdefined);
    r     = r ?: cur_reserved(&c, SIGSTRUCT_OFF_MODULUS - SIGSTRUCT_OFF_SWDEFINED - 4, buf, &bad);
    r     = r ?: cur_bytes(&c, s.modulus, SIGSTRUCT_KEY_BYTES);
    r     = r ?: cur_u32le(&c, &s.exponent);
    r     = r ?: cur_bytes(&c, s.signature, SIGSTRUCT_KEY_BYTES);
    r     = r ?: cur_u32le(&c, &s.misc_select);
    r     = r ?: cur_u32le(&c, &s.misc_mask);
    r     = r ?: cur_u8(&c, &s.cet_attributes);
    r     = r ?: cur_u8(&c, &s.cet_attributes_mask);
    r     = r
                ?: cur_reserved(&c, SIGSTRUCT_OFF_ISV_FAMILY_ID - SIGSTRUCT_OFF_CET_ATTRS_MASK - 1, buf,
                                &bad);
    r     = r ?: cur_bytes(&c, s.isv_family_id, 16);
    r     = r ?: cur_u64le(&c, &s.attr_flags);
    r     = r ?: cur_u64le(&c, &s.attr_xfrm);
    r     = r ?: cur_u64le(&c, &s.attr_mask_flags);
    r     = r ?: cur_u64le(&c, &s.attr_mask_xfrm);
    r     = r ?: cur_bytes(&c, s.enclave_hash, 32);
    r     = r
                ?: cur_reserved(&c, SIGSTRUCT_OFF_ISVEXT_PROD_ID - SIGSTRUCT_OFF_ENCLAVE_HASH - 32, buf,
                                &bad);
    r     = r ?: cur_bytes(&c, s.isvext_prod_id, 16);
    r     = r ?: cur_u16le(&c, &s.isv_prod_id);
    r     = r ?: cur_u16le(&c, &s.isv_svn);
    r     = r ?: cur_reserved(&c, SIGSTRUCT_OFF_Q1 - SIGSTRUCT_OFF_ISV_SVN - 2, buf, &bad);
    r     = r ?: cur_bytes(&c, s.q1, SIGSTRUCT_KEY_BYTES);
    r     = r ?: cur_bytes(&c, s.q2, SIGSTRUCT_KEY_BYTES);
    if (r < 0 || c.len != 0)
        return moat_error_set(err, -EINVAL, "truncated SIGSTRUCT");
    if (memcmp(header, g_header, 16) != 0 || memcmp(header2, g_header2, 16) != 0)
        return moat_error_set(err, -EINVAL, "not a SIGSTRUCT: bad header bytes");
    /* Gramine writes zeros there; anything else is not covered by our re-serialization */
    if (bad != SIZE_MAX)
        return moat_error_set(err, -EINVAL, "not a SIGSTRUCT: reserved byte at offset %zu is not 0",
                              bad);
    *ret = s;
    return 0;
}

int sigstruct_mrsigner(const struct sigstruct* s, uint8_t out[32]) {
    return sha256_buf(s->modulus, SIGSTRUCT_KEY_BYTES, out);
}

static void reverse(uint8_t* p, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t    = p[i];
        p[i]         = p[n - 1 - i];
        p[n - 1 - i] = t;
    }
}

static void signed_bytes(const struct sigstruct* s, uint8_t out[256]) {
    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(s, buf);
    memcpy(out, buf, 128);
    memcpy(out + 128, buf + SIGSTRUCT_OFF_MISC_SELECT, 128);
}

/* ---------------------------------------------------------------------------------------- */
/* Manifest → SIGSTRUCT fields                                                                */

int sigstruct_from_manifest(const struct manifest* m, const uint8_t measurement[32], uint32_t date,
                            struct sigstruct* ret) {
    struct sigstruct s;
    memset(&s, 0, sizeof(s));
    s.isv_prod_id     = m->sgx.isvprodid;
    s.isv_svn         = m->sgx.isvsvn;
    s.date            = date;
    s.misc_select     = m->sgx.use_exinfo ? SGX_MISC_EXINFO : 0;
    s.misc_mask       = 0xffffffffU;
    s.attr_flags      = SGX_FLAGS_MODE64BIT | (m->sgx.debug ? SGX_FLAGS_DEBUG : 0);
    s.attr_xfrm       = SGX_XFRM_LEGACY;
    s.attr_mask_flags = 0xffffffffffffffffULL;
    s.attr_mask_xfrm  = SGX_XFRM_MASK_DEFAULT;

    /* sgx.cpu_features.*: "required" sets the XFRM bits (and the mask covers them),
     * "disabled" clears them in the XFRM and requires them clear through the mask */
    const struct {
        enum manifest_cpu_feature value;
        uint64_t bits;
    } features[] = {
        {m->sgx.avx, SGX_XFRM_AVX}, {m->sgx.avx512, SGX_XFRM_AVX512}, {m->sgx.amx, SGX_XFRM_AMX},
        {m->sgx.mpx, SGX_XFRM_MPX}, {m->sgx.pkru, SGX_XFRM_PKRU},
    };
    for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
        if (features[i].value == MANIFEST_CPU_REQUIRED) {
            s.attr_xfrm |= features[i].bits;
            s.attr_mask_xfrm |= features[i].bits;
        } else if (features[i].value == MANIFEST_CPU_DISABLED) {
            s.attr_mask_xfrm |= features[i].bits;
        }
    }
    memcpy(s.enclave_hash, measurement, 32);
    *ret = s;
    return 0;
}

/* Exactly n ASCII digits (no sign, no spaces, unlike sscanf's %d). */
static int parse_digits(const char* p, size_t n, int* ret) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (p[i] - '0');
    }
    *ret = v;
    return 0;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap               = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* --date as gramine-sgx-sign takes it (datetime.date: a real calendar date) */
int sigstruct_date_parse(const char* str, uint32_t* ret) {
    int y, m, d;
    if (!strcmp(str, "today")) {
        time_t now = time(NULL);
        struct tm tm;
        if (!gmtime_r(&now, &tm))
            return -EINVAL;
        y = tm.tm_year + 1900;
        m = tm.tm_mon + 1;
        d = tm.tm_mday;
    } else if (strlen(str) != 10 || str[4] != '-' || str[7] != '-' ||
               parse_digits(str, 4, &y) < 0 || parse_digits(str + 5, 2, &m) < 0 ||
               parse_digits(str + 8, 2, &d) < 0) {
        return -EINVAL;
    }
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -EINVAL;
    /* day@20, month@21, year@22, each the hex digits of the decimal value (§3) */
    uint32_t v = 0;
    for (int div = 1000; div > 0; div /= 10)
        v = (v << 4) | (uint32_t)(y / div % 10);
    v    = (v << 8) | (uint32_t)(m / 10 << 4 | m % 10);
    v    = (v << 8) | (uint32_t)(d / 10 << 4 | d % 10);
    *ret = v;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* sigstruct-view output                                                                      */

int sigstruct_format_parse(const char* name, enum sigstruct_format* ret) {
    static const char* const names[] = {
        [SIGSTRUCT_FORMAT_TEXT] = "text",
        [SIGSTRUCT_FORMAT_TOML] = "toml",
        [SIGSTRUCT_FORMAT_JSON] = "json",
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *ret = (enum sigstruct_format)i;
            return 0;
        }
    }
    return -EINVAL;
}

enum field_kind { FIELD_STRING, FIELD_INT, FIELD_BOOL };

struct view_field {
    const char* name;
    enum field_kind kind;
    char value[SHA256_HEX_SIZE];
};

/* Python's rendering of each kind: text prints str(v) (True/False), toml/json their literals */
static void put_field(struct strbuf* out, const struct view_field* f, enum sigstruct_format fmt,
                      bool first) {
    bool truth = f->kind == FIELD_BOOL && f->value[0] == 't';
    switch (fmt) {
        case SIGSTRUCT_FORMAT_TEXT:
            strbuf_printf(out, "    %s: %s\n", f->name,
                          f->kind != FIELD_BOOL ? f->value
                          : truth               ? "True"
                                                : "False");
            break;
        case SIGSTRUCT_FORMAT_TOML:
            strbuf_printf(out, f->kind == FIELD_STRING ? "%s = \"%s\"\n" : "%s = %s\n", f->name,
                          f->value);
            break;
        case SIGSTRUCT_FORMAT_JSON:
            strbuf_printf(out, f->kind == FIELD_STRING ? "%s\"%s\": \"%s\"" : "%s\"%s\": %s",
                          first ? "" : ", ", f->name, f->value);
            break;
    }
}

int sigstruct_format(const struct sigstruct* s, enum sigstruct_format fmt, bool verbose,
                     struct strbuf* out) {
    struct view_field f[12];
    size_t n = 0;
    uint8_t mrsigner[32];
    memset(f, 0, sizeof(f));
    int r = sigstruct_mrsigner(s, mrsigner);
    if (r < 0)
        return r;
    f[n] = (struct view_field){.name = "mr_signer", .kind = FIELD_STRING};
    r    = hex_encode(mrsigner, 32, f[n++].value, sizeof(f[0].value));
    f[n] = (struct view_field){.name = "mr_enclave", .kind = FIELD_STRING};
    r    = r < 0 ? r : hex_encode(s->enclave_hash, 32, f[n++].value, sizeof(f[0].value));
    if (r < 0)
        return r;
    f[n] = (struct view_field){.name = "isv_prod_id", .kind = FIELD_INT};
    snprintf(f[n++].value, sizeof(f[0].value), "%u", s->isv_prod_id);
    f[n] = (struct view_field){.name = "isv_svn", .kind = FIELD_INT};
    snprintf(f[n++].value, sizeof(f[0].value), "%u", s->isv_svn);
    f[n] = (struct view_field){.name = "debug_enclave", .kind = FIELD_BOOL};
    snprintf(f[n++].value, sizeof(f[0].value), "%s",
             s->attr_flags & SGX_FLAGS_DEBUG ? "true" : "false");
    if (verbose) {
        const struct {
            const char* name;
            uint64_t value;
        } hex[] = {
            {"attribute_flags", s->attr_flags},
            {"attribute_xfrms", s->attr_xfrm},
            {"misc_select", s->misc_select},
            {"attribute_flags_mask", s->attr_mask_flags},
            {"attribute_xfrm_mask", s->attr_mask_xfrm},
            {"misc_mask", s->misc_mask},
            {"date", s->date},
        };
        for (size_t i = 0; i < ARRAY_SIZE(hex); i++) {
            f[n] = (struct view_field){.name = hex[i].name, .kind = FIELD_STRING};
            snprintf(f[n++].value, sizeof(f[0].value), "0x%llx", (unsigned long long)hex[i].value);
        }
    }
    if (fmt == SIGSTRUCT_FORMAT_TEXT)
        strbuf_puts(out, "Attributes:\n");
    if (fmt == SIGSTRUCT_FORMAT_JSON)
        strbuf_putc(out, '{');
    for (size_t i = 0; i < n; i++)
        put_field(out, &f[i], fmt, i == 0);
    if (fmt == SIGSTRUCT_FORMAT_JSON)
        strbuf_puts(out, "}\n");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                       */

/* gramine sgx_sign.py load_private_key_from_pem_file(): the same checks and messages */
int enclave_key_check(EVP_PKEY* key, struct moat_error* err) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        const char* type = EVP_PKEY_get0_type_name(key);
        return moat_error_set(err, -EINVAL, "Invalid key: expected RSA private key, found %s",
                              type ? type : "another type");
    }
    int bits = EVP_PKEY_get_bits(key);
    if (bits != SIGSTRUCT_KEY_BITS)
        return moat_error_set(err, -EINVAL, "Invalid RSA key: expected key size %d, got %d",
                              SIGSTRUCT_KEY_BITS, bits);
    BIGNUM* e = NULL;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e))
        return ossl_fail(err, "cannot read the RSA exponent");
    bool ok   = BN_is_word(e, SIGSTRUCT_EXPONENT);
    char* dec = ok ? NULL : BN_bn2dec(e);
    int ret   = ok ? 0
                   : moat_error_set(err, -EINVAL, "Invalid RSA key: expected exponent %d, got %s",
                                    SIGSTRUCT_EXPONENT, dec ? dec : "?");
    OPENSSL_free(dec);
    BN_free(e);
    return ret;
}

/* Never prompts: the passphrase callback refuses, so an encrypted key is an error. */
static int no_passphrase(char* buf, int size, int rwflag, void* u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int enclave_key_load(const char* path, EVP_PKEY** ret, struct moat_error* err) {
    char* pem = NULL;
    size_t len;
    int r = read_file(path, &pem, &len, err);
    if (r < 0)
        return moat_error_prefix(err, "cannot read the signing key");
    EVP_PKEY* key = NULL;
    BIO* bio      = len <= INT_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
    if (bio)
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(pem, len);
    free(pem);
    ERR_clear_error();
    if (!key)
        return moat_error_set(err, -EINVAL,
                              "%s: not an unencrypted PEM private key (create one with 'moat "
                              "sign --gen-key')",
                              path);
    r = enclave_key_check(key, err);
    if (r < 0) {
        EVP_PKEY_free(key);
        return moat_error_prefix(err, "%s", path);
    }
    *ret = key;
    return 0;
}

int enclave_key_generate(EVP_PKEY** ret, struct moat_error* err) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM* e         = BN_new();
    EVP_PKEY* key     = NULL;
    int r             = 0;
    if (!ctx || !e || !BN_set_word(e, SIGSTRUCT_EXPONENT) || EVP_PKEY_keygen_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, SIGSTRUCT_KEY_BITS) <= 0 ||
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0)
        r = ossl_fail(err, "RSA-3072 key generation failed");
    BN_free(e);
    EVP_PKEY_CTX_free(ctx);
    if (r == 0)
        *ret = key;
    return r;
}

/* Moves tmp to path; without force it fails with EEXIST instead of replacing a file that
 * exists now, however late it appeared (RENAME_NOREPLACE, or link() where unsupported). */
static int install_file(const char* tmp, const char* path, bool force) {
    if (force)
        return rename(tmp, path) < 0 ? -errno : 0;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    if (link(tmp, path) < 0)
        return -errno;
    return unlink(tmp) < 0 ? -errno : 0;
}

static int write_secret_file(const char* path, const void* data, size_t len, bool force,
                             struct moat_error* err) {
    _cleanup_free_ char* tmp = xasprintf("%s.tmp.XXXXXX", path);
    _cleanup_close_ int fd   = mkostemp(tmp, O_CLOEXEC); /* mode 0600 from the start */
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "cannot create a temporary file next to %s", path);
    int r = write_all(fd, data, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && close(TAKE_FD(fd)) < 0)
        r = -errno;
    if (r == 0)
        r = install_file(tmp, path, force);
    if (r < 0) {
        unlink(tmp);
        if (r == -EEXIST)
            return moat_error_set(err, r, "refusing to overwrite %s, use -f to force", path);
        return moat_error_set_errno(err, r, "cannot write %s", path);
    }
    return 0;
}

int enclave_key_write(const char* path, EVP_PKEY* key, bool force, struct moat_error* err) {
    struct stat st;
    if (!force && lstat(path, &st) == 0) /* early, friendly answer; install_file() decides */
        return moat_error_set(err, -EEXIST, "refusing to overwrite %s, use -f to force", path);
    BIO* bio = BIO_new(BIO_s_secmem());
    if (!bio || !PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        return ossl_fail(err, "cannot encode the private key");
    }
    char* data;
    long len = BIO_get_mem_data(bio, &data);
    int r    = len > 0 ? write_secret_file(path, data, (size_t)len, force, err)
                       : ossl_fail(err, "cannot encode the private key");
    BIO_free(bio); /* secure memory: wiped on free */
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Signing                                                                                    */

/* Big-endian BIGNUM to a little-endian fixed-size field. */
static int bn_to_le(const BIGNUM* bn, uint8_t out[SIGSTRUCT_KEY_BYTES]) {
    if (BN_bn2lebinpad(bn, out, SIGSTRUCT_KEY_BYTES) != SIGSTRUCT_KEY_BYTES)
        return -EINVAL;
    return 0;
}

static int compute_q1_q2(const BIGNUM* n, const uint8_t sig_be[SIGSTRUCT_KEY_BYTES],
                         struct sigstruct* s) {
    BN_CTX* ctx = BN_CTX_new();
    BIGNUM* sig = BN_bin2bn(sig_be, SIGSTRUCT_KEY_BYTES, NULL);
    BIGNUM* sq  = BN_new();
    BIGNUM* q1  = BN_new();
    BIGNUM* rem = BN_new();
    BIGNUM* tmp = BN_new();
    BIGNUM* q2  = BN_new();
    int r       = -EINVAL;
    if (ctx && sig && sq && q1 && rem && tmp && q2 && BN_sqr(sq, sig, ctx) &&
        BN_div(q1, rem, sq, n, ctx) && BN_mul(tmp, rem, sig, ctx) &&
        BN_div(q2, NULL, tmp, n, ctx) && bn_to_le(q1, s->q1) == 0 && bn_to_le(q2, s->q2) == 0)
        r = 0;
    BN_free(sig);
    BN_free(sq);
    BN_free(q1);
    BN_free(rem);
    BN_free(tmp);
    BN_free(q2);
    BN_CTX_free(ctx);
    return r;
}

int sigstruct_sign(struct sigstruct* s, EVP_PKEY* key, struct moat_error* err) {
    int r = enclave_key_check(key, err);
    if (r < 0)
        return r;
    BIGNUM* n = NULL;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n))
        return ossl_fail(err, "cannot read the RSA modulus");
    if (bn_to_le(n, s->modulus) < 0) {
        BN_free(n);
        return moat_error_set(err, -EINVAL, "RSA modulus is not 384 bytes");
    }
    s->exponent = SIGSTRUCT_EXPONENT;

    uint8_t msg[256];
    signed_bytes(s, msg);
    uint8_t sig[SIGSTRUCT_KEY_BYTES];
    size_t siglen     = sizeof(sig);
    EVP_MD_CTX* mdctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx;
    if (!mdctx || EVP_DigestSignInit(mdctx, &pctx, EVP_sha256(), NULL, key) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0 ||
        EVP_DigestSign(mdctx, sig, &siglen, msg, sizeof(msg)) <= 0 ||
        siglen != SIGSTRUCT_KEY_BYTES) {
        EVP_MD_CTX_free(mdctx);
        BN_free(n);
        return ossl_fail(err, "signing the SIGSTRUCT failed");
    }
    EVP_MD_CTX_free(mdctx);
    r = compute_q1_q2(n, sig, s);
    BN_free(n);
    if (r < 0)
        return moat_error_set(err, -EINVAL, "computing q1/q2 failed");
    memcpy(s->signature, sig, SIGSTRUCT_KEY_BYTES);
    reverse(s->signature, SIGSTRUCT_KEY_BYTES);
    return 0;
}

static EVP_PKEY* public_key_of(const struct sigstruct* s) {
    uint8_t n_be[SIGSTRUCT_KEY_BYTES];
    memcpy(n_be, s->modulus, sizeof(n_be));
    reverse(n_be, sizeof(n_be));
    BIGNUM* n           = BN_bin2bn(n_be, sizeof(n_be), NULL);
    BIGNUM* e           = BN_new();
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM* params  = NULL;
    EVP_PKEY_CTX* ctx   = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY* key       = NULL;
    if (n && e && bld && ctx && BN_set_word(e, s->exponent) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        key = NULL;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return key;
}

int sigstruct_verify(const struct sigstruct* s, struct moat_error* err) {
    if (s->exponent != SIGSTRUCT_EXPONENT)
        return moat_error_set(err, -EBADMSG, "SIGSTRUCT exponent is %u, expected 3", s->exponent);
    /* SGX requires a 3072-bit modulus: its most significant (last, little-endian) byte is set */
    if (s->modulus[SIGSTRUCT_KEY_BYTES - 1] < 0x80)
        return moat_error_set(err, -EBADMSG, "SIGSTRUCT modulus is not a 3072-bit number");
    EVP_PKEY* key = public_key_of(s);
    if (!key)
        return ossl_fail(err, "SIGSTRUCT modulus is not a valid RSA key");
    uint8_t msg[256], sig[SIGSTRUCT_KEY_BYTES];
    signed_bytes(s, msg);
    memcpy(sig, s->signature, sizeof(sig));
    reverse(sig, sizeof(sig));
    EVP_MD_CTX* mdctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx;
    int ok = mdctx && EVP_DigestVerifyInit(mdctx, &pctx, EVP_sha256(), NULL, key) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_DigestVerify(mdctx, sig, sizeof(sig), msg, sizeof(msg)) == 1;
    EVP_MD_CTX_free(mdctx);
    ERR_clear_error();
    if (!ok) {
        EVP_PKEY_free(key);
        return moat_error_set(err, -EBADMSG,
                              "SIGSTRUCT signature does not verify (tampered or corrupted file)");
    }
    /* q1/q2 must match what the signature implies (SGX's EINIT checks them too) */
    struct sigstruct check = *s;
    BIGNUM* n              = NULL;
    int r                  = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ? 0 : -EINVAL;
    if (r == 0)
        r = compute_q1_q2(n, sig, &check);
    BN_free(n);
    EVP_PKEY_free(key);
    if (r < 0 || CRYPTO_memcmp(check.q1, s->q1, sizeof(s->q1)) != 0 ||
        CRYPTO_memcmp(check.q2, s->q2, sizeof(s->q2)) != 0)
        return moat_error_set(err, -EBADMSG, "SIGSTRUCT q1/q2 do not match the signature");
    return 0;
}
