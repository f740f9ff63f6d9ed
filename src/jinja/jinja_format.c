/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Python's string formatting for templates: printf-style `fmt % args` (also the `format`
 * filter) and str.format() with the format-spec mini-language (Python 3.11
 * "printf-style String Formatting" and "Format Specification Mini-Language").
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "jinja_impl.h"

static bool is_int(const struct tval* v) {
    return v->type == TV_INT || v->type == TV_BOOL;
}

static int64_t int_of(const struct tval* v) {
    return v->type == TV_INT ? v->u.i : v->u.b;
}

static bool is_num(const struct tval* v) {
    return is_int(v) || v->type == TV_FLOAT;
}

static double dbl_of(const struct tval* v) {
    return v->type == TV_FLOAT ? v->u.f : (double)int_of(v);
}

struct pspec {
    char flags[6];
    int width, prec; /* -1: not given */
    char conv;
};

static void pad(struct strbuf* sb, const char* s, size_t n, const struct pspec* sp,
                size_t zero_at) {
    size_t w = sp->width > 0 ? (size_t)sp->width : 0;
    if (n >= w) {
        strbuf_append(sb, s, n);
        return;
    }
    if (strchr(sp->flags, '-')) {
        strbuf_append(sb, s, n);
        for (size_t i = n; i < w; i++)
            strbuf_putc(sb, ' ');
    } else if (zero_at != SIZE_MAX && strchr(sp->flags, '0')) {
        strbuf_append(sb, s, zero_at);
        for (size_t i = n; i < w; i++)
            strbuf_putc(sb, '0');
        strbuf_append(sb, s + zero_at, n - zero_at);
    } else {
        for (size_t i = n; i < w; i++)
            strbuf_putc(sb, ' ');
        strbuf_append(sb, s, n);
    }
}

static int format_one(struct teval* ev, const struct pspec* sp, const struct tval* v,
                      struct strbuf* out) {
    struct strbuf tmp = STRBUF_INIT;
    char c            = sp->conv;
    int r             = 0;
    if (c == 's' || c == 'r' || c == 'a') {
        if (c == 's')
            r = tv_to_str(ev, v, &tmp);
        else
            tv_repr(v, &tmp);
        size_t n = tmp.len;
        if (sp->prec >= 0 && (size_t)sp->prec < n)
            n = (size_t)sp->prec;
        if (r == 0)
            pad(out, tmp.buf ? tmp.buf : "", n, sp, SIZE_MAX);
    } else if (strchr("diouxX", c)) {
        int64_t i;
        if (is_int(v) || (v->type == TV_FLOAT && strchr("diu", c) && isfinite(v->u.f))) {
            i                = is_int(v) ? int_of(v) : (int64_t)v->u.f;
            const char* sign = i < 0                    ? "-"
                               : strchr(sp->flags, '+') ? "+"
                               : strchr(sp->flags, ' ') ? " "
                                                        : "";
            const char* pfx  = !strchr(sp->flags, '#') ? ""
                               : c == 'o'              ? "0o"
                               : c == 'x'              ? "0x"
                               : c == 'X'              ? "0X"
                                                       : "";
            uint64_t u       = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
            char digits[72];
            snprintf(digits, sizeof(digits),
                     c == 'o'   ? "%" PRIo64
                     : c == 'x' ? "%" PRIx64
                     : c == 'X' ? "%" PRIX64
                                : "%" PRIu64,
                     u);
            strbuf_printf(&tmp, "%s%s", sign, pfx);
            size_t zero_at = tmp.len;
            for (int k = (int)strlen(digits); k < sp->prec; k++)
                strbuf_putc(&tmp, '0');
            strbuf_puts(&tmp, digits);
            pad(out, tmp.buf, tmp.len, sp, zero_at);
        } else {
            r = teval_fail(ev, "%%%c format: %s is required, not %s", c,
                           strchr("diu", c) ? "a real number" : "an integer", tv_type_name(v));
        }
    } else if (strchr("eEfFgG", c)) {
        if (!is_num(v)) {
            r = teval_fail(ev, "must be real number, not %s", tv_type_name(v));
        } else {
            char fmt[32], buf[512];
            snprintf(fmt, sizeof(fmt), "%%%s*.*%c", sp->flags, c);
            int prec = sp->prec >= 0 ? (sp->prec > 300 ? 300 : sp->prec) : 6;
            int w    = sp->width > 150 ? 150 : sp->width < 0 ? 0 : sp->width;
            /* the format is built from validated flags and one of eEfFgG */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(buf, sizeof(buf), fmt, w, prec, dbl_of(v));
#pragma GCC diagnostic pop
            strbuf_puts(out, buf);
        }
    } else if (c == 'c') {
        char ch = v->type == TV_STR && v->u.str.len == 1          ? v->u.str.s[0]
                  : is_int(v) && int_of(v) > 0 && int_of(v) < 128 ? (char)int_of(v)
                                                                  : '\0';
        if (ch)
            pad(out, &ch, 1, sp, SIZE_MAX);
        else
            r = teval_fail(ev, "%%c requires an int or a single character");
    } else {
        r = teval_fail(ev, "unsupported format character '%c'", c);
    }
    strbuf_free(&tmp);
    return r;
}

