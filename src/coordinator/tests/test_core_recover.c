/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for recovery in the Coordinator core (core.h, core_recover.c): reference/marblerun.md
 * §3.2 (Recovery and its ways out) and §3.4 "DEK and recovery keys", steps 1-6: one key, XOR of
 * two, Shamir 2 of 3, secrets encrypted for the ephemeral key, legacy 16-byte DEKs, the
 * signature checks, and that a failed attempt never touches the sealed files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include "core_internal.h"
#include "recovery.h"

#define MRENCLAVE_HEX "1111111111111111111111111111111111111111111111111111111111111111"

static const uint8_t SEAL_A[32] = {1, 2, 3}, SEAL_B[32] = {9, 9, 9};

struct keypair {
    EVP_PKEY* key;
    char* pem; /* public key, PKIX PEM */
};
static struct keypair g_keys[4]; /* g_keys[3] is in no manifest */

static int setup(void** state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        g_keys[i].key = EVP_RSA_gen(2048);
        assert_non_null(g_keys[i].key);
        BIO* b = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_PUBKEY(b, g_keys[i].key), 1);
        char* p;
        long n        = BIO_get_mem_data(b, &p);
        g_keys[i].pem = xstrndup(p, (size_t)n);
        BIO_free(b);
    }
    return 0;
}

static int teardown(void** state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        EVP_PKEY_free(g_keys[i].key);
        free(g_keys[i].pem);
    }
    return 0;
}

static void json_escape_into(struct strbuf* sb, const char* s) {
    for (; *s; s++) {
        if (*s == '\n')
            strbuf_puts(sb, "\\n");
        else
            strbuf_putc(sb, *s);
    }
}

/* A manifest whose RecoveryKeys are g_keys[0..n) named k0, k1, ... */
static char* manifest_with(size_t n, unsigned threshold, const char* marble) {
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "{\"Packages\": {\"pkg\": {\"UniqueID\": \"" MRENCLAVE_HEX "\"}},");
    strbuf_puts(&sb, " \"Marbles\": {\"");
    strbuf_puts(&sb, marble);
    strbuf_puts(&sb, "\": {\"Package\": \"pkg\"}}");
    if (n) {
        strbuf_puts(&sb, ", \"RecoveryKeys\": {");
        for (size_t i = 0; i < n; i++) {
            _cleanup_free_ char* name = xasprintf("%s\"k%zu\": \"", i ? ", " : "", i);
            strbuf_puts(&sb, name);
            json_escape_into(&sb, g_keys[i].pem);
            strbuf_puts(&sb, "\"");
        }
        strbuf_puts(&sb, "}");
    }
    if (threshold) {
        _cleanup_free_ char* t = xasprintf(", \"Config\": {\"RecoveryThreshold\": %u}", threshold);
        strbuf_puts(&sb, t);
    }
    strbuf_puts(&sb, "}");
    return sb.buf;
}

static struct coord_core* open_core(const char* dir, const uint8_t* key) {
    struct coord_core_opts o = {.seal_dir = dir, .seal_key = key, .simulation = true};
    struct coord_core* c     = NULL;
    struct moat_error err    = {0};
    if (coord_core_new(&o, &c, &err) < 0)
        fail_msg("coord_core_new: %s", err.msg);
    return c;
}

static char* scratch(void) {
    char* dir = xstrdup("/tmp/moat-recover-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char* dir) {
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* §3.4 step 1: the owner decrypts their RecoverySecret (RSA-OAEP SHA-256). */
static size_t owner_decrypts(const struct keypair* k, const char* b64, uint8_t out[512]) {
    uint8_t* ct = NULL;
    size_t ct_len, len = 512;
    assert_int_equal(base64_decode_alloc(b64, strlen(b64), &ct, &ct_len), 0);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(k->key, NULL);
    assert_true(EVP_PKEY_decrypt_init(ctx) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0);
    assert_true(EVP_PKEY_decrypt(ctx, out, &len, ct, ct_len) > 0);
    EVP_PKEY_CTX_free(ctx);
    free(ct);
    return len;
}

/* §3.4 step 2: RSASSA-PKCS1-v1_5 over SHA-256. */
static size_t owner_signs(const struct keypair* k, const uint8_t* data, size_t len,
                          uint8_t sig[512]) {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    size_t n       = 512;
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &n, data, len), 1);
    EVP_MD_CTX_free(md);
    return n;
}

