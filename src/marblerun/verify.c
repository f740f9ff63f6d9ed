/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Coordinator's quote, as the `marblerun` CLI checks it (marblerun.h; reference/marblerun.md
 * §7 "Attestation flow", era's VerifyCertificate): the OpenEnclave header and the DCAP quote
 * through moat's verifier (src/attest), then era's policy.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../attest/verify.h"
#include "marblerun.h"
#include "pck.h"

int mr_chain_parse(const char* pem, size_t len, X509** ret_intermediate, X509** ret_root,
                   struct moat_error* err) {
    _cleanup_cert_chain_ struct cert_chain* chain = NULL;
    if (len == 0)
        return moat_error_set(err, -EINVAL, "the Coordinator sent no certificate");
    int r = cert_chain_parse_pem(pem, len, &chain, err);
    if (r < 0)
        return moat_error_prefix(err, "the Coordinator's certificate chain");
    /* §7: "cert" is PEM intermediate then root; the root is self-signed and signs the other */
    if (chain->n != 2)
        return moat_error_set(err, -EINVAL,
                              "the Coordinator's certificate chain has %zu certificates, want 2 "
                              "(intermediate, root)",
                              chain->n);
    *ret_intermediate = chain->certs[0];
    *ret_root         = chain->certs[1];
    chain->n          = 0;
    return 0;
}

/* internal/tcb: UpToDate always; another status only when accepted; SWHardeningNeeded's
 * advisories must all be accepted when a list is given. */
static int check_tcb(const struct attest_verify_result* res, const struct mr_verify_opts* o,
                     struct moat_error* err) {
    if (!res->tcb_evaluated)
        return moat_error_set(err, -EPERM,
                              "the quote's TCB level was not evaluated (%s): give the collateral "
                              "(--collateral, --sim-dir)",
                              res->reason[0] ? res->reason : "no collateral");
    const char* status = tcb_status_name(res->tcb_status);
    if (res->tcb_status == TCB_UP_TO_DATE)
        return 0;
    if (!(o->accepted_tcb & ATTEST_ACCEPT(res->tcb_status)))
        return moat_error_set(
            err, -EPERM, "TCB level invalid: %s (accept it with --accepted-tcb-statuses)", status);
    if (res->tcb_status != TCB_SW_HARDENING_NEEDED || !o->n_accepted_advisories)
        return 0;
    for (size_t i = 0; i < res->n_advisories; i++) {
        bool ok = false;
        for (size_t j = 0; j < o->n_accepted_advisories && !ok; j++)
            ok = strcmp(res->advisories[i], o->accepted_advisories[j]) == 0;
        if (!ok)
            return moat_error_set(err, -EPERM,
                                  "TCB status %s contains an advisory not accepted by "
                                  "--accepted-advisories: %s",
                                  status, res->advisories[i]);
    }
    return 0;
}

/* era's verifyReport: the identity of the era config. */
static int check_identity(const struct quote_sgx_body* b, bool debug, const struct mr_era* e,
                          struct moat_error* err) {
    if (e->has_unique_id && CRYPTO_memcmp(e->unique_id, b->mr_enclave, 32) != 0)
        return moat_error_set(err, -EPERM, "invalid UniqueID: the quote's is not the era config's");
    if (e->has_signer_id && CRYPTO_memcmp(e->signer_id, b->mr_signer, 32) != 0)
        return moat_error_set(err, -EPERM, "invalid SignerID: the quote's is not the era config's");
    if (e->has_product_id && b->isv_prod_id != e->product_id)
        return moat_error_set(err, -EPERM, "invalid ProductID: %u, want %" PRIu64, b->isv_prod_id,
                              e->product_id);
    if (e->has_security_version && b->isv_svn < e->security_version)
        return moat_error_set(err, -EPERM, "invalid SecurityVersion: %u, want at least %" PRIu64,
                              b->isv_svn, e->security_version);
    if (debug && !e->debug)
        return moat_error_set(err, -EPERM,
                              "the Coordinator is a debug enclave and the era config does not "
                              "allow debug (\"Debug\": true)");
    return 0;
}

