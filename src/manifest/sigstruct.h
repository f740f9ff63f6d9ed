/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat's enclave measurement and Gramine's SIGSTRUCT (reference/gramine.md §3): the 1808-byte
 * structure gramine-sgx-sign writes to <app>.sig, signed with an RSA-3072 key whose public
 * exponent is 3. The measurement stored as enclave_hash (MRENCLAVE) is moat's, defined in
 * docs/measurement.md: SHA-256("moat-measurement-v1\0" || the exact .manifest.sgx bytes).
 */
#pragma once

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "model.h"
#include "toml.h"

#define SIGSTRUCT_SIZE      1808
#define SIGSTRUCT_KEY_BITS  3072
#define SIGSTRUCT_KEY_BYTES 384
#define SIGSTRUCT_EXPONENT  3
#define MOAT_MEASUREMENT_ID "moat-measurement-v1"

/* SGX attribute and misc bits used by Gramine */
#define SGX_FLAGS_DEBUG       0x2ULL
#define SGX_FLAGS_MODE64BIT   0x4ULL
#define SGX_XFRM_LEGACY       0x3ULL
#define SGX_XFRM_AVX          0x4ULL
#define SGX_XFRM_AVX512       0xe4ULL
#define SGX_XFRM_MPX          0x18ULL
#define SGX_XFRM_PKRU         0x200ULL
#define SGX_XFRM_AMX          0x60000ULL
#define SGX_MISC_EXINFO       0x1U
#define SGX_XFRM_MASK_DEFAULT 0xfffffffffff9ff1bULL

/* Field offsets in the 1808-byte SIGSTRUCT (pal/src/host/linux-sgx/sgx_arch.h). */
enum {
    SIGSTRUCT_OFF_HEADER         = 0,
    SIGSTRUCT_OFF_VENDOR         = 16,
    SIGSTRUCT_OFF_DATE           = 20,
    SIGSTRUCT_OFF_HEADER2        = 24,
    SIGSTRUCT_OFF_SWDEFINED      = 40,
    SIGSTRUCT_OFF_MODULUS        = 128,
    SIGSTRUCT_OFF_EXPONENT       = 512,
    SIGSTRUCT_OFF_SIGNATURE      = 516,
    SIGSTRUCT_OFF_MISC_SELECT    = 900,
    SIGSTRUCT_OFF_MISC_MASK      = 904,
    SIGSTRUCT_OFF_CET_ATTRS      = 908,
    SIGSTRUCT_OFF_CET_ATTRS_MASK = 909,
    SIGSTRUCT_OFF_ISV_FAMILY_ID  = 912,
    SIGSTRUCT_OFF_ATTRIBUTES     = 928,
    SIGSTRUCT_OFF_ATTRIBUTE_MASK = 944,
    SIGSTRUCT_OFF_ENCLAVE_HASH   = 960,
    SIGSTRUCT_OFF_ISVEXT_PROD_ID = 1008,
    SIGSTRUCT_OFF_ISV_PROD_ID    = 1024,
    SIGSTRUCT_OFF_ISV_SVN        = 1026,
    SIGSTRUCT_OFF_Q1             = 1040,
    SIGSTRUCT_OFF_Q2             = 1424,
};

struct sigstruct {
    uint32_t vendor;
    uint32_t date; /* 0xYYYYMMDD written as hex digits of the decimal date */
    uint32_t swdefined;
    uint8_t modulus[SIGSTRUCT_KEY_BYTES]; /* little-endian */
    uint32_t exponent;
    uint8_t signature[SIGSTRUCT_KEY_BYTES]; /* little-endian */
    uint32_t misc_select, misc_mask;
    uint8_t cet_attributes, cet_attributes_mask;
    uint8_t isv_family_id[16];
    uint64_t attr_flags, attr_xfrm;
    uint64_t attr_mask_flags, attr_mask_xfrm;
    uint8_t enclave_hash[32];
    uint8_t isvext_prod_id[16];
    uint16_t isv_prod_id, isv_svn;
    uint8_t q1[SIGSTRUCT_KEY_BYTES], q2[SIGSTRUCT_KEY_BYTES];
};

/* moat's measurement of a finalized manifest: SHA-256 over MOAT_MEASUREMENT_ID, one NUL byte,
 * and the manifest bytes exactly as written to .manifest.sgx. */
int moat_measurement(const void* manifest, size_t len, uint8_t out[32]) WARN_UNUSED;

