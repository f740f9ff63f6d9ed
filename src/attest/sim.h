/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated SGX platform (`sim` provider; ../shared/reference/attestation.md §1.8): a
 * private PKI shaped like Intel's, so that the *same* verifier code accepts simulated quotes
 * when the simulated root is the trust anchor, and rejects them against the Intel SGX Root CA.
 *
 *   root CA   "moat SIMULATED SGX Root CA"        self-signed, P-256
 *   PCK CA    "moat SIMULATED SGX PCK Platform CA"
 *   PCK leaf  "moat SIMULATED SGX PCK Certificate" with Intel's SGX extension
 *             (1.2.840.113741.1.13.1: PPID, TCB component SVNs, PCESVN, CPUSVN, PCE-ID, FMSPC,
 *             SGX type, platform instance ID, configuration)
 *   TCB signer "moat SIMULATED SGX TCB Signing"   signs the TCB info and QE identity
 *   root CRL and PCK CRL (empty, with CRL number and AKI), TCB info v3 ("SGX") whose one level
 *   matches the platform (UpToDate), QE identity v2 ("QE") matching the simulated QE
 *
 * The names carry "SIMULATED" and the CRL distribution points are under moat.invalid: nothing
 * here can pass for Intel's. A simulated quote proves nothing about hardware: it shows only
 * that its signer holds the simulated keys, which live in a directory on this machine.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* The files `moat attest init` writes into the simulation directory. */
#define SIM_ROOT_CERT   "root_ca.pem"   /* the trust anchor for simulated quotes */
#define SIM_PCK_CHAIN   "pck_chain.pem" /* leaf, PCK CA, root */
#define SIM_TCB_CHAIN   "tcb_chain.pem" /* TCB signer, root */
#define SIM_ROOT_CRL    "root_crl.der"
#define SIM_PCK_CRL     "pck_crl.der"
#define SIM_TCB_INFO    "tcb_info.json"    /* {"tcbInfo": {...}, "signature": "hex"} */
#define SIM_QE_IDENTITY "qe_identity.json" /* {"enclaveIdentity": {...}, "signature": "hex"} */
#define SIM_KEYS        "keys.pem"         /* PCK key, then attestation key (PKCS#8), mode 0600 */

struct sim_platform;

/* Creates a new simulated platform in `dir` (made if missing, mode 0700): fresh keys, a PPID
 * and the certificates, CRLs and collateral above, valid from now for `days` days. Refuses to
 * overwrite an existing one unless `force`. */
int sim_create(const char* dir, unsigned days, bool force, struct moat_error* err) WARN_UNUSED;

/* Loads the platform in `dir` (what sim_create wrote). */
int sim_load(const char* dir, struct sim_platform** ret, struct moat_error* err) WARN_UNUSED;
void sim_free(struct sim_platform* p);

/* What a verifier of the platform's quotes needs: the collateral `moat attest init` wrote in
 * `dir` and its root certificate as the trust anchor (X509_free it). */
struct collateral;
struct x509_st;
int sim_load_verifier(const char* dir, struct collateral** ret_collateral,
                      struct x509_st** ret_anchor, struct moat_error* err) WARN_UNUSED;

/* What a simulated quote attests: moat's measurement as MRENCLAVE, the signer, the manifest's
 * ISVPRODID/ISVSVN and debug flag, and the caller's report data. */
struct sim_enclave {
    uint8_t mrenclave[32];
    uint8_t mrsigner[32];
    uint16_t isvprodid, isvsvn;
    bool debug;
    uint8_t report_data[64];
};

/* A DCAP quote v3 (reference §1.3) for `e`, signed by the platform's attestation key, with a QE
 * report signed by its PCK key and the PCK chain as certification data (type 5). */
int sim_quote(const struct sim_platform* p, const struct sim_enclave* e, uint8_t** ret,
              size_t* ret_len, struct moat_error* err) WARN_UNUSED;
