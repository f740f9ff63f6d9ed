/* SPDX-License-Identifier: Apache-2.0 */
/* Executor of the Go text/template subset (Go's text/template/exec.go semantics for fields,
 * commands, pipelines and printing) and MarbleRun's template functions
 * (coordinator/manifest: EncodeSecretDataTo{Pem,Raw,Hex,Base64,String}; reference §2). */
#include <setjmp.h>
#include <string.h>

#include <openssl/crypto.h>

#include "gotemplate_impl.h"

/* A Go reflect.Value as far as the subset needs: nothing (invalid), a literal or function
 * result, or a node of the caller's data. */
enum rkind { R_INVALID, R_STRING, R_BOOL, R_INT, R_DATA };

struct rval {
    enum rkind kind;
    const uint8_t* s; /* R_STRING */
    size_t len;
    int64_t i;
    bool b;
    const struct gotemplate_value* v; /* R_DATA */
};

struct exec {
    const struct gotemplate* t;
    const struct gotemplate_value* data;
    const struct gt_node* at; /* Go's state.node: what the error message points at */
    struct strbuf out;
    size_t max_output;
    struct result {
        char* p;
        size_t len;
    } * results; /* function results, wiped and freed at the end */
    size_t nresults, cap;
    struct moat_error* err;
    int code;
    jmp_buf fail;
};

/* "template: NAME:LINE:COL: executing \"NAME\" at <NODE>: msg" (Go's state.errorf). */
static _Noreturn void fail(struct exec* s, const char* fmt, ...) PRINTF_FMT(2, 3);
static _Noreturn void fail(struct exec* s, const char* fmt, ...) {
    struct strbuf msg = STRBUF_INIT, ctx = STRBUF_INIT, qname = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&msg, fmt, ap);
    va_end(ap);
    const char* text = s->t->text;
    size_t pos       = s->at ? s->at->pos : 0;
    int line         = 1;
    size_t col       = 0;
    for (size_t i = 0; i < pos; i++, col++)
        if (text[i] == '\n')
            line++, col = (size_t)-1;
    gt_quote(&qname, s->t->name, strlen(s->t->name), 0);
    if (s->at) {
        gt_node_string(&ctx, s->at);
        moat_error_set(s->err, -EINVAL, "template: %s:%d:%zu: executing %s at <%s>: %s", s->t->name,
                       line, col, qname.buf, ctx.buf, msg.buf);
    } else {
        moat_error_set(s->err, -EINVAL, "template: %s: %s", s->t->name, msg.buf);
    }
    strbuf_free(&msg);
    strbuf_free(&ctx);
    strbuf_free(&qname);
    s->code = -EINVAL;
    longjmp(s->fail, 1);
}

static const char* type_name(const struct rval* v) {
    switch (v->kind) {
        case R_STRING:
            return "string";
        case R_BOOL:
            return "bool";
        case R_INT:
            return "int";
        case R_DATA:
            return v->v->go_type;
        default:
            return "<nil>";
    }
}

static struct rval data_val(const struct gotemplate_value* v) {
    return v ? (struct rval){.kind = R_DATA, .v = v} : (struct rval){.kind = R_INVALID};
}

/* ---- MarbleRun's functions ---------------------------------------------------------- */

/* The Go type switch in MarbleRun's encoders sees one of these. */
static enum gt_kind arg_kind(const struct rval* v, bool* is_nil, bool* is_other) {
    *is_nil   = v->kind == R_INVALID;
    *is_other = v->kind != R_DATA;
    if (v->kind != R_DATA)
        return GT_STRING;
    *is_other = v->v->kind == GT_STRUCT || v->v->kind == GT_MAP || v->v->kind == GT_STRING;
    return v->v->kind;
}

/* EncodeSecretDataToRaw: the bytes of a key, a certificate's DER or a secret's Public. */
static const char* secret_raw(const struct rval* arg, const uint8_t** ret, size_t* ret_len) {
    bool is_nil, other;
    enum gt_kind k = arg_kind(arg, &is_nil, &other);
    if (is_nil)
        return "secret does not exist";
    if (other)
        return "invalid secret type";
    const struct gotemplate_value* v = arg->v;
    if (k == GT_SECRET)
        v = gt_value_get(v, "Public", 6);
    if (!v || v->len == 0)
        return "tried to parse secret with empty value";
    *ret     = v->data;
    *ret_len = v->len;
    return NULL;
}

static const char* fn_raw(const struct rval* arg, struct strbuf* out) {
    const uint8_t* p = NULL;
    size_t n         = 0;
    const char* e    = secret_raw(arg, &p, &n);
    if (!e)
        strbuf_append(out, (const char*)p, n);
    return e;
}

