/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template values: the render arena, Python-compatible values (str(), repr(), truthiness,
 * equality, ordering), Python's number and pathlib parsing rules, and variable scopes.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "jinja_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Arena                                                                                      */

struct arena_block {
    struct arena_block* next;
    size_t used, size;
    max_align_t data[];
};

void* arena_alloc(struct arena* a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->size - a->head->used < size) {
        size_t bsize          = size > 32768 ? size : 32768;
        struct arena_block* b = xmalloc(sizeof(*b) + bsize);
        b->next               = a->head;
        b->used               = 0;
        b->size               = bsize;
        a->head               = b;
        a->total += bsize;
    }
    void* p = (char*)a->head->data + a->head->used;
    a->head->used += size;
    memset(p, 0, size);
    return p;
}

char* arena_strndup(struct arena* a, const char* s, size_t n) {
    char* d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char* arena_strdup(struct arena* a, const char* s) {
    return arena_strndup(a, s, strlen(s));
}

void arena_free(struct arena* a) {
    while (a->head) {
        struct arena_block* next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->total = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                     */

int teval_fail(struct teval* ev, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    struct strbuf sb = STRBUF_INIT;
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    /* the first failure is the cause; callers unwinding past it do not overwrite it */
    if (!ev->err->msg[0] || ev->err->code == 0)
        moat_error_set(ev->err, -EINVAL, "%s:%u: %s", ev->filename, ev->line, sb.buf);
    strbuf_free(&sb);
    return -EINVAL;
}

int tv_check_size(struct teval* ev, size_t len) {
    if (len > MAX_STR_SIZE)
        return teval_fail(ev, "string value too long (more than %zu MiB)", MAX_STR_SIZE >> 20);
    return 0;
}

static const struct tval g_none  = {.type = TV_NONE};
static const struct tval g_true  = {.type = TV_BOOL, .u.b = true};
static const struct tval g_false = {.type = TV_BOOL, .u.b = false};

const struct tval* tv_none(void) {
    return &g_none;
}

const struct tval* tv_bool(bool b) {
    return b ? &g_true : &g_false;
}

static struct tval* tv_new(struct teval* ev, enum tv_type t) {
    struct tval* v = arena_alloc(ev->arena, sizeof(*v));
    v->type        = t;
    return v;
}

const struct tval* tv_int(struct teval* ev, int64_t i) {
    struct tval* v = tv_new(ev, TV_INT);
    v->u.i         = i;
    return v;
}

const struct tval* tv_float(struct teval* ev, double f) {
    struct tval* v = tv_new(ev, TV_FLOAT);
    v->u.f         = f;
    return v;
}

const struct tval* tv_str(struct teval* ev, const char* s, size_t len) {
    struct tval* v = tv_new(ev, TV_STR);
    v->u.str.s     = arena_strndup(ev->arena, s, len);
    v->u.str.len   = len;
    return v;
}

const struct tval* tv_cstr(struct teval* ev, const char* s) {
    return tv_str(ev, s, strlen(s));
}

const struct tval* tv_path(struct teval* ev, const char* s) {
    struct tval* v = (struct tval*)tv_cstr(ev, py_path_norm(ev, s));
    v->type        = TV_PATH;
    return v;
}

const struct tval* tv_list(struct teval* ev, const struct tval** items, size_t n) {
    struct tval* v  = tv_new(ev, TV_LIST);
    v->u.list.items = arena_alloc(ev->arena, (n ? n : 1) * sizeof(*items));
    v->u.list.n     = n;
    if (n)
        memcpy(v->u.list.items, items, n * sizeof(*items));
    return v;
}

const struct tval* tv_tuple(struct teval* ev, const struct tval** items, size_t n) {
    struct tval* v = (struct tval*)tv_list(ev, items, n);
    v->flags       = TVF_TUPLE;
    return v;
}

const struct tval* tv_func(struct teval* ev, const char* name, tbuiltin fn, const struct tval* self,
                           const char* as_str) {
    struct tval* v = tv_new(ev, TV_FUNC);
    v->u.fn.name   = name;
    v->u.fn.fn     = fn;
    v->u.fn.self   = self;
    v->u.fn.as_str = as_str;
    return v;
}

const struct tval* tv_undef(struct teval* ev, const char* name) {
    return tv_undef_msg(ev, false, "'%s' is undefined", name);
}

const struct tval* tv_undef_msg(struct teval* ev, bool lenient, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    struct strbuf sb = STRBUF_INIT;
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    struct tval* v = tv_new(ev, TV_UNDEF);
    v->u.str.s     = arena_strndup(ev->arena, sb.buf ? sb.buf : "", sb.len);
    v->u.str.len   = sb.len;
    v->flags       = lenient ? TVF_LENIENT : 0;
    strbuf_free(&sb);
    return v;
}

const struct tval* tv_dict(struct teval* ev, const char* const* keys,
                           const struct tval* const* values, size_t n) {
    struct tval* v  = tv_new(ev, TV_DICT);
    v->u.dict.items = arena_alloc(ev->arena, (n ? n : 1) * sizeof(struct tdict_entry));
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < v->u.dict.n && strcmp(v->u.dict.items[j].key, keys[i]) != 0)
            j++;
        if (j == v->u.dict.n)
            v->u.dict.items[v->u.dict.n++].key = arena_strdup(ev->arena, keys[i]);
        v->u.dict.items[j].value = values[i];
    }
    return v;
}

const struct tval* tv_dict_get(const struct tval* dict, const char* key) {
    for (size_t i = 0; i < dict->u.dict.n; i++)
        if (strcmp(dict->u.dict.items[i].key, key) == 0)
            return dict->u.dict.items[i].value;
    return NULL;
}

const char* tv_type_name(const struct tval* v) {
    switch (v->type) {
        case TV_UNDEF:
            return v->flags & TVF_LENIENT ? "Undefined" : "StrictUndefined";
        case TV_NONE:
            return "NoneType";
        case TV_BOOL:
            return "bool";
        case TV_INT:
            return "int";
        case TV_FLOAT:
            return "float";
        case TV_STR:
            return "str";
        case TV_PATH:
            return "PosixPath";
        case TV_LIST:
            return v->flags & TVF_TUPLE    ? "tuple"
                   : v->flags & TVF_KEYS   ? "dict_keys"
                   : v->flags & TVF_VALUES ? "dict_values"
                   : v->flags & TVF_ITEMS  ? "dict_items"
                                           : "list";
        case TV_DICT:
            return v->flags & TVF_ENVIRON     ? "_Environ"
                   : v->flags & TVF_NAMESPACE ? "Namespace"
                                              : "dict";
        case TV_FUNC:
            return "builtin_function_or_method";
        case TV_LOOP:
            return "LoopContext";
    }
    return "object";
}

const char* tv_object_repr(const struct tval* v) {
    switch (v->type) {
        case TV_NONE:
            return "None";
        case TV_BOOL:
            return "bool object";
        case TV_INT:
            return "int object";
        case TV_FLOAT:
            return "float object";
        case TV_STR:
            return "str object";
        case TV_PATH:
            return "pathlib.PosixPath object";
        case TV_UNDEF:
            return v->flags & TVF_LENIENT ? "jinja2.runtime.Undefined object"
                                          : "jinja2.runtime.StrictUndefined object";
        case TV_LOOP:
            return "jinja2.runtime.LoopContext object";
        case TV_FUNC:
            return "builtin_function_or_method object";
        case TV_LIST:
            return v->flags & TVF_TUPLE    ? "tuple object"
                   : v->flags & TVF_KEYS   ? "dict_keys object"
                   : v->flags & TVF_VALUES ? "dict_values object"
                   : v->flags & TVF_ITEMS  ? "dict_items object"
                                           : "list object";
        case TV_DICT:
            return v->flags & TVF_ENVIRON     ? "os._Environ object"
                   : v->flags & TVF_NAMESPACE ? "jinja2.utils.Namespace object"
                                              : "dict object";
    }
    return "object";
}

int tv_undefined_error(struct teval* ev, const struct tval* v) {
    return teval_fail(ev, "%s", v->u.str.s);
}

static void repr_str(struct strbuf* sb, const char* s, size_t len) {
    bool has_single = memchr(s, '\'', len) && !memchr(s, '"', len);
    char q          = has_single ? '"' : '\'';
    strbuf_putc(sb, q);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q)
            strbuf_printf(sb, "\\%c", c);
        else if (c == '\n')
            strbuf_puts(sb, "\\n");
        else if (c == '\t')
            strbuf_puts(sb, "\\t");
        else if (c == '\r')
            strbuf_puts(sb, "\\r");
        else if (c < 0x20 || c == 0x7f)
            strbuf_printf(sb, "\\x%02x", c);
        else
            strbuf_putc(sb, (char)c);
    }
    strbuf_putc(sb, q);
}

