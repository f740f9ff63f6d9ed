/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recovery of a sealed state that no longer unseals (reference/marblerun.md §3.2, §3.4 "DEK and
 * recovery keys", steps 1-6; MarbleRun's clientapi.Recover / RecoveryPublicKey and
 * recovery/multi.go): the ephemeral key, the uploaded secrets and their signatures, and the
 * way back to the stored state.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "recovery.h"

#define MAX_UPLOADS 255 /* recovery.c's bound on shares */
#define MAX_SIG_BYTES                                                           \
    16384 /* RSA-16384 and below; bounds what an anonymous caller makes us keep \
           */

/* One accepted secret (decrypted) and the signature its uploader sent with it
 * (MarbleRun's recoverySignatureCache). */
struct upload {
    uint8_t secret[RECOVERY_DEK_SIZE + 1];
    size_t len;
    uint8_t* sig;
    size_t sig_len;
};

struct core_recovery {
    EVP_PKEY* ephemeral; /* RSA-4096, for secrets encrypted in transit (§3.4 step 3) */
    struct recovery_session* session;
    size_t n_uploads;
    struct upload uploads[MAX_UPLOADS];
};

static void uploads_wipe(struct core_recovery* r) {
    for (size_t i = 0; i < r->n_uploads; i++) {
        free(r->uploads[i].sig);
        OPENSSL_cleanse(&r->uploads[i], sizeof(r->uploads[i]));
    }
    r->n_uploads = 0;
}

/* Starts the collection of secrets over (MarbleRun resets it once all secrets were in). */
static void session_reset(struct core_recovery* r) {
    recovery_session_free(r->session);
    r->session = NULL;
    uploads_wipe(r);
}

void core_recovery_free(struct core_recovery* r) {
    if (!r)
        return;
    session_reset(r);
    EVP_PKEY_free(r->ephemeral);
    free(r);
}

static struct core_recovery* recovery_of(struct coord_core* c) {
    if (!c->recovery)
        c->recovery = xcalloc(1, sizeof(*c->recovery));
    return c->recovery;
}

static int ephemeral_key(struct core_recovery* r, struct moat_error* err) {
    if (!r->ephemeral)
        r->ephemeral = EVP_RSA_gen(4096);
    return r->ephemeral ? 0
                        : moat_error_set(err, -EIO,
                                         "getting ephemeral public key: cannot generate an RSA "
                                         "key");
}

int coord_core_recovery_public_key(struct coord_core* c, uint8_t** ret_der, size_t* ret_len,
                                   struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    int r                     = c->state == COORD_STATE_RECOVERY
                                    ? 0
                                    : moat_error_set(err, -EPERM, "server is not in expected state");
    struct core_recovery* rec = r == 0 ? recovery_of(c) : NULL;
    if (r == 0)
        r = ephemeral_key(rec, err);
    uint8_t* der = NULL;
    int n        = r == 0 ? i2d_PUBKEY(rec->ephemeral, &der) : 0;
    if (r == 0 && n <= 0)
        r = moat_error_set(err, -EIO, "marshalling ephemeral public key");
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    *ret_der = der;
    *ret_len = (size_t)n;
    return 0;
}

/* §3.4 step 4: a secret of another length than 16, 32 or 33 bytes was encrypted for the
 * ephemeral key (RSA-OAEP SHA-256). out has room for an RSA-4096 block. */
static int decrypt_secret(struct core_recovery* r, const uint8_t* in, size_t len, uint8_t out[512],
                          size_t* ret_len, struct moat_error* err) {
    if (!r->ephemeral)
        return moat_error_set(err, -EINVAL,
                              "decrypting recovery secret: ephemeral secret key not set");
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(r->ephemeral, NULL);
    size_t n          = 512;
    int ok            = ctx && EVP_PKEY_decrypt_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) > 0 &&
             EVP_PKEY_decrypt(ctx, out, &n, in, len) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return moat_error_set(err, -EINVAL,
                              "decrypting recovery secret: the secret has %zu bytes and is not "
                              "encrypted for the ephemeral key",
                              len);
    *ret_len = n;
    return 0;
}

