/* SPDX-License-Identifier: Apache-2.0 */
/* A Marble's quote at activation (marble_quote.h; reference/marblerun.md §4.4). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "marble_quote.h"

int marble_quote_unwrap(const uint8_t* report, size_t len, const uint8_t** ret_quote,
                        size_t* ret_len, struct moat_error* err) {
    struct cursor c = cursor_init(report, len);
    uint32_t version, type;
    uint64_t quote_len;
    if (len == 0)
        return moat_error_set(err, -EINVAL, "the quote is empty");
    if (cur_u32le(&c, &version) < 0 || cur_u32le(&c, &type) < 0 || cur_u64le(&c, &quote_len) < 0)
        return moat_error_set(err, -EINVAL, "the OpenEnclave report header is truncated");
    if (version != 1 || type != 2)
        return moat_error_set(err, -EINVAL,
                              "not an OpenEnclave SGX remote report (version %" PRIu32
                              ", type %" PRIu32 "; want 1 and 2)",
                              version, type);
    if (quote_len != c.len)
        return moat_error_set(err, -EINVAL,
                              "the OpenEnclave report says %" PRIu64 " quote bytes, %zu follow",
                              quote_len, c.len);
    *ret_quote = c.p;
    *ret_len   = c.len;
    return 0;
}

/* Go's %v of a byte slice: [1 2 3] */
static void go_bytes(struct strbuf* sb, const uint8_t* p, size_t n) {
    strbuf_puts(sb, "[");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(sb, "%s%u", i ? " " : "", p[i]);
    strbuf_puts(sb, "]");
}

