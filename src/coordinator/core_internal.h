/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between core.c (state, SetManifest) and core_activate.c (Activate). */
#pragma once

#include <pthread.h>

#include "coordinator.h"
#include "core.h"
#include "secrets.h"
#include "store.h"

/* The manifest's Secrets as secrets.h specs; the lists they point to live in `allocs`. */
struct core_specs {
    size_t n;
    struct moat_secret_spec* v;
    size_t n_allocs;
    void** allocs;
};
void core_specs_clear(struct core_specs* s);
int core_specs_build(const struct coord_manifest* m, struct core_specs* ret,
                     struct moat_error* err) WARN_UNUSED;

struct coord_core {
    pthread_mutex_t lock;        /* state, store writes, counters */
    pthread_mutex_t verify_lock; /* the verifier's cache is not thread-safe */
    struct store* store;
    enum coord_state state;
    /* Set with the manifest and read-only in AcceptingMarbles (no UpdateManifest yet), so
     * activations read them without the lock once they saw that state. */
    struct coord_manifest* manifest;
    struct core_specs specs;
    struct moat_ca* ca;
    struct moat_root_secrets root;
    struct moat_shared_secrets shared;
    char** dns_names;
    bool simulation;
    const struct collateral* collateral;
    const struct attest_verify_opts* verify_opts;
    struct core_recovery* recovery; /* Recovery only: core_recover.c; NULL otherwise */
};

/* A PEM block of `type` around `der` (malloc'd, NUL-terminated). */
char* core_pem(const char* type, const uint8_t* der, size_t len, size_t* ret_len);

/* MarbleRun's TemplateDryRun (§1.7) for SetManifest: "in Marble <m>: file <path>: <err>",
 * "in Marble <m>: env variable <e>: <err>". */
int core_template_dry_run(const struct coord_manifest* m, const struct core_specs* specs,
                          const struct moat_ca* ca, const struct moat_secret_set* shared,
                          struct moat_error* err) WARN_UNUSED;

/* Loads the state the store holds (NewCore after store_load): the CA, root secrets and, in
 * AcceptingMarbles, the manifest and shared secrets; sets c->state. c->ca must be NULL. */
int core_restore(struct coord_core* c, struct moat_error* err) WARN_UNUSED;

/* ---- recovery (core_recover.c; §3.4 "DEK and recovery keys") ---------------------------- */

/* The ephemeral key, the uploaded shares and their signatures; wiped. Accepts NULL. */
struct core_recovery;
void core_recovery_free(struct core_recovery* r);
/* ---- end of recovery ---------------------------------------------------------------------- */
