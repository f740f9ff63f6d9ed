/* SPDX-License-Identifier: Apache-2.0 */
/* Evidence providers and sealing keys: see provider.h. */
#include "provider.h"

#include <fcntl.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "tsm.h"

struct attest_provider {
    enum attest_kind kind;
    struct sim_platform* sim;
    char* tsm_root;
    char* describe;
};

static char* data_home_path(const char* env, const char* name) {
    const char* v = getenv(env);
    if (v && *v)
        return xstrdup(v);
    const char* xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg)
        return xasprintf("%s/moat/%s", xdg, name);
    const char* home = getenv("HOME");
    return xasprintf("%s/.local/share/moat/%s", home && *home ? home : ".", name);
}

char* attest_default_sim_dir(void) {
    return data_home_path("MOAT_SIM_DIR", "sim");
}

char* attest_default_secret_path(void) {
    return data_home_path("MOAT_MACHINE_SECRET", "machine.key");
}

int attest_provider_open(const char* sim_dir, const char* tsm_root, struct attest_provider** ret,
                         struct moat_error* err) {
    struct attest_provider* p   = xcalloc(1, sizeof(*p));
    _cleanup_free_ char* dir    = sim_dir ? xstrdup(sim_dir) : attest_default_sim_dir();
    _cleanup_free_ char* params = path_join(dir, "platform.json");
    if (tsm_available(tsm_root)) {
        p->kind     = ATTEST_TSM;
        p->tsm_root = xstrdup(tsm_root ? tsm_root : TSM_ROOT);
        p->describe = xasprintf("configfs-tsm (%s): the confidential VM's hardware", p->tsm_root);
    } else if (access(params, F_OK) == 0) {
        int r = sim_load(dir, &p->sim, err);
        if (r < 0) {
            attest_provider_free(p);
            return r;
        }
        p->kind     = ATTEST_SIM;
        p->describe = xasprintf(
            "sim (SIMULATED quotes signed by %s: they prove nothing about "
            "hardware)",
            dir);
    } else {
        p->describe = xasprintf(
            "none (no configfs-tsm, no simulated platform in %s: "
            "'moat attest init' makes one)",
            dir);
    }
    *ret = p;
    return 0;
}

void attest_provider_free(struct attest_provider* p) {
    if (!p)
        return;
    sim_free(p->sim);
    free(p->tsm_root);
    free(p->describe);
    free(p);
}

enum attest_kind attest_provider_kind(const struct attest_provider* p) {
    return p ? p->kind : ATTEST_NONE;
}

const char* attest_provider_describe(const struct attest_provider* p) {
    return p ? p->describe : "none";
}

int attest_provider_quote(struct attest_provider* p, const struct attest_identity* id,
                          const uint8_t report_data[64], uint8_t** ret, size_t* ret_len,
                          struct moat_error* err) {
    if (!p || p->kind == ATTEST_NONE)
        return moat_error_set(err, -ENOTSUP, "no attestation provider: %s",
                              attest_provider_describe(p));
    if (p->kind == ATTEST_TSM) {
        struct tsm_report rep;
        int r = tsm_get_report(tsm_fs_posix(), p->tsm_root, report_data, 64, &rep, err);
        if (r < 0)
            return r;
        *ret        = rep.outblob;
        *ret_len    = rep.outblob_len;
        rep.outblob = NULL;
        tsm_report_free(&rep);
        return 0;
    }
    struct sim_enclave e = {.isvprodid = id->isvprodid, .isvsvn = id->isvsvn, .debug = id->debug};
    memcpy(e.mrenclave, id->mrenclave, 32);
    memcpy(e.mrsigner, id->mrsigner, 32);
    memcpy(e.report_data, report_data, 64);
    return sim_quote(p->sim, &e, ret, ret_len, err);
}

/* The per-machine secret (docs/attestation.md, "Sealing keys"). Every key sealed on the
 * machine depends on it, so it is taken only from a place no other user can have written or
 * replaced, and made exactly once: two first uses that each made their own would seal data
 * under keys one of them loses. */

#define SECRET_SIZE 32

