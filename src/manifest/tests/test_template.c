/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the Jinja-subset template engine; expected outputs were produced by Jinja2
 * with gramine-manifest's settings (StrictUndefined, keep_trailing_newline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "template.h"

static struct template_env g_env = {
    .pkglibdir = "/usr/lib/moat",
    .libos     = "/usr/bin/moat",
    .glibc_dir = "/lib/x86_64-linux-gnu",
    .musl_dir  = NULL,
    .python    = "/usr/bin/python3",
};

static char* render(const char* text, const struct tmpl_define* defs, size_t n,
                    struct moat_error* err) {
    char* out = NULL;
    size_t len;
    if (template_render(text, strlen(text), "t.template", defs, n, &g_env, &out, &len, err) < 0)
        return NULL;
    assert_int_equal(strlen(out), len);
    return out;
}

static void expect(const char* text, const char* want) {
    struct moat_error err                  = {0};
    static const struct tmpl_define defs[] = {{"name", "world"}, {"flag", NULL}, {"n", "3"}};
    char* out                              = render(text, defs, ARRAY_SIZE(defs), &err);
    if (!out)
        fail_msg("render of '%s' failed: %s", text, err.msg);
    if (strcmp(out, want) != 0)
        fail_msg("render of '%s':\n got: '%s'\nwant: '%s'", text, out, want);
    free(out);
}

static void expect_error(const char* text, const char* fragment) {
    struct moat_error err = {0};
    char* out             = render(text, NULL, 0, &err);
    if (out)
        fail_msg("render of '%s' succeeded: '%s'", text, out);
    if (!strstr(err.msg, fragment))
        fail_msg("error '%s' lacks '%s'", err.msg, fragment);
}

static void test_expressions(void** state) {
    (void)state;
    expect("hello {{ name }}!\n", "hello world!\n");
    expect("{{ flag }} {{ n ~ '/' ~ name }}", "True 3/world");
    expect("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ 1 / 2 }}",
           "7 3 -4 1 1024 0.5");
    expect("{{ 'a' if n == '3' else 'b' }}{{ 'x' if not flag else 'y' }}", "ay");
    expect("{{ [1, 'two', none, true] }}", "[1, 'two', None, True]");
    expect("{{ {'k': 'v'}['k'] }}{{ {'k': 'v'}.k }}", "vv");
    expect("{{ 'abc' in 'xabcx' }} {{ 2 in [1, 2] }} {{ 'z' not in name }}", "True True True");
    expect("{{ name.upper() }} {{ name.startswith('wo') }} {{ 'a,b'.split(',') }}",
           "WORLD True ['a', 'b']");
    expect("{{ 'x-y'.replace('-', '_') }} {{ '  s '.strip() }}", "x_y s");
    expect("{{ gramine.runtimedir() }} {{ gramine.runtimedir('glibc') }} {{ gramine.libos }}",
           "/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/bin/moat");
    expect("{{ gramine.runtimedir }}|{{ gramine.pkglibdir }}",
           "/lib/x86_64-linux-gnu|/usr/lib/moat");
    expect("{{ env.get('MOAT_SURELY_UNSET_VAR', 'dflt') }}", "dflt");
    expect("{{ undefined_thing is defined }} {{ name is defined }} {{ none is none }}",
           "False True True");
    expect("{{ 'a' 'b' }}", "ab");
}

static void test_filters(void** state) {
    (void)state;
    expect("{{ missing | default('d') }} {{ '' | default('e', true) }}", "d e");
    expect("{{ ['a', 'b'] | join(':') }} {{ [3, 1, 2] | sort }} {{ name | length }}",
           "a:b [1, 2, 3] 5");
    expect("{{ n | int + 1 }} {{ '2.5' | float }} {{ 5 | string ~ 'x' }}", "4 2.5 5x");
    expect("{{ name | upper }} {{ ' q ' | trim }} {{ [1, 1, 2] | unique | list }}",
           "WORLD q [1, 2]");
    expect("{{ [1, 2] | first }}{{ [1, 2] | last }} {{ -3 | abs }}", "12 3");
}

