/* SPDX-License-Identifier: Apache-2.0 */
/* Lexer of the Go text/template subset: the state machine of Go's text/template/parse/lex.go
 * (delimiters "{{" "}}", trim markers "{{- " and " -}}", comments), run eagerly into an array
 * that ends in T_EOF or in the first T_ERROR, which is what Go's parser would see. */
#include <string.h>

#include "gotemplate_impl.h"

struct lexer {
    const char* in;
    size_t len, pos, start;
    int paren_depth;
    struct gt_tokens* out;
    size_t line_pos; /* line_no is the line of byte line_pos: tokens come in order */
    int line_no;
};

static bool is_space(int c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Go's unicode.IsLetter/IsDigit; every non-ASCII byte counts as a letter here (a documented
 * simplification: Go checks the rune's class). */
static bool is_alnum(int c) {
    return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c >= 0x80;
}

static int peek_at(const struct lexer* l, size_t pos) {
    return pos < l->len ? (unsigned char)l->in[pos] : -1;
}

static bool has_prefix(const struct lexer* l, size_t pos, const char* s) {
    size_t n = strlen(s);
    return pos <= l->len && l->len - pos >= n && memcmp(l->in + pos, s, n) == 0;
}

/* "{{- " : the marker must be followed by white space, else "{{-3}}" is the number -3. */
static bool left_trim_marker(const struct lexer* l, size_t pos) {
    return peek_at(l, pos) == '-' && is_space(peek_at(l, pos + 1));
}

static bool right_trim_marker(const struct lexer* l, size_t pos) {
    return is_space(peek_at(l, pos)) && peek_at(l, pos + 1) == '-';
}

static int line_at(struct lexer* l, size_t pos) {
    if (pos < l->line_pos) {
        l->line_pos = 0;
        l->line_no  = 1;
    }
    for (; l->line_pos < pos && l->line_pos < l->len; l->line_pos++)
        l->line_no += l->in[l->line_pos] == '\n';
    return l->line_no;
}

static void emit_at(struct lexer* l, enum gt_tok type, size_t start, size_t end) {
    struct gt_tokens* t = l->out;
    t->v                = xgrow(t->v, &t->cap, t->n + 1, sizeof(*t->v));
    t->v[t->n++]        = (struct gt_token){.type = type,
                                            .pos  = start,
                                            .line = line_at(l, start),
                                            .val  = l->in + start,
                                            .len  = end - start};
    l->start            = l->pos;
}

static void emit(struct lexer* l, enum gt_tok type) {
    emit_at(l, type, l->start, l->pos);
}

static bool lex_error(struct lexer* l, const char* fmt, ...) PRINTF_FMT(2, 3);
static bool lex_error(struct lexer* l, const char* fmt, ...) {
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    size_t n;
    l->out->msg = strbuf_take(&sb, &n);
    emit_at(l, T_ERROR, l->start, l->start);
    l->out->v[l->out->n - 1].val = l->out->msg;
    l->out->v[l->out->n - 1].len = n;
    return false;
}

/* Go's %#U of the byte at pos (ASCII, or U+FFFD-free best effort for a UTF-8 lead byte). */
static void rune_desc(const struct lexer* l, size_t pos, char* buf, size_t size) {
    int c = peek_at(l, pos);
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, size, "U+%04X '%c'", c, c);
    else
        snprintf(buf, size, "U+%04X", c < 0 ? 0 : c);
}

static bool at_terminator(const struct lexer* l) {
    int c = peek_at(l, l->pos);
    return is_space(c) || c == -1 || c == '.' || c == ',' || c == '|' || c == ':' || c == ')' ||
           c == '(' || c == '}';
}

static bool at_right_delim(const struct lexer* l, bool* trim) {
    if (right_trim_marker(l, l->pos) && has_prefix(l, l->pos + 2, "}}")) {
        *trim = true;
        return true;
    }
    *trim = false;
    return has_prefix(l, l->pos, "}}");
}

static size_t spaces_from(const struct lexer* l, size_t pos) {
    size_t n = 0;
    while (is_space(peek_at(l, pos + n)))
        n++;
    return n;
}

static void lex_right_delim(struct lexer* l) {
    bool trim;
    (void)at_right_delim(l, &trim);
    if (trim)
        l->pos += 2;
    l->start = l->pos;
    l->pos += 2;
    emit(l, T_RIGHT_DELIM);
    if (trim)
        l->pos += spaces_from(l, l->pos);
    l->start = l->pos;
}

/* One comment `/ * ... * /` up to and including its closing delimiter. */
static bool lex_comment(struct lexer* l) {
    l->start        = l->pos;
    const char* end = memmem(l->in + l->pos + 2, l->len - l->pos - 2, "*/", 2);
    if (!end)
        return lex_error(l, "unclosed comment");
    l->pos = (size_t)(end - l->in) + 2;
    bool trim;
    if (!at_right_delim(l, &trim))
        return lex_error(l, "comment ends before closing delimiter");
    l->pos += (trim ? 2 : 0) + 2;
    if (trim)
        l->pos += spaces_from(l, l->pos);
    l->start = l->pos;
    return true;
}