/* Flags, width and precision of one conversion ("%-*.3d"): `*` takes an argument. */
static int parse_pspec(struct teval* ev, const char* s, size_t len, size_t* pi,
                       const struct tval* const* pos, size_t npos, size_t* next, struct pspec* sp) {
    size_t i = *pi, nf = 0;
    while (i < len && s[i] && strchr("#0- +", s[i])) {
        if (!strchr(sp->flags, s[i]))
            sp->flags[nf++] = s[i];
        i++;
    }
    for (int part = 0; part < 2; part++) {
        if (part == 1) {
            if (i >= len || s[i] != '.')
                break;
            i++;
        }
        int* dst = part ? &sp->prec : &sp->width;
        if (i < len && s[i] == '*') {
            i++;
            if (*next >= npos || !is_int(pos[*next]))
                return teval_fail(ev, "* wants int");
            int64_t x = int_of(pos[(*next)++]);
            *dst      = x > 1000 ? 1000 : x < -1000 ? -1000 : (int)x;
            if (!part && *dst < 0) {
                *dst = -*dst;
                if (!strchr(sp->flags, '-')) /* at most 4 other flags: room is left */
                    sp->flags[nf++] = '-';
            }
        } else if (i < len && s[i] >= '0' && s[i] <= '9') {
            int x = 0;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                x = x * 10 + (s[i++] - '0');
                if (x > 1000)
                    x = 1000;
            }
            *dst = x;
        } else if (part) {
            *dst = 0; /* "%.f" */
        }
    }
    *pi = i;
    return 0;
}

