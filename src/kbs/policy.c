/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key-transfer policies (attestation.md §4.3): parsed once into struct kbs_policy, matched
 * against a verified token's claims (§4.2 ITA v1 names).
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "kbs.h"

const char* kbs_tee_name(enum kbs_tee tee) {
    return tee == KBS_TEE_TDX ? "TDX" : "SGX";
}

static void strv_clear(struct kbs_strv* s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    *s = (struct kbs_strv){0};
}

void kbs_policy_clear(struct kbs_policy* p) {
    if (!p)
        return;
    strv_clear(&p->policy_ids);
    strv_clear(&p->mrsigner);
    strv_clear(&p->mrenclave);
    strv_clear(&p->mrsignerseam);
    strv_clear(&p->mrseam);
    strv_clear(&p->mrtd);
    for (size_t i = 0; i < 4; i++)
        strv_clear(&p->rtmr[i]);
    free(p->isvprodid);
    *p = (struct kbs_policy){0};
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing                                                                                      */

/* A list of hex strings of exactly `bytes` bytes, lowercased. */
static int parse_hex_list(const json_t* j, const char* key, size_t bytes, struct kbs_strv* ret,
                          struct moat_error* err) {
    if (!json_is_array(j) || json_array_size(j) > KBS_MAX_LIST)
        return moat_error_set(err, -EINVAL, "'%s' must be an array of hex strings", key);
    size_t i;
    json_t* v;
    ret->v = xcalloc(json_array_size(j) + 1, sizeof(char*));
    json_array_foreach(j, i, v) {
        const char* s = json_string_value(v);
        if (!s || strlen(s) != bytes * 2)
            return moat_error_set(err, -EINVAL, "'%s'[%zu] must be %zu hex digits", key, i,
                                  bytes * 2);
        char* d = xstrdup(s);
        for (char* c = d; *c; c++) {
            if (hex_digit_value(*c) < 0) {
                free(d);
                return moat_error_set(err, -EINVAL, "'%s'[%zu] is not hex", key, i);
            }
            *c = (char)tolower((unsigned char)*c);
        }
        ret->v[ret->n++] = d;
    }
    return 0;
}

static int parse_u16(const json_t* j, const char* key, uint16_t* ret, struct moat_error* err) {
    if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 0xffff)
        return moat_error_set(err, -EINVAL, "'%s' must be an integer 0..65535", key);
    *ret = (uint16_t)json_integer_value(j);
    return 0;
}

static int parse_policy_ids(const json_t* j, struct kbs_strv* ret, struct moat_error* err) {
    if (!json_is_array(j) || json_array_size(j) > KBS_MAX_LIST)
        return moat_error_set(err, -EINVAL, "'policy_ids' must be an array of UUIDs");
    size_t i;
    json_t* v;
    ret->v = xcalloc(json_array_size(j) + 1, sizeof(char*));
    json_array_foreach(j, i, v) {
        uint8_t u[16];
        if (!json_is_string(v) || moat_uuid_parse(json_string_value(v), u, NULL) < 0)
            return moat_error_set(err, -EINVAL, "'policy_ids'[%zu] is not a UUID", i);
        char s[MOAT_UUID_STR_SIZE];
        moat_uuid_format(u, s);
        ret->v[ret->n++] = xstrdup(s);
    }
    return 0;
}

static int parse_sgx_attr(const char* k, const json_t* v, struct kbs_policy* p,
                          struct moat_error* err) {
    if (strcmp(k, "mrsigner") == 0)
        return parse_hex_list(v, k, 32, &p->mrsigner, err);
    if (strcmp(k, "mrenclave") == 0)
        return parse_hex_list(v, k, 32, &p->mrenclave, err);
    if (strcmp(k, "isvsvn") == 0) {
        p->has_isvsvn = true;
        return parse_u16(v, k, &p->isvsvn, err);
    }
    if (strcmp(k, "isvprodid") == 0) {
        if (!json_is_array(v) || json_array_size(v) > KBS_MAX_LIST)
            return moat_error_set(err, -EINVAL, "'isvprodid' must be an array of integers");
        p->isvprodid = xcalloc(json_array_size(v) + 1, sizeof(uint16_t));
        for (size_t i = 0; i < json_array_size(v); i++) {
            int r = parse_u16(json_array_get(v, i), k, &p->isvprodid[p->n_isvprodid], err);
            if (r < 0)
                return r;
            p->n_isvprodid++;
        }
        return 0;
    }
    return 1;
}

