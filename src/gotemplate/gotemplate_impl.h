/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the Go text/template subset: tokens, nodes, values. Not a public header. */
#pragma once

#include "gotemplate.h"

/* ---- data values ---- */
enum gt_kind {
    GT_STRUCT,
    GT_MAP,
    GT_SECRET,  /* a struct with Cert, Private, Public, Type */
    GT_CERT,    /* a struct with Raw; its bytes are the DER */
    GT_PRIVATE, /* []byte kinds: printed as Go prints a byte slice */
    GT_PUBLIC,
    GT_BYTES,
    GT_STRING,
};

struct gotemplate_value {
    unsigned refs;
    enum gt_kind kind;
    char* go_type;
    uint8_t* data; /* bytes or string (NUL-terminated) */
    size_t len;
    char** keys; /* struct, map, secret, cert */
    struct gotemplate_value** vals;
    size_t n, cap;
};

/* Child by exact (case-sensitive) key, NULL if absent. */
const struct gotemplate_value* gt_value_get(const struct gotemplate_value* v, const char* key,
                                            size_t key_len);
bool gt_value_is_container(const struct gotemplate_value* v);

/* ---- tokens (text/template/parse/lex.go item types) ---- */
enum gt_tok {
    T_ERROR,
    T_EOF,
    T_TEXT,
    T_LEFT_DELIM,
    T_RIGHT_DELIM,
    T_SPACE,
    T_FIELD,
    T_IDENT,
    T_DOT,
    T_VARIABLE,
    T_BOOL,
    T_NUMBER,
    T_CHAR_CONST,
    T_COMPLEX,
    T_STRING,
    T_RAW_STRING,
    T_LPAREN,
    T_RPAREN,
    T_PIPE,
    T_CHAR,
    T_ASSIGN,
    T_DECLARE,
    T_KEYWORD, /* block break continue define else end if range template with */
    T_NIL,
};

struct gt_token {
    enum gt_tok type;
    size_t pos;
    int line;
    const char* val; /* into the template text, or a message for T_ERROR */
    size_t len;
};

struct gt_tokens {
    struct gt_token* v;
    size_t n, cap;
    char* msg; /* owned message of the final T_ERROR token, if any */
};

/* Lexes the whole text; the last token is T_EOF or T_ERROR. Never fails otherwise. */
void gt_lex(const char* text, size_t len, struct gt_tokens* ret);
void gt_tokens_free(struct gt_tokens* t);

/* Go's %q of a byte string (strconv.Quote), appended to sb; max_runes > 0 truncates first. */
void gt_quote(struct strbuf* sb, const char* s, size_t len, size_t max_runes);

/* ---- nodes (text/template/parse/node.go) ---- */
enum gt_node_type {
    N_TEXT,
    N_ACTION,
    N_PIPE,
    N_CMD,
    N_FIELD,
    N_CHAIN,
    N_VARIABLE,
    N_IDENT,
    N_DOT,
    N_NIL,
    N_BOOL,
    N_NUMBER,
    N_STRING,
};

struct gt_node {
    enum gt_node_type type;
    size_t pos;
    int line;
    const char* text; /* N_TEXT: bytes; N_STRING/N_NUMBER/N_IDENT: source text */
    size_t len;
    char* str; /* N_STRING: unquoted value (owned) */
    size_t str_len;
    int64_t num;  /* N_NUMBER */
    bool boolean; /* N_BOOL */
    /* N_FIELD, N_VARIABLE, N_CHAIN: identifiers (without dots; "$" first for variables) */
    struct gt_ident {
        const char* s;
        size_t len;
    } * idents;
    size_t nidents;
    struct gt_node* sub;   /* N_ACTION: pipe; N_CHAIN: the term */
    struct gt_node** kids; /* N_PIPE: commands; N_CMD: args; root list */
    size_t nkids;
};

struct gotemplate {
    char* name;
    char* text;
    size_t len;
    enum gotemplate_funcs funcs;
    struct gt_node** nodes; /* every node, for freeing */
    size_t nnodes, cap;
    struct gt_node* root; /* kids: text and action nodes */
};

/* Whether `name` is a function of the set (table in gotemplate_exec.c). */
bool gt_func_defined(enum gotemplate_funcs funcs, const char* name, size_t len);

/* Node.String() of Go's parse package, for "executing ... at <...>". */
void gt_node_string(struct strbuf* sb, const struct gt_node* n);
