/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gramine-manifest's defaults (reference/gramine.md §2 step 2): injected into every rendered
 * manifest so that the finalized file states everything the runtime and the signer use.
 */
#include <string.h>

#include "check.h"

static int table_at(struct toml_value* root, const char* key, struct toml_value** ret,
                    struct moat_error* err) {
    struct toml_value* t = toml_table_get(root, key);
    if (!t) {
        t = toml_new_table();
        toml_table_set(root, key, t);
    } else if (t->type != TOML_TABLE) {
        return moat_error_set(err, -EINVAL, "'%s' must be a table, not %s", key,
                              toml_type_name(t->type));
    }
    *ret = t;
    return 0;
}

static void set_default(struct toml_value* table, const char* key, struct toml_value* v) {
    if (toml_table_get(table, key))
        toml_free(v);
    else
        toml_table_set(table, key, v);
}

int manifest_inject_defaults(struct toml_value* root, const char* libos_path,
                             struct moat_error* err) {
    struct toml_value *sgx = NULL, *loader = NULL, *features = NULL;
    int ret = table_at(root, "sgx", &sgx, err);
    if (ret < 0)
        return ret;

    struct toml_value* tf = toml_table_get(sgx, "trusted_files");
    if (tf && tf->type != TOML_ARRAY)
        return moat_error_set(err, -EINVAL,
                              "Unsupported trusted files syntax, more info: "
                              "https://gramine.readthedocs.io/en/latest/"
                              "manifest-syntax.html#trusted-files ('sgx.trusted_files' is a "
                              "Graphene-era table; 'moat manifest migrate' rewrites it)");
    set_default(sgx, "trusted_files", toml_new_array());
    tf = toml_table_get(sgx, "trusted_files");
    for (size_t i = 0; i < tf->u.arr.len; i++) {
        /* string entries become { uri = "..." } tables */
        struct toml_value* e = tf->u.arr.items[i];
        if (e->type == TOML_STRING) {
            struct toml_value* t = toml_new_table();
            t->line              = e->line;
            t->col               = e->col;
            toml_table_set(t, "uri", e);
            tf->u.arr.items[i] = t;
        }
    }
    set_default(sgx, "max_threads", toml_new_integer(4));
    set_default(sgx, "isvprodid", toml_new_integer(0));
    set_default(sgx, "isvsvn", toml_new_integer(0));
    set_default(sgx, "remote_attestation", toml_new_string("none"));
    set_default(sgx, "debug", toml_new_bool(false));
    set_default(sgx, "enable_stats", toml_new_bool(false));
    set_default(sgx, "edmm_enable", toml_new_bool(false));
    bool edmm = false;
    if (toml_get_bool(root, "sgx.edmm_enable", false, &edmm) < 0)
        edmm = false; /* the schema check reports the wrong type */
    set_default(sgx, "enclave_size", toml_new_string(edmm ? "1024G" : "256M"));
    set_default(sgx, "use_exinfo", toml_new_bool(false));
    ret = table_at(sgx, "cpu_features", &features, err);
    if (ret < 0)
        return moat_error_prefix(err, "sgx");
    static const char* const tristate[] = {"avx", "avx512", "amx"};
    for (size_t i = 0; i < ARRAY_SIZE(tristate); i++)
        set_default(features, tristate[i], toml_new_string("unspecified"));
    set_default(features, "mpx", toml_new_string("disabled"));
    set_default(features, "pkru", toml_new_string("disabled"));

    ret = table_at(root, "loader", &loader, err);
    if (ret < 0)
        return ret;
    struct toml_value* ep = toml_table_get(loader, "entrypoint");
    if (ep && ep->type != TOML_TABLE)
        return moat_error_set(err, -EINVAL,
                              "Unknown loader.entrypoint format (not a TOML table): the "
                              "Graphene-era 'loader.entrypoint = \"file:...\"' is replaced by "
                              "loader.entrypoint.uri, which moat injects (remove the key or run "
                              "'moat manifest migrate')");
    if (!ep) {
        ep = toml_new_table();
        toml_table_set(loader, "entrypoint", ep);
    }
    if (!toml_table_get(ep, "uri")) {
        _cleanup_free_ char* uri = xasprintf("file:%s", libos_path);
        toml_table_set(ep, "uri", toml_new_string(uri));
    }
    return 0;
}
