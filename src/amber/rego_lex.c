/* SPDX-License-Identifier: Apache-2.0 */
/* The Rego lexer: identifiers, JSON-escaped and raw strings, numbers, operators, newlines
 * (statement separators), `#` comments. Every byte is read through bounds-checked indices. */
#include <string.h>

#include "rego_impl.h"

struct lexer {
    const char* s;
    size_t len, pos;
    int line, col;
    struct rg_token* toks;
    size_t n, cap;
    struct moat_error* err;
};

static int lex_err(struct lexer* lx, int line, int col, const char* what) {
    return moat_error_set(lx->err, -EINVAL, "line %d, column %d: %s", line, col, what);
}

static void advance(struct lexer* lx, size_t k) {
    for (size_t i = 0; i < k && lx->pos < lx->len; i++) {
        if (lx->s[lx->pos] == '\n') {
            lx->line++;
            lx->col = 1;
        } else if (((unsigned char)lx->s[lx->pos] & 0xc0) != 0x80) {
            lx->col++; /* columns count code points */
        }
        lx->pos++;
    }
}

static int peekc(const struct lexer* lx, size_t ahead) {
    return lx->pos + ahead < lx->len ? (unsigned char)lx->s[lx->pos + ahead] : -1;
}

static int push(struct lexer* lx, enum rg_tok type, int line, int col, size_t start) {
    if (lx->n >= REGO_MAX_TOKENS)
        return moat_error_set(lx->err, -E2BIG, "line %d: policy has more than %d tokens", line,
                              REGO_MAX_TOKENS);
    lx->toks          = xgrow(lx->toks, &lx->cap, lx->n + 1, sizeof(*lx->toks));
    lx->toks[lx->n++] = (struct rg_token){
        .type = type, .line = line, .col = col, .p = lx->s + start, .len = lx->pos - start};
    return 0;
}

static int hex4(struct lexer* lx, uint32_t* ret) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int d = hex_digit_value(peekc(lx, i));
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    advance(lx, 4);
    *ret = v;
    return 0;
}

