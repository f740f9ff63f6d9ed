/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Canonical TOML writer in the shape tomli_w gives gramine-manifest output: in every table the
 * plain values come first, then sub-tables as [a.b] sections and arrays of tables as [[a.b]]
 * sections; arrays are written one item per line with a 4-space indent. Everything written
 * parses back to an equal tree (tests/test_toml.py checks this for every toml-test case).
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "toml.h"

static bool is_bare_key(const char* key, size_t len) {
    if (!len)
        return false;
    for (const char* c = key; c < key + len; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-'))
            return false;
    }
    return true;
}

static void write_basic_string(struct strbuf* sb, const char* s, size_t len) {
    strbuf_putc(sb, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
            case '"':
                strbuf_puts(sb, "\\\"");
                break;
            case '\\':
                strbuf_puts(sb, "\\\\");
                break;
            case '\b':
                strbuf_puts(sb, "\\b");
                break;
            case '\t':
                strbuf_puts(sb, "\\t");
                break;
            case '\n':
                strbuf_puts(sb, "\\n");
                break;
            case '\f':
                strbuf_puts(sb, "\\f");
                break;
            case '\r':
                strbuf_puts(sb, "\\r");
                break;
            default:
                if (c < 0x20 || c == 0x7f)
                    strbuf_printf(sb, "\\u%04x", c);
                else
                    strbuf_putc(sb, (char)c);
        }
    }
    strbuf_putc(sb, '"');
}

static void write_key(struct strbuf* sb, const char* key, size_t len) {
    if (is_bare_key(key, len))
        strbuf_append(sb, key, len);
    else
        write_basic_string(sb, key, len);
}

char* toml_quote_key(const char* key) {
    struct strbuf sb = STRBUF_INIT;
    write_key(&sb, key, strlen(key));
    return strbuf_take(&sb, NULL);
}

static void write_float(struct strbuf* sb, double d) {
    if (isnan(d) && signbit(d)) {
        strbuf_puts(sb, "-nan"); /* TOML keeps the sign of NaN */
        return;
    }
    char buf[64];
    format_double(d, buf, sizeof(buf));
    strbuf_puts(sb, buf);
}

