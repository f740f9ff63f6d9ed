/* SPDX-License-Identifier: Apache-2.0 */
/* The TOML value tree: construction, lookup, dotted paths (Gramine's toml_utils semantics),
 * deep copy and equality. */
#include <math.h>
#include <string.h>

#include "toml.h"

static struct toml_value* value_new(enum toml_type type) {
    struct toml_value* v = xcalloc(1, sizeof(*v));
    v->type              = type;
    return v;
}

struct toml_value* toml_new_table(void) {
    return value_new(TOML_TABLE);
}

struct toml_value* toml_new_array(void) {
    return value_new(TOML_ARRAY);
}

struct toml_value* toml_new_stringn(const char* s, size_t len) {
    struct toml_value* v = value_new(TOML_STRING);
    v->u.str.ptr         = xmalloc(len + 1);
    memcpy(v->u.str.ptr, s, len);
    v->u.str.ptr[len] = '\0';
    v->u.str.len      = len;
    return v;
}

struct toml_value* toml_new_string(const char* s) {
    return toml_new_stringn(s, strlen(s));
}

struct toml_value* toml_new_integer(int64_t i) {
    struct toml_value* v = value_new(TOML_INTEGER);
    v->u.integer         = i;
    return v;
}

struct toml_value* toml_new_float(double f) {
    struct toml_value* v = value_new(TOML_FLOAT);
    v->u.fp              = f;
    return v;
}

struct toml_value* toml_new_bool(bool b) {
    struct toml_value* v = value_new(TOML_BOOL);
    v->u.boolean         = b;
    return v;
}

void toml_free(struct toml_value* v) {
    if (!v)
        return;
    switch (v->type) {
        case TOML_TABLE:
            for (size_t i = 0; i < v->u.tab.len; i++) {
                free(v->u.tab.items[i].key);
                toml_free(v->u.tab.items[i].value);
            }
            free(v->u.tab.items);
            break;
        case TOML_ARRAY:
            for (size_t i = 0; i < v->u.arr.len; i++)
                toml_free(v->u.arr.items[i]);
            free(v->u.arr.items);
            break;
        case TOML_STRING:
            free(v->u.str.ptr);
            break;
        default:
            break;
    }
    free(v);
}

struct toml_value* toml_clone(const struct toml_value* v) {
    if (!v)
        return NULL;
    struct toml_value* c = xmalloc(sizeof(*c));
    *c                   = *v;
    switch (v->type) {
        case TOML_TABLE:
            c->u.tab.items = xcalloc(v->u.tab.len ? v->u.tab.len : 1, sizeof(struct toml_kv));
            c->u.tab.cap   = v->u.tab.len;
            for (size_t i = 0; i < v->u.tab.len; i++) {
                c->u.tab.items[i]     = v->u.tab.items[i];
                c->u.tab.items[i].key = xmalloc(v->u.tab.items[i].key_len + 1);
                memcpy(c->u.tab.items[i].key, v->u.tab.items[i].key, v->u.tab.items[i].key_len + 1);
                c->u.tab.items[i].value = toml_clone(v->u.tab.items[i].value);
            }
            break;
        case TOML_ARRAY:
            c->u.arr.items = xcalloc(v->u.arr.len ? v->u.arr.len : 1, sizeof(*c->u.arr.items));
            c->u.arr.cap   = v->u.arr.len;
            for (size_t i = 0; i < v->u.arr.len; i++)
                c->u.arr.items[i] = toml_clone(v->u.arr.items[i]);
            break;
        case TOML_STRING:
            c->u.str.ptr = xmalloc(v->u.str.len + 1);
            memcpy(c->u.str.ptr, v->u.str.ptr, v->u.str.len + 1);
            break;
        default:
            break;
    }
    return c;
}

static bool dt_equal(const struct toml_datetime* a, const struct toml_datetime* b) {
    if (a->kind != b->kind)
        return false;
    if (a->kind != TOML_DT_TIME && (a->year != b->year || a->month != b->month || a->day != b->day))
        return false;
    if (a->kind != TOML_DT_DATE && (a->hour != b->hour || a->minute != b->minute ||
                                    a->second != b->second || a->nanosecond != b->nanosecond))
        return false;
    return a->kind != TOML_DT_OFFSET || a->offset_minutes == b->offset_minutes;
}

