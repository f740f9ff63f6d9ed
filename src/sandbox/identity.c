/* SPDX-License-Identifier: Apache-2.0 */
/* The identity `moat run` gives the app: see identity.h. */
#include "identity.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "encfs.h"
#include "sigstruct.h"

/* stat() that counts only ENOENT as "not there": a manifest that exists but cannot be read is
 * an error, never a reason to run the other one. */
static bool exists(const char* path, struct stat* st) {
    return stat(path, st) == 0 || errno != ENOENT;
}

static bool newer(const struct stat* a, const struct stat* b) {
    return a->st_mtim.tv_sec > b->st_mtim.tv_sec ||
           (a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec > b->st_mtim.tv_nsec);
}

/* Which manifest runs. STEM.manifest.sgx wins whenever it exists: it is the only manifest a
 * STEM.sig can be about (moat sign measures and signs the finalized .sgx, never STEM.manifest,
 * whose bytes always differ from it: defaults and trusted-file hashes are added), and it is what
 * gramine-sgx runs. Refusing when both exist would refuse every signed app; running
 * STEM.manifest with the .sgx's identity was the bug (issue 10). */
static char* running_manifest(const char* stem, struct stat* ret_st, bool* ret_stale) {
    char* sgx                  = xasprintf("%s.manifest.sgx", stem);
    _cleanup_free_ char* plain = xasprintf("%s.manifest", stem);
    struct stat sgx_st, plain_st;
    if (exists(sgx, &sgx_st)) {
        *ret_st    = sgx_st;
        *ret_stale = exists(plain, &plain_st) && newer(&plain_st, &sgx_st);
        return sgx;
    }
    free(sgx);
    *ret_stale = false;
    return exists(plain, ret_st) ? TAKE_PTR(plain) : NULL;
}

int identity_read_manifest(const char* stem, char** ret_path, char** ret_text, size_t* ret_len,
                           struct moat_error* err) {
    struct stat st;
    bool stale                = false;
    _cleanup_free_ char* path = running_manifest(stem, &st, &stale);
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    if (!path)
        return moat_error_set(err, -ENOENT,
                              "Invalid application path specified (%s.manifest does not exist).\n"
                              "The path should point to an application configured with a "
                              "manifest (render one with 'moat manifest render').",
                              stem);
    int r = read_file(path, &text, &len, err);
    if (r < 0)
        return r;
    /* not the log: the manifest's log level is not known yet, and this must not go unseen */
    if (stale)
        fprintf(stderr,
                "moat: warning: %s.manifest is newer than %s, which is what runs (the manifest "
                "'moat sign' finalized and measured): re-run 'moat sign' to run your changes\n",
                stem, path);
    *ret_path = TAKE_PTR(path);
    *ret_text = TAKE_PTR(text);
    *ret_len  = len;
    return 0;
}

char* identity_manifest_path(const char* stem) {
    struct stat st;
    bool stale                = false;
    _cleanup_free_ char* path = running_manifest(stem, &st, &stale);
    return path ? realpath(path, NULL) : NULL;
}

static void hex32(const uint8_t v[32], char out[65]) {
    if (hex_encode(v, 32, out, 65) < 0)
        out[0] = '\0';
}

/* STEM.sig counts only as a SIGSTRUCT of exactly this manifest, with a signature that
 * verifies (reference/gramine.md §3; SGX's EINIT checks the same: the signature, then that
 * enclave_hash is the MRENCLAVE just measured). */