static int parse_tdx_attr(const char* k, const json_t* v, struct kbs_policy* p,
                          struct moat_error* err) {
    static const char* const rtmr[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
    if (strcmp(k, "mrsignerseam") == 0)
        return parse_hex_list(v, k, 48, &p->mrsignerseam, err);
    if (strcmp(k, "mrseam") == 0)
        return parse_hex_list(v, k, 48, &p->mrseam, err);
    if (strcmp(k, "mrtd") == 0)
        return parse_hex_list(v, k, 48, &p->mrtd, err);
    if (strcmp(k, "seamsvn") == 0) {
        p->has_seamsvn = true;
        return parse_u16(v, k, &p->seamsvn, err);
    }
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(k, rtmr[i]) != 0)
            continue;
        /* upstream writes one RTMR as a string; a list of allowed values is accepted too */
        if (json_is_string(v)) {
            json_t* a = json_pack("[O]", v);
            int r     = parse_hex_list(a, k, 48, &p->rtmr[i], err);
            json_decref(a);
            return r;
        }
        return parse_hex_list(v, k, 48, &p->rtmr[i], err);
    }
    return 1;
}

static int parse_tee_type(const json_t* t, enum kbs_tee* ret, struct moat_error* err) {
    if (json_is_array(t) && json_array_size(t) == 1)
        t = json_array_get(t, 0);
    const char* s = json_string_value(t);
    if (s && strcasecmp(s, "SGX") == 0)
        *ret = KBS_TEE_SGX;
    else if (s && strcasecmp(s, "TDX") == 0)
        *ret = KBS_TEE_TDX;
    else
        return moat_error_set(err, -EINVAL, "'attestation_type' must be \"SGX\" or \"TDX\"");
    return 0;
}

static int parse_section(const json_t* sec, const char* name, struct kbs_policy* p,
                         struct moat_error* err) {
    if (!json_is_object(sec))
        return moat_error_set(err, -EINVAL, "'%s' must be an object", name);
    const char* k;
    json_t* v;
    bool any = false;
    json_object_foreach((json_t*)sec, k, v) {
        int r;
        if (strcmp(k, "policy_ids") == 0) {
            if ((r = parse_policy_ids(v, &p->policy_ids, err)) < 0)
                return r;
            any = any || p->policy_ids.n > 0;
        } else if (strcmp(k, "attributes") == 0) {
            if (!json_is_object(v))
                return moat_error_set(err, -EINVAL, "'%s.attributes' must be an object", name);
            const char* ak;
            json_t* av;
            any           = true;
            p->attributes = true;
            json_object_foreach(v, ak, av) {
                if (strcmp(ak, "enforce_tcb_upto_date") == 0) {
                    if (!json_is_boolean(av))
                        return moat_error_set(err, -EINVAL,
                                              "'enforce_tcb_upto_date' must be a boolean");
                    p->enforce_tcb_upto_date = json_is_true(av);
                    continue;
                }
                r = p->tee == KBS_TEE_SGX ? parse_sgx_attr(ak, av, p, err)
                                          : parse_tdx_attr(ak, av, p, err);
                if (r < 0)
                    return r;
                if (r > 0)
                    return moat_error_set(err, -EINVAL, "unknown attribute '%s.attributes.%s'",
                                          name, ak);
            }
        } else {
            return moat_error_set(err, -EINVAL, "unknown key '%s.%s'", name, k);
        }
    }
    if (!any)
        return moat_error_set(err, -EINVAL, "'%s' needs 'attributes' or 'policy_ids'", name);
    return 0;
}

