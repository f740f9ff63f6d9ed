/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: the template engine's values, expression tree and evaluator, shared by
 * jinja.c (lexer, statement parser, renderer), jinja_parse.c (expressions), jinja_value.c
 * (values, Python's str/repr/==/<, scopes), jinja_eval.c (evaluation), jinja_filters.c,
 * jinja_tests.c, jinja_methods.c (Jinja's filters and tests, str/dict/list/Path methods),
 * jinja_format.c (% and str.format) and jinja_globals.c (gramine/python/env/ldd).
 *
 * Everything a render allocates (syntax tree, values, strings) lives in one arena that is freed
 * when the render ends, so values are immutable and shared freely.
 */
#pragma once

#include "jinja.h"

/* ---------------------------------------------------------------------------------------- */
/* Arena                                                                                      */

struct arena_block;
struct arena {
    struct arena_block* head;
    size_t total; /* bytes allocated, checked against MAX_RENDER_MEMORY during rendering */
};
void* arena_alloc(struct arena* a, size_t size);
char* arena_strndup(struct arena* a, const char* s, size_t n);
char* arena_strdup(struct arena* a, const char* s);
void arena_free(struct arena* a);

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                     */

enum tv_type {
    TV_UNDEF, /* StrictUndefined: any use but `is defined` / `default` is an error; u.str holds
               * Jinja's message ("'x' is undefined", "'dict object' has no attribute 'y'") */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_PATH, /* pathlib.PosixPath (normalised): prints as the path; is_dir(), name, / 'x', … */
    TV_LIST,
    TV_DICT,
    TV_FUNC,
    TV_LOOP, /* the `loop` variable of a for loop */
};

struct tval;
struct teval;

struct tkwarg {
    const char* name;
    const struct tval* value;
};

/* A builtin function or bound method. Returns 0 and *ret, or -EINVAL with the error set. */
typedef int (*tbuiltin)(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                        size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret);

struct tdict_entry {
    const char* key;
    const struct tval* value;
};

enum {
    TVF_TUPLE     = 1 << 0, /* TV_LIST: a tuple (prints as (a, b), never equal to a list) */
    TVF_LENIENT   = 1 << 1, /* TV_UNDEF: jinja2.Undefined (a bare `a if c`): prints as '' */
    TVF_NAMESPACE = 1 << 2, /* TV_DICT: namespace(); `{% set ns.x = … %}` assigns in place */
    TVF_ENVIRON   = 1 << 4, /* TV_DICT: os.environ */
    TVF_KEYS      = 1 << 5, /* TV_LIST: dict.keys() / values() / items() views (repr) */
    TVF_VALUES    = 1 << 6,
    TVF_ITEMS     = 1 << 7,
    TVF_MARKUP    = 1 << 8, /* TV_STR: markupsafe.Markup (from escape, safe, tojson) */
};

struct tval {
    enum tv_type type;
    unsigned flags; /* TVF_* */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char* s;
            size_t len;
        } str; /* TV_STR, TV_PATH; TV_UNDEF: the undefined name */
        struct {
            const struct tval** items;
            size_t n;
        } list;
        struct {
            struct tdict_entry* items;
            size_t n;
        } dict;
        struct {
            const struct tval** items; /* the (filtered) items being iterated */
            size_t n, i;               /* length and current index0 */
        } loop;
        struct {
            const char* name;
            tbuiltin fn;
            const struct tval* self; /* bound methods */
            const char* as_str;      /* printed form when used without a call, or NULL */
            bool lazy; /* a dict member computed on first access (called with no arguments) */
        } fn;
    } u;
};

/* ---------------------------------------------------------------------------------------- */
/* Expressions                                                                                */

enum ex_kind {
    EX_LIT,
    EX_NAME,
    EX_ATTR,
    EX_ITEM,
    EX_CALL,
    EX_FILTER,
    EX_TEST,
    EX_NEG,
    EX_POS,
    EX_NOT,
    EX_AND,
    EX_OR,
    EX_BINARY,
    EX_COND,
    EX_LIST,
    EX_TUPLE,
    EX_DICT,
    EX_SLICE, /* a[args[0]:args[1]:args[2]], each may be NULL */
};

enum ex_op {
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_GT,
    OP_LE,
    OP_GE,
    OP_IN,
    OP_NOT_IN,
    OP_CONCAT,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
};

