/* SPDX-License-Identifier: Apache-2.0 */
/* Verifier nonces, attest requests and report-data binding (attestation.md §4.1): see
 * appraisal.h. The claims are in claims.c. */
#include "appraisal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <string.h>

void amber_nonce_clear(struct amber_nonce* n) {
    free(n->val);
    free(n->iat);
    free(n->signature);
    *n = (struct amber_nonce){0};
}

/* ------------------------------------------------------------------------------------------ */
/* Nonces                                                                                       */

/* §4.1: "nonces are always signed with PS384"; what is signed is val ‖ iat (our choice). */
static int pss(EVP_PKEY* key, bool sign, const struct amber_nonce* n, uint8_t** sig,
               size_t* sig_len) {
    EVP_MD_CTX* md     = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = NULL;
    int ok             = md && (sign ? EVP_DigestSignInit(md, &pctx, EVP_sha384(), NULL, key)
                                     : EVP_DigestVerifyInit(md, &pctx, EVP_sha384(), NULL, key)) == 1;
    ok                 = ok && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
    if (sign) {
        ok = ok && EVP_DigestSignUpdate(md, n->val, n->val_len) == 1 &&
             EVP_DigestSignUpdate(md, n->iat, n->iat_len) == 1 &&
             EVP_DigestSignFinal(md, NULL, sig_len) == 1;
        if (ok) {
            *sig = xmalloc(*sig_len);
            ok   = EVP_DigestSignFinal(md, *sig, sig_len) == 1;
        }
    } else {
        ok = ok && EVP_DigestVerifyUpdate(md, n->val, n->val_len) == 1 &&
             EVP_DigestVerifyUpdate(md, n->iat, n->iat_len) == 1 &&
             EVP_DigestVerifyFinal(md, n->signature, n->signature_len) == 1;
    }
    EVP_MD_CTX_free(md);
    return ok ? 0 : -EKEYREJECTED;
}

/* Go's time.Time.String() of a UTC time: fraction without trailing zeros, none when zero. */
static void format_iat(const struct timespec* t, char* buf, size_t size) {
    struct tm tm;
    time_t s = t->tv_sec;
    gmtime_r(&s, &tm);
    char frac[32] = "";
    if (t->tv_nsec > 0) {
        snprintf(frac, sizeof(frac), ".%09ld", t->tv_nsec);
        size_t l = strlen(frac);
        while (l > 1 && frac[l - 1] == '0')
            frac[--l] = '\0';
    }
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d%s +0000 UTC", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static int digits(struct cursor* c, size_t n, int* ret) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t d;
        if (cur_u8(c, &d) < 0 || d < '0' || d > '9')
            return -EINVAL;
        v = v * 10 + (d - '0');
    }
    *ret = v;
    return 0;
}

static int expect(struct cursor* c, const char* s) {
    size_t l = strlen(s);
    if (c->len < l || memcmp(c->p, s, l) != 0)
        return -EINVAL;
    return cur_skip(c, l);
}

/* The seconds of an iat this service wrote (format_iat). */
static int parse_iat(const uint8_t* p, size_t len, time_t* ret) {
    struct cursor c = cursor_init(p, len);
    struct tm tm    = {0};
    int y, mo, d, h, mi, s;
    if (digits(&c, 4, &y) < 0 || expect(&c, "-") < 0 || digits(&c, 2, &mo) < 0 ||
        expect(&c, "-") < 0 || digits(&c, 2, &d) < 0 || expect(&c, " ") < 0 ||
        digits(&c, 2, &h) < 0 || expect(&c, ":") < 0 || digits(&c, 2, &mi) < 0 ||
        expect(&c, ":") < 0 || digits(&c, 2, &s) < 0)
        return -EINVAL;
    if (c.len > 0 && c.p[0] == '.') {
        int dummy, n = 0;
        if (cur_skip(&c, 1) < 0)
            return -EINVAL;
        while (c.len > 0 && c.p[0] >= '0' && c.p[0] <= '9' && n < 9)
            if (digits(&c, 1, &dummy) < 0 || ++n > 9)
                return -EINVAL;
        if (n == 0)
            return -EINVAL;
    }
    if (expect(&c, " +0000 UTC") < 0 || c.len != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
        h > 23 || mi > 59 || s > 60)
        return -EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon  = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min  = mi;
    tm.tm_sec  = s;
    *ret       = timegm(&tm);
    return 0;
}

json_t* amber_nonce_new(EVP_PKEY* key, const struct timespec* now, struct moat_error* err) {
    uint8_t val[AMBER_NONCE_VAL_SIZE];
    char iat[64];
    if (RAND_bytes(val, sizeof(val)) != 1) {
        moat_error_set(err, -EIO, "no random bytes for a nonce");
        return NULL;
    }
    format_iat(now, iat, sizeof(iat));
    struct amber_nonce n = {
        .val = val, .val_len = sizeof(val), .iat = (uint8_t*)iat, .iat_len = strlen(iat)};
    uint8_t* sig   = NULL;
    size_t sig_len = 0;
    if (pss(key, true, &n, &sig, &sig_len) < 0) {
        free(sig);
        moat_error_set(err, -EIO, "cannot sign the nonce");
        return NULL;
    }
    n.signature     = sig;
    n.signature_len = sig_len;
    json_t* j       = amber_nonce_to_json(&n);
    free(sig);
    return j;
}

