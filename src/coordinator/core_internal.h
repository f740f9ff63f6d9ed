/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between core.c (state, SetManifest) and core_activate.c (Activate). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

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

/* One generation of what activations read: the manifest (with the SecurityVersions of package
 * updates applied), its specs, the CA, the root secrets and the shared secrets. Immutable once
 * the state is AcceptingMarbles: an update (core_update.c) builds a new generation and swaps
 * c->gen under the lock, so an activation takes a reference under the lock (core_gen_ref) and
 * works on that snapshot without it. Before AcceptingMarbles (no activation holds a reference)
 * SetManifest and recovery change c->gen in place. */
struct core_gen {
    unsigned refs; /* atomic */
    struct coord_manifest* manifest;
    struct core_specs specs;
    struct moat_ca* ca;
    struct moat_root_secrets root;
    struct moat_shared_secrets shared;
};
struct core_gen* core_gen_new(void);
/* Takes a reference; the caller holds c->lock to read c->gen. */
struct core_gen* core_gen_ref(struct core_gen* g);
/* Drops a reference and frees (wiping secrets) with the last one. NULL is fine. */
void core_gen_unref(struct core_gen* g);
static inline void core_gen_unrefp(struct core_gen** g) {
    core_gen_unref(*g);
}

/* The verifier's cache is not thread-safe: activations on several threads each take a slot of
 * their own, so that quote verifications run in parallel. */
#define CORE_VERIFY_SLOTS 8
struct core_verify_slot {
    pthread_mutex_t lock;
    struct attest_verify_cache* cache;
};

/* Takes a free verification slot (waits for one when all are busy); *ret_opts is the core's
 * verify options with the slot's cache. Give it back with core_verify_release. */
struct core_verify_slot* core_verify_acquire(struct coord_core* c,
                                             struct attest_verify_opts* ret_opts);
void core_verify_release(struct core_verify_slot* slot);
/* The manifest's Config.SealMode picks the key the next commits are sealed with: ProductKey
 * (or ""), UniqueKey, or Disabled (nothing written). -EINVAL when UniqueKey has no key. */
int core_check_seal_mode(struct coord_core* c, const struct coord_manifest* m,
                         struct moat_error* err) WARN_UNUSED;
int core_apply_seal_mode(struct coord_core* c, const struct coord_manifest* m,
                         struct moat_error* err) WARN_UNUSED;
/* The collateral for `quote` (raw or behind an OpenEnclave header): the core's, or the
 * collateral_for_quote hook's. */
int core_collateral(struct coord_core* c, const uint8_t* quote, size_t len,
                    const struct collateral** ret, struct moat_error* err);

struct coord_core {
    pthread_mutex_t lock; /* state, store writes, counters, c->gen */
    struct core_verify_slot verify[CORE_VERIFY_SLOTS];
    atomic_uint next_verify;
    struct store* store;
    enum coord_state state;
    struct core_gen* gen;   /* never NULL */
    uint64_t ca_generation; /* bumped whenever gen->ca changes (coord_core_ca_generation) */
    char** dns_names;
    bool simulation;
    const struct collateral* collateral;
    const struct attest_verify_opts* verify_opts;
    int (*collateral_for_quote)(void* ctx, const uint8_t* quote, size_t len,
                                const struct collateral** ret, struct moat_error* err);
    void* collateral_ctx;
    /* the manifest signature of GET /manifest (core_server.c), for the manifest whose
     * fingerprint is manifest_sig_fp */
    uint8_t* manifest_sig;
    size_t manifest_sig_len;
    char manifest_sig_fp[SHA256_HEX_SIZE];
    /* --- core_users.c --- */
    /* Uploaded values of user-defined secrets (only those ever written). Guarded by `lock`;
     * activations render from a copy taken under it (core_user_secrets_snapshot). */
    struct moat_secret_set user_secrets;
    struct core_recovery* recovery; /* Recovery only: core_recover.c; NULL otherwise */
};

struct recovery_setup;
struct moat_ca_der;
/* secret:<n> / previousSecret:<n> = {"Type", "Cert", "Private", "Public"} (core.c). */
void core_txn_put_secret(struct store_txn* t, const char* prefix, const struct moat_secret* s);
int core_load_secret(struct store* st, const char* prefix, const char* name,
                     struct moat_secret* ret) WARN_UNUSED;
/* The CA's five store keys (§3.4). */
void core_txn_put_ca(struct store_txn* t, const struct moat_ca_der* d);
/* A new DEK and RecoverySecrets for the manifest's RecoveryKeys and threshold. */
int core_recovery_for(const struct coord_manifest* m, struct recovery_setup* ret,
                      struct moat_error* err) WARN_UNUSED;
void core_recovery_secrets_from(const struct recovery_setup* rs,
                                struct coord_recovery_secrets* ret);

/* A PEM block of `type` around `der` (malloc'd, NUL-terminated). */
char* core_pem(const char* type, const uint8_t* der, size_t len, size_t* ret_len);

/* MarbleRun's TemplateDryRun (§1.7) for SetManifest: "in Marble <m>: file <path>: <err>",
 * "in Marble <m>: env variable <e>: <err>". */
int core_template_dry_run(const struct coord_manifest* m, const struct core_specs* specs,
                          const struct moat_ca* ca, const struct moat_secret_set* shared,
                          struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Manifest updates (core_update.c)                                                          */

/* The update log line MarbleRun's updatelog writes (§3.4 "updateLog"): one JSON object with
 * "time" and "update" first, then `fields_json` (an object, may be NULL) merged in. Returns a
 * malloc'd line ending in '\n'. */
char* core_update_log_line(const char* msg, const char* fields_json);
/* Appends a line to the update log in transaction `t` (takes `fields`, may be NULL). */
struct json_t;
void core_update_log_append(struct store_txn* t, const char* msg, struct json_t* fields);
/* At start (core.c restore): applies the package updates ("package:<n>") to gen->manifest and
 * loads the shared secrets before the last update ("previousSecret:<n>"). */
int core_update_restore(struct coord_core* c, struct moat_error* err) WARN_UNUSED;
/* core_users.c                                                                               */

/* coord_core_user_allowed for callers that hold c->lock (no state check). */
/* user.User.IsGranted against manifest `m` (coord_core_user_allowed without the core). */
bool core_manifest_user_allowed(const struct coord_manifest* m, const char* user,
                                const char* resource_type, const char* resource_name,
                                const char* action);
bool core_user_allowed_locked(struct coord_core* c, const char* user, const char* resource_type,
                              const char* resource_name, const char* action);
/* Loads the uploaded user-defined secrets of the restored manifest (start-up, after specs). */
int core_users_restore(struct coord_core* c, struct moat_error* err) WARN_UNUSED;
/* A deep copy of c->user_secrets, taken under c->lock (clear it with moat_secret_set_clear). */
void core_user_secrets_snapshot(struct coord_core* c, struct moat_secret_set* ret);
/* Loads the state the store holds (NewCore after store_load): the CA, root secrets and, in
 * AcceptingMarbles, the manifest and shared secrets; sets c->state. c->ca must be NULL. */
int core_restore(struct coord_core* c, struct moat_error* err) WARN_UNUSED;

/* ---- recovery (core_recover.c; §3.4 "DEK and recovery keys") ---------------------------- */

/* The ephemeral key, the uploaded shares and their signatures; wiped. Accepts NULL. */
struct core_recovery;
void core_recovery_free(struct core_recovery* r);
/* ---- end of recovery ---------------------------------------------------------------------- */
