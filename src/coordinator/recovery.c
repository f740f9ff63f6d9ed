/* SPDX-License-Identifier: Apache-2.0 */
/* Recovery keys: the DEK's split and its reassembly (recovery.h; reference/marblerun.md §3.4). */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "recovery.h"

/* ---------------------------------------------------------------------------------------- */
/* GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1, in constant time                */

static uint8_t gf_mul(uint8_t a, uint8_t b) {
    uint8_t r = 0;
    for (int i = 0; i < 8; i++) {
        r ^= (uint8_t)(-(b & 1) & a);
        uint8_t hi = (uint8_t) - (a >> 7);
        a          = (uint8_t)((a << 1) ^ (hi & 0x1b));
        b >>= 1;
    }
    return r;
}

static uint8_t gf_inv(uint8_t a) { /* a^254; 0 for 0 */
    uint8_t r = a, sq = a;
    for (int i = 0; i < 6; i++) {
        sq = gf_mul(sq, sq);
        r  = gf_mul(r, sq);
    }
    return gf_mul(r, r);
}

/* p(x) for p = coeffs[0] + coeffs[1] x + ... (Horner) */
static uint8_t poly_eval(const uint8_t* coeffs, unsigned degree, uint8_t x) {
    uint8_t r = coeffs[degree];
    for (unsigned i = degree; i-- > 0;)
        r = gf_mul(r, x) ^ coeffs[i];
    return r;
}

int shamir_split(const uint8_t* secret, size_t len, unsigned parts, unsigned threshold,
                 uint8_t** ret_shares) {
    if (len == 0 || threshold < 2 || parts < threshold || parts > 255)
        return -EINVAL;
    /* distinct non-zero x coordinates: a random permutation of 1..255 */
    uint8_t xs[255], rnd[255];
    for (int i = 0; i < 255; i++)
        xs[i] = (uint8_t)(i + 1);
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -EIO;
    for (int i = 254; i > 0; i--) {
        int j     = rnd[i] % (i + 1);
        uint8_t t = xs[i];
        xs[i]     = xs[j];
        xs[j]     = t;
    }
    uint8_t coeffs[255];
    for (size_t b = 0; b < len; b++) {
        coeffs[0] = secret[b];
        if (RAND_bytes(coeffs + 1, (int)threshold - 1) != 1)
            return -EIO;
        for (unsigned p = 0; p < parts; p++)
            ret_shares[p][b] = poly_eval(coeffs, threshold - 1, xs[p]);
    }
    for (unsigned p = 0; p < parts; p++)
        ret_shares[p][len] = xs[p];
    OPENSSL_cleanse(coeffs, sizeof(coeffs));
    return 0;
}