int amber_nonce_check(EVP_PKEY* key, const struct amber_nonce* n, time_t now, long max_age,
                      struct moat_error* err) {
    if (pss(key, false, n, NULL, NULL) < 0)
        return moat_error_set(err, -EKEYREJECTED, "verifier nonce signature is not valid");
    time_t iat = 0;
    if (parse_iat(n->iat, n->iat_len, &iat) < 0)
        return moat_error_set(err, -EINVAL, "verifier nonce iat is not a time");
    if (iat > now + 60)
        return moat_error_set(err, -ETIME, "verifier nonce is from the future");
    if (now - iat > max_age)
        return moat_error_set(err, -ETIME, "verifier nonce expired: issued %lld s ago, valid %ld s",
                              (long long)(now - iat), max_age);
    return 0;
}

json_t* amber_nonce_to_json(const struct amber_nonce* n) {
    _cleanup_free_ char* v = base64_encode_alloc(n->val, n->val_len);
    _cleanup_free_ char* i = base64_encode_alloc(n->iat, n->iat_len);
    _cleanup_free_ char* s = base64_encode_alloc(n->signature, n->signature_len);
    return json_pack("{s:s, s:s, s:s}", "val", v, "iat", i, "signature", s);
}

/* ------------------------------------------------------------------------------------------ */
/* Attest requests                                                                              */

void amber_attest_request_clear(struct amber_attest_request* r) {
    free(r->quote);
    amber_nonce_clear(&r->nonce);
    free(r->runtime_data);
    free(r->user_data);
    free(r->event_log);
    for (size_t i = 0; i < r->n_policy_ids; i++)
        free(r->policy_ids[i]);
    free(r->policy_ids);
    *r = (struct amber_attest_request){0};
}

/* A []byte member (Go's encoding/json: standard base64). Absent or null: 0 and nothing. */
static int b64_member(const json_t* o, const char* key, bool* ret_present, uint8_t** ret,
                      size_t* ret_len, size_t max, struct moat_error* err) {
    const json_t* v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return moat_error_set(err, -EINVAL, "'%s' must be a base64 string", key);
    if (json_string_length(v) > max / 3 * 4 + 4)
        return moat_error_set(err, -EINVAL, "'%s' is too large", key);
    if (base64_decode_alloc(json_string_value(v), json_string_length(v), ret, ret_len) < 0)
        return moat_error_set(err, -EINVAL, "'%s' is not valid base64", key);
    if (ret_present)
        *ret_present = true;
    return 0;
}

static int parse_nonce(const json_t* v, const char* key, struct amber_nonce* n,
                       struct moat_error* err) {
    if (!json_is_object(v))
        return moat_error_set(err, -EINVAL, "'%s' must be an object {val, iat, signature}", key);
    bool pv = false, pi = false, ps = false;
    int r;
    if ((r = b64_member(v, "val", &pv, &n->val, &n->val_len, AMBER_NONCE_MAX_SIZE, err)) < 0 ||
        (r = b64_member(v, "iat", &pi, &n->iat, &n->iat_len, AMBER_NONCE_MAX_SIZE, err)) < 0 ||
        (r = b64_member(v, "signature", &ps, &n->signature, &n->signature_len, 1024, err)) < 0)
        return moat_error_prefix(err, "%s", key);
    if (!pv || !pi || !ps)
        return moat_error_set(err, -EINVAL, "'%s' needs val, iat and signature", key);
    return 0;
}

static int parse_policies(const json_t* o, struct amber_attest_request* r, struct moat_error* err) {
    const json_t* ids = json_object_get(o, "policy_ids");
    if (ids && !json_is_null(ids)) {
        if (!json_is_array(ids) || json_array_size(ids) > AMBER_MAX_POLICY_IDS)
            return moat_error_set(err, -EINVAL, "'policy_ids' must be an array of at most %d UUIDs",
                                  AMBER_MAX_POLICY_IDS);
        r->policy_ids = xcalloc(json_array_size(ids) + 1, sizeof(char*));
        size_t i;
        const json_t* id;
        json_array_foreach(ids, i, id) {
            uint8_t u[16];
            if (!json_is_string(id) || moat_uuid_parse(json_string_value(id), u, err) < 0)
                return moat_error_set(err, -EINVAL, "'policy_ids'[%zu] is not a UUID", i);
            r->policy_ids[i] = xmalloc(MOAT_UUID_STR_SIZE);
            moat_uuid_format(u, r->policy_ids[i]);
            r->n_policy_ids++;
        }
    }
    const json_t* must = json_object_get(o, "policy_must_match");
    if (must && !json_is_null(must)) {
        if (!json_is_boolean(must))
            return moat_error_set(err, -EINVAL, "'policy_must_match' must be a boolean");
        r->policy_must_match = json_is_true(must);
    }
    const json_t* alg = json_object_get(o, "token_signing_alg");
    r->alg            = AMBER_JWT_PS384;
    if (alg && !json_is_null(alg) && !(json_is_string(alg) && !*json_string_value(alg)))
        return amber_jwt_alg_parse(json_is_string(alg) ? json_string_value(alg) : NULL, &r->alg,
                                   err);
    return 0;
}

