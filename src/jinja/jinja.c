/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The template engine's front end: splits a template into text, {{ expressions }},
 * {% statements %} and {# comments #} (jinja2/lexer.py: whitespace control, {% raw %}, brackets
 * balanced inside tags, newlines normalised to \n), parses the statements (if/elif/else,
 * for/else, set, set blocks, with, filter blocks) into a tree and renders it with
 * gramine-manifest's environment: StrictUndefined, keep_trailing_newline, no
 * trim_blocks/lstrip_blocks, no autoescape (reference/gramine.md §2).
 */
#include <string.h>

#include "jinja_impl.h"

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

/* Text between tags; `strip_right`: the next tag starts with '-'. Jinja turns \r\n and \r into
 * \n in template data. */
static void push_text(struct tlexer* lx, size_t start, size_t end, bool strip_right,
                      uint32_t line) {
    if (lx->strip_next) {
        while (start < end && py_isspace(lx->s[start])) {
            line += lx->s[start] == '\n';
            start++;
        }
        lx->strip_next = false;
    }
    if (strip_right)
        while (end > start && py_isspace(lx->s[end - 1]))
            end--;
    if (end <= start)
        return;
    const char* text = lx->s + start;
    size_t len       = end - start;
    if (memchr(text, '\r', len)) {
        char* norm = arena_alloc(lx->ev->arena, len + 1);
        size_t n   = 0;
        for (size_t i = 0; i < len; i++) {
            if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
                continue;
            norm[n++] = text[i] == '\r' ? '\n' : text[i];
        }
        text = norm;
        len  = n;
    }
    push_tok(lx, T_TEXT, text, len, line);
}

/* Finds the end of a {{ }} or {% %} tag starting at `from` (after the opening delimiter): the
 * first `close` + '}' outside string literals and brackets. Returns its index or SIZE_MAX. */
static size_t find_tag_end(const struct tlexer* lx, size_t from, char close) {
    size_t depth = 0;
    for (size_t i = from; i < lx->len; i++) {
        char c = lx->s[i];
        if (c == '\'' || c == '"') {
            for (i++; i < lx->len && lx->s[i] != c; i++)
                if (lx->s[i] == '\\')
                    i++;
            continue;
        }
        if (depth == 0 && c == close && i + 1 < lx->len && lx->s[i + 1] == '}')
            return i;
        if (c == '(' || c == '[' || c == '{')
            depth++;
        else if ((c == ')' || c == ']' || c == '}') && depth)
            depth--;
    }
    return SIZE_MAX;
}

/* After "{% raw %}": the text up to "{% endraw %}" is literal. */
static int lex_raw(struct tlexer* lx) {
    for (size_t i = lx->pos;;) {
        const char* open = memmem(lx->s + i, lx->len - i, "{%", 2);
        if (!open)
            return teval_fail(lx->ev, "missing end of raw directive (no {%% endraw %%})");
        size_t j    = (size_t)(open - lx->s) + 2;
        bool lstrip = j < lx->len && lx->s[j] == '-';
        size_t k    = j + (j < lx->len && (lx->s[j] == '-' || lx->s[j] == '+'));
        bool is_end = tparse_peek_word(lx->s, lx->len, &k, "endraw");
        size_t end  = k + 6;
        tparse_skip_ws(lx->s, lx->len, &end);
        bool modifier = end < lx->len && (lx->s[end] == '-' || lx->s[end] == '+');
        if (is_end && end + modifier + 1 < lx->len && lx->s[end + modifier] == '%' &&
            lx->s[end + modifier + 1] == '}') {
            push_text(lx, lx->pos, (size_t)(open - lx->s), lstrip, lx->line);
            count_lines(lx, lx->pos, end + modifier + 2);
            lx->strip_next = modifier && lx->s[end] == '-';
            lx->pos        = end + modifier + 2;
            return 0;
        }
        i = j;
    }
}

