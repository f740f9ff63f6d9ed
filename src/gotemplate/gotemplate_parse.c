/* SPDX-License-Identifier: Apache-2.0 */
/* Parser of the Go text/template subset: the recursive descent of Go's text/template/parse
 * (parse.go: action, pipeline, command, operand, term) with its three-token look-ahead, so the
 * same input fails with the same message on the same line. Control actions ({{if}}, {{range}},
 * {{define}}, ...) and variable declarations are rejected: MarbleRun parameters use none. */
#include <setjmp.h>
#include <string.h>

#include "gotemplate_impl.h"

struct parser {
    struct gotemplate* t;
    struct gt_tokens toks;
    size_t next_tok;
    struct gt_token token[3];
    int peek_count;
    int action_line;
    int depth;
    struct moat_error* err;
    jmp_buf fail; /* errors unwind to gotemplate_parse, which frees everything */
};

static struct gt_token lex_next(struct parser* p) {
    /* After the final EOF/ERROR token the lexer keeps returning it. */
    size_t i = p->next_tok < p->toks.n ? p->next_tok++ : p->toks.n - 1;
    return p->toks.v[i];
}

static struct gt_token next(struct parser* p) {
    if (p->peek_count > 0)
        p->peek_count--;
    else
        p->token[0] = lex_next(p);
    return p->token[p->peek_count];
}

static void backup(struct parser* p) {
    p->peek_count++;
}

static struct gt_token peek(struct parser* p) {
    if (p->peek_count > 0)
        return p->token[p->peek_count - 1];
    p->peek_count = 1;
    p->token[0]   = lex_next(p);
    return p->token[0];
}

static struct gt_token next_non_space(struct parser* p) {
    struct gt_token tok;
    do
        tok = next(p);
    while (tok.type == T_SPACE);
    return tok;
}

static struct gt_token peek_non_space(struct parser* p) {
    struct gt_token tok = next_non_space(p);
    backup(p);
    return tok;
}

/* Go's Tree.errorf: "template: NAME:LINE: msg", LINE of the last token read. */
static _Noreturn void fail(struct parser* p, const char* fmt, ...) PRINTF_FMT(2, 3);
static _Noreturn void fail(struct parser* p, const char* fmt, ...) {
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    moat_error_set(p->err, -EINVAL, "template: %s:%d: %s", p->t->name, p->token[0].line, sb.buf);
    strbuf_free(&sb);
    longjmp(p->fail, 1);
}

/* Go's item.String(). */
static void token_string(struct strbuf* sb, const struct gt_token* tok) {
    if (tok->type == T_EOF)
        strbuf_puts(sb, "EOF");
    else if (tok->type == T_ERROR)
        strbuf_append(sb, tok->val, tok->len);
    else if (tok->type == T_KEYWORD || tok->type == T_NIL)
        strbuf_printf(sb, "<%.*s>", (int)tok->len, tok->val);
    else if (tok->len > 10) {
        gt_quote(sb, tok->val, tok->len, 10);
        strbuf_puts(sb, "...");
    } else
        gt_quote(sb, tok->val, tok->len, 0);
}

static _Noreturn void unexpected(struct parser* p, const struct gt_token* tok, const char* ctx) {
    struct strbuf sb = STRBUF_INIT;
    token_string(&sb, tok);
    char what[1200];
    snprintf(what, sizeof(what), "%s", sb.buf);
    strbuf_free(&sb); /* fail() does not return: nothing may stay allocated */
    if (tok->type == T_ERROR) {
        const char* extra = "";
        char buf[256]     = "";
        if (p->action_line != 0 && p->action_line != tok->line) {
            bool action = tok->len >= 7 && memcmp(tok->val + tok->len - 7, " action", 7) == 0;
            snprintf(buf, sizeof(buf), "%s started at %s:%d", action ? "" : " in action",
                     p->t->name, p->action_line);
            extra = buf;
        }
        fail(p, "%s%s", what, extra);
    }
    fail(p, "unexpected %s in %s", what, ctx);
}

static struct gt_node* node_new(struct parser* p, enum gt_node_type type, size_t pos) {
    struct gotemplate* t  = p->t;
    struct gt_node* n     = xcalloc(1, sizeof(*n));
    n->type               = type;
    n->pos                = pos;
    t->nodes              = xgrow(t->nodes, &t->cap, t->nnodes + 1, sizeof(*t->nodes));
    t->nodes[t->nnodes++] = n;
    return n;
}