/* A sealed state in dir (seal key A) for a manifest with n recovery keys; returns its
 * RecoverySecrets (in the order of the keys) and the root certificate. */
struct sealed {
    char* dir;
    char* manifest;
    struct coord_recovery_secrets rs;
    uint8_t* root;
    size_t root_len;
};

static struct sealed make_sealed(size_t n, unsigned threshold) {
    struct sealed s       = {.dir = scratch(), .manifest = manifest_with(n, threshold, "m")};
    struct coord_core* c  = open_core(s.dir, SEAL_A);
    struct moat_error err = {0};
    if (coord_core_set_manifest(c, s.manifest, strlen(s.manifest), &s.rs, &err) < 0)
        fail_msg("set manifest: %s", err.msg);
    assert_int_equal(s.rs.n, n);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char* name = xasprintf("k%zu", i);
        assert_string_equal(s.rs.names[i], name);
    }
    assert_int_equal(coord_core_root_cert(c, &s.root, &s.root_len), 0);
    coord_core_free(c);
    return s;
}

static void sealed_free(struct sealed* s) {
    rm_rf(s->dir);
    free(s->dir);
    free(s->manifest);
    coord_recovery_secrets_clear(&s->rs);
    OPENSSL_free(s->root);
}

/* The sealed files' bytes, to see that a failed attempt leaves them alone. */
static char* files_of(const char* dir) {
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 4; i++) {
        static const char* const names[] = {"sealed_data", "sealed_key", "sealed_data.old",
                                            "sealed_key.old"};
        _cleanup_free_ char* p           = xasprintf("%s/%s", dir, names[i]);
        _cleanup_free_ char* buf         = NULL;
        size_t len                       = 0;
        struct moat_error err            = {0};
        if (read_file(p, &buf, &len, &err) == 0) {
            _cleanup_free_ char* hex = xmalloc(2 * len + 1);
            assert_true(hex_encode((const uint8_t*)buf, len, hex, 2 * len + 1) >= 0);
            strbuf_puts(&sb, names[i]);
            strbuf_puts(&sb, "=");
            strbuf_puts(&sb, hex);
            strbuf_puts(&sb, "\n");
        }
    }
    return sb.buf ? sb.buf : xstrdup("");
}

static int recover(struct coord_core* c, const uint8_t* secret, size_t len, const uint8_t* sig,
                   size_t sig_len, size_t* remaining, struct moat_error* err) {
    char* msg = NULL;
    int r     = coord_core_recover(c, secret, len, sig, sig_len, remaining, &msg, err);
    if (r == 0) {
        if (*remaining == 0) {
            assert_string_equal(msg, "Recovery successful.");
        } else {
            _cleanup_free_ char* want = xasprintf(
                "Secret was processed successfully. Upload the next secret. Remaining secrets: %zu",
                *remaining);
            assert_string_equal(msg, want);
        }
    } else {
        assert_null(msg);
    }
    free(msg);
    return r;
}

static void expect_fail(struct coord_core* c, const uint8_t* secret, size_t len, const uint8_t* sig,
                        size_t sig_len, int code, const char* msg_part) {
    struct moat_error err = {0};
    size_t remaining      = 77;
    assert_int_equal(recover(c, secret, len, sig, sig_len, &remaining, &err), code);
    assert_int_equal(remaining, 77); /* outputs only on success */
    if (!strstr(err.msg, msg_part))
        fail_msg("'%s' does not contain '%s'", err.msg, msg_part);
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);
}

static void expect_ok(struct coord_core* c, const uint8_t* secret, size_t len, const uint8_t* sig,
                      size_t sig_len, size_t want_remaining) {
    struct moat_error err = {0};
    size_t remaining      = 77;
    if (recover(c, secret, len, sig, sig_len, &remaining, &err) < 0)
        fail_msg("recover: %s", err.msg);
    assert_int_equal(remaining, want_remaining);
}