static bool lex_word(struct lexer* l, enum gt_tok type) {
    while (is_alnum(peek_at(l, l->pos)))
        l->pos++;
    if (!at_terminator(l)) {
        char desc[32];
        rune_desc(l, l->pos, desc, sizeof(desc));
        return lex_error(l, "bad character %s", desc);
    }
    if (type == T_IDENT) {
        static const char* const keywords[] = {"block", "break", "continue", "define",   "else",
                                               "end",   "if",    "range",    "template", "with"};
        size_t n                            = l->pos - l->start;
        for (size_t i = 0; i < ARRAY_SIZE(keywords); i++)
            if (strlen(keywords[i]) == n && memcmp(keywords[i], l->in + l->start, n) == 0)
                type = T_KEYWORD;
        if (n == 3 && memcmp(l->in + l->start, "nil", 3) == 0)
            type = T_NIL;
        if ((n == 4 && memcmp(l->in + l->start, "true", 4) == 0) ||
            (n == 5 && memcmp(l->in + l->start, "false", 5) == 0))
            type = T_BOOL;
    }
    emit(l, type);
    return true;
}

/* '.' or '$' has been consumed. */
static bool lex_field_or_variable(struct lexer* l, enum gt_tok type) {
    if (at_terminator(l)) {
        emit(l, type == T_VARIABLE ? T_VARIABLE : T_DOT);
        return true;
    }
    return lex_word(l, type);
}

static bool accept(struct lexer* l, const char* valid) {
    int c = peek_at(l, l->pos);
    if (c > 0 && strchr(valid, c)) {
        l->pos++;
        return true;
    }
    return false;
}

static void accept_run(struct lexer* l, const char* valid) {
    while (accept(l, valid)) {
    }
}

static bool scan_number(struct lexer* l) {
    (void)accept(l, "+-");
    const char* digits = "0123456789_";
    if (accept(l, "0")) {
        if (accept(l, "xX"))
            digits = "0123456789abcdefABCDEF_";
        else if (accept(l, "oO"))
            digits = "01234567_";
        else if (accept(l, "bB"))
            digits = "01_";
    }
    accept_run(l, digits);
    if (accept(l, "."))
        accept_run(l, digits);
    if (strlen(digits) == 11 && accept(l, "eE")) {
        (void)accept(l, "+-");
        accept_run(l, "0123456789_");
    }
    if (strlen(digits) == 23 && accept(l, "pP")) {
        (void)accept(l, "+-");
        accept_run(l, "0123456789_");
    }
    (void)accept(l, "i");
    if (is_alnum(peek_at(l, l->pos))) {
        l->pos++;
        return false;
    }
    return true;
}

static bool lex_number(struct lexer* l) {
    struct strbuf sb = STRBUF_INIT;
    bool ok          = scan_number(l);
    enum gt_tok type = T_NUMBER;
    if (ok && (peek_at(l, l->pos) == '+' || peek_at(l, l->pos) == '-')) {
        ok   = scan_number(l) && l->in[l->pos - 1] == 'i';
        type = T_COMPLEX;
    }
    if (!ok) {
        gt_quote(&sb, l->in + l->start, l->pos - l->start, 0);
        bool r = lex_error(l, "bad number syntax: %s", sb.buf);
        strbuf_free(&sb);
        return r;
    }
    emit(l, type);
    return true;
}

/* Quoted string or character constant; the opening quote is consumed. */
static bool lex_quote(struct lexer* l, int quote, enum gt_tok type, const char* what) {
    for (;;) {
        int c = peek_at(l, l->pos);
        if (c == -1 || c == '\n')
            return lex_error(l, "unterminated %s", what);
        l->pos++;
        if (c == '\\') {
            int d = peek_at(l, l->pos);
            if (d == -1 || d == '\n')
                return lex_error(l, "unterminated %s", what);
            l->pos++;
        } else if (c == quote) {
            break;
        }
    }
    emit(l, type);
    return true;
}

static bool lex_raw_quote(struct lexer* l) {
    const char* end = memchr(l->in + l->pos, '`', l->len - l->pos);
    if (!end)
        return lex_error(l, "unterminated raw quoted string");
    l->pos = (size_t)(end - l->in) + 1;
    emit(l, T_RAW_STRING);
    return true;
}

/* A run of spaces; a single space before "-}}" belongs to the trim marker. Returns true when
 * the action ended here (the right delimiter was lexed). */
static bool lex_space(struct lexer* l, bool* ended) {
    size_t n = spaces_from(l, l->pos);
    l->pos += n;
    *ended = false;
    if (peek_at(l, l->pos) == '-' && has_prefix(l, l->pos + 1, "}}")) {
        l->pos--; /* before the space */
        if (n == 1) {
            lex_right_delim(l);
            *ended = true;
            return true;
        }
    }
    emit(l, T_SPACE);
    return true;
}

