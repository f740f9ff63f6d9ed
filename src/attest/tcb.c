/* SPDX-License-Identifier: Apache-2.0 */
/* TCB info / enclave identity models and QVL's TCB level matching (reference/attestation.md
 * §2.2 steps 3-4, 7, 9-10; §2.4). JSON goes through jansson with duplicate keys rejected. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "tcb.h"

#define MAX_LEVELS     1024
#define MAX_ADVISORIES 256
#define MAX_MODULE_IDS 64

/* jansson >= 2.9 provides json_decrefp */
#define _cleanup_json_ _cleanup_(json_decrefp)

static const char* const g_status_names[] = {
    [TCB_UP_TO_DATE]                               = "UpToDate",
    [TCB_SW_HARDENING_NEEDED]                      = "SWHardeningNeeded",
    [TCB_CONFIGURATION_NEEDED]                     = "ConfigurationNeeded",
    [TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED]    = "ConfigurationAndSWHardeningNeeded",
    [TCB_OUT_OF_DATE]                              = "OutOfDate",
    [TCB_OUT_OF_DATE_CONFIGURATION_NEEDED]         = "OutOfDateConfigurationNeeded",
    [TCB_REVOKED]                                  = "Revoked",
    [TCB_TD_RELAUNCH_ADVISED]                      = "TDRelaunchAdvised",
    [TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED] = "TDRelaunchAdvisedConfigurationNeeded",
    [TCB_NOT_SUPPORTED]                            = "TcbNotSupported",
};

const char* tcb_status_name(enum tcb_status status) {
    if ((size_t)status >= ARRAY_SIZE(g_status_names))
        return "Unrecognized";
    return g_status_names[status];
}

int tcb_status_parse(const char* name, enum tcb_status* ret) {
    for (int s = TCB_UP_TO_DATE; s <= TCB_REVOKED; s++)
        if (strcmp(name, g_status_names[s]) == 0) {
            *ret = (enum tcb_status)s;
            return 0;
        }
    return -EINVAL;
}

static bool is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n decimal digits. */
static bool digits(const char* s, int n, int* ret) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

int iso8601_parse(const char* s, time_t* ret) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec;
    if (strlen(s) != 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec) ||
        s[19] != 'Z')
        return -EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
        d > mdays[mo - 1] + (mo == 2 && is_leap(y) ? 1 : 0) || h > 23 || mi > 59 || sec > 59)
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon  = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min  = mi,
                    .tm_sec  = sec};
    *ret         = timegm(&tm);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Field readers: `what` names the object in messages ("tcbInfo", "tcbLevels[2].tcb")         */

static int j_str(json_t* obj, const char* what, const char* key, const char** ret,
                 struct moat_error* err) {
    json_t* v = json_object_get(obj, key);
    if (!json_is_string(v))
        return moat_error_set(err, -EBADMSG, "%s: '%s' must be a string", what, key);
    *ret = json_string_value(v);
    return 0;
}

static int j_int(json_t* obj, const char* what, const char* key, int64_t min, int64_t max,
                 int64_t* ret, struct moat_error* err) {
    json_t* v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return moat_error_set(err, -EBADMSG, "%s: '%s' must be an integer in %lld..%lld", what, key,
                              (long long)min, (long long)max);
    *ret = json_integer_value(v);
    return 0;
}

static int j_hex(json_t* obj, const char* what, const char* key, uint8_t* out, size_t n,
                 struct moat_error* err) {
    const char* s = NULL;
    if (j_str(obj, what, key, &s, err) < 0 || strlen(s) != 2 * n ||
        hex_decode(s, 2 * n, out, n) != (int)n)
        return moat_error_set(err, -EBADMSG, "%s: '%s' must be %zu hex digits", what, key, 2 * n);
    return 0;
}

static int j_date(json_t* obj, const char* what, const char* key, time_t* ret,
                  struct moat_error* err) {
    const char* s = NULL;
    if (j_str(obj, what, key, &s, err) < 0 || iso8601_parse(s, ret) < 0)
        return moat_error_set(err, -EBADMSG, "%s: '%s' must be a date YYYY-MM-DDTHH:MM:SSZ", what,
                              key);
    return 0;
}

