/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MarbleRun manifest JSON -> struct coord_manifest (reference/marblerun.md §1).
 *
 * jansson parses the bytes; this file then applies Go encoding/json's decoding rules to the tree,
 * driven by one field table per Go struct:
 *  - a member matches the field of the same name, else one whose name matches ignoring ASCII
 *    case; members apply in document order, so a later case variant overrides (and, for maps,
 *    adds to) an earlier one; unknown members are ignored;
 *  - null leaves strings, bools, numbers and structs alone and clears maps, slices and pointers;
 *  - a value of the wrong JSON type is an UnmarshalTypeError that Go remembers while it goes on
 *    decoding ("soft"); the first one is reported at the end. Errors returned by an
 *    UnmarshalJSON method (File, Certificate) stop decoding at once ("hard") and win.
 * Known differences from Go: jansson keeps only the last of two members with the same exact
 * name (Go would merge two objects given for one struct field), rejects invalid UTF-8 (Go
 * substitutes U+FFFD) and integers beyond int64 (Go accepts up to 2^64-1 for uint64), and map
 * keys holding NUL bytes are refused. Go also folds the Kelvin sign and long s in field names.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <string.h>

#include "coordinator.h"
#include "manifest_internal.h"

/* The JSON path of the value being decoded, as a chain of stack frames; rendered on error. */
struct pseg {
    const struct pseg* up;
    const char* s;
};

struct dec {
    struct moat_error* err; /* hard error goes here */
    struct moat_error soft; /* first UnmarshalTypeError-like error */
    bool has_soft;
};

static void path_render(const struct pseg* p, struct strbuf* sb) {
    if (!p)
        return;
    if (p->up) {
        path_render(p->up, sb);
        strbuf_putc(sb, '.');
    }
    strbuf_puts(sb, p->s);
}

static const char* json_kind(const json_t* v) {
    switch (json_typeof(v)) {
        case JSON_STRING:
            return "string";
        case JSON_INTEGER:
        case JSON_REAL:
            return "number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "bool";
        case JSON_ARRAY:
            return "array";
        case JSON_OBJECT:
            return "object";
        default:
            return "null";
    }
}

/* Go: "json: cannot unmarshal <what> into Go struct field <Struct>.<path> of type <type>". */
static void type_error(struct dec* d, const char* what, const char* strct, const struct pseg* path,
                       const char* gotype) {
    if (d->has_soft)
        return;
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    path_render(path, &sb);
    moat_error_set(&d->soft, -EINVAL,
                   "json: cannot unmarshal %s into Go struct field %s.%s of type %s", what, strct,
                   sb.buf ? sb.buf : "", gotype);
    d->has_soft = true;
}

/* A hard error: MarbleRun's own text, then where it happened. */
static int hard_error(struct dec* d, const struct pseg* path, const char* fmt, ...)
    PRINTF_FMT(3, 4);
