/* SPDX-License-Identifier: Apache-2.0 */
/* MarbleRun's coordinator-era.json (marblerun.h; reference/marblerun.md §7 --era-config). */
#include <errno.h>
#include <string.h>

#include "marblerun.h"

/* A 32-byte hex identity; "" leaves it unset (Go's zero value). */
static int era_hex(json_t* root, const char* name, uint8_t out[32], bool* ret_set,
                   struct moat_error* err) {
    json_t* v = json_object_get(root, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return moat_error_set(err, -EINVAL, "'%s' must be a hex string", name);
    size_t len = json_string_length(v);
    if (len == 0)
        return 0;
    if (len != 64 || hex_decode(json_string_value(v), len, out, 32) < 0)
        return moat_error_set(err, -EINVAL, "'%s' = \"%s\" is not 32 bytes of hex", name,
                              json_string_value(v));
    *ret_set = true;
    return 0;
}

/* An unsigned integer (Go's uint64 from a JSON number). */
static int era_uint(json_t* root, const char* name, uint64_t* out, bool* ret_set,
                    struct moat_error* err) {
    json_t* v = json_object_get(root, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return moat_error_set(err, -EINVAL, "'%s' must be a non-negative integer", name);
    *out     = (uint64_t)json_integer_value(v);
    *ret_set = true;
    return 0;
}

int mr_era_parse(const char* text, size_t len, struct mr_era* ret, struct moat_error* err) {
    json_error_t jerr;
    json_t* root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return moat_error_set(err, -EINVAL, "not JSON: line %d: %s", jerr.line, jerr.text);
    struct mr_era e = {0};
    int r           = 0;
    if (!json_is_object(root))
        r = moat_error_set(err, -EINVAL, "must be a JSON object");
    r = r ?: era_hex(root, "UniqueID", e.unique_id, &e.has_unique_id, err);
    r = r ?: era_hex(root, "SignerID", e.signer_id, &e.has_signer_id, err);
    r = r ?: era_uint(root, "ProductID", &e.product_id, &e.has_product_id, err);
    r = r ?: era_uint(root, "SecurityVersion", &e.security_version, &e.has_security_version, err);
    if (r == 0) {
        json_t* d = json_object_get(root, "Debug");
        if (d && !json_is_null(d) && !json_is_boolean(d))
            r = moat_error_set(err, -EINVAL, "'Debug' must be true or false");
        e.debug = d && json_is_true(d);
    }
    json_decref(root);
    if (r == 0 && !e.has_unique_id && !e.has_signer_id)
        r = moat_error_set(err, -EINVAL,
                           "neither 'UniqueID' nor 'SignerID' is set: nothing would be checked "
                           "of the Coordinator's code");
    if (r == 0 && e.has_signer_id && !e.has_unique_id &&
        (!e.has_product_id || !e.has_security_version))
        r = moat_error_set(err, -EINVAL,
                           "'SignerID' without 'UniqueID' needs 'ProductID' and "
                           "'SecurityVersion' (as a MarbleRun package does)");
    if (r == 0)
        *ret = e;
    return r;
}

int mr_era_load(const char* path, struct mr_era* ret, struct moat_error* err) {
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    int r                     = read_file(path, &text, &len, err);
    if (r < 0)
        return r;
    r = mr_era_parse(text, len, ret, err);
    return r < 0 ? moat_error_prefix(err, "era config '%s'", path) : 0;
}
