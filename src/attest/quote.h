/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DCAP quotes (reference/attestation.md §1): SGX quote v3, v4 (SGX or TDX 1.0) and v5 (body
 * type 1 SGX, 2 TDX 1.0, 3 TDX 1.5), with MarbleRun's 16-byte OpenEnclave header
 * (reference/marblerun.md §4.4) on input and output.
 *
 * quote_parse() reads every field through a bounds-checked cursor and keeps Intel QVL's format
 * rules: version 3, 4 or 5; attestation key type 2; tee type 0 (SGX) or 0x81 (TDX, v4/v5);
 * body type and size consistent; the declared size of every certification-data block equal to
 * the bytes present. Bytes after the signature data are tolerated and counted (§1.6).
 * It does not verify anything: no signature, no vendor id, no certificate (see the verifier).
 *
 * Lifetime: the `const uint8_t*` members of struct quote point into the buffer given to
 * quote_parse(); they are valid as long as that buffer is. Everything else is copied.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define QUOTE_HEADER_SIZE        48
#define QUOTE_SGX_BODY_SIZE      384 /* sgx_report_body_t, also the QE report (§1.2) */
#define QUOTE_TD10_BODY_SIZE     584 /* sgx_report2_body_t (§1.4) */
#define QUOTE_TD15_BODY_SIZE     648 /* TDX 1.5: + tee_tcb_svn2 and mr_servicetd (§1.5) */
#define QUOTE_SIG_SIZE           64  /* ECDSA P-256 r||s, big-endian each */
#define QUOTE_KEY_SIZE           64  /* P-256 public key x||y without the 0x04 prefix */
#define QUOTE_OE_HEADER_SIZE     16
#define QUOTE_ATT_KEY_ECDSA_P256 2

enum quote_tee_type {
    QUOTE_TEE_SGX = 0x00,
    QUOTE_TEE_TDX = 0x81,
};

/* v5 body types; v3 and v4 quotes get the type their layout implies. */
enum quote_body_type {
    QUOTE_BODY_SGX  = 1,
    QUOTE_BODY_TD10 = 2,
    QUOTE_BODY_TD15 = 3,
};

/* sgx_ql_cert_key_type_t (§1.3). */
enum quote_cert_type {
    QUOTE_CERT_PPID_CLEARTEXT    = 1,
    QUOTE_CERT_PPID_RSA2048      = 2,
    QUOTE_CERT_PPID_RSA3072      = 3,
    QUOTE_CERT_PCK_LEAF          = 4,
    QUOTE_CERT_PCK_CHAIN         = 5,
    QUOTE_CERT_QE_REPORT         = 6,
    QUOTE_CERT_PLATFORM_MANIFEST = 7,
};

/* sgx_report_body_t, 384 bytes (§1.2). Multi-byte fields whose policy checks are bytewise
 * (misc_select, attributes; reference §2.2 step 7) stay in report byte order. */
struct quote_sgx_body {
    uint8_t cpu_svn[16];
    uint8_t misc_select[4]; /* u32 LE */
    uint8_t reserved1[12];
    uint8_t isv_ext_prod_id[16];
    uint8_t attributes[16]; /* flags (u64 LE) || xfrm (u64 LE) */
    uint8_t mr_enclave[32];
    uint8_t reserved2[32];
    uint8_t mr_signer[32];
    uint8_t reserved3[32];
    uint8_t config_id[64];
    uint16_t isv_prod_id;
    uint16_t isv_svn;
    uint16_t config_svn;
    uint8_t reserved4[42];
    uint8_t isv_family_id[16];
    uint8_t report_data[64];
    uint64_t attr_flags; /* decoded from attributes: bit 1 DEBUG */
    uint64_t attr_xfrm;
};

/* TD report body 1.0 (584 bytes, §1.4) and 1.5 (648 bytes, §1.5). */
struct quote_td_body {
    uint8_t tee_tcb_svn[16];
    uint8_t mr_seam[48];
    uint8_t mr_signer_seam[48];
    uint8_t seam_attributes[8];
    uint8_t td_attributes[8]; /* u64 LE: bit 0 DEBUG */
    uint8_t xfam[8];
    uint8_t mr_td[48];
    uint8_t mr_config_id[48];
    uint8_t mr_owner[48];
    uint8_t mr_owner_config[48];
    uint8_t rtmr[4][48];
    uint8_t report_data[64];
    bool is_v15; /* the next two fields are set (body type 3) */
    uint8_t tee_tcb_svn2[16];
    uint8_t mr_servicetd[48];
};

/* A certification-data block: type, declared size (== bytes present), the bytes. */
struct quote_cert_data {
    uint16_t type;
    uint32_t size;
    size_t offset; /* of the data, from the start of the quote */
    const uint8_t* data;
};