int kbs_policy_parse(const json_t* j, struct kbs_policy* ret, struct moat_error* err) {
    struct kbs_policy p = {0};
    int r;
    if (!json_is_object(j))
        return moat_error_set(err, -EINVAL, "a key-transfer policy must be a JSON object");
    if ((r = parse_tee_type(json_object_get(j, "attestation_type"), &p.tee, err)) < 0)
        return r;
    const char* name  = p.tee == KBS_TEE_SGX ? "sgx" : "tdx";
    const char* other = p.tee == KBS_TEE_SGX ? "tdx" : "sgx";
    const char* k;
    json_t* v;
    json_object_foreach((json_t*)j, k, v) {
        if (strcmp(k, "attestation_type") == 0 || strcmp(k, name) == 0 || strcmp(k, "id") == 0 ||
            (strcmp(k, other) == 0 && json_is_null(v)))
            continue;
        return moat_error_set(err, -EINVAL, "unexpected key '%s' in a %s policy", k,
                              kbs_tee_name(p.tee));
    }
    const json_t* sec = json_object_get(j, name);
    if (!sec)
        return moat_error_set(err, -EINVAL, "a %s policy needs '%s'", kbs_tee_name(p.tee), name);
    if ((r = parse_section(sec, name, &p, err)) < 0) {
        kbs_policy_clear(&p);
        return r;
    }
    *ret = p;
    return 0;
}

static json_t* strv_json(const struct kbs_strv* s) {
    json_t* a = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(a, json_string(s->v[i]));
    return a;
}