static int lex_tag(struct tlexer* lx, size_t at) {
    char kind     = lx->s[at + 1];
    char mod      = at + 2 < lx->len ? lx->s[at + 2] : '\0';
    bool lstrip   = mod == '-';
    uint32_t line = lx->line;
    push_text(lx, lx->pos, at, lstrip, line);
    count_lines(lx, lx->pos, at);
    uint32_t tag_line = lx->line;
    lx->ev->line      = tag_line;
    size_t inner      = at + 2 + (mod == '-' || mod == '+');
    size_t end;
    if (kind == '#') {
        const char* close = memmem(lx->s + inner, lx->len - inner, "#}", 2);
        if (!close)
            return teval_fail(lx->ev, "missing end of comment tag");
        end = (size_t)(close - lx->s);
    } else {
        end = find_tag_end(lx, inner, kind == '{' ? '}' : '%');
        if (end == SIZE_MAX)
            return teval_fail(lx->ev,
                              "unexpected end of template: '%s' tag is never closed "
                              "(missing '%s')",
                              kind == '{' ? "{{" : "{%", kind == '{' ? "}}" : "%}");
    }
    /* "-%}" strips the following whitespace, "+%}" only turns trim_blocks off */
    char rmod        = end > inner ? lx->s[end - 1] : '\0';
    bool rstrip      = rmod == '-';
    size_t inner_end = end - (rstrip || (rmod == '+' && kind != '{'));
    count_lines(lx, at, end + 2);
    lx->pos        = end + 2;
    lx->strip_next = rstrip;
    if (kind == '#')
        return 0;
    if (kind == '{') {
        push_tok(lx, T_VAR, lx->s + inner, inner_end - inner, tag_line);
        return 0;
    }
    size_t p = inner;
    if (tparse_peek_word(lx->s, inner_end, &p, "raw")) {
        p += 3;
        tparse_skip_ws(lx->s, inner_end, &p);
        if (p == inner_end)
            return lex_raw(lx);
    }
    push_tok(lx, T_BLOCK, lx->s + inner, inner_end - inner, tag_line);
    return 0;
}