/* The directory of the secret must not let anyone else replace the file in it. */
static int check_secret_dir(int dfd, const char* dir, struct moat_error* err) {
    struct stat st;
    if (fstat(dfd, &st) < 0)
        return moat_error_set_errno(err, -errno, "cannot stat %s", dir);
    uid_t me = geteuid();
    if (st.st_uid != me && st.st_uid != 0)
        return moat_error_set(err, -EPERM,
                              "refusing the machine secret in %s: the directory is owned by uid "
                              "%u, not by uid %u (moat's user) or root, so its owner could "
                              "replace the secret; use a directory of your own (set "
                              "MOAT_MACHINE_SECRET or XDG_DATA_HOME)",
                              dir, (unsigned)st.st_uid, (unsigned)me);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return moat_error_set(err, -EPERM,
                              "refusing the machine secret in %s: the directory has mode %04o, "
                              "writable by group or others, who could replace the secret; fix "
                              "with 'chmod go-w %s'",
                              dir, (unsigned)(st.st_mode & 07777), dir);
    return 0;
}

/* Reads the secret at `base` in `dfd`: -ENOENT when there is none (yet). */
static int read_secret(int dfd, const char* base, const char* path, uint8_t out[SECRET_SIZE],
                       struct moat_error* err) {
    /* O_NOFOLLOW: a planted symlink is refused, never followed; O_NONBLOCK: a FIFO cannot
     * block the open (it is refused below) */
    _cleanup_close_ int fd =
        openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return -ENOENT;
    if (fd < 0 && errno == ELOOP)
        return moat_error_set(err, -EPERM,
                              "refusing the machine secret %s: it is a symbolic link; it must be "
                              "a regular file (replace the link with the file, mode 0600)",
                              path);
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "cannot open the machine secret %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return moat_error_set_errno(err, -errno, "cannot stat %s", path);
    uid_t me = geteuid();
    if (!S_ISREG(st.st_mode))
        return moat_error_set(err, -EPERM,
                              "refusing the machine secret %s: it is not a regular file", path);
    if (st.st_uid != me || (st.st_mode & 077))
        return moat_error_set(err, -EPERM,
                              "refusing the machine secret %s: it is owned by uid %u with mode "
                              "%04o; it must be owned by uid %u (moat's user) and readable by "
                              "no one else: fix with 'chown %u %s && chmod 0600 %s'",
                              path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                              (unsigned)me, (unsigned)me, path, path);
    if (st.st_size != SECRET_SIZE)
        return moat_error_set(err, -EBADMSG, "%s: a machine secret is 32 bytes, not %lld", path,
                              (long long)st.st_size);
    ssize_t n = read_full(fd, out, SECRET_SIZE);
    if (n != SECRET_SIZE) {
        OPENSSL_cleanse(out, SECRET_SIZE);
        return n < 0 ? moat_error_set_errno(err, (int)n, "cannot read %s", path)
                     : moat_error_set(err, -EBADMSG, "%s: a machine secret is 32 bytes", path);
    }
    return 0;
}

/* Makes the secret: 32 random bytes in a private temporary file, published with link(2),
 * which never replaces an existing name. -EEXIST when another process published first. */
static int create_secret(int dfd, const char* base, const char* path, struct moat_error* err) {
    uint8_t secret[SECRET_SIZE], nonce[8];
    char tmp[NAME_MAX + 1];
    if (RAND_bytes(secret, sizeof(secret)) != 1 || RAND_bytes(nonce, sizeof(nonce)) != 1)
        return moat_error_set(err, -EIO, "cannot draw a machine secret");
    int n = snprintf(tmp, sizeof(tmp), ".%.200s.%d.%02x%02x%02x%02x%02x%02x%02x%02x", base,
                     (int)getpid(), nonce[0], nonce[1], nonce[2], nonce[3], nonce[4], nonce[5],
                     nonce[6], nonce[7]);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return moat_error_set(err, -ENAMETOOLONG, "%s: file name too long", path);
    }
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return moat_error_set_errno(err, -errno, "cannot create the machine secret %s", path);
    }
    int r = write_all(fd, secret, sizeof(secret));
    OPENSSL_cleanse(secret, sizeof(secret));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r == 0) {
        r = linkat(dfd, tmp, dfd, base, 0) < 0 ? -errno : 0;
        /* a file system without hard links: a rename that does not replace either */
        if (r == -EPERM || r == -EOPNOTSUPP)
            r = renameat2(dfd, tmp, dfd, base, RENAME_NOREPLACE) < 0 ? -errno : 0;
    }
    (void)unlinkat(dfd, tmp, 0); /* gone after the rename: ENOENT is fine */
    if (r == -EEXIST)
        return r;
    if (r < 0)
        return moat_error_set_errno(err, r, "cannot create the machine secret %s", path);
    (void)fsync(dfd);
    return 0;
}

