/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat example: an app gets a secret from a key broker that only it can unwrap.
 *
 * Inside the sandbox it makes an RSA-3072 key pair, writes the public half to
 * /dev/amber/userdata in the key-release layout (4-byte little-endian exponent, then the modulus
 * little-endian, as SGX enclaves send it: reference/attestation.md §4.1), and reads
 * /dev/amber/secret: moat gets a token whose quote binds that public key, presents it to the
 * key broker, and hands back its answer {"wrapped_key", "wrapped_swk"} (§4.3). The app unwraps:
 * RSA-OAEP-SHA-256 of the 32-byte key (SWK), then AES-256-GCM of the secret under it. The
 * private key never leaves the process.
 *
 * usage: amber_secret OUT   (the secret's SHA-256 goes to OUT, for the host to compare)
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SZ 65536

static int read_all(const char* path, char* buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        int e = r < 0 ? -errno : (int)n;
        close(fd);
        buf[n] = '\0';
        return e;
    }
}

static int write_str(const char* path, const char* s) {
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, s, strlen(s));
    int e     = w == (ssize_t)strlen(s) ? 0 : -errno;
    close(fd);
    return e;
}

static void status(void) {
    static char buf[16384];
    if (read_all("/dev/amber/status", buf, sizeof(buf)) >= 0)
        fprintf(stderr, "/dev/amber/status:\n%s", buf);
}

/* The value of "name" in a flat JSON object of strings (the broker's answer), malloc'd. */
static char* json_str(const char* json, const char* name) {
    char key[64];
    snprintf(key, sizeof(key), "\"%s\"", name);
    const char* p = strstr(json, key);
    if (!p || !(p = strchr(p + strlen(key), '"')))
        return NULL;
    const char* e = strchr(++p, '"');
    return e ? strndup(p, (size_t)(e - p)) : NULL;
}

static unsigned char* unb64(const char* s, int* len) {
    size_t n           = strlen(s);
    unsigned char* out = malloc(n * 3 / 4 + 3);
    int r              = EVP_DecodeBlock(out, (const unsigned char*)s, (int)n);
    if (r < 0) {
        free(out);
        return NULL;
    }
    r -= (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    *len = r;
    return out;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: amber_secret OUT\n");
        return 2;
    }
    EVP_PKEY* key = EVP_RSA_gen(3072);
    BIGNUM* n     = NULL;
    if (!key || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n)) {
        fprintf(stderr, "cannot make an RSA key\n");
        return 1;
    }
    /* 4-byte LE exponent 65537 ‖ modulus little-endian (SGX's layout) */
    unsigned char held[4 + 384] = {0x01, 0x00, 0x01, 0x00};
    BN_bn2lebinpad(n, held + 4, 384);
    BN_free(n);
    char b64[600];
    EVP_EncodeBlock((unsigned char*)b64, held, sizeof(held));
    int r = write_str("/dev/amber/userdata", b64);
    if (r < 0) {
        fprintf(stderr, "cannot write /dev/amber/userdata: %s\n", strerror(-r));
        return 1;
    }
    static char answer[BUF_SZ];
    if ((r = read_all("/dev/amber/secret", answer, sizeof(answer))) < 0) {
        fprintf(stderr, "cannot read /dev/amber/secret: %s\n", strerror(-r));
        status();
        return 1;
    }
    char *wk64 = json_str(answer, "wrapped_key"), *swk64 = json_str(answer, "wrapped_swk");
    int wk_len = 0, swk_len = 0;
    unsigned char* wk  = wk64 ? unb64(wk64, &wk_len) : NULL;
    unsigned char* swk = swk64 ? unb64(swk64, &swk_len) : NULL;
    if (!wk || !swk || wk_len < 12 + 12 + 16) {
        fprintf(stderr, "the broker's answer is not {\"wrapped_key\", \"wrapped_swk\"}: %s\n",
                answer);
        return 1;
    }
    /* the SWK: RSA-OAEP, SHA-256 and MGF1-SHA-256, no label */
    unsigned char aes[512];
    size_t aes_len    = sizeof(aes);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, NULL);
    if (!ctx || EVP_PKEY_decrypt_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_decrypt(ctx, aes, &aes_len, swk, (size_t)swk_len) <= 0 || aes_len != 32) {
        fprintf(stderr, "wrapped_swk does not decrypt with this app's private key\n");
        return 1;
    }
    /* the secret: u32 LE iv_len ‖ u32 LE tag_len ‖ u32 LE ct_len ‖ IV ‖ ciphertext ‖ tag */
    unsigned iv_len  = wk[0] | wk[1] << 8 | wk[2] << 16 | (unsigned)wk[3] << 24;
    unsigned tag_len = wk[4] | wk[5] << 8 | wk[6] << 16 | (unsigned)wk[7] << 24;
    unsigned ct_len  = wk[8] | wk[9] << 8 | wk[10] << 16 | (unsigned)wk[11] << 24;
    if (iv_len != 12 || tag_len != 16 || ct_len < tag_len ||
        (size_t)wk_len != 12 + (size_t)iv_len + ct_len) {
        fprintf(stderr, "wrapped_key's header does not match its length\n");
        return 1;
    }
    const unsigned char* iv = wk + 12;
    const unsigned char* ct = iv + iv_len;
    size_t plain_len        = ct_len - tag_len;
    unsigned char* plain    = malloc(plain_len + 1);
    EVP_CIPHER_CTX* c       = EVP_CIPHER_CTX_new();
    int out = 0, fin = 0;
    if (!c || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, aes, iv) != 1 ||
        EVP_DecryptUpdate(c, plain, &out, ct, (int)plain_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void*)(ct + plain_len)) != 1 ||
        EVP_DecryptFinal_ex(c, plain + out, &fin) != 1) {
        fprintf(stderr, "wrapped_key does not decrypt with the unwrapped SWK\n");
        return 1;
    }
    unsigned char digest[32];
    EVP_Digest(plain, plain_len, digest, NULL, EVP_sha256(), NULL);
    FILE* f = fopen(argv[1], "w");
    if (!f)
        return 1;
    for (int i = 0; i < 32; i++)
        fprintf(f, "%02x", digest[i]);
    fprintf(f, "\n");
    fclose(f);
    printf("amber_secret: unwrapped a %zu-byte secret from the key broker (SHA-256 in %s)\n",
           plain_len, argv[1]);
    EVP_CIPHER_CTX_free(c);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return 0;
}