/* Python's float repr (format_double implements it). */
static void format_float(struct strbuf* sb, double d) {
    char buf[64];
    format_double(d, buf, sizeof(buf));
    strbuf_puts(sb, buf);
}

static void str_scalar(const struct tval* v, struct strbuf* sb);

/* Nesting beyond this is printed as "..." and compared by identity: values can nest deeply (or
 * contain themselves, through namespace()) and recursion must not exhaust the stack. */
#define MAX_VALUE_DEPTH 200

static void repr_depth(const struct tval* v, struct strbuf* sb, int depth);

static void repr_items(const struct tval* v, struct strbuf* sb, const char* open, const char* close,
                       int depth) {
    strbuf_puts(sb, open);
    for (size_t i = 0; i < v->u.list.n; i++) {
        if (i)
            strbuf_puts(sb, ", ");
        repr_depth(v->u.list.items[i], sb, depth + 1);
    }
    if (v->u.list.n == 1 && (v->flags & TVF_TUPLE))
        strbuf_putc(sb, ',');
    strbuf_puts(sb, close);
}

void tv_repr(const struct tval* v, struct strbuf* sb) {
    repr_depth(v, sb, 0);
}

static void repr_depth(const struct tval* v, struct strbuf* sb, int depth) {
    if (depth > MAX_VALUE_DEPTH && (v->type == TV_LIST || v->type == TV_DICT)) {
        strbuf_puts(sb, "...");
        return;
    }
    switch (v->type) {
        case TV_UNDEF:
            strbuf_puts(sb, "Undefined"); /* Undefined.__repr__ never fails */
            return;
        case TV_STR:
            if (v->flags & TVF_MARKUP)
                strbuf_puts(sb, "Markup(");
            repr_str(sb, v->u.str.s, v->u.str.len);
            if (v->flags & TVF_MARKUP)
                strbuf_putc(sb, ')');
            return;
        case TV_PATH:
            strbuf_puts(sb, "PosixPath(");
            repr_str(sb, v->u.str.s, v->u.str.len);
            strbuf_putc(sb, ')');
            return;
        case TV_LIST:
            if (v->flags & TVF_TUPLE)
                repr_items(v, sb, "(", ")", depth);
            else if (v->flags & (TVF_KEYS | TVF_VALUES | TVF_ITEMS))
                repr_items(v, sb,
                           v->flags & TVF_KEYS     ? "dict_keys(["
                           : v->flags & TVF_VALUES ? "dict_values(["
                                                   : "dict_items([",
                           "])", depth);
            else
                repr_items(v, sb, "[", "]", depth);
            return;
        case TV_DICT:
            strbuf_puts(sb, v->flags & TVF_ENVIRON     ? "environ({"
                            : v->flags & TVF_NAMESPACE ? "<Namespace {"
                                                       : "{");
            for (size_t i = 0; i < v->u.dict.n; i++) {
                if (i)
                    strbuf_puts(sb, ", ");
                repr_str(sb, v->u.dict.items[i].key, strlen(v->u.dict.items[i].key));
                strbuf_puts(sb, ": ");
                repr_depth(v->u.dict.items[i].value, sb, depth + 1);
            }
            strbuf_puts(sb, v->flags & TVF_ENVIRON ? "})" : v->flags & TVF_NAMESPACE ? "}>" : "}");
            return;
        default:
            str_scalar(v, sb);
    }
}