static int hard_error(struct dec* d, const struct pseg* path, const char* fmt, ...) {
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    strbuf_puts(&sb, " (at ");
    path_render(path, &sb);
    strbuf_putc(&sb, ')');
    return moat_error_set(d->err, -EINVAL, "%s", sb.buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Scalars                                                                                    */

/* Each decoder: v is never NULL; `strct` is the Go struct holding the field (for messages). */
typedef int (*dec_fn)(struct dec* d, json_t* v, void* target, const char* strct,
                      const struct pseg* path);

static int dec_string(struct dec* d, json_t* v, void* target, const char* strct,
                      const struct pseg* path) {
    char** s = target;
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        type_error(d, json_kind(v), strct, path, "string");
        return 0;
    }
    free(*s);
    *s = xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

static int dec_bool(struct dec* d, json_t* v, void* target, const char* strct,
                    const struct pseg* path) {
    bool* b = target;
    if (json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        type_error(d, json_kind(v), strct, path, "bool");
        return 0;
    }
    *b = json_is_true(v);
    return 0;
}

/* Go uint/uint64 from a number literal: negative, fractional or exponent forms are
 * "number <literal>" type errors. */
static bool dec_number_u64(struct dec* d, json_t* v, uint64_t* out, const char* strct,
                           const struct pseg* path, const char* gotype) {
    char lit[64];
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_integer(v))
        snprintf(lit, sizeof(lit), "number %lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(lit, sizeof(lit), "number %.17g", json_real_value(v));
    else
        snprintf(lit, sizeof(lit), "%s", json_kind(v));
    type_error(d, lit, strct, path, gotype);
    return false;
}

static int dec_uint(struct dec* d, json_t* v, void* target, const char* strct,
                    const struct pseg* path) {
    if (!json_is_null(v))
        dec_number_u64(d, v, target, strct, path, "uint");
    return 0;
}

/* A *uint / *uint64: the bool `has` flag sits right before the value in the C struct. */
struct opt_u64 {
    bool has;
    uint64_t v;
};
static int dec_opt_uint_common(struct dec* d, json_t* v, void* target, const char* strct,
                               const struct pseg* path, const char* gotype) {
    bool* has     = target;
    uint64_t* val = (uint64_t*)((char*)target + offsetof(struct opt_u64, v));
    if (json_is_null(v)) {
        *has = false;
        return 0;
    }
    if (dec_number_u64(d, v, val, strct, path, gotype))
        *has = true;
    return 0;
}
static int dec_opt_uint(struct dec* d, json_t* v, void* t, const char* s, const struct pseg* p) {
    return dec_opt_uint_common(d, v, t, s, p, "uint");
}
static int dec_opt_uint64(struct dec* d, json_t* v, void* t, const char* s, const struct pseg* p) {
    return dec_opt_uint_common(d, v, t, s, p, "uint64");
}

void coord_strv_free(struct coord_strv* sv) {
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    *sv = (struct coord_strv){0};
}

static int dec_strv(struct dec* d, json_t* v, void* target, const char* strct,
                    const struct pseg* path) {
    struct coord_strv* sv = target;
    if (json_is_null(v)) {
        coord_strv_free(sv);
        return 0;
    }
    if (!json_is_array(v)) {
        type_error(d, json_kind(v), strct, path, "[]string");
        return 0;
    }
    coord_strv_free(sv);
    sv->v = xcalloc(json_array_size(v) + 1, sizeof(char*));
    size_t i;
    json_t* e;
    json_array_foreach(v, i, e) {
        sv->v[i] = xstrdup("");
        (void)dec_string(d, e, &sv->v[i], strct, path);
        sv->n++;
    }
    return 0;
}

/* Go's []byte: a base64 (std, padded) string; a bad one is remembered like a type error. */
struct bytes {
    uint8_t* p;
    size_t len;
};
static int dec_bytes(struct dec* d, json_t* v, void* target, const char* strct,
                     const struct pseg* path) {
    struct bytes* b = target;
    if (json_is_null(v)) {
        free(b->p);
        *b = (struct bytes){0};
        return 0;
    }
    if (!json_is_string(v)) {
        type_error(d, json_kind(v), strct, path, "[]uint8");
        return 0;
    }
    uint8_t* out;
    size_t out_len;
    char msg[128];
    if (go_base64_decode(json_string_value(v), json_string_length(v), &out, &out_len, msg,
                         sizeof(msg)) < 0) {
        if (!d->has_soft) {
            _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
            path_render(path, &sb);
            moat_error_set(&d->soft, -EINVAL, "%s (at %s)", msg, sb.buf);
            d->has_soft = true;
        }
        return 0;
    }
    free(b->p);
    *b = (struct bytes){out, out_len};
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Structs and maps                                                                           */

struct field {
    const char* name;
    dec_fn dec;
    size_t off;
};

struct gostruct {
    const char* name;   /* Go struct name, for "Go struct field <name>.<path>" */
    const char* gotype; /* Go type, for "of type <gotype>" when the value is not an object */
    const struct field* fields;
    size_t n_fields;
};

/* encoding/json's field lookup: the exact name, else a case-insensitive match. */
static const struct field* field_lookup(const struct gostruct* gs, const char* key) {
    for (size_t i = 0; i < gs->n_fields; i++)
        if (strcmp(gs->fields[i].name, key) == 0)
            return &gs->fields[i];
    for (size_t i = 0; i < gs->n_fields; i++)
        if (strcasecmp(gs->fields[i].name, key) == 0)
            return &gs->fields[i];
    return NULL;
}

static int dec_struct(struct dec* d, json_t* v, void* base, const struct gostruct* gs,
                      const char* outer_strct, const struct pseg* path) {
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        type_error(d, json_kind(v), outer_strct, path, gs->gotype);
        return 0;
    }
    const char* key;
    json_t* val;
    json_object_foreach(v, key, val) {
        const struct field* f = field_lookup(gs, key);
        if (!f)
            continue; /* unknown fields are ignored */
        struct pseg seg = {path, f->name};
        int r           = f->dec(d, val, (char*)base + f->off, gs->name, &seg);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A Go map[string]T as a C array of T whose first member is `char* name`. */
struct gomap {
    const char* gotype; /* "map[string]manifest.Marble" */
    size_t elem_size;
    /* decodes one value into a zeroed element (name already set) */
    int (*dec_elem)(struct dec* d, json_t* v, void* elem, const char* strct,
                    const struct pseg* path);
    void (*free_elem)(void* elem);
};

struct garray {
    size_t n;
    void* v;
};

static int dec_map(struct dec* d, json_t* v, struct garray* arr, const struct gomap* gm,
                   const char* strct, const struct pseg* path) {
    if (json_is_null(v)) {
        for (size_t i = 0; i < arr->n; i++)
            gm->free_elem((char*)arr->v + i * gm->elem_size);
        free(arr->v);
        *arr = (struct garray){0};
        return 0;
    }
    if (!json_is_object(v)) {
        type_error(d, json_kind(v), strct, path, gm->gotype);
        return 0;
    }
    size_t before = arr->n, cap = arr->n;
    const char* key;
    size_t key_len;
    json_t* val;
    json_object_keylen_foreach(v, key, key_len, val) {
        struct pseg seg = {path, key};
        if (strlen(key) != key_len)
            return hard_error(d, path, "map key contains a NUL byte");
        _cleanup_free_ void* elem = xcalloc(1, gm->elem_size);
        *(char**)elem             = xstrdup(key);
        int r                     = gm->dec_elem(d, val, elem, strct, &seg);
        if (r < 0) {
            gm->free_elem(elem);
            return r;
        }
        /* Go: a new zero element per key, stored over any earlier one (case-variant fields) */
        size_t slot = arr->n;
        for (size_t i = 0; i < before; i++)
            if (strcmp(*(char**)((char*)arr->v + i * gm->elem_size), key) == 0)
                slot = i;
        if (slot == arr->n) {
            arr->v = xgrow(arr->v, &cap, arr->n + 1, gm->elem_size);
            arr->n++;
        } else {
            gm->free_elem((char*)arr->v + slot * gm->elem_size);
        }
        memcpy((char*)arr->v + slot * gm->elem_size, elem, gm->elem_size);
    }
    return 0;
}

static int name_cmp(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

static void sort_by_name(void* base, size_t n, size_t size) {
    if (n > 1)
        qsort(base, n, size, name_cmp);
}

/* ---------------------------------------------------------------------------------------- */
/* File (§1.2): a string, or {Data, Encoding, NoTemplates}; decoded at parse time             */

struct file_obj {
    char* data;
    char* encoding;
    bool no_templates;
};
static const struct field file_fields[] = {
    {"Data", dec_string, offsetof(struct file_obj, data)},
    {"Encoding", dec_string, offsetof(struct file_obj, encoding)},
    {"NoTemplates", dec_bool, offsetof(struct file_obj, no_templates)},
};
#define FILE_GOTYPE "struct { Data string; Encoding string; NoTemplates bool }"
static const struct gostruct file_struct = {"", FILE_GOTYPE, file_fields, ARRAY_SIZE(file_fields)};

static int file_decode_data(struct dec* d, struct coord_file* f, json_t* data,
                            const struct pseg* path) {
    const char* s = data ? json_string_value(data) : "";
    size_t len    = data ? json_string_length(data) : 0;
    char msg[128];
    int r;
    if (strcasecmp(f->encoding_name, "string") == 0) {
        f->encoding = COORD_ENCODING_STRING;
        f->data     = xmalloc(len + 1);
        memcpy(f->data, s, len);
        f->data[len] = 0;
        f->len       = len;
        return 0;
    }
    if (strcasecmp(f->encoding_name, "base64") == 0) {
        f->encoding = COORD_ENCODING_BASE64;
        r           = go_base64_decode(s, len, &f->data, &f->len, msg, sizeof(msg));
    } else if (strcasecmp(f->encoding_name, "hex") == 0) {
        f->encoding = COORD_ENCODING_HEX;
        r           = go_hex_decode(s, len, &f->data, &f->len, msg, sizeof(msg));
    } else {
        return hard_error(d, path, "unknown encoding type: %s", f->encoding_name);
    }
    return r < 0 ? hard_error(d, path, "%s", msg) : 0;
}

static int dec_file(struct dec* d, json_t* v, void* elem, const char* strct,
                    const struct pseg* path) {
    (void)strct;
    struct coord_file* f = elem;
    if (json_is_string(v)) {
        f->encoding_name = xstrdup("string");
        return file_decode_data(d, f, v, path);
    }
    if (json_is_null(v)) /* Go's %t of a nil interface */
        return hard_error(d, path, "got: %%!t(<nil>), expected: string or interface");
    if (!json_is_object(v))
        return hard_error(d, path, "json: cannot unmarshal %s into Go value of type %s",
                          json_kind(v), FILE_GOTYPE);
    /* File.UnmarshalJSON runs its own json.Unmarshal: its type errors are returned errors */
    struct dec inner   = {.err = d->err};
    struct file_obj fo = {0};
    int r              = dec_struct(&inner, v, &fo, &file_struct, "", NULL);
    if (r == 0 && inner.has_soft)
        r = hard_error(d, path, "%s", inner.soft.msg);
    if (r == 0) {
        f->encoding_name = xstrdup(fo.encoding && *fo.encoding ? fo.encoding : "string");
        f->no_templates  = fo.no_templates;
        /* decode from the member itself: it keeps NUL bytes, fo.data does not */
        json_t* data = coord_json_field(v, "Data");
        r            = file_decode_data(d, f, json_is_string(data) ? data : NULL, path);
    }
    free(fo.data);
    free(fo.encoding);
    return r;
}

static void file_free(void* p) {
    struct coord_file* f = p;
    free(f->name);
    free(f->data);
    free(f->encoding_name);
}
static const struct gomap files_map = {"map[string]manifest.File", sizeof(struct coord_file),
                                       dec_file, file_free};
static int dec_files(struct dec* d, json_t* v, void* t, const char* s, const struct pseg* p) {
    return dec_map(d, v, t, &files_map, s, p);
}

/* ---------------------------------------------------------------------------------------- */
/* Packages (§1.1)                                                                            */

static const struct field package_fields[] = {
    {"Debug", dec_bool, offsetof(struct coord_package, debug)},
    {"UniqueID", dec_string, offsetof(struct coord_package, unique_id)},
    {"SignerID", dec_string, offsetof(struct coord_package, signer_id)},
    {"ProductID", dec_opt_uint64, offsetof(struct coord_package, has_product_id)},
    {"SecurityVersion", dec_opt_uint, offsetof(struct coord_package, has_security_version)},
    {"AcceptedTCBStatuses", dec_strv, offsetof(struct coord_package, accepted_tcb_statuses)},
    {"AcceptedAdvisories", dec_strv, offsetof(struct coord_package, accepted_advisories)},
};
static const struct gostruct package_struct = {"PackageProperties", "quote.PackageProperties",
                                               package_fields, ARRAY_SIZE(package_fields)};
/* the has_/value pairs must have struct opt_u64's layout */
_Static_assert(offsetof(struct coord_package, product_id) -
                       offsetof(struct coord_package, has_product_id) ==
                   offsetof(struct opt_u64, v),
               "ProductID layout");
_Static_assert(offsetof(struct coord_package, security_version) -
                       offsetof(struct coord_package, has_security_version) ==
                   offsetof(struct opt_u64, v),
               "SecurityVersion layout");

static int dec_package(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_struct(d, v, e, &package_struct, s, p);
}
static void package_free(void* p) {
    struct coord_package* pk = p;
    free(pk->name);
    free(pk->unique_id);
    free(pk->signer_id);
    coord_strv_free(&pk->accepted_tcb_statuses);
    coord_strv_free(&pk->accepted_advisories);
}
static const struct gomap packages_map = {"map[string]quote.PackageProperties",
                                          sizeof(struct coord_package), dec_package, package_free};

/* ---------------------------------------------------------------------------------------- */
/* Infrastructures: kept as JSON                                                              */

static int dec_infra(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    struct coord_infrastructure* in = e;
    if (!json_is_object(v) && !json_is_null(v))
        type_error(d, json_kind(v), s, p, "quote.InfrastructureProperties");
    in->value = v; /* borrowed from the tree */
    return 0;
}
static void infra_free(void* p) {
    free(((struct coord_infrastructure*)p)->name);
}
static const struct gomap infras_map = {"map[string]quote.InfrastructureProperties",
                                        sizeof(struct coord_infrastructure), dec_infra, infra_free};

/* ---------------------------------------------------------------------------------------- */
/* Marbles (§1.2); Parameters is flattened into struct coord_marble                           */

static const struct field params_fields[] = {
    {"Files", dec_files, offsetof(struct coord_marble, files)},
    {"Env", dec_files, offsetof(struct coord_marble, env)},
    {"Argv", dec_strv, offsetof(struct coord_marble, argv)},
};
static const struct gostruct params_struct = {"Parameters", "manifest.Parameters", params_fields,
                                              ARRAY_SIZE(params_fields)};
static int dec_params(struct dec* d, json_t* v, void* t, const char* s, const struct pseg* p) {
    /* t points at the marble itself (offset 0 below) */
    return dec_struct(d, v, t, &params_struct, s, p);
}

static const struct field marble_fields[] = {
    {"Package", dec_string, offsetof(struct coord_marble, package)},
    {"MaxActivations", dec_uint, offsetof(struct coord_marble, max_activations)},
    {"Parameters", dec_params, 0},
    {"TLS", dec_strv, offsetof(struct coord_marble, tls)},
    {"DisableSecretBinding", dec_bool, offsetof(struct coord_marble, disable_secret_binding)},
};
static const struct gostruct marble_struct = {"Marble", "manifest.Marble", marble_fields,
                                              ARRAY_SIZE(marble_fields)};
static int dec_marble(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_struct(d, v, e, &marble_struct, s, p);
}
static void files_free(struct coord_files* fs) {
    for (size_t i = 0; i < fs->n; i++)
        file_free(&fs->v[i]);
    free(fs->v);
}
static void marble_free(void* p) {
    struct coord_marble* mb = p;
    free(mb->name);
    free(mb->package);
    files_free(&mb->files);
    files_free(&mb->env);
    coord_strv_free(&mb->argv);
    coord_strv_free(&mb->tls);
}
static const struct gomap marbles_map = {"map[string]manifest.Marble", sizeof(struct coord_marble),
                                         dec_marble, marble_free};

/* ---------------------------------------------------------------------------------------- */
/* Users, Roles (§1.4), RecoveryKeys                                                          */

static const struct field user_fields[] = {
    {"Certificate", dec_string, offsetof(struct coord_user, certificate)},
    {"Roles", dec_strv, offsetof(struct coord_user, roles)},
};
static const struct gostruct user_struct = {"User", "manifest.User", user_fields,
                                            ARRAY_SIZE(user_fields)};
static int dec_user(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_struct(d, v, e, &user_struct, s, p);
}
static void user_free(void* p) {
    struct coord_user* u = p;
    free(u->name);
    free(u->certificate);
    coord_strv_free(&u->roles);
}
static const struct gomap users_map = {"map[string]manifest.User", sizeof(struct coord_user),
                                       dec_user, user_free};

static const struct field role_fields[] = {
    {"ResourceType", dec_string, offsetof(struct coord_role, resource_type)},
    {"ResourceNames", dec_strv, offsetof(struct coord_role, resource_names)},
    {"Actions", dec_strv, offsetof(struct coord_role, actions)},
};
static const struct gostruct role_struct = {"Role", "manifest.Role", role_fields,
                                            ARRAY_SIZE(role_fields)};
static int dec_role(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_struct(d, v, e, &role_struct, s, p);
}
static void role_free(void* p) {
    struct coord_role* r = p;
    free(r->name);
    free(r->resource_type);
    coord_strv_free(&r->resource_names);
    coord_strv_free(&r->actions);
}
static const struct gomap roles_map = {"map[string]manifest.Role", sizeof(struct coord_role),
                                       dec_role, role_free};

static int dec_kv(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_string(d, v, &((struct coord_kv*)e)->value, s, p);
}
static void kv_free(void* p) {
    struct coord_kv* kv = p;
    free(kv->name);
    free(kv->value);
}
static const struct gomap kv_map = {"map[string]string", sizeof(struct coord_kv), dec_kv, kv_free};

/* ---------------------------------------------------------------------------------------- */
/* Secrets (§1.3)                                                                             */

/* Certificate.UnmarshalJSON: a JSON string is base64 DER (state/API form; an undecodable one is
 * silently ignored, as upstream does), anything else is an x509.Certificate template object. */
static int dec_cert(struct dec* d, json_t* v, void* target, const char* strct,
                    const struct pseg* path) {
    (void)strct;
    struct coord_secret* s =
        (struct coord_secret*)((char*)target - offsetof(struct coord_secret, cert_template));
    if (json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        uint8_t* der;
        size_t der_len;
        char msg[128];
        if (go_base64_decode(json_string_value(v), json_string_length(v), &der, &der_len, msg,
                             sizeof(msg)) < 0)
            return 0;
        const unsigned char* p = der;
        X509* x                = d2i_X509(NULL, &p, (long)der_len);
        if (!x || p != der + der_len) {
            X509_free(x);
            free(der);
            return hard_error(d, path, "x509: malformed certificate");
        }
        X509_free(x);
        free(s->cert_der);
        s->cert_der     = der;
        s->cert_der_len = der_len;
        return 0;
    }
    if (!json_is_object(v))
        return hard_error(d, path, "json: cannot unmarshal %s into Go value of type %s",
                          json_kind(v), "x509.Certificate");
    s->cert_template = v; /* borrowed from the tree */
    json_t* na       = coord_json_field(v, "NotAfter");
    if (!na || json_is_null(na))
        return 0;
    struct pseg seg = {path, "NotAfter"};
    if (!json_is_string(na))
        return hard_error(d, &seg, "Time.UnmarshalJSON: input is not a JSON string");
    time_t t;
    bool zero;
    if (go_parse_rfc3339(json_string_value(na), &t, &zero) < 0)
        return hard_error(d, &seg, "parsing time \"\\\"%s\\\"\" as \"\\\"%s\\\"\": cannot parse",
                          json_string_value(na), "2006-01-02T15:04:05Z07:00");
    s->has_not_after = !zero;
    s->not_after     = t;
    return 0;
}

static const struct field secret_fields[] = {
    {"Type", dec_string, offsetof(struct coord_secret, type)},
    {"Size", dec_uint, offsetof(struct coord_secret, size)},
    {"Shared", dec_bool, offsetof(struct coord_secret, shared)},
    {"UserDefined", dec_bool, offsetof(struct coord_secret, user_defined)},
    {"Cert", dec_cert, offsetof(struct coord_secret, cert_template)},
    {"ValidFor", dec_uint, offsetof(struct coord_secret, valid_for)},
    {"Private", dec_bytes, offsetof(struct coord_secret, private_key)},
    {"Public", dec_bytes, offsetof(struct coord_secret, public_key)},
};
static const struct gostruct secret_struct = {"Secret", "manifest.Secret", secret_fields,
                                              ARRAY_SIZE(secret_fields)};
_Static_assert(offsetof(struct coord_secret, private_len) -
                       offsetof(struct coord_secret, private_key) ==
                   offsetof(struct bytes, len),
               "Private layout");
_Static_assert(offsetof(struct coord_secret, public_len) -
                       offsetof(struct coord_secret, public_key) ==
                   offsetof(struct bytes, len),
               "Public layout");

static int dec_secret(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_struct(d, v, e, &secret_struct, s, p);
}
static void secret_free(void* p) {
    struct coord_secret* s = p;
    free(s->name);
    free(s->type);
    free(s->cert_der);
    if (s->private_key)
        OPENSSL_cleanse(s->private_key, s->private_len);
    free(s->private_key);
    free(s->public_key);
}
static const struct gomap secrets_map = {"map[string]manifest.Secret", sizeof(struct coord_secret),
                                         dec_secret, secret_free};

/* ---------------------------------------------------------------------------------------- */
/* TLS (§1.5)                                                                                 */

static const struct field tls_entry_fields[] = {
    {"Port", dec_string, offsetof(struct coord_tls_entry, port)},
    {"Addr", dec_string, offsetof(struct coord_tls_entry, addr)},
    {"Cert", dec_string, offsetof(struct coord_tls_entry, cert)},
    {"DisableClientAuth", dec_bool, offsetof(struct coord_tls_entry, disable_client_auth)},
};
static const struct gostruct tls_entry_struct = {"TLSTagEntry", "manifest.TLSTagEntry",
                                                 tls_entry_fields, ARRAY_SIZE(tls_entry_fields)};

static void tls_entries_free(size_t n, struct coord_tls_entry* v) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].port);
        free(v[i].addr);
        free(v[i].cert);
    }
    free(v);
}

struct tls_entries {
    size_t n;
    struct coord_tls_entry* v;
};
static int dec_tls_entries(struct dec* d, json_t* v, void* target, const char* strct,
                           const struct pseg* path) {
    struct tls_entries* te = target;
    if (json_is_null(v) || json_is_array(v)) {
        tls_entries_free(te->n, te->v);
        *te = (struct tls_entries){0};
    }
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        type_error(d, json_kind(v), strct, path, "[]manifest.TLSTagEntry");
        return 0;
    }
    te->v = xcalloc(json_array_size(v) + 1, sizeof(*te->v));
    size_t i;
    json_t* e;
    json_array_foreach(v, i, e) {
        te->n++;
        int r = dec_struct(d, e, &te->v[i], &tls_entry_struct, strct, path);
        if (r < 0)
            return r;
    }
    return 0;
}
_Static_assert(offsetof(struct coord_tls_tag, outgoing) -
                       offsetof(struct coord_tls_tag, n_outgoing) ==
                   offsetof(struct tls_entries, v),
               "Outgoing layout");
