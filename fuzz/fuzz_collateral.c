/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: DCAP collateral (src/attest collateral.c, tcb.c, pck.c;
 * reference/attestation.md §2.3-2.5).
 *
 * Input byte 0 selects the parser, the rest is its input:
 *   0: the JSON span scanner on a PCS response, then the TCB info parser on the span and TCB
 *      level matching with a platform taken from the last 40 input bytes;
 *   1: the same for an enclave identity and QE identity matching;
 *   2: the dcap-qvl collateral JSON loader (hex CRLs, PEM chains, inner JSON);
 *   3: the PEM chain parser and the PCK SGX extension parser on its leaf.
 * Spans must lie inside the input, and the scanner must agree with jansson about where a
 * member's value is: its span parses as JSON and re-scanning the span's own members succeeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collateral.h"
#include "pck.h"
#include "tcb.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void platform_from(const uint8_t* p, size_t n, const struct tcb_info* info,
                          struct tcb_platform* ret) {
    uint8_t b[40] = {0};
    memcpy(b, p + (n > 40 ? n - 40 : 0), n < 40 ? n : 40);
    *ret =
        (struct tcb_platform){.is_tdx = info->id == TCB_INFO_TDX, .quote_version = 4 + (b[0] & 1)};
    memcpy(ret->fmspc, info->fmspc, 6);
    memcpy(ret->pceid, info->pceid, 2);
    memcpy(ret->sgx_svn, b + 1, 16);
    ret->pcesvn = (uint16_t)(b[17] | b[18] << 8);
    memcpy(ret->tee_tcb_svn, b + 19, 16);
    ret->has_tee_tcb_svn2 = b[35] & 1;
    memcpy(ret->tee_tcb_svn2, b + 20, 16);
    if (info->has_tdx_module && ret->tee_tcb_svn[1] == 0)
        memcpy(ret->mr_signer_seam, info->tdx_module.mrsigner, 48);
}

static void fuzz_signed(const char* text, size_t len, bool tcb) {
    size_t off, n;
    if (json_member_span(text, len, tcb ? "tcbInfo" : "enclaveIdentity", &off, &n) == 0 &&
        (off > len || n > len - off))
        abort();
    char* json = NULL;
    size_t json_len;
    uint8_t sig[64];
    struct moat_error err = {0};
    if (pcs_signed_json_split(text, len, tcb ? "tcbInfo" : "enclaveIdentity", &json, &json_len, sig,
                              &err) < 0)
        return;
    size_t o2, n2; /* the span is an object: its own members scan */
    if (json_member_span(json, json_len, "version", &o2, &n2) == -EBADMSG)
        abort();
    if (tcb) {
        struct tcb_info* info = NULL;
        if (tcb_info_parse(json, json_len, &info, &err) == 0) {
            struct tcb_platform p;
            struct tcb_verdict v;
            platform_from((const uint8_t*)text, len, info, &p);
            if (tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err) == 0)
                tcb_verdict_clear(&v);
            tcb_info_free(info);
        }
    } else {
        struct qe_identity* qe = NULL;
        if (qe_identity_parse(json, json_len, &qe, &err) == 0) {
            struct qe_report_fields f = {.isvprodid = qe->isvprodid, .isvsvn = (uint16_t)len};
            memcpy(f.mrsigner, qe->mrsigner, 32);
            memcpy(f.miscselect, qe->miscselect, 4);
            memcpy(f.attributes, qe->attributes, 16);
            enum tcb_status s;
            const struct isv_level* l;
            for (size_t i = 0; i < 16; i++) /* values inside the masks match the identity */
                f.attributes[i] &= qe->attributes_mask[i];
            bool inside = true;
            for (size_t i = 0; i < 4; i++)
                inside &= (qe->miscselect[i] & qe->miscselect_mask[i]) == qe->miscselect[i];
            for (size_t i = 0; i < 16; i++)
                inside &= (qe->attributes[i] & qe->attributes_mask[i]) == qe->attributes[i];
            if (qe_identity_match(qe, NULL, &f, &s, &l, &err) != 0 && inside)
                abort();
            qe_identity_free(qe);
        }
    }
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    const char* text      = (const char*)data + 1;
    size_t len            = size - 1;
    struct moat_error err = {0};
    switch (data[0] & 3) {
        case 0:
        case 1:
            fuzz_signed(text, len, (data[0] & 3) == 0);
            break;
        case 2: {
            struct collateral* c = NULL;
            if (collateral_parse_qvl_json(text, len, &c, &err) == 0)
                collateral_free(c);
            break;
        }
        default: {
            struct cert_chain* chain = NULL;
            struct pck_ext ext;
            if (cert_chain_parse_pem(text, len, &chain, &err) == 0) {
                if (pck_ext_parse(chain->certs[0], &ext, &err) < 0 && err.msg[0] == '\0')
                    abort();
                cert_chain_free(chain);
            }
            break;
        }
    }
    return 0;
}