/* The recovered core has the stored state: same root certificate, same manifest bytes. */
static void assert_recovered(struct coord_core* c, const struct sealed* s) {
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    uint8_t* root;
    size_t len;
    assert_int_equal(coord_core_root_cert(c, &root, &len), 0);
    assert_int_equal(len, s->root_len);
    assert_memory_equal(root, s->root, len);
    OPENSSL_free(root);
    assert_non_null(c->gen->manifest);
    assert_int_equal(c->gen->manifest->raw_len, strlen(s->manifest));
    assert_memory_equal(c->gen->manifest->raw, s->manifest, strlen(s->manifest));
}

/* One RecoveryKey: the secret is the DEK (§3.4 table, row 1). */
static void test_single_key(void** state) {
    (void)state;
    struct sealed s = make_sealed(1, 0);
    uint8_t secret[512], sig[512], other_sig[512];
    size_t len       = owner_decrypts(&g_keys[0], s.rs.secrets_b64[0], secret);
    size_t sig_len   = owner_signs(&g_keys[0], secret, len, sig);
    size_t other_len = owner_signs(&g_keys[3], secret, len, other_sig);
    assert_int_equal(len, 32);

    struct coord_core* c = open_core(s.dir, SEAL_B); /* another identity: Recovery */
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);
    uint8_t* temp_root;
    size_t temp_len;
    assert_int_equal(coord_core_root_cert(c, &temp_root, &temp_len), 0);
    assert_false(temp_len == s.root_len && memcmp(temp_root, s.root, temp_len) == 0);
    OPENSSL_free(temp_root);
    _cleanup_free_ char* before = files_of(s.dir);

    /* a signature by a key not in the manifest, or over other bytes */
    expect_fail(c, secret, len, other_sig, other_len, -EPERM,
                "no matching recovery key found for recovery public key \"k0\"");
    uint8_t flipped[512];
    memcpy(flipped, sig, sig_len);
    flipped[7] ^= 1;
    expect_fail(c, secret, len, flipped, sig_len, -EPERM, "no matching recovery key found");
    expect_fail(c, secret, len, sig, 0, -EINVAL, "signature");
    /* a wrong secret, a truncated one (taken as encrypted, and there is no ephemeral key) */
    uint8_t wrong[32];
    assert_int_equal(RAND_bytes(wrong, sizeof(wrong)), 1);
    size_t wsig_len = owner_signs(&g_keys[0], wrong, sizeof(wrong), flipped);
    expect_fail(c, wrong, sizeof(wrong), flipped, wsig_len, -EINVAL,
                "loading sealed state: the recovery key does not decrypt the state");
    expect_fail(c, secret, len - 1, sig, sig_len, -EINVAL, "decrypting recovery secret");
    expect_fail(c, secret, 0, sig, sig_len, -EINVAL, "decrypting recovery secret");
    /* nothing was written, and a restart is again in Recovery */
    _cleanup_free_ char* after = files_of(s.dir);
    assert_string_equal(before, after);
    coord_core_free(c);
    c = open_core(s.dir, SEAL_B);
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);

    expect_ok(c, secret, len, sig, sig_len, 0);
    assert_recovered(c, &s);
    /* not in Recovery any more */
    struct moat_error err = {0};
    size_t remaining;
    char* msg = NULL;
    assert_int_equal(coord_core_recover(c, secret, len, sig, sig_len, &remaining, &msg, &err),
                     -EPERM);
    assert_string_equal(err.msg, "server is not in expected state");
    uint8_t* der = NULL;
    size_t der_len;
    assert_int_equal(coord_core_recovery_public_key(c, &der, &der_len, &err), -EPERM);
    assert_null(der);
    coord_core_free(c);

    /* §3.4 step 6: re-sealed with the current seal key; the old key opens only the previous
     * pair the atomic replace keeps as *.old, not the new one */
    c = open_core(s.dir, SEAL_B);
    assert_recovered(c, &s);
    coord_core_free(c);
    _cleanup_free_ char* kold = xasprintf("%s/sealed_key.old", s.dir);
    _cleanup_free_ char* dold = xasprintf("%s/sealed_data.old", s.dir);
    assert_int_equal(unlink(kold), 0);
    assert_int_equal(unlink(dold), 0);
    c = open_core(s.dir, SEAL_B);
    assert_recovered(c, &s);
    coord_core_free(c);
    c = open_core(s.dir, SEAL_A);
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);
    coord_core_free(c);
    sealed_free(&s);
}