static int j_array(json_t* obj, const char* what, const char* key, size_t max, json_t** ret,
                   struct moat_error* err) {
    json_t* v = json_object_get(obj, key);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > max)
        return moat_error_set(err, -EBADMSG, "%s: '%s' must be a non-empty array (at most %zu)",
                              what, key, max);
    *ret = v;
    return 0;
}

static int load_object(const char* json, size_t len, const char* what, json_t** ret,
                       struct moat_error* err) {
    if (memchr(json, '\0', len)) /* the signed bytes and the parsed text must be the same */
        return moat_error_set(err, -EBADMSG, "%s: NUL byte in the JSON text", what);
    json_error_t jerr;
    json_t* root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return moat_error_set(err, -EBADMSG, "%s: invalid JSON at line %d: %s", what, jerr.line,
                              jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return moat_error_set(err, -EBADMSG, "%s: not a JSON object", what);
    }
    *ret = root;
    return 0;
}

static void advisories_free(struct tcb_advisories* a) {
    for (size_t i = 0; i < a->n; i++)
        free(a->ids[i]);
    free(a->ids);
}

/* Level fields shared by all level kinds: tcbDate, tcbStatus, advisoryIDs (optional). */
static int parse_level_common(json_t* lv, const char* what, bool isv_only, enum tcb_status* status,
                              char date[32], struct tcb_advisories* adv, struct moat_error* err) {
    const char *s = NULL, *d = NULL;
    time_t t = 0;
    if (j_str(lv, what, "tcbStatus", &s, err) < 0)
        return -EBADMSG;
    if (tcb_status_parse(s, status) < 0 || (isv_only && *status != TCB_UP_TO_DATE &&
                                            *status != TCB_OUT_OF_DATE && *status != TCB_REVOKED))
        return moat_error_set(err, -EBADMSG, "%s: unknown tcbStatus \"%s\"", what, s);
    if (j_date(lv, what, "tcbDate", &t, err) < 0 || j_str(lv, what, "tcbDate", &d, err) < 0)
        return -EBADMSG;
    snprintf(date, 32, "%s", d);
    json_t* ids = json_object_get(lv, "advisoryIDs");
    if (!ids)
        return 0;
    if (!json_is_array(ids) || json_array_size(ids) > MAX_ADVISORIES)
        return moat_error_set(err, -EBADMSG, "%s: 'advisoryIDs' must be an array", what);
    adv->ids = xcalloc(json_array_size(ids) + 1, sizeof(char*));
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_t* id = json_array_get(ids, i);
        if (!json_is_string(id))
            return moat_error_set(err, -EBADMSG, "%s: advisoryIDs[%zu] must be a string", what, i);
        adv->ids[adv->n++] = xstrdup(json_string_value(id));
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* TCB info                                                                                   */

/* v3 "sgxtcbcomponents" / "tdxtcbcomponents": 16 objects with an "svn" 0..255. */
static int parse_components(json_t* tcb, const char* what, const char* key, uint8_t out[16],
                            struct moat_error* err) {
    json_t* arr = json_object_get(tcb, key);
    if (!json_is_array(arr) || json_array_size(arr) != 16)
        return moat_error_set(err, -EBADMSG, "%s: '%s' must be an array of 16", what, key);
    for (size_t i = 0; i < 16; i++) {
        json_t* c   = json_array_get(arr, i);
        int64_t svn = 0;
        if (!json_is_object(c) || j_int(c, what, "svn", 0, 255, &svn, err) < 0)
            return moat_error_set(err, -EBADMSG, "%s: %s[%zu].svn must be an integer 0..255", what,
                                  key, i);
        out[i] = (uint8_t)svn;
    }
    return 0;
}

static int parse_tcb_level(const struct tcb_info* info, json_t* lv, size_t idx,
                           struct tcb_level* out, struct moat_error* err) {
    char what[64];
    snprintf(what, sizeof(what), "tcbInfo.tcbLevels[%zu]", idx);
    json_t* tcb = json_object_get(lv, "tcb");
    if (!json_is_object(lv) || !json_is_object(tcb))
        return moat_error_set(err, -EBADMSG, "%s: 'tcb' must be an object", what);
    int64_t v = 0;
    if (info->version == 2) { /* v2: tcb{sgxtcbcomp01svn … sgxtcbcomp16svn, pcesvn} */
        for (int i = 0; i < 16; i++) {
            char key[24];
            snprintf(key, sizeof(key), "sgxtcbcomp%02dsvn", i + 1);
            if (j_int(tcb, what, key, 0, 255, &v, err) < 0)
                return -EBADMSG;
            out->sgx_svn[i] = (uint8_t)v;
        }
    } else if (parse_components(tcb, what, "sgxtcbcomponents", out->sgx_svn, err) < 0 ||
               (info->id == TCB_INFO_TDX &&
                parse_components(tcb, what, "tdxtcbcomponents", out->tdx_svn, err) < 0)) {
        return -EBADMSG;
    }
    if (j_int(tcb, what, "pcesvn", 0, 65535, &v, err) < 0)
        return -EBADMSG;
    out->pcesvn = (uint16_t)v;
    return parse_level_common(lv, what, false, &out->status, out->tcb_date, &out->advisories, err);
}

/* QVL's set order: greater first by (SGX components, PCESVN, TDX components). */
static int level_cmp(const struct tcb_level* a, const struct tcb_level* b) {
    int c = memcmp(b->sgx_svn, a->sgx_svn, 16);
    if (c)
        return c;
    if (a->pcesvn != b->pcesvn)
        return a->pcesvn > b->pcesvn ? -1 : 1;
    return memcmp(b->tdx_svn, a->tdx_svn, 16);
}

/* Stable insertion sort, then drop repeats of a key (std::set keeps the first inserted). */
static void sort_levels(struct tcb_level* l, size_t* n) {
    for (size_t i = 1; i < *n; i++) {
        struct tcb_level x = l[i];
        size_t j           = i;
        for (; j > 0 && level_cmp(&l[j - 1], &x) > 0; j--)
            l[j] = l[j - 1];
        l[j] = x;
    }
    size_t out = 0;
    for (size_t i = 0; i < *n; i++) {
        if (out > 0 && level_cmp(&l[out - 1], &l[i]) == 0) {
            advisories_free(&l[i].advisories);
            continue;
        }
        l[out++] = l[i];
    }
    *n = out;
}

static void sort_isv_levels(struct isv_level* l, size_t n) {
    for (size_t i = 1; i < n; i++) {
        struct isv_level x = l[i];
        size_t j           = i;
        for (; j > 0 && l[j - 1].isvsvn < x.isvsvn; j--)
            l[j] = l[j - 1];
        l[j] = x;
    }
}

static int parse_isv_levels(json_t* obj, const char* what, struct isv_level** ret, size_t* ret_n,
                            struct moat_error* err) {
    json_t* arr = NULL;
    if (j_array(obj, what, "tcbLevels", MAX_LEVELS, &arr, err) < 0)
        return -EBADMSG;
    *ret   = xcalloc(json_array_size(arr), sizeof(**ret));
    *ret_n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char w[128];
        snprintf(w, sizeof(w), "%s.tcbLevels[%zu]", what, i);
        json_t* lv  = json_array_get(arr, i);
        json_t* tcb = json_object_get(lv, "tcb");
        int64_t svn = 0;
        if (!json_is_object(lv) || !json_is_object(tcb))
            return moat_error_set(err, -EBADMSG, "%s: 'tcb' must be an object", w);
        struct isv_level* l = &(*ret)[(*ret_n)++];
        if (j_int(tcb, w, "isvsvn", 0, 65535, &svn, err) < 0 ||
            parse_level_common(lv, w, true, &l->status, l->tcb_date, &l->advisories, err) < 0)
            return -EBADMSG;
        l->isvsvn = (uint16_t)svn;
    }
    sort_isv_levels(*ret, *ret_n);
    return 0;
}

