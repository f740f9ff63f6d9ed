/* SPDX-License-Identifier: Apache-2.0 */
/* Crypto and disk primitives of Gramine's encrypted files: see pf_internal.h. */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <unistd.h>

#include "pf_internal.h"

bool (*pf_insecure__io_hook)(void);

/* ---------------------------------------------------------------------------------------- */
/* Crypto: AES-128-GCM with a zero IV and no AAD; the metadata key by AES-128-CMAC KDF         */

/* AES-128-GCM, fetched once (an EVP_aes_128_gcm() init looks the algorithm up by name every
 * time, which costs more than encrypting a node). */
static EVP_CIPHER* gcm_cipher(void) {
    static EVP_CIPHER* _Atomic g_cipher;
    EVP_CIPHER* c = atomic_load(&g_cipher);
    if (c)
        return c;
    EVP_CIPHER* fetched = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    if (!fetched)
        return NULL;
    if (!atomic_compare_exchange_strong(&g_cipher, &c, fetched)) {
        EVP_CIPHER_free(fetched); /* another thread was first */
        return c;
    }
    return fetched;
}

/* One node or the metadata: `ctx` is the file's reusable context (NULL: a temporary one). */
enum pf_status pfi_gcm(EVP_CIPHER_CTX* ctx, bool encrypt, const uint8_t key[PF_KEY_SIZE],
                       const uint8_t* in, size_t len, uint8_t* out, uint8_t mac[PF_MAC_SIZE]) {
    static const uint8_t iv[12] = {0};
    EVP_CIPHER* cipher          = gcm_cipher();
    EVP_CIPHER_CTX* own         = ctx ? NULL : EVP_CIPHER_CTX_new();
    if (!ctx)
        ctx = own;
    int n = 0, ok = ctx && cipher;
    enum pf_status s;
    if (encrypt) {
        ok = ok && EVP_EncryptInit_ex2(ctx, cipher, key, iv, NULL) &&
             EVP_EncryptUpdate(ctx, out, &n, in, (int)len) &&
             EVP_EncryptFinal_ex(ctx, out + n, &n) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, PF_MAC_SIZE, mac);
        s = ok ? PF_SUCCESS : PF_CRYPTO_ERROR;
    } else {
        ok = ok && EVP_DecryptInit_ex2(ctx, cipher, key, iv, NULL) &&
             EVP_DecryptUpdate(ctx, out, &n, in, (int)len) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PF_MAC_SIZE, mac);
        s = !ok                                     ? PF_CRYPTO_ERROR
            : EVP_DecryptFinal_ex(ctx, out + n, &n) ? PF_SUCCESS
                                                    : PF_MAC_MISMATCH;
    }
    EVP_CIPHER_CTX_free(own);
    return s;
}

/* NIST SP 800-108 counter mode, one block: AES-128-CMAC(KDK, 1 | label | nonce | 128). */
enum pf_status pfi_metadata_key(const uint8_t kdk[PF_KEY_SIZE], const uint8_t nonce[32],
                                uint8_t out[PF_KEY_SIZE]) {
    uint8_t input[4 + 64 + 32 + 4] = {0};
    uint32_t counter = 1, bits = 128; /* little-endian on disk and here */
    memcpy(input, &counter, 4);
    memcpy(input + 4, METADATA_LABEL, sizeof(METADATA_LABEL) - 1);
    memcpy(input + 68, nonce, 32);
    memcpy(input + 100, &bits, 4);
    EVP_MAC* mac        = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX* ctx    = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char cipher[]       = "AES-128-CBC";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t n = 0;
    int ok   = ctx && EVP_MAC_init(ctx, kdk, PF_KEY_SIZE, params) &&
             EVP_MAC_update(ctx, input, sizeof(input)) &&
             EVP_MAC_final(ctx, out, &n, PF_KEY_SIZE) && n == PF_KEY_SIZE;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    OPENSSL_cleanse(input, sizeof(input));
    return ok ? PF_SUCCESS : PF_CRYPTO_ERROR;
}

/* Decrypts a node 0 (v1 or v2 layout, reference §4.2-4.3) into `meta`. */
enum pf_status pfi_decrypt_metadata(const uint8_t kdk[PF_KEY_SIZE], const uint8_t* node,
                                    uint8_t meta[ENCRYPTED_SIZE]) {
    uint8_t key[PF_KEY_SIZE];
    if (memcmp(node, PF_FILE_ID, 8) != 0)
        return PF_INVALID_HEADER;
    if (node[8] != 1 && node[8] != 2)
        return PF_INVALID_VERSION;
    enum pf_status s = pfi_metadata_key(kdk, node + 10, key);
    if (s == PF_SUCCESS)
        s = pfi_gcm(NULL, false, key, node + (node[8] == 1 ? HEADER_V1 : HEADER_V2), ENCRYPTED_SIZE,
                    meta, (uint8_t*)node + 42);
    OPENSSL_cleanse(key, sizeof(key));
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* The host file                                                                              */

/* Every change to the host or recovery file (write, fsync, truncate, create) asks here first,
 * so that a test can stop a flush between any two steps as a crash would. */
bool pfi_io_allowed(struct pf_file* pf) {
    if (pf->failed)
        return false;
    if (pf_insecure__io_hook && pf_insecure__io_hook()) {
        pf->failed = PF_WRITE_TO_DISK_FAILED;
        return false;
    }
    return true;
}

enum pf_status pfi_read_node(const struct pf_file* pf, uint64_t physical, uint8_t* out) {
    ssize_t n = pread(pf->fd, out, PF_NODE_SIZE, (off_t)(physical * PF_NODE_SIZE));
    return n == PF_NODE_SIZE ? PF_SUCCESS : n < 0 ? PF_CALLBACK_FAILED : PF_CORRUPTED;
}

enum pf_status pfi_write_at(struct pf_file* pf, int fd, const uint8_t* in, size_t len,
                            uint64_t off) {
    if (!pfi_io_allowed(pf))
        return PF_WRITE_TO_DISK_FAILED;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, in + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return PF_WRITE_TO_DISK_FAILED;
        done += (size_t)n;
    }
    return PF_SUCCESS;
}

enum pf_status pfi_write_node(struct pf_file* pf, uint64_t physical, const uint8_t* in) {
    return pfi_write_at(pf, pf->fd, in, PF_NODE_SIZE, physical * PF_NODE_SIZE);
}

enum pf_status pfi_sync_fd(struct pf_file* pf, int fd) {
    return pfi_io_allowed(pf) && fsync(fd) == 0 ? PF_SUCCESS : PF_WRITE_TO_DISK_FAILED;
}

enum pf_status pfi_truncate_fd(struct pf_file* pf, uint64_t size) {
    return pfi_io_allowed(pf) && ftruncate(pf->fd, (off_t)size) == 0 ? PF_SUCCESS
                                                                     : PF_WRITE_TO_DISK_FAILED;
}