_Static_assert(offsetof(struct coord_tls_tag, incoming) -
                       offsetof(struct coord_tls_tag, n_incoming) ==
                   offsetof(struct tls_entries, v),
               "Incoming layout");

static const struct field tls_tag_fields[] = {
    {"Outgoing", dec_tls_entries, offsetof(struct coord_tls_tag, n_outgoing)},
    {"Incoming", dec_tls_entries, offsetof(struct coord_tls_tag, n_incoming)},
};
static const struct gostruct tls_tag_struct = {"TLStag", "manifest.TLStag", tls_tag_fields,
                                               ARRAY_SIZE(tls_tag_fields)};
static int dec_tls_tag(struct dec* d, json_t* v, void* e, const char* s, const struct pseg* p) {
    return dec_struct(d, v, e, &tls_tag_struct, s, p);
}
static void tls_tag_free(void* p) {
    struct coord_tls_tag* t = p;
    free(t->name);
    tls_entries_free(t->n_outgoing, t->outgoing);
    tls_entries_free(t->n_incoming, t->incoming);
}
static const struct gomap tls_map = {"map[string]manifest.TLStag", sizeof(struct coord_tls_tag),
                                     dec_tls_tag, tls_tag_free};

/* ---------------------------------------------------------------------------------------- */
/* Config (§1.6) and the top level                                                            */