static void isv_levels_free(struct isv_level* l, size_t n) {
    for (size_t i = 0; i < n; i++)
        advisories_free(&l[i].advisories);
    free(l);
}

static int parse_module(json_t* m, const char* what, bool with_id, struct tdx_module_identity* out,
                        struct moat_error* err) {
    if (!json_is_object(m))
        return moat_error_set(err, -EBADMSG, "%s must be an object", what);
    if (j_hex(m, what, "mrsigner", out->mrsigner, 48, err) < 0 ||
        j_hex(m, what, "attributes", out->attributes, 8, err) < 0 ||
        j_hex(m, what, "attributesMask", out->attributes_mask, 8, err) < 0)
        return -EBADMSG;
    if (!with_id)
        return 0;
    const char* id = NULL;
    if (j_str(m, what, "id", &id, err) < 0)
        return -EBADMSG;
    if (strlen(id) >= sizeof(out->id))
        return moat_error_set(err, -EBADMSG, "%s: 'id' is too long", what);
    snprintf(out->id, sizeof(out->id), "%s", id);
    return parse_isv_levels(m, what, &out->levels, &out->n_levels, err);
}

static int parse_tdx_modules(json_t* root, struct tcb_info* info, struct moat_error* err) {
    info->has_tdx_module = true;
    if (parse_module(json_object_get(root, "tdxModule"), "tcbInfo.tdxModule", false,
                     &info->tdx_module, err) < 0)
        return -EBADMSG;
    json_t* ids = json_object_get(root, "tdxModuleIdentities");
    if (!ids)
        return 0;
    if (!json_is_array(ids) || json_array_size(ids) > MAX_MODULE_IDS)
        return moat_error_set(err, -EBADMSG, "tcbInfo: 'tdxModuleIdentities' must be an array");
    info->module_ids = xcalloc(json_array_size(ids) + 1, sizeof(*info->module_ids));
    for (size_t i = 0; i < json_array_size(ids); i++) {
        char what[64];
        snprintf(what, sizeof(what), "tcbInfo.tdxModuleIdentities[%zu]", i);
        if (parse_module(json_array_get(ids, i), what, true,
                         &info->module_ids[info->n_module_ids++], err) < 0)
            return -EBADMSG;
    }
    return 0;
}

