/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 over OpenSSL's EVP interface (uses SHA-NI where the CPU has it). */
#include <openssl/evp.h>
#include <time.h>

#include "common.h"

int sha256_init(struct sha256_ctx* ctx) {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    if (!md)
        return -ENOMEM;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return -EIO;
    }
    ctx->md = md;
    return 0;
}

int sha256_update(struct sha256_ctx* ctx, const void* data, size_t len) {
    return EVP_DigestUpdate(ctx->md, data, len) == 1 ? 0 : -EIO;
}

int sha256_final(struct sha256_ctx* ctx, uint8_t out[SHA256_DIGEST_SIZE]) {
    unsigned int n = 0;
    int ok         = EVP_DigestFinal_ex(ctx->md, out, &n) == 1 && n == SHA256_DIGEST_SIZE;
    sha256_ctx_free(ctx);
    return ok ? 0 : -EIO;
}

void sha256_ctx_free(struct sha256_ctx* ctx) {
    EVP_MD_CTX_free(ctx->md);
    ctx->md = NULL;
}

int sha256_buf(const void* data, size_t len, uint8_t out[SHA256_DIGEST_SIZE]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

int sha256_fd(int fd, uint8_t out[SHA256_DIGEST_SIZE]) {
    enum { BUF_SIZE = 1 << 20 };
    struct sha256_ctx ctx;
    int ret = sha256_init(&ctx);
    if (ret < 0)
        return ret;
    _cleanup_free_ uint8_t* buf = xmalloc(BUF_SIZE);
    for (;;) {
        ssize_t n = read(fd, buf, BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            sha256_ctx_free(&ctx);
            return ret;
        }
        if (n == 0)
            break;
        ret = sha256_update(&ctx, buf, (size_t)n);
        if (ret < 0) {
            sha256_ctx_free(&ctx);
            return ret;
        }
    }
    return sha256_final(&ctx, out);
}

uint64_t time_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
