/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: the template engine's values, expression tree and evaluator, shared by
 * template.c (lexer, statement parser, renderer), template_eval.c (expressions, filters) and
 * template_globals.c (gramine/python/env/ldd).
 *
 * Everything a render allocates (syntax tree, values, strings) lives in one arena that is freed
 * when the render ends, so values are immutable and shared freely.
 */
#pragma once

#include "template.h"

/* ---------------------------------------------------------------------------------------- */
/* Arena                                                                                      */

struct arena_block;
struct arena {
    struct arena_block* head;
};
void* arena_alloc(struct arena* a, size_t size);
char* arena_strndup(struct arena* a, const char* s, size_t n);
char* arena_strdup(struct arena* a, const char* s);
void arena_free(struct arena* a);

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                     */

enum tv_type {
    TV_UNDEF, /* StrictUndefined: any use but `is defined` / `default` is an error */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_PATH, /* pathlib.Path: prints as the path, has is_dir(), exists(), is_file(), name */
    TV_LIST,
    TV_DICT,
    TV_FUNC,
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

struct tval {
    enum tv_type type;
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

struct python_info; /* template_globals.c */

struct teval {
    struct arena* arena;
    struct tscope* scope;
    const char* filename;
    uint32_t line; /* of the construct being evaluated, for messages */
    const struct template_env* env;
    struct python_info* python;
    struct moat_error* err;
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
const struct tval* tv_undef(struct teval* ev, const char* name);
/* Builds a dict from parallel arrays (copied). */
const struct tval* tv_dict(struct teval* ev, const char* const* keys,
                           const struct tval* const* values, size_t n);
const struct tval* tv_dict_get(const struct tval* dict, const char* key);

const struct tval* tv_float(struct teval* ev, double f);
/* Python's type name ("str", "list", …) for messages. */
const char* tv_type_name(const struct tval* v);
/* "'<name>' is undefined" (StrictUndefined); returns -EINVAL. */
int tv_undefined_error(struct teval* ev, const struct tval* v);
/* str(v) as a string value, or NULL (error set) for undefined. */
const struct tval* tv_str_of(struct teval* ev, const struct tval* v);
/* Python ==. */
bool tv_equal(const struct tval* a, const struct tval* b);

/* Python str() of a value, appended to sb. Fails on undefined. */
int tv_to_str(struct teval* ev, const struct tval* v, struct strbuf* sb) WARN_UNUSED;
int tv_truth(struct teval* ev, const struct tval* v, bool* ret) WARN_UNUSED;

/* The items of a list, dict (keys) or string (characters) for `for` loops. */
int titer(struct teval* ev, const struct tval* v, const struct tval*** ret_items,
          size_t* ret_n) WARN_UNUSED;

int teval_expr(struct teval* ev, const struct expr* e, const struct tval** ret) WARN_UNUSED;

void tscope_set(struct tscope* s, const char* name, const struct tval* v);
const struct tval* tscope_get(const struct tscope* s, const char* name);
void tscope_free(struct tscope* s);

/* Parses the expression in src[0..len) (the inside of a tag). *pos is advanced past it. */
int tparse_expr(struct teval* ev, const char* src, size_t len, size_t* pos, uint32_t line,
                struct expr** ret) WARN_UNUSED;
/* Skips whitespace in an expression; returns true if the next word is `word`. */
bool tparse_peek_word(const char* src, size_t len, size_t* pos, const char* word);
/* Reads an identifier; returns NULL if there is none. */
const char* tparse_name(struct teval* ev, const char* src, size_t len, size_t* pos);
void tparse_skip_ws(const char* src, size_t len, size_t* pos);

/* The gramine, python, env and ldd globals. */
void template_add_globals(struct teval* ev, struct tscope* globals);
void template_globals_free(struct teval* ev);