static int parse_tcb_header(json_t* root, struct tcb_info* info, struct moat_error* err) {
    int64_t v      = 0;
    const char* id = NULL;
    if (j_int(root, "tcbInfo", "version", 2, 3, &v, err) < 0)
        return -EBADMSG;
    info->version = (int)v;
    info->id      = TCB_INFO_SGX;
    if (info->version >= 3) {
        if (j_str(root, "tcbInfo", "id", &id, err) < 0)
            return -EBADMSG;
        if (strcmp(id, "SGX") != 0 && strcmp(id, "TDX") != 0)
            return moat_error_set(err, -EBADMSG, "tcbInfo: unknown id \"%s\"", id);
        info->id = strcmp(id, "TDX") == 0 ? TCB_INFO_TDX : TCB_INFO_SGX;
    }
    if (j_date(root, "tcbInfo", "issueDate", &info->issue_date, err) < 0 ||
        j_date(root, "tcbInfo", "nextUpdate", &info->next_update, err) < 0 ||
        j_hex(root, "tcbInfo", "fmspc", info->fmspc, 6, err) < 0 ||
        j_hex(root, "tcbInfo", "pceId", info->pceid, 2, err) < 0 ||
        j_int(root, "tcbInfo", "tcbType", 0, INT32_MAX, &info->tcb_type, err) < 0 ||
        j_int(root, "tcbInfo", "tcbEvaluationDataNumber", 0, UINT32_MAX,
              &info->tcb_evaluation_data_number, err) < 0)
        return -EBADMSG;
    return 0;
}