struct expr {
    enum ex_kind kind;
    uint32_t line;
    enum ex_op op;
    bool negate;            /* EX_TEST: `is not` */
    const struct tval* lit; /* EX_LIT */
    const char* name;       /* EX_NAME, EX_ATTR, EX_FILTER, EX_TEST */
    struct expr *a, *b, *c; /* operands; EX_COND: a if b else c */
    struct expr** args;     /* calls, filters, tests, list/tuple items, dict k,v pairs */
    size_t nargs, npos;     /* args[npos..nargs) are keyword arguments named kwnames[] */
    const char** kwnames;
};

/* ---------------------------------------------------------------------------------------- */
/* Evaluation                                                                                 */

struct tscope {
    struct tscope* parent;
    const char** names;
    const struct tval** values;
    size_t n, cap;
};

struct python_info; /* jinja_globals.c */

/* Limits that keep hostile templates (and the fuzzer) from exhausting time and memory; real
 * manifests are far below them. */
#define MAX_STR_SIZE    ((size_t)16 << 20) /* one string value */
#define MAX_OUTPUT_SIZE ((size_t)64 << 20) /* the rendered document */
#define MAX_LIST_ITEMS  ((size_t)1 << 20)  /* one list value */
#ifdef MOAT_FUZZING
#define MAX_RENDER_MEMORY ((size_t)128 << 20) /* the render arena */
#define MAX_LOOP_STEPS    100000              /* for-loop iterations in one render */
#else
#define MAX_RENDER_MEMORY ((size_t)512 << 20)
#define MAX_LOOP_STEPS    10000000
#endif

struct teval {
    struct arena* arena;
    struct tscope* scope;
    const char* filename;
    uint32_t line; /* of the construct being evaluated, for messages */
    const struct jinja_env* env;
    struct python_info* python;
    struct moat_error* err;
    uint64_t loop_steps;
};

/* Fails with "<file>:<line>: <msg>" (always returns -EINVAL). */
int teval_fail(struct teval* ev, const char* fmt, ...) PRINTF_FMT(2, 3);

const struct tval* tv_none(void);
const struct tval* tv_bool(bool b);
const struct tval* tv_int(struct teval* ev, int64_t i);
const struct tval* tv_str(struct teval* ev, const char* s, size_t len);
const struct tval* tv_cstr(struct teval* ev, const char* s);
const struct tval* tv_path(struct teval* ev, const char* s);
const struct tval* tv_list(struct teval* ev, const struct tval** items, size_t n);
const struct tval* tv_func(struct teval* ev, const char* name, tbuiltin fn, const struct tval* self,
                           const char* as_str);
/* StrictUndefined for an unknown name: "'<name>' is undefined". */
const struct tval* tv_undef(struct teval* ev, const char* name);
/* An undefined value carrying Jinja's message (printf-style); `lenient` makes it the plain
 * jinja2.Undefined that prints as ''. */
const struct tval* tv_undef_msg(struct teval* ev, bool lenient, const char* fmt, ...)
    PRINTF_FMT(3, 4);
const struct tval* tv_tuple(struct teval* ev, const struct tval** items, size_t n);
/* Builds a dict from parallel arrays (copied; a repeated key keeps its first position and its
 * last value, as in Python). */
const struct tval* tv_dict(struct teval* ev, const char* const* keys,
                           const struct tval* const* values, size_t n);
const struct tval* tv_dict_get(const struct tval* dict, const char* key);

const struct tval* tv_float(struct teval* ev, double f);
/* Python's type name ("str", "list", …) for messages. */
const char* tv_type_name(const struct tval* v);
/* Jinja's object_type_repr ("dict object", "None", "pathlib.PosixPath object"). */
const char* tv_object_repr(const struct tval* v);
/* Python's repr() of a value, appended to sb. */
void tv_repr(const struct tval* v, struct strbuf* sb);
/* Python ordering (<) for sort, min, max and comparisons: numbers, strings, lists/tuples
 * element-wise. Fails like Python for other mixes. */
int tv_compare(struct teval* ev, const struct tval* a, const struct tval* b, int* ret) WARN_UNUSED;
/* Python's int(str, base) and float(str): surrounding whitespace, sign, '_' between digits,
 * base prefixes (base 0/2/8/16), inf/nan. Return false if the text is not a number. */
bool py_parse_int(const char* s, size_t len, int base, int64_t* ret);
bool py_parse_float(const char* s, size_t len, double* ret);
/* Python's str.isspace() for one ASCII byte (also what Jinja's whitespace control strips). */
bool py_isspace(char c);
/* pathlib.PurePosixPath normalisation: collapses '//' (keeps a leading '//'), drops '.'
 * components and a trailing '/', keeps '..'. Returns an arena string. */