/* The per-machine secret at `path`: read, or made if missing (see attest_seal_key). */
static int machine_secret(const char* path, uint8_t out[SECRET_SIZE], struct moat_error* err) {
    const char* slash = strrchr(path, '/');
    _cleanup_free_ char* dir =
        slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    const char* base = slash ? slash + 1 : path;
    int r            = 0;
    if (!*base)
        return moat_error_set(err, -EINVAL, "the machine secret path %s names a directory", path);
    if ((r = mkdir_parents(path, 0700)) < 0)
        return moat_error_set_errno(err, r, "cannot create the directory of %s", path);
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return moat_error_set_errno(err, -errno, "cannot open the directory %s", dir);
    if ((r = check_secret_dir(dfd, dir, err)) < 0)
        return r;
    r = read_secret(dfd, base, path, out, err);
    if (r != -ENOENT)
        return r;
    r = create_secret(dfd, base, path, err);
    if (r < 0 && r != -EEXIST)
        return r;
    /* ours, or the first writer's when another process won the race: read back either way */
    r = read_secret(dfd, base, path, out, err);
    return r == -ENOENT ? moat_error_set(err, -EIO, "the machine secret %s vanished", path) : r;
}

int attest_seal_key(const char* secret_path, bool mrsigner_policy, const struct attest_identity* id,
                    uint8_t out[16], struct moat_error* err) {
    _cleanup_free_ char* path = secret_path ? xstrdup(secret_path) : attest_default_secret_path();
    uint8_t secret[SECRET_SIZE], mac[32], msg[64 + 4];
    if (mrsigner_policy && !id->signer_verified)
        return moat_error_set(err, -EPERM,
                              "the MRSIGNER sealing key needs a verified signer: the app is not "
                              "signed (sign it with 'moat sign'); unsigned apps would all share "
                              "one key");
    int r = machine_secret(path, secret, err);
    if (r < 0)
        return r;
    /* HMAC-SHA256(secret, label || policy fields), as EGETKEY mixes the policy's fields */
    size_t n = 0;
    memcpy(msg,
           mrsigner_policy ? "moat-seal-mrsigner\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                           : "moat-seal-mrenclave\0\0\0\0\0\0\0\0\0\0\0\0\0",
           32);
    n += 32;
    memcpy(msg + n, mrsigner_policy ? id->mrsigner : id->mrenclave, 32);
    n += 32;
    msg[n++]         = (uint8_t)(mrsigner_policy ? id->isvprodid : 0);
    msg[n++]         = (uint8_t)(mrsigner_policy ? id->isvprodid >> 8 : 0);
    msg[n++]         = (uint8_t)(mrsigner_policy ? id->isvsvn : 0);
    msg[n++]         = (uint8_t)(mrsigner_policy ? id->isvsvn >> 8 : 0);
    unsigned mac_len = 0;
    bool ok = HMAC(EVP_sha256(), secret, sizeof(secret), msg, n, mac, &mac_len) && mac_len == 32;
    if (ok)
        memcpy(out, mac, 16);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok ? 0 : moat_error_set(err, -EIO, "cannot derive a sealing key");
}

int attest_product_state_key(const char* product, const char* info, uint8_t out[32],
                             struct moat_error* err) {
    struct attest_identity id = {0};
    if (sha256_buf(product, strlen(product), id.mrenclave) < 0)
        return moat_error_set(err, -EIO, "sha256");
    uint8_t k16[16];
    int r = attest_seal_key(NULL, false, &id, k16, err);
    if (r < 0)
        return r;
    EVP_KDF* kdf        = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX* ctx    = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char*)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, k16, sizeof(k16)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void*)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    int ok = ctx && EVP_KDF_derive(ctx, out, 32, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    OPENSSL_cleanse(k16, sizeof(k16));
    return ok ? 0 : moat_error_set(err, -EIO, "cannot derive the sealing key");
}