static const char* fn_hex(const struct rval* arg, struct strbuf* out) {
    const uint8_t* p = NULL;
    size_t n         = 0;
    const char* e    = secret_raw(arg, &p, &n);
    if (e)
        return e;
    char* h = hex_encode_alloc(p, n);
    strbuf_append(out, h, 2 * n);
    OPENSSL_cleanse(h, 2 * n);
    free(h);
    return NULL;
}

static void put_base64(struct strbuf* out, const uint8_t* p, size_t n, size_t line) {
    char* b     = base64_encode_alloc(p, n);
    size_t blen = strlen(b);
    for (size_t i = 0; i < blen; i += line ? line : blen) {
        size_t k = line && blen - i > line ? line : blen - i;
        strbuf_append(out, b + i, k);
        if (line)
            strbuf_putc(out, '\n');
    }
    OPENSSL_cleanse(b, blen);
    free(b);
}

static const char* fn_base64(const struct rval* arg, struct strbuf* out) {
    const uint8_t* p = NULL;
    size_t n         = 0;
    const char* e    = secret_raw(arg, &p, &n);
    if (!e)
        put_base64(out, p, n, 0);
    return e;
}

/* EncodeSecretDataToPem: encoding/pem with 64-column lines and a trailing newline. */
static const char* fn_pem(const struct rval* arg, struct strbuf* out) {
    bool is_nil, other;
    enum gt_kind k    = arg_kind(arg, &is_nil, &other);
    const char* label = k == GT_CERT      ? "CERTIFICATE"
                        : k == GT_PUBLIC  ? "PUBLIC KEY"
                        : k == GT_PRIVATE ? "PRIVATE KEY"
                                          : NULL;
    if (is_nil)
        return "secret does not exist";
    if (other || !label)
        return "invalid secret type for pem encoding";
    if (arg->v->len == 0)
        return "tried to parse secret with empty value";
    strbuf_printf(out, "-----BEGIN %s-----\n", label);
    put_base64(out, arg->v->data, arg->v->len, 64);
    strbuf_printf(out, "-----END %s-----\n", label);
    return NULL;
}

/* EncodeSecretDataToString: a whole plain secret without NUL bytes (Env only). */
static const char* fn_string(const struct rval* arg, struct strbuf* out) {
    static const char only_plain[] =
        "only secrets of type plain are allowed to use string encoding for environment variables";
    bool is_nil, other;
    enum gt_kind k = arg_kind(arg, &is_nil, &other);
    if (is_nil)
        return "secret does not exist";
    if (k != GT_SECRET)
        return only_plain;
    const struct gotemplate_value* type = gt_value_get(arg->v, "Type", 4);
    const struct gotemplate_value* pub  = gt_value_get(arg->v, "Public", 6);
    if (!type || strcmp((const char*)type->data, "plain") != 0)
        return only_plain;
    if (pub && memchr(pub->data, 0, pub->len))
        return "secret contains null bytes";
    return fn_raw(arg, out);
}

enum { SET_FILES = 1 << GOTEMPLATE_FUNCS_FILES, SET_ENV = 1 << GOTEMPLATE_FUNCS_ENV };

static const struct gt_func {
    const char* name;
    unsigned sets;
    const char* (*fn)(const struct rval* arg, struct strbuf* out);
} func_table[] = {
    {"pem", SET_FILES | SET_ENV, fn_pem}, {"hex", SET_FILES | SET_ENV, fn_hex},
    {"raw", SET_FILES, fn_raw},           {"base64", SET_FILES | SET_ENV, fn_base64},
    {"string", SET_ENV, fn_string},
};

static const struct gt_func* func_find(enum gotemplate_funcs set, const char* name, size_t len) {
    for (size_t i = 0; i < ARRAY_SIZE(func_table); i++)
        if ((func_table[i].sets & (1u << set)) && strlen(func_table[i].name) == len &&
            memcmp(func_table[i].name, name, len) == 0)
            return &func_table[i];
    return NULL;
}

bool gt_func_defined(enum gotemplate_funcs set, const char* name, size_t len) {
    return func_find(set, name, len) != NULL;
}

/* ---- evaluation (exec.go) ----------------------------------------------------------- */

static struct rval eval_pipeline(struct exec* s, struct rval dot, const struct gt_node* pipe);
static struct rval eval_arg(struct exec* s, struct rval dot, const struct gt_node* n);

/* Fails with "<prefix><node as text>". */
static _Noreturn void fail_node(struct exec* s, const char* prefix, const struct gt_node* n) {
    struct strbuf sb = STRBUF_INIT;
    gt_node_string(&sb, n);
    char what[1200];
    snprintf(what, sizeof(what), "%s", sb.buf);
    strbuf_free(&sb);
    fail(s, "%s%s", prefix, what);
}