const char* py_path_norm(struct teval* ev, const char* path);
/* Path(a) / b: b absolute replaces a. */
const struct tval* tv_path_join(struct teval* ev, const char* a, const char* b);
/* Fails unless the size is acceptable for one string value. */
int tv_check_size(struct teval* ev, size_t len) WARN_UNUSED;
/* Fails with an undefined value's message ("'<name>' is undefined"); returns -EINVAL. */
int tv_undefined_error(struct teval* ev, const struct tval* v);
/* str(v) as a string value, or NULL (error set) for undefined. */
const struct tval* tv_str_of(struct teval* ev, const struct tval* v);
/* Python ==. */
bool tv_equal(const struct tval* a, const struct tval* b);

/* Python str() of a value, appended to sb. Fails on (strict) undefined. */
int tv_to_str(struct teval* ev, const struct tval* v, struct strbuf* sb) WARN_UNUSED;
int tv_truth(struct teval* ev, const struct tval* v, bool* ret) WARN_UNUSED;

/* The items of a list, dict (keys) or string (characters) for `for` loops; a lenient
 * undefined is empty. */
int titer(struct teval* ev, const struct tval* v, const struct tval*** ret_items,
          size_t* ret_n) WARN_UNUSED;

int teval_expr(struct teval* ev, const struct expr* e, const struct tval** ret) WARN_UNUSED;
/* Jinja's environment.getattr(obj, name) (attribute, then item) and getitem(obj, key) (item,
 * then attribute): a missing one is an undefined value, an error only when used. */
int teval_getattr(struct teval* ev, const struct tval* obj, const char* name,
                  const struct tval** ret) WARN_UNUSED;
int teval_getitem(struct teval* ev, const struct tval* obj, const struct tval* key,
                  const struct tval** ret) WARN_UNUSED;
/* Calls a function value. */
int teval_call(struct teval* ev, const struct tval* fn, const struct tval* const* args,
               size_t nargs, const struct tkwarg* kw, size_t nkw,
               const struct tval** ret) WARN_UNUSED;
/* Python's a + b (numbers, strings, lists, tuples). */
int teval_add(struct teval* ev, const struct tval* a, const struct tval* b,
              const struct tval** ret) WARN_UNUSED;
/* Python's `a == b`, failing (StrictUndefined) when either side is undefined. */
int teval_equal(struct teval* ev, const struct tval* a, const struct tval* b,
                bool* ret) WARN_UNUSED;
/* jinja_format.c: Python's printf-style `fmt % args` (args: a tuple, a dict for %(name)s,
 * or one value) and str.format(*args, **kwargs) with the format-spec mini-language. */
int teval_percent_format(struct teval* ev, const struct tval* fmt, const struct tval* args,
                         const struct tval** ret) WARN_UNUSED;
int teval_str_format(struct teval* ev, const struct tval* fmt, const struct tval* const* args,
                     size_t nargs, const struct tkwarg* kw, size_t nkw,
                     const struct tval** ret) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Filters, tests, methods (jinja_filters.c, jinja_methods.c)                           */

/* Bound arguments of a filter, test or method call. */
struct fargs {
    const struct tval* p[5];        /* parameters after the value, NULL when not given */
    const struct tval* const* args; /* as passed, for functions that bind their own ("*") */
    size_t nargs;
    const struct tkwarg* kw;
    size_t nkw;
};

typedef int (*tfn)(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                   const struct tval** ret);

/* A filter, test or method: Python-style parameter names for binding. */
struct tentry {
    const char* name;
    tfn fn;
    const char* params[6]; /* NULL-terminated; "*" = the function binds its own arguments */
    size_t nrequired;
};

const struct tentry* tfind_entry(const struct tentry* table, size_t n, const char* name);
/* Binds positional, then keyword arguments to t->params, with Python's errors. */
int tbind(struct teval* ev, const struct tentry* t, const struct tval* const* args, size_t nargs,
          const struct tkwarg* kw, size_t nkw, struct fargs* a) WARN_UNUSED;

static inline bool tundef_strict(const struct tval* v) {
    return v->type == TV_UNDEF && !(v->flags & TVF_LENIENT);
}
static inline char tlower_c(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}
static inline char tupper_c(char c) {
    return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}