int shamir_combine(const uint8_t* const* shares, size_t n, size_t share_len, uint8_t* out) {
    if (n < 2 || n > 255 || share_len < 2)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (shares[i][share_len - 1] == shares[j][share_len - 1])
                return -EINVAL; /* the same share twice */
    for (size_t b = 0; b + 1 < share_len; b++) {
        uint8_t acc = 0;
        for (size_t i = 0; i < n; i++) { /* Lagrange basis at 0 */
            uint8_t xi = shares[i][share_len - 1], num = 1, den = 1;
            for (size_t j = 0; j < n; j++) {
                if (j == i)
                    continue;
                uint8_t xj = shares[j][share_len - 1];
                num        = gf_mul(num, xj);
                den        = gf_mul(den, xi ^ xj);
            }
            acc ^= gf_mul(shares[i][b], gf_mul(num, gf_inv(den)));
        }
        out[b] = acc;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The split for a manifest                                                                   */

static EVP_PKEY* rsa_public(const char* pem) {
    BIO* bio      = BIO_new_mem_buf(pem, -1);
    EVP_PKEY* key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (key && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    return key;
}

/* base64(RSA-OAEP-SHA256(pem, data)) */
static int oaep_encrypt(const char* pem, const uint8_t* data, size_t len, char** ret) {
    EVP_PKEY* key     = rsa_public(pem);
    EVP_PKEY_CTX* ctx = key ? EVP_PKEY_CTX_new(key, NULL) : NULL;
    size_t out_len    = 0;
    uint8_t* out      = NULL;
    int ok            = ctx && EVP_PKEY_encrypt_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) > 0 &&
             EVP_PKEY_encrypt(ctx, NULL, &out_len, data, len) > 0;
    if (ok) {
        out = xmalloc(out_len);
        ok  = EVP_PKEY_encrypt(ctx, out, &out_len, data, len) > 0;
    }
    if (ok)
        *ret = base64_encode_alloc(out, out_len);
    free(out);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok ? 0 : -EINVAL;
}

static char* share_hashes_json(uint8_t* const* shares, size_t n, size_t len) {
    json_t* obj = json_object();
    for (size_t i = 0; i < n; i++) {
        uint8_t h[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        if (sha256_buf(shares[i], len, h) == 0 && hex_encode(h, sizeof(h), hex, sizeof(hex)) > 0)
            json_object_set_new(obj, hex, json_true());
    }
    char* out = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    return out;
}

/* The shares to hand out: the DEK itself (one key), XOR parts or Shamir shares. */
static int make_shares(uint8_t dek[RECOVERY_DEK_SIZE], size_t n, unsigned threshold,
                       uint8_t** shares, size_t* share_len) {
    if (RAND_bytes(dek, RECOVERY_DEK_SIZE) != 1)
        return -EIO;
    *share_len = RECOVERY_DEK_SIZE;
    if (n == 1) {
        memcpy(shares[0], dek, RECOVERY_DEK_SIZE);
        return 0;
    }
    if (threshold == 0 || threshold == n) { /* every share needed: XOR */
        memset(dek, 0, RECOVERY_DEK_SIZE);
        for (size_t i = 0; i < n; i++) {
            if (RAND_bytes(shares[i], RECOVERY_DEK_SIZE) != 1)
                return -EIO;
            for (size_t b = 0; b < RECOVERY_DEK_SIZE; b++)
                dek[b] ^= shares[i][b];
        }
        return 0;
    }
    *share_len = RECOVERY_DEK_SIZE + 1;
    return shamir_split(dek, RECOVERY_DEK_SIZE, (unsigned)n, threshold, shares);
}

int recovery_setup_new(const char* const* names, const char* const* pems, size_t n,
                       unsigned threshold, struct recovery_setup* ret, struct moat_error* err) {
    struct recovery_setup r = {.n = n};
    if (n > 255 || (n > 1 && threshold > n))
        return moat_error_set(err, -EINVAL,
                              "not enough recovery keys (%zu) defined to meet the recovery "
                              "threshold of %u",
                              n, threshold);
    uint8_t** shares = xcalloc(n + 1, sizeof(*shares));
    for (size_t i = 0; i < n; i++)
        shares[i] = xcalloc(1, RECOVERY_DEK_SIZE + 1);
    size_t share_len = RECOVERY_DEK_SIZE;
    int rc           = n ? make_shares(r.dek, n, threshold, shares, &share_len)
                         : (RAND_bytes(r.dek, sizeof(r.dek)) == 1 ? 0 : -EIO);
    if (rc < 0)
        rc = moat_error_set(err, rc, "cannot generate the data encryption key");
    r.names       = xcalloc(n + 1, sizeof(char*));
    r.secrets_b64 = xcalloc(n + 1, sizeof(char*));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        r.names[i] = xstrdup(names[i]);
        if (oaep_encrypt(pems[i], shares[i], share_len, &r.secrets_b64[i]) < 0)
            rc = moat_error_set(
                err, -EINVAL, "recovery key '%s' is not an RSA public key in PEM (PKIX)", names[i]);
    }
    if (rc == 0 && n > 1)
        r.recovery_data = share_hashes_json(shares, n, share_len);
    for (size_t i = 0; i < n; i++) {
        OPENSSL_cleanse(shares[i], RECOVERY_DEK_SIZE + 1);
        free(shares[i]);
    }
    free(shares);
    if (rc < 0) {
        recovery_setup_free(&r);
        return rc;
    }
    *ret = r;
    return 0;
}

void recovery_setup_free(struct recovery_setup* r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->names ? r->names[i] : NULL);
        free(r->secrets_b64 ? r->secrets_b64[i] : NULL);
    }
    free(r->names);
    free(r->secrets_b64);
    free(r->recovery_data);
    OPENSSL_cleanse(r->dek, sizeof(r->dek));
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------------------- */
/* Reassembly                                                                                 */

struct recovery_session {
    json_t* expected; /* sha256hex -> true; NULL: one key, the secret is the DEK */
    unsigned threshold;
    uint8_t shares[255][RECOVERY_DEK_SIZE + 1];
    size_t n, share_len;
};

struct recovery_session* recovery_session_new(const char* recovery_data, unsigned threshold,
                                              struct moat_error* err) {
    struct recovery_session* s = xcalloc(1, sizeof(*s));
    s->threshold               = threshold;
    json_error_t jerr;
    json_t* rd = recovery_data ? json_loads(recovery_data, JSON_DECODE_ANY, &jerr) : NULL;
    if (recovery_data && (!rd || (!json_is_null(rd) && !json_is_object(rd)))) {
        json_decref(rd);
        free(s);
        moat_error_set(err, -EINVAL, "the sealed state's recovery data is not a JSON object");
        return NULL;
    }
    if (rd && json_is_object(rd) && json_object_size(rd) > 1 && json_object_size(rd) <= 255)
        s->expected = rd;
    else
        json_decref(rd);
    return s;
}

void recovery_session_free(struct recovery_session* s) {
    if (!s)
        return;
    json_decref(s->expected);
    OPENSSL_cleanse(s->shares, sizeof(s->shares));
    free(s);
}

static size_t needed(const struct recovery_session* s) {
    size_t all = json_object_size(s->expected);
    /* Shamir shares with the threshold unknown (it is in the sealed manifest): combine from
     * two shares on; the caller tests the result (MarbleRun's shamirRecover) */
    if (s->threshold == 0 && s->share_len == RECOVERY_DEK_SIZE + 1)
        return 2;
    return s->threshold == 0 || s->threshold >= all ? all : s->threshold;
}

void recovery_session_progress(const struct recovery_session* s, size_t* ret_uploaded,
                               size_t* ret_total) {
    *ret_uploaded = s->n;
    *ret_total    = s->expected ? json_object_size(s->expected) : 1;
}

static int accept_share(struct recovery_session* s, const uint8_t* secret, size_t len,
                        struct moat_error* err) {
    uint8_t h[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];
    if ((len != RECOVERY_DEK_SIZE && len != RECOVERY_DEK_SIZE + 1 &&
         len != RECOVERY_LEGACY_DEK_SIZE) ||
        (s->n && len != s->share_len) || sha256_buf(secret, len, h) < 0 ||
        hex_encode(h, sizeof(h), hex, sizeof(hex)) < 0 || !json_object_get(s->expected, hex))
        return moat_error_set(err, -EINVAL,
                              "the secret is not one of this state's recovery "
                              "secrets");
    for (size_t i = 0; i < s->n; i++)
        if (CRYPTO_memcmp(s->shares[i], secret, len) == 0)
            return moat_error_set(err, -EINVAL, "this recovery secret was uploaded already");
    memcpy(s->shares[s->n++], secret, len);
    s->share_len = len;
    return 0;
}

int recovery_session_add(struct recovery_session* s, const uint8_t* secret, size_t len,
                         uint8_t dek[RECOVERY_DEK_SIZE], size_t* ret_remaining,
                         struct moat_error* err) {
    if (!s->expected) { /* one key (or none): the secret is the DEK */
        if (len != RECOVERY_DEK_SIZE && len != RECOVERY_LEGACY_DEK_SIZE)
            return moat_error_set(err, -EINVAL, "the recovery secret has %zu bytes, not %d", len,
                                  RECOVERY_DEK_SIZE);
        memset(dek, 0, RECOVERY_DEK_SIZE);
        memcpy(dek, secret, len);
        *ret_remaining = 0;
        return 0;
    }
    int r = accept_share(s, secret, len, err);
    if (r < 0)
        return r;
    size_t need = needed(s);
    if (s->n < need) {
        *ret_remaining = need - s->n;
        return 0;
    }
    if (s->share_len != RECOVERY_DEK_SIZE + 1) { /* XOR of every share (legacy: 16 bytes) */
        memset(dek, 0, RECOVERY_DEK_SIZE);
        for (size_t i = 0; i < s->n; i++)
            for (size_t b = 0; b < RECOVERY_DEK_SIZE; b++)
                dek[b] ^= s->shares[i][b];
    } else {
        const uint8_t* parts[255];
        for (size_t i = 0; i < s->n; i++)
            parts[i] = s->shares[i];
        if (shamir_combine(parts, s->n, s->share_len, dek) < 0)
            return moat_error_set(err, -EINVAL, "the recovery secrets do not combine");
    }
    *ret_remaining = 0;
    return 0;
}

int recovery_verify_signature(const char* pem, const uint8_t* data, size_t len, const uint8_t* sig,
                              size_t sig_len) {
    EVP_PKEY* key      = rsa_public(pem);
    EVP_MD_CTX* md     = key ? EVP_MD_CTX_new() : NULL;
    EVP_PKEY_CTX* pctx = NULL;
    int ok             = md && EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, key) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_DigestVerify(md, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return ok ? 0 : -EPERM;
}