int teval_percent_format(struct teval* ev, const struct tval* fmt, const struct tval* args,
                         const struct tval** ret) {
    const struct tval* one[1]     = {args};
    const struct tval* const* pos = one;
    size_t npos = 1, next = 0;
    if (args->type == TV_LIST && (args->flags & TVF_TUPLE)) {
        pos  = args->u.list.items;
        npos = args->u.list.n;
    }
    const struct tval* mapping = args->type == TV_DICT ? args : NULL;
    /* CPython: any non-tuple argument with __getitem__ absorbs unused arguments silently */
    bool mapping_like =
        mapping || args->type == TV_UNDEF || (args->type == TV_LIST && !(args->flags & TVF_TUPLE));
    bool used_mapping = false;
    struct strbuf sb  = STRBUF_INIT;
    const char* s     = fmt->u.str.s;
    size_t len = fmt->u.str.len, i = 0;
    int r = 0;
    while (i < len && r == 0) {
        if (s[i] != '%') {
            strbuf_putc(&sb, s[i++]);
            continue;
        }
        i++;
        const struct tval* v = NULL;
        if (i < len && s[i] == '(') {
            const char* close = memchr(s + i, ')', len - i);
            if (close && args->type == TV_UNDEF) {
                r = tv_undefined_error(ev, args);
                break;
            }
            if (!close || !mapping) {
                r = teval_fail(ev, close ? "format requires a mapping" : "incomplete format key");
                break;
            }
            char* key = arena_strndup(ev->arena, s + i + 1, (size_t)(close - s - i - 1));
            v         = tv_dict_get(mapping, key);
            if (!v) {
                r = teval_fail(ev, "KeyError: '%s'", key);
                break;
            }
            used_mapping = true;
            i            = (size_t)(close - s) + 1;
        }
        struct pspec sp = {.width = -1, .prec = -1};
        r               = parse_pspec(ev, s, len, &i, pos, npos, &next, &sp);
        if (r < 0)
            break;
        while (i < len && strchr("hlL", s[i]) && s[i])
            i++;
        if (i >= len) {
            r = teval_fail(ev, "incomplete format");
            break;
        }
        sp.conv = s[i++];
        if (sp.conv == '%') {
            strbuf_putc(&sb, '%');
            continue;
        }
        if (!v) {
            if (next >= npos) {
                r = teval_fail(ev, "not enough arguments for format string");
                break;
            }
            v = pos[next++];
        }
        r = format_one(ev, &sp, v, &sb);
        if (r == 0 && sb.len > MAX_STR_SIZE)
            r = tv_check_size(ev, sb.len);
    }
    if (r == 0 && next < npos && !mapping_like && !used_mapping)
        r = teval_fail(ev, "not all arguments converted during string formatting");
    if (r == 0)
        *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
    strbuf_free(&sb);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* str.format()                                                                               */

struct fspec {
    char fill, align, sign, type, group;
    bool alt;
    int width, prec; /* -1: not given */
};

static int parse_spec(struct teval* ev, const char* s, size_t len, struct fspec* f) {
    *f       = (struct fspec){.fill = ' ', .width = -1, .prec = -1};
    size_t i = 0;
    if (len >= 2 && strchr("<>=^", s[1])) {
        f->fill  = s[0];
        f->align = s[1];
        i        = 2;
    } else if (len >= 1 && strchr("<>=^", s[0])) {
        f->align = s[0];
        i        = 1;
    }
    if (i < len && strchr("+- ", s[i]))
        f->sign = s[i++];
    if (i < len && s[i] == '#') {
        f->alt = true;
        i++;
    }
    if (i < len && s[i] == '0') {
        if (!f->align) {
            f->fill  = '0';
            f->align = '=';
        }
        i++;
    }
    for (int part = 0; part < 2; part++) {
        if (part) {
            if (i < len && (s[i] == ',' || s[i] == '_'))
                f->group = s[i++];
            if (i >= len || s[i] != '.')
                break;
            i++;
            if (i >= len || !tis_digit(s[i]))
                return teval_fail(ev, "Format specifier missing precision");
        }
        int* dst = part ? &f->prec : &f->width;
        while (i < len && tis_digit(s[i])) {
            *dst = (*dst < 0 ? 0 : *dst) * 10 + (s[i++] - '0');
            if (*dst > 1000)
                *dst = 1000;
        }
    }
    if (i < len && !f->group && (s[i] == ',' || s[i] == '_'))
        f->group = s[i++];
    if (i < len)
        f->type = s[i++];
    if (i != len)
        return teval_fail(ev, "Invalid format specifier '%.*s'", (int)len, s);
    return 0;
}

/* Inserts `sep` every `every` digits into the run of digits at the start of `digits`. */
static void group_digits(struct strbuf* out, const char* digits, char sep, int every) {
    size_t n = strspn(digits, "0123456789abcdefABCDEF");
    if (strchr(digits, '.') || strchr(digits, 'e') || strchr(digits, 'E'))
        n = strspn(digits, "0123456789");
    for (size_t i = 0; i < n; i++) {
        if (sep && i && (n - i) % (size_t)every == 0)
            strbuf_putc(out, sep);
        strbuf_putc(out, digits[i]);
    }
    strbuf_puts(out, digits + n);
}

static void float_body(const struct fspec* f, double d, struct strbuf* body) {
    char t = f->type;
    if (isnan(d) || isinf(d)) {
        bool upper = t && strchr("EFG", t);
        strbuf_puts(body, isnan(d) ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf"));
        if (t == '%')
            strbuf_putc(body, '%');
        return;
    }
    if (!t && f->prec < 0) { /* repr */
        struct tval v = {.type = TV_FLOAT, .u.f = d};
        tv_repr(&v, body);
        return;
    }
    char conv = t == '%' ? 'f' : t ? t : 'g';
    int prec  = f->prec >= 0 ? (f->prec > 300 ? 300 : f->prec) : 6;
    if (conv == 'f' || conv == 'F')
        strbuf_printf(body, f->alt ? "%#.*f" : "%.*f", prec, t == '%' ? d * 100 : d);
    else if (conv == 'e' || conv == 'E')
        strbuf_printf(body, conv == 'e' ? (f->alt ? "%#.*e" : "%.*e") : (f->alt ? "%#.*E" : "%.*E"),
                      prec, d);
    else
        strbuf_printf(body, conv == 'G' ? (f->alt ? "%#.*G" : "%.*G") : (f->alt ? "%#.*g" : "%.*g"),
                      prec ? prec : 1, d);
    if (!t && !strpbrk(body->buf, ".e")) /* no type with a precision: at least "x.0" */
        strbuf_puts(body, ".0");
    if (t == '%')
        strbuf_putc(body, '%');
}

static int apply_spec(struct teval* ev, const struct tval* v, const char* spec, size_t len,
                      struct strbuf* out) {
    if (!len || tundef_strict(v))
        return tv_to_str(ev, v, out);
    struct fspec f;
    if (parse_spec(ev, spec, len, &f) < 0)
        return -EINVAL;
    struct strbuf body = STRBUF_INIT, tmp = STRBUF_INIT;
    const char* sign   = "";
    const char* prefix = "";
    char dflt_align    = '>';
    int r              = 0;
    if (v->type == TV_STR && (!f.type || f.type == 's')) {
        if (f.sign || f.alt || f.group || f.align == '=')
            r = teval_fail(ev, "invalid format specifier for a string");
        size_t n = f.prec >= 0 && (size_t)f.prec < v->u.str.len ? (size_t)f.prec : v->u.str.len;
        strbuf_append(&body, v->u.str.s, n);
        dflt_align = '<';
    } else if (is_int(v) && (!f.type || strchr("bcdoxXn", f.type))) {
        int64_t i  = int_of(v);
        uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
        char t     = f.type ? f.type : 'd';
        sign       = i < 0 ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
        if (f.alt)
            prefix = t == 'b' ? "0b" : t == 'o' ? "0o" : t == 'x' ? "0x" : t == 'X' ? "0X" : "";
        if (t == 'c') {
            strbuf_putc(&body, (char)(u & 0x7f));
        } else if (t == 'b') {
            char bits[65];
            size_t n = 0;
            do {
                bits[n++] = (char)('0' + (u & 1));
                u >>= 1;
            } while (u);
            for (size_t k = 0; k < n; k++)
                strbuf_putc(&tmp, bits[n - 1 - k]);
        } else {
            strbuf_printf(&tmp,
                          t == 'o'   ? "%" PRIo64
                          : t == 'x' ? "%" PRIx64
                          : t == 'X' ? "%" PRIX64
                                     : "%" PRIu64,
                          u);
        }
        if (t != 'c')
            group_digits(&body, tmp.buf, f.group, t == 'd' || t == 'n' ? 3 : 4);
    } else if (is_num(v) && (!f.type || strchr("eEfFgG%", f.type))) {
        double d = dbl_of(v);
        sign     = signbit(d) && !isnan(d) ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
        float_body(&f, fabs(d), &tmp);
        group_digits(&body, tmp.buf, f.group, 3);
    } else {
        r = teval_fail(ev, "unsupported format string passed to %s.__format__", tv_type_name(v));
    }
    if (r == 0) {
        char align   = f.align ? f.align : dflt_align;
        size_t n     = strlen(sign) + strlen(prefix) + body.len;
        size_t w     = f.width > 0 ? (size_t)f.width : 0;
        size_t extra = w > n ? w - n : 0;
        size_t left  = align == '>' || align == '=' ? extra : align == '^' ? extra / 2 : 0;
        if (align != '=')
            for (size_t k = 0; k < left; k++)
                strbuf_putc(out, f.fill);
        strbuf_puts(out, sign);
        strbuf_puts(out, prefix);
        if (align == '=')
            for (size_t k = 0; k < left; k++)
                strbuf_putc(out, f.fill);
        strbuf_append(out, body.buf ? body.buf : "", body.len);
        for (size_t k = left; k < extra; k++)
            strbuf_putc(out, f.fill);
    }
    strbuf_free(&body);
    strbuf_free(&tmp);
    return r;
}

/* The value a replacement field names: an argument ({} {0} {name}) then .attr and [key]. */
static int field_value(struct teval* ev, const char* s, size_t name_end,
                       const struct tval* const* args, size_t nargs, const struct tkwarg* kw,
                       size_t nkw, size_t* next_auto, int* numbering, const struct tval** ret) {
    size_t arg_end = strcspn(s, ".[!:");
    arg_end        = arg_end < name_end ? arg_end : name_end;
    const struct tval* v;
    if (arg_end == 0 || tis_digit(s[0])) {
        size_t idx = *next_auto;
        int mode   = arg_end == 0 ? 1 : 2;
        if (*numbering && *numbering != mode)
            return teval_fail(ev,
                              "cannot switch between automatic field numbering and manual "
                              "field specification");
        *numbering = mode;
        if (mode == 2) {
            int64_t i;
            if (!py_parse_int(s, arg_end, 10, &i) || i < 0)
                return teval_fail(ev, "invalid field name '%.*s'", (int)arg_end, s);
            idx = (size_t)i;
        } else {
            (*next_auto)++;
        }
        if (idx >= nargs)
            return teval_fail(ev, "Replacement index %zu out of range for positional args tuple",
                              idx);
        v = args[idx];
    } else {
        size_t k = 0;
        while (k < nkw && (strlen(kw[k].name) != arg_end || memcmp(kw[k].name, s, arg_end)))
            k++;
        if (k == nkw)
            return teval_fail(ev, "KeyError: '%.*s'", (int)arg_end, s);
        v = kw[k].value;
    }
    for (size_t i = arg_end; i < name_end;) {
        bool attr   = s[i] == '.';
        size_t stop = i + 1;
        while (stop < name_end && (attr ? s[stop] != '.' && s[stop] != '[' : s[stop] != ']'))
            stop++;
        if (stop > name_end || stop == i + 1)
            return teval_fail(ev, "invalid field name '%.*s'", (int)name_end, s);
        const char* key = arena_strndup(ev->arena, s + i + 1, stop - i - 1);
        int64_t idx;
        int r = attr ? teval_getattr(ev, v, key, &v)
                     : teval_getitem(ev, v,
                                     py_parse_int(key, strlen(key), 10, &idx) && tis_digit(key[0])
                                         ? tv_int(ev, idx)
                                         : tv_cstr(ev, key),
                                     &v);
        if (r < 0)
            return -EINVAL;
        if (tundef_strict(v))
            return tv_undefined_error(ev, v);
        i = attr ? stop : stop + 1;
    }
    *ret = v;
    return 0;
}

/* {name.attr[key]!conv:spec} */
static int format_field(struct teval* ev, const char* s, size_t len, const struct tval* const* args,
                        size_t nargs, const struct tkwarg* kw, size_t nkw, size_t* next_auto,
                        int* numbering, struct strbuf* out) {
    size_t name_end = 0;
    for (int depth = 0; name_end < len; name_end++) {
        depth += s[name_end] == '[' ? 1 : s[name_end] == ']' ? -1 : 0;
        if (!depth && (s[name_end] == '!' || s[name_end] == ':'))
            break;
    }
    const struct tval* v = NULL;
    if (field_value(ev, s, name_end, args, nargs, kw, nkw, next_auto, numbering, &v) < 0)
        return -EINVAL;

    size_t i           = name_end;
    struct strbuf conv = STRBUF_INIT;
    if (i < len && s[i] == '!') {
        if (i + 1 >= len || !strchr("rsa", s[i + 1]) || (i + 2 < len && s[i + 2] != ':'))
            return teval_fail(ev, "invalid conversion in format string");
        if (s[i + 1] == 's') {
            if (tv_to_str(ev, v, &conv) < 0) {
                strbuf_free(&conv);
                return -EINVAL;
            }
        } else {
            tv_repr(v, &conv);
        }
        v = tv_str(ev, conv.buf ? conv.buf : "", conv.len);
        strbuf_free(&conv);
        i += 2;
    }
    if (i < len && s[i] == ':')
        i++;
    if (!memchr(s + i, '{', len - i))
        return apply_spec(ev, v, s + i, len - i, out);
    /* '{:>{width}}': the nested fields are formatted first (one level, as in Python) */
    struct strbuf spec = STRBUF_INIT;
    int r              = 0;
    while (i < len && r == 0) {
        const char* close = s[i] == '{' ? memchr(s + i, '}', len - i) : NULL;
        if (s[i] == '{' && (!close || (out && memchr(s + i + 1, '{', (size_t)(close - s) - i - 1))))
            r = teval_fail(ev, "Max string recursion exceeded");
        else if (close)
            r = format_field(ev, s + i + 1, (size_t)(close - s) - i - 1, args, nargs, kw, nkw,
                             next_auto, numbering, &spec);
        else
            strbuf_putc(&spec, s[i]);
        i = close ? (size_t)(close - s) + 1 : i + 1;
    }
    if (r == 0)
        r = apply_spec(ev, v, spec.buf ? spec.buf : "", spec.len, out);
    strbuf_free(&spec);
    return r;
}

int teval_str_format(struct teval* ev, const struct tval* fmt, const struct tval* const* args,
                     size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    const char* s    = fmt->u.str.s;
    size_t len       = fmt->u.str.len;
    struct strbuf sb = STRBUF_INIT;
    size_t next_auto = 0;
    int numbering = 0, r = 0;
    for (size_t i = 0; i < len && r == 0; i++) {
        char c = s[i];
        if ((c == '{' || c == '}') && i + 1 < len && s[i + 1] == c) {
            strbuf_putc(&sb, c);
            i++;
        } else if (c == '}') {
            r = teval_fail(ev, "Single '}' encountered in format string");
        } else if (c == '{') {
            size_t depth = 1, j = i + 1;
            for (; j < len && depth; j++)
                depth += s[j] == '{' ? 1 : s[j] == '}' ? (size_t)-1 : 0;
            if (depth)
                r = teval_fail(ev, "Single '{' encountered in format string");
            else
                r = format_field(ev, s + i + 1, j - i - 2, args, nargs, kw, nkw, &next_auto,
                                 &numbering, &sb);
            i = j - 1;
            if (r == 0 && sb.len > MAX_STR_SIZE)
                r = tv_check_size(ev, sb.len);
        } else {
            strbuf_putc(&sb, c);
        }
    }
    if (r == 0)
        *ret = tstr_from_sb(ev, &sb);
    strbuf_free(&sb);
    return r;
}
