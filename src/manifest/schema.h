/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: the manifest key table (reference/gramine.md §1.3 and §1.4). One row per
 * key: its path pattern ('*' matches one component), the TOML types it accepts, its default,
 * a validator, and for Graphene-era keys the replacement that `manifest migrate` applies.
 */
#pragma once

#include "check.h"
#include "toml.h"

enum {
    VT_BOOL   = 1u << 0,
    VT_INT    = 1u << 1,
    VT_STRING = 1u << 2,
    VT_TABLE  = 1u << 3,
    VT_ARRAY  = 1u << 4,
    VT_FLOAT  = 1u << 5,
    VT_ANY    = 0x3f,
};

enum key_status {
    KEY_CURRENT, /* Gramine v1.9 key */
    KEY_LEGACY,  /* Graphene-era key the runtime ignores: warning naming the replacement */
    KEY_REMOVED, /* key Gramine refuses to start with: error (Gramine's message) */
};

struct check_ctx {
    const struct toml_value* root;
    const struct manifest_check_opts* opts;
    struct manifest_diags* diags;
    int errors;
};

/* A value being checked and where it is written. */
struct checked {
    const char* key; /* display form, e.g. "fs.mounts[1].path" */
    const struct toml_value* v;
    uint32_t line, col;
};

typedef void (*key_validator)(struct check_ctx* c, const struct checked* k);

struct schema_key {
    const char* pattern;
    unsigned types;
    enum key_status status;
    key_validator validate;  /* runs after the type check passed; may be NULL */
    const char* replacement; /* KEY_LEGACY / KEY_REMOVED: message or replacement key */
};

extern const struct schema_key g_schema[];
extern const size_t g_schema_len;

/* Finds the row whose pattern matches the key components exactly; NULL if none. */
const struct schema_key* schema_lookup(const char* const* comps, size_t n);
/* True if some pattern is longer than comps and starts with them (comps name a table). */
bool schema_is_prefix(const char* const* comps, size_t n);
/* Suggests the closest known key for an unknown one, or NULL. Returns a malloc'd string. */
char* schema_suggest(const char* const* comps, size_t n);

/* Reports a diagnostic through the context (counts errors). */
void check_report(struct check_ctx* c, enum diag_severity sev, const struct checked* k,
                  const char* fmt, ...) PRINTF_FMT(4, 5);

/* "a boolean", "an integer", … */
const char* vt_name(unsigned types);
unsigned vt_of(const struct toml_value* v);

/* Whole-manifest rules that involve several keys (argv exclusivity, env sources, …). */
void check_cross_keys(struct check_ctx* c);