static const struct field config_fields[] = {
    {"SealMode", dec_string, offsetof(struct coord_config, seal_mode)},
    {"FeatureGates", dec_strv, offsetof(struct coord_config, feature_gates)},
    {"UpdateThreshold", dec_uint, offsetof(struct coord_config, update_threshold)},
    {"RecoveryThreshold", dec_uint, offsetof(struct coord_config, recovery_threshold)},
    {"RotateRootSecret", dec_bool, offsetof(struct coord_config, rotate_root_secret)},
};
static const struct gostruct config_struct = {"Config", "manifest.Config", config_fields,
                                              ARRAY_SIZE(config_fields)};
static int dec_config(struct dec* d, json_t* v, void* t, const char* s, const struct pseg* p) {
    return dec_struct(d, v, t, &config_struct, s, p);
}

#define MAP_DECODER(fn, gm)                                                                 \
    static int fn(struct dec* d, json_t* v, void* t, const char* s, const struct pseg* p) { \
        return dec_map(d, v, t, &gm, s, p);                                                 \
    }
MAP_DECODER(dec_packages, packages_map)
MAP_DECODER(dec_infras, infras_map)
MAP_DECODER(dec_marbles, marbles_map)
MAP_DECODER(dec_users, users_map)
MAP_DECODER(dec_secrets, secrets_map)
MAP_DECODER(dec_kvs, kv_map)
MAP_DECODER(dec_roles, roles_map)
MAP_DECODER(dec_tls, tls_map)