int tv_to_str(struct teval* ev, const struct tval* v, struct strbuf* sb) {
    if (v->type == TV_UNDEF)
        return v->flags & TVF_LENIENT ? 0 : tv_undefined_error(ev, v);
    if (v->type == TV_LIST || v->type == TV_DICT)
        tv_repr(v, sb);
    else
        str_scalar(v, sb);
    return 0;
}

/* str() of the types whose str() and repr() do not involve other values. */
static void str_scalar(const struct tval* v, struct strbuf* sb) {
    switch (v->type) {
        case TV_NONE:
            strbuf_puts(sb, "None");
            return;
        case TV_BOOL:
            strbuf_puts(sb, v->u.b ? "True" : "False");
            return;
        case TV_INT:
            strbuf_printf(sb, "%" PRId64, v->u.i);
            return;
        case TV_FLOAT:
            format_float(sb, v->u.f);
            return;
        case TV_STR:
        case TV_PATH:
            strbuf_append(sb, v->u.str.s, v->u.str.len);
            return;
        case TV_FUNC:
            if (v->u.fn.as_str)
                strbuf_puts(sb, v->u.fn.as_str);
            else
                strbuf_printf(sb, "<built-in function %s>", v->u.fn.name);
            return;
        case TV_LOOP:
            strbuf_printf(sb, "<LoopContext %zu/%zu>", v->u.loop.i + 1, v->u.loop.n);
            return;
        default:
            return;
    }
}