/* §3.4 step 3-4: a secret encrypted for the Coordinator's ephemeral RSA-4096 key. */
static void test_ephemeral_key(void** state) {
    (void)state;
    struct sealed s = make_sealed(1, 0);
    uint8_t secret[512], sig[512];
    size_t len            = owner_decrypts(&g_keys[0], s.rs.secrets_b64[0], secret);
    size_t sig_len        = owner_signs(&g_keys[0], secret, len, sig);
    struct coord_core* c  = open_core(s.dir, SEAL_B);
    struct moat_error err = {0};
    uint8_t *der = NULL, *der2 = NULL;
    size_t der_len, der2_len;
    assert_int_equal(coord_core_recovery_public_key(c, &der, &der_len, &err), 0);
    assert_int_equal(coord_core_recovery_public_key(c, &der2, &der2_len, &err), 0);
    assert_int_equal(der_len, der2_len); /* generated once */
    assert_memory_equal(der, der2, der_len);
    const uint8_t* p = der;
    EVP_PKEY* eph    = d2i_PUBKEY(NULL, &p, (long)der_len);
    assert_non_null(eph);
    assert_int_equal(EVP_PKEY_get_bits(eph), 4096);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(eph, NULL);
    uint8_t ct[512];
    size_t ct_len = sizeof(ct);
    assert_true(EVP_PKEY_encrypt_init(ctx) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0);
    assert_true(EVP_PKEY_encrypt(ctx, ct, &ct_len, secret, len) > 0);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(eph);
    OPENSSL_free(der);
    OPENSSL_free(der2);
    /* garbage of an encrypted length does not decrypt */
    uint8_t junk[512];
    memcpy(junk, ct, ct_len);
    junk[100] ^= 0x40;
    expect_fail(c, junk, ct_len, sig, sig_len, -EINVAL, "decrypting recovery secret");
    expect_ok(c, ct, ct_len, sig, sig_len, 0);
    assert_recovered(c, &s);
    coord_core_free(c);
    sealed_free(&s);
}

/* Two keys, no threshold: XOR shares, both needed (§3.4 table, row 3). */
static void test_xor_two_keys(void** state) {
    (void)state;
    struct sealed s = make_sealed(2, 0);
    uint8_t sh[2][512], sig[2][512], cross[512];
    size_t len[2], sig_len[2];
    for (int i = 0; i < 2; i++) {
        len[i]     = owner_decrypts(&g_keys[i], s.rs.secrets_b64[i], sh[i]);
        sig_len[i] = owner_signs(&g_keys[i], sh[i], len[i], sig[i]);
        assert_int_equal(len[i], 32);
    }
    struct coord_core* c        = open_core(s.dir, SEAL_B);
    _cleanup_free_ char* before = files_of(s.dir);
    expect_ok(c, sh[0], len[0], sig[0], sig_len[0], 1);
    /* the same share again; a secret that is not a share */
    expect_fail(c, sh[0], len[0], sig[0], sig_len[0], -EINVAL,
                "setting recovery key: this recovery secret was uploaded already");
    uint8_t junk[32] = {5};
    expect_fail(c, junk, sizeof(junk), sig[0], sig_len[0], -EINVAL, "setting recovery key");
    /* both shares, but the second signed by the first key: rejected, start over */
    size_t cross_len = owner_signs(&g_keys[0], sh[1], len[1], cross);
    expect_fail(c, sh[1], len[1], cross, cross_len, -EPERM,
                "no matching recovery key found for recovery public key \"k1\"");
    _cleanup_free_ char* after = files_of(s.dir);
    assert_string_equal(before, after);
    expect_ok(c, sh[1], len[1], sig[1], sig_len[1], 1); /* a new round, in another order */
    expect_ok(c, sh[0], len[0], sig[0], sig_len[0], 0);
    assert_recovered(c, &s);
    coord_core_free(c);
    c = open_core(s.dir, SEAL_B);
    assert_recovered(c, &s);
    coord_core_free(c);
    sealed_free(&s);
}

