/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the token service trusts (attestation.md §2): hardware quotes against collateral from
 * --collateral or a PCCS (--pccs, per platform, kept), the Intel SGX Root CA or --trusted-root;
 * moat SIMULATED quotes only against --trust-simulated's platform.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "pccs.h"
#include "server.h"
#include "sim.h"

/* As ITA: every verdict but Revoked gets a token that names it; a policy decides. */
#define DEFAULT_ACCEPT                                                                            \
    "UpToDate,SWHardeningNeeded,ConfigurationNeeded,ConfigurationAndSWHardeningNeeded,OutOfDate," \
    "OutOfDateConfigurationNeeded"

static int load_anchor(const char* path, X509** ret, struct moat_error* err) {
    _cleanup_free_ char* pem = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &pem, &len, err);
    if (r < 0)
        return r;
    r = x509_parse(pem, len, ret, err);
    return r < 0 ? moat_error_prefix(err, "%s", path) : 0;
}

/* A collateral directory has the PCS files under the names `moat attest init` writes. */
static int load_collateral(const char* path, struct collateral** ret, struct moat_error* err) {
    struct stat st;
    if (stat(path, &st) < 0)
        return moat_error_set_errno(err, -errno, "--collateral %s", path);
    if (!S_ISDIR(st.st_mode))
        return collateral_load_qvl_json(path, ret, err);
    _cleanup_free_ char *ti = path_join(path, SIM_TCB_INFO), *qi = path_join(path, SIM_QE_IDENTITY);
    _cleanup_free_ char *tc = path_join(path, SIM_TCB_CHAIN), *rc = path_join(path, SIM_ROOT_CRL);
    _cleanup_free_ char* pc         = path_join(path, SIM_PCK_CRL);
    struct collateral_pcs_files pcs = {.tcb_info                 = ti,
                                       .tcb_info_issuer_chain    = tc,
                                       .qe_identity              = qi,
                                       .qe_identity_issuer_chain = tc,
                                       .root_ca_crl              = rc,
                                       .pck_crl                  = pc};
    return collateral_load_pcs_files(&pcs, ret, err);
}

int amber_trust_setup(struct amber_server* s, struct moat_error* err) {
    const struct amber_config* c = &s->cfg;
    int r;
    if (c->collateral) {
        if ((r = load_collateral(c->collateral, &s->hw.collateral, err)) < 0)
            return moat_error_prefix(err, "--collateral %s", c->collateral);
        slog("info", "hardware quotes are verified with the collateral in %s against %s",
             c->collateral, c->trusted_root ? c->trusted_root : "the Intel SGX Root CA");
    } else if (c->pccs) {
        s->hw.pccs       = c->pccs;
        s->hw.pccs_cache = c->pccs_cache;
        slog("info", "hardware quotes are verified with collateral from %s against %s", c->pccs,
             c->trusted_root ? c->trusted_root : "the Intel SGX Root CA");
    } else {
        slog("warning",
             "no --collateral or --pccs: hardware quotes cannot be verified and are "
             "refused");
    }
    if (c->trusted_root && (r = load_anchor(c->trusted_root, &s->hw.anchor, err)) < 0)
        return r;
    s->hw.configured = true;
    s->hw.cache      = attest_verify_cache_new();
    if (c->trust_simulated) {
        r = sim_load_verifier(c->trust_simulated, &s->sim.collateral, &s->sim.anchor, err);
        if (r < 0)
            return moat_error_prefix(err, "--trust-simulated %s", c->trust_simulated);
        s->sim.configured = true;
        s->sim.cache      = attest_verify_cache_new();
        slog("warning",
             "--trust-simulated %s: moat SIMULATED quotes get tokens. They prove nothing about "
             "hardware; every such token carries \"moat_simulated\": true. Never in production",
             c->trust_simulated);
    }
    if (c->verify_at) {
        char when[32];
        struct tm tm;
        gmtime_r(&c->verify_at, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        slog("warning",
             "--insecure-verify-at %s: quotes and collateral are verified as at that time, not "
             "now (expired collateral and certificates pass): tests only",
             when);
    }
    const char* accept = c->accept_tcb ? c->accept_tcb : DEFAULT_ACCEPT;
    if ((r = attest_accept_parse(accept, &s->accepted_tcb, err)) < 0)
        return moat_error_prefix(err, "--accept-tcb");
    return 0;
}

void amber_trust_clear(struct amber_trust* t) {
    collateral_free(t->collateral);
    for (size_t i = 0; i < t->n_entries; i++)
        collateral_free(t->entries[i].collateral);
    free(t->entries);
    X509_free(t->anchor);
    attest_verify_cache_free(t->cache);
    *t = (struct amber_trust){0};
}

/* Collateral fetched for a platform (SGX/TDX, FMSPC, PCK CA) is used for a day, then asked
 * for again; when the service cannot be reached, what was fetched before is used (pccs.c
 * warns). The fetch blocks the event loop: once per platform per day. */
#define PCCS_MAX_AGE 86400

int amber_trust_collateral(struct amber_trust* t, const uint8_t* quote, size_t len,
                           const struct collateral** ret, struct moat_error* err) {
    *ret = t->collateral;
    if (!t->pccs)
        return 0;
    struct pccs_request req = {.url = t->pccs, .cache_dir = t->pccs_cache};
    int r                   = pccs_request_for_quote(quote, len, NULL, &req, err);
    if (r < 0)
        return r;
    struct amber_pccs_entry* e = NULL;
    for (size_t i = 0; i < t->n_entries && !e; i++)
        if (t->entries[i].tdx == req.tdx && t->entries[i].processor_ca == req.processor_ca &&
            memcmp(t->entries[i].fmspc, req.fmspc, 6) == 0)
            e = &t->entries[i];
    time_t now = time(NULL);
    if (e && now - e->fetched < PCCS_MAX_AGE) {
        *ret = e->collateral;
        return 0;
    }
    struct collateral* c = NULL;
    if ((r = pccs_collateral(&req, &c, err)) < 0) {
        if (!e)
            return r;
        moat_error_clear(err); /* the service is down: keep what we have */
        *ret = e->collateral;
        return 0;
    }
    if (!e) {
        t->entries = xrealloc(t->entries, (t->n_entries + 1) * sizeof(*t->entries));
        e          = &t->entries[t->n_entries++];
        *e         = (struct amber_pccs_entry){.tdx = req.tdx, .processor_ca = req.processor_ca};
        memcpy(e->fmspc, req.fmspc, 6);
    }
    /* single-threaded, and the verify cache compares collateral by content: freeing is safe */
    collateral_free(e->collateral);
    e->collateral              = c;
    e->fetched                 = now;
    *ret                       = c;
    _cleanup_free_ char* fmspc = hex_encode_alloc(req.fmspc, 6);
    slog("info", "collateral for FMSPC %s (%s) fetched from %s", fmspc, req.tdx ? "TDX" : "SGX",
         t->pccs);
    return 0;
}
