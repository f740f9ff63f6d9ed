/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TOML 1.0 parser into a value tree, plus a canonical writer.
 *
 * The tree keeps key order as written (tables are ordered lists of key/value pairs), and every
 * key and value remembers its line and column so that manifest diagnostics can say
 * `app.manifest:12:5: …`. Strings are UTF-8 and may contain NUL (use `len`).
 *
 * Ownership: toml_parse() returns a tree the caller frees with toml_free(). Setter functions
 * take ownership of the value passed in. Getters return borrowed pointers into the tree.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum toml_type {
    TOML_TABLE,
    TOML_ARRAY,
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME, /* offset date-time, local date-time, local date or local time */
};

enum toml_dt_kind {
    TOML_DT_OFFSET, /* 1979-05-27T07:32:00Z / -07:00 */
    TOML_DT_LOCAL,  /* 1979-05-27T07:32:00 */
    TOML_DT_DATE,   /* 1979-05-27 */
    TOML_DT_TIME,   /* 07:32:00 */
};

struct toml_datetime {
    enum toml_dt_kind kind;
    int year, month, day;     /* unused for TOML_DT_TIME */
    int hour, minute, second; /* unused for TOML_DT_DATE */
    uint32_t nanosecond;      /* fractional seconds, truncated to ns */
    int frac_digits;          /* digits written after '.', 0 if none (kept for round trip) */
    int offset_minutes;       /* TOML_DT_OFFSET only; 0 with utc_z for "Z" */
    bool utc_z;               /* offset written as 'Z' (vs "+00:00") */
};

struct toml_value;

struct toml_kv {
    char* key;      /* NUL-terminated; may contain NUL ("\u0000" keys): see key_len */
    size_t key_len; /* C-string lookups (toml_table_get) never match keys with NUL */
    uint32_t line, col;
    struct toml_value* value;
};

struct toml_value {
    enum toml_type type;
    uint32_t line, col; /* where the value starts; 0 for values built in code */
    union {
        struct {
            char* ptr; /* NUL-terminated, but may contain NUL: use len */
            size_t len;
        } str;
        int64_t integer;
        double fp;
        bool boolean;
        struct toml_datetime dt;
        struct {
            struct toml_value** items;
            size_t len, cap;
        } arr;
        struct {
            struct toml_kv* items;
            size_t len, cap;
            /* parser bookkeeping: how the table came to exist (header, dotted key, inline,
             * implicit) so that redefinitions are detected; writers ignore it */
            uint8_t origin;
        } tab;
    } u;
};

/* Parse error position and message. The message is the bare text ("duplicate key
 * 'sgx.debug'"); toml_error_format gives "file:line:col: msg". */
struct toml_error {
    uint32_t line, col;
    char msg[512];
};

/* Parses `len` bytes of TOML 1.0. `filename` is only used for messages (may be NULL).
 * On failure returns -EINVAL and fills *err (and err_out, if non-NULL, with
 * "<filename>:<line>:<col>: <msg>"). */
int toml_parse(const char* text, size_t len, const char* filename, struct toml_value** ret_root,
               struct toml_error* err, struct moat_error* err_out) WARN_UNUSED;
void toml_free(struct toml_value* v);
static inline void toml_freep(struct toml_value** v) {
    toml_free(*v);
}
#define _cleanup_toml_ _cleanup_(toml_freep)

/* Deep copy (positions kept). */
struct toml_value* toml_clone(const struct toml_value* v);
/* Deep equality (type, value; key order of tables ignored; floats compared bitwise except
 * that NaN equals NaN). */
bool toml_equal(const struct toml_value* a, const struct toml_value* b);

/* Constructors (abort on OOM). Strings are copied. */
struct toml_value* toml_new_table(void);
struct toml_value* toml_new_array(void);
struct toml_value* toml_new_string(const char* s);
struct toml_value* toml_new_stringn(const char* s, size_t len);
struct toml_value* toml_new_integer(int64_t i);
struct toml_value* toml_new_float(double f);
struct toml_value* toml_new_bool(bool b);

/* Table access. `key` is one literal key (no dots). Returns NULL if absent. */
struct toml_value* toml_table_get(const struct toml_value* table, const char* key);
const struct toml_kv* toml_table_get_kv(const struct toml_value* table, const char* key);
/* Sets key to value (takes ownership), replacing an existing value in place (keeps its
 * position in the order) or appending. */
void toml_table_set(struct toml_value* table, const char* key, struct toml_value* value);
/* Removes key; returns true if it was present. */
bool toml_table_remove(struct toml_value* table, const char* key);
/* Detaches and returns the value of key (caller owns it), or NULL. */
struct toml_value* toml_table_take(struct toml_value* table, const char* key);
void toml_array_append(struct toml_value* array, struct toml_value* value);

/* Dotted-path access as in Gramine's toml_utils: "a.b.c", components may be double-quoted
 * ("loader.env.\"MY.VAR\""). Walks through tables only. Returns NULL if any part is absent or
 * not a table. */
struct toml_value* toml_get_path(const struct toml_value* root, const char* dotted);
/* Creates intermediate tables as needed; fails with -EEXIST if a component is a non-table. */
int toml_set_path(struct toml_value* root, const char* dotted,
                  struct toml_value* value) WARN_UNUSED;
/* Removes the value at the path; empty parent tables are left in place. */
bool toml_remove_path(struct toml_value* root, const char* dotted);

/* Typed getters for a dotted path, Gramine's toml_*_in semantics: absent ⇒ returns 0 and
 * writes the default; present with the wrong type ⇒ -EINVAL. */
int toml_get_bool(const struct toml_value* root, const char* dotted, bool def,
                  bool* ret) WARN_UNUSED;
int toml_get_int(const struct toml_value* root, const char* dotted, int64_t def,
                 int64_t* ret) WARN_UNUSED;
/* *ret is borrowed (or `def`, may be NULL). */
int toml_get_string(const struct toml_value* root, const char* dotted, const char* def,
                    const char** ret) WARN_UNUSED;
/* Size string (parse_size_str) or -EINVAL. */
int toml_get_size(const struct toml_value* root, const char* dotted, uint64_t def,
                  uint64_t* ret) WARN_UNUSED;

const char* toml_type_name(enum toml_type type); /* "table", "array", "string", … */

/* Quotes a key for output: bare if [A-Za-z0-9_-]+, else a basic string. Caller frees. */
char* toml_quote_key(const char* key);

/* Canonical writer. Output order follows the tree's key order, with all non-table values of
 * a table first, then sub-tables as [a.b] sections and arrays of tables as [[a.b]]
 * sections (the shape tomli_w gives gramine-manifest output). Parsing the output yields a tree
 * toml_equal() to the input. Returns a malloc'd NUL-terminated document. */
char* toml_write(const struct toml_value* root, size_t* ret_len);
/* Writes one value inline (strings quoted, tables as inline tables). */
void toml_write_inline(struct strbuf* sb, const struct toml_value* v);
