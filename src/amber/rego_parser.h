/* SPDX-License-Identifier: Apache-2.0 */
/* The Rego parser's state and helpers, shared by rego_parse.c (expressions, statements,
 * bodies) and rego_rules.c (package, imports, rule heads, the policy). Not a public header. */
#pragma once

#include "rego_impl.h"

struct scope_ent {
    const char* name;
    size_t len;
    int slot;
};

struct pending { /* a head variable, bound by the body parsed after it */
    struct rg_node* node;
    const struct rg_token* tok;
};

struct parser {
    const struct rg_token* t;
    size_t n, i;
    struct rego_policy* p;
    struct moat_error* err;
    int depth;
    int nl_skip; /* > 0 inside ( ) [ ] and literal { }: newlines are whitespace */
    struct scope_ent scope[REGO_MAX_VARS];
    size_t nscope;
    int nslots;
    bool head_mode;
    struct pending pend[64];
    size_t npend;
    bool gen_ok;         /* `ref[_]` / `ref[x]` may become a generator (a body statement) */
    struct rg_stmt* pre; /* generators for the statement being parsed */
    size_t npre, pre_cap;
};

/* A short quotation of a token for messages. */
#define TOKQ(t) (int)((t)->len > 40 ? 40 : (t)->len), (t)->p

/* Sets err to "line L, column C: <message>" at token t; returns code. */
int rp_errat(struct parser* ps, const struct rg_token* t, int code, const char* fmt, ...)
    PRINTF_FMT(4, 5);
/* Zeroed memory owned by the policy (freed with it). */
void* rp_palloc(struct rego_policy* p, size_t size);
/* The current token (skipping newlines inside brackets) / the same, advancing past it. */
const struct rg_token* rp_cur(struct parser* ps);
const struct rg_token* rp_next(struct parser* ps);
void rp_skip_newlines(struct parser* ps);
bool rp_is_word(const struct rg_token* t, const char* w);
bool rp_is_keyword(const struct rg_token* t);
int rp_expect(struct parser* ps, enum rg_tok type, const char* what) WARN_UNUSED;
/* Slot of a local in scope / index of a rule, -1 if none. */
int rp_find_local(const struct parser* ps, const struct rg_token* t);
int rp_find_rule(const struct parser* ps, const struct rg_token* t);
/* operand [op operand] */
int rp_parse_expr(struct parser* ps, struct rg_node** ret) WARN_UNUSED;
/* `{ … }`, `if { … }` or `if stmt`. */
int rp_parse_rule_body(struct parser* ps, struct rg_body** ret) WARN_UNUSED;
/* Parses the whole token stream into ps->p. */
int rp_parse_policy(struct parser* ps) WARN_UNUSED;