static void not_a_function(struct exec* s, const struct gt_node* cmd, bool has_final) {
    if (cmd->nkids > 1 || has_final)
        fail_node(s, "can't give argument to non-function ", cmd->kids[0]);
}

static struct rval eval_field(struct exec* s, const struct gt_ident* id, struct rval recv,
                              bool has_args) {
    if (recv.kind == R_INVALID) /* a missing map entry stays "no value" down the chain */
        return recv;
    if (recv.kind == R_DATA && gt_value_is_container(recv.v)) {
        bool map = recv.v->kind == GT_MAP;
        if (map && has_args)
            fail(s, "%.*s is not a method but has arguments", (int)id->len, id->s);
        const struct gotemplate_value* v = gt_value_get(recv.v, id->s, id->len);
        if (v && has_args)
            fail(s, "%.*s has arguments but cannot be invoked as function", (int)id->len, id->s);
        if (v || map)
            return data_val(v);
    }
    fail(s, "can't evaluate field %.*s in type %s", (int)id->len, id->s, type_name(&recv));
}

static struct rval eval_field_chain(struct exec* s, struct rval recv, const struct gt_node* n,
                                    size_t first, bool has_args) {
    for (size_t i = first; i < n->nidents; i++)
        recv = eval_field(s, &n->idents[i], recv, has_args && i + 1 == n->nidents);
    return recv;
}

static struct rval eval_function(struct exec* s, struct rval dot, const struct gt_node* ident,
                                 const struct gt_node* cmd, size_t nargs,
                                 const struct rval* final) {
    s->at                   = ident;
    const struct gt_func* f = func_find(s->t->funcs, ident->text, ident->len);
    size_t num_in           = nargs + (final ? 1 : 0);
    if (!f)
        fail(s, "\"%.*s\" is not a defined function", (int)ident->len, ident->text);
    if (num_in != 1)
        fail(s, "wrong number of args for %s: want 1 got %zu", f->name, num_in);
    struct rval arg   = nargs ? eval_arg(s, dot, cmd->kids[1]) : *final;
    struct strbuf out = STRBUF_INIT;
    const char* e     = f->fn(&arg, &out);
    size_t len;
    char* res                 = strbuf_take(&out, &len);
    s->results                = xgrow(s->results, &s->cap, s->nresults + 1, sizeof(*s->results));
    s->results[s->nresults++] = (struct result){res, len};
    if (e) {
        s->at = cmd;
        fail(s, "error calling %s: %s", f->name, e);
    }
    return (struct rval){.kind = R_STRING, .s = (const uint8_t*)res, .len = len};
}

static struct rval eval_variable(struct exec* s, const struct gt_node* n, const struct gt_node* cmd,
                                 bool has_args) {
    s->at = n;
    if (n->nidents == 1) {
        if (has_args)
            fail_node(s, "can't give argument to non-function ", cmd ? cmd->kids[0] : n);
        return data_val(s->data);
    }
    return eval_field_chain(s, data_val(s->data), n, 1, has_args);
}

static struct rval eval_chain(struct exec* s, struct rval dot, const struct gt_node* n,
                              bool has_args) {
    s->at = n;
    if (n->sub->type == N_NIL)
        fail_node(s, "indirection through explicit nil in ", n);
    struct rval recv = eval_arg(s, dot, n->sub);
    return eval_field_chain(s, recv, n, 0, has_args);
}

static struct rval literal(const struct gt_node* n, struct rval dot) {
    switch (n->type) {
        case N_BOOL:
            return (struct rval){.kind = R_BOOL, .b = n->boolean};
        case N_NUMBER:
            return (struct rval){.kind = R_INT, .i = n->num};
        case N_STRING:
            return (struct rval){.kind = R_STRING, .s = (const uint8_t*)n->str, .len = n->str_len};
        case N_DOT:
            return dot;
        default:
            return (struct rval){.kind = R_INVALID};
    }
}

static struct rval eval_arg(struct exec* s, struct rval dot, const struct gt_node* n) {
    s->at = n;
    switch (n->type) {
        case N_FIELD:
            return eval_field_chain(s, dot, n, 0, false);
        case N_VARIABLE:
            return eval_variable(s, n, NULL, false);
        case N_PIPE:
            return eval_pipeline(s, dot, n);
        case N_IDENT:
            return eval_function(s, dot, n, n, 0, NULL);
        case N_CHAIN:
            return eval_chain(s, dot, n, false);
        default:
            return literal(n, dot);
    }
}

