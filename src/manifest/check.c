/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `moat manifest check`: walks the whole tree against the key table (schema.c) and reports
 * every problem at once, each with its key and position. Unknown keys get a "did you mean"
 * suggestion; Graphene-era keys the runtime ignores are warnings naming the replacement.
 */
#include <inttypes.h>
#include <string.h>

#include "schema.h"

void manifest_diags_vadd(struct manifest_diags* d, enum diag_severity sev, const char* key,
                         uint32_t line, uint32_t col, const char* fmt, va_list ap) {
    struct strbuf sb = STRBUF_INIT;
    strbuf_vprintf(&sb, fmt, ap);
    d->items           = xgrow(d->items, &d->cap, d->len + 1, sizeof(*d->items));
    d->items[d->len++] = (struct manifest_diag){
        .sev  = sev,
        .key  = xstrdup(key ? key : ""),
        .line = line,
        .col  = col,
        .msg  = strbuf_take(&sb, NULL),
    };
}

void manifest_diags_add(struct manifest_diags* d, enum diag_severity sev, const char* key,
                        uint32_t line, uint32_t col, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    manifest_diags_vadd(d, sev, key, line, col, fmt, ap);
    va_end(ap);
}

void manifest_diags_free(struct manifest_diags* d) {
    for (size_t i = 0; i < d->len; i++) {
        free(d->items[i].key);
        free(d->items[i].msg);
    }
    free(d->items);
    memset(d, 0, sizeof(*d));
}

size_t manifest_diags_count(const struct manifest_diags* d, enum diag_severity sev) {
    size_t n = 0;
    for (size_t i = 0; i < d->len; i++)
        n += d->items[i].sev == sev;
    return n;
}

static int diag_cmp(const void* a, const void* b) {
    const struct manifest_diag* x = a;
    const struct manifest_diag* y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

void manifest_diags_print(const struct manifest_diags* d, const char* filename, FILE* out) {
    static const char* const names[] = {"error", "warning", "note"};
    struct manifest_diag* sorted     = xcalloc(d->len ? d->len : 1, sizeof(*sorted));
    if (d->len)
        memcpy(sorted, d->items, d->len * sizeof(*sorted));
    /* stable enough: qsort on (line, col); equal positions keep no particular order */
    qsort(sorted, d->len, sizeof(*sorted), diag_cmp);
    for (size_t i = 0; i < d->len; i++) {
        const struct manifest_diag* g = &sorted[i];
        if (g->line)
            fprintf(out, "%s:%u:%u: %s: %s\n", filename, g->line, g->col, names[g->sev], g->msg);
        else
            fprintf(out, "%s: %s: %s\n", filename, names[g->sev], g->msg);
    }
    free(sorted);
}

void check_report(struct check_ctx* c, enum diag_severity sev, const struct checked* k,
                  const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    manifest_diags_vadd(c->diags, sev, k->key, k->line, k->col, fmt, ap);
    va_end(ap);
    if (sev == DIAG_ERROR)
        c->errors++;
}

/* ---------------------------------------------------------------------------------------- */

#define MAX_DEPTH 16

static char* display_key(const char* const* comps, size_t n) {
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char* q = toml_quote_key(comps[i]);
        strbuf_printf(&sb, "%s%s", i ? "." : "", q);
    }
    return strbuf_take(&sb, NULL);
}

static void check_value(struct check_ctx* c, const struct schema_key* row, const char* key,
                        const struct toml_kv* kv) {
    struct checked k = {key, kv->value, kv->line, kv->col};
    if (row->status == KEY_REMOVED) {
        check_report(c, DIAG_ERROR, &k, "%s", row->replacement);
        return;
    }
    if (row->status == KEY_LEGACY) {
        if (c->opts->legacy_read)
            check_report(c, DIAG_WARNING, &k,
                         "Graphene-era key '%s' is read as %s (Gramine ignores it; 'moat "
                         "manifest migrate' rewrites it)",
                         key, row->replacement);
        else
            check_report(c, DIAG_WARNING, &k,
                         "Graphene-era key '%s' is ignored by Gramine; replaced by %s ('moat "
                         "manifest migrate' rewrites it)",
                         key, row->replacement);
        if (row->validate && (vt_of(kv->value) & row->types))
            row->validate(c, &k);
        return;
    }
    unsigned vt = vt_of(kv->value);
    if (!(vt & row->types)) {
        if (row->types == VT_BOOL && vt == VT_INT)
            check_report(c, DIAG_ERROR, &k,
                         "'%s' must be a boolean (true or false), not the integer %" PRId64
                         ": Gramine refuses Graphene-era integer booleans (Cannot parse '%s'; "
                         "'moat manifest migrate' rewrites it)",
                         key, kv->value->u.integer, key);
        else
            check_report(c, DIAG_ERROR, &k, "'%s' must be %s, not %s", key, vt_name(row->types),
                         vt_name(vt));
        return;
    }
    if (vt == VT_STRING && strlen(kv->value->u.str.ptr) != kv->value->u.str.len) {
        check_report(c, DIAG_ERROR, &k, "'%s' must not contain NUL characters", key);
        return;
    }
    if (row->validate)
        row->validate(c, &k);
}

