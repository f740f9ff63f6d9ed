/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where an app's evidence comes from (docs/attestation.md, "Providers"): configfs-tsm in a
 * confidential VM (tsm.h), else the simulated platform made by `moat attest init` (sim.h),
 * else none. And the sealing keys behind /dev/attestation/keys/_sgx_mrenclave and
 * _sgx_mrsigner: derived from a per-machine secret and the enclave's identity, so sealed data
 * survives a restart and changes when the measurement (or the signer) changes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* The app's identity as a quote carries it (moat's measurement as MRENCLAVE). */
struct attest_identity {
    uint8_t mrenclave[32];
    uint8_t mrsigner[32]; /* zero when the manifest is not signed */
    uint16_t isvprodid, isvsvn;
    bool debug;
    /* mrsigner, isvprodid, isvsvn and debug come from a SIGSTRUCT whose signature verified and
     * whose enclave_hash is mrenclave: only then is there an MRSIGNER sealing key */
    bool signer_verified;
};

enum attest_kind {
    ATTEST_NONE,
    ATTEST_SIM, /* SIMULATED: proves nothing about hardware */
    ATTEST_TSM, /* a confidential VM's TSM (tdx_guest, sev_guest) */
};

struct attest_provider;

/* $MOAT_SIM_DIR, else $XDG_DATA_HOME/moat/sim, else ~/.local/share/moat/sim (malloc'd). */
char* attest_default_sim_dir(void);

/* configfs-tsm when `tsm_root` (NULL: the kernel's) exists, else the simulated platform in
 * `sim_dir` (NULL: the default) when there is one, else none. Errors only for a simulated
 * platform that exists but cannot be loaded. */
int attest_provider_open(const char* sim_dir, const char* tsm_root, struct attest_provider** ret,
                         struct moat_error* err) WARN_UNUSED;
void attest_provider_free(struct attest_provider* p);
enum attest_kind attest_provider_kind(const struct attest_provider* p);
/* One line for the start-up banner and logs, e.g. "sim (SIMULATED quotes from /x: they prove
 * nothing about hardware)". */
const char* attest_provider_describe(const struct attest_provider* p);

/* A quote for the identity and report data (-ENOTSUP with provider none). */
int attest_provider_quote(struct attest_provider* p, const struct attest_identity* id,
                          const uint8_t report_data[64], uint8_t** ret, size_t* ret_len,
                          struct moat_error* err) WARN_UNUSED;

/* $MOAT_MACHINE_SECRET, else $XDG_DATA_HOME/moat/machine.key, else
 * ~/.local/share/moat/machine.key (malloc'd). */
char* attest_default_secret_path(void);
/* The 16-byte sealing key of `id`: MRENCLAVE policy (the measurement) or MRSIGNER policy (the
 * signer, product ID and SVN), from the per-machine secret at `secret_path` (NULL: default).
 * The secret is 32 random bytes made exactly once, with mode 0600: concurrent first uses all
 * end with the first writer's. It is refused (-EPERM, the message names the path, what is wrong
 * and the fix) unless it is a regular file (not a symlink) owned by the effective uid with no
 * group/other permission bits, in a directory owned by that uid or root that group and others
 * cannot write; -EBADMSG when it is not 32 bytes. The MRSIGNER policy needs
 * id->signer_verified (-EPERM otherwise: every unsigned app would share one key). */
int attest_seal_key(const char* secret_path, bool mrsigner_policy, const struct attest_identity* id,
                    uint8_t out[16], struct moat_error* err) WARN_UNUSED;

/* A native service's state key (moat-amber, moat-kbs): this machine's sealing key for the
 * identity whose MRENCLAVE is SHA-256(`product`) (MRENCLAVE policy: unreadable on another
 * machine, kept across upgrades of the binary), through HKDF-SHA256 with `info`, 32 bytes. */
int attest_product_state_key(const char* product, const char* info, uint8_t out[32],
                             struct moat_error* err) WARN_UNUSED;