json_t* kbs_policy_to_json(const struct kbs_policy* p) {
    json_t* attr = json_pack("{s:b}", "enforce_tcb_upto_date", p->enforce_tcb_upto_date);
    if (p->tee == KBS_TEE_SGX) {
        json_object_set_new(attr, "mrsigner", strv_json(&p->mrsigner));
        json_object_set_new(attr, "mrenclave", strv_json(&p->mrenclave));
        json_t* ids = json_array();
        for (size_t i = 0; i < p->n_isvprodid; i++)
            json_array_append_new(ids, json_integer(p->isvprodid[i]));
        json_object_set_new(attr, "isvprodid", ids);
        if (p->has_isvsvn)
            json_object_set_new(attr, "isvsvn", json_integer(p->isvsvn));
    } else {
        json_object_set_new(attr, "mrsignerseam", strv_json(&p->mrsignerseam));
        json_object_set_new(attr, "mrseam", strv_json(&p->mrseam));
        json_object_set_new(attr, "mrtd", strv_json(&p->mrtd));
        static const char* const rtmr[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
        for (size_t i = 0; i < 4; i++)
            if (p->rtmr[i].n)
                json_object_set_new(attr, rtmr[i], strv_json(&p->rtmr[i]));
        if (p->has_seamsvn)
            json_object_set_new(attr, "seamsvn", json_integer(p->seamsvn));
    }
    json_t* sec = json_pack("{s:o}", "policy_ids", strv_json(&p->policy_ids));
    if (p->attributes)
        json_object_set_new(sec, "attributes", attr);
    else
        json_decref(attr);
    return json_pack("{s:s, s:o}", "attestation_type", kbs_tee_name(p->tee),
                     p->tee == KBS_TEE_SGX ? "sgx" : "tdx", sec);
}

/* ------------------------------------------------------------------------------------------ */
/* Matching                                                                                     */

/* An empty list takes any value; otherwise the claim (hex, any case) must be in it. */
static int match_hex(const struct kbs_strv* allowed, const json_t* claims, const char* claim,
                     struct moat_error* err) {
    if (allowed->n == 0)
        return 0;
    const char* v = json_string_value(json_object_get(claims, claim));
    if (!v)
        return moat_error_set(err, -EINVAL, "the token has no '%s' claim", claim);
    for (size_t i = 0; i < allowed->n; i++)
        if (strcasecmp(allowed->v[i], v) == 0)
            return 0;
    return moat_error_set(err, -EPERM, "'%s' %s is not allowed by the key's transfer policy", claim,
                          v);
}

static int claim_int(const json_t* claims, const char* claim, json_int_t* ret,
                     struct moat_error* err) {
    const json_t* v = json_object_get(claims, claim);
    if (!json_is_integer(v))
        return moat_error_set(err, -EINVAL, "the token has no integer '%s' claim", claim);
    *ret = json_integer_value(v);
    return 0;
}

static int match_min(bool has, uint16_t min, const json_t* claims, const char* claim,
                     struct moat_error* err) {
    json_int_t v = 0;
    if (!has)
        return 0;
    int r = claim_int(claims, claim, &v, err);
    if (r < 0)
        return r;
    if (v < min)
        return moat_error_set(err, -EPERM, "'%s' %lld is below the policy's minimum %u", claim,
                              (long long)v, min);
    return 0;
}

static int match_sgx(const struct kbs_policy* p, const json_t* claims, struct moat_error* err) {
    int r;
    if ((r = match_hex(&p->mrsigner, claims, "sgx_mrsigner", err)) < 0 ||
        (r = match_hex(&p->mrenclave, claims, "sgx_mrenclave", err)) < 0 ||
        (r = match_min(p->has_isvsvn, p->isvsvn, claims, "sgx_isvsvn", err)) < 0)
        return r;
    if (p->n_isvprodid == 0)
        return 0;
    json_int_t id = 0;
    if ((r = claim_int(claims, "sgx_isvprodid", &id, err)) < 0)
        return r;
    for (size_t i = 0; i < p->n_isvprodid; i++)
        if (p->isvprodid[i] == id)
            return 0;
    return moat_error_set(err, -EPERM,
                          "'sgx_isvprodid' %lld is not allowed by the key's transfer policy",
                          (long long)id);
}

static int match_tdx(const struct kbs_policy* p, const json_t* claims, struct moat_error* err) {
    static const char* const rtmr[4] = {"tdx_rtmr0", "tdx_rtmr1", "tdx_rtmr2", "tdx_rtmr3"};
    int r;
    if ((r = match_hex(&p->mrsignerseam, claims, "tdx_mrsignerseam", err)) < 0 ||
        (r = match_hex(&p->mrseam, claims, "tdx_mrseam", err)) < 0 ||
        (r = match_hex(&p->mrtd, claims, "tdx_mrtd", err)) < 0 ||
        (r = match_min(p->has_seamsvn, p->seamsvn, claims, "tdx_seamsvn", err)) < 0)
        return r;
    for (size_t i = 0; i < 4; i++)
        if ((r = match_hex(&p->rtmr[i], claims, rtmr[i], err)) < 0)
            return r;
    return 0;
}

/* §4.3: "If the token has policy_ids_matched and the policy lists policy_ids, one match
 * suffices." */
static bool policy_id_matched(const struct kbs_policy* p, const json_t* claims) {
    const json_t* m = json_object_get(claims, "policy_ids_matched");
    size_t i;
    json_t* e;
    if (p->policy_ids.n == 0 || !json_is_array(m))
        return false;
    json_array_foreach(m, i, e) {
        const char* id = json_string_value(json_is_object(e) ? json_object_get(e, "id") : e);
        uint8_t u[16];
        char s[MOAT_UUID_STR_SIZE];
        if (!id || moat_uuid_parse(id, u, NULL) < 0)
            continue;
        moat_uuid_format(u, s);
        for (size_t k = 0; k < p->policy_ids.n; k++)
            if (strcmp(p->policy_ids.v[k], s) == 0)
                return true;
    }
    return false;
}

int kbs_policy_match(const struct kbs_policy* p, const json_t* claims, struct moat_error* err) {
    const char* type = json_string_value(json_object_get(claims, "attester_type"));
    if (!type)
        return moat_error_set(err, -EINVAL, "the token has no 'attester_type' claim");
    if (strcmp(type, kbs_tee_name(p->tee)) != 0)
        return moat_error_set(err, -EPERM,
                              "'attester_type' %s does not match the key's transfer policy (%s)",
                              type, kbs_tee_name(p->tee));
    if (policy_id_matched(p, claims))
        return 0;
    if (!p->attributes)
        return moat_error_set(err, -EPERM,
                              "no policy id of the key's transfer policy is in the token's "
                              "'policy_ids_matched'");
    int r = p->tee == KBS_TEE_SGX ? match_sgx(p, claims, err) : match_tdx(p, claims, err);
    if (r < 0)
        return r;
    if (p->enforce_tcb_upto_date) {
        const char* st = json_string_value(json_object_get(claims, "attester_tcb_status"));
        if (!st || strcmp(st, "UpToDate") != 0)
            return moat_error_set(err, -EPERM,
                                  "'attester_tcb_status' is %s, the key's transfer policy "
                                  "enforces UpToDate",
                                  st ? st : "missing");
    }
    return 0;
}