/* Lexes one action after its left delimiter, through the right delimiter. */
static bool lex_action(struct lexer* l) {
    for (;;) {
        bool trim, ended;
        if (at_right_delim(l, &trim)) {
            if (l->paren_depth == 0) {
                lex_right_delim(l);
                return true;
            }
            return lex_error(l, "unclosed left paren");
        }
        int c = peek_at(l, l->pos);
        if (c == -1)
            return lex_error(l, "unclosed action");
        bool ok = true;
        if (is_space(c)) {
            ok = lex_space(l, &ended);
            if (ended)
                return true;
            continue;
        }
        l->pos++;
        int next = peek_at(l, l->pos);
        switch (c) {
            case '=':
                emit(l, T_ASSIGN);
                break;
            case ':':
                if (next != '=')
                    return lex_error(l, "expected :=");
                l->pos++;
                emit(l, T_DECLARE);
                break;
            case '|':
                emit(l, T_PIPE);
                break;
            case '"':
                ok = lex_quote(l, '"', T_STRING, "quoted string");
                break;
            case '`':
                ok = lex_raw_quote(l);
                break;
            case '$':
                ok = lex_field_or_variable(l, T_VARIABLE);
                break;
            case '\'':
                ok = lex_quote(l, '\'', T_CHAR_CONST, "character constant");
                break;
            case '(':
                l->paren_depth++;
                emit(l, T_LPAREN);
                break;
            case ')':
                l->paren_depth--;
                if (l->paren_depth < 0)
                    return lex_error(l, "unexpected right paren");
                emit(l, T_RPAREN);
                break;
            default:
                if (c == '.' && !(next >= '0' && next <= '9')) {
                    ok = lex_field_or_variable(l, T_FIELD);
                } else if (c == '.' || c == '+' || c == '-' || (c >= '0' && c <= '9')) {
                    l->pos--;
                    ok = lex_number(l);
                } else if (is_alnum(c)) {
                    ok = lex_word(l, T_IDENT);
                } else if (c > 0x20 && c < 0x7f) {
                    emit(l, T_CHAR);
                } else {
                    char desc[32];
                    rune_desc(l, l->pos - 1, desc, sizeof(desc));
                    return lex_error(l, "unrecognized character in action: %s", desc);
                }
        }
        if (!ok)
            return false;
    }
}

/* Text up to the next "{{", trimmed when the delimiter carries "- "; then the action. */
static bool lex_text_and_action(struct lexer* l) {
    const char* x = memmem(l->in + l->pos, l->len - l->pos, "{{", 2);
    if (!x) {
        l->pos = l->len;
        if (l->pos > l->start)
            emit(l, T_TEXT);
        emit(l, T_EOF);
        return false;
    }
    size_t delim = (size_t)(x - l->in);
    size_t end   = delim;
    bool trim    = left_trim_marker(l, delim + 2);
    if (trim)
        while (end > l->start && is_space((unsigned char)l->in[end - 1]))
            end--;
    if (end > l->start)
        emit_at(l, T_TEXT, l->start, end);
    l->pos   = delim + 2 + (trim ? 2 : 0);
    l->start = l->pos;
    if (has_prefix(l, l->pos, "/*"))
        return lex_comment(l);
    emit_at(l, T_LEFT_DELIM, delim, delim + 2);
    l->start       = l->pos;
    l->paren_depth = 0;
    return lex_action(l);
}

void gt_lex(const char* text, size_t len, struct gt_tokens* ret) {
    *ret            = (struct gt_tokens){0};
    struct lexer lx = {.in = text, .len = len, .out = ret, .line_no = 1};
    while (lex_text_and_action(&lx)) {
    }
}

void gt_tokens_free(struct gt_tokens* t) {
    free(t->v);
    free(t->msg);
    *t = (struct gt_tokens){0};
}

/* strconv.Quote: escapes, \x for invalid bytes, valid UTF-8 copied (assumed printable). */
static size_t utf8_len(const unsigned char* s, size_t n) {
    size_t want = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (s[0] >= 0xf8 || want == 0 || want > n)
        return 0;
    for (size_t i = 1; i < want; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return want;
}

void gt_quote(struct strbuf* sb, const char* s, size_t len, size_t max_runes) {
    static const char esc[] = "\a\b\f\n\r\t\v";
    static const char rep[] = "abfnrtv";
    strbuf_putc(sb, '"');
    size_t runes = 0;
    for (size_t i = 0; i < len && (max_runes == 0 || runes < max_runes); runes++) {
        unsigned char c = (unsigned char)s[i];
        const char* e   = c ? strchr(esc, c) : NULL;
        size_t u        = c >= 0x80 ? utf8_len((const unsigned char*)s + i, len - i) : 0;
        if (c == '"' || c == '\\') {
            strbuf_putc(sb, '\\');
            strbuf_putc(sb, (char)c);
        } else if (e) {
            strbuf_putc(sb, '\\');
            strbuf_putc(sb, rep[e - esc]);
        } else if (c >= 0x20 && c < 0x7f) {
            strbuf_putc(sb, (char)c);
        } else if (u) {
            strbuf_append(sb, s + i, u);
            i += u;
            continue;
        } else {
            strbuf_printf(sb, "\\x%02x", c);
        }
        i++;
    }
    strbuf_putc(sb, '"');
}
