/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recovery keys (reference/marblerun.md §3.4, MarbleRun's coordinator/recovery/multi.go): the
 * data encryption key of the sealed state, split for the manifest's RecoveryKeys, and put back
 * together from the secrets their owners upload.
 *
 *   RecoveryKeys   threshold   DEK                              per-key secret     recovery data
 *   0              -           random 32 bytes                  none               null
 *   1              -           random 32 bytes                  OAEP(key, DEK)     null
 *   N > 1          0 or N      XOR of N random 32-byte shares   OAEP(key, share)   {sha256hex:
 * true} N > 1          k < N       Shamir split, 33-byte shares     OAEP(key, share)   {sha256hex:
 * true}
 *
 * OAEP is RSA-OAEP with SHA-256 (label empty); the Shamir scheme is hashicorp's (GF(2^8) with
 * the AES polynomial; each share is the y bytes followed by its x coordinate), so the shares
 * MarbleRun issued combine here and the other way round.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define RECOVERY_DEK_SIZE 32
/* MarbleRun's DEK (and XOR share) size before v1.9, still accepted in recovery (§3.4). */
#define RECOVERY_LEGACY_DEK_SIZE 16

struct recovery_setup {
    uint8_t dek[RECOVERY_DEK_SIZE];
    size_t n;
    char** names;        /* the RecoveryKeys' names, in the order given */
    char** secrets_b64;  /* base64 of each key's encrypted secret (RecoverySecrets) */
    char* recovery_data; /* JSON for sealed_data, or NULL ("null") */
};

/* A new DEK for a manifest with these RecoveryKeys (PEM public keys, RSA) and threshold.
 * Errors name the key whose PEM is not an RSA public key. */
int recovery_setup_new(const char* const* names, const char* const* pems, size_t n,
                       unsigned threshold, struct recovery_setup* ret,
                       struct moat_error* err) WARN_UNUSED;
void recovery_setup_free(struct recovery_setup* r);

/* Shamir's secret sharing over GF(2^8) as hashicorp/vault's shamir package: `parts` shares of
 * len + 1 bytes each (y values, then x), any `threshold` of which give the secret back.
 * 2 <= threshold <= parts <= 255, len >= 1. */
int shamir_split(const uint8_t* secret, size_t len, unsigned parts, unsigned threshold,
                 uint8_t** ret_shares) WARN_UNUSED;
/* The secret (share_len - 1 bytes into out) from n >= 2 shares of share_len >= 2 bytes with
 * distinct x coordinates; -EINVAL otherwise. */
int shamir_combine(const uint8_t* const* shares, size_t n, size_t share_len,
                   uint8_t* out) WARN_UNUSED;

/* The secrets uploaded so far during a recovery (POST /api/v2/recover). */
struct recovery_session;

/* `recovery_data` is what the sealed state carries ("null" or {sha256hex(share): true}) and
 * `threshold` the manifest's (0: unknown, i.e. all XOR shares, or Shamir shares combined from
 * two on, the caller testing each result against the sealed state as MarbleRun does). */
struct recovery_session* recovery_session_new(const char* recovery_data, unsigned threshold,
                                              struct moat_error* err);
void recovery_session_free(struct recovery_session* s);
/* Adds an uploaded secret. Returns 0 with *ret_remaining = 0 and the DEK in dek when the
 * secrets uploaded so far give it, or 0 with the number still needed; -EINVAL when the secret
 * is not one of this state's (or was uploaded already). A legacy 16-byte DEK or XOR share
 * gives its 16 bytes followed by zeros in dek. */
int recovery_session_add(struct recovery_session* s, const uint8_t* secret, size_t len,
                         uint8_t dek[RECOVERY_DEK_SIZE], size_t* ret_remaining,
                         struct moat_error* err) WARN_UNUSED;

/* How many shares were accepted so far, of how many the recovery data names (1 without). */
void recovery_session_progress(const struct recovery_session* s, size_t* ret_uploaded,
                               size_t* ret_total);

/* RSASSA-PKCS1-v1_5 with SHA-256 of `data` by the key of `pem`: 0, or -EPERM. */
int recovery_verify_signature(const char* pem, const uint8_t* data, size_t len, const uint8_t* sig,
                              size_t sig_len) WARN_UNUSED;
