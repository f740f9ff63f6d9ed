/* SPDX-License-Identifier: Apache-2.0 */
/* What the Coordinator's listeners and GET endpoints read from the core (reference/marblerun.md
 * §3.3 "TLS cert per listener", §3.5 GET /quote and GET /manifest). */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>

#include "ca.h"
#include "core_internal.h"

int coord_core_tls_credentials(struct coord_core* c, bool mesh, X509** ret_cert,
                               EVP_PKEY** ret_key) {
    pthread_mutex_lock(&c->lock);
    X509* cert    = mesh ? c->gen->ca->marble_root_cert : c->gen->ca->root_cert;
    EVP_PKEY* key = mesh ? c->gen->ca->intermediate_key : c->gen->ca->root_key;
    X509_up_ref(cert);
    EVP_PKEY_up_ref(key);
    pthread_mutex_unlock(&c->lock);
    *ret_cert = cert;
    *ret_key  = key;
    return 0;
}

int coord_core_cert_chain_pem(struct coord_core* c, char** ret, size_t* ret_len) {
    uint8_t *inter = NULL, *root = NULL;
    pthread_mutex_lock(&c->lock);
    int ni = i2d_X509(c->gen->ca->intermediate_cert, &inter);
    int nr = i2d_X509(c->gen->ca->root_cert, &root);
    pthread_mutex_unlock(&c->lock);
    if (ni <= 0 || nr <= 0) {
        OPENSSL_free(inter);
        OPENSSL_free(root);
        return -ENOMEM;
    }
    size_t li = 0, lr = 0;
    _cleanup_free_ char* pi = core_pem("CERTIFICATE", inter, (size_t)ni, &li);
    _cleanup_free_ char* pr = core_pem("CERTIFICATE", root, (size_t)nr, &lr);
    OPENSSL_free(inter);
    OPENSSL_free(root);
    char* out = xmalloc(li + lr + 1);
    memcpy(out, pi, li);
    memcpy(out + li, pr, lr);
    out[li + lr] = '\0';
    *ret         = out;
    *ret_len     = li + lr;
    return 0;
}

/* ECDSA-P384-ASN.1(root key, sha256(raw)) (§3.3 "Manifest signature"). */
static int sign_manifest(EVP_PKEY* key, const uint8_t* raw, size_t len, uint8_t** ret,
                         size_t* ret_len) {
    uint8_t digest[32];
    if (sha256_buf(raw, len, digest) < 0)
        return -ENOMEM;
    EVP_PKEY_CTX* pctx = EVP_PKEY_CTX_new(key, NULL);
    if (!pctx)
        return -ENOMEM;
    int r      = -EIO;
    size_t n   = 0;
    uint8_t* s = NULL;
    if (EVP_PKEY_sign_init(pctx) == 1 && EVP_PKEY_sign(pctx, NULL, &n, digest, 32) == 1) {
        s = xmalloc(n);
        if (EVP_PKEY_sign(pctx, s, &n, digest, 32) == 1) {
            *ret     = s;
            *ret_len = n;
            s        = NULL;
            r        = 0;
        }
    }
    free(s);
    EVP_PKEY_CTX_free(pctx);
    return r;
}

int coord_core_manifest_info(struct coord_core* c, struct coord_manifest_info* ret) {
    *ret = (struct coord_manifest_info){0};
    pthread_mutex_lock(&c->lock);
    int r = 0;
    if (c->gen->manifest) {
        ret->raw     = xmemdup(c->gen->manifest->raw, c->gen->manifest->raw_len);
        ret->raw_len = c->gen->manifest->raw_len;
        memcpy(ret->fingerprint, c->gen->manifest->fingerprint, sizeof(ret->fingerprint));
        /* kept per manifest (by fingerprint): GET /manifest returns the same signature */
        if (!c->manifest_sig || strcmp(c->manifest_sig_fp, c->gen->manifest->fingerprint) != 0) {
            free(c->manifest_sig);
            c->manifest_sig = NULL;
            r               = sign_manifest(c->gen->ca->root_key, c->gen->manifest->raw,
                                            c->gen->manifest->raw_len, &c->manifest_sig, &c->manifest_sig_len);
            memcpy(c->manifest_sig_fp, c->gen->manifest->fingerprint, sizeof(c->manifest_sig_fp));
        }
        if (r == 0) {
            ret->signature     = xmemdup(c->manifest_sig, c->manifest_sig_len);
            ret->signature_len = c->manifest_sig_len;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (r < 0)
        coord_manifest_info_clear(ret);
    return r;
}

void coord_manifest_info_clear(struct coord_manifest_info* i) {
    free(i->raw);
    free(i->signature);
    *i = (struct coord_manifest_info){0};
}
