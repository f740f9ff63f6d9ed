/* SPDX-License-Identifier: Apache-2.0 */
/*
 * toml-test decoder: reads TOML on stdin and prints the tagged JSON that toml-test compares
 * against ({"type": "integer", "value": "1"} for scalars, plain objects and arrays otherwise).
 * Exit status 1 (with the parse error on stderr) for invalid documents.
 * With --roundtrip it prints toml_write's output instead.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "toml.h"

static void json_string(struct strbuf* sb, const char* s, size_t len) {
    strbuf_putc(sb, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            strbuf_printf(sb, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            strbuf_printf(sb, "\\u%04x", c);
        else
            strbuf_putc(sb, (char)c);
    }
    strbuf_putc(sb, '"');
}

static void tagged(struct strbuf* sb, const char* type, const char* value) {
    strbuf_printf(sb, "{\"type\": \"%s\", \"value\": ", type);
    json_string(sb, value, strlen(value));
    strbuf_putc(sb, '}');
}

static void emit(struct strbuf* sb, const struct toml_value* v) {
    char buf[64];
    switch (v->type) {
        case TOML_TABLE:
            strbuf_putc(sb, '{');
            for (size_t i = 0; i < v->u.tab.len; i++) {
                if (i)
                    strbuf_putc(sb, ',');
                json_string(sb, v->u.tab.items[i].key, v->u.tab.items[i].key_len);
                strbuf_putc(sb, ':');
                emit(sb, v->u.tab.items[i].value);
            }
            strbuf_putc(sb, '}');
            break;
        case TOML_ARRAY:
            strbuf_putc(sb, '[');
            for (size_t i = 0; i < v->u.arr.len; i++) {
                if (i)
                    strbuf_putc(sb, ',');
                emit(sb, v->u.arr.items[i]);
            }
            strbuf_putc(sb, ']');
            break;
        case TOML_STRING:
            strbuf_puts(sb, "{\"type\": \"string\", \"value\": ");
            json_string(sb, v->u.str.ptr, v->u.str.len);
            strbuf_putc(sb, '}');
            break;
        case TOML_INTEGER:
            snprintf(buf, sizeof(buf), "%" PRId64, v->u.integer);
            tagged(sb, "integer", buf);
            break;
        case TOML_FLOAT:
            if (isnan(v->u.fp))
                snprintf(buf, sizeof(buf), "nan");
            else if (isinf(v->u.fp))
                snprintf(buf, sizeof(buf), "%sinf", v->u.fp < 0 ? "-" : "");
            else
                snprintf(buf, sizeof(buf), "%.17g", v->u.fp);
            tagged(sb, "float", buf);
            break;
        case TOML_BOOL:
            tagged(sb, "bool", v->u.boolean ? "true" : "false");
            break;
        case TOML_DATETIME: {
            static const char* const kinds[] = {"datetime", "datetime-local", "date-local",
                                                "time-local"};
            struct strbuf dt                 = STRBUF_INIT;
            toml_write_inline(&dt, v);
            char* s = strbuf_take(&dt, NULL);
            tagged(sb, kinds[v->u.dt.kind], s);
            free(s);
            break;
        }
    }
}

int main(int argc, char** argv) {
    bool roundtrip   = argc > 1 && strcmp(argv[1], "--roundtrip") == 0;
    struct strbuf in = STRBUF_INIT;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        strbuf_append(&in, buf, n);
    size_t len;
    char* text = strbuf_take(&in, &len);

    struct toml_value* root = NULL;
    struct moat_error err   = {0};
    if (toml_parse(text, len, "<stdin>", &root, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(text);
        return 1;
    }
    free(text);
    struct strbuf out = STRBUF_INIT;
    if (roundtrip) {
        size_t olen;
        char* doc = toml_write(root, &olen);
        fwrite(doc, 1, olen, stdout);
        free(doc);
    } else {
        emit(&out, root);
        strbuf_putc(&out, '\n');
        fwrite(out.buf, 1, out.len, stdout);
    }
    strbuf_free(&out);
    toml_free(root);
    return 0;
}
