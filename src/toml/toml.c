/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TOML 1.0.0 parser (https://toml.io/en/v1.0.0), checked against every case of toml-test's
 * 1.0.0 list (tests/test_toml.py). A hand-written recursive-descent parser over the raw bytes:
 * the whole document is validated as UTF-8 first, then parsed line by line into the tree.
 *
 * Table definition rules are tracked with toml_value.u.tab.origin:
 *   IMPLICIT  created as a parent by a [a.b.c] header: may later be defined once by a header
 *   HEADER    defined by a [header]: never again by a header, never extended by dotted keys
 *   DOTTED    created by a dotted key (a.b = 1): never defined by a header, extended only by
 *             dotted keys of the same table section
 *   INLINE    an inline table: sealed
 *   AOT       a table that is an element of an array of tables ([[a]])
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "toml.h"

enum {
    ORIGIN_IMPLICIT = 0,
    ORIGIN_HEADER,
    ORIGIN_DOTTED,
    ORIGIN_INLINE,
    ORIGIN_AOT,
};

struct dotted_owner {
    const struct toml_value* table;
    uint32_t section;
};

struct parser {
    const char* s;
    size_t len;
    size_t pos;
    uint32_t line;
    size_t line_start;
    struct toml_value* root;
    struct toml_value* cur;   /* table that key/value lines go into */
    uint32_t section;         /* counter of table sections, for DOTTED ownership */
    struct toml_value** aots; /* arrays created by [[header]] (appendable) */
    size_t naots, aots_cap;
    struct dotted_owner* dotted; /* DOTTED tables with the section that created them */
    size_t ndotted, dotted_cap;
    struct toml_error* err;
    char cbuf[24]; /* cdesc() output */
};

#define PARSE_FAIL(p, ...)              \
    do {                                \
        parser_error((p), __VA_ARGS__); \
        return -EINVAL;                 \
    } while (0)

PRINTF_FMT(2, 3) static void parser_error(struct parser* p, const char* fmt, ...) {
    if (p->err->msg[0])
        return; /* keep the first error */
    p->err->line = p->line;
    p->err->col  = (uint32_t)(p->pos - p->line_start + 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
}

/* "'x'" for printable ASCII, "byte 0xNN" otherwise (messages must stay valid UTF-8). */
static const char* cdesc(struct parser* p, int c) {
    if (c >= 0x20 && c < 0x7f)
        snprintf(p->cbuf, sizeof(p->cbuf), "'%c'", c);
    else if (c < 0)
        snprintf(p->cbuf, sizeof(p->cbuf), "end of file");
    else
        snprintf(p->cbuf, sizeof(p->cbuf), "byte 0x%02x", (unsigned)c & 0xff);
    return p->cbuf;
}

static int peek(const struct parser* p) {
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser* p, size_t off) {
    return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static bool starts_with(const struct parser* p, const char* lit) {
    size_t n = strlen(lit);
    return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static void newline_seen(struct parser* p) {
    p->line++;
    p->line_start = p->pos;
}

static void skip_ws(struct parser* p) {
    while (peek(p) == ' ' || peek(p) == '\t')
        p->pos++;
}

/* A newline is LF or CRLF; a bare CR is an error. Returns true if one was consumed. */
static bool eat_newline(struct parser* p) {
    if (peek(p) == '\n') {
        p->pos++;
        newline_seen(p);
        return true;
    }
    if (peek(p) == '\r' && peek_at(p, 1) == '\n') {
        p->pos += 2;
        newline_seen(p);
        return true;
    }
    return false;
}

static bool is_control(int c) {
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}

static int skip_comment(struct parser* p) {
    if (peek(p) != '#')
        return 0;
    while (p->pos < p->len && peek(p) != '\n') {
        int c = peek(p);
        if (c == '\r' && peek_at(p, 1) == '\n')
            break;
        if (is_control(c))
            PARSE_FAIL(p, "control character 0x%02x in comment", c);
        p->pos++;
    }
    return 0;
}

/* Whitespace, comments and newlines (inside arrays). */
static int skip_ws_nl(struct parser* p) {
    for (;;) {
        skip_ws(p);
        if (skip_comment(p) < 0)
            return -EINVAL;
        if (!eat_newline(p))
            break;
    }
    if (peek(p) == '\r')
        PARSE_FAIL(p, "carriage return not followed by a newline");
    return 0;
}

/* After a value or header: whitespace, optional comment, then newline or EOF. */
static int expect_eol(struct parser* p) {
    skip_ws(p);
    if (skip_comment(p) < 0)
        return -EINVAL;
    if (p->pos >= p->len || eat_newline(p))
        return 0;
    if (peek(p) == '\r')
        PARSE_FAIL(p, "carriage return not followed by a newline");
    PARSE_FAIL(p, "expected the end of the line, found %s", cdesc(p, peek(p)));
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8                                                                                      */

static int validate_utf8(struct parser* p) {
    const unsigned char* s = (const unsigned char*)p->s;
    size_t i               = 0;
    while (i < p->len) {
        /* ASCII runs, eight bytes at a time (manifests are almost all ASCII) */
        while (i + 8 <= p->len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= p->len)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq_len(s + i, p->len - i);
        if (n == 0) {
            /* the error names the line and column of the offending byte */
            for (size_t j = 0; j < i; j++)
                if (s[j] == '\n') {
                    p->line++;
                    p->line_start = j + 1;
                }
            p->pos = i;
            PARSE_FAIL(p, "invalid UTF-8 byte sequence");
        }
        i += n;
    }
    p->line       = 1;
    p->line_start = 0;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Strings                                                                                    */

static int parse_escape(struct parser* p, struct strbuf* sb) {
    p->pos++; /* backslash */
    int c              = peek(p);
    const char* simple = "b\bt\tn\nf\fr\r\"\"\\\\";
    for (const char* e = simple; *e; e += 2) {
        if (c == *e) {
            strbuf_putc(sb, e[1]);
            p->pos++;
            return 0;
        }
    }
    if (c == 'u' || c == 'U') {
        size_t n    = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        p->pos++;
        for (size_t i = 0; i < n; i++) {
            int h = peek(p);
            int v = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
            if (v < 0)
                PARSE_FAIL(p, "invalid unicode escape: expected %zu hex digits", n);
            cp = (cp << 4) | (uint32_t)v;
            p->pos++;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            PARSE_FAIL(p, "invalid unicode escape: U+%X is not a Unicode scalar value", cp);
        strbuf_put_utf8(sb, cp);
        return 0;
    }
    if (c < 0)
        PARSE_FAIL(p, "unterminated string");
    PARSE_FAIL(p, "invalid escape sequence '\\' followed by %s", cdesc(p, c));
}

/* Copies one (already UTF-8-validated) character of string content. */
static int string_char(struct parser* p, struct strbuf* sb, bool multiline) {
    int c = peek(p);
    if (c < 0)
        PARSE_FAIL(p, "unterminated string");
    if (multiline && eat_newline(p)) {
        strbuf_putc(sb, '\n');
        return 0;
    }
    if (is_control(c)) {
        if (c == '\n' || c == '\r')
            PARSE_FAIL(p, "unterminated string (newline in a single-line string)");
        PARSE_FAIL(p, "control character 0x%02x in string", c);
    }
    strbuf_putc(sb, (char)c);
    p->pos++;
    return 0;
}

/* Parses any of the four string forms at the current position. */
/* Bytes that end a run of ordinary characters in a one-line string: its quote, a control
 * character (tab is allowed), and for basic strings the backslash. Filled at first use. */
static uint8_t g_stop_basic[256], g_stop_literal[256];
static pthread_once_t g_stop_once = PTHREAD_ONCE_INIT;

static void stop_tables_init(void) {
    for (int c = 0; c < 256; c++) {
        bool ctl          = is_control(c);
        g_stop_basic[c]   = ctl || c == '"' || c == '\\';
        g_stop_literal[c] = ctl || c == '\'';
    }
}

static int parse_string(struct parser* p, struct strbuf* sb, bool allow_multiline) {
    pthread_once(&g_stop_once, stop_tables_init);
    bool literal   = peek(p) == '\'';
    const char* q3 = literal ? "'''" : "\"\"\"";
    char q         = literal ? '\'' : '"';

    if (starts_with(p, q3)) {
        if (!allow_multiline)
            PARSE_FAIL(p, "multi-line strings are not allowed as keys");
        p->pos += 3;
        eat_newline(p); /* a newline right after the opening delimiter is trimmed */
        for (;;) {
            if (starts_with(p, q3)) {
                /* up to two extra quotes belong to the content: """a"""""  */
                size_t n = 3;
                while (n < 5 && peek_at(p, n) == q)
                    n++;
                strbuf_append(sb, q3, n - 3);
                p->pos += n;
                return 0;
            }
            int c = peek(p);
            if (!literal && c == '\\') {
                /* line-ending backslash: skip whitespace and newlines */
                size_t save = p->pos;
                p->pos++;
                skip_ws(p);
                if (peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n')) {
                    for (;;) {
                        skip_ws(p);
                        if (!eat_newline(p))
                            break;
                    }
                    continue;
                }
                p->pos = save;
                if (parse_escape(p, sb) < 0)
                    return -EINVAL;
                continue;
            }
            if (string_char(p, sb, true) < 0)
                return -EINVAL;
        }
    }

    p->pos++;
    for (;;) {
        /* fast path: a run of ordinary characters is copied at once */
        const uint8_t* stop = literal ? g_stop_literal : g_stop_basic;
        size_t run          = p->pos;
        while (run < p->len && !stop[(unsigned char)p->s[run]])
            run++;
        if (run > p->pos) {
            strbuf_append(sb, p->s + p->pos, run - p->pos);
            p->pos = run;
        }
        int c = peek(p);
        if (c == q) {
            p->pos++;
            return 0;
        }
        if (!literal && c == '\\') {
            if (parse_escape(p, sb) < 0)
                return -EINVAL;
            continue;
        }
        if (string_char(p, sb, false) < 0)
            return -EINVAL;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                       */

static bool is_bare_key_char(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

struct key_part {
    char* name;
    size_t len;
    uint32_t line, col;
};

struct dotted_key {
    struct key_part* parts; /* inline_parts until a key has more than 4 parts */
    size_t len, cap;
    struct key_part inline_parts[4];
};

#define DOTTED_KEY_INIT(k) \
    { .parts = (k).inline_parts, .cap = 4 }

static void dotted_key_free(struct dotted_key* k) {
    for (size_t i = 0; i < k->len; i++)
        free(k->parts[i].name);
    if (k->parts != k->inline_parts)
        free(k->parts);
}

static int parse_simple_key(struct parser* p, struct dotted_key* k) {
    struct key_part part = {.line = p->line, .col = (uint32_t)(p->pos - p->line_start + 1)};
    int c                = peek(p);
    if (c == '"' || c == '\'') {
        struct strbuf sb = STRBUF_INIT;
        if (parse_string(p, &sb, false) < 0) {
            strbuf_free(&sb);
            return -EINVAL;
        }
        part.name = strbuf_take(&sb, &part.len);
    } else {
        size_t start = p->pos;
        while (is_bare_key_char(peek(p)))
            p->pos++;
        if (p->pos == start) {
            if (c < 0 || c == '\n' || c == '\r')
                PARSE_FAIL(p, "expected a key");
            PARSE_FAIL(p, "invalid character %s in key", cdesc(p, c));
        }
        part.name = xstrndup(p->s + start, p->pos - start);
        part.len  = p->pos - start;
    }
    if (k->len == k->cap) {
        struct key_part* grown = xmalloc(2 * k->cap * sizeof(*grown));
        memcpy(grown, k->parts, k->len * sizeof(*grown));
        if (k->parts != k->inline_parts)
            free(k->parts);
        k->parts = grown;
        k->cap *= 2;
    }
    k->parts[k->len++] = part;
    return 0;
}

static int parse_key(struct parser* p, struct dotted_key* k) {
    for (;;) {
        if (parse_simple_key(p, k) < 0)
            return -EINVAL;
        skip_ws(p);
        if (peek(p) != '.')
            return 0;
        p->pos++;
        skip_ws(p);
    }
}

/* "a.b.c" for messages, with quoted parts where needed. */
static char* key_display(const struct dotted_key* k, size_t upto) {
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < upto && i < k->len; i++) {
        if (i)
            strbuf_putc(&sb, '.');
        char* q = toml_quote_key(k->parts[i].name);
        strbuf_puts(&sb, q);
        free(q);
    }
    char* s = strbuf_take(&sb, NULL);
    return s ? s : xstrdup("");
}

/* ---------------------------------------------------------------------------------------- */
/* Numbers and date-times                                                                     */

static bool is_digit(int c) {
    return c >= '0' && c <= '9';
}

static int digits_n(const char* s, size_t n) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int parse_time_part(struct parser* p, struct toml_datetime* dt) {
    const char* s = p->s + p->pos;
    size_t avail  = p->len - p->pos;
    if (avail < 8 || s[2] != ':' || s[5] != ':')
        PARSE_FAIL(p, "invalid time: expected HH:MM:SS");
    dt->hour   = digits_n(s, 2);
    dt->minute = digits_n(s + 3, 2);
    dt->second = digits_n(s + 6, 2);
    if (dt->hour < 0 || dt->minute < 0 || dt->second < 0)
        PARSE_FAIL(p, "invalid time: expected HH:MM:SS");
    if (dt->hour > 23 || dt->minute > 59 || dt->second > 60)
        PARSE_FAIL(p, "invalid time: value out of range");
    p->pos += 8;
    if (peek(p) == '.') {
        p->pos++;
        if (!is_digit(peek(p)))
            PARSE_FAIL(p, "invalid time: expected digits after '.'");
        uint32_t ns = 0;
        int ndig    = 0;
        while (is_digit(peek(p))) {
            if (ndig < 9)
                ns = ns * 10 + (uint32_t)(peek(p) - '0');
            ndig++;
            p->pos++;
        }
        for (int i = ndig; i < 9; i++)
            ns *= 10;
        dt->nanosecond  = ns;
        dt->frac_digits = ndig > 9 ? 9 : ndig;
    }
    return 0;
}

static bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int parse_datetime(struct parser* p, struct toml_value* v) {
    struct toml_datetime* dt = &v->u.dt;
    const char* s            = p->s + p->pos;
    size_t avail             = p->len - p->pos;
    v->type                  = TOML_DATETIME;

    if (avail >= 3 && s[2] == ':') {
        dt->kind = TOML_DT_TIME;
        return parse_time_part(p, dt);
    }
    if (avail < 10 || s[4] != '-' || s[7] != '-')
        PARSE_FAIL(p, "invalid date: expected YYYY-MM-DD");
    dt->year  = digits_n(s, 4);
    dt->month = digits_n(s + 5, 2);
    dt->day   = digits_n(s + 8, 2);
    if (dt->year < 0 || dt->month < 0 || dt->day < 0)
        PARSE_FAIL(p, "invalid date: expected YYYY-MM-DD");
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (dt->month < 1 || dt->month > 12 || dt->day < 1 ||
        dt->day > mdays[dt->month - 1] + (dt->month == 2 && is_leap(dt->year)))
        PARSE_FAIL(p, "invalid date: %.10s does not exist", s);
    p->pos += 10;
    dt->kind = TOML_DT_DATE;

    /* 'T', 't' or a single space followed by a time */
    int sep = peek(p);
    if (!(sep == 'T' || sep == 't' || (sep == ' ' && is_digit(peek_at(p, 1)))))
        return 0;
    p->pos++;
    dt->kind = TOML_DT_LOCAL;
    if (parse_time_part(p, dt) < 0)
        return -EINVAL;
    int c = peek(p);
    if (c == 'Z' || c == 'z') {
        p->pos++;
        dt->kind  = TOML_DT_OFFSET;
        dt->utc_z = true;
    } else if (c == '+' || c == '-') {
        const char* o = p->s + p->pos + 1;
        if (p->len - p->pos < 6 || o[2] != ':')
            PARSE_FAIL(p, "invalid time offset: expected +HH:MM");
        int oh = digits_n(o, 2), om = digits_n(o + 3, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            PARSE_FAIL(p, "invalid time offset: expected +HH:MM");
        dt->kind           = TOML_DT_OFFSET;
        dt->offset_minutes = (c == '-' ? -1 : 1) * (oh * 60 + om);
        p->pos += 6;
    }
    return 0;
}

/* Copies [start, end) without underscores, checking each '_' is between two digits of the
 * given class. */
static int strip_underscores(struct parser* p, size_t start, size_t end, bool hex, char* out,
                             size_t out_size) {
    size_t n = 0;
    for (size_t i = start; i < end; i++) {
        char c = p->s[i];
        if (c == '_') {
            bool prev_ok = i > start && (hex ? isxdigit((unsigned char)p->s[i - 1])
                                             : is_digit((unsigned char)p->s[i - 1]));
            bool next_ok = i + 1 < end && (hex ? isxdigit((unsigned char)p->s[i + 1])
                                               : is_digit((unsigned char)p->s[i + 1]));
            if (!prev_ok || !next_ok) {
                p->pos = i;
                PARSE_FAIL(p, "invalid number: '_' must be between two digits");
            }
            continue;
        }
        if (n + 1 >= out_size) {
            p->pos = start;
            PARSE_FAIL(p, "number too long");
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

static bool is_number_char(int c) {
    return is_bare_key_char(c) || c == '+' || c == '.';
}

static int parse_number(struct parser* p, struct toml_value* v) {
    size_t start = p->pos;
    char buf[512];

    /* special floats */
    size_t off = (peek(p) == '+' || peek(p) == '-') ? 1 : 0;
    if (p->len - p->pos - off >= 3 && (memcmp(p->s + p->pos + off, "inf", 3) == 0 ||
                                       memcmp(p->s + p->pos + off, "nan", 3) == 0)) {
        bool nan = p->s[p->pos + off] == 'n';
        bool neg = off && p->s[p->pos] == '-';
        p->pos += off + 3;
        if (is_number_char(peek(p)))
            PARSE_FAIL(p, "invalid number");
        v->type = TOML_FLOAT;
        v->u.fp = nan ? (neg ? -NAN : NAN) : (neg ? -INFINITY : INFINITY);
        return 0;
    }

    /* prefixed integers: no sign allowed */
    if (peek(p) == '0' && (peek_at(p, 1) == 'x' || peek_at(p, 1) == 'o' || peek_at(p, 1) == 'b')) {
        int base = peek_at(p, 1) == 'x' ? 16 : peek_at(p, 1) == 'o' ? 8 : 2;
        p->pos += 2;
        size_t ds = p->pos;
        while (is_bare_key_char(peek(p)))
            p->pos++;
        if (p->pos == ds)
            PARSE_FAIL(p, "invalid number: no digits after the base prefix");
        if (strip_underscores(p, ds, p->pos, base == 16, buf, sizeof(buf)) < 0)
            return -EINVAL;
        for (char* c = buf; *c; c++) {
            int d = isxdigit((unsigned char)*c)
                        ? (is_digit((unsigned char)*c) ? *c - '0' : (tolower(*c) - 'a' + 10))
                        : 99;
            if (d >= base) {
                p->pos = ds;
                PARSE_FAIL(p, "invalid digit %s in a base-%d integer", cdesc(p, *c), base);
            }
        }
        uint64_t u;
        if (parse_u64(buf, base, &u) < 0 || u > INT64_MAX) {
            p->pos = start;
            PARSE_FAIL(p, "integer out of range");
        }
        v->type      = TOML_INTEGER;
        v->u.integer = (int64_t)u;
        return 0;
    }

    /* decimal integer or float */
    size_t i   = p->pos + off;
    bool is_fp = false;
    while (i < p->len &&
           (is_digit((unsigned char)p->s[i]) || p->s[i] == '_' || p->s[i] == '.' ||
            p->s[i] == 'e' || p->s[i] == 'E' ||
            ((p->s[i] == '+' || p->s[i] == '-') && (p->s[i - 1] == 'e' || p->s[i - 1] == 'E')))) {
        if (p->s[i] == '.' || p->s[i] == 'e' || p->s[i] == 'E')
            is_fp = true;
        i++;
    }
    size_t end = i;
    if (end < p->len && is_number_char((unsigned char)p->s[end]) && p->s[end] != '.') {
        p->pos = end;
        PARSE_FAIL(p, "invalid character %s in number", cdesc(p, (unsigned char)p->s[end]));
    }
    if (strip_underscores(p, p->pos + off, end, false, buf, sizeof(buf)) < 0)
        return -EINVAL;

    /* grammar: int-part [ '.' digits ] [ e [sign] digits ], int-part = 0 | [1-9][0-9]* */
    const char* c = buf;
    if (!is_digit((unsigned char)*c)) {
        p->pos = start;
        PARSE_FAIL(p, "invalid value");
    }
    if (c[0] == '0' && is_digit((unsigned char)c[1])) {
        p->pos = start;
        PARSE_FAIL(p, "invalid number: leading zeros are not allowed");
    }
    while (is_digit((unsigned char)*c))
        c++;
    if (*c == '.') {
        c++;
        if (!is_digit((unsigned char)*c)) {
            p->pos = start;
            PARSE_FAIL(p, "invalid float: expected digits after '.'");
        }
        while (is_digit((unsigned char)*c))
            c++;
    }
    if (*c == 'e' || *c == 'E') {
        c++;
        if (*c == '+' || *c == '-')
            c++;
        if (!is_digit((unsigned char)*c)) {
            p->pos = start;
            PARSE_FAIL(p, "invalid float: expected digits in the exponent");
        }
        while (is_digit((unsigned char)*c))
            c++;
    }
    if (*c != '\0') {
        p->pos = start;
        PARSE_FAIL(p, "invalid number");
    }
    p->pos = end;

    char full[520];
    snprintf(full, sizeof(full), "%s%s", off && p->s[start] == '-' ? "-" : "", buf);
    if (is_fp) {
        v->type = TOML_FLOAT;
        v->u.fp = strtod(full, NULL);
        return 0;
    }
    if (parse_i64(full, 10, &v->u.integer) < 0) {
        p->pos = start;
        PARSE_FAIL(p, "integer out of range");
    }
    v->type = TOML_INTEGER;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                     */

static int parse_value(struct parser* p, struct toml_value** ret, int depth);
static int parse_keyval(struct parser* p, struct toml_value* table, int depth, bool inline_tab);

#define MAX_DEPTH 128

static int parse_array(struct parser* p, struct toml_value* arr, int depth) {
    p->pos++; /* [ */
    for (;;) {
        if (skip_ws_nl(p) < 0)
            return -EINVAL;
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        struct toml_value* item = NULL;
        if (parse_value(p, &item, depth + 1) < 0) {
            toml_free(item);
            return -EINVAL;
        }
        toml_array_append(arr, item);
        if (skip_ws_nl(p) < 0)
            return -EINVAL;
        if (peek(p) == ',') {
            p->pos++;
            continue;
        }
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        if (peek(p) < 0)
            PARSE_FAIL(p, "unterminated array");
        PARSE_FAIL(p, "expected ',' or ']' in array, found %s", cdesc(p, peek(p)));
    }
}

static int parse_inline_table(struct parser* p, struct toml_value* tab, int depth) {
    p->pos++; /* { */
    tab->u.tab.origin = ORIGIN_INLINE;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (parse_keyval(p, tab, depth + 1, true) < 0)
            return -EINVAL;
        skip_ws(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_ws(p);
            if (peek(p) == '}')
                PARSE_FAIL(p, "trailing comma in inline table");
            continue;
        }
        if (peek(p) == '}') {
            p->pos++;
            return 0;
        }
        if (peek(p) == '\n' || peek(p) == '\r')
            PARSE_FAIL(p, "newline in inline table");
        if (peek(p) < 0)
            PARSE_FAIL(p, "unterminated inline table");
        PARSE_FAIL(p, "expected ',' or '}' in inline table, found %s", cdesc(p, peek(p)));
    }
}

/* Which value form starts here: a date-time begins with 4 digits and '-' or 2 digits and ':'. */
static bool looks_like_datetime(const struct parser* p) {
    const char* s = p->s + p->pos;
    size_t n      = p->len - p->pos;
    if (n >= 5 && is_digit((unsigned char)s[0]) && is_digit((unsigned char)s[1]) &&
        is_digit((unsigned char)s[2]) && is_digit((unsigned char)s[3]) && s[4] == '-')
        return true;
    return n >= 3 && is_digit((unsigned char)s[0]) && is_digit((unsigned char)s[1]) && s[2] == ':';
}

static int parse_value(struct parser* p, struct toml_value** ret, int depth) {
    *ret = NULL;
    if (depth > MAX_DEPTH)
        PARSE_FAIL(p, "values nested too deeply");
    struct toml_value* v = xcalloc(1, sizeof(*v));
    v->line              = p->line;
    v->col               = (uint32_t)(p->pos - p->line_start + 1);
    *ret                 = v; /* caller owns it even on failure */
    int c                = peek(p);
    int r;
    if (c == '"' || c == '\'') {
        struct strbuf sb = STRBUF_INIT;
        r                = parse_string(p, &sb, true);
        v->type          = TOML_STRING;
        v->u.str.ptr     = strbuf_take(&sb, &v->u.str.len);
        if (!v->u.str.ptr)
            v->u.str.ptr = xstrdup("");
        strbuf_free(&sb);
    } else if (c == '[') {
        v->type = TOML_ARRAY;
        r       = parse_array(p, v, depth);
    } else if (c == '{') {
        v->type = TOML_TABLE;
        r       = parse_inline_table(p, v, depth);
    } else if (starts_with(p, "true") && !is_bare_key_char(peek_at(p, 4))) {
        v->type      = TOML_BOOL;
        v->u.boolean = true;
        p->pos += 4;
        r = 0;
    } else if (starts_with(p, "false") && !is_bare_key_char(peek_at(p, 5))) {
        v->type      = TOML_BOOL;
        v->u.boolean = false;
        p->pos += 5;
        r = 0;
    } else if (looks_like_datetime(p)) {
        r = parse_datetime(p, v);
    } else if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n') {
        v->type = TOML_INTEGER;
        r       = parse_number(p, v);
    } else {
        v->type = TOML_BOOL;
        if (c < 0 || c == '\n' || c == '\r' || c == '#')
            PARSE_FAIL(p, "expected a value");
        PARSE_FAIL(p, "invalid value starting with %s", cdesc(p, c));
    }
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Tables                                                                                     */

static bool is_aot(const struct parser* p, const struct toml_value* arr) {
    for (size_t i = 0; i < p->naots; i++)
        if (p->aots[i] == arr)
            return true;
    return false;
}

static void mark_dotted(struct parser* p, struct toml_value* t) {
    t->u.tab.origin         = ORIGIN_DOTTED;
    p->dotted               = xgrow(p->dotted, &p->dotted_cap, p->ndotted + 1, sizeof(*p->dotted));
    p->dotted[p->ndotted++] = (struct dotted_owner){.table = t, .section = p->section};
}

static bool dotted_in_this_section(const struct parser* p, const struct toml_value* t) {
    for (size_t i = 0; i < p->ndotted; i++)
        if (p->dotted[i].table == t)
            return p->dotted[i].section == p->section;
    return false;
}

static char* dup_bytes(const char* s, size_t n) {
    char* d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static struct toml_kv* table_kv(struct toml_value* t, const struct key_part* part) {
    for (size_t i = 0; i < t->u.tab.len; i++) {
        struct toml_kv* kv = &t->u.tab.items[i];
        if (kv->key_len == part->len && memcmp(kv->key, part->name, part->len) == 0)
            return kv;
    }
    return NULL;
}

/* Adds key -> v. With `steal`, the key's name moves into the table (the last part of a key,
 * never needed again); otherwise it is copied. */
static void table_add_name(struct toml_value* t, struct key_part* part, struct toml_value* v,
                           bool steal) {
    t->u.tab.items = xgrow(t->u.tab.items, &t->u.tab.cap, t->u.tab.len + 1, sizeof(struct toml_kv));
    char* name     = steal ? TAKE_PTR(part->name) : dup_bytes(part->name, part->len);
    t->u.tab.items[t->u.tab.len++] = (struct toml_kv){
        .key = name, .key_len = part->len, .line = part->line, .col = part->col, .value = v};
}

static void table_add(struct toml_value* t, struct key_part* part, struct toml_value* v) {
    table_add_name(t, part, v, false);
}

/* key = value, into `table` (the current section's table or an inline table). */
static int parse_keyval(struct parser* p, struct toml_value* table, int depth, bool inline_tab) {
    struct dotted_key k  = DOTTED_KEY_INIT(k);
    int ret              = -EINVAL;
    struct toml_value* v = NULL;
    if (parse_key(p, &k) < 0)
        goto out;
    skip_ws(p);
    if (peek(p) != '=') {
        parser_error(p, "expected '=' after key '%s'", k.parts[k.len - 1].name);
        goto out;
    }
    p->pos++;
    skip_ws(p);

    /* walk/create the dotted parents */
    struct toml_value* t = table;
    for (size_t i = 0; i + 1 < k.len; i++) {
        struct toml_kv* kv = table_kv(t, &k.parts[i]);
        if (!kv) {
            struct toml_value* sub = toml_new_table();
            sub->line              = k.parts[i].line;
            sub->col               = k.parts[i].col;
            table_add(t, &k.parts[i], sub);
            if (inline_tab)
                sub->u.tab.origin = ORIGIN_DOTTED;
            else
                mark_dotted(p, sub);
            t = sub;
            continue;
        }
        struct toml_value* sub = kv->value;
        bool ok                = sub->type == TOML_TABLE && sub->u.tab.origin == ORIGIN_DOTTED &&
                  (inline_tab || dotted_in_this_section(p, sub));
        if (!ok) {
            char* name    = key_display(&k, i + 1);
            p->line       = k.parts[i].line;
            p->line_start = p->pos - (k.parts[i].col - 1);
            if (sub->type != TOML_TABLE)
                parser_error(p, "key '%s' is already defined as a %s", name,
                             toml_type_name(sub->type));
            else
                parser_error(p,
                             "cannot add keys to table '%s' with a dotted key: it is defined "
                             "elsewhere",
                             name);
            free(name);
            goto out;
        }
        t = sub;
    }

    if (parse_value(p, &v, depth) < 0)
        goto out;
    struct key_part* last = &k.parts[k.len - 1];
    if (table_kv(t, last)) {
        char* name    = key_display(&k, k.len);
        p->line       = last->line;
        p->line_start = 0;
        p->err->line  = last->line;
        p->err->col   = last->col;
        snprintf(p->err->msg, sizeof(p->err->msg), "duplicate key '%s'", name);
        free(name);
        goto out;
    }
    table_add_name(t, &k.parts[k.len - 1], TAKE_PTR(v), true);
    ret = 0;
out:
    toml_free(v);
    dotted_key_free(&k);
    return ret;
}

/* [a.b.c] or [[a.b.c]] */
static int parse_header(struct parser* p) {
    bool aot = starts_with(p, "[[");
    p->pos += aot ? 2 : 1;
    skip_ws(p);
    struct dotted_key k = DOTTED_KEY_INIT(k);
    int ret             = -EINVAL;
    if (parse_key(p, &k) < 0)
        goto out;
    skip_ws(p);
    if (aot ? !starts_with(p, "]]") : peek(p) != ']') {
        parser_error(p, "expected '%s' to close the table header", aot ? "]]" : "]");
        goto out;
    }
    p->pos += aot ? 2 : 1;
    p->section++;

    struct toml_value* t = p->root;
    for (size_t i = 0; i + 1 < k.len; i++) {
        struct toml_kv* kv = table_kv(t, &k.parts[i]);
        if (!kv) {
            struct toml_value* sub = toml_new_table();
            sub->line              = k.parts[i].line;
            sub->col               = k.parts[i].col;
            table_add(t, &k.parts[i], sub);
            t = sub;
            continue;
        }
        struct toml_value* sub = kv->value;
        if (sub->type == TOML_ARRAY && is_aot(p, sub) && sub->u.arr.len > 0) {
            t = sub->u.arr.items[sub->u.arr.len - 1];
            continue;
        }
        if (sub->type != TOML_TABLE || sub->u.tab.origin == ORIGIN_INLINE) {
            char* name = key_display(&k, i + 1);
            parser_error(p, "key '%s' is already defined as %s", name,
                         sub->type == TOML_TABLE   ? "an inline table"
                         : sub->type == TOML_ARRAY ? "an array"
                                                   : toml_type_name(sub->type));
            free(name);
            goto out;
        }
        t = sub;
    }

    struct key_part* last = &k.parts[k.len - 1];
    struct toml_kv* kv    = table_kv(t, last);
    if (aot) {
        struct toml_value* arr;
        if (!kv) {
            arr       = toml_new_array();
            arr->line = last->line;
            arr->col  = last->col;
            table_add_name(t, last, arr, true);
            p->aots             = xgrow(p->aots, &p->aots_cap, p->naots + 1, sizeof(*p->aots));
            p->aots[p->naots++] = arr;
        } else if (kv->value->type == TOML_ARRAY && is_aot(p, kv->value)) {
            arr = kv->value;
        } else {
            char* name = key_display(&k, k.len);
            parser_error(p, "cannot define array of tables '%s': key is already defined as %s",
                         name,
                         kv->value->type == TOML_ARRAY ? "a static array" : "a table or value");
            free(name);
            goto out;
        }
        struct toml_value* elem = toml_new_table();
        elem->line              = last->line;
        elem->col               = last->col;
        elem->u.tab.origin      = ORIGIN_AOT;
        toml_array_append(arr, elem);
        p->cur = elem;
    } else if (!kv) {
        struct toml_value* sub = toml_new_table();
        sub->line              = last->line;
        sub->col               = last->col;
        sub->u.tab.origin      = ORIGIN_HEADER;
        table_add_name(t, last, sub, true);
        p->cur = sub;
    } else if (kv->value->type == TOML_TABLE && kv->value->u.tab.origin == ORIGIN_IMPLICIT) {
        kv->value->u.tab.origin = ORIGIN_HEADER;
        p->cur                  = kv->value;
    } else {
        char* name = key_display(&k, k.len);
        parser_error(p, "duplicate table '[%s]' (first defined at line %u)", name, kv->line);
        free(name);
        goto out;
    }
    ret = expect_eol(p);
out:
    dotted_key_free(&k);
    return ret;
}

static int parse_document(struct parser* p) {
    if (validate_utf8(p) < 0)
        return -EINVAL;
    /* a UTF-8 BOM is allowed at the start */
    if (starts_with(p, "\xef\xbb\xbf"))
        p->pos += 3;
    while (p->pos < p->len) {
        skip_ws(p);
        int c = peek(p);
        if (c == '#') {
            if (skip_comment(p) < 0)
                return -EINVAL;
            if (expect_eol(p) < 0)
                return -EINVAL;
        } else if (eat_newline(p)) {
            continue;
        } else if (c < 0) {
            break;
        } else if (c == '[') {
            if (parse_header(p) < 0)
                return -EINVAL;
        } else if (c == '\r') {
            PARSE_FAIL(p, "carriage return not followed by a newline");
        } else {
            if (parse_keyval(p, p->cur, 0, false) < 0)
                return -EINVAL;
            if (expect_eol(p) < 0)
                return -EINVAL;
        }
    }
    return 0;
}

int toml_parse(const char* text, size_t len, const char* filename, struct toml_value** ret_root,
               struct toml_error* err, struct moat_error* err_out) {
    struct toml_error local_err;
    if (!err)
        err = &local_err;
    memset(err, 0, sizeof(*err));
    struct parser p = {
        .s    = text,
        .len  = len,
        .line = 1,
        .root = toml_new_table(),
        .err  = err,
    };
    p.root->line = 1;
    p.root->col  = 1;
    p.cur        = p.root;
    int ret      = parse_document(&p);
    free(p.aots);
    free(p.dotted);
    if (ret < 0) {
        toml_free(p.root);
        if (!err->msg[0])
            snprintf(err->msg, sizeof(err->msg), "invalid TOML");
        if (err_out)
            moat_error_set(err_out, -EINVAL, "%s:%u:%u: %s", filename ? filename : "<input>",
                           err->line, err->col, err->msg);
        return -EINVAL;
    }
    *ret_root = p.root;
    return 0;
}