static void upload_keep(struct core_recovery* r, const uint8_t* secret, size_t len,
                        const uint8_t* sig, size_t sig_len) {
    struct upload* u = &r->uploads[r->n_uploads++];
    memcpy(u->secret, secret, len);
    u->len     = len;
    u->sig     = xmalloc(sig_len);
    u->sig_len = sig_len;
    memcpy(u->sig, sig, sig_len);
}

/* §3.4 step 5: one signature per RecoveryKey, or exactly threshold many for a Shamir split;
 * each uploaded secret signed by a different key of the sealed manifest. */
static int verify_signatures(const struct coord_manifest* m, const struct core_recovery* r,
                             struct moat_error* err) {
    size_t keys     = m->n_recovery_keys;
    uint64_t thr    = m->config.recovery_threshold;
    size_t required = keys > 1 && thr > 0 && thr < keys ? (size_t)thr : keys;
    if (r->n_uploads != required)
        return moat_error_set(err, -EPERM,
                              "recovery keys in manifest do not match the keys used for recovery: "
                              "expected %zu, got %zu",
                              required, r->n_uploads);
    bool used[MAX_UPLOADS] = {false};
    for (size_t k = 0; k < keys; k++) {
        const struct coord_kv* key = &m->recovery_keys[k];
        bool found                 = false;
        for (size_t i = 0; !found && i < r->n_uploads; i++) {
            const struct upload* u = &r->uploads[i];
            if (!used[i] &&
                recovery_verify_signature(key->value, u->secret, u->len, u->sig, u->sig_len) == 0)
                found = used[i] = true;
        }
        if (!found && required == keys)
            return moat_error_set(err, -EPERM,
                                  "no matching recovery key found for recovery public key \"%s\"",
                                  key->name);
    }
    for (size_t i = 0; i < r->n_uploads; i++)
        if (!used[i])
            return moat_error_set(err, -EPERM,
                                  "recovery secret %zu of %zu is not signed by a recovery key of "
                                  "the manifest (or by one that signed another secret)",
                                  i + 1, r->n_uploads);
    return 0;
}

/* The state as coord_core_new loads it; on failure the core is as before (Recovery, its
 * temporary CA and root secret). */
static int restore_recovered(struct coord_core* c, struct moat_error* err) {
    /* in Recovery no activation holds a reference to the temporary generation */
    struct core_gen* temp = c->gen;
    c->gen                = core_gen_new();
    int r                 = core_restore(c, err);
    if (r < 0) {
        core_gen_unref(c->gen);
        c->gen = temp;
        moat_secret_set_clear(&c->user_secrets);
        c->state = COORD_STATE_RECOVERY;
    } else {
        core_gen_unref(temp);
        c->ca_generation++;
    }
    return r;
}

/* §3.4 steps 5-6 with a DEK that decrypts the sealed state (now loaded in the store). */
static int finish(struct coord_core* c, struct moat_error* err) {
    const uint8_t* raw;
    size_t len;
    _cleanup_coord_manifest_ struct coord_manifest* m = NULL;
    int r                                             = 0;
    if (store_get(c->store, "manifest", &raw, &len) < 0)
        r = moat_error_set(err, -EBADMSG, "loading manifest from store: the state has none");
    else if (coord_manifest_parse(raw, len, &m, err) < 0)
        r = moat_error_prefix(err, "loading manifest from store");
    if (r == 0)
        r = verify_signatures(m, c->recovery, err);
    if (r == 0)
        r = restore_recovered(c, err);
    if (r < 0)
        return r;
    /* as MarbleRun: the recovered state is usable even when it cannot be re-sealed */
    struct moat_error serr = {0};
    if (store_reseal(c->store, &serr) < 0)
        log_warning(
            "coordinator: could not seal the encryption key after recovery (%s). A restart will "
            "require another recovery",
            serr.msg);
    return 0;
}

static int session_of(struct coord_core* c, struct core_recovery* rec, struct moat_error* err) {
    if (rec->session)
        return 0;
    _cleanup_free_ char* rd = NULL;
    int r                   = store_read_recovery_data(c->store, &rd, err);
    if (r < 0)
        return moat_error_prefix(err, "setting recovery key");
    /* the threshold is in the sealed manifest: unknown until the state decrypts */
    rec->session = recovery_session_new(rd, 0, err);
    return rec->session ? 0 : moat_error_prefix(err, "setting recovery key");
}