static void node_append(struct gt_node* n, struct gt_node* kid) {
    n->kids             = xrealloc(n->kids, (n->nkids + 1) * sizeof(*n->kids));
    n->kids[n->nkids++] = kid;
}

static void ident_append(struct gt_node* n, const char* s, size_t len) {
    n->idents               = xrealloc(n->idents, (n->nidents + 1) * sizeof(*n->idents));
    n->idents[n->nidents++] = (struct gt_ident){s, len};
}

static int hexval(int c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* One escape after '\\' at s[*i] (strconv.UnquoteChar); false on invalid syntax. */
static bool unquote_escape(const char* s, size_t len, size_t* i, int quote, struct strbuf* sb) {
    static const char from[] = "abfnrtv\\";
    static const char to[]   = "\a\b\f\n\r\t\v\\";
    char c                   = s[(*i)++];
    const char* e            = strchr(from, c);
    if (c && e) {
        strbuf_putc(sb, to[e - from]);
        return true;
    }
    if (c == quote) {
        strbuf_putc(sb, (char)quote);
        return true;
    }
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (c >= '0' && c <= '7') {
        unsigned v = (unsigned)(c - '0');
        for (int k = 0; k < 2; k++, (*i)++) {
            if (*i >= len || s[*i] < '0' || s[*i] > '7')
                return false;
            v = v * 8 + (unsigned)(s[*i] - '0');
        }
        if (v > 255)
            return false;
        strbuf_putc(sb, (char)v);
        return true;
    }
    if (!digits || len - *i < (size_t)digits)
        return false;
    uint32_t v = 0;
    for (int k = 0; k < digits; k++, (*i)++) {
        int h = hexval((unsigned char)s[*i]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    if (c == 'x')
        strbuf_putc(sb, (char)v);
    else if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
        return false;
    else
        strbuf_put_utf8(sb, v);
    return true;
}

/* strconv.Unquote of a "..." or `...` token; Go reports failure as "invalid syntax". */
static void unquote(struct parser* p, struct gt_node* n, const struct gt_token* tok) {
    struct strbuf sb = STRBUF_INIT;
    const char* s    = tok->val + 1;
    size_t len = tok->len - 2, i = 0;
    bool ok = true;
    while (ok && i < len) {
        char c = s[i++];
        if (tok->type == T_RAW_STRING) {
            if (c != '\r') /* Go drops carriage returns from raw strings */
                strbuf_putc(&sb, c);
        } else if (c == '\\') {
            ok = i < len && unquote_escape(s, len, &i, '"', &sb);
        } else {
            strbuf_putc(&sb, c);
        }
    }
    n->str = strbuf_take(&sb, &n->str_len);
    if (!ok)
        fail(p, "invalid syntax");
}

/* Integer constants only (decimal, 0x, 0o, 0b, leading-0 octal, '_' separators, char
 * constants); Go's floats and complex numbers are outside the subset. */
static void parse_number(struct parser* p, struct gt_node* n, const struct gt_token* tok) {
    const char* s = tok->val;
    size_t len = tok->len, i = 0;
    bool neg = false;
    if (tok->type == T_CHAR_CONST) {
        if (len != 3 || s[1] == '\\' || (unsigned char)s[1] >= 0x80)
            fail(p, "moat supports only plain ASCII character constants, not %.*s", (int)len, s);
        n->num = (unsigned char)s[1];
        return;
    }
    size_t sign = len > 0 && (s[0] == '+' || s[0] == '-');
    bool hex    = len - sign > 1 && s[sign] == '0' && (s[sign + 1] == 'x' || s[sign + 1] == 'X');
    if (tok->type == T_COMPLEX || memchr(s, '.', len) || memchr(s, 'i', len) ||
        (!hex && (memchr(s, 'e', len) || memchr(s, 'E', len))) ||
        (hex && (memchr(s, 'p', len) || memchr(s, 'P', len))))
        fail(p, "moat supports only integer constants, not %.*s", (int)len, s);
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    unsigned base = 10;
    if (len - i > 1 && s[i] == '0') {
        char b = s[i + 1];
        base   = (b == 'x' || b == 'X')   ? 16
                 : (b == 'o' || b == 'O') ? 8
                 : (b == 'b' || b == 'B') ? 2
                                          : 8;
        i += base == 8 && b != 'o' && b != 'O' ? 1 : 2;
    }
    uint64_t v  = 0;
    bool digits = false, ok = i < len;
    for (; ok && i < len; i++) {
        if (s[i] == '_')
            continue;
        int d  = hexval((unsigned char)s[i]);
        ok     = d >= 0 && (unsigned)d < base && v <= (UINT64_MAX - (unsigned)d) / base;
        v      = v * base + (unsigned)(d < 0 ? 0 : d);
        digits = true;
    }
    if (!ok || !digits || v > (uint64_t)INT64_MAX + neg) {
        struct strbuf sb = STRBUF_INIT;
        gt_quote(&sb, s, len, 0);
        char q[200];
        snprintf(q, sizeof(q), "%s", sb.buf);
        strbuf_free(&sb);
        fail(p, "illegal number syntax: %s", q);
    }
    n->num = neg ? (int64_t)(0 - v) : (int64_t)v;
}

static struct gt_node* pipeline(struct parser* p, const char* ctx, enum gt_tok end);

/* term: literal | function | . | .Field | $ | '(' pipeline ')'; NULL if none. */
static struct gt_node* term(struct parser* p) {
    struct gt_token tok = next_non_space(p);
    struct gt_node* n;
    switch (tok.type) {
        case T_IDENT:
            if (!gt_func_defined(p->t->funcs, tok.val, tok.len))
                fail(p, "function \"%.*s\" not defined", (int)tok.len, tok.val);
            n = node_new(p, N_IDENT, tok.pos);
            break;
        case T_DOT:
            return node_new(p, N_DOT, tok.pos);
        case T_NIL:
            return node_new(p, N_NIL, tok.pos);
        case T_VARIABLE:
            /* Only "$" (the data) exists: the subset has no declarations. */
            if (tok.len != 1)
                fail(p, "undefined variable \"%.*s\"", (int)tok.len, tok.val);
            n = node_new(p, N_VARIABLE, tok.pos);
            ident_append(n, tok.val, 1);
            return n;
        case T_FIELD:
            n = node_new(p, N_FIELD, tok.pos);
            ident_append(n, tok.val + 1, tok.len - 1);
            return n;
        case T_BOOL:
            n          = node_new(p, N_BOOL, tok.pos);
            n->boolean = tok.val[0] == 't';
            return n;
        case T_NUMBER:
        case T_CHAR_CONST:
        case T_COMPLEX:
            n = node_new(p, N_NUMBER, tok.pos);
            parse_number(p, n, &tok);
            break;
        case T_LPAREN:
            if (p->depth >= GOTEMPLATE_MAX_DEPTH)
                fail(p, "max expression depth exceeded");
            p->depth++;
            n = pipeline(p, "parenthesized pipeline", T_RPAREN);
            p->depth--;
            return n;
        case T_STRING:
        case T_RAW_STRING:
            n = node_new(p, N_STRING, tok.pos);
            unquote(p, n, &tok);
            break;
        default:
            backup(p);
            return NULL;
    }
    n->text = tok.val;
    n->len  = tok.len;
    return n;
}

/* operand: term .Field* */
static struct gt_node* operand(struct parser* p) {
    struct gt_node* n = term(p);
    if (!n || peek(p).type != T_FIELD)
        return n;
    struct gt_node* chain = node_new(p, N_CHAIN, peek(p).pos);
    chain->sub            = n;
    while (peek(p).type == T_FIELD) {
        struct gt_token f = next(p);
        ident_append(chain, f.val + 1, f.len - 1);
    }
    switch (n->type) {
        case N_FIELD:
        case N_VARIABLE: /* Go folds the fields into the original node, at the chain's position */
            for (size_t i = 0; i < chain->nidents; i++)
                ident_append(n, chain->idents[i].s, chain->idents[i].len);
            n->pos = chain->pos;
            return n;
        case N_BOOL:
        case N_STRING:
        case N_NUMBER:
        case N_NIL:
        case N_DOT: {
            struct strbuf sb = STRBUF_INIT, q = STRBUF_INIT;
            gt_node_string(&sb, n);
            gt_quote(&q, sb.buf, sb.len, 0);
            char msg[1200];
            snprintf(msg, sizeof(msg), "%s", q.buf);
            strbuf_free(&sb);
            strbuf_free(&q);
            fail(p, "unexpected . after term %s", msg);
        }
        default:
            return chain;
    }
}

/* command: operand (space operand)*, up to '|' (consumed), ')' or '}}' (left). */
static struct gt_node* command(struct parser* p) {
    struct gt_node* cmd = node_new(p, N_CMD, peek_non_space(p).pos);
    for (;;) {
        (void)peek_non_space(p);
        struct gt_node* arg = operand(p);
        if (arg)
            node_append(cmd, arg);
        struct gt_token tok = next(p);
        if (tok.type == T_SPACE)
            continue;
        if (tok.type == T_RIGHT_DELIM || tok.type == T_RPAREN)
            backup(p);
        else if (tok.type != T_PIPE)
            unexpected(p, &tok, "operand");
        break;
    }
    if (cmd->nkids == 0)
        fail(p, "empty command");
    return cmd;
}

static bool starts_command(enum gt_tok type) {
    switch (type) {
        case T_BOOL:
        case T_CHAR_CONST:
        case T_COMPLEX:
        case T_DOT:
        case T_FIELD:
        case T_IDENT:
        case T_NUMBER:
        case T_NIL:
        case T_RAW_STRING:
        case T_STRING:
        case T_VARIABLE:
        case T_LPAREN:
            return true;
        default:
            return false;
    }
}

/* Declarations ("$x := ...") would need variables; Go's look-ahead decides what is one. */
static void reject_declarations(struct parser* p, const char* ctx) {
    struct gt_token v = peek_non_space(p);
    if (v.type != T_VARIABLE)
        return;
    next(p);
    struct gt_token after = peek(p);
    struct gt_token n     = peek_non_space(p);
    if (n.type == T_ASSIGN || n.type == T_DECLARE || (n.type == T_CHAR && n.val[0] == ','))
        fail(p, "variable declarations in %s are not supported by moat", ctx);
    if (after.type == T_SPACE) {
        p->token[1]   = after;
        p->token[2]   = v;
        p->peek_count = 3;
    } else {
        p->token[1]   = v;
        p->peek_count = 2;
    }
}

static struct gt_node* pipeline(struct parser* p, const char* ctx, enum gt_tok end) {
    struct gt_token first = peek_non_space(p);
    struct gt_node* pipe  = node_new(p, N_PIPE, first.pos);
    pipe->line            = first.line;
    reject_declarations(p, ctx);
    for (;;) {
        struct gt_token tok = next_non_space(p);
        if (tok.type == end)
            break;
        if (!starts_command(tok.type))
            unexpected(p, &tok, ctx);
        backup(p);
        node_append(pipe, command(p));
        if (pipe->nkids > GOTEMPLATE_MAX_PIPELINE)
            fail(p, "pipeline too long");
    }
    if (pipe->nkids == 0)
        fail(p, "missing value for %s", ctx);
    for (size_t i = 1; i < pipe->nkids; i++) {
        switch (pipe->kids[i]->kids[0]->type) {
            case N_BOOL:
            case N_DOT:
            case N_NIL:
            case N_NUMBER:
            case N_STRING:
                fail(p, "non executable command in pipeline stage %zu", i + 1);
            default:
                break;
        }
    }
    return pipe;
}

static struct gt_node* action(struct parser* p) {
    struct gt_token tok = next_non_space(p);
    if (tok.type == T_KEYWORD) {
        if ((tok.len == 3 && memcmp(tok.val, "end", 3) == 0) ||
            (tok.len == 4 && memcmp(tok.val, "else", 4) == 0))
            fail(p, "unexpected {{%.*s}}", (int)tok.len, tok.val);
        fail(p, "{{%.*s}} is not supported by moat (MarbleRun parameters use pipelines only)",
             (int)tok.len, tok.val);
    }
    backup(p);
    tok               = peek(p);
    struct gt_node* a = node_new(p, N_ACTION, tok.pos);
    a->line           = tok.line;
    a->sub            = pipeline(p, "command", T_RIGHT_DELIM);
    return a;
}

static void parse_all(struct parser* p) {
    p->t->root = node_new(p, N_PIPE, 0);
    while (peek(p).type != T_EOF) {
        struct gt_token tok = next_non_space(p);
        if (tok.type == T_TEXT) {
            struct gt_node* n = node_new(p, N_TEXT, tok.pos);
            n->text           = tok.val;
            n->len            = tok.len;
            node_append(p->t->root, n);
        } else if (tok.type == T_LEFT_DELIM) {
            p->action_line = tok.line;
            node_append(p->t->root, action(p));
            p->action_line = 0;
        } else {
            unexpected(p, &tok, "input");
        }
    }
}

static void idents_string(struct strbuf* sb, const struct gt_node* n, bool leading_dot) {
    for (size_t i = 0; i < n->nidents; i++) {
        if (i > 0 || leading_dot)
            strbuf_putc(sb, '.');
        strbuf_append(sb, n->idents[i].s, n->idents[i].len);
    }
}

void gt_node_string(struct strbuf* sb, const struct gt_node* n) {
    switch (n->type) {
        case N_ACTION:
            strbuf_puts(sb, "{{");
            gt_node_string(sb, n->sub);
            strbuf_puts(sb, "}}");
            break;
        case N_PIPE:
        case N_CMD:
            for (size_t i = 0; i < n->nkids; i++) {
                if (i > 0)
                    strbuf_puts(sb, n->type == N_PIPE ? " | " : " ");
                bool paren = n->type == N_CMD && n->kids[i]->type == N_PIPE;
                if (paren)
                    strbuf_putc(sb, '(');
                gt_node_string(sb, n->kids[i]);
                if (paren)
                    strbuf_putc(sb, ')');
            }
            break;
        case N_FIELD:
            idents_string(sb, n, true);
            break;
        case N_VARIABLE:
            idents_string(sb, n, false);
            break;
        case N_CHAIN:
            if (n->sub->type == N_PIPE)
                strbuf_putc(sb, '(');
            gt_node_string(sb, n->sub);
            if (n->sub->type == N_PIPE)
                strbuf_putc(sb, ')');
            idents_string(sb, n, true);
            break;
        case N_DOT:
            strbuf_putc(sb, '.');
            break;
        case N_NIL:
            strbuf_puts(sb, "nil");
            break;
        case N_BOOL:
            strbuf_puts(sb, n->boolean ? "true" : "false");
            break;
        case N_TEXT:
        case N_IDENT:
        case N_NUMBER:
        case N_STRING:
            strbuf_append(sb, n->text, n->len);
            break;
    }
}

void gotemplate_free(struct gotemplate* t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->nnodes; i++) {
        free(t->nodes[i]->str);
        free(t->nodes[i]->idents);
        free(t->nodes[i]->kids);
        free(t->nodes[i]);
    }
    free(t->nodes);
    free(t->text);
    free(t->name);
    free(t);
}

/* The parse, where an error longjmps back (Go's panic/recover): kept apart from the caller so
 * that no local of the caller lives across the setjmp. */
static int parse_guarded(struct gotemplate* t, size_t len, struct moat_error* err) {
    struct parser* volatile p = xcalloc(1, sizeof(*p)); /* volatile: read after longjmp */
    p->t                      = t;
    p->err                    = err;
    gt_lex(t->text, len, &p->toks);
    int r = 0;
    if (setjmp(p->fail) == 0)
        parse_all(p);
    else
        r = -EINVAL;
    gt_tokens_free(&p->toks);
    free(p);
    return r;
}

int gotemplate_parse(const char* name, const char* text, size_t len, enum gotemplate_funcs funcs,
                     struct gotemplate** ret_tmpl, struct moat_error* err) {
    if (len > GOTEMPLATE_MAX_TEXT)
        return moat_error_set(err, -E2BIG, "template: %s: template of %zu bytes exceeds %u bytes",
                              name, len, GOTEMPLATE_MAX_TEXT);
    _cleanup_gotemplate_ struct gotemplate* t = xcalloc(1, sizeof(*t));
    t->name                                   = xstrdup(name);
    t->text                                   = xmalloc(len + 1);
    if (len)
        memcpy(t->text, text, len);
    t->text[len] = '\0';
    t->len       = len;
    t->funcs     = funcs;

    int r = parse_guarded(t, len, err);
    if (r < 0)
        return r;
    *ret_tmpl = TAKE_PTR(t);
    return 0;
}
