/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The template engine's front end: splits a template into text, {{ expressions }},
 * {% statements %} and {# comments #} (with Jinja's whitespace control and {% raw %}), parses
 * the statements (if/elif/else, for/else, set) into a tree and renders it. gramine-manifest's
 * environment: StrictUndefined, keep_trailing_newline, no trim_blocks/lstrip_blocks, no
 * autoescape (reference/gramine.md §2).
 */
#include <string.h>

#include "template_impl.h"

enum ttok_kind {
    T_TEXT,
    T_VAR,
    T_BLOCK,
};

struct ttok {
    enum ttok_kind kind;
    const char* s; /* T_TEXT: the text; T_VAR/T_BLOCK: the inside of the tag */
    size_t len;
    uint32_t line;
};

struct tlexer {
    struct teval* ev;
    const char* s;
    size_t len, pos;
    uint32_t line;
    struct ttok* toks;
    size_t ntoks, cap;
    bool strip_next; /* the previous tag ended with '-' */
};

static void count_lines(struct tlexer* lx, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        lx->line += lx->s[i] == '\n';
}

static void push_tok(struct tlexer* lx, enum ttok_kind kind, const char* s, size_t len,
                     uint32_t line) {
    lx->toks              = xgrow(lx->toks, &lx->cap, lx->ntoks + 1, sizeof(*lx->toks));
    lx->toks[lx->ntoks++] = (struct ttok){kind, s, len, line};
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void push_text(struct tlexer* lx, size_t start, size_t end, bool strip_right,
                      uint32_t line) {
    if (lx->strip_next) {
        while (start < end && is_space(lx->s[start])) {
            line += lx->s[start] == '\n';
            start++;
        }
        lx->strip_next = false;
    }
    if (strip_right)
        while (end > start && is_space(lx->s[end - 1]))
            end--;
    if (end > start)
        push_tok(lx, T_TEXT, lx->s + start, end - start, line);
}

/* Finds the end of a {{ }} or {% %} tag starting at `from` (after the opening delimiter),
 * skipping string literals. Returns the index of the closing delimiter or SIZE_MAX. */
static size_t find_tag_end(const struct tlexer* lx, size_t from, char close) {
    for (size_t i = from; i + 1 < lx->len; i++) {
        char c = lx->s[i];
        if (c == '\'' || c == '"') {
            for (i++; i < lx->len && lx->s[i] != c; i++)
                if (lx->s[i] == '\\')
                    i++;
            continue;
        }
        if (c == close && lx->s[i + 1] == '}')
            return i;
    }
    return SIZE_MAX;
}

/* After "{% raw %}": the text up to "{% endraw %}" is literal. */
static int lex_raw(struct tlexer* lx) {
    size_t i = lx->pos;
    for (;;) {
        const char* open = memmem(lx->s + i, lx->len - i, "{%", 2);
        if (!open)
            return teval_fail(lx->ev, "unterminated {%% raw %%} block (missing {%% endraw %%})");
        size_t j    = (size_t)(open - lx->s) + 2;
        bool lstrip = j < lx->len && lx->s[j] == '-';
        size_t k    = j + lstrip;
        while (k < lx->len && is_space(lx->s[k]))
            k++;
        if (lx->len - k >= 6 && memcmp(lx->s + k, "endraw", 6) == 0) {
            size_t end = find_tag_end(lx, k, '%');
            if (end == SIZE_MAX)
                return teval_fail(lx->ev, "unterminated {%% endraw %%} tag");
            uint32_t line = lx->line;
            push_text(lx, lx->pos, (size_t)(open - lx->s), lstrip, line);
            count_lines(lx, lx->pos, end + 2);
            lx->strip_next = lx->s[end - 1] == '-';
            lx->pos        = end + 2;
            return 0;
        }
        i = j;
    }
}

static int lex(struct tlexer* lx) {
    while (lx->pos < lx->len) {
        const char* open = NULL;
        for (size_t i = lx->pos; i + 1 < lx->len; i++) {
            if (lx->s[i] == '{' &&
                (lx->s[i + 1] == '{' || lx->s[i + 1] == '%' || lx->s[i + 1] == '#')) {
                open = lx->s + i;
                break;
            }
        }
        if (!open) {
            push_text(lx, lx->pos, lx->len, false, lx->line);
            count_lines(lx, lx->pos, lx->len);
            lx->pos = lx->len;
            break;
        }
        size_t at     = (size_t)(open - lx->s);
        char kind     = open[1];
        bool lstrip   = at + 2 < lx->len && lx->s[at + 2] == '-';
        uint32_t line = lx->line;
        push_text(lx, lx->pos, at, lstrip, line);
        count_lines(lx, lx->pos, at);
        uint32_t tag_line = lx->line;
        lx->ev->line      = tag_line;
        size_t inner      = at + 2 + lstrip;
        size_t end;
        if (kind == '#') {
            const char* close = memmem(lx->s + inner, lx->len - inner, "#}", 2);
            if (!close)
                return teval_fail(lx->ev, "unterminated comment (missing '#}')");
            end = (size_t)(close - lx->s);
        } else {
            end = find_tag_end(lx, inner, kind == '{' ? '}' : '%');
            if (end == SIZE_MAX)
                return teval_fail(lx->ev, "unterminated '%s' tag (missing '%s')",
                                  kind == '{' ? "{{" : "{%", kind == '{' ? "}}" : "%}");
        }
        bool rstrip      = end > inner && lx->s[end - 1] == '-';
        size_t inner_end = end - rstrip;
        count_lines(lx, at, end + 2);
        lx->pos        = end + 2;
        lx->strip_next = rstrip;
        if (kind == '#')
            continue;
        if (kind == '{') {
            push_tok(lx, T_VAR, lx->s + inner, inner_end - inner, tag_line);
            continue;
        }
        size_t p = inner;
        if (tparse_peek_word(lx->s, inner_end, &p, "raw")) {
            p += 3;
            tparse_skip_ws(lx->s, inner_end, &p);
            if (p == inner_end) {
                if (lex_raw(lx) < 0)
                    return -EINVAL;
                continue;
            }
        }
        push_tok(lx, T_BLOCK, lx->s + inner, inner_end - inner, tag_line);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Statements                                                                                 */

enum tnode_kind {
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
};

struct tnode;
struct tnode_list {
    struct tnode** items;
    size_t n, cap;
};

struct tnode {
    enum tnode_kind kind;
    uint32_t line;
    const char* text; /* N_TEXT */
    size_t len;
    struct expr* e; /* N_OUTPUT, N_SET value, N_FOR iterable */
    /* N_IF: branches (cond, body); a NULL cond is the else branch */
    struct expr** conds;
    struct tnode_list* bodies;
    size_t nbranches;
    /* N_FOR / N_SET targets */
    const char* vars[4];
    size_t nvars;
    struct expr* filter; /* for x in y if cond */
    struct tnode_list body, else_body;
};

struct tparse {
    struct teval* ev;
    const struct ttok* toks;
    size_t n, pos;
    int depth; /* nesting of if/for blocks */
};

#define MAX_BLOCK_DEPTH 64

static void list_push(struct teval* ev, struct tnode_list* l, struct tnode* node) {
    if (l->n == l->cap) {
        size_t cap           = l->cap ? l->cap * 2 : 8;
        struct tnode** items = arena_alloc(ev->arena, cap * sizeof(*items));
        if (l->n)
            memcpy(items, l->items, l->n * sizeof(*items));
        l->items = items;
        l->cap   = cap;
    }
    l->items[l->n++] = node;
}

static struct tnode* new_node(struct teval* ev, enum tnode_kind kind, uint32_t line) {
    struct tnode* node = arena_alloc(ev->arena, sizeof(*node));
    node->kind         = kind;
    node->line         = line;
    return node;
}

/* Parses the tag's expression and requires that nothing follows it. */
static int tag_expr(struct teval* ev, const struct ttok* t, size_t* pos, struct expr** ret) {
    if (tparse_expr(ev, t->s, t->len, pos, t->line, ret) < 0)
        return -EINVAL;
    return 0;
}

static int tag_done(struct teval* ev, const struct ttok* t, size_t pos) {
    tparse_skip_ws(t->s, t->len, &pos);
    if (pos != t->len) {
        ev->line = t->line;
        return teval_fail(ev, "unexpected '%.*s' at the end of the tag", (int)(t->len - pos),
                          t->s + pos);
    }
    return 0;
}

static int parse_body(struct tparse* p, struct tnode_list* out, const char* const* stops,
                      const char** ret_stop, size_t* ret_stop_pos);

static int parse_if(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev                 = p->ev;
    struct tnode* node               = new_node(ev, N_IF, t->line);
    size_t cap                       = 4;
    node->conds                      = arena_alloc(ev->arena, cap * sizeof(*node->conds));
    node->bodies                     = arena_alloc(ev->arena, cap * sizeof(*node->bodies));
    static const char* const stops[] = {"elif", "else", "endif", NULL};
    const struct ttok* cur           = t;
    bool is_else                     = false;
    for (;;) {
        struct expr* cond = NULL;
        if (!is_else) {
            if (tag_expr(ev, cur, &pos, &cond) < 0 || tag_done(ev, cur, pos) < 0)
                return -EINVAL;
        } else if (tag_done(ev, cur, pos) < 0) {
            return -EINVAL;
        }
        if (node->nbranches == cap) {
            struct expr** nc      = arena_alloc(ev->arena, 2 * cap * sizeof(*nc));
            struct tnode_list* nb = arena_alloc(ev->arena, 2 * cap * sizeof(*nb));
            memcpy(nc, node->conds, cap * sizeof(*nc));
            memcpy(nb, node->bodies, cap * sizeof(*nb));
            node->conds  = nc;
            node->bodies = nb;
            cap *= 2;
        }
        size_t b       = node->nbranches++;
        node->conds[b] = cond;
        const char* stop;
        if (parse_body(p, &node->bodies[b], stops, &stop, &pos) < 0)
            return -EINVAL;
        if (!stop) {
            ev->line = t->line;
            return teval_fail(ev,
                              "unexpected end of template: {%% if %%} is never closed (missing "
                              "{%% endif %%})");
        }
        cur = &p->toks[p->pos - 1];
        if (!strcmp(stop, "endif"))
            break;
        if (is_else) {
            ev->line = cur->line;
            return teval_fail(ev, "unexpected {%% %s %%} after {%% else %%}", stop);
        }
        is_else = !strcmp(stop, "else");
    }
    if (tag_done(ev, cur, pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

static int parse_targets(struct teval* ev, const struct ttok* t, size_t* pos, struct tnode* node) {
    do {
        const char* name = tparse_name(ev, t->s, t->len, pos);
        if (!name || node->nvars == ARRAY_SIZE(node->vars)) {
            ev->line = t->line;
            return teval_fail(ev, "expected a variable name in '%.*s'", (int)t->len, t->s);
        }
        node->vars[node->nvars++] = name;
        tparse_skip_ws(t->s, t->len, pos);
    } while (*pos < t->len && t->s[*pos] == ',' && ++*pos);
    return 0;
}

static int parse_for(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev   = p->ev;
    struct tnode* node = new_node(ev, N_FOR, t->line);
    if (parse_targets(ev, t, &pos, node) < 0)
        return -EINVAL;
    if (!tparse_peek_word(t->s, t->len, &pos, "in")) {
        ev->line = t->line;
        return teval_fail(ev, "expected 'in' in {%% for %%}");
    }
    pos += 2;
    /* the iterable is an or-expression: a trailing "if" filters items */
    if (tag_expr(ev, t, &pos, &node->e) < 0)
        return -EINVAL;
    if (node->e->kind == EX_COND && !node->e->c) {
        node->filter = node->e->b;
        node->e      = node->e->a;
    }
    if (tag_done(ev, t, pos) < 0)
        return -EINVAL;
    static const char* const stops[] = {"else", "endfor", NULL};
    const char* stop;
    if (parse_body(p, &node->body, stops, &stop, &pos) < 0)
        return -EINVAL;
    if (stop && !strcmp(stop, "else")) {
        if (tag_done(ev, &p->toks[p->pos - 1], pos) < 0)
            return -EINVAL;
        static const char* const end_only[] = {"endfor", NULL};
        if (parse_body(p, &node->else_body, end_only, &stop, &pos) < 0)
            return -EINVAL;
    }
    if (!stop) {
        ev->line = t->line;
        return teval_fail(ev,
                          "unexpected end of template: {%% for %%} is never closed (missing "
                          "{%% endfor %%})");
    }
    if (tag_done(ev, &p->toks[p->pos - 1], pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

static int parse_set(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev   = p->ev;
    struct tnode* node = new_node(ev, N_SET, t->line);
    if (parse_targets(ev, t, &pos, node) < 0)
        return -EINVAL;
    tparse_skip_ws(t->s, t->len, &pos);
    if (pos >= t->len || t->s[pos] != '=') {
        ev->line = t->line;
        return teval_fail(ev, "expected '=' in {%% set %%} (block assignments are not supported)");
    }
    pos++;
    if (tag_expr(ev, t, &pos, &node->e) < 0 || tag_done(ev, t, pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

/* Parses nodes until a block tag whose keyword is in `stops` (returned in *ret_stop with the
 * position after the keyword), or the end of the template (*ret_stop = NULL). */
static int parse_body(struct tparse* p, struct tnode_list* out, const char* const* stops,
                      const char** ret_stop, size_t* ret_stop_pos) {
    struct teval* ev = p->ev;
    *ret_stop        = NULL;
    if (p->depth > MAX_BLOCK_DEPTH)
        return teval_fail(ev, "statements nested too deeply (more than %d levels)",
                          MAX_BLOCK_DEPTH);
    while (p->pos < p->n) {
        const struct ttok* t = &p->toks[p->pos++];
        ev->line             = t->line;
        if (t->kind == T_TEXT) {
            struct tnode* node = new_node(ev, N_TEXT, t->line);
            node->text         = t->s;
            node->len          = t->len;
            list_push(ev, out, node);
            continue;
        }
        size_t pos = 0;
        if (t->kind == T_VAR) {
            struct tnode* node = new_node(ev, N_OUTPUT, t->line);
            if (tag_expr(ev, t, &pos, &node->e) < 0 || tag_done(ev, t, pos) < 0)
                return -EINVAL;
            list_push(ev, out, node);
            continue;
        }
        const char* kw = tparse_name(ev, t->s, t->len, &pos);
        if (!kw)
            return teval_fail(ev, "expected a statement in '{%% %.*s %%}'", (int)t->len, t->s);
        for (size_t i = 0; stops && stops[i]; i++) {
            if (!strcmp(kw, stops[i])) {
                *ret_stop     = stops[i];
                *ret_stop_pos = pos;
                return 0;
            }
        }
        int ret;
        p->depth++;
        if (!strcmp(kw, "if"))
            ret = parse_if(p, t, pos, out);
        else if (!strcmp(kw, "for"))
            ret = parse_for(p, t, pos, out);
        else if (!strcmp(kw, "set"))
            ret = parse_set(p, t, pos, out);
        else if (!strcmp(kw, "elif") || !strcmp(kw, "else") || !strcmp(kw, "endif") ||
                 !strcmp(kw, "endfor") || !strcmp(kw, "endraw"))
            ret = teval_fail(ev, "unexpected {%% %s %%} without a matching opening tag", kw);
        else
            ret = teval_fail(ev,
                             "unsupported statement {%% %s %%} (moat supports if, for, set, raw "
                             "and comments; see docs/templates.md)",
                             kw);
        p->depth--;
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Rendering                                                                                  */

static int render_list(struct teval* ev, const struct tnode_list* l, struct strbuf* out);

static int bind_targets(struct teval* ev, struct tscope* scope, const struct tnode* node,
                        const struct tval* v) {
    if (node->nvars == 1) {
        tscope_set(scope, node->vars[0], v);
        return 0;
    }
    const struct tval** items;
    size_t n;
    if (titer(ev, v, &items, &n) < 0)
        return -EINVAL;
    if (n != node->nvars)
        return teval_fail(ev, "cannot unpack %zu values into %zu variables", n, node->nvars);
    for (size_t i = 0; i < n; i++)
        tscope_set(scope, node->vars[i], items[i]);
    return 0;
}

static int render_for(struct teval* ev, const struct tnode* node, struct strbuf* out) {
    const struct tval* seq;
    if (teval_expr(ev, node->e, &seq) < 0)
        return -EINVAL;
    const struct tval** items;
    size_t n;
    if (titer(ev, seq, &items, &n) < 0)
        return -EINVAL;

    /* apply the inline filter first: loop.length counts the filtered items */
    const struct tval** kept = arena_alloc(ev->arena, (n + 1) * sizeof(*kept));
    size_t m                 = 0;
    for (size_t i = 0; i < n; i++) {
        if (node->filter) {
            struct tscope probe  = {.parent = ev->scope};
            struct tscope* saved = ev->scope;
            ev->scope            = &probe;
            const struct tval* c;
            bool keep = false;
            int r     = bind_targets(ev, &probe, node, items[i]);
            if (r == 0)
                r = teval_expr(ev, node->filter, &c);
            if (r == 0)
                r = tv_truth(ev, c, &keep);
            ev->scope = saved;
            tscope_free(&probe);
            if (r < 0)
                return -EINVAL;
            if (!keep)
                continue;
        }
        kept[m++] = items[i];
    }
    if (m == 0)
        return render_list(ev, &node->else_body, out);

    static const char* const loop_keys[] = {"index",  "index0",   "first",    "last",
                                            "length", "revindex", "revindex0"};
    for (size_t i = 0; i < m; i++) {
        struct tscope scope              = {.parent = ev->scope};
        struct tscope* saved             = ev->scope;
        ev->scope                        = &scope;
        const struct tval* loop_values[] = {
            tv_int(ev, (int64_t)i + 1),
            tv_int(ev, (int64_t)i),
            tv_bool(i == 0),
            tv_bool(i + 1 == m),
            tv_int(ev, (int64_t)m),
            tv_int(ev, (int64_t)(m - i)),
            tv_int(ev, (int64_t)(m - i - 1)),
        };
        tscope_set(&scope, "loop", tv_dict(ev, loop_keys, loop_values, ARRAY_SIZE(loop_keys)));
        int r = bind_targets(ev, &scope, node, kept[i]);
        if (r == 0)
            r = render_list(ev, &node->body, out);
        ev->scope = saved;
        tscope_free(&scope);
        if (r < 0)
            return -EINVAL;
    }
    return 0;
}

static int render_node(struct teval* ev, const struct tnode* node, struct strbuf* out) {
    ev->line = node->line;
    const struct tval* v;
    switch (node->kind) {
        case N_TEXT:
            strbuf_append(out, node->text, node->len);
            return 0;
        case N_OUTPUT:
            if (teval_expr(ev, node->e, &v) < 0)
                return -EINVAL;
            ev->line = node->line;
            return tv_to_str(ev, v, out);
        case N_SET:
            if (teval_expr(ev, node->e, &v) < 0)
                return -EINVAL;
            return bind_targets(ev, ev->scope, node, v);
        case N_IF:
            for (size_t i = 0; i < node->nbranches; i++) {
                bool t = true;
                if (node->conds[i]) {
                    if (teval_expr(ev, node->conds[i], &v) < 0 || tv_truth(ev, v, &t) < 0)
                        return -EINVAL;
                }
                if (t)
                    return render_list(ev, &node->bodies[i], out);
            }
            return 0;
        case N_FOR:
            return render_for(ev, node, out);
    }
    return 0;
}

static int render_list(struct teval* ev, const struct tnode_list* l, struct strbuf* out) {
    for (size_t i = 0; i < l->n; i++)
        if (render_node(ev, l->items[i], out) < 0)
            return -EINVAL;
    return 0;
}

int template_render(const char* text, size_t len, const char* filename,
                    const struct tmpl_define* defs, size_t ndefs, const struct template_env* env,
                    char** ret_out, size_t* ret_len, struct moat_error* err) {
    struct arena arena    = {0};
    struct tscope globals = {0};
    struct teval ev       = {
              .arena    = &arena,
              .scope    = &globals,
              .filename = filename ? filename : "<template>",
              .line     = 1,
              .env      = env,
              .err      = err,
    };
    moat_error_clear(err);
    struct tlexer lx       = {.ev = &ev, .s = text, .len = len, .line = 1};
    struct strbuf out      = STRBUF_INIT;
    struct tnode_list root = {0};
    int ret                = -EINVAL;

    if (memchr(text, '\0', len)) {
        ret = moat_error_set(err, -EINVAL, "%s: template contains a NUL byte", ev.filename);
        goto out;
    }
    if (lex(&lx) < 0)
        goto out;
    struct tparse p = {.ev = &ev, .toks = lx.toks, .n = lx.ntoks};
    const char* stop;
    size_t stop_pos;
    if (parse_body(&p, &root, NULL, &stop, &stop_pos) < 0)
        goto out;

    template_add_globals(&ev, &globals);
    for (size_t i = 0; i < ndefs; i++)
        tscope_set(&globals, arena_strdup(&arena, defs[i].name),
                   defs[i].value ? tv_cstr(&ev, defs[i].value) : tv_bool(true));
    if (render_list(&ev, &root, &out) < 0)
        goto out;
    *ret_out = strbuf_take(&out, ret_len);
    ret      = 0;
out:
    strbuf_free(&out);
    free(lx.toks);
    tscope_free(&globals);
    template_globals_free(&ev);
    arena_free(&arena);
    return ret;
}