bool toml_equal(const struct toml_value* a, const struct toml_value* b) {
    if (!a || !b)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
        case TOML_TABLE:
            if (a->u.tab.len != b->u.tab.len)
                return false;
            for (size_t i = 0; i < a->u.tab.len; i++) {
                const struct toml_kv* ka       = &a->u.tab.items[i];
                const struct toml_value* other = NULL;
                for (size_t j = 0; j < b->u.tab.len && !other; j++) {
                    const struct toml_kv* kb = &b->u.tab.items[j];
                    if (kb->key_len == ka->key_len && memcmp(kb->key, ka->key, ka->key_len) == 0)
                        other = kb->value;
                }
                if (!other || !toml_equal(ka->value, other))
                    return false;
            }
            return true;
        case TOML_ARRAY:
            if (a->u.arr.len != b->u.arr.len)
                return false;
            for (size_t i = 0; i < a->u.arr.len; i++)
                if (!toml_equal(a->u.arr.items[i], b->u.arr.items[i]))
                    return false;
            return true;
        case TOML_STRING:
            return a->u.str.len == b->u.str.len &&
                   memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
        case TOML_INTEGER:
            return a->u.integer == b->u.integer;
        case TOML_FLOAT:
            if (isnan(a->u.fp) || isnan(b->u.fp))
                return isnan(a->u.fp) && isnan(b->u.fp);
            return memcmp(&a->u.fp, &b->u.fp, sizeof(double)) == 0;
        case TOML_BOOL:
            return a->u.boolean == b->u.boolean;
        case TOML_DATETIME:
            return dt_equal(&a->u.dt, &b->u.dt);
    }
    return false;
}

const struct toml_kv* toml_table_get_kv(const struct toml_value* table, const char* key) {
    if (!table || table->type != TOML_TABLE)
        return NULL;
    for (size_t i = 0; i < table->u.tab.len; i++)
        if (strcmp(table->u.tab.items[i].key, key) == 0)
            return &table->u.tab.items[i];
    return NULL;
}

struct toml_value* toml_table_get(const struct toml_value* table, const char* key) {
    const struct toml_kv* kv = toml_table_get_kv(table, key);
    return kv ? kv->value : NULL;
}

void toml_table_set(struct toml_value* table, const char* key, struct toml_value* value) {
    for (size_t i = 0; i < table->u.tab.len; i++) {
        if (strcmp(table->u.tab.items[i].key, key) == 0) {
            toml_free(table->u.tab.items[i].value);
            table->u.tab.items[i].value = value;
            return;
        }
    }
    table->u.tab.items =
        xgrow(table->u.tab.items, &table->u.tab.cap, table->u.tab.len + 1, sizeof(struct toml_kv));
    table->u.tab.items[table->u.tab.len++] = (struct toml_kv){
        .key     = xstrdup(key),
        .key_len = strlen(key),
        .line    = value ? value->line : 0,
        .col     = value ? value->col : 0,
        .value   = value,
    };
}

struct toml_value* toml_table_take(struct toml_value* table, const char* key) {
    if (!table || table->type != TOML_TABLE)
        return NULL;
    for (size_t i = 0; i < table->u.tab.len; i++) {
        if (strcmp(table->u.tab.items[i].key, key) == 0) {
            struct toml_value* v = table->u.tab.items[i].value;
            free(table->u.tab.items[i].key);
            memmove(&table->u.tab.items[i], &table->u.tab.items[i + 1],
                    (table->u.tab.len - i - 1) * sizeof(struct toml_kv));
            table->u.tab.len--;
            return v;
        }
    }
    return NULL;
}

bool toml_table_remove(struct toml_value* table, const char* key) {
    if (!toml_table_get_kv(table, key))
        return false;
    toml_free(toml_table_take(table, key));
    return true;
}

void toml_array_append(struct toml_value* array, struct toml_value* value) {
    array->u.arr.items = xgrow(array->u.arr.items, &array->u.arr.cap, array->u.arr.len + 1,
                               sizeof(*array->u.arr.items));
    array->u.arr.items[array->u.arr.len++] = value;
}

/* Splits the next component off a dotted path: bare up to '.', or a "quoted" component (no
 * escapes, as Gramine's toml_utils). Returns a malloc'd component and advances *p, or NULL on
 * a malformed path. */
