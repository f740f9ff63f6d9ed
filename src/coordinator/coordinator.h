/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat coordinator: the one public header of src/coordinator (issue 12).
 *
 * The MarbleRun manifest as one typed model (reference/marblerun.md §1). coord_manifest_parse
 * decodes the JSON with Go encoding/json semantics (struct field names case-insensitive, map keys
 * case-sensitive, unknown fields ignored, null = absent, File string/object forms decoded at
 * parse time) and keeps the uploaded bytes byte-exact; coord_manifest_check is MarbleRun's
 * Manifest.Check with its exact error strings, in its order.
 *
 * Maps are arrays sorted by key (byte order, keys unique): Go iterates maps in random order, so
 * where MarbleRun reports "the first" offending entry of a map we report the smallest key. Find
 * entries with the coord_manifest_*_find helpers. Every string is NUL-terminated; File data may
 * hold NUL bytes and carries its length.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

struct json_t;

/* A string list ([]string). NULL `v` and n == 0 when absent or null. */
struct coord_strv {
    size_t n;
    char** v;
};

/* §1.1 PackageProperties. ProductID/SecurityVersion: absent or null = unset, 0 is a value. */
struct coord_package {
    char* name;
    bool debug;
    char* unique_id; /* "" when absent */
    char* signer_id; /* "" when absent */
    bool has_product_id;
    uint64_t product_id;
    bool has_security_version;
    uint64_t security_version; /* Go uint (64-bit) */
    struct coord_strv accepted_tcb_statuses;
    struct coord_strv accepted_advisories;
};

enum coord_file_encoding {
    COORD_ENCODING_STRING = 0,
    COORD_ENCODING_BASE64,
    COORD_ENCODING_HEX,
};

/* §1.2 File (Parameters.Files and Parameters.Env values). `data` is already decoded from the
 * manifest's encoding; `encoding_name` is the text as written ("string" for the string form, and
 * for an empty Encoding), kept because MarbleRun keeps it. */
struct coord_file {
    char* name; /* the path (Files) or the variable name (Env) */
    uint8_t* data;
    size_t len;
    enum coord_file_encoding encoding;
    char* encoding_name;
    bool no_templates;
};

struct coord_files {
    size_t n;
    struct coord_file* v;
};

/* §1.2 Marble */
struct coord_marble {
    char* name;
    char* package;
    uint64_t max_activations; /* 0 = unlimited */
    struct coord_files files;
    struct coord_files env;
    struct coord_strv argv; /* never templated */
    struct coord_strv tls;  /* TLS tag names */
    bool disable_secret_binding;
};

/* §1.4 */
struct coord_user {
    char* name;
    char* certificate; /* PEM as written; "" when absent */
    struct coord_strv roles;
};

struct coord_role {
    char* name;
    char* resource_type;
    struct coord_strv resource_names;
    struct coord_strv actions;
};

/* §1.3 Secret. `cert_template` is the manifest's x509 template object exactly as parsed
 * (jansson, borrowed from the model; NULL when absent, null or given as a DER string): the CA
 * reads Subject, DNSNames, IPAddresses, KeyUsage, ExtKeyUsage, ... from it with
 * coord_json_field(), which matches field names as Go does. NotAfter is parsed here because
 * Check needs it. A Cert given as a JSON string (the state/API form) is base64 DER in
 * cert_der. Private/Public are base64 []byte in the state/API form, normally absent. */
struct coord_secret {
    char* name;
    char* type;
    uint64_t size; /* bits */
    bool shared;
    bool user_defined;
    uint64_t valid_for; /* days, 0 = default */
    struct json_t* cert_template;
    bool has_not_after;
    time_t not_after; /* Cert.NotAfter (RFC 3339), UTC */
    uint8_t* cert_der;
    size_t cert_der_len;
    uint8_t* private_key;
    size_t private_len;
    uint8_t* public_key;
    size_t public_len;
};

/* §1.5 */
struct coord_tls_entry {
    char* port;
    char* addr;
    char* cert;
    bool disable_client_auth;
};
struct coord_tls_tag {
    char* name;
    size_t n_outgoing;
    struct coord_tls_entry* outgoing;
    size_t n_incoming;
    struct coord_tls_entry* incoming;
};

/* A map name -> string (RecoveryKeys). */
struct coord_kv {
    char* name;
    char* value;
};

/* Infrastructures: kept (as jansson values, borrowed from the model) and otherwise ignored
 * (reference/marblerun.md §1: the compliance check is a TODO upstream). */