static void walk(struct check_ctx* c, const struct toml_value* table, const char** comps,
                 size_t depth) {
    for (size_t i = 0; i < table->u.tab.len; i++) {
        const struct toml_kv* kv = &table->u.tab.items[i];
        if (depth >= MAX_DEPTH)
            return;
        comps[depth]             = kv->key;
        size_t n                 = depth + 1;
        _cleanup_free_ char* key = display_key(comps, n);
        struct checked k         = {key, kv->value, kv->line, kv->col};

        const struct schema_key* row = schema_lookup(comps, n);
        if (row) {
            check_value(c, row, key, kv);
            continue;
        }
        if (schema_is_prefix(comps, n)) {
            if (kv->value->type == TOML_TABLE)
                walk(c, kv->value, comps, n);
            else if (strcmp(key, "loader.entrypoint") == 0)
                check_report(c, DIAG_ERROR, &k,
                             "Unknown loader.entrypoint format (not a TOML table): Graphene-era "
                             "'loader.entrypoint = \"file:...\"' names the LibOS, which moat "
                             "injects as loader.entrypoint.uri (remove it, or run 'moat manifest "
                             "migrate')");
            else
                check_report(c, DIAG_ERROR, &k, "'%s' must be a table, not %s", key,
                             vt_name(vt_of(kv->value)));
            continue;
        }
        if (c->opts->allow_unknown)
            continue;
        _cleanup_free_ char* hint = schema_suggest(comps, n);
        if (hint)
            check_report(c, DIAG_ERROR, &k, "unknown key '%s' (did you mean '%s'?)", key, hint);
        else
            check_report(c, DIAG_ERROR, &k, "unknown key '%s'", key);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Rules across keys                                                                          */

static struct checked at(const char* key, const struct toml_value* root, const char* path) {
    const struct toml_value* v = toml_get_path(root, path);
    return (struct checked){key, v, v ? v->line : 0, v ? v->col : 0};
}

static bool bool_true(const struct toml_value* root, const char* path) {
    const struct toml_value* v = toml_get_path(root, path);
    return v && v->type == TOML_BOOL && v->u.boolean;
}

void check_cross_keys(struct check_ctx* c) {
    const struct toml_value* r = c->root;

    if (!toml_get_path(r, "libos.entrypoint") && !toml_get_path(r, "loader.exec")) {
        struct checked k = {"libos.entrypoint", r, 0, 0};
        check_report(c, DIAG_ERROR, &k, "'libos.entrypoint' must be specified in the manifest");
    }

    int argv_opts = (toml_get_path(r, "loader.argv") != NULL) +
                    (toml_get_path(r, "loader.argv_src_file") != NULL) +
                    bool_true(r, "loader.insecure__use_cmdline_argv");
    if (argv_opts > 1) {
        struct checked k = at("loader.argv", r, "loader.argv");
        if (!k.v)
            k = at("loader.argv_src_file", r, "loader.argv_src_file");
        check_report(c, DIAG_ERROR, &k,
                     "Options loader.argv, loader.argv_src_file, and "
                     "loader.insecure__use_cmdline_argv are mutually exclusive");
    }

    if (toml_get_path(r, "loader.env_src_file") && bool_true(r, "loader.insecure__use_host_env")) {
        struct checked k = at("loader.env_src_file", r, "loader.env_src_file");
        check_report(c, DIAG_ERROR, &k,
                     "cannot use loader.insecure__use_host_env and loader.env_src_file at the "
                     "same time.");
    }

    if (bool_true(r, "sgx.enable_stats") && !bool_true(r, "sgx.debug")) {
        struct checked k = at("sgx.enable_stats", r, "sgx.enable_stats");
        check_report(c, DIAG_WARNING, &k,
                     "'sgx.enable_stats = true' with 'sgx.debug = false': stats are insecure and "
                     "SGX refuses them for production enclaves");
    }

    if (c->opts->finalized) {
        const struct toml_value* uri = toml_get_path(r, "loader.entrypoint.uri");
        if (!uri) {
            struct checked k = {"loader.entrypoint.uri", r, 0, 0};
            check_report(c, DIAG_ERROR, &k,
                         "No 'loader.entrypoint.uri' is specified in the manifest (a finalized "
                         "manifest names the LibOS; run 'moat manifest render')");
        }
    }
}

int manifest_check(const struct toml_value* root, const struct manifest_check_opts* opts,
                   struct manifest_diags* diags) {
    struct check_ctx c = {.root = root, .opts = opts, .diags = diags};
    const char* comps[MAX_DEPTH];
    walk(&c, root, comps, 0);
    check_cross_keys(&c);
    return c.errors;
}
