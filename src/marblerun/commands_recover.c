/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recovery of a Coordinator whose sealed state no longer opens (cli.h; reference/marblerun.md
 * §3.4 "Recovery", §7 `recover` and its split variants; MarbleRun's cli/internal/cmd/recover*.go):
 * the recovery secret decrypted with the recovery key (RSA-OAEP, SHA-256) unless it already is,
 * signed with it (PKCS#1 v1.5 over SHA-256), optionally encrypted for the Coordinator's ephemeral
 * key, and POSTed to /api/v2/recover over the attested TLS.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "cli.h"

#define SESSION  _cleanup_(mr_session_clear) struct mr_session
#define RESPONSE _cleanup_(mr_response_clear) struct mr_response

enum rsa_mode { RSA_DECRYPT, RSA_ENCRYPT, RSA_SIGN };

/* OAEP-SHA256 decryption / encryption, or a PKCS#1 v1.5 signature over SHA-256(in). */
static int rsa_op(EVP_PKEY* key, enum rsa_mode mode, const uint8_t* in, size_t len, uint8_t** ret,
                  size_t* ret_len) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, NULL);
    uint8_t digest[SHA256_DIGEST_SIZE];
    size_t out_len = 0;
    int ok         = ctx != NULL;
    if (mode == RSA_SIGN) { /* EVP_PKEY_sign takes the digest */
        ok = ok && sha256_buf(in, len, digest) == 0 && EVP_PKEY_sign_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1;
        in  = digest;
        len = sizeof(digest);
    } else {
        ok = ok &&
             (mode == RSA_DECRYPT ? EVP_PKEY_decrypt_init(ctx) : EVP_PKEY_encrypt_init(ctx)) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1;
    }
    int (*op)(EVP_PKEY_CTX*, unsigned char*, size_t*, const unsigned char*, size_t) =
        mode == RSA_SIGN      ? EVP_PKEY_sign
        : mode == RSA_DECRYPT ? EVP_PKEY_decrypt
                              : EVP_PKEY_encrypt;
    ok           = ok && op(ctx, NULL, &out_len, in, len) == 1;
    uint8_t* out = ok ? xmalloc(out_len) : NULL;
    ok           = ok && op(ctx, out, &out_len, in, len) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        if (out)
            OPENSSL_clear_free(out, out_len);
        return -EINVAL;
    }
    *ret     = out;
    *ret_len = out_len;
    return 0;
}

/* An RSA key from a PEM file: the private recovery key, or a public key (`public`). */
static EVP_PKEY* load_rsa_key(const char* path, const char* flag, bool public) {
    struct moat_error err    = {0};
    _cleanup_free_ char* pem = NULL;
    size_t len               = 0;
    if (read_file(path, &pem, &len, &err) < 0) {
        mr_fail(&err);
        return NULL;
    }
    BIO* b        = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY* key = !b       ? NULL
                    : public ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL)
                             : PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    OPENSSL_cleanse(pem, len);
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        log_error("%s '%s' is not a PEM RSA %s key", flag, path, public ? "public" : "private");
        return NULL;
    }
    return key;
}

/* The recovery secret in `file`: as it is when it is 16, 32 or 33 bytes (decrypted, §3.4),
 * else decrypted with `key` (NULL: an error that asks for it). The caller wipes *ret. */
static int load_secret(const char* file, EVP_PKEY* key, uint8_t** ret, size_t* ret_len) {
    struct moat_error err     = {0};
    _cleanup_free_ char* data = NULL;
    size_t len                = 0;
    if (read_file(file, &data, &len, &err) < 0)
        return mr_fail(&err);
    int rc = 0;
    if (len == 16 || len == 32 || len == 33) {
        *ret     = xmemdup(data, len);
        *ret_len = len;
    } else if (!key) {
        log_error(
            "'%s' is an encrypted recovery secret: give the recovery private key with "
            "-k/--key",
            file);
        rc = MOAT_EXIT_USAGE;
    } else if (rsa_op(key, RSA_DECRYPT, (const uint8_t*)data, len, ret, ret_len) < 0) {
        log_error(
            "cannot decrypt the recovery secret '%s' with the key (RSA-OAEP, SHA-256): "
            "wrong key or not a recovery secret",
            file);
        rc = MOAT_EXIT_RUNTIME;
    }
    OPENSSL_cleanse(data, len);
    return rc;
}