const struct tval* tv_str_of(struct teval* ev, const struct tval* v) {
    if (v->type == TV_STR)
        return v;
    struct strbuf sb = STRBUF_INIT;
    if (tv_to_str(ev, v, &sb) < 0) {
        strbuf_free(&sb);
        return NULL;
    }
    const struct tval* s = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
    strbuf_free(&sb);
    return s;
}

int tv_truth(struct teval* ev, const struct tval* v, bool* ret) {
    switch (v->type) {
        case TV_UNDEF:
            if (!(v->flags & TVF_LENIENT))
                return tv_undefined_error(ev, v);
            *ret = false;
            break;
        case TV_NONE:
            *ret = false;
            break;
        case TV_BOOL:
            *ret = v->u.b;
            break;
        case TV_INT:
            *ret = v->u.i != 0;
            break;
        case TV_FLOAT:
            *ret = v->u.f != 0.0;
            break;
        case TV_STR:
            *ret = v->u.str.len != 0;
            break;
        case TV_LIST:
            *ret = v->u.list.n != 0;
            break;
        case TV_DICT:
            *ret = v->u.dict.n != 0 || (v->flags & TVF_NAMESPACE);
            break;
        case TV_PATH:
        case TV_FUNC:
        case TV_LOOP:
            *ret = true;
            break;
    }
    return 0;
}

static bool is_number(const struct tval* v) {
    return v->type == TV_INT || v->type == TV_FLOAT || v->type == TV_BOOL;
}

static double as_double(const struct tval* v) {
    return v->type == TV_FLOAT ? v->u.f : v->type == TV_INT ? (double)v->u.i : v->u.b;
}

static bool equal_depth(const struct tval* a, const struct tval* b, int depth);

bool tv_equal(const struct tval* a, const struct tval* b) {
    return equal_depth(a, b, 0);
}

static bool equal_depth(const struct tval* a, const struct tval* b, int depth) {
    if (a == b || depth > MAX_VALUE_DEPTH)
        return a == b || (a->type == TV_NONE && b->type == TV_NONE);
    if (is_number(a) && is_number(b)) {
        if (a->type != TV_FLOAT && b->type != TV_FLOAT)
            return (a->type == TV_INT ? a->u.i : a->u.b) == (b->type == TV_INT ? b->u.i : b->u.b);
        return as_double(a) == as_double(b);
    }
    if (a->type != b->type || a->flags != b->flags)
        return false;
    switch (a->type) {
        case TV_NONE:
        case TV_UNDEF: /* Undefined.__eq__: any two undefined values are equal */
            return true;
        case TV_STR:
        case TV_PATH:
            return a->u.str.len == b->u.str.len &&
                   memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
        case TV_LIST:
            if (a->u.list.n != b->u.list.n || (a->flags & TVF_VALUES))
                return a == b && a->u.list.n == b->u.list.n;
            for (size_t i = 0; i < a->u.list.n; i++)
                if (!equal_depth(a->u.list.items[i], b->u.list.items[i], depth + 1))
                    return false;
            return true;
        case TV_DICT:
            if (a->u.dict.n != b->u.dict.n || (a->flags & TVF_NAMESPACE))
                return a == b;
            for (size_t i = 0; i < a->u.dict.n; i++) {
                const struct tval* o = tv_dict_get(b, a->u.dict.items[i].key);
                if (!o || !equal_depth(a->u.dict.items[i].value, o, depth + 1))
                    return false;
            }
            return true;
        default:
            return a == b;
    }
}