#define MAX_QUOTE_SIZE   (64 * 1024)
#define MAX_RUNTIME_DATA (64 * 1024)

/* The evidence members of one object: the top level (beta, v1) or "sgx"/"tdx" (v2). */
static int parse_evidence(const json_t* e, enum amber_api api, struct amber_attest_request* r,
                          struct moat_error* err) {
    bool has_quote = false;
    int rc = b64_member(e, "quote", &has_quote, &r->quote, &r->quote_len, MAX_QUOTE_SIZE, err);
    if (rc < 0)
        return rc;
    if (!has_quote || r->quote_len == 0)
        return moat_error_set(err, -EINVAL, "'quote' is required");
    /* beta: `nonce`, the held data in `user_data` (§4.1) */
    const char* nonce_key   = api == AMBER_API_BETA ? "nonce" : "verifier_nonce";
    const char* runtime_key = api == AMBER_API_BETA ? "user_data" : "runtime_data";
    const json_t* nonce     = json_object_get(e, nonce_key);
    if (nonce && !json_is_null(nonce)) {
        if ((rc = parse_nonce(nonce, nonce_key, &r->nonce, err)) < 0)
            return rc;
        r->has_nonce = true;
    }
    if ((rc = b64_member(e, runtime_key, &r->has_runtime_data, &r->runtime_data,
                         &r->runtime_data_len, MAX_RUNTIME_DATA, err)) < 0)
        return rc;
    if (api != AMBER_API_BETA && (rc = b64_member(e, "user_data", &r->has_user_data, &r->user_data,
                                                  &r->user_data_len, MAX_RUNTIME_DATA, err)) < 0)
        return rc;
    return b64_member(e, "event_log", NULL, &r->event_log, &r->event_log_len, MAX_QUOTE_SIZE, err);
}

int amber_attest_request_parse(const char* body, size_t len, enum amber_api api,
                               struct amber_attest_request* ret, struct moat_error* err) {
    json_error_t jerr;
    json_t* root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return moat_error_set(err, -EINVAL, "request body is not JSON: %s", jerr.text);
    struct amber_attest_request r = {.api = api};
    int rc                        = 0;
    if (!json_is_object(root)) {
        rc = moat_error_set(err, -EINVAL, "request body must be a JSON object");
        goto out;
    }
    const json_t* evidence = root;
    if (api == AMBER_API_V2) {
        static const char* const tees[] = {"sgx", "tdx"};
        for (size_t i = 0; i < ARRAY_SIZE(tees); i++) {
            const json_t* e = json_object_get(root, tees[i]);
            if (!e || json_is_null(e))
                continue;
            if (r.tee) {
                rc = moat_error_set(err, -EINVAL, "give evidence for one TEE: 'sgx' or 'tdx'");
                goto out;
            }
            r.tee    = tees[i];
            evidence = e;
        }
        /* client-for-go's GetToken posts the flat v1 shape to /appraisal/v2/attest, its
         * AttestEvidence the nested one */
        if (!r.tee && json_object_get(root, "quote"))
            evidence = root;
        else if (!r.tee || !json_is_object(evidence)) {
            rc = moat_error_set(err, -EINVAL, "'sgx' or 'tdx' evidence object is required");
            goto out;
        }
    }
    if ((rc = parse_evidence(evidence, api, &r, err)) < 0 ||
        (rc = parse_policies(root, &r, err)) < 0)
        goto out;
    *ret = r;
    r    = (struct amber_attest_request){0};
out:
    amber_attest_request_clear(&r);
    json_decref(root);
    return rc;
}

int amber_expected_report_data(const struct amber_attest_request* r, bool tdx, uint8_t out[64]) {
    if (!r->has_nonce && !r->has_runtime_data)
        return 0;
    memset(out, 0, 64);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    unsigned n     = 0;
    int ok         = md && EVP_DigestInit_ex(md, tdx ? EVP_sha512() : EVP_sha256(), NULL) == 1;
    if (r->has_nonce)
        ok = ok && EVP_DigestUpdate(md, r->nonce.val, r->nonce.val_len) == 1 &&
             EVP_DigestUpdate(md, r->nonce.iat, r->nonce.iat_len) == 1;
    if (r->runtime_data_len)
        ok = ok && EVP_DigestUpdate(md, r->runtime_data, r->runtime_data_len) == 1;
    ok = ok && EVP_DigestFinal_ex(md, out, &n) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        abort(); /* SHA-2 does not fail but for OOM */
    return 1;
}