static char* next_component(const char** p) {
    const char* s = *p;
    const char* end;
    char* comp;
    if (*s == '"') {
        end = strchr(s + 1, '"');
        if (!end)
            return NULL;
        comp = xstrndup(s + 1, (size_t)(end - s - 1));
        end++;
    } else {
        end = strchr(s, '.');
        if (!end)
            end = s + strlen(s);
        if (end == s)
            return NULL;
        comp = xstrndup(s, (size_t)(end - s));
    }
    if (*end == '.') {
        end++;
        if (*end == '\0') {
            free(comp);
            return NULL;
        }
    } else if (*end != '\0') {
        free(comp);
        return NULL;
    }
    *p = end;
    return comp;
}

/* Walks to the table holding the last component; *ret_last gets that component. */
static struct toml_value* walk_parent(const struct toml_value* root, const char* dotted,
                                      bool create, char** ret_last, int* ret_err) {
    struct toml_value* cur = (struct toml_value*)root;
    const char* p          = dotted;
    *ret_err               = 0;
    for (;;) {
        char* comp = next_component(&p);
        if (!comp) {
            *ret_err = -EINVAL;
            return NULL;
        }
        if (*p == '\0') {
            *ret_last = comp;
            return cur;
        }
        struct toml_value* next = toml_table_get(cur, comp);
        if (!next && create) {
            next = toml_new_table();
            toml_table_set(cur, comp, next);
        }
        free(comp);
        if (!next || next->type != TOML_TABLE) {
            *ret_err = next ? -EEXIST : -ENOENT;
            return NULL;
        }
        cur = next;
    }
}

struct toml_value* toml_get_path(const struct toml_value* root, const char* dotted) {
    if (!root || root->type != TOML_TABLE)
        return NULL;
    char* last;
    int err;
    struct toml_value* parent = walk_parent(root, dotted, false, &last, &err);
    if (!parent)
        return NULL;
    struct toml_value* v = toml_table_get(parent, last);
    free(last);
    return v;
}

int toml_set_path(struct toml_value* root, const char* dotted, struct toml_value* value) {
    char* last;
    int err;
    struct toml_value* parent = walk_parent(root, dotted, true, &last, &err);
    if (!parent) {
        toml_free(value);
        return err;
    }
    toml_table_set(parent, last, value);
    free(last);
    return 0;
}

bool toml_remove_path(struct toml_value* root, const char* dotted) {
    char* last;
    int err;
    struct toml_value* parent = walk_parent(root, dotted, false, &last, &err);
    if (!parent)
        return false;
    bool ret = toml_table_remove(parent, last);
    free(last);
    return ret;
}

int toml_get_bool(const struct toml_value* root, const char* dotted, bool def, bool* ret) {
    const struct toml_value* v = toml_get_path(root, dotted);
    if (!v) {
        *ret = def;
        return 0;
    }
    if (v->type != TOML_BOOL)
        return -EINVAL;
    *ret = v->u.boolean;
    return 0;
}

int toml_get_int(const struct toml_value* root, const char* dotted, int64_t def, int64_t* ret) {
    const struct toml_value* v = toml_get_path(root, dotted);
    if (!v) {
        *ret = def;
        return 0;
    }
    if (v->type != TOML_INTEGER)
        return -EINVAL;
    *ret = v->u.integer;
    return 0;
}

int toml_get_string(const struct toml_value* root, const char* dotted, const char* def,
                    const char** ret) {
    const struct toml_value* v = toml_get_path(root, dotted);
    if (!v) {
        *ret = def;
        return 0;
    }
    if (v->type != TOML_STRING)
        return -EINVAL;
    *ret = v->u.str.ptr;
    return 0;
}

int toml_get_size(const struct toml_value* root, const char* dotted, uint64_t def, uint64_t* ret) {
    const struct toml_value* v = toml_get_path(root, dotted);
    if (!v) {
        *ret = def;
        return 0;
    }
    if (v->type == TOML_INTEGER) {
        /* Gramine's toml_sizestring_in accepts plain integers too */
        if (v->u.integer < 0)
            return -EINVAL;
        *ret = (uint64_t)v->u.integer;
        return 0;
    }
    if (v->type != TOML_STRING || strlen(v->u.str.ptr) != v->u.str.len)
        return -EINVAL;
    return parse_size_str(v->u.str.ptr, ret);
}

const char* toml_type_name(enum toml_type type) {
    switch (type) {
        case TOML_TABLE:
            return "table";
        case TOML_ARRAY:
            return "array";
        case TOML_STRING:
            return "string";
        case TOML_INTEGER:
            return "integer";
        case TOML_FLOAT:
            return "float";
        case TOML_BOOL:
            return "boolean";
        case TOML_DATETIME:
            return "datetime";
    }
    return "unknown";
}