static const struct field manifest_fields[] = {
    {"Packages", dec_packages, offsetof(struct coord_manifest, n_packages)},
    {"Infrastructures", dec_infras, offsetof(struct coord_manifest, n_infrastructures)},
    {"Marbles", dec_marbles, offsetof(struct coord_manifest, n_marbles)},
    {"Users", dec_users, offsetof(struct coord_manifest, n_users)},
    {"Secrets", dec_secrets, offsetof(struct coord_manifest, n_secrets)},
    {"RecoveryKeys", dec_kvs, offsetof(struct coord_manifest, n_recovery_keys)},
    {"Roles", dec_roles, offsetof(struct coord_manifest, n_roles)},
    {"TLS", dec_tls, offsetof(struct coord_manifest, n_tls)},
    {"Config", dec_config, offsetof(struct coord_manifest, config)},
};
static const struct gostruct manifest_struct = {"Manifest", "manifest.Manifest", manifest_fields,
                                                ARRAY_SIZE(manifest_fields)};

/* Each (n_x, x) pair of struct coord_manifest is a struct garray. */
#define GARRAY_LAYOUT(count, arr)                                                        \
    _Static_assert(                                                                      \
        offsetof(struct coord_manifest, arr) - offsetof(struct coord_manifest, count) == \
            offsetof(struct garray, v),                                                  \
        #arr " layout")
GARRAY_LAYOUT(n_packages, packages);
GARRAY_LAYOUT(n_infrastructures, infrastructures);
GARRAY_LAYOUT(n_marbles, marbles);
GARRAY_LAYOUT(n_users, users);
GARRAY_LAYOUT(n_secrets, secrets);
GARRAY_LAYOUT(n_recovery_keys, recovery_keys);
GARRAY_LAYOUT(n_roles, roles);
GARRAY_LAYOUT(n_tls, tls);

/* ---------------------------------------------------------------------------------------- */

struct json_t* coord_json_field(struct json_t* obj, const char* name) {
    if (!json_is_object(obj))
        return NULL;
    json_t* found = NULL;
    const char* key;
    json_t* val;
    json_object_foreach(obj, key, val) {
        if (strcasecmp(key, name) == 0)
            found = val;
    }
    return found;
}

/* Absent strings read as "" everywhere; maps are sorted so lookups can bsearch. */
static void normalize(struct coord_manifest* m) {
#define EMPTY_IF_NULL(s) \
    if (!(s))            \
    (s) = xstrdup("")
    for (size_t i = 0; i < m->n_packages; i++) {
        EMPTY_IF_NULL(m->packages[i].unique_id);
        EMPTY_IF_NULL(m->packages[i].signer_id);
    }
    for (size_t i = 0; i < m->n_marbles; i++) {
        struct coord_marble* mb = &m->marbles[i];
        EMPTY_IF_NULL(mb->package);
        sort_by_name(mb->files.v, mb->files.n, sizeof(*mb->files.v));
        sort_by_name(mb->env.v, mb->env.n, sizeof(*mb->env.v));
    }
    for (size_t i = 0; i < m->n_users; i++)
        EMPTY_IF_NULL(m->users[i].certificate);
    for (size_t i = 0; i < m->n_roles; i++)
        EMPTY_IF_NULL(m->roles[i].resource_type);
    for (size_t i = 0; i < m->n_secrets; i++)
        EMPTY_IF_NULL(m->secrets[i].type);
    for (size_t i = 0; i < m->n_recovery_keys; i++)
        EMPTY_IF_NULL(m->recovery_keys[i].value);
    for (size_t i = 0; i < m->n_tls; i++) {
        struct coord_tls_tag* t = &m->tls[i];
        for (size_t j = 0; j < t->n_outgoing + t->n_incoming; j++) {
            struct coord_tls_entry* e =
                j < t->n_outgoing ? &t->outgoing[j] : &t->incoming[j - t->n_outgoing];
            EMPTY_IF_NULL(e->port);
            EMPTY_IF_NULL(e->addr);
            EMPTY_IF_NULL(e->cert);
        }
    }
    EMPTY_IF_NULL(m->config.seal_mode);
#undef EMPTY_IF_NULL
    sort_by_name(m->packages, m->n_packages, sizeof(*m->packages));
    sort_by_name(m->infrastructures, m->n_infrastructures, sizeof(*m->infrastructures));
    sort_by_name(m->marbles, m->n_marbles, sizeof(*m->marbles));
    sort_by_name(m->users, m->n_users, sizeof(*m->users));
    sort_by_name(m->secrets, m->n_secrets, sizeof(*m->secrets));
    sort_by_name(m->recovery_keys, m->n_recovery_keys, sizeof(*m->recovery_keys));
    sort_by_name(m->roles, m->n_roles, sizeof(*m->roles));
    sort_by_name(m->tls, m->n_tls, sizeof(*m->tls));
}

void coord_manifest_free(struct coord_manifest* m) {
    if (!m)
        return;
    static const struct {
        size_t off;
        const struct gomap* gm;
    } maps[] = {
        {offsetof(struct coord_manifest, n_packages), &packages_map},
        {offsetof(struct coord_manifest, n_infrastructures), &infras_map},
        {offsetof(struct coord_manifest, n_marbles), &marbles_map},
        {offsetof(struct coord_manifest, n_users), &users_map},
        {offsetof(struct coord_manifest, n_secrets), &secrets_map},
        {offsetof(struct coord_manifest, n_recovery_keys), &kv_map},
        {offsetof(struct coord_manifest, n_roles), &roles_map},
        {offsetof(struct coord_manifest, n_tls), &tls_map},
    };
    for (size_t i = 0; i < ARRAY_SIZE(maps); i++) {
        struct garray* a = (struct garray*)((char*)m + maps[i].off);
        for (size_t j = 0; j < a->n; j++)
            maps[i].gm->free_elem((char*)a->v + j * maps[i].gm->elem_size);
        free(a->v);
    }
    free(m->config.seal_mode);
    coord_strv_free(&m->config.feature_gates);
    json_decref(m->root);
    free(m->raw);
    free(m);
}

static bool only_space(const uint8_t* p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", p[i]) || p[i] == 0)
            return false;
    return true;
}

int coord_manifest_parse(const void* raw, size_t len, struct coord_manifest** ret_m,
                         struct moat_error* err) {
    if (only_space(raw, len)) /* Go's text for empty input */
        return moat_error_set(err, -EINVAL, "unexpected end of JSON input");
    json_error_t jerr;
    json_t* root = json_loadb(raw, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return moat_error_set(err, -EINVAL, "invalid JSON: %s at line %d column %d", jerr.text,
                              jerr.line, jerr.column);

    _cleanup_(coord_manifest_freep) struct coord_manifest* m = xcalloc(1, sizeof(*m));
    m->root                                                  = root;
    m->raw                                                   = xmalloc(len + 1);
    memcpy(m->raw, raw, len);
    m->raw[len] = 0;
    m->raw_len  = len;
    uint8_t digest[SHA256_DIGEST_SIZE];
    int r = sha256_buf(raw, len, digest);
    if (r < 0)
        return moat_error_set(err, r, "sha256 of the manifest failed");
    r = hex_encode(digest, sizeof(digest), m->fingerprint, sizeof(m->fingerprint));
    if (r < 0)
        return moat_error_set(err, r, "hex encoding failed");

    if (!json_is_object(root) && !json_is_null(root))
        return moat_error_set(err, -EINVAL, "json: cannot unmarshal %s into Go value of type %s",
                              json_kind(root), manifest_struct.gotype);
    struct dec d = {.err = err};
    r            = dec_struct(&d, root, m, &manifest_struct, "Manifest", NULL);
    if (r < 0)
        return r;
    if (d.has_soft)
        return moat_error_set(err, -EINVAL, "%s", d.soft.msg);
    normalize(m);
    *ret_m = TAKE_PTR(m);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Lookups                                                                                    */

static const void* find(const void* base, size_t n, size_t size, const char* name) {
    if (!name || n == 0)
        return NULL;
    return bsearch(&name, base, n, size, name_cmp);
}

#define FINDER(fn, type, arr)                                                 \
    const struct type* fn(const struct coord_manifest* m, const char* name) { \
        return find(m->arr, m->n_##arr, sizeof(*m->arr), name);               \
    }
FINDER(coord_manifest_package, coord_package, packages)
FINDER(coord_manifest_marble, coord_marble, marbles)
FINDER(coord_manifest_secret, coord_secret, secrets)
FINDER(coord_manifest_role, coord_role, roles)
FINDER(coord_manifest_tls, coord_tls_tag, tls)
FINDER(coord_manifest_user, coord_user, users)