static void test_statements(void** state) {
    (void)state;
    expect(
        "{% for x in ['a', 'b'] %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}"
        "{% endfor %}",
        "1a,2b");
    expect("{% for x in [] %}x{% else %}empty{% endfor %}", "empty");
    expect("{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}", "a=1");
    expect("{% for x in range(5) if x % 2 == 0 %}{{ x }}{% endfor %}", "024");
    expect("{% if n == '1' %}one{% elif n == '3' %}three{% else %}other{% endif %}", "three");
    expect("{% set x = name ~ '!' %}{{ x }}", "world!");
    expect("{% for i in [1] %}{% set y = 2 %}{% endfor %}{{ y is defined }}", "False");
    expect("{# comment #}a{# multi\nline #}b", "ab");
    expect("{% raw %}{{ not evaluated }}{% endraw %}", "{{ not evaluated }}");
}

static void test_whitespace_control(void** state) {
    (void)state;
    expect("a  {{- name -}}  b", "aworldb");
    expect("{% set e = 'x' -%}\n\nline\n", "line\n");
    expect("x\n  {%- if true %}\ny{% endif %}\n", "x\ny\n");
    expect("{% for i in [1, 2] %}\n{{ i }}\n{% endfor %}\n", "\n1\n\n2\n\n");
    expect("keep trailing newline\n", "keep trailing newline\n");
}

static void test_errors(void** state) {
    (void)state;
    expect_error("line1\nvalue = \"{{ log_level }}\"\n", "t.template:2: 'log_level' is undefined");
    expect_error("{{ missing.attr }}", "'missing' is undefined");
    expect_error("{% for x in nothing %}{% endfor %}", "'nothing' is undefined");
    expect_error("{% if x %}", "never closed");
    expect_error("{% for x in [1] %}", "{% endfor %}");
    expect_error("{{ 1 + }}", "unexpected end of expression");
    expect_error("{{ 'unterminated }}", "never closed");
    expect_error("{% macro m() %}{% endmacro %}", "unsupported statement {% macro %}");
    expect_error("{% endif %}", "without a matching opening tag");
    expect_error("{{ [1] | nosuchfilter }}", "no filter named 'nosuchfilter'");
    expect_error("{{ gramine.runtimedir('musl') }}", "musl");
    expect_error("{{ 1 // 0 }}", "division");
    expect_error("a\n\n{{ {'a': 1}.b }}", "t.template:3: 'dict object' has no attribute 'b'");
    /* hostile nesting is an error, not a stack overflow */
    struct strbuf deep = STRBUF_INIT;
    strbuf_puts(&deep, "{{ ");
    for (int i = 0; i < 1000; i++)
        strbuf_putc(&deep, '[');
    for (int i = 0; i < 1000; i++)
        strbuf_putc(&deep, ']');
    strbuf_puts(&deep, " }}");
    expect_error(deep.buf, "nested too deeply");
    strbuf_free(&deep);
    for (int i = 0; i < 500; i++)
        strbuf_puts(&deep, "{% if 1 %}");
    expect_error(deep.buf, "nested too deeply");
    strbuf_free(&deep);
}

static void test_ldd_and_python(void** state) {
    (void)state;
    struct moat_error err = {0};
    char* out             = render("{{ ldd('/bin/sh') | join(' ') }}", NULL, 0, &err);
    assert_non_null(out);
    assert_non_null(strstr(out, "libc.so.6"));
    assert_null(strstr(out, "vdso"));
    free(out);
    out = render(
        "{% for p in python.get_sys_path('/usr/bin/python3') %}{{ p.is_dir() }} "
        "{% endfor %}{{ python.stdlib }}",
        NULL, 0, &err);
    if (!out)
        fail_msg("%s", err.msg);
    assert_non_null(strstr(out, "True /usr/lib/python3"));
    free(out);
    expect_error("{{ ldd('/nonexistent/binary') }}", "ldd");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expressions), cmocka_unit_test(test_filters),
        cmocka_unit_test(test_statements),  cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_ldd_and_python),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
