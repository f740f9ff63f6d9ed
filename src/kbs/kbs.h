/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat kbs: the key broker's formats (../shared/reference/attestation.md §4.3; docs/kbs.md),
 * transport-free so that unit tests and the fuzzer drive them directly:
 *  - key-transfer policies: parsed once into `struct kbs_policy`, matched against the claims of
 *    a verified token;
 *  - the key-release public key in `attester_held_data` (§4.1: 4-byte LE exponent ‖ modulus,
 *    SGX's modulus little-endian, TDX's big-endian, more than 2048 bits);
 *  - the wrapping of a secret for that key: `wrapped_swk` (RSA-OAEP SHA-256 of a fresh AES-256
 *    key) and `wrapped_key` (12-byte header ‖ IV ‖ AES-256-GCM ciphertext ‖ tag), byte-exact
 *    as §4.3, and the reverse (for tests and clients).
 */
#pragma once

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum kbs_tee { KBS_TEE_SGX, KBS_TEE_TDX };
const char* kbs_tee_name(enum kbs_tee tee); /* "SGX" / "TDX" */

/* A list of strings (hex measurements, policy UUIDs); empty = wildcard. Owned. */
struct kbs_strv {
    char** v;
    size_t n;
};

#define KBS_MAX_LIST 256

/* §4.3 key-transfer policy, defaults applied. Lists are lowercase hex. */
struct kbs_policy {
    enum kbs_tee tee;
    struct kbs_strv policy_ids; /* canonical lowercase UUIDs */
    bool attributes;            /* an "attributes" object was given (possibly all wildcards) */
    bool enforce_tcb_upto_date;
    /* SGX */
    struct kbs_strv mrsigner, mrenclave;
    uint16_t* isvprodid;
    size_t n_isvprodid;
    bool has_isvsvn;
    uint16_t isvsvn; /* minimum */
    /* TDX */
    struct kbs_strv mrsignerseam, mrseam, mrtd, rtmr[4];
    bool has_seamsvn;
    uint16_t seamsvn; /* minimum */
};
void kbs_policy_clear(struct kbs_policy* p);

/* Parses a policy: {"attestation_type": "SGX"|"TDX" (or a one-element array, as upstream's
 * KBS), "sgx"|"tdx": {"attributes": {...}, "policy_ids": [uuid]}}. The section of the other TEE
 * is refused, as are unknown attribute keys, non-hex measurements of the wrong length and
 * out-of-range numbers (-EINVAL, `err` naming the key). The policy needs either policy_ids or
 * attributes. */
int kbs_policy_parse(const json_t* j, struct kbs_policy* ret, struct moat_error* err) WARN_UNUSED;
/* The policy back as JSON (canonical form, what the admin API returns). New reference. */
json_t* kbs_policy_to_json(const struct kbs_policy* p);

/* Whether the claims of a verified token (§4.2, ITA v1 flat names) satisfy the policy: the
 * attester_type must be the policy's TEE; one of the policy's policy_ids in
 * `policy_ids_matched` suffices; otherwise every listed attribute must match and, when
 * enforced, attester_tcb_status == "UpToDate". Returns 0, -EPERM (mismatch, `err` names the
 * claim) or -EINVAL (a claim missing or of the wrong type). */
int kbs_policy_match(const struct kbs_policy* p, const json_t* claims,
                     struct moat_error* err) WARN_UNUSED;

#define KBS_MIN_RSA_BITS 2049

/* The RSA public key of base64 `held` (attester_held_data): 4-byte LE exponent ‖ modulus,
 * reversed for SGX (§4.1 key-release convention). Fewer than KBS_MIN_RSA_BITS: -EINVAL. */
int kbs_held_key(const char* held, enum kbs_tee tee, EVP_PKEY** ret,
                 struct moat_error* err) WARN_UNUSED;

#define KBS_SWK_LEN        32
#define KBS_WRAP_IV_LEN    12
#define KBS_WRAP_TAG_LEN   16
#define KBS_WRAP_HEAD_LEN  12
#define KBS_MAX_SECRET_LEN (64 * 1024)

/* Wraps `secret` for `pub` (§4.3): *ret_key = header ‖ IV ‖ ciphertext ‖ tag under a fresh
 * SWK, *ret_swk = RSA-OAEP(SHA-256, MGF1-SHA-256, no label)(SWK). Both malloc'd raw bytes; the
 * SWK is wiped. */
int kbs_wrap(EVP_PKEY* pub, const uint8_t* secret, size_t len, uint8_t** ret_key,
             size_t* ret_key_len, uint8_t** ret_swk, size_t* ret_swk_len,
             struct moat_error* err) WARN_UNUSED;
/* The reverse with the private key; the header is checked (iv 12, tag 16, the lengths add up).
 * *ret is malloc'd (the caller wipes it). -EBADMSG on any tampering. */
int kbs_unwrap(EVP_PKEY* priv, const uint8_t* key, size_t key_len, const uint8_t* swk,
               size_t swk_len, uint8_t** ret, size_t* ret_len, struct moat_error* err) WARN_UNUSED;

/* AES-256-GCM with a 12-byte IV and 16-byte tag; `aad` may be NULL. out has len bytes.
 * 0, -EBADMSG (tag mismatch on decryption) or -EIO. */
int kbs_gcm(bool enc, const uint8_t key[32], const uint8_t iv[12], const void* aad, size_t aad_len,
            const uint8_t* in, size_t len, uint8_t* out, uint8_t tag[16]) WARN_UNUSED;

/* A transfer response (§4.3): {"wrapped_key": b64, "wrapped_swk": b64}, decoded. Owned. */
struct kbs_wrapped {
    uint8_t* key;
    size_t key_len;
    uint8_t* swk;
    size_t swk_len;
};
void kbs_wrapped_clear(struct kbs_wrapped* w);

#define KBS_MAX_RESPONSE (1024 * 1024)

/* Parses a transfer response body (at most KBS_MAX_RESPONSE bytes): a JSON object whose
 * "wrapped_key" and "wrapped_swk" are standard base64 (other members are ignored). -EBADMSG
 * naming the field that is missing, not a string or not base64; the wrapped_key's header is
 * checked by kbs_unwrap. */
int kbs_transfer_response_parse(const char* body, size_t len, struct kbs_wrapped* ret,
                                struct moat_error* err) WARN_UNUSED;
