/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trusted and allowed files, as Gramine's LibOS loads and matches them
 * (reference/gramine.md §6, libos/src/fs/chroot/trusted.c, allowed.c): matching is by
 * normalized host path; trusted is an exact match, allowed an exact or directory-prefix match.
 */
#include <string.h>

#include "sandbox.h"

static int cmp_trusted(const void* a, const void* b) {
    return strcmp(((const struct trusted_entry*)a)->path, ((const struct trusted_entry*)b)->path);
}

/* Host path of a "file:" URI: normalized, absolute against the current directory `cwd`. */
static char* host_path_of(const char* path, const char* cwd) {
    if (path[0] == '/' || !cwd)
        return path_normalize(path);
    _cleanup_free_ char* joined = path_join(cwd, path);
    return path_normalize(joined);
}

int file_policy_load(const struct toml_value* m, struct file_policy* ret, struct moat_error* err) {
    struct file_policy p = {.strict = true};
    char cwd_buf[4096];
    const char* cwd = getcwd(cwd_buf, sizeof(cwd_buf)); /* once, not per entry */
    const char* policy;
    if (toml_get_string(m, "sgx.file_check_policy", "strict", &policy) < 0)
        return moat_error_set(err, -EINVAL, "Cannot parse 'sgx.file_check_policy'");
    if (!strcmp(policy, "allow_all_but_log"))
        p.strict = false;
    else if (strcmp(policy, "strict") != 0)
        return moat_error_set(err, -EINVAL,
                              "Unknown value for 'sgx.file_check_policy' (allowed: 'strict', "
                              "'allow_all_but_log')'");

    const struct toml_value* tf = toml_get_path(m, "sgx.trusted_files");
    if (tf && tf->type != TOML_ARRAY)
        return moat_error_set(err, -EINVAL,
                              "'sgx.trusted_files' must be an array (Graphene-era table syntax: "
                              "run 'moat manifest migrate')");
    size_t n  = tf ? tf->u.arr.len : 0;
    p.trusted = xcalloc(n + 1, sizeof(*p.trusted));
    for (size_t i = 0; i < n; i++) {
        const struct toml_value* e   = tf->u.arr.items[i];
        const struct toml_value *uri = NULL, *sha = NULL;
        int r = 0;
        if (e->type != TOML_TABLE)
            r = moat_error_set(err, -EINVAL,
                               "Invalid trusted file in manifest at index %zu (not a TOML table)%s",
                               i,
                               e->type == TOML_STRING ? ": the manifest is not finalized, run "
                                                        "'moat manifest render'"
                                                      : "");
        else if (!(uri = toml_table_get(e, "uri")) || uri->type != TOML_STRING)
            r = moat_error_set(err, -EINVAL,
                               "Invalid trusted file in manifest at index %zu (no 'uri' key)", i);
        else if (!(sha = toml_table_get(e, "sha256")) || sha->type != TOML_STRING)
            r = moat_error_set(
                err, -EINVAL, "Invalid trusted file in manifest at index %zu (no 'sha256' key)", i);
        else if (strncmp(uri->u.str.ptr, "file:", 5) != 0)
            r = moat_error_set(err, -EINVAL,
                               "Invalid URI [%s]: Trusted files must start with 'file:'",
                               uri->u.str.ptr);
        else if (sha->u.str.len != 64 ||
                 hex_decode(sha->u.str.ptr, 64, p.trusted[p.ntrusted].sha256, 32) < 0)
            r = moat_error_set(err, -EINVAL, "Hash (%s) of a trusted file %s is not a SHA256 hash",
                               sha->u.str.ptr, uri->u.str.ptr);
        if (r < 0) {
            file_policy_free(&p);
            return r;
        }
        p.trusted[p.ntrusted].uri    = path_normalize(uri->u.str.ptr + 5); /* h-fs: log lines */
        p.trusted[p.ntrusted++].path = host_path_of(uri->u.str.ptr + 5, cwd);
    }
    qsort(p.trusted, p.ntrusted, sizeof(*p.trusted), cmp_trusted);

    const struct toml_value* af = toml_get_path(m, "sgx.allowed_files");
    if (af && af->type != TOML_ARRAY) {
        file_policy_free(&p);
        return moat_error_set(err, -EINVAL,
                              "'sgx.allowed_files' must be an array (Graphene-era table syntax: "
                              "run 'moat manifest migrate')");
    }
    n         = af ? af->u.arr.len : 0;
    p.allowed = xcalloc(n + 1, sizeof(*p.allowed));
    for (size_t i = 0; i < n; i++) {
        const struct toml_value* e = af->u.arr.items[i];
        const char* s              = e->type == TOML_STRING ? e->u.str.ptr : "";
        const char* path = !strncmp(s, "file:", 5) ? s + 5 : !strncmp(s, "dev:", 4) ? s + 4 : NULL;
        if (!path) {
            file_policy_free(&p);
            return moat_error_set(err, -EINVAL,
                                  "Invalid URI [%s]: Allowed files must start with 'file:' or "
                                  "'dev:'",
                                  s);
        }
        p.allowed[p.nallowed++] = host_path_of(path, cwd);
    }
    *ret = p;
    return 0;
}

void file_policy_free(struct file_policy* p) {
    for (size_t i = 0; i < p->ntrusted; i++) {
        free(p->trusted[i].path);
        free(p->trusted[i].uri);
    }
    free(p->trusted);
    for (size_t i = 0; i < p->nallowed; i++)
        free(p->allowed[i]);
    free(p->allowed);
    memset(p, 0, sizeof(*p));
}

enum file_class file_policy_classify(const struct file_policy* p, const char* host_path,
                                     const struct trusted_entry** ret_trusted) {
    for (size_t i = 0; i < p->nallowed; i++) {
        const char* a = p->allowed[i];
        size_t n      = strlen(a);
        if (!strcmp(a, "/") ||
            (strncmp(host_path, a, n) == 0 && (host_path[n] == '\0' || host_path[n] == '/')))
            return FILE_ALLOWED;
    }
    struct trusted_entry key = {.path = (char*)host_path};
    const struct trusted_entry* t =
        bsearch(&key, p->trusted, p->ntrusted, sizeof(*p->trusted), cmp_trusted);
    if (t) {
        if (ret_trusted)
            *ret_trusted = t;
        return FILE_TRUSTED;
    }
    return FILE_NONE;
}
