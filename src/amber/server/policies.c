/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Appraisal and token customization policies (docs/amber.md, docs/rego.md): every
 * `<policy id>.rego` in --policy-dir, compiled once at start (a policy outside moat's Rego subset
 * stops the service with its line and construct), evaluated against a token's claims for the
 * policy_ids a request names.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego.h"
#include "server.h"

struct amber_policy {
    char id[MOAT_UUID_STR_SIZE]; /* canonical lowercase */
    struct rego_policy* p;
};

static int by_id(const void* a, const void* b) {
    return strcmp(((const struct amber_policy*)a)->id, ((const struct amber_policy*)b)->id);
}

int amber_policies_load(struct amber_server* s, struct moat_error* err) {
    const char* dir = s->cfg.policy_dir;
    if (!dir)
        return 0;
    DIR* d = opendir(dir);
    if (!d)
        return moat_error_set_errno(err, -errno, "--policy-dir %s", dir);
    struct dirent* e;
    int r = 0;
    while (r == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".rego") != 0)
            continue;
        _cleanup_free_ char* stem = xstrndup(e->d_name, n - 5);
        _cleanup_free_ char* path = path_join(dir, e->d_name);
        uint8_t u[16];
        struct moat_error ue = {0};
        if (moat_uuid_parse(stem, u, &ue) < 0) {
            r = moat_error_set(err, -EINVAL,
                               "policy %s: the name must be <policy id (a UUID)>.rego", path);
            break;
        }
        _cleanup_free_ char* text = NULL;
        size_t len                = 0;
        if (read_file(path, &text, &len, err) < 0) {
            r = -EIO;
            break;
        }
        struct amber_policy p = {0};
        moat_uuid_format(u, p.id);
        for (size_t i = 0; i < s->n_policies; i++)
            if (strcmp(s->policies[i].id, p.id) == 0)
                r = moat_error_set(err, -EINVAL, "policy %s: policy %s is defined twice", path,
                                   p.id);
        if (r == 0 && rego_compile(text, len, &p.p, err) < 0)
            r = moat_error_prefix(err, "policy %s", path);
        if (r == 0) {
            s->policies = xrealloc(s->policies, (s->n_policies + 1) * sizeof(*s->policies));
            s->policies[s->n_policies++] = p;
        }
    }
    closedir(d);
    if (r == 0 && s->n_policies)
        qsort(s->policies, s->n_policies, sizeof(*s->policies), by_id);
    return r;
}

void amber_policies_clear(struct amber_server* s) {
    for (size_t i = 0; i < s->n_policies; i++)
        rego_policy_free(s->policies[i].p);
    free(s->policies);
    s->policies   = NULL;
    s->n_policies = 0;
}

/* ITA's appraisal rules; a policy without any is a token customization policy */
static const char* const MATCH_RULES[] = {"matches_sgx_policy", "matches_tdx_policy", "match"};

static bool has_match_rule(const struct rego_policy* p) {
    for (size_t i = 0; i < rego_rule_count(p); i++)
        for (size_t k = 0; k < ARRAY_SIZE(MATCH_RULES); k++)
            if (strcmp(rego_rule_name(p, i), MATCH_RULES[k]) == 0)
                return true;
    return false;
}

/* the claims a customization policy defines: get_token_fields (a set of objects) and export
 * (an object) */
static void merge_defined(json_t* defined, const json_t* values) {
    const json_t* fields = json_object_get(values, "get_token_fields");
    size_t i;
    const json_t* v;
    json_array_foreach(fields, i, v) {
        if (json_is_object(v))
            json_object_update(defined, (json_t*)v);
    }
    const json_t* exp = json_object_get(values, "export");
    if (json_is_object(exp))
        json_object_update(defined, (json_t*)exp);
}

int amber_policies_evaluate(struct amber_server* s, char* const* ids, size_t n_ids,
                            const json_t* claims, json_t* matched, json_t* unmatched,
                            json_t* defined, int* ret_status, struct moat_error* err) {
    for (size_t i = 0; i < n_ids; i++) {
        struct amber_policy key = {0};
        snprintf(key.id, sizeof(key.id), "%s", ids[i]);
        const struct amber_policy* p =
            s->n_policies ? bsearch(&key, s->policies, s->n_policies, sizeof(*s->policies), by_id)
                          : NULL;
        if (!p) {
            *ret_status = 400;
            return moat_error_set(err, -ENOENT, "policy %s is not defined", ids[i]);
        }
        json_t* values = NULL;
        if (rego_eval(p->p, (json_t*)claims, &values, err) < 0) {
            *ret_status = 400;
            return moat_error_prefix(err, "policy %s", p->id);
        }
        merge_defined(defined, values);
        if (has_match_rule(p->p)) {
            bool ok = false;
            for (size_t k = 0; k < ARRAY_SIZE(MATCH_RULES); k++)
                ok = ok || rego_rule_is_true(values, MATCH_RULES[k]);
            json_array_append_new(ok ? matched : unmatched,
                                  json_pack("{s:s, s:s}", "id", p->id, "version", "v1"));
        }
        json_decref(values);
    }
    return 0;
}