/* "…" with JSON escapes (OPA strings are JSON strings). */
static int lex_string(struct lexer* lx, struct strbuf* sb) {
    int line = lx->line, col = lx->col;
    advance(lx, 1);
    for (;;) {
        int c = peekc(lx, 0);
        if (c < 0 || c == '\n')
            return lex_err(lx, line, col, "unterminated string");
        if (c == '"') {
            advance(lx, 1);
            return 0;
        }
        if (c != '\\') {
            if (c < 0x20)
                return lex_err(lx, lx->line, lx->col, "control character in string");
            strbuf_putc(sb, (char)c);
            advance(lx, 1);
            continue;
        }
        int e  = peekc(lx, 1);
        int el = lx->line, ec = lx->col;
        advance(lx, 2);
        const char* simple = strchr("\"\\/bfnrt", e < 0 ? 'x' : e);
        if (e > 0 && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            strbuf_putc(sb, out[simple - "\"\\/bfnrt"]);
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || hex4(lx, &cp) < 0)
            return lex_err(lx, el, ec, "invalid escape in string");
        if (cp >= 0xd800 && cp < 0xdc00) {
            if (peekc(lx, 0) != '\\' || peekc(lx, 1) != 'u')
                return lex_err(lx, el, ec, "invalid surrogate pair in string");
            advance(lx, 2);
            if (hex4(lx, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                return lex_err(lx, el, ec, "invalid surrogate pair in string");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            return lex_err(lx, el, ec, "invalid surrogate pair in string");
        }
        strbuf_put_utf8(sb, cp);
    }
}

static int lex_raw_string(struct lexer* lx, struct strbuf* sb) {
    int line = lx->line, col = lx->col;
    advance(lx, 1);
    for (;;) {
        int c = peekc(lx, 0);
        if (c < 0)
            return lex_err(lx, line, col, "unterminated raw string");
        advance(lx, 1);
        if (c == '`')
            return 0;
        strbuf_putc(sb, (char)c);
    }
}

static bool is_digit(int c) {
    return c >= '0' && c <= '9';
}
static bool is_ident_start(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* JSON number grammar (OPA numbers are JSON numbers); the sign is the parser's business. */
static int lex_number(struct lexer* lx) {
    int line = lx->line, col = lx->col;
    if (peekc(lx, 0) == '0' && is_digit(peekc(lx, 1)))
        return lex_err(lx, line, col, "number with a leading zero");
    while (is_digit(peekc(lx, 0)))
        advance(lx, 1);
    if (peekc(lx, 0) == '.') {
        if (!is_digit(peekc(lx, 1)))
            return lex_err(lx, line, col, "invalid number");
        advance(lx, 1);
        while (is_digit(peekc(lx, 0)))
            advance(lx, 1);
    }
    if (peekc(lx, 0) == 'e' || peekc(lx, 0) == 'E') {
        advance(lx, 1);
        if (peekc(lx, 0) == '+' || peekc(lx, 0) == '-')
            advance(lx, 1);
        if (!is_digit(peekc(lx, 0)))
            return lex_err(lx, line, col, "invalid number");
        while (is_digit(peekc(lx, 0)))
            advance(lx, 1);
    }
    if (is_ident_start(peekc(lx, 0)))
        return lex_err(lx, line, col, "invalid number");
    return 0;
}

static const struct {
    const char* text;
    enum rg_tok type;
} puncts[] = {
    {":=", TK_ASSIGN}, {"==", TK_EQ},    {"!=", TK_NE},    {"<=", TK_LE},    {">=", TK_GE},
    {"{", TK_LBRACE},  {"}", TK_RBRACE}, {"[", TK_LBRACK}, {"]", TK_RBRACK}, {"(", TK_LPAREN},
    {")", TK_RPAREN},  {",", TK_COMMA},  {".", TK_DOT},    {":", TK_COLON},  {";", TK_SEMI},
    {"=", TK_UNIFY},   {"<", TK_LT},     {">", TK_GT},     {"|", TK_OTHER},  {"&", TK_OTHER},
    {"+", TK_OTHER},   {"-", TK_OTHER},  {"*", TK_OTHER},  {"/", TK_OTHER},  {"%", TK_OTHER},
};

static int lex_one(struct lexer* lx) {
    int c = peekc(lx, 0), line = lx->line, col = lx->col;
    size_t start = lx->pos;
    if (c == '\n') {
        advance(lx, 1);
        if (lx->n > 0 && lx->toks[lx->n - 1].type == TK_NEWLINE)
            return 0;
        return push(lx, TK_NEWLINE, line, col, start);
    }
    if (c == ' ' || c == '\t' || c == '\r') {
        advance(lx, 1);
        return 0;
    }
    if (c == '#') {
        while (peekc(lx, 0) >= 0 && peekc(lx, 0) != '\n')
            advance(lx, 1);
        return 0;
    }
    if (c == '"' || c == '`') {
        _cleanup_strbuf_ struct strbuf sb = {0};
        int r = c == '"' ? lex_string(lx, &sb) : lex_raw_string(lx, &sb);
        if (r < 0)
            return r;
        r = push(lx, TK_STRING, line, col, start);
        if (r < 0)
            return r;
        size_t n;
        char* s                     = strbuf_take(&sb, &n);
        lx->toks[lx->n - 1].str     = s ? s : xstrdup("");
        lx->toks[lx->n - 1].str_len = s ? n : 0;
        return 0;
    }
    if (is_digit(c)) {
        int r = lex_number(lx);
        return r < 0 ? r : push(lx, TK_NUMBER, line, col, start);
    }
    if (is_ident_start(c)) {
        while (is_ident_start(peekc(lx, 0)) || is_digit(peekc(lx, 0)))
            advance(lx, 1);
        return push(lx, TK_IDENT, line, col, start);
    }
    for (size_t i = 0; i < ARRAY_SIZE(puncts); i++) {
        size_t n = strlen(puncts[i].text);
        if (lx->len - lx->pos >= n && memcmp(lx->s + lx->pos, puncts[i].text, n) == 0) {
            advance(lx, n);
            return push(lx, puncts[i].type, line, col, start);
        }
    }
    if (c == '!')
        return lex_err(lx, line, col, "`!` is not an operator in Rego (use `not` or `!=`)");
    return lex_err(lx, line, col, "unexpected character");
}

void rg_tokens_free(struct rg_token* toks, size_t n) {
    for (size_t i = 0; toks && i < n; i++)
        free(toks[i].str);
    free(toks);
}

/* Policies are UTF-8 (OPA reads Go strings; JSON output needs valid strings). */
static int check_utf8(struct lexer* lx) {
    int line = 1, col = 1;
    for (size_t i = 0; i < lx->len;) {
        size_t n = utf8_seq_len((const unsigned char*)lx->s + i, lx->len - i);
        if (n == 0)
            return lex_err(lx, line, col, "invalid UTF-8");
        if (lx->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
        i += n;
    }
    return 0;
}

int rg_lex(const char* text, size_t len, struct rg_token** ret_toks, size_t* ret_n,
           struct moat_error* err) {
    struct lexer lx = {.s = text, .len = len, .line = 1, .col = 1, .err = err};
    int r           = check_utf8(&lx);
    if (r < 0)
        return r;
    while (lx.pos < lx.len && r == 0)
        r = lex_one(&lx);
    if (r == 0)
        r = push(&lx, TK_EOF, lx.line, lx.col, lx.pos);
    if (r < 0) {
        rg_tokens_free(lx.toks, lx.n);
        return r;
    }
    *ret_toks = lx.toks;
    *ret_n    = lx.n;
    return 0;
}
