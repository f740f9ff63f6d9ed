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

int file_policy_load(const struct manifest* m, struct file_policy* ret, struct moat_error* err) {
    struct file_policy p = {.strict = m->sgx.file_check_strict};
    char cwd_buf[4096];
    const char* cwd = getcwd(cwd_buf, sizeof(cwd_buf)); /* once, not per entry */
    p.trusted       = xcalloc(m->sgx.ntrusted + 1, sizeof(*p.trusted));
    for (size_t i = 0; i < m->sgx.ntrusted; i++) {
        const struct manifest_trusted_file* t = &m->sgx.trusted_files[i];
        if (!t->has_sha256) { /* the runtime check refuses these: a manifest that was not */
            file_policy_free(&p);
            return moat_error_set(err, -EINVAL,
                                  "Invalid trusted file in manifest at index %zu (no 'sha256' "
                                  "key)",
                                  i);
        }
        memcpy(p.trusted[p.ntrusted].sha256, t->sha256, 32);
        p.trusted[p.ntrusted].uri    = path_normalize(t->uri.path); /* as written: log lines */
        p.trusted[p.ntrusted++].path = host_path_of(t->uri.path, cwd);
    }
    qsort(p.trusted, p.ntrusted, sizeof(*p.trusted), cmp_trusted);
    p.allowed = xcalloc(m->sgx.nallowed + 1, sizeof(*p.allowed));
    for (size_t i = 0; i < m->sgx.nallowed; i++)
        p.allowed[p.nallowed++] = host_path_of(m->sgx.allowed_files[i].path, cwd);
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