struct quote {
    /* header (§1.1) */
    uint16_t version;
    uint16_t att_key_type;
    uint32_t tee_type;      /* v3: the reserved att_key_data_0, always 0 */
    uint8_t header_8_11[4]; /* v3: qe_svn, pce_svn; v4/v5: reserved (QVL still reads svns) */
    uint16_t qe_svn;
    uint16_t pce_svn;
    uint8_t qe_vendor_id[16];
    uint8_t user_data[20];

    /* report body */
    uint16_t body_type; /* enum quote_body_type; v5 reads it, v3/v4 imply it */
    size_t body_offset; /* 48 (v3/v4) or 54 (v5) */
    size_t body_size;
    const uint8_t* body_raw;
    struct quote_sgx_body sgx; /* body_type 1 */
    struct quote_td_body td;   /* body_type 2 or 3 */

    /* The quote signature covers [0, signed_len): header || [v5 type/size ||] body. */
    const uint8_t* signed_data;
    size_t signed_len;

    /* signature data (sgx_ql_ecdsa_sig_data_t / sgx_ecdsa_sig_data_v4_t) */
    size_t sig_data_len_offset;
    uint32_t sig_data_len;
    uint8_t signature[QUOTE_SIG_SIZE];
    uint8_t attest_key[QUOTE_KEY_SIZE];
    struct quote_sgx_body qe_report;
    size_t qe_report_offset;
    const uint8_t* qe_report_raw; /* the 384 bytes the QE report signature covers */
    uint8_t qe_report_signature[QUOTE_SIG_SIZE];
    uint16_t qe_auth_data_len;
    const uint8_t* qe_auth_data;

    /* v3: `cert` is the only block (cert_inner == cert). v4/v5: `cert` is type 6 (QE report
     * certification data) and `cert_inner` the block inside it (type 5 in real quotes). */
    struct quote_cert_data cert;
    struct quote_cert_data cert_inner;
    /* cert_inner.type == 5: the PEM chain (PCK leaf, intermediate, root in any order; may be
     * NUL-terminated). NULL otherwise. */
    const uint8_t* pck_chain;
    size_t pck_chain_len;

    size_t size;     /* bytes given to quote_parse (after an OpenEnclave header) */
    size_t trailing; /* bytes after the signature data (tolerated, §1.6) */
    bool oe_header;  /* quote_parse_input() removed an OpenEnclave header */
};

/* Parses a raw DCAP quote of `len` bytes. On failure returns -EBADMSG (malformed, truncated,
 * declared sizes that do not match) or -ENOTSUP (unknown version, key type, tee type or body
 * type) and fills `err` with a message naming the field and its offset. *ret is written
 * only on success; its pointers point into `buf`. */
int quote_parse(const uint8_t* buf, size_t len, struct quote* ret,
                struct moat_error* err) WARN_UNUSED;

/* quote_parse() of input that may carry MarbleRun's OpenEnclave header (then stripped, and
 * ret->oe_header set). */
int quote_parse_input(const uint8_t* buf, size_t len, struct quote* ret,
                      struct moat_error* err) WARN_UNUSED;

/* MarbleRun's OpenEnclave remote-report header (marblerun.md §4.4, util.AddOEQuoteHeader):
 * u32le version = 1, u32le type = 2 (OE_REPORT_TYPE_SGX_REMOTE), u64le quote length. */
#define QUOTE_OE_VERSION         1
#define QUOTE_OE_TYPE_SGX_REMOTE 2

/* If buf starts with an OpenEnclave header (version 1, type 2), points *ret_quote and *ret_len at
 * the quote behind it and returns 1; returns 0 (and buf/len unchanged in the outputs) when
 * there is none; -EBADMSG with `err` set when the header's length does not match the bytes
 * that follow. */
int quote_oe_header_strip(const uint8_t* buf, size_t len, const uint8_t** ret_quote,
                          size_t* ret_len, struct moat_error* err) WARN_UNUSED;

/* Returns a malloc'd copy of the quote with the OpenEnclave header in front (caller frees);
 * *ret_len = len + 16. Never fails (aborts on OOM). */
uint8_t* quote_oe_header_wrap(const uint8_t* quote, size_t len, size_t* ret_len);

/* The enclave / TD was built for debugging: SGX attributes.flags bit 1, TD attributes bit 0. */
bool quote_is_debug(const struct quote* q);

/* Names for display: "SGX" or "TDX", "SGX enclave report", "PCK certificate chain", ...
 * Unknown values give "unknown". */
const char* quote_tee_name(uint32_t tee_type);
const char* quote_body_name(uint16_t body_type);
const char* quote_cert_type_name(uint16_t type);

/* Every parsed field as a JSON object (a new reference, caller json_decref()s). Byte fields
 * are lowercase hex strings; names follow testdata/attestation/EXPECTED.json. Aborts on OOM. */
json_t* quote_to_json(const struct quote* q);

/* An aligned "name: value" list for people (moat quote view). */
void quote_format_text(const struct quote* q, struct strbuf* out);