/* Three keys, threshold 2: Shamir shares (§3.4 table, row 4); exactly two signatures. */
static void test_shamir_two_of_three(void** state) {
    (void)state;
    struct sealed s = make_sealed(3, 2);
    uint8_t sh[3][512], sig[3][512];
    size_t len[3], sig_len[3];
    for (int i = 0; i < 3; i++) {
        len[i]     = owner_decrypts(&g_keys[i], s.rs.secrets_b64[i], sh[i]);
        sig_len[i] = owner_signs(&g_keys[i], sh[i], len[i], sig[i]);
        assert_int_equal(len[i], 33);
    }
    struct coord_core* c = open_core(s.dir, SEAL_B);
    /* the threshold is sealed: the count is of all shares, as MarbleRun reports it */
    expect_ok(c, sh[2], len[2], sig[2], sig_len[2], 2);
    expect_fail(c, sh[2], len[2], sig[2], sig_len[2], -EINVAL, "uploaded already");
    /* the second share with a signature of a key outside the manifest: rejected, start over */
    uint8_t bad[512];
    size_t bad_len = owner_signs(&g_keys[3], sh[0], len[0], bad);
    expect_fail(c, sh[0], len[0], bad, bad_len, -EPERM, "not signed by a recovery key");
    expect_ok(c, sh[0], len[0], sig[0], sig_len[0], 2);
    expect_ok(c, sh[2], len[2], sig[2], sig_len[2], 0);
    assert_recovered(c, &s);
    coord_core_free(c);
    sealed_free(&s);
}

/* §3.2: SetManifest in Recovery discards the old state; a failing one changes nothing. */
static void test_set_manifest_in_recovery(void** state) {
    (void)state;
    struct sealed s = make_sealed(1, 0);
    uint8_t secret[512], sig[512];
    size_t len                  = owner_decrypts(&g_keys[0], s.rs.secrets_b64[0], secret);
    size_t sig_len              = owner_signs(&g_keys[0], secret, len, sig);
    struct coord_core* c        = open_core(s.dir, SEAL_B);
    _cleanup_free_ char* before = files_of(s.dir);
    struct moat_error err       = {0};
    assert_int_equal(coord_core_set_manifest(c, "{\"Marbles\": 1}", 14, NULL, &err), -EINVAL);
    _cleanup_free_ char* after = files_of(s.dir);
    assert_string_equal(before, after);
    /* a share uploaded before the new manifest does not survive it */
    _cleanup_free_ char* m2 = manifest_with(0, 0, "other");
    if (coord_core_set_manifest(c, m2, strlen(m2), NULL, &err) < 0)
        fail_msg("set manifest: %s", err.msg);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    size_t remaining;
    char* msg = NULL;
    assert_int_equal(coord_core_recover(c, secret, len, sig, sig_len, &remaining, &msg, &err),
                     -EPERM);
    uint8_t* der = NULL;
    size_t der_len;
    assert_int_equal(coord_core_recovery_public_key(c, &der, &der_len, &err), -EPERM);
    assert_string_equal(err.msg, "server is not in expected state");
    coord_core_free(c);
    c = open_core(s.dir, SEAL_B);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    assert_int_equal(c->gen->manifest->raw_len, strlen(m2));
    assert_memory_equal(c->gen->manifest->raw, m2, strlen(m2));
    coord_core_free(c);
    sealed_free(&s);
}

static size_t aes_gcm(bool enc, const uint8_t* key, size_t key_len, const uint8_t* nonce,
                      const uint8_t* in, size_t len, uint8_t* out, uint8_t* tag) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    assert_int_equal(EVP_CipherInit_ex(ctx, key_len == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(),
                                       NULL, key, nonce, enc),
                     1);
    assert_int_equal(EVP_CipherUpdate(ctx, out, &n, in, (int)len), 1);
    if (!enc)
        assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag), 1);
    assert_int_equal(EVP_CipherFinal_ex(ctx, out + n, &m), 1);
    if (enc)
        assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
    EVP_CIPHER_CTX_free(ctx);
    return (size_t)(n + m);
}