static void write_datetime(struct strbuf* sb, const struct toml_datetime* dt) {
    if (dt->kind != TOML_DT_TIME)
        strbuf_printf(sb, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
    if (dt->kind == TOML_DT_DATE)
        return;
    if (dt->kind != TOML_DT_TIME)
        strbuf_putc(sb, 'T');
    strbuf_printf(sb, "%02d:%02d:%02d", dt->hour, dt->minute, dt->second);
    int digits = dt->frac_digits;
    if (digits == 0 && dt->nanosecond)
        digits = 9;
    if (digits > 0) {
        char frac[16];
        snprintf(frac, sizeof(frac), "%09u", dt->nanosecond);
        strbuf_putc(sb, '.');
        strbuf_append(sb, frac, (size_t)(digits > 9 ? 9 : digits));
    }
    if (dt->kind == TOML_DT_OFFSET) {
        if (dt->utc_z && dt->offset_minutes == 0) {
            strbuf_putc(sb, 'Z');
        } else {
            int off = dt->offset_minutes;
            strbuf_printf(sb, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
        }
    }
}

static void write_value(struct strbuf* sb, const struct toml_value* v, int indent);

static void write_array(struct strbuf* sb, const struct toml_value* v, int indent) {
    if (v->u.arr.len == 0) {
        strbuf_puts(sb, "[]");
        return;
    }
    strbuf_puts(sb, "[\n");
    for (size_t i = 0; i < v->u.arr.len; i++) {
        strbuf_printf(sb, "%*s", 4 * (indent + 1), "");
        write_value(sb, v->u.arr.items[i], indent + 1);
        strbuf_puts(sb, ",\n");
    }
    strbuf_printf(sb, "%*s]", 4 * indent, "");
}

static void write_inline_table(struct strbuf* sb, const struct toml_value* v, int indent) {
    if (v->u.tab.len == 0) {
        strbuf_puts(sb, "{}");
        return;
    }
    strbuf_puts(sb, "{ ");
    for (size_t i = 0; i < v->u.tab.len; i++) {
        if (i)
            strbuf_puts(sb, ", ");
        write_key(sb, v->u.tab.items[i].key, v->u.tab.items[i].key_len);
        strbuf_puts(sb, " = ");
        write_value(sb, v->u.tab.items[i].value, indent);
    }
    strbuf_puts(sb, " }");
}

static void write_value(struct strbuf* sb, const struct toml_value* v, int indent) {
    switch (v->type) {
        case TOML_TABLE:
            write_inline_table(sb, v, indent);
            break;
        case TOML_ARRAY:
            write_array(sb, v, indent);
            break;
        case TOML_STRING:
            write_basic_string(sb, v->u.str.ptr, v->u.str.len);
            break;
        case TOML_INTEGER:
            strbuf_printf(sb, "%" PRId64, v->u.integer);
            break;
        case TOML_FLOAT:
            write_float(sb, v->u.fp);
            break;
        case TOML_BOOL:
            strbuf_puts(sb, v->u.boolean ? "true" : "false");
            break;
        case TOML_DATETIME:
            write_datetime(sb, &v->u.dt);
            break;
    }
}

void toml_write_inline(struct strbuf* sb, const struct toml_value* v) {
    write_value(sb, v, 0);
}

/* An array written as [[name]] sections: non-empty and every item a table. */
static bool is_array_of_tables(const struct toml_value* v) {
    if (v->type != TOML_ARRAY || v->u.arr.len == 0)
        return false;
    for (size_t i = 0; i < v->u.arr.len; i++)
        if (v->u.arr.items[i]->type != TOML_TABLE)
            return false;
    return true;
}

static bool is_section(const struct toml_value* v) {
    return v->type == TOML_TABLE || is_array_of_tables(v);
}

static void write_table(struct strbuf* sb, const struct toml_value* t, const char* name,
                        bool aot_item) {
    bool has_literals = false, has_sections = false;
    for (size_t i = 0; i < t->u.tab.len; i++) {
        if (is_section(t->u.tab.items[i].value))
            has_sections = true;
        else
            has_literals = true;
    }
    /* like tomli_w: a header only where it carries values (or the table is empty) */
    if (aot_item || (name && (has_literals || !has_sections))) {
        if (sb->len)
            strbuf_putc(sb, '\n');
        strbuf_printf(sb, aot_item ? "[[%s]]\n" : "[%s]\n", name);
    }
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const struct toml_kv* kv = &t->u.tab.items[i];
        if (is_section(kv->value))
            continue;
        write_key(sb, kv->key, kv->key_len);
        strbuf_puts(sb, " = ");
        write_value(sb, kv->value, 0);
        strbuf_putc(sb, '\n');
    }
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const struct toml_kv* kv = &t->u.tab.items[i];
        if (!is_section(kv->value))
            continue;
        struct strbuf cb = STRBUF_INIT;
        if (name)
            strbuf_printf(&cb, "%s.", name);
        write_key(&cb, kv->key, kv->key_len);
        char* child = strbuf_take(&cb, NULL);
        if (kv->value->type == TOML_TABLE) {
            write_table(sb, kv->value, child, false);
        } else {
            for (size_t j = 0; j < kv->value->u.arr.len; j++)
                write_table(sb, kv->value->u.arr.items[j], child, true);
        }
        free(child);
    }
}

char* toml_write(const struct toml_value* root, size_t* ret_len) {
    struct strbuf sb = STRBUF_INIT;
    write_table(&sb, root, NULL, false);
    size_t len;
    char* out = strbuf_take(&sb, &len);
    if (!out) {
        out = xstrdup("");
        len = 0;
    }
    if (ret_len)
        *ret_len = len;
    return out;
}
