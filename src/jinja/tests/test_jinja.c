/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the Jinja-subset template engine; expected outputs were produced by Jinja2
 * with gramine-manifest's settings (StrictUndefined, keep_trailing_newline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "jinja.h"

static struct jinja_env g_env = {
    .pkglibdir = "/usr/lib/moat",
    .libos     = "/usr/bin/moat",
    .glibc_dir = "/lib/x86_64-linux-gnu",
    .musl_dir  = NULL,
    .python    = "/usr/bin/python3",
};

static char* render(const char* text, const struct jinja_define* defs, size_t n,
                    struct moat_error* err) {
    char* out = NULL;
    size_t len;
    if (jinja_render(text, strlen(text), "t.template", defs, n, &g_env, &out, &len, err) < 0)
        return NULL;
    assert_int_equal(strlen(out), len);
    return out;
}

static void expect(const char* text, const char* want) {
    struct moat_error err                   = {0};
    static const struct jinja_define defs[] = {{"name", "world"}, {"flag", NULL}, {"n", "3"}};
    char* out                               = render(text, defs, ARRAY_SIZE(defs), &err);
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

/* StrictUndefined (jinja2/runtime.py): a missing attribute or item is an undefined value that
 * fails only when used; `a if c` without else is the lenient jinja2.Undefined. */
static void test_undefined(void** state) {
    (void)state;
    expect("{{ {'a': 1}.b is defined }} {{ {'a': 1}.b | default(5) }} {{ [1][3] is defined }}",
           "False 5 False");
    expect("{{ env.MOAT_SURELY_UNSET_VAR | default('x') }} {{ name.nope is defined }}", "x False");
    expect("{{ 'a' if false }}|{{ ('a' if false) ~ 'x' }}|{{ ('a' if false) is defined }}",
           "|x|False");
    expect("{{ [undefined_x] }} {{ [] | first is defined }}", "[Undefined] False");
    expect("{{ undefined_x not in [] }}", "True");
    expect_error("{{ [1][3] }}", "list object has no element 3");
    expect_error("{{ env['MOAT_SURELY_UNSET_VAR'] }}",
                 "'os._Environ object' has no attribute 'MOAT_SURELY_UNSET_VAR'");
    expect_error("{{ 'abc'.nope }}", "'str object' has no attribute 'nope'");
    expect_error("{{ undefined_x is odd }}", "'undefined_x' is undefined");
    expect_error("{{ ('a' if false) | int }}", "no else section was defined");
}

/* jinja2/lexer.py literals, Python's unicode-escape, parse_tuple, operator precedence */
static void test_literals_and_operators(void** state) {
    (void)state;
    expect("{{ 0x1f }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1.5e-7 }} {{ 2E+2 }} {{ 1e15 }}",
           "31 15 5 1000 1.5e-07 200.0 1000000000000000.0");
    expect("{{ 'a\\x41\\u00e9\\101\\q' }}",
           "aA\xc3\xa9"
           "A\\q");
    expect("{{ 1, 2 }} {{ (1,) }} {{ () }} {{ [1, 2,] }} {{ {'a': 1,} }}",
           "(1, 2) (1,) () [1, 2] {'a': 1}");
    expect("{{ 2 * 3 ~ 4 }} {{ 1 ~ 2 * 3 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", "64 16 True False");
    expect("{{ 'abcdef'[1:3] }} {{ [1, 2, 3][::-1] }} {{ 'abc'[-2:] }} {{ (1, 2, 3)[:2] }}",
           "bc [3, 2, 1] bc (1, 2)");
    expect("{{ 'ab' * 2 }} {{ [0] * 3 }} {{ -7.5 // 2 }} {{ 7.5 % -2 }} {{ 2 ** -1 }}",
           "abab [0, 0, 0] -4.0 -0.5 0.5");
    expect("{{ '%s-%03d|%-4s|%.2f|%x' % ('a', 7, 'b', 3.14159, 255) }} {{ '%(k)s' % {'k': 1} }}",
           "a-007|b   |3.14|ff 1");
    expect("{{ '{} {:>4} {:05.1f} {:,} {x!r}'.format('a', 'b', 2.25, 1234567, x='q') }}",
           "a    b 002.2 1,234,567 'q'");
    expect("a\r\nb{{ 'c\r\nd' }}\r", "a\nbc\nd\n");
    expect("{{ '}}' }}{{ {'a': {'b': 1}}.a.b }}", "}}1");
    expect_error("{{ 9223372036854775807 + 1 }}", "integer overflow");
    expect_error("{{ 'a' ~ 1 + 2 }}", "can only concatenate str (not \"int\") to str");
    expect_error("{% if false %}{{ x | nosuchfilter }}{% endif %}", "no filter named");
}

static void test_more_filters_and_tests(void** state) {
    (void)state;
    expect(
        "{{ [3, 1, 2] | sort(reverse=true) }} {{ ['b', 'A', 'a'] | sort }} "
        "{{ ['a', 'A'] | unique | list }} {{ 0 | default('d', boolean=true) }}",
        "[3, 2, 1] ['A', 'a', 'b'] ['a'] d");
    expect(
        "{{ [{'a': 1}, {'a': 2}] | map(attribute='a') | list }} "
        "{{ [{'a': 0}, {'a': 2}] | selectattr('a') | list }} "
        "{{ [1, 2, 3, 4] | select('divisibleby', 2) | list }} {{ ['x'] | map('upper') | list }}",
        "[1, 2] [{'a': 2}] [2, 4] ['X']");
    expect(
        "{{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': [1], 'a': none} | tojson }} "
        "{{ '<&>' | tojson }} {{ '<a>' | e }}",
        "[('a', 2), ('b', 1)] {\"a\": null, \"b\": [1]} \"\\u003c\\u0026\\u003e\" &lt;a&gt;");
    expect(
        "{{ '0x1A' | int }} {{ '1A' | int(base=16) }} {{ ' 5 ' | int }} {{ '4.7' | int }} "
        "{{ 'x' | int(7) }} {{ ' 2 ' | float }} {{ 2.675 | round(2) }} {{ 2.5 | round }}",
        "0 26 5 4 7 2.0 2.67 2.0");
    expect(
        "{{ 'a\\nb' | indent(2) }}|{{ 'abc' | center(7) }}|{{ 'hello world foo' | truncate(9) }}|"
        "{{ 'a-b c' | title }}|{{ [1, 2, 3] | sum }}|{{ [3, 1] | min }}",
        "a\n  b|  abc  |hello...|A-B C|6|1");
    expect(
        "{{ 3 is divisibleby 3 }} {{ 1.5 is odd }} {{ none is sameas none }} {{ 2 is in [2] }} "
        "{{ 'x' is lower }} {{ true is number }} {{ 1 is integer }} {{ 'upper' is filter }}",
        "True False True True True True True True");
    expect(
        "{{ ' a  b '.split() }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'a=b'.partition('=') }} "
        "{{ '-4'.zfill(4) }} {{ ', '.join(['x', 'y']) }} {{ {'a': 1}.items() }}",
        "['a', 'b'] ['a,b', 'c'] ('a', '=', 'b') -004 x, y dict_items([('a', 1)])");
}

static void test_more_statements(void** state) {
    (void)state;
    expect(
        "{% set ns = namespace(n=0) %}{% for x in [1, 2, 3] %}{% set ns.n = ns.n + x %}"
        "{% endfor %}{{ ns.n }}",
        "6");
    expect("{% with a = 1, b = name %}{{ a }}{{ b }}{% endwith %}{{ a is defined }}",
           "1worldFalse");
    expect("{% filter upper %}x {{ name }}{% endfilter %}", "X WORLD");
    expect("{% set x %}[{{ name }}]{% endset %}{{ x }}{% set y | upper %}q{% endset %}{{ y }}",
           "[world]Q");
    expect(
        "{% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %}"
        "{% set c, d = 5, 6 %}{{ c }}{{ d }}",
        "123456");
    expect(
        "{% for x in [1, 2, 3] %}{{ loop.cycle('a', 'b') }}{{ loop.previtem | default('-') }}"
        "{% endfor %}",
        "a-b1a2");
    expect("{% for x in 'ab' %}{{ loop.revindex }}{{ loop.length }}{% endfor %}", "2212");
    expect_error("{% for x in [1] recursive %}{% endfor %}", "recursive");
    expect_error("{% include 'x' %}", "unsupported statement {% include %}");
}

static void test_limits(void** state) {
    (void)state;
    /* hostile templates hit a limit instead of exhausting memory */
    expect_error("{{ 'a' * 100000000 }}", "too large");
    expect_error("{{ range(1000000) }}", "too long");
    /* a namespace can contain itself: printing and comparing stop instead of recursing */
    expect("{% set ns = namespace() %}{% set ns.me = ns %}{{ (ns | string)[:30] }} {{ ns == ns }}",
           "<Namespace {'me': <Namespace { True");
    /* Jinja reports an output at the line where its expression starts */
    expect_error("a\n{{\n\n missing }}", "t.template:4: 'missing' is undefined");
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
    expect_error("{{ ldd('/nonexistent/binary') }}", "ldd('/nonexistent/binary')");
    expect_error("{{ python.get_sys_path() }}", "missing required argument 'interpreter'");
    /* sysconfig values keep their types; get_paths() holds strings, python.stdlib is a Path */
    expect(
        "{{ python.get_config_var('Py_DEBUG') is integer }} "
        "{{ python.get_paths()['stdlib'] is string }} {{ python.stdlib is string }} "
        "{{ (python.stdlib / 'os.py').is_file() }}",
        "True True False True");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_undefined),
        cmocka_unit_test(test_literals_and_operators),
        cmocka_unit_test(test_more_filters_and_tests),
        cmocka_unit_test(test_more_statements),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_ldd_and_python),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