/* PurePosixPath ordering compares the parts ('/', 'usr', 'lib'), not the string. */
static int compare_path_parts(const char* a, const char* b) {
    size_t ra = a[0] == '/' ? (a[1] == '/' && a[2] != '/' ? 2 : 1) : 0;
    size_t rb = b[0] == '/' ? (b[1] == '/' && b[2] != '/' ? 2 : 1) : 0;
    if (ra != rb) {
        if (!ra || !rb) /* '/' sorts before any name that does not start with a control char */
            return ra ? ((unsigned char)'/' < (unsigned char)b[0] ? -1 : 1)
                      : ((unsigned char)a[0] < (unsigned char)'/' ? -1 : 1);
        return ra < rb ? 1 : -1; /* '/' < '//' */
    }
    a += ra;
    b += rb;
    for (;;) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        if (!la || !lb)
            return (la > 0) - (lb > 0);
        int c = memcmp(a, b, la < lb ? la : lb);
        if (c || la != lb)
            return c ? (c > 0) - (c < 0) : (la > lb) - (la < lb);
        a += la + (a[la] == '/');
        b += lb + (b[lb] == '/');
    }
}

static int compare_depth(struct teval* ev, const struct tval* a, const struct tval* b, int* ret,
                         int depth);

int tv_compare(struct teval* ev, const struct tval* a, const struct tval* b, int* ret) {
    return compare_depth(ev, a, b, ret, 0);
}

static int compare_depth(struct teval* ev, const struct tval* a, const struct tval* b, int* ret,
                         int depth) {
    if (depth > MAX_VALUE_DEPTH)
        return teval_fail(ev, "maximum recursion depth exceeded in comparison");
    if (a->type == TV_UNDEF && !(a->flags & TVF_LENIENT))
        return tv_undefined_error(ev, a);
    if (b->type == TV_UNDEF && !(b->flags & TVF_LENIENT))
        return tv_undefined_error(ev, b);
    if (is_number(a) && is_number(b)) {
        if (a->type != TV_FLOAT && b->type != TV_FLOAT) {
            int64_t x = a->type == TV_INT ? a->u.i : a->u.b;
            int64_t y = b->type == TV_INT ? b->u.i : b->u.b;
            *ret      = (x > y) - (x < y);
        } else {
            double x = as_double(a), y = as_double(b);
            *ret = (x > y) - (x < y);
        }
        return 0;
    }
    if (a->type == TV_STR && b->type == TV_STR) {
        size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int c    = memcmp(a->u.str.s, b->u.str.s, n);
        *ret =
            c ? (c > 0) - (c < 0) : (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
        return 0;
    }
    if (a->type == TV_PATH && b->type == TV_PATH) {
        *ret = compare_path_parts(a->u.str.s, b->u.str.s);
        return 0;
    }
    if (a->type == TV_LIST && b->type == TV_LIST &&
        (a->flags & TVF_TUPLE) == (b->flags & TVF_TUPLE)) {
        size_t i = 0;
        while (i < a->u.list.n && i < b->u.list.n &&
               tv_equal(a->u.list.items[i], b->u.list.items[i]))
            i++;
        if (i < a->u.list.n && i < b->u.list.n)
            return compare_depth(ev, a->u.list.items[i], b->u.list.items[i], ret, depth + 1);
        *ret = (a->u.list.n > b->u.list.n) - (a->u.list.n < b->u.list.n);
        return 0;
    }
    return teval_fail(ev, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a),
                      tv_type_name(b));
}

/* ---------------------------------------------------------------------------------------- */
/* Python's parsing rules                                                                     */

bool py_isspace(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f');
}

static void trim(const char** s, size_t* len) {
    while (*len && py_isspace(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && py_isspace((*s)[*len - 1]))
        (*len)--;
}

static int digit_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 99;
}