static char* progress_message(size_t remaining) {
    if (remaining == 0)
        return xstrdup("Recovery successful.");
    return xasprintf(
        "Secret was processed successfully. Upload the next secret. Remaining "
        "secrets: %zu",
        remaining);
}

/* Adds one decrypted secret; 0 with *ret_remaining, or an error. */
static int recover_locked(struct coord_core* c, const uint8_t* secret, size_t len,
                          const uint8_t* sig, size_t sig_len, size_t* ret_remaining,
                          struct moat_error* err) {
    struct core_recovery* rec = recovery_of(c);
    int r                     = session_of(c, rec, err);
    if (r < 0)
        return r;
    uint8_t dek[RECOVERY_DEK_SIZE];
    size_t remaining = 0;
    if (rec->n_uploads >= MAX_UPLOADS)
        session_reset(rec); /* cannot happen: the session takes at most 255 shares */
    r = recovery_session_add(rec->session, secret, len, dek, &remaining, err);
    if (r < 0)
        return moat_error_prefix(err, "setting recovery key");
    upload_keep(rec, secret, len, sig, sig_len);
    size_t uploaded, total;
    recovery_session_progress(rec->session, &uploaded, &total);
    bool shamir = len == RECOVERY_DEK_SIZE + 1;
    if (remaining > 0) {
        /* MarbleRun counts Shamir shares against all of them: the threshold is sealed */
        *ret_remaining = shamir ? total - uploaded : remaining;
        return 0;
    }
    size_t dek_len = shamir ? RECOVERY_DEK_SIZE : len;
    r              = store_load_with_dek(c->store, dek, dek_len, err);
    OPENSSL_cleanse(dek, sizeof(dek));
    if (r < 0 && shamir && uploaded < total) {
        /* too few shares for the threshold: the next one may do (multi.go shamirRecover) */
        moat_error_clear(err);
        *ret_remaining = total - uploaded;
        return 0;
    }
    if (r < 0) {
        session_reset(rec);
        moat_error_prefix(err, "loading sealed state");
        if (r == -EBADMSG) /* a wrong secret, not a broken state */
            r = err->code = -EINVAL;
        return r;
    }
    r = finish(c, err);
    if (r < 0) {
        store_unload(c->store);
        session_reset(rec);
        return r;
    }
    core_recovery_free(c->recovery);
    c->recovery    = NULL;
    *ret_remaining = 0;
    return 0;
}

int coord_core_recover(struct coord_core* c, const uint8_t* secret, size_t len, const uint8_t* sig,
                       size_t sig_len, size_t* ret_remaining, char** ret_message,
                       struct moat_error* err) {
    if (sig_len == 0 || sig_len > MAX_SIG_BYTES)
        return moat_error_set(err, -EINVAL,
                              "recovery secret signature: %zu bytes, expected an RSA "
                              "PKCS#1 v1.5 signature",
                              sig_len);
    pthread_mutex_lock(&c->lock);
    int r = c->state == COORD_STATE_RECOVERY
                ? 0
                : moat_error_set(err, -EPERM, "server is not in expected state");
    uint8_t plain[512];
    size_t plain_len = len;
    /* §3.4 step 4: 16 (legacy DEK), 32 (DEK or XOR share), 33 (Shamir share) are plain */
    bool encrypted =
        len != RECOVERY_LEGACY_DEK_SIZE && len != RECOVERY_DEK_SIZE && len != RECOVERY_DEK_SIZE + 1;
    if (r == 0 && encrypted)
        r = decrypt_secret(recovery_of(c), secret, len, plain, &plain_len, err);
    else if (r == 0)
        memcpy(plain, secret, len);
    size_t remaining = 0;
    if (r == 0)
        r = recover_locked(c, plain, plain_len, sig, sig_len, &remaining, err);
    OPENSSL_cleanse(plain, sizeof(plain));
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        return r;
    if (remaining == 0)
        log_warning("coordinator: recovery successful: the sealed state was loaded and re-sealed");
    *ret_remaining = remaining;
    *ret_message   = progress_message(remaining);
    return 0;
}