static inline bool tis_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline bool tis_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Argument checks with Python-like messages (a StrictUndefined argument fails as undefined). */
int twant_str(struct teval* ev, const char* fn, const struct tval* v) WARN_UNUSED;
int twant_int(struct teval* ev, const char* fn, const struct tval* v, int64_t* ret) WARN_UNUSED;
/* Truthiness of an optional argument (NULL ⇒ dflt). */
int ttruth_or(struct teval* ev, const struct tval* v, bool dflt, bool* ret) WARN_UNUSED;
/* Jinja's soft_str(): str() as a string value. */
int tstr_of(struct teval* ev, const struct tval* v, const struct tval** ret) WARN_UNUSED;
/* Makes a string value of sb's contents and frees sb. */
const struct tval* tstr_from_sb(struct teval* ev, struct strbuf* sb);
const struct tval* tmap_chars(struct teval* ev, const struct tval* s, char (*f)(char));
/* Jinja's make_attrgetter + ignore_case: the key of an item for sort/unique/min/max/map. */
int titem_key(struct teval* ev, const struct tval* item, const struct tval* attribute,
              bool case_sensitive, const struct tval** ret) WARN_UNUSED;
/* Python's stable sorted() by titem_key. */
int tsorted_items(struct teval* ev, const struct tval** items, size_t n,
                  const struct tval* attribute, bool case_sensitive, bool reverse,
                  const struct tval*** ret) WARN_UNUSED;
/* Python's str.replace, strip (chars NULL or None: whitespace), center/ljust/rjust ('c', 'l',
 * 'r'), and the length of the line break at s[i] (0 if none) as str.splitlines() sees it. */
const struct tval* tstr_replace(struct teval* ev, const struct tval* s, const struct tval* old,
                                const struct tval* new, int64_t count);
const struct tval* tstr_strip(struct teval* ev, const struct tval* s, const struct tval* chars,
                              bool left, bool right);
const struct tval* tstr_justify(struct teval* ev, const struct tval* s, int64_t width, char fill,
                                char how);
size_t tline_end(const char* s, size_t len, size_t i);
/* Python's `x in seq`. */
int teval_contains(struct teval* ev, const struct tval* seq, const struct tval* x,
                   bool* ret) WARN_UNUSED;

int tfilter_apply(struct teval* ev, const char* name, const struct tval* v,
                  const struct tval* const* args, size_t nargs, const struct tkwarg* kw, size_t nkw,
                  const struct tval** ret) WARN_UNUSED;
bool tfilter_exists(const char* name);
bool ttest_exists(const char* name);
int ttest_apply(struct teval* ev, const char* name, const struct tval* v,
                const struct tval* const* args, size_t nargs, const struct tkwarg* kw, size_t nkw,
                bool* ret) WARN_UNUSED;
/* The bound method `name` of v, or NULL if v has none. */
const struct tval* tmethod_get(struct teval* ev, const struct tval* v, const char* name);

void tscope_set(struct tscope* s, const char* name, const struct tval* v);
const struct tval* tscope_get(const struct tscope* s, const char* name);
void tscope_free(struct tscope* s);

enum {
    TPARSE_TUPLE   = 1 << 0, /* `a, b` without parentheses is a tuple (Jinja's parse_tuple) */
    TPARSE_NO_COND = 1 << 1, /* no `a if b else c` at the top (a for loop's iterable) */
};
/* Parses the expression in src[0..len) (the inside of a tag). *pos is advanced past it. */
int tparse_expr(struct teval* ev, const char* src, size_t len, size_t* pos, uint32_t line,
                unsigned flags, struct expr** ret) WARN_UNUSED;
/* Parses `| filter(args) | …` applied to `base` ({% filter %} blocks). */
int tparse_filter_chain(struct teval* ev, const char* src, size_t len, size_t* pos, uint32_t line,
                        struct expr* base, struct expr** ret) WARN_UNUSED;
/* Skips whitespace in an expression; returns true if the next word is `word`. */
bool tparse_peek_word(const char* src, size_t len, size_t* pos, const char* word);
/* Reads an identifier; returns NULL if there is none. */
const char* tparse_name(struct teval* ev, const char* src, size_t len, size_t* pos);
void tparse_skip_ws(const char* src, size_t len, size_t* pos);

/* The gramine, python, env and ldd globals, and Jinja's range(), dict(), namespace(). */
void template_add_globals(struct teval* ev, struct tscope* globals);
void template_globals_free(struct teval* ev);
