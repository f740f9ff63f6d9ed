/* SPDX-License-Identifier: Apache-2.0 */
/* moat-marblerun's own parts (main.c: options and the command table; commands.c: the commands;
 * connect.c: trusting a Coordinator). Not a public header of the component: marblerun.h is. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "marblerun.h"

/* Every flag of every command (MarbleRun's CLI accepts them anywhere on the line). */
struct mr_args {
    const char* cert;             /* -c/--cert */
    const char* key;              /* -k/--key */
    bool insecure;                /* -i/--insecure */
    bool json;                    /* --json */
    const char* coordinator_cert; /* --coordinator-cert (default: mr_cache_default_path) */
    const char* era_config;       /* --era-config */
    const char *unique_id, *signer_id, *product_id, *security_version; /* identity flags */
    bool allow_debug;                                                  /* --debug-coordinator */
    uint32_t accepted_tcb;                                             /* --accepted-tcb-statuses */
    char** advisories;                                                 /* --accepted-advisories */
    size_t n_advisories;
    const char* nonce;               /* --nonce */
    const char* save_sgx_quote;      /* --save-sgx-quote */
    const char* sim_dir;             /* --sim-dir, $MOAT_SIM_DIR */
    const char* collateral;          /* --collateral */
    const char* trusted_root;        /* --trusted-root */
    const char* output;              /* -o/--output */
    const char* recovery_data;       /* -r/--recoverydata */
    const char* from_pem;            /* --from-pem */
    bool missing;                    /* --missing */
    const char* signature;           /* -s/--signature */
    const char* coordinator_pub_key; /* --coordinator-pub-key */
    char* default_cache;             /* owned */
};

/* How a command trusts the Coordinator (reference §7; MarbleRun's certcache). */
enum mr_trust {
    MR_TRUST_CACHE,          /* the cached root as TLS anchor; verify the quote if none is cached */
    MR_TRUST_VERIFY_STORE,   /* verify the quote, then cache the root (manifest set, verify) */
    MR_TRUST_VERIFY_COMPARE, /* verify the quote; the root must be the cached one (certificate) */
    MR_TRUST_VERIFY_ONLY,    /* verify the quote, leave the cache (recover: a recovering
                                Coordinator has a temporary root) */
};

struct mr_session {
    struct mr_http* http;
    char* chain_pem; /* intermediate + root from /quote, or the cache's; owned */
};
void mr_session_clear(struct mr_session* s);

/* Connects to `addr` as `trust` says, with the client certificate when `auth`. Prints the
 * verification on stderr. 0, or an exit code (MOAT_EXIT_*) after reporting the error. */
int mr_connect(const struct mr_args* a, const char* addr, enum mr_trust trust, bool auth,
               struct mr_session* ret);

/* A request whose failure is reported (also a TLS refusal of a changed root, in MarbleRun's
 * words). 0, or MOAT_EXIT_RUNTIME. */
int mr_call(const struct mr_args* a, struct mr_session* s, const char* addr, const char* method,
            const char* path, const json_t* body, struct mr_response* r);

/* The commands: args are the positional arguments after the command words. */
int mr_cmd_status(const struct mr_args* a, char** args);
int mr_cmd_manifest_set(const struct mr_args* a, char** args);
int mr_cmd_manifest_get(const struct mr_args* a, char** args);
int mr_cmd_manifest_log(const struct mr_args* a, char** args);
int mr_cmd_manifest_signature(const struct mr_args* a, char** args);
int mr_cmd_manifest_verify(const struct mr_args* a, char** args);
int mr_cmd_update_apply(const struct mr_args* a, char** args);
int mr_cmd_update_acknowledge(const struct mr_args* a, char** args);
int mr_cmd_update_cancel(const struct mr_args* a, char** args);
int mr_cmd_update_get(const struct mr_args* a, char** args);
int mr_cmd_certificate_root(const struct mr_args* a, char** args);
int mr_cmd_certificate_intermediate(const struct mr_args* a, char** args);
int mr_cmd_certificate_chain(const struct mr_args* a, char** args);
int mr_cmd_secret_set(const struct mr_args* a, char** args);
int mr_cmd_secret_get(const struct mr_args* a, char** args);
int mr_cmd_recover(const struct mr_args* a, char** args);
int mr_cmd_recover_with_signature(const struct mr_args* a, char** args);
int mr_cmd_recover_public_key(const struct mr_args* a, char** args);
int mr_cmd_recover_encrypt_secret(const struct mr_args* a, char** args);
int mr_cmd_recover_sign_secret(const struct mr_args* a, char** args);

/* Shared by the commands: prints `o` (indented) on standard output; writes `len` bytes to
 * `path` atomically with `mode` ("-" or NULL: standard output). MOAT_EXIT_* */
int mr_print_json(const json_t* o);
int mr_write_out(const char* path, const void* buf, size_t len, mode_t mode);

/* Reports an error ("moat marblerun: error: …") and returns MOAT_EXIT_RUNTIME. */
int mr_fail(const struct moat_error* err);