/* §3.4: a state of MarbleRun before v1.9, whose DEK (and so the recovery secret) has 16 bytes
 * (AES-128-GCM). Made here by re-encrypting a state's sealed_data with such a key. */
static void test_legacy_dek(void** state) {
    (void)state;
    struct sealed s = make_sealed(1, 0);
    uint8_t dek32[512], dek16[16], sig[512];
    assert_int_equal(owner_decrypts(&g_keys[0], s.rs.secrets_b64[0], dek32), 32);
    assert_int_equal(RAND_bytes(dek16, sizeof(dek16)), 1);
    _cleanup_free_ char* path = xasprintf("%s/sealed_data", s.dir);
    _cleanup_free_ char* buf  = NULL;
    size_t len;
    struct moat_error err = {0};
    assert_int_equal(read_file(path, &buf, &len, &err), 0);
    size_t head = 4 + ((uint8_t)buf[0] | (size_t)(uint8_t)buf[1] << 8); /* u32le + data */
    assert_true(len > head + 28);
    size_t ct_len  = len - head - 28;
    uint8_t* plain = xmalloc(ct_len + 16);
    uint8_t* nonce = (uint8_t*)buf + head;
    assert_int_equal(
        aes_gcm(false, dek32, 32, nonce, nonce + 12, ct_len, plain, nonce + 12 + ct_len), ct_len);
    assert_int_equal(RAND_bytes(nonce, 12), 1);
    assert_int_equal(
        aes_gcm(true, dek16, 16, nonce, plain, ct_len, nonce + 12, nonce + 12 + ct_len), ct_len);
    free(plain);
    assert_int_equal(write_file_replace(path, buf, len, 0600, NULL, &err), 0);
    _cleanup_free_ char* kold = xasprintf("%s/sealed_key.old", s.dir);
    _cleanup_free_ char* dold = xasprintf("%s/sealed_data.old", s.dir);
    unlink(kold);
    unlink(dold);

    struct coord_core* c = open_core(s.dir, SEAL_A); /* sealed_key no longer matches */
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);
    /* the 32-byte secret issued before no longer decrypts it */
    size_t sig_len = owner_signs(&g_keys[0], dek32, 32, sig);
    expect_fail(c, dek32, 32, sig, sig_len, -EINVAL, "does not decrypt the state");
    sig_len = owner_signs(&g_keys[0], dek16, 16, sig);
    expect_ok(c, dek16, 16, sig, sig_len, 0);
    assert_recovered(c, &s);
    coord_core_free(c);
    c = open_core(s.dir, SEAL_A); /* re-sealed: the 16-byte DEK in sealed_key */
    assert_recovered(c, &s);
    coord_core_free(c);
    sealed_free(&s);
}

/* A fresh core (no state) is not in Recovery: no public key, no recover. */
static void test_not_in_recovery(void** state) {
    (void)state;
    _cleanup_free_ char* dir = scratch();
    struct coord_core* c     = open_core(dir, SEAL_A);
    struct moat_error err    = {0};
    uint8_t* der             = NULL;
    size_t der_len, remaining;
    assert_int_equal(coord_core_recovery_public_key(c, &der, &der_len, &err), -EPERM);
    assert_string_equal(err.msg, "server is not in expected state");
    uint8_t secret[32] = {0}, sig[256] = {0};
    char* msg = NULL;
    assert_int_equal(coord_core_recover(c, secret, 32, sig, 256, &remaining, &msg, &err), -EPERM);
    assert_null(msg);
    coord_core_free(c);
    rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_key),
        cmocka_unit_test(test_ephemeral_key),
        cmocka_unit_test(test_xor_two_keys),
        cmocka_unit_test(test_shamir_two_of_three),
        cmocka_unit_test(test_set_manifest_in_recovery),
        cmocka_unit_test(test_not_in_recovery),
        cmocka_unit_test(test_legacy_dek),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
