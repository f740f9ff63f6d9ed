/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: the identity `moat run STEM` gives the app (identity.c;
 * docs/attestation.md, "What identity an app gets"). moat runs exactly the bytes it measures:
 *
 *   manifest   STEM.manifest.sgx when it exists (what `moat sign` finalized, measured and
 *              signed; what gramine-sgx runs), else STEM.manifest (what gramine-direct runs)
 *   MRENCLAVE  moat's measurement of that manifest's bytes (docs/measurement.md)
 *   STEM.sig   counts only when its RSA signature verifies and its enclave_hash is that
 *              measurement; any other .sig next to the manifest stops the start
 *   MRSIGNER   SHA-256 of the verified SIGSTRUCT's modulus; ISVPRODID, ISVSVN and DEBUG from
 *              the verified SIGSTRUCT; for an unsigned app MRSIGNER is zero, the others come
 *              from the manifest, and there is no MRSIGNER sealing key
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "provider.h"
#include "sandbox.h"

struct encfs;

/* Reads the manifest that runs for `stem` (above). *ret_path gets its path as named (stem plus
 * suffix), *ret_text its bytes (NUL-terminated; *ret_len without the NUL); the caller owns
 * both. When STEM.manifest also exists and is newer, says on stderr that it is not what runs.
 * -ENOENT with Gramine's message when there is neither; -errno when one cannot be read. */
int identity_read_manifest(const char* stem, char** ret_path, char** ret_text, size_t* ret_len,
                           struct moat_error* err) WARN_UNUSED;

/* The absolute path of the manifest that runs for `stem` (malloc'd), NULL when none exists. */
char* identity_manifest_path(const char* stem);

/* The identity of the app whose manifest is `text` (`len` bytes read from `manifest_path`,
 * parsed into `manifest`), with STEM.sig when it exists. With a .sig the measurement is taken now
 * (*ret_measured = true); without, ret_id->mrenclave is left for the first use (*ret_measured =
 * false). Errors: -EINVAL for a manifest value out of range, -EPERM for a .sig that is not a
 * verified SIGSTRUCT of this manifest (the message names the .sig and what did not match), -errno
 * when the .sig cannot be read. Outputs are written only on success. */
int identity_load(const char* stem, const char* manifest_path, const struct manifest* manifest,
                  const char* text, size_t len, struct attest_identity* ret_id, bool* ret_measured,
                  struct moat_error* err) WARN_UNUSED;

/* The sealing keys _sgx_mrenclave and _sgx_mrsigner of the encrypted mounts of `plan`: both
 * names are declared in `encfs` (listed under /dev/attestation/keys); the keys that a mount uses
 * are derived now (the measurement of `text` taken into id->mrenclave if *measured is false).
 * -EPERM naming the mount when a mount uses _sgx_mrsigner and the app has no verified signer;
 * errors of attest_seal_key (the machine secret) otherwise. */
int identity_sealing_keys(const struct mount_plan* plan, struct encfs* encfs,
                          struct attest_identity* id, bool* measured, const char* text, size_t len,
                          struct moat_error* err) WARN_UNUSED;