static int lex(struct tlexer* lx) {
    while (lx->pos < lx->len) {
        size_t at = SIZE_MAX;
        for (size_t i = lx->pos; i + 1 < lx->len; i++) {
            if (lx->s[i] == '{' &&
                (lx->s[i + 1] == '{' || lx->s[i + 1] == '%' || lx->s[i + 1] == '#')) {
                at = i;
                break;
            }
        }
        if (at == SIZE_MAX) {
            push_text(lx, lx->pos, lx->len, false, lx->line);
            count_lines(lx, lx->pos, lx->len);
            lx->pos = lx->len;
            break;
        }
        if (lex_tag(lx, at) < 0)
            return -EINVAL;
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
    N_SET_BLOCK, /* {% set x %}...{% endset %} */
    N_WITH,
    N_FILTER, /* {% filter f %}...{% endfilter %} */
};

struct tnode;
struct tnode_list {
    struct tnode** items;
    size_t n, cap;
};

/* An assignment target: a name, or ns.attr for namespace() objects. */
struct ttarget {
    const char* name;
    const char* attr;
};

#define MAX_TARGETS 8

struct tnode {
    enum tnode_kind kind;
    uint32_t line;
    const char* text; /* N_TEXT */
    size_t len;
    struct expr* e; /* N_OUTPUT; N_SET value; N_FOR iterable; N_SET_BLOCK/N_FILTER filters */
    /* N_IF: branches (cond, body); a NULL cond is the else branch */
    struct expr** conds;
    struct tnode_list* bodies;
    size_t nbranches;
    /* N_FOR, N_SET, N_SET_BLOCK, N_WITH targets (N_WITH: values in `values`) */
    struct ttarget vars[MAX_TARGETS];
    struct expr* values[MAX_TARGETS];
    size_t nvars;
    struct expr* filter; /* for x in y if cond */
    struct tnode_list body, else_body;
};

struct tparse {
    struct teval* ev;
    const struct ttok* toks;
    size_t n, pos;
    int depth; /* nesting of blocks */
};

#define MAX_BLOCK_DEPTH 64
/* The name a {% filter %} or {% set x | f %} body is bound to while its filters run. */
#define BLOCK_BODY_NAME " block body"

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

static int tag_expr(struct teval* ev, const struct ttok* t, size_t* pos, unsigned flags,
                    struct expr** ret) {
    return tparse_expr(ev, t->s, t->len, pos, t->line, flags, ret);
}

/* Requires that nothing but whitespace follows in the tag. */
static int tag_done(struct teval* ev, const struct ttok* t, size_t pos) {
    tparse_skip_ws(t->s, t->len, &pos);
    if (pos != t->len) {
        ev->line = t->line;
        return teval_fail(ev, "unexpected '%.*s' at the end of the tag", (int)(t->len - pos),
                          t->s + pos);
    }
    return 0;
}

static bool tag_char(const struct ttok* t, size_t* pos, char c) {
    tparse_skip_ws(t->s, t->len, pos);
    if (*pos < t->len && t->s[*pos] == c &&
        !(c == '=' && *pos + 1 < t->len && t->s[*pos + 1] == '=')) {
        (*pos)++;
        return true;
    }
    return false;
}

static int parse_body(struct tparse* p, struct tnode_list* out, const char* const* stops,
                      const char** ret_stop, size_t* ret_stop_pos);

/* Parses a body up to the `end` keyword (or `alt`, e.g. else); fails at the template's end. */
static int parse_until(struct tparse* p, const struct ttok* open, const char* what,
                       struct tnode_list* body, const char* end, const char* alt,
                       const char** ret_stop, size_t* ret_pos) {
    const char* stops[] = {end, alt, NULL};
    if (parse_body(p, body, stops, ret_stop, ret_pos) < 0)
        return -EINVAL;
    if (!*ret_stop) {
        p->ev->line = open->line;
        return teval_fail(p->ev,
                          "unexpected end of template: {%% %s %%} is never closed (missing "
                          "{%% %s %%})",
                          what, end);
    }
    return 0;
}

static int parse_if(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev       = p->ev;
    struct tnode* node     = new_node(ev, N_IF, t->line);
    size_t cap             = 4;
    node->conds            = arena_alloc(ev->arena, cap * sizeof(*node->conds));
    node->bodies           = arena_alloc(ev->arena, cap * sizeof(*node->bodies));
    const struct ttok* cur = t;
    bool is_else           = false;
    for (;;) {
        struct expr* cond = NULL;
        if (!is_else && tag_expr(ev, cur, &pos, TPARSE_TUPLE | TPARSE_NO_COND, &cond) < 0)
            return -EINVAL;
        if (tag_done(ev, cur, pos) < 0)
            return -EINVAL;
        if (node->nbranches == cap) {
            struct expr** nc      = arena_alloc(ev->arena, 2 * cap * sizeof(*nc));
            struct tnode_list* nb = arena_alloc(ev->arena, 2 * cap * sizeof(*nb));
            memcpy(nc, node->conds, cap * sizeof(*nc));
            memcpy(nb, node->bodies, cap * sizeof(*nb));
            node->conds  = nc;
            node->bodies = nb;
            cap *= 2;
        }
        size_t b                         = node->nbranches++;
        node->conds[b]                   = cond;
        static const char* const stops[] = {"elif", "else", "endif", NULL};
        const char* stop;
        if (parse_body(p, &node->bodies[b], stops, &stop, &pos) < 0)
            return -EINVAL;
        if (!stop) {
            ev->line = t->line;
            return teval_fail(ev,
                              "unexpected end of template: {%% if %%} is never closed "
                              "(missing {%% endif %%})");
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

/* `a`, `a, b`, `(a, b)`; with `allow_attr`, `ns.attr` (namespace assignment). */
static int parse_targets(struct teval* ev, const struct ttok* t, size_t* pos, struct tnode* node,
                         bool allow_attr) {
    bool paren = tag_char(t, pos, '(');
    for (;;) {
        const char* name = tparse_name(ev, t->s, t->len, pos);
        if (!name || node->nvars == MAX_TARGETS) {
            ev->line = t->line;
            return teval_fail(ev, "expected a variable name in '{%% %.*s %%}'", (int)t->len, t->s);
        }
        struct ttarget* tg = &node->vars[node->nvars++];
        tg->name           = name;
        if (allow_attr && tag_char(t, pos, '.')) {
            tg->attr = tparse_name(ev, t->s, t->len, pos);
            if (!tg->attr)
                return teval_fail(ev, "expected an attribute name after '%s.'", name);
        }
        if (!tag_char(t, pos, ','))
            break;
        if (paren && tag_char(t, pos, ')')) /* (a, b,) */
            return 0;
    }
    if (paren && !tag_char(t, pos, ')'))
        return teval_fail(ev, "expected ')' in '{%% %.*s %%}'", (int)t->len, t->s);
    return 0;
}

static int parse_for(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev   = p->ev;
    struct tnode* node = new_node(ev, N_FOR, t->line);
    if (parse_targets(ev, t, &pos, node, false) < 0)
        return -EINVAL;
    if (!tparse_peek_word(t->s, t->len, &pos, "in")) {
        ev->line = t->line;
        return teval_fail(ev, "expected 'in' in {%% for %%}");
    }
    pos += 2;
    if (tag_expr(ev, t, &pos, TPARSE_TUPLE | TPARSE_NO_COND, &node->e) < 0)
        return -EINVAL;
    if (tparse_peek_word(t->s, t->len, &pos, "if")) {
        pos += 2;
        if (tag_expr(ev, t, &pos, 0, &node->filter) < 0)
            return -EINVAL;
    }
    if (tparse_peek_word(t->s, t->len, &pos, "recursive")) {
        ev->line = t->line;
        return teval_fail(ev, "recursive for loops are not supported");
    }
    const char* stop;
    if (tag_done(ev, t, pos) < 0 ||
        parse_until(p, t, "for", &node->body, "endfor", "else", &stop, &pos) < 0)
        return -EINVAL;
    if (!strcmp(stop, "else") &&
        (tag_done(ev, &p->toks[p->pos - 1], pos) < 0 ||
         parse_until(p, t, "for", &node->else_body, "endfor", NULL, &stop, &pos) < 0))
        return -EINVAL;
    if (tag_done(ev, &p->toks[p->pos - 1], pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

/* The filters of {% filter f | g %} and {% set x | f %}, applied to the rendered body. */
static int parse_block_filters(struct teval* ev, const struct ttok* t, size_t* pos,
                               struct expr** ret) {
    struct expr* body = arena_alloc(ev->arena, sizeof(*body));
    body->kind        = EX_NAME;
    body->name        = BLOCK_BODY_NAME;
    body->line        = t->line;
    return tparse_filter_chain(ev, t->s, t->len, pos, t->line, body, ret);
}

static int parse_set(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev   = p->ev;
    struct tnode* node = new_node(ev, N_SET, t->line);
    if (parse_targets(ev, t, &pos, node, true) < 0)
        return -EINVAL;
    if (tag_char(t, &pos, '=')) {
        if (tag_expr(ev, t, &pos, TPARSE_TUPLE, &node->e) < 0 || tag_done(ev, t, pos) < 0)
            return -EINVAL;
        list_push(ev, out, node);
        return 0;
    }
    /* {% set x %}...{% endset %}, optionally {% set x | filter %} */
    node->kind = N_SET_BLOCK;
    if (node->nvars != 1 || node->vars[0].attr) {
        ev->line = t->line;
        return teval_fail(ev, "expected '=' in {%% set %%}");
    }
    if (tag_char(t, &pos, '|') && parse_block_filters(ev, t, &pos, &node->e) < 0)
        return -EINVAL;
    const char* stop;
    if (tag_done(ev, t, pos) < 0 ||
        parse_until(p, t, "set", &node->body, "endset", NULL, &stop, &pos) < 0 ||
        tag_done(ev, &p->toks[p->pos - 1], pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

static int parse_with(struct tparse* p, const struct ttok* t, size_t pos, struct tnode_list* out) {
    struct teval* ev   = p->ev;
    struct tnode* node = new_node(ev, N_WITH, t->line);
    tparse_skip_ws(t->s, t->len, &pos);
    while (pos < t->len) {
        if (node->nvars && !tag_char(t, &pos, ','))
            return tag_done(ev, t, pos);
        size_t first = node->nvars;
        if (parse_targets(ev, t, &pos, node, false) < 0)
            return -EINVAL;
        if (node->nvars != first + 1 || !tag_char(t, &pos, '=')) {
            ev->line = t->line;
            return teval_fail(ev, "expected 'name = value' in {%% with %%}");
        }
        if (tag_expr(ev, t, &pos, 0, &node->values[first]) < 0)
            return -EINVAL;
        tparse_skip_ws(t->s, t->len, &pos);
    }
    const char* stop;
    if (parse_until(p, t, "with", &node->body, "endwith", NULL, &stop, &pos) < 0 ||
        tag_done(ev, &p->toks[p->pos - 1], pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

static int parse_filter_block(struct tparse* p, const struct ttok* t, size_t pos,
                              struct tnode_list* out) {
    struct teval* ev   = p->ev;
    struct tnode* node = new_node(ev, N_FILTER, t->line);
    const char* stop;
    if (parse_block_filters(ev, t, &pos, &node->e) < 0 || tag_done(ev, t, pos) < 0 ||
        parse_until(p, t, "filter", &node->body, "endfilter", NULL, &stop, &pos) < 0 ||
        tag_done(ev, &p->toks[p->pos - 1], pos) < 0)
        return -EINVAL;
    list_push(ev, out, node);
    return 0;
}

static int parse_statement(struct tparse* p, const struct ttok* t, const char* kw, size_t pos,
                           struct tnode_list* out) {
    static const struct {
        const char* kw;
        int (*parse)(struct tparse*, const struct ttok*, size_t, struct tnode_list*);
    } statements[] = {
        {"if", parse_if},
        {"for", parse_for},
        {"set", parse_set},
        {"with", parse_with},
        {"filter", parse_filter_block},
    };
    for (size_t i = 0; i < ARRAY_SIZE(statements); i++)
        if (!strcmp(kw, statements[i].kw))
            return statements[i].parse(p, t, pos, out);
    static const char* const closers[] = {"elif",   "else",   "endif",   "endfor",
                                          "endraw", "endset", "endwith", "endfilter"};
    for (size_t i = 0; i < ARRAY_SIZE(closers); i++)
        if (!strcmp(kw, closers[i]))
            return teval_fail(p->ev, "unexpected {%% %s %%} without a matching opening tag", kw);
    return teval_fail(p->ev,
                      "unsupported statement {%% %s %%} (moat supports if, for, set, with, filter, "
                      "raw and comments; see docs/templates.md)",
                      kw);
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
        size_t pos           = 0;
        if (t->kind == T_TEXT) {
            struct tnode* node = new_node(ev, N_TEXT, t->line);
            node->text         = t->s;
            node->len          = t->len;
            list_push(ev, out, node);
            continue;
        }
        if (t->kind == T_VAR) {
            /* Jinja reports an output's errors at the line where its expression starts */
            struct ttok at = *t;
            tparse_skip_ws(t->s, t->len, &pos);
            for (size_t i = 0; i < pos; i++)
                at.line += t->s[i] == '\n';
            struct tnode* node = new_node(ev, N_OUTPUT, at.line);
            if (tag_expr(ev, &at, &pos, TPARSE_TUPLE, &node->e) < 0 || tag_done(ev, t, pos) < 0)
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
        p->depth++;
        int ret = parse_statement(p, t, kw, pos, out);
        p->depth--;
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Rendering                                                                                  */

static int render_list(struct teval* ev, const struct tnode_list* l, struct strbuf* out);

static int assign(struct teval* ev, struct tscope* scope, const struct ttarget* tg,
                  const struct tval* v) {
    if (!tg->attr) {
        tscope_set(scope, tg->name, v);
        return 0;
    }
    /* {% set ns.x = v %}: namespace objects are the one mutable value */
    const struct tval* nsv = tscope_get(ev->scope, tg->name);
    if (!nsv)
        return tv_undefined_error(ev, tv_undef(ev, tg->name));
    if (nsv->type != TV_DICT || !(nsv->flags & TVF_NAMESPACE))
        return teval_fail(ev, "cannot assign attribute on non-namespace object");
    struct tval* ns = (struct tval*)nsv;
    for (size_t i = 0; i < ns->u.dict.n; i++) {
        if (!strcmp(ns->u.dict.items[i].key, tg->attr)) {
            ns->u.dict.items[i].value = v;
            return 0;
        }
    }
    struct tdict_entry* items = arena_alloc(ev->arena, (ns->u.dict.n + 1) * sizeof(*items));
    memcpy(items, ns->u.dict.items, ns->u.dict.n * sizeof(*items));
    items[ns->u.dict.n] = (struct tdict_entry){tg->attr, v};
    ns->u.dict.items    = items;
    ns->u.dict.n++;
    return 0;
}

static int bind_targets(struct teval* ev, struct tscope* scope, const struct tnode* node,
                        const struct tval* v) {
    if (node->nvars == 1)
        return assign(ev, scope, &node->vars[0], v);
    const struct tval** items;
    size_t n;
    if (titer(ev, v, &items, &n) < 0)
        return -EINVAL;
    if (n != node->nvars)
        return teval_fail(ev, "%s values to unpack (expected %zu, got %zu)",
                          n > node->nvars ? "too many" : "not enough", node->nvars, n);
    for (size_t i = 0; i < n; i++)
        if (assign(ev, scope, &node->vars[i], items[i]) < 0)
            return -EINVAL;
    return 0;
}

static int check_budget(struct teval* ev) {
    if (ev->arena->total > MAX_RENDER_MEMORY)
        return teval_fail(ev, "template needs too much memory (more than %zu MiB)",
                          MAX_RENDER_MEMORY >> 20);
    if (ev->loop_steps > MAX_LOOP_STEPS)
        return teval_fail(ev, "template runs too long (more than %d loop iterations)",
                          MAX_LOOP_STEPS);
    return 0;
}

/* Runs `body` in a new scope (for bodies, with blocks, set/filter block bodies). */
static int render_scoped(struct teval* ev, struct tscope* scope, const struct tnode_list* body,
                         struct strbuf* out) {
    struct tscope* saved = ev->scope;
    ev->scope            = scope;
    int r                = render_list(ev, body, out);
    ev->scope            = saved;
    tscope_free(scope);
    return r;
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
    if (m == 0) {
        struct tscope scope = {.parent = ev->scope};
        return render_scoped(ev, &scope, &node->else_body, out);
    }
    for (size_t i = 0; i < m; i++) {
        ev->loop_steps++;
        ev->line = node->line;
        if (check_budget(ev) < 0)
            return -EINVAL;
        struct tval* loop   = arena_alloc(ev->arena, sizeof(*loop));
        loop->type          = TV_LOOP;
        loop->u.loop.items  = kept;
        loop->u.loop.n      = m;
        loop->u.loop.i      = i;
        struct tscope scope = {.parent = ev->scope};
        tscope_set(&scope, "loop", loop);
        struct tscope* saved = ev->scope;
        ev->scope            = &scope; /* targets like ns.x resolve from here */
        int r                = bind_targets(ev, &scope, node, kept[i]);
        ev->scope            = saved;
        if (r < 0) {
            tscope_free(&scope);
            return -EINVAL;
        }
        if (render_scoped(ev, &scope, &node->body, out) < 0)
            return -EINVAL;
    }
    return 0;
}

/* Renders a block body to a string, then applies the node's filters (if any). */
static int render_block_value(struct teval* ev, const struct tnode* node, const struct tval** ret) {
    struct strbuf sb    = STRBUF_INIT;
    struct tscope scope = {.parent = ev->scope};
    int r               = render_scoped(ev, &scope, &node->body, &sb);
    if (r == 0)
        r = tv_check_size(ev, sb.len);
    if (r < 0) {
        strbuf_free(&sb);
        return -EINVAL;
    }
    const struct tval* body = tstr_from_sb(ev, &sb);
    if (!node->e) {
        *ret = body;
        return 0;
    }
    struct tscope fscope = {.parent = ev->scope};
    tscope_set(&fscope, BLOCK_BODY_NAME, body);
    struct tscope* saved = ev->scope;
    ev->scope            = &fscope;
    r                    = teval_expr(ev, node->e, ret);
    ev->scope            = saved;
    tscope_free(&fscope);
    return r;
}

static int check_output(struct teval* ev, const struct strbuf* out) {
    if (out->len > MAX_OUTPUT_SIZE)
        return teval_fail(ev, "rendered template too large (more than %zu MiB)",
                          MAX_OUTPUT_SIZE >> 20);
    return check_budget(ev);
}

static int emit(struct teval* ev, const struct tval* v, struct strbuf* out) {
    if (tv_to_str(ev, v, out) < 0)
        return -EINVAL;
    return check_output(ev, out);
}

static int render_node(struct teval* ev, const struct tnode* node, struct strbuf* out) {
    ev->line = node->line;
    const struct tval* v;
    switch (node->kind) {
        case N_TEXT:
            strbuf_append(out, node->text, node->len);
            return check_output(ev, out);
        case N_OUTPUT:
            if (teval_expr(ev, node->e, &v) < 0)
                return -EINVAL;
            ev->line = node->line;
            return emit(ev, v, out);
        case N_SET:
            if (teval_expr(ev, node->e, &v) < 0)
                return -EINVAL;
            ev->line = node->line;
            return bind_targets(ev, ev->scope, node, v);
        case N_SET_BLOCK:
            if (render_block_value(ev, node, &v) < 0)
                return -EINVAL;
            return assign(ev, ev->scope, &node->vars[0], v);
        case N_FILTER:
            if (render_block_value(ev, node, &v) < 0)
                return -EINVAL;
            return emit(ev, v, out);
        case N_WITH: {
            struct tscope scope = {.parent = ev->scope};
            for (size_t i = 0; i < node->nvars; i++) {
                if (teval_expr(ev, node->values[i], &v) < 0) {
                    tscope_free(&scope);
                    return -EINVAL;
                }
                tscope_set(&scope, node->vars[i].name, v);
            }
            return render_scoped(ev, &scope, &node->body, out);
        }
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

int jinja_render(const char* text, size_t len, const char* filename,
                 const struct jinja_define* defs, size_t ndefs, const struct jinja_env* env,
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
    struct moat_error local_err;
    if (!err)
        err = ev.err = &local_err;
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
