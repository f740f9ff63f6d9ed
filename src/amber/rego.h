/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Rego (OPA) subset that Intel Trust Authority's appraisal and token customization
 * policies use (docs/rego.md, reference/attestation.md §4.2). A policy is compiled once into a
 * typed tree; anything outside the subset is refused at compile time with the line, column
 * and construct ("line 7, column 5: `with` is not supported"), never mis-evaluated.
 *
 * The subset: `package`, `import future.keywords[.in|.every|.if|.contains]` / `import rego.v1`;
 * `default r = v`; complete rules `r { … }`, `r = v { … }`, `r := v`, `r if { … }`; partial set
 * rules `r[x] { … }` / `r contains x if { … }`; `else` chains; several definitions of one rule =
 * OR, statements of a body = AND; `x := e`, `x = e`, `not e`, `some x in e`, `some k, v in e`,
 * `every x in e { … }`; `==, !=, <, <=, >, >=`, `in`; `count()`, `time.now_ns()`,
 * `time.parse_rfc3339_ns()`, `time.add_date()`, `object.subset()`; refs `input.a.b`,
 * `input.a[0]`, `input["k"]`, `s[x]` on sets, `input.l[_]` / `input.o[k]` iterating in a body
 * statement; `[t | body]` and `{t | body}` comprehensions; string (also raw), number, boolean
 * and null literals, arrays, objects and sets.
 *
 * Evaluation follows OPA: undefined propagates (a statement whose value is undefined or false
 * fails its body), `default` gives the value when no body succeeds, numbers compare as
 * numbers (1 == 1.0), strings byte-wise, values of different types are never equal and order
 * as null < boolean < number < string < array < object < set, and a complete rule whose
 * bodies produce different values is an error ("complete rules must not produce multiple
 * outputs"). Sizes, nesting and evaluation steps are bounded (REGO_MAX_*).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define REGO_MAX_TEXT       (64u << 10) /* policy bytes (ITA accepts up to 10-20 KB) */
#define REGO_MAX_TOKENS     16384
#define REGO_MAX_DEPTH      32     /* nesting of expressions, literals and bodies */
#define REGO_MAX_RULES      256    /* distinct rules per policy */
#define REGO_MAX_STMTS      256    /* statements per body */
#define REGO_MAX_VARS       256    /* local variables per rule definition */
#define REGO_MAX_STEPS      200000 /* evaluation steps (expressions + iterations) */
#define REGO_MAX_EVAL_DEPTH 400    /* nested evaluation (rule refs, `some`, `every`) */

struct rego_policy;

/* Compiles `len` bytes of policy text. On success *ret_policy owns the compiled policy (free
 * with rego_policy_free). Errors: -EINVAL with "line L, column C: …" naming the construct
 * outside the subset or the syntax error; -E2BIG when a REGO_MAX_* limit is exceeded. */
int rego_compile(const char* text, size_t len, struct rego_policy** ret_policy,
                 struct moat_error* err) WARN_UNUSED;

void rego_policy_free(struct rego_policy* policy);
static inline void rego_policy_freep(struct rego_policy** p) {
    rego_policy_free(*p);
}
#define _cleanup_rego_policy_ _cleanup_(rego_policy_freep)

/* The rules the policy defines, in order of first definition (names are owned by policy). */
size_t rego_rule_count(const struct rego_policy* policy);
const char* rego_rule_name(const struct rego_policy* policy, size_t i);
/* The `package` name ("policy"), or NULL when the policy has none. */
const char* rego_package(const struct rego_policy* policy);

/* Evaluates every rule against `input` (the token claims; read, never modified). On success
 * *ret_values is a new JSON object (caller owns; json_decref) mapping each rule with a defined
 * value to it (copies: they share nothing with input); undefined rules are absent. Partial set
 * rules give a sorted array. Errors:
 * -EINVAL for an evaluation error (conflicting outputs, a set inside an array or object, a
 * non-string object key), -E2BIG when REGO_MAX_STEPS or REGO_MAX_EVAL_DEPTH is exceeded; the
 * message names the rule and line. */
int rego_eval(const struct rego_policy* policy, json_t* input, json_t** ret_values,
              struct moat_error* err) WARN_UNUSED;
/* The same with time.now_ns() fixed to `now_ns` (nanoseconds since the epoch; rego_eval uses
 * the real-time clock), for reproducible evaluations and tests. */
int rego_eval_at(const struct rego_policy* policy, json_t* input, int64_t now_ns,
                 json_t** ret_values, struct moat_error* err) WARN_UNUSED;

/* Whether `rule` is defined and exactly `true` in the values rego_eval returned. */
bool rego_rule_is_true(const json_t* values, const char* rule);