int tcb_info_parse(const char* json, size_t len, struct tcb_info** ret, struct moat_error* err) {
    _cleanup_json_ json_t* root = NULL;
    if (load_object(json, len, "tcbInfo", &root, err) < 0)
        return -EBADMSG;
    struct tcb_info* info _cleanup_(tcb_info_freep) = xcalloc(1, sizeof(*info));
    if (parse_tcb_header(root, info, err) < 0)
        return -EBADMSG;
    if (info->id == TCB_INFO_TDX && parse_tdx_modules(root, info, err) < 0)
        return -EBADMSG;
    json_t* arr = NULL;
    if (j_array(root, "tcbInfo", "tcbLevels", MAX_LEVELS, &arr, err) < 0)
        return -EBADMSG;
    info->levels = xcalloc(json_array_size(arr), sizeof(*info->levels));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (parse_tcb_level(info, json_array_get(arr, i), i, &info->levels[i], err) < 0) {
            info->n_levels = i + 1; /* free what the failed level holds */
            return -EBADMSG;
        }
        info->n_levels = i + 1;
    }
    sort_levels(info->levels, &info->n_levels);
    *ret = TAKE_PTR(info);
    return 0;
}

void tcb_info_free(struct tcb_info* info) {
    if (!info)
        return;
    for (size_t i = 0; i < info->n_levels; i++)
        advisories_free(&info->levels[i].advisories);
    free(info->levels);
    for (size_t i = 0; i < info->n_module_ids; i++)
        isv_levels_free(info->module_ids[i].levels, info->module_ids[i].n_levels);
    free(info->module_ids);
    free(info);
}

/* ---------------------------------------------------------------------------------------- */
/* Enclave identity                                                                           */

static int parse_qe_fields(json_t* root, struct qe_identity* qe, struct moat_error* err) {
    const char* w  = "enclaveIdentity";
    const char* id = NULL;
    int64_t v      = 0;
    if (j_str(root, w, "id", &id, err) < 0)
        return -EBADMSG;
    if (strlen(id) >= sizeof(qe->id))
        return moat_error_set(err, -EBADMSG, "%s: unknown id \"%.16s\"", w, id);
    snprintf(qe->id, sizeof(qe->id), "%s", id);
    if (j_int(root, w, "version", 2, 3, &v, err) < 0)
        return -EBADMSG;
    qe->version = (int)v;
    if (j_date(root, w, "issueDate", &qe->issue_date, err) < 0 ||
        j_date(root, w, "nextUpdate", &qe->next_update, err) < 0 ||
        j_int(root, w, "tcbEvaluationDataNumber", 0, UINT32_MAX, &qe->tcb_evaluation_data_number,
              err) < 0 ||
        j_hex(root, w, "miscselect", qe->miscselect, 4, err) < 0 ||
        j_hex(root, w, "miscselectMask", qe->miscselect_mask, 4, err) < 0 ||
        j_hex(root, w, "attributes", qe->attributes, 16, err) < 0 ||
        j_hex(root, w, "attributesMask", qe->attributes_mask, 16, err) < 0 ||
        j_hex(root, w, "mrsigner", qe->mrsigner, 32, err) < 0 ||
        j_int(root, w, "isvprodid", 0, 65535, &v, err) < 0)
        return -EBADMSG;
    qe->isvprodid = (uint16_t)v;
    return parse_isv_levels(root, w, &qe->levels, &qe->n_levels, err);
}

int qe_identity_parse(const char* json, size_t len, struct qe_identity** ret,
                      struct moat_error* err) {
    _cleanup_json_ json_t* root = NULL;
    if (load_object(json, len, "enclaveIdentity", &root, err) < 0)
        return -EBADMSG;
    struct qe_identity* qe _cleanup_(qe_identity_freep) = xcalloc(1, sizeof(*qe));
    if (parse_qe_fields(root, qe, err) < 0)
        return -EBADMSG;
    *ret = TAKE_PTR(qe);
    return 0;
}

void qe_identity_free(struct qe_identity* qe) {
    if (!qe)
        return;
    isv_levels_free(qe->levels, qe->n_levels);
    free(qe);
}

static bool masked_equal(const uint8_t* value, const uint8_t* mask, const uint8_t* want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((value[i] & mask[i]) != want[i])
            return false;
    return true;
}

/* First level with isvsvn <= svn (levels sorted highest first); NULL if none. */
static const struct isv_level* isv_level_for(const struct isv_level* l, size_t n, unsigned svn) {
    for (size_t i = 0; i < n; i++)
        if (svn >= l[i].isvsvn)
            return &l[i];
    return NULL;
}