static struct rval eval_command(struct exec* s, struct rval dot, const struct gt_node* cmd,
                                const struct rval* final) {
    const struct gt_node* first = cmd->kids[0];
    bool has_args               = cmd->nkids > 1 || final;
    switch (first->type) {
        case N_FIELD:
            s->at = first;
            return eval_field_chain(s, dot, first, 0, has_args);
        case N_CHAIN:
            return eval_chain(s, dot, first, has_args);
        case N_IDENT:
            return eval_function(s, dot, first, cmd, cmd->nkids - 1, final);
        case N_PIPE:
            not_a_function(s, cmd, final);
            return eval_pipeline(s, dot, first);
        case N_VARIABLE:
            return eval_variable(s, first, cmd, has_args);
        default:
            s->at = first;
            not_a_function(s, cmd, final);
            if (first->type == N_NIL)
                fail(s, "nil is not a command");
            return literal(first, dot);
    }
}

static struct rval eval_pipeline(struct exec* s, struct rval dot, const struct gt_node* pipe) {
    s->at = pipe;
    struct rval value;
    for (size_t i = 0; i < pipe->nkids; i++)
        value = eval_command(s, dot, pipe->kids[i], i > 0 ? &value : NULL);
    return value;
}

static void emit(struct exec* s, const void* p, size_t n) {
    if (n > s->max_output - s->out.len) {
        s->code = moat_error_set(s->err, -EFBIG, "template: %s: output exceeds %zu bytes",
                                 s->t->name, s->max_output);
        longjmp(s->fail, 1);
    }
    strbuf_append(&s->out, p, n);
}

/* Go's printValue: "<no value>" for nothing, fmt's "[1 2 3]" for byte slices. Go would dump
 * structs, maps and certificates with %v; the subset refuses them instead. */
static void print_value(struct exec* s, const struct gt_node* action, struct rval v) {
    char buf[32];
    s->at = action;
    if (v.kind == R_INVALID) {
        emit(s, "<no value>", 10);
    } else if (v.kind == R_STRING) {
        emit(s, v.s, v.len);
    } else if (v.kind == R_BOOL) {
        emit(s, v.b ? "true" : "false", v.b ? 4 : 5);
    } else if (v.kind == R_INT) {
        int k = snprintf(buf, sizeof(buf), "%lld", (long long)v.i);
        emit(s, buf, (size_t)k);
    } else if (v.v->kind == GT_STRING) {
        emit(s, v.v->data, v.v->len);
    } else if (v.v->kind == GT_BYTES || v.v->kind == GT_PRIVATE || v.v->kind == GT_PUBLIC) {
        emit(s, "[", 1);
        for (size_t i = 0; i < v.v->len; i++) {
            int k = snprintf(buf, sizeof(buf), i ? " %u" : "%u", v.v->data[i]);
            emit(s, buf, (size_t)k);
        }
        emit(s, "]", 1);
    } else {
        struct strbuf sb = STRBUF_INIT;
        gt_node_string(&sb, action);
        char what[1200];
        snprintf(what, sizeof(what), "%s", sb.buf);
        strbuf_free(&sb);
        fail(s, "can't print %s of type %s (moat prints only strings and bytes; use a function)",
             what, v.v->go_type);
    }
}

static void exec_all(struct exec* s) {
    const struct gt_node* root = s->t->root;
    for (size_t i = 0; i < root->nkids; i++) {
        const struct gt_node* n = root->kids[i];
        if (n->type == N_TEXT)
            emit(s, n->text, n->len);
        else
            print_value(s, n, eval_pipeline(s, data_val(s->data), n->sub));
    }
}

int gotemplate_execute(const struct gotemplate* tmpl, const struct gotemplate_value* data,
                       size_t max_output, uint8_t** ret_out, size_t* ret_len,
                       struct moat_error* err) {
    struct exec* volatile s = xcalloc(1, sizeof(*s));
    s->t                    = tmpl;
    s->data                 = data;
    s->err                  = err;
    s->max_output           = max_output ? max_output : GOTEMPLATE_MAX_OUTPUT;
    if (setjmp(s->fail) == 0)
        exec_all(s);
    for (size_t i = 0; i < s->nresults; i++) {
        OPENSSL_cleanse(s->results[i].p, s->results[i].len);
        free(s->results[i].p);
    }
    free(s->results);
    int r = s->code;
    size_t len;
    char* out = strbuf_take(&s->out, &len);
    free(s);
    if (r < 0) {
        OPENSSL_cleanse(out, len);
        free(out);
        return r;
    }
    *ret_out = (uint8_t*)out;
    *ret_len = len;
    return 0;
}

int gotemplate_render(const char* name, const char* text, size_t len, enum gotemplate_funcs funcs,
                      const struct gotemplate_value* data, uint8_t** ret_out, size_t* ret_len,
                      struct moat_error* err) {
    _cleanup_gotemplate_ struct gotemplate* t = NULL;
    int r                                     = gotemplate_parse(name, text, len, funcs, &t, err);
    if (r < 0)
        return r;
    return gotemplate_execute(t, data, 0, ret_out, ret_len, err);
}
