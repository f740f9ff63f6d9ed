/* SPDX-License-Identifier: Apache-2.0 */
/* Evidence providers and sealing keys: see provider.h. */
#include "provider.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
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

/* The per-machine secret: read, or made (32 random bytes, 0600) if missing. */
static int machine_secret(const char* path, uint8_t out[32], struct moat_error* err) {
    char* buf              = NULL;
    size_t len             = 0;
    struct moat_error rerr = {0};
    int r                  = read_file(path, &buf, &len, &rerr);
    if (r == 0 && len == 32) {
        memcpy(out, buf, 32);
        OPENSSL_cleanse(buf, len);
        free(buf);
        return 0;
    }
    if (r == 0) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        return moat_error_set(err, -EBADMSG, "%s: a machine secret is 32 bytes, not %zu", path,
                              len);
    }
    if (r != -ENOENT)
        return moat_error_set(err, r, "%s", rerr.msg);
    if (RAND_bytes(out, 32) != 1)
        return moat_error_set(err, -EIO, "cannot draw a machine secret");
    if ((r = mkdir_parents(path, 0700)) < 0)
        return moat_error_set_errno(err, r, "cannot create the directory of %s", path);
    return write_file_atomic(path, out, 32, 0600, err);
}

int attest_seal_key(const char* secret_path, bool mrsigner_policy, const struct attest_identity* id,
                    uint8_t out[16], struct moat_error* err) {
    _cleanup_free_ char* path = secret_path ? xstrdup(secret_path) : attest_default_secret_path();
    uint8_t secret[32], mac[32], msg[64 + 4];
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