int qe_identity_match(const struct qe_identity* qe, const char* expect_id,
                      const struct qe_report_fields* report, enum tcb_status* ret_status,
                      const struct isv_level** ret_level, struct moat_error* err) {
    if (expect_id && strcmp(qe->id, expect_id) != 0)
        return moat_error_set(err, -EKEYREJECTED,
                              "QE identity id is \"%s\", expected \"%s\" (QE_IDENTITY_MISMATCH)",
                              qe->id, expect_id);
    /* QVL 4.1.2.9.5-8; miscselect and attributes compared in report byte order (§2.2 step 7) */
    if (!masked_equal(report->miscselect, qe->miscselect_mask, qe->miscselect, 4))
        return moat_error_set(err, -EKEYREJECTED,
                              "QE report miscselect does not match the QE identity "
                              "(SGX_ENCLAVE_REPORT_MISCSELECT_MISMATCH)");
    if (!masked_equal(report->attributes, qe->attributes_mask, qe->attributes, 16))
        return moat_error_set(err, -EKEYREJECTED,
                              "QE report attributes do not match the QE identity "
                              "(SGX_ENCLAVE_REPORT_ATTRIBUTES_MISMATCH)");
    if (memcmp(report->mrsigner, qe->mrsigner, 32) != 0)
        return moat_error_set(err, -EKEYREJECTED,
                              "QE report mrsigner does not match the QE identity "
                              "(SGX_ENCLAVE_REPORT_MRSIGNER_MISMATCH)");
    if (report->isvprodid != qe->isvprodid)
        return moat_error_set(err, -EKEYREJECTED,
                              "QE report isvprodid %u is not %u "
                              "(SGX_ENCLAVE_REPORT_ISVPRODID_MISMATCH)",
                              report->isvprodid, qe->isvprodid);
    const struct isv_level* l = isv_level_for(qe->levels, qe->n_levels, report->isvsvn);
    *ret_status               = l ? l->status : TCB_NOT_SUPPORTED;
    *ret_level                = l;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Matching and convergence (QVL TcbLevelCheck.cpp, TdxModuleCheck.cpp, TDRelaunchCheck.cpp)  */

enum tcb_status tcb_converge(enum tcb_status level, enum tcb_status other) {
    if (other == TCB_OUT_OF_DATE) {
        if (level == TCB_UP_TO_DATE || level == TCB_SW_HARDENING_NEEDED)
            return TCB_OUT_OF_DATE;
        if (level == TCB_CONFIGURATION_NEEDED || level == TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED)
            return TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
    }
    if (other == TCB_REVOKED)
        return TCB_REVOKED;
    if (other == TCB_NOT_SUPPORTED)
        return TCB_NOT_SUPPORTED;
    return level;
}

static bool sgx_ge(const struct tcb_platform* p, const struct tcb_level* l) {
    for (size_t i = 0; i < 16; i++)
        if (p->sgx_svn[i] < l->sgx_svn[i])
            return false;
    return p->pcesvn >= l->pcesvn;
}

/* With a module version (tee_tcb_svn[1] > 0) the first two bytes are judged by the module. */
static bool tdx_ge(const struct tcb_platform* p, const struct tcb_level* l) {
    for (size_t i = p->tee_tcb_svn[1] > 0 ? 2 : 0; i < 16; i++)
        if (p->tee_tcb_svn[i] < l->tdx_svn[i])
            return false;
    return true;
}

/* matchTcbLevels: SGX level = first level the PCK meets; TDX level = first meeting both. */
static void match_levels(const struct tcb_info* info, const struct tcb_platform* p,
                         struct tcb_verdict* v) {
    for (size_t i = 0; i < info->n_levels; i++) {
        const struct tcb_level* l = &info->levels[i];
        if (!sgx_ge(p, l))
            continue;
        if (!v->sgx_level)
            v->sgx_level = l;
        if (!p->is_tdx)
            return;
        if (tdx_ge(p, l)) {
            v->tdx_level = l;
            return;
        }
    }
}

static const struct tdx_module_identity* find_module(const struct tcb_info* info, uint8_t version) {
    char want[8];
    snprintf(want, sizeof(want), "TDX_%02X", version);
    for (size_t i = 0; i < info->n_module_ids; i++)
        if (strcasecmp(info->module_ids[i].id, want) == 0)
            return &info->module_ids[i];
    return NULL;
}

/* §2.2 step 3 (QVL 4.1.2.4.9-10): id and FMSPC / PCE-ID, compared as bytes. */
static int check_tcb_info_applies(const struct tcb_info* info, const struct tcb_platform* p,
                                  struct moat_error* err) {
    if (p->is_tdx && (info->version < 3 || info->id != TCB_INFO_TDX))
        return moat_error_set(err, -EKEYREJECTED,
                              "TDX quote needs a TDX TCB info v3 (TCB_INFO_MISMATCH)");
    if (!p->is_tdx && info->id != TCB_INFO_SGX)
        return moat_error_set(err, -EKEYREJECTED,
                              "SGX quote with a TDX TCB info (TCB_INFO_MISMATCH)");
    if (memcmp(p->fmspc, info->fmspc, 6) != 0 || memcmp(p->pceid, info->pceid, 2) != 0)
        return moat_error_set(err, -EKEYREJECTED,
                              "PCK FMSPC/PCE-ID differ from the TCB info's (TCB_INFO_MISMATCH)");
    return 0;
}

/* §2.2 step 4 (QVL 4.1.2.4.11): the TD's SEAM signer and attributes against the module. */
static int check_module_identity(const struct tcb_info* info, const struct tcb_platform* p,
                                 struct moat_error* err) {
    const struct tdx_module_identity* m = NULL;
    if (p->tee_tcb_svn[1] > 0)
        m = find_module(info, p->tee_tcb_svn[1]);
    else if (info->has_tdx_module)
        m = &info->tdx_module;
    if (!m)
        return moat_error_set(err, -EKEYREJECTED,
                              "no TDX module identity TDX_%02X in the TCB info "
                              "(TDX_MODULE_MISMATCH)",
                              p->tee_tcb_svn[1]);
    if (memcmp(m->mrsigner, p->mr_signer_seam, 48) != 0 ||
        !masked_equal(p->seam_attributes, m->attributes_mask, m->attributes, 8))
        return moat_error_set(err, -EKEYREJECTED,
                              "mr_signer_seam/seam_attributes differ from the TDX module identity "
                              "(TDX_MODULE_MISMATCH)");
    return 0;
}

static bool config_needed(enum tcb_status s) {
    return s == TCB_CONFIGURATION_NEEDED || s == TCB_OUT_OF_DATE_CONFIGURATION_NEEDED ||
           s == TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED ||
           s == TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED;
}

/* QVL checkForRelaunch (TD report 1.5): an out-of-date TD whose tee_tcb_svn2 meets the newest
 * level would be up to date after a relaunch. */
static int check_relaunch(const struct tcb_info* info, const struct tcb_platform* p,
                          enum tcb_status sgx, enum tcb_status module, enum tcb_status qe,
                          enum tcb_status* tdx, struct moat_error* err) {
    if (qe == TCB_OUT_OF_DATE || qe == TCB_REVOKED || qe == TCB_NOT_SUPPORTED)
        return 0;
    if (sgx != TCB_UP_TO_DATE && sgx != TCB_SW_HARDENING_NEEDED &&
        sgx != TCB_CONFIGURATION_NEEDED && sgx != TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED)
        return 0;
    if ((*tdx != TCB_OUT_OF_DATE && *tdx != TCB_OUT_OF_DATE_CONFIGURATION_NEEDED) ||
        module != TCB_OUT_OF_DATE)
        return 0;
    const struct tcb_level* latest = &info->levels[0];
    const uint8_t* svn2            = p->tee_tcb_svn2;
    unsigned need0                 = latest->tdx_svn[0];
    if (svn2[1] != 0) {
        const struct tdx_module_identity* m2 = find_module(info, svn2[1]);
        if (!m2)
            return moat_error_set(err, -EKEYREJECTED,
                                  "no TDX module identity TDX_%02X for tee_tcb_svn2 "
                                  "(TDX_MODULE_MISMATCH)",
                                  svn2[1]);
        if (m2->n_levels == 0) {
            *tdx = TCB_NOT_SUPPORTED;
            return 0;
        }
        need0 = m2->levels[0].isvsvn;
    }
    if (svn2[0] >= need0 && svn2[2] >= latest->tdx_svn[2])
        *tdx = config_needed(sgx) || config_needed(*tdx)
                   ? TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
                   : TCB_TD_RELAUNCH_ADVISED;
    return 0;
}

/* QVL checkTdxModuleTcbStatus: the module ISVSVN (tee_tcb_svn[0]) against its identity. */
static enum tcb_status module_status(const struct tcb_info* info, const struct tcb_platform* p,
                                     const struct isv_level** ret_level) {
    *ret_level = NULL;
    if (p->quote_version > 3 && p->tee_tcb_svn[1] == 0)
        return TCB_UP_TO_DATE;
    const struct tdx_module_identity* m = find_module(info, p->tee_tcb_svn[1]);
    if (!m) /* excluded by check_module_identity */
        return TCB_NOT_SUPPORTED;
    *ret_level = isv_level_for(m->levels, m->n_levels, p->tee_tcb_svn[0]);
    return *ret_level ? (*ret_level)->status : TCB_NOT_SUPPORTED;
}

static void add_advisories(struct tcb_verdict* v, const struct tcb_advisories* a) {
    for (size_t i = 0; a && i < a->n; i++) {
        bool dup = false;
        for (size_t j = 0; j < v->n_advisories && !dup; j++)
            dup = strcmp(v->advisories[j], a->ids[i]) == 0;
        if (dup)
            continue;
        v->advisories = xrealloc(v->advisories, (v->n_advisories + 1) * sizeof(*v->advisories));
        v->advisories[v->n_advisories++] = a->ids[i];
    }
}

static int evaluate_tdx(const struct tcb_info* info, const struct tcb_platform* p,
                        enum tcb_status qe_status, struct tcb_verdict* v, struct moat_error* err) {
    if (!v->tdx_level) {
        v->status = TCB_NOT_SUPPORTED;
        return 0;
    }
    v->module_status = module_status(info, p, &v->module_level);
    if (v->module_status == TCB_NOT_SUPPORTED) {
        v->status = TCB_NOT_SUPPORTED;
        return 0;
    }
    enum tcb_status tdx = tcb_converge(v->tdx_level->status, v->module_status);
    if (tdx != TCB_REVOKED && p->has_tee_tcb_svn2) {
        int r =
            check_relaunch(info, p, v->sgx_level->status, v->module_status, qe_status, &tdx, err);
        if (r < 0)
            return r;
    }
    v->status = tdx == TCB_REVOKED ? tdx : tcb_converge(tdx, qe_status);
    return 0;
}

int tcb_evaluate(const struct tcb_info* info, const struct tcb_platform* platform,
                 enum tcb_status qe_status, const struct isv_level* qe_level,
                 struct tcb_verdict* ret, struct moat_error* err) {
    int r = check_tcb_info_applies(info, platform, err);
    if (r == 0 && platform->is_tdx)
        r = check_module_identity(info, platform, err);
    if (r < 0)
        return r;
    struct tcb_verdict v = {
        .status = TCB_NOT_SUPPORTED, .module_status = TCB_UP_TO_DATE, .qe_status = qe_status};
    match_levels(info, platform, &v);
    if (v.sgx_level && !platform->is_tdx)
        v.status = tcb_converge(v.sgx_level->status, qe_status);
    else if (v.sgx_level && (r = evaluate_tdx(info, platform, qe_status, &v, err)) < 0)
        return r;
    const struct tcb_level* deciding = platform->is_tdx ? v.tdx_level : v.sgx_level;
    if (deciding && v.status != TCB_NOT_SUPPORTED) {
        v.tcb_date = deciding->tcb_date;
        add_advisories(&v, &deciding->advisories);
        if (v.module_level)
            add_advisories(&v, &v.module_level->advisories);
        if (qe_level)
            add_advisories(&v, &qe_level->advisories);
    }
    *ret = v;
    return 0;
}

void tcb_verdict_clear(struct tcb_verdict* v) {
    free(v->advisories);
    v->advisories   = NULL;
    v->n_advisories = 0;
}