/* POST /api/v2/recover over the attested TLS: a recovering Coordinator has a temporary root, so
 * its quote is verified and the cache left alone. */
static int post_recover(const struct mr_args* a, const char* addr, const uint8_t* secret,
                        size_t slen, const uint8_t* sig, size_t siglen) {
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, addr, MR_TRUST_VERIFY_ONLY, false, &s);
    if (rc)
        return rc;
    if (!a->json)
        puts("Successfully verified Coordinator, now uploading key");
    char* s64    = base64_encode_alloc(secret, slen);
    char* g64    = base64_encode_alloc(sig, siglen);
    json_t* body = json_pack("{s:s, s:s}", "recoverySecret", s64, "recoverySecretSignature", g64);
    OPENSSL_cleanse(s64, strlen(s64));
    free(s64);
    free(g64);
    rc = mr_call(a, &s, addr, "POST", "/api/v2/recover", body, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (a->json)
        return mr_print_json(r.data ? r.data : json_null());
    /* "Recovery successful." or "Secret was processed successfully. Upload the next secret.
     * Remaining secrets: n" (§3.4) */
    json_t* msg = json_object_get(r.data, "message");
    puts(json_is_string(msg) ? json_string_value(msg) : "Recovery successful.");
    return MOAT_EXIT_OK;
}

/* Writes bytes to -o, or prints them (MarbleRun prints them as they are). */
static int output_bytes(const struct mr_args* a, const uint8_t* p, size_t len, const char* what) {
    int rc = mr_write_out(a->output, p, len, 0600);
    if (rc == 0 && a->output && strcmp(a->output, "-") != 0)
        fprintf(stderr, "moat marblerun: %s written to %s\n", what, a->output);
    else if (rc == 0)
        putchar('\n');
    return rc;
}

static int need_key(const struct mr_args* a, const char* cmd) {
    if (a->key)
        return 0;
    log_error("%s needs the recovery private key: -k/--key private_key.pem", cmd);
    return MOAT_EXIT_USAGE;
}

/* The secret of `file` (decrypted with -k if needed) and its signature with -k. */
static int secret_and_signature(const struct mr_args* a, const char* file, uint8_t** secret,
                                size_t* slen, uint8_t** sig, size_t* siglen) {
    EVP_PKEY* key = load_rsa_key(a->key, "-k/--key", false);
    if (!key)
        return MOAT_EXIT_USAGE;
    int rc = load_secret(file, key, secret, slen);
    if (rc == 0 && rsa_op(key, RSA_SIGN, *secret, *slen, sig, siglen) < 0) {
        OPENSSL_clear_free(*secret, *slen);
        log_error("cannot sign the recovery secret with -k/--key '%s'", a->key);
        rc = MOAT_EXIT_RUNTIME;
    }
    EVP_PKEY_free(key);
    return rc;
}

int mr_cmd_recover(const struct mr_args* a, char** args) {
    uint8_t *secret = NULL, *sig = NULL;
    size_t slen = 0, siglen = 0;
    int rc = need_key(a, "recover");
    rc     = rc ?: secret_and_signature(a, args[0], &secret, &slen, &sig, &siglen);
    if (rc)
        return rc;
    rc = post_recover(a, args[1], secret, slen, sig, siglen);
    OPENSSL_clear_free(secret, slen);
    free(sig);
    return rc;
}

/* recover-with-signature <secret> <IP:PORT> -s SIG: the secret as it is (decrypted, or
 * encrypted for the ephemeral key) and a signature made offline (recover sign-secret). */
