/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Go text/template subset that MarbleRun uses for Marble Parameters (Files, Env values;
 * docs/gotemplate.md, reference/marblerun.md §2). Text with actions `{{ ... }}`, `{{-`/`-}}`
 * trimming, comments, pipelines of field chains, function calls, parenthesised pipelines and
 * string/number/bool literals; no control actions, no variables other than `$`.
 *
 * The data is an abstract tree built by the caller (structs, maps, secrets, byte strings), so
 * the Coordinator builds `.MarbleRun.*`, `.Secrets.<name>`, `.Previous.Secrets.<name>` and any
 * legacy aliases itself. Error texts are Go's and MarbleRun's ("template: data:1: function
 * \"foo\" not defined", "... error calling pem: secret does not exist").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Limits against hostile templates (parenthesis nesting, commands per pipeline, output). */
#define GOTEMPLATE_MAX_DEPTH    64
#define GOTEMPLATE_MAX_PIPELINE 64
#define GOTEMPLATE_MAX_TEXT     (1u << 20)  /* template source bytes */
#define GOTEMPLATE_MAX_OUTPUT   (16u << 20) /* default output limit */

/* MarbleRun's two function maps (coordinator/manifest: ManifestFileTemplateFuncMap and
 * ManifestEnvTemplateFuncMap). Files: pem hex raw base64. Env: pem hex string base64. */
enum gotemplate_funcs {
    GOTEMPLATE_FUNCS_FILES,
    GOTEMPLATE_FUNCS_ENV,
};

/* ---------------------------------------------------------------------------------------- */
/* Data model. Values are reference counted so one subtree may sit under two keys (the legacy  */
/* `.Marblerun` alias of `.MarbleRun`). Constructors never return NULL (abort on OOM).         */

struct gotemplate_value;

/* A Go struct: a missing field is Go's "can't evaluate field X in type <go_type>". */
struct gotemplate_value* gotemplate_struct_new(const char* go_type);
/* A Go map[string]T: a missing key is "no value" (nil to the functions: "secret does not
 * exist"; printed as "<no value>"). */
struct gotemplate_value* gotemplate_map_new(const char* go_type);
/* A Go []byte leaf (type "[]uint8"). Bytes are copied and wiped on free. */
struct gotemplate_value* gotemplate_bytes_new(const void* data, size_t len);
/* A Go string leaf of the given type name ("string" when NULL). */
struct gotemplate_value* gotemplate_string_new(const char* s, const char* go_type);

/* A MarbleRun manifest.Secret: fields Cert (manifest.Certificate, with .Raw), Private
 * (manifest.PrivateKey), Public (manifest.PublicKey) and Type. Any part may be empty; the
 * functions then fail with "tried to parse secret with empty value". For symmetric-key and
 * plain secrets MarbleRun sets Public == Private == the key. Bytes are copied. */
struct gotemplate_secret {
    const char* type; /* "cert-ecdsa", "symmetric-key", "plain", ... */
    const void* cert; /* DER */
    size_t cert_len;
    const void* private_key;
    size_t private_len;
    const void* public_key;
    size_t public_len;
};
struct gotemplate_value* gotemplate_secret_new(const struct gotemplate_secret* secret);

/* Sets obj[key] = val (struct or map; replaces an existing key). Takes over the caller's
 * reference to val, also on failure. -EINVAL if obj is not a struct or map or key is empty. */
int gotemplate_set(struct gotemplate_value* obj, const char* key,
                   struct gotemplate_value* val) WARN_UNUSED;
struct gotemplate_value* gotemplate_value_ref(struct gotemplate_value* v);
/* Drops a reference; the last one wipes and frees the value and its children. NULL is fine. */
void gotemplate_value_unref(struct gotemplate_value* v);
static inline void gotemplate_value_unrefp(struct gotemplate_value** v) {
    gotemplate_value_unref(*v);
}
#define _cleanup_gotemplate_value_ _cleanup_(gotemplate_value_unrefp)

/* ---------------------------------------------------------------------------------------- */
/* Templates                                                                                  */

struct gotemplate;

/* Parses `text` (len bytes, may contain NULs) as template `name` (MarbleRun uses "data") for
 * the given function set. This is the "parse only" check: syntax errors and undefined
 * functions are found here, as Go's Parse finds them. Returns 0 and a template to free with
 * gotemplate_free(), or -EINVAL (syntax), -E2BIG (text over GOTEMPLATE_MAX_TEXT) with err
 * set to "template: NAME:LINE: message". */
int gotemplate_parse(const char* name, const char* text, size_t len, enum gotemplate_funcs funcs,
                     struct gotemplate** ret_tmpl, struct moat_error* err) WARN_UNUSED;
void gotemplate_free(struct gotemplate* tmpl);
static inline void gotemplate_freep(struct gotemplate** t) {
    gotemplate_free(*t);
}
#define _cleanup_gotemplate_ _cleanup_(gotemplate_freep)

/* Executes a parsed template against `data` (the root `.`). The output is bytes (files may be
 * binary), malloc'd with a NUL after ret_len bytes for convenience; the caller frees it (and
 * should wipe it: it holds secrets). max_output == 0 means GOTEMPLATE_MAX_OUTPUT. Returns 0,
 * or -EINVAL with err set to Go's "template: NAME:LINE:COL: executing \"NAME\" at <...>: ..."
 * or -EFBIG when the output would exceed max_output. Nothing is written on failure. */
int gotemplate_execute(const struct gotemplate* tmpl, const struct gotemplate_value* data,
                       size_t max_output, uint8_t** ret_out, size_t* ret_len,
                       struct moat_error* err) WARN_UNUSED;

/* Parse and execute in one call (MarbleRun's parseSecrets / checkTemplate). */
int gotemplate_render(const char* name, const char* text, size_t len, enum gotemplate_funcs funcs,
                      const struct gotemplate_value* data, uint8_t** ret_out, size_t* ret_len,
                      struct moat_error* err) WARN_UNUSED;