static bool listed(const char* const* list, size_t n, const char* s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

/* internal/tcb CheckStatus: UpToDate always; any other status must be accepted (an empty list
 * means SWHardeningNeeded only); SWHardeningNeeded's advisories must all be accepted when the
 * manifest lists some. */
static int check_tcb(const struct attest_verify_result* res, const struct marble_package* pkg,
                     struct moat_error* err) {
    const char* status = tcb_status_name(res->tcb_status);
    if (res->tcb_status == TCB_UP_TO_DATE)
        return 0;
    static const char* const dflt[] = {"SWHardeningNeeded"};
    const char* const* acc = pkg->n_accepted_tcb_statuses ? pkg->accepted_tcb_statuses : dflt;
    size_t nacc            = pkg->n_accepted_tcb_statuses ? pkg->n_accepted_tcb_statuses : 1;
    if (!listed(acc, nacc, status))
        return moat_error_set(err, -EPERM, "TCB level invalid: %s", status);
    if (res->tcb_status != TCB_SW_HARDENING_NEEDED || !pkg->n_accepted_advisories)
        return 0;
    struct strbuf bad = STRBUF_INIT;
    for (size_t i = 0; i < res->n_advisories; i++)
        if (!listed(pkg->accepted_advisories, pkg->n_accepted_advisories, res->advisories[i]))
            strbuf_printf(&bad, "%s%s", bad.len ? " " : "", res->advisories[i]);
    int r = 0;
    if (bad.len)
        r = moat_error_set(err, -EPERM,
                           "TCB status %s contains advisories not accepted by configuration: [%s]",
                           status, bad.buf);
    strbuf_free(&bad);
    return r;
}

struct reported {
    bool debug;
    char unique_id[65], signer_id[65];
    uint64_t product_id, security_version;
};

/* PackageProperties.String(): {Debug: true, UniqueID: "...", ...} with the fields that are set */
static void pkg_string(struct strbuf* sb, const struct marble_package* p) {
    strbuf_printf(sb, "{Debug: %s", p->debug ? "true" : "false");
    if (p->unique_id && *p->unique_id)
        strbuf_printf(sb, ", UniqueID: \"%s\"", p->unique_id);
    if (p->signer_id && *p->signer_id)
        strbuf_printf(sb, ", SignerID: \"%s\"", p->signer_id);
    if (p->product_id)
        strbuf_printf(sb, ", ProductID: %" PRIu64, *p->product_id);
    if (p->security_version)
        strbuf_printf(sb, ", SecurityVersion: %" PRIu64, *p->security_version);
    if (p->n_accepted_tcb_statuses) {
        strbuf_puts(sb, ", AcceptedTCBStatuses: [");
        for (size_t i = 0; i < p->n_accepted_tcb_statuses; i++)
            strbuf_printf(sb, "%s%s", i ? " " : "", p->accepted_tcb_statuses[i]);
        strbuf_puts(sb, "]");
    }
    strbuf_puts(sb, "}");
}

static int check_package(const struct reported* got, const struct marble_package* want,
                         struct moat_error* err) {
    bool ok =
        want->debug == got->debug &&
        (!want->unique_id || !*want->unique_id || !strcasecmp(want->unique_id, got->unique_id)) &&
        (!want->signer_id || !*want->signer_id || !strcasecmp(want->signer_id, got->signer_id)) &&
        (!want->product_id || *want->product_id == got->product_id) &&
        (!want->security_version || *want->security_version <= got->security_version);
    if (ok)
        return 0;
    struct marble_package g = {.debug            = got->debug,
                               .unique_id        = got->unique_id,
                               .signer_id        = got->signer_id,
                               .product_id       = &got->product_id,
                               .security_version = &got->security_version};
    struct strbuf e = STRBUF_INIT, r = STRBUF_INIT;
    pkg_string(&e, want);
    pkg_string(&r, &g);
    int rc = moat_error_set(err, -EPERM, "PackageProperties not compliant:\nexpected: %s\ngot: %s",
                            e.buf, r.buf);
    strbuf_free(&e);
    strbuf_free(&r);
    return rc;
}

int marble_policy_check(const struct attest_verify_result* res, const uint8_t* cert_der,
                        size_t cert_len, const struct marble_package* pkg, struct moat_error* err) {
    if (!res->parsed || res->body_type != 1)
        return moat_error_set(err, -EPERM, "verifying quote failed: not an SGX enclave quote");
    int r = check_tcb(res, pkg, err);
    if (r < 0)
        return r;
    uint8_t hash[SHA256_DIGEST_SIZE];
    if (sha256_buf(cert_der, cert_len, hash) < 0)
        return moat_error_set(err, -EIO, "cannot hash the marble's certificate");
    if (CRYPTO_memcmp(hash, res->sgx.report_data, sizeof(hash)) != 0) {
        struct strbuf sb = STRBUF_INIT;
        go_bytes(&sb, hash, sizeof(hash));
        strbuf_puts(&sb, " != ");
        go_bytes(&sb, res->sgx.report_data, sizeof(res->sgx.report_data));
        r = moat_error_set(err, -EPERM, "hash(cert) != report.Data: %s", sb.buf);
        strbuf_free(&sb);
        return r;
    }
    struct reported got = {
        .debug            = res->debug,
        .product_id       = res->sgx.isv_prod_id, /* ProductID read as u64 LE: the 16-bit ID */
        .security_version = res->sgx.isv_svn,
    };
    if (hex_encode(res->sgx.mr_enclave, 32, got.unique_id, sizeof(got.unique_id)) < 0 ||
        hex_encode(res->sgx.mr_signer, 32, got.signer_id, sizeof(got.signer_id)) < 0)
        return moat_error_set(err, -EIO, "cannot encode the report's identities");
    return check_package(&got, pkg, err);
}

int marble_quote_validate(const uint8_t* report, size_t len, const uint8_t* cert_der,
                          size_t cert_len, const struct marble_package* pkg,
                          const struct collateral* c, const struct attest_verify_opts* opts,
                          struct moat_error* err) {
    const uint8_t* quote;
    size_t quote_len;
    struct moat_error e = {0};
    if (marble_quote_unwrap(report, len, &quote, &quote_len, &e) < 0)
        return moat_error_set(err, -EPERM, "verifying quote failed: %s", e.msg);
    struct attest_verify_opts o = *opts;
    o.allow_debug               = true; /* the package's Debug decides */
    for (int s = TCB_UP_TO_DATE; s <= TCB_REVOKED; s++)
        o.accepted |= ATTEST_ACCEPT(s); /* the policy decides on the level */
    struct attest_verify_result res = {0};
    int r                           = attest_verify(quote, quote_len, c, &o, &res, &e);
    if (r < 0)
        r = moat_error_set(err, -EPERM, "verifying quote failed: %s", e.msg);
    else if (res.first_failure >= 0 && res.first_failure != ATTEST_CHECK_TCB_LEVEL)
        r = moat_error_set(err, -EPERM, "verifying quote failed: %s", res.reason);
    else if (!res.tcb_evaluated)
        r = moat_error_set(err, -EPERM, "verifying quote failed: %s",
                           res.reason[0] ? res.reason : "no TCB verdict (no collateral)");
    else
        r = marble_policy_check(&res, cert_der, cert_len, pkg, err);
    attest_verify_result_clear(&res);
    return r;
}