int mr_cmd_recover_with_signature(const struct mr_args* a, char** args) {
    if (!a->signature) {
        log_error("recover-with-signature needs the signature: -s/--signature recovery.sig");
        return MOAT_EXIT_USAGE;
    }
    struct moat_error err       = {0};
    _cleanup_free_ char *secret = NULL, *sig = NULL;
    size_t slen = 0, siglen = 0;
    if (read_file(args[0], &secret, &slen, &err) < 0 ||
        read_file(a->signature, &sig, &siglen, &err) < 0)
        return mr_fail(&err);
    int rc = post_recover(a, args[1], (const uint8_t*)secret, slen, (const uint8_t*)sig, siglen);
    OPENSSL_cleanse(secret, slen);
    return rc;
}

/* recover public-key <IP:PORT>: GET /api/v2/recover/public-key, as PEM. */
int mr_cmd_recover_public_key(const struct mr_args* a, char** args) {
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, args[0], MR_TRUST_VERIFY_ONLY, false, &s);
    rc         = rc ?: mr_call(a, &s, args[0], "GET", "/api/v2/recover/public-key", NULL, &r);
    if (rc)
        return rc;
    json_t* k                   = json_object_get(r.data, "ephemeralPublicKey");
    _cleanup_free_ uint8_t* der = NULL;
    size_t len                  = 0;
    const unsigned char* p      = NULL;
    EVP_PKEY* key               = NULL;
    if (json_is_string(k) &&
        base64_decode_alloc(json_string_value(k), json_string_length(k), &der, &len) == 0) {
        p   = der;
        key = d2i_PUBKEY(NULL, &p, (long)len);
    }
    BIO* b = key ? BIO_new(BIO_s_mem()) : NULL;
    char* pem;
    long n = b && PEM_write_bio_PUBKEY(b, key) ? BIO_get_mem_data(b, &pem) : 0;
    EVP_PKEY_free(key);
    if (n <= 0) {
        BIO_free(b);
        log_error("retrieving recovery public key: the Coordinator's answer holds no public key");
        return MOAT_EXIT_RUNTIME;
    }
    rc = mr_write_out(a->output ? a->output : "-", pem, (size_t)n, 0644);
    BIO_free(b);
    return rc;
}

/* recover encrypt-secret <secret> --coordinator-pub-key PEM [-k KEY]: OAEP for the ephemeral
 * key (§3.4 step 3). */
int mr_cmd_recover_encrypt_secret(const struct mr_args* a, char** args) {
    if (!a->coordinator_pub_key) {
        log_error(
            "encrypt-secret needs the Coordinator's ephemeral key: --coordinator-pub-key "
            "FILE (from 'recover public-key')");
        return MOAT_EXIT_USAGE;
    }
    EVP_PKEY* pub   = load_rsa_key(a->coordinator_pub_key, "--coordinator-pub-key", true);
    EVP_PKEY* key   = pub && a->key ? load_rsa_key(a->key, "-k/--key", false) : NULL;
    uint8_t *secret = NULL, *enc = NULL;
    size_t slen = 0, elen = 0;
    int rc = !pub || (a->key && !key) ? MOAT_EXIT_USAGE : load_secret(args[0], key, &secret, &slen);
    if (rc == 0 && rsa_op(pub, RSA_ENCRYPT, secret, slen, &enc, &elen) < 0) {
        log_error("cannot encrypt the recovery secret for the Coordinator's key");
        rc = MOAT_EXIT_RUNTIME;
    }
    if (secret)
        OPENSSL_clear_free(secret, slen);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    rc = rc ?: output_bytes(a, enc, elen, "encrypted secret");
    free(enc);
    return rc;
}

/* recover sign-secret <secret> -k KEY: the PKCS#1 v1.5 signature for recover-with-signature. */
int mr_cmd_recover_sign_secret(const struct mr_args* a, char** args) {
    uint8_t *secret = NULL, *sig = NULL;
    size_t slen = 0, siglen = 0;
    int rc = need_key(a, "sign-secret");
    rc     = rc ?: secret_and_signature(a, args[0], &secret, &slen, &sig, &siglen);
    if (rc)
        return rc;
    OPENSSL_clear_free(secret, slen);
    rc = output_bytes(a, sig, siglen, "signature");
    free(sig);
    return rc;
}