static void fill_verdict(const struct attest_verify_result* res, struct mr_verdict* v) {
    *v            = (struct mr_verdict){.simulated = res->simulated, .debug = res->debug};
    const char* s = res->tcb_evaluated ? tcb_status_name(res->tcb_status) : res->status;
    snprintf(v->tcb_status, sizeof(v->tcb_status), "%s", s ? s : "");
    if (!res->parsed || res->body_type != 1)
        return;
    if (hex_encode(res->sgx.mr_enclave, 32, v->unique_id, sizeof(v->unique_id)) < 0 ||
        hex_encode(res->sgx.mr_signer, 32, v->signer_id, sizeof(v->signer_id)) < 0)
        v->unique_id[0] = v->signer_id[0] = '\0';
    v->product_id       = res->sgx.isv_prod_id;
    v->security_version = res->sgx.isv_svn;
}

int mr_policy_check(const struct attest_verify_result* res, const uint8_t* root_der,
                    size_t root_len, const uint8_t* nonce, size_t nonce_len,
                    const struct mr_verify_opts* opts, struct mr_verdict* ret,
                    struct moat_error* err) {
    fill_verdict(res, ret);
    if (res->first_failure >= 0 && res->first_failure != ATTEST_CHECK_TCB_LEVEL)
        return moat_error_set(err, -EPERM, "verifying quote failed: %s", res->reason);
    if (!res->parsed || res->body_type != 1)
        return moat_error_set(err, -EPERM, "verifying quote failed: not an SGX enclave quote");
    int r = check_tcb(res, opts, err);
    if (r < 0)
        return r;
    /* §7 step 3, §3.5 /quote: report data = sha256(root DER ‖ nonce) */
    _cleanup_free_ uint8_t* cat = xmalloc(root_len + nonce_len + 1);
    memcpy(cat, root_der, root_len);
    if (nonce_len)
        memcpy(cat + root_len, nonce, nonce_len);
    uint8_t hash[SHA256_DIGEST_SIZE];
    if (sha256_buf(cat, root_len + nonce_len, hash) < 0)
        return moat_error_set(err, -EIO, "sha256");
    if (CRYPTO_memcmp(hash, res->sgx.report_data, sizeof(hash)) != 0)
        return moat_error_set(err, -EPERM,
                              "report data doesn't match the certificate's hash: the quote is "
                              "not bound to this root certificate and nonce (a replayed or "
                              "relayed quote)");
    if (!opts->era)
        return moat_error_set(err, -EPERM, "no era config: nothing to check the identity against");
    return check_identity(&res->sgx, res->debug, opts->era, err);
}

int mr_verify_quote(const uint8_t* quote, size_t len, const uint8_t* root_der, size_t root_len,
                    const uint8_t* nonce, size_t nonce_len, const struct mr_verify_opts* opts,
                    struct mr_verdict* ret, struct moat_error* err) {
    *ret = (struct mr_verdict){0};
    if (len == 0) /* §6: MarbleRun's simulation mode */
        return moat_error_set(err, -EPERM,
                              "the Coordinator sent an empty quote (it runs in simulation mode): "
                              "its identity cannot be verified; --insecure skips the verification");
    struct attest_verify_opts o = {
        .anchor = opts->anchor, .at = opts->at, .allow_debug = true, /* the era config decides */
    };
    for (int s = TCB_UP_TO_DATE; s <= TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED; s++)
        o.accepted |= ATTEST_ACCEPT(s); /* the policy decides on the level */
    struct attest_verify_result res _cleanup_(attest_verify_result_clear) = {0};
    struct moat_error e                                                   = {0};
    if (attest_verify(quote, len, opts->collateral, &o, &res, &e) < 0) {
        fill_verdict(&res, ret);
        return moat_error_set(err, -EPERM, "verifying quote failed: %s", e.msg);
    }
    return mr_policy_check(&res, root_der, root_len, nonce, nonce_len, opts, ret, err);
}