static int verified_signer(const char* sig_path, const char* manifest_path, const char* sig,
                           size_t sig_len, const char* text, size_t len, struct attest_identity* id,
                           struct moat_error* err) {
    struct sigstruct ss;
    struct moat_error why = {0};
    if (sigstruct_parse((const uint8_t*)sig, sig_len, &ss, &why) < 0)
        return moat_error_set(err, -EPERM,
                              "refusing to start: %s is not a SIGSTRUCT (%s); re-run 'moat sign', "
                              "or remove it to run %s unsigned",
                              sig_path, why.msg, manifest_path);
    if (sigstruct_verify(&ss, &why) < 0)
        return moat_error_set(err, -EPERM,
                              "refusing to start: %s: %s; re-run 'moat sign', or remove it to run "
                              "%s unsigned",
                              sig_path, why.msg, manifest_path);
    if (moat_measurement(text, len, id->mrenclave) < 0)
        return moat_error_set(err, -EIO, "cannot measure %s", manifest_path);
    if (CRYPTO_memcmp(ss.enclave_hash, id->mrenclave, 32) != 0) {
        char want[65], have[65];
        hex32(ss.enclave_hash, want);
        hex32(id->mrenclave, have);
        return moat_error_set(err, -EPERM,
                              "refusing to start: %s is not the signature of %s: its "
                              "enclave_hash is %s, the measurement of %s is %s; re-run 'moat "
                              "sign' for this manifest",
                              sig_path, manifest_path, want, manifest_path, have);
    }
    if (sigstruct_mrsigner(&ss, id->mrsigner) < 0)
        return moat_error_set(err, -EIO, "%s: cannot hash the signer's modulus", sig_path);
    /* the SIGSTRUCT's values are the identity, as on SGX (the manifest's were only the
     * signer's input); they differ only for a SIGSTRUCT another tool made */
    if (ss.isv_prod_id != id->isvprodid || ss.isv_svn != id->isvsvn)
        log_warning(
            "%s says isv_prod_id %u, isv_svn %u; the manifest says %u, %u: the app gets the "
            "SIGSTRUCT's",
            sig_path, ss.isv_prod_id, ss.isv_svn, id->isvprodid, id->isvsvn);
    id->isvprodid       = ss.isv_prod_id;
    id->isvsvn          = ss.isv_svn;
    id->debug           = (ss.attr_flags & SGX_FLAGS_DEBUG) != 0;
    id->signer_verified = true;
    return 0;
}

int identity_load(const char* stem, const char* manifest_path, const struct manifest* manifest,
                  const char* text, size_t len, struct attest_identity* ret_id, bool* ret_measured,
                  struct moat_error* err) {
    struct attest_identity id = {
        .isvprodid = manifest->sgx.isvprodid,
        .isvsvn    = manifest->sgx.isvsvn,
        .debug     = manifest->sgx.debug,
    };

    _cleanup_free_ char* sig_path = xasprintf("%s.sig", stem);
    _cleanup_free_ char* sig      = NULL;
    size_t sig_len                = 0;
    int r                         = read_file(sig_path, &sig, &sig_len, err);
    if (r == -ENOENT) { /* unsigned: MRSIGNER zero, and no MRSIGNER sealing key */
        moat_error_clear(err);
        *ret_id       = id;
        *ret_measured = false;
        return 0;
    }
    if (r < 0) /* a .sig that is there but unreadable is not a reason to run unsigned */
        return moat_error_prefix(err, "refusing to start");
    r = verified_signer(sig_path, manifest_path, sig, sig_len, text, len, &id, err);
    if (r < 0)
        return r;
    *ret_id       = id;
    *ret_measured = true;
    return 0;
}

static bool mount_uses(const struct mount_entry* m, const char* key_name) {
    return m->type == MOUNT_ENCRYPTED && m->key_name && !strcmp(m->key_name, key_name);
}

int identity_sealing_keys(const struct mount_plan* plan, struct encfs* encfs,
                          struct attest_identity* id, bool* measured, const char* text, size_t len,
                          struct moat_error* err) {
    static const char* const names[] = {"_sgx_mrenclave", "_sgx_mrsigner"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        encfs_declare_key(encfs, names[i]);
    /* an unsigned app's MRSIGNER is zero: its key would be every unsigned app's key */
    for (size_t m = 0; m < plan->len && !id->signer_verified; m++)
        if (mount_uses(&plan->items[m], "_sgx_mrsigner"))
            return moat_error_set(err, -EPERM,
                                  "fs.mounts: encrypted mount \"%s\" uses key_name "
                                  "\"_sgx_mrsigner\", which needs a signed app (the key of an "
                                  "unsigned app would be shared with every unsigned app on this "
                                  "machine): sign the manifest with 'moat sign', or use "
                                  "\"_sgx_mrenclave\"",
                                  plan->items[m].path);
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        bool used = false;
        for (size_t m = 0; m < plan->len; m++)
            used |= mount_uses(&plan->items[m], names[i]);
        if (!used)
            continue;
        if (i == 0 && !*measured) {
            if (moat_measurement(text, len, id->mrenclave) < 0)
                return moat_error_set(err, -EIO, "cannot measure the manifest");
            *measured = true;
        }
        uint8_t key[16];
        int r = attest_seal_key(NULL, i == 1, id, key, err);
        if (r == 0)
            encfs_set_key(encfs, names[i], key);
        OPENSSL_cleanse(key, sizeof(key));
        if (r < 0)
            return moat_error_prefix(err, "sealing key '%s'", names[i]);
    }
    return 0;
}