bool py_parse_int(const char* s, size_t len, int base, int64_t* ret) {
    trim(&s, &len);
    bool neg = len && s[0] == '-';
    if (len && (s[0] == '-' || s[0] == '+')) {
        s++;
        len--;
    }
    bool auto_base = base == 0, prefixed = false;
    if (len >= 2 && s[0] == '0') {
        char p   = (char)(s[1] | 0x20);
        int pb   = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
        prefixed = pb && (auto_base || base == pb);
        if (prefixed) {
            base = pb;
            s += 2;
            len -= 2;
        }
    }
    if (auto_base && !prefixed)
        base = 10;
    if (base < 2 || base > 36 || !len)
        return false;
    uint64_t v      = 0;
    bool need_digit = !prefixed; /* after a prefix, one '_' may come first: 0x_1f */
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_') {
            if (need_digit || i + 1 == len)
                return false;
            need_digit = true;
            continue;
        }
        int d = digit_value(s[i]);
        if (d >= base)
            return false;
        need_digit = false;
        if (__builtin_mul_overflow(v, (uint64_t)base, &v) ||
            __builtin_add_overflow(v, (uint64_t)d, &v))
            return false;
    }
    /* int('007', 0) is an error, int('007') is 7 */
    if (need_digit || (auto_base && !prefixed && s[0] == '0' && v != 0))
        return false;
    if (v > (uint64_t)INT64_MAX + neg)
        return false;
    *ret = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool py_parse_float(const char* s, size_t len, double* ret) {
    trim(&s, &len);
    char buf[128];
    size_t n = 0;
    size_t i = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        buf[n++] = s[i++];
    static const char* const special[] = {"inf", "infinity", "nan"};
    for (size_t k = 0; k < ARRAY_SIZE(special); k++) {
        if (len - i == strlen(special[k]) && !strncasecmp(s + i, special[k], len - i)) {
            double d = k == 2 ? NAN : INFINITY;
            *ret     = n && buf[0] == '-' ? -d : d;
            return true;
        }
    }
    /* digits ['.' digits] [e [sign] digits], '_' only between two digits */
    size_t mantissa_digits = 0;
    bool seen_dot = false, seen_exp = false, exp_digits = false;
    for (; i < len; i++) {
        char c = s[i];
        if (n + 2 >= sizeof(buf))
            return false;
        if (c >= '0' && c <= '9') {
            buf[n++] = c;
            if (seen_exp)
                exp_digits = true;
            else
                mantissa_digits++;
        } else if (c == '_') {
            if (!i || i + 1 == len || !(s[i - 1] >= '0' && s[i - 1] <= '9') ||
                !(s[i + 1] >= '0' && s[i + 1] <= '9'))
                return false;
        } else if (c == '.' && !seen_dot && !seen_exp) {
            seen_dot = true;
            buf[n++] = c;
        } else if ((c == 'e' || c == 'E') && !seen_exp && mantissa_digits) {
            seen_exp = true;
            buf[n++] = 'e';
            if (i + 1 < len && (s[i + 1] == '-' || s[i + 1] == '+'))
                buf[n++] = s[++i];
        } else {
            return false;
        }
    }
    if (!mantissa_digits || (seen_exp && !exp_digits))
        return false;
    buf[n] = '\0';
    *ret   = strtod(buf, NULL);
    return true;
}

const char* py_path_norm(struct teval* ev, const char* path) {
    struct strbuf sb = STRBUF_INIT;
    const char* p    = path;
    if (p[0] == '/') {
        bool two = p[1] == '/' && p[2] != '/';
        strbuf_puts(&sb, two ? "//" : "/");
        while (*p == '/')
            p++;
    }
    size_t root = sb.len;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n && !(n == 1 && p[0] == '.')) {
            if (sb.len > root)
                strbuf_putc(&sb, '/');
            strbuf_append(&sb, p, n);
        }
        p += n;
        while (*p == '/')
            p++;
    }
    if (!sb.len)
        strbuf_putc(&sb, '.');
    const char* r = arena_strndup(ev->arena, sb.buf, sb.len);
    strbuf_free(&sb);
    return r;
}

const struct tval* tv_path_join(struct teval* ev, const char* a, const char* b) {
    if (b[0] == '/')
        return tv_path(ev, b);
    _cleanup_free_ char* joined = xasprintf("%s/%s", a, b);
    return tv_path(ev, joined);
}

/* ---------------------------------------------------------------------------------------- */
/* Scopes                                                                                     */

void tscope_set(struct tscope* s, const char* name, const struct tval* v) {
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->names[i], name) == 0) {
            s->values[i] = v;
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap    = s->cap ? s->cap * 2 : 8;
        s->names  = xrealloc(s->names, s->cap * sizeof(*s->names));
        s->values = xrealloc(s->values, s->cap * sizeof(*s->values));
    }
    s->names[s->n]    = name;
    s->values[s->n++] = v;
}

const struct tval* tscope_get(const struct tscope* s, const char* name) {
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->names[i], name) == 0)
                return s->values[i];
    return NULL;
}

void tscope_free(struct tscope* s) {
    free(s->names);
    free(s->values);
    s->names  = NULL;
    s->values = NULL;
    s->n = s->cap = 0;
}
