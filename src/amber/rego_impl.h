/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the Rego subset: tokens, the compiled tree, value helpers. Not a public header. */
#pragma once

#include "rego.h"

/* ---- tokens ---- */
enum rg_tok {
    TK_EOF,
    TK_NEWLINE,
    TK_IDENT,
    TK_STRING, /* value already unescaped into tok.str */
    TK_NUMBER,
    TK_LBRACE,
    TK_RBRACE,
    TK_LBRACK,
    TK_RBRACK,
    TK_LPAREN,
    TK_RPAREN,
    TK_COMMA,
    TK_DOT,
    TK_COLON,
    TK_SEMI,
    TK_ASSIGN, /* := */
    TK_UNIFY,  /* = */
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_OTHER, /* an operator outside the subset: | & + - * / % */
};

struct rg_token {
    enum rg_tok type;
    int line, col;
    const char* p; /* into the policy text */
    size_t len;
    char* str; /* TK_STRING: unescaped bytes (NUL-terminated, may hold NULs) */
    size_t str_len;
};

/* Splits text into tokens (comments dropped, consecutive newlines collapsed). */
int rg_lex(const char* text, size_t len, struct rg_token** ret_toks, size_t* ret_n,
           struct moat_error* err) WARN_UNUSED;
void rg_tokens_free(struct rg_token* toks, size_t n);

/* ---- compiled tree ---- */
enum rg_node_kind {
    N_CONST,  /* value */
    N_ARRAY,  /* kids */
    N_OBJECT, /* kids: key, value, key, value ... */
    N_SET,    /* kids */
    N_INPUT,
    N_VAR,   /* slot */
    N_RULE,  /* rule */
    N_REF,   /* kids[0] base, kids[1..] index expressions */
    N_CALL,  /* fn(kids...) */
    N_CMP,   /* op, kids[0] kids[1] */
    N_IN,    /* kids[0] in kids[1] */
    N_COMPR, /* [kids[0] | body] or {kids[0] | body} (set) */
};

enum rg_cmp { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };

/* The built-ins of the subset (ITA's documented list, "Policy language functions"). */
enum rg_builtin {
    B_COUNT,
    B_TIME_NOW_NS,
    B_TIME_PARSE_RFC3339_NS,
    B_TIME_ADD_DATE,
    B_OBJECT_SUBSET,
};

struct rg_body;
struct rg_node {
    enum rg_node_kind kind;
    int line, col;
    json_t* value;
    struct rg_node** kids;
    size_t n;
    enum rg_cmp op;
    int slot;
    int rule;
    enum rg_builtin fn;   /* N_CALL */
    struct rg_body* body; /* N_COMPR */
    bool set;             /* N_COMPR: a set comprehension */
};

enum rg_stmt_kind { S_EXPR, S_NOT, S_ASSIGN, S_SOME_IN, S_EVERY };

struct rg_stmt {
    enum rg_stmt_kind kind;
    int line, col;
    struct rg_node* expr; /* S_SOME_IN/S_EVERY: the collection */
    int slot;             /* S_ASSIGN target; S_SOME_IN/S_EVERY value */
    int key_slot;         /* S_SOME_IN/S_EVERY key, -1 if none */
    struct rg_body* body; /* S_EVERY */
};

struct rg_body {
    struct rg_stmt* stmts;
    size_t n;
};

enum rg_rule_kind { R_COMPLETE, R_SET };

struct rg_def {
    int line;
    struct rg_node* value;   /* head value / set element; NULL means true */
    struct rg_body* body;    /* NULL: no body (always succeeds) */
    int nslots;              /* for the whole else chain, which shares the slots */
    struct rg_def* else_def; /* tried when no solution of body exists */
};

struct rg_rule {
    char* name;
    enum rg_rule_kind kind;
    int line;
    struct rg_node* default_value; /* NULL if none */
    struct rg_def* defs;
    size_t ndefs, cap;
};

struct rego_policy {
    char* package;
    struct rg_rule* rules;
    size_t nrules, cap;
    /* every allocation of the tree, freed together */
    void** allocs;
    size_t nallocs, allocs_cap;
    json_t** consts;
    size_t nconsts, consts_cap;
};

/* Refuses rules that depend on themselves (compile time; the evaluator relies on it). */
int rg_check_recursion(const struct rego_policy* p, struct moat_error* err) WARN_UNUSED;

/* ---- values: a JSON value, or a set (a sorted, duplicate-free array with set = true) ---- */
struct rg_val {
    json_t* j; /* NULL: undefined */
    bool set;
};

/* OPA's total order (ast.Compare): null < boolean < number < string < array < object < set;
 * numbers by value (integers exactly), strings byte-wise. */
int rg_compare(const json_t* a, bool a_set, const json_t* b, bool b_set);
/* Calls a built-in on defined arguments. *ret stays undefined (j NULL) where OPA's built-in
 * fails (a type error, an unparsable time: undefined unless strict-builtin-errors). Returns
 * <0 only for what the subset cannot evaluate faithfully (message names the line). */
int rg_builtin(enum rg_builtin fn, const struct rg_val* args, int64_t now_ns, int line,
               struct rg_val* ret, struct moat_error* err) WARN_UNUSED;
/* Go's time.Parse(time.RFC3339, s) as nanoseconds since the epoch; -EINVAL if not RFC 3339 or
 * outside int64 nanoseconds. */
int rg_parse_rfc3339_ns(const char* s, size_t len, int64_t* ret_ns) WARN_UNUSED;
/* Go's time.Unix(0, ns).UTC().AddDate(years, months, days).UnixNano(); -ERANGE on overflow. */
int rg_add_date(int64_t ns, int64_t years, int64_t months, int64_t days,
                int64_t* ret_ns) WARN_UNUSED;

/* Sorts and de-duplicates arr in place (it becomes a set). */
void rg_set_normalize(json_t* arr);
bool rg_set_contains(const json_t* set, const json_t* v);