/* Fills the unsigned fields from the manifest model (sgx.debug, isvprodid, isvsvn, use_exinfo,
 * cpu_features) and the measurement. */
int sigstruct_from_manifest(const struct manifest* m, const uint8_t measurement[32], uint32_t date,
                            struct sigstruct* ret) WARN_UNUSED;

/* Signs s in place (reference/gramine.md §3): sets modulus, exponent, signature, q1 and q2.
 * The key must pass enclave_key_check (-EINVAL otherwise); -EIO if OpenSSL fails. */
int sigstruct_sign(struct sigstruct* s, EVP_PKEY* key, struct moat_error* err) WARN_UNUSED;
/* Verifies the RSA signature over the signed ranges with the embedded 3072-bit modulus and
 * exponent 3, and that q1/q2 match it (as EINIT does). -EBADMSG with a message otherwise. */
int sigstruct_verify(const struct sigstruct* s, struct moat_error* err) WARN_UNUSED;

/* Writes the 1808 bytes (reserved fields zero). */
void sigstruct_serialize(const struct sigstruct* s, uint8_t out[SIGSTRUCT_SIZE]);
/* Parses exactly SIGSTRUCT_SIZE untrusted bytes through a cursor; checks the constant headers
 * and that the reserved fields are zero, so sigstruct_serialize() gives back the same bytes and
 * the signature is checked over what is in the file. -EINVAL with a message otherwise. */
int sigstruct_parse(const uint8_t* buf, size_t len, struct sigstruct* ret,
                    struct moat_error* err) WARN_UNUSED;
/* MRSIGNER: SHA-256 of the little-endian modulus. */
int sigstruct_mrsigner(const struct sigstruct* s, uint8_t out[32]) WARN_UNUSED;

/* "YYYY-MM-DD" (a real calendar date, 1970..9999) or "today" (UTC) to the SIGSTRUCT date
 * encoding: the decimal digits as hex digits, 2026-11-24 -> 0x20261124. -EINVAL otherwise. */
int sigstruct_date_parse(const char* s, uint32_t* ret) WARN_UNUSED;

/* gramine-sgx-sigstruct-view's output (reference/gramine.md §3). */
enum sigstruct_format {
    SIGSTRUCT_FORMAT_TEXT,
    SIGSTRUCT_FORMAT_TOML,
    SIGSTRUCT_FORMAT_JSON,
};
/* "text", "toml" or "json"; -EINVAL otherwise. */
int sigstruct_format_parse(const char* name, enum sigstruct_format* ret) WARN_UNUSED;
/* Appends the view of s to out: mr_signer, mr_enclave, isv_prod_id, isv_svn, debug_enclave
 * and, if verbose, the attribute/misc fields, their masks and the date as "0x…" strings.
 * Does not verify the signature (sigstruct_verify does). */
int sigstruct_format(const struct sigstruct* s, enum sigstruct_format fmt, bool verbose,
                     struct strbuf* out) WARN_UNUSED;

/* Enclave signing keys (gramine sgx_sign.py): RSA-3072 with public exponent 3, else -EINVAL
 * with Gramine's message ("Invalid RSA key: expected key size 3072, got 2048", "Invalid RSA
 * key: expected exponent 3, got 65537", "Invalid key: expected RSA private key, found EC"). */
int enclave_key_check(EVP_PKEY* key, struct moat_error* err) WARN_UNUSED;
/* Loads an unencrypted PEM private key (traditional or PKCS#8) and checks it. The file's bytes
 * are wiped from memory after decoding. The caller frees *ret with EVP_PKEY_free. Errors:
 * -ENOENT/-EACCES (cannot read), -EINVAL (not a key, encrypted, or wrong size/exponent). */
int enclave_key_load(const char* path, EVP_PKEY** ret, struct moat_error* err) WARN_UNUSED;
/* Generates a new RSA-3072, e = 3 key; the caller frees it. */
int enclave_key_generate(EVP_PKEY** ret, struct moat_error* err) WARN_UNUSED;
/* Writes an unencrypted traditional ("BEGIN RSA PRIVATE KEY") PEM with mode 0600 atomically:
 * a temporary file in the same directory, then renamed into place. Unless force, an existing
 * path is never replaced, even if it appears while the key is written (-EEXIST, "refusing to
 * overwrite <path>, use -f to force"). The encoded key is kept in OpenSSL secure memory. */
int enclave_key_write(const char* path, EVP_PKEY* key, bool force,
                      struct moat_error* err) WARN_UNUSED;