struct coord_infrastructure {
    char* name;
    struct json_t* value;
};

/* §1.6 */
struct coord_config {
    char* seal_mode; /* "" = ProductKey */
    struct coord_strv feature_gates;
    uint64_t update_threshold;
    uint64_t recovery_threshold;
    bool rotate_root_secret;
};

struct coord_manifest {
    uint8_t* raw; /* the uploaded bytes, byte-exact (NUL-terminated, not counted) */
    size_t raw_len;
    char fingerprint[SHA256_HEX_SIZE]; /* hex(sha256(raw)) */

    size_t n_packages;
    struct coord_package* packages;
    size_t n_infrastructures;
    struct coord_infrastructure* infrastructures;
    size_t n_marbles;
    struct coord_marble* marbles;
    size_t n_users;
    struct coord_user* users;
    size_t n_secrets;
    struct coord_secret* secrets;
    size_t n_recovery_keys;
    struct coord_kv* recovery_keys;
    size_t n_roles;
    struct coord_role* roles;
    size_t n_tls;
    struct coord_tls_tag* tls;
    struct coord_config config;

    struct json_t* root; /* the parsed tree; owns cert_template and infrastructure values */
};

/* Parses a manifest. Copies `raw`. On failure *ret_m is untouched and err holds Go's message
 * where encoding/json or MarbleRun has one ("unknown encoding type: x", "illegal base64 data at
 * input byte 3", "encoding/hex: odd length hex string", "json: cannot unmarshal string into Go
 * struct field PackageProperties.Packages.world.ProductID of type uint64": Go's text with the
 * map keys added to the field path). Returns 0, -EINVAL (bad manifest) or -ENOMEM. */
int coord_manifest_parse(const void* raw, size_t len, struct coord_manifest** ret_m,
                         struct moat_error* err) WARN_UNUSED;
void coord_manifest_free(struct coord_manifest* m);
static inline void coord_manifest_freep(struct coord_manifest** m) {
    coord_manifest_free(*m);
}
#define _cleanup_coord_manifest_ _cleanup_(coord_manifest_freep)

/* Lookups by exact (case-sensitive) name; NULL when absent. */
const struct coord_package* coord_manifest_package(const struct coord_manifest* m,
                                                   const char* name);
const struct coord_marble* coord_manifest_marble(const struct coord_manifest* m, const char* name);
const struct coord_secret* coord_manifest_secret(const struct coord_manifest* m, const char* name);
const struct coord_role* coord_manifest_role(const struct coord_manifest* m, const char* name);
const struct coord_tls_tag* coord_manifest_tls(const struct coord_manifest* m, const char* name);
const struct coord_user* coord_manifest_user(const struct coord_manifest* m, const char* name);

/* Go's field lookup on a JSON object: the last member whose name matches `name` ignoring ASCII
 * case (encoding/json applies every matching member in document order, so the last one wins).
 * NULL when absent. Borrowed. */
struct json_t* coord_json_field(struct json_t* obj, const char* name);

/* MarbleRun's Manifest.Check (reference/marblerun.md §1.7): 0 or -EINVAL with MarbleRun's exact
 * message. Debug relaxations are logged as warnings (log_warning), as MarbleRun logs them. The
 * AzureHSMSealing feature gate reads the process environment. */
int coord_manifest_check(const struct coord_manifest* m, struct moat_error* err) WARN_UNUSED;

/* The Go template dry run that follows Check in SetManifest (§1.7, TemplateDryRun) is the
 * template engine's (src/gotemplate); this hook runs only its template-independent part, the
 * NUL check on Env data: "in Marble <m>: env variable: <e>: content contains null bytes". */
int coord_manifest_check_env_nul(const struct coord_manifest* m,
                                 struct moat_error* err) WARN_UNUSED;

/* GenerateUsers' certificate check: each user's Certificate must be a PEM block holding an X.509
 * certificate, else "received invalid certificate for user <u>" (§1.7). */
int coord_manifest_check_user_certs(const struct coord_manifest* m,
                                    struct moat_error* err) WARN_UNUSED;

/* IsUpdateManifest (§1.8): true when the manifest has nothing but Packages (and Config). */
bool coord_manifest_is_update(const struct coord_manifest* m);

/* CheckUpdate (§1.8): a package-only update against the packages of the current manifest.
 * 0 or -EINVAL with MarbleRun's message. */
int coord_manifest_check_update(const struct coord_manifest* update,
                                const struct coord_manifest* original,
                                struct moat_error* err) WARN_UNUSED;
