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
    /* --- core_users.c --- */
    /* Uploaded values of user-defined secrets (only those ever written). Guarded by `lock`;
     * activations render from a copy taken under it (core_user_secrets_snapshot). */
    struct moat_secret_set user_secrets;
};

/* A PEM block of `type` around `der` (malloc'd, NUL-terminated). */
char* core_pem(const char* type, const uint8_t* der, size_t len, size_t* ret_len);

/* MarbleRun's TemplateDryRun (§1.7) for SetManifest: "in Marble <m>: file <path>: <err>",
 * "in Marble <m>: env variable <e>: <err>". */
int core_template_dry_run(const struct coord_manifest* m, const struct core_specs* specs,
                          const struct moat_ca* ca, const struct moat_secret_set* shared,
                          struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* core_users.c                                                                               */

/* coord_core_user_allowed for callers that hold c->lock (no state check). */
bool core_user_allowed_locked(struct coord_core* c, const char* user, const char* resource_type,
                              const char* resource_name, const char* action);
/* Loads the uploaded user-defined secrets of the restored manifest (start-up, after specs). */
int core_users_restore(struct coord_core* c, struct moat_error* err) WARN_UNUSED;
/* A deep copy of c->user_secrets, taken under c->lock (clear it with moat_secret_set_clear). */
void core_user_secrets_snapshot(struct coord_core* c, struct moat_secret_set* ret);
