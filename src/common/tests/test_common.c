/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for src/common. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common.h"

static void test_size_strings(void** state) {
    (void)state;
    uint64_t v;
    assert_int_equal(parse_size_str("256K", &v), 0);
    assert_int_equal(v, 256 * 1024);
    assert_int_equal(parse_size_str("1024M", &v), 0);
    assert_int_equal(v, 1024ull << 20);
    assert_int_equal(parse_size_str("1g", &v), 0);
    assert_int_equal(v, 1ull << 30);
    assert_int_equal(parse_size_str("17", &v), 0);
    assert_int_equal(v, 17);
    const char* bad[] = {"", "K", "0x1000", "1KB", "1 K", " 1K", "-1", "1.5G", "1T", "1KK"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(parse_size_str(bad[i], &v), -EINVAL);
    assert_int_equal(parse_size_str("18446744073709551616", &v), -ERANGE);
    assert_int_equal(parse_size_str("17179869184G", &v), -ERANGE);
    assert_int_equal(parse_size_str("17179869183G", &v), 0);
}

static void check_norm(const char* in, const char* want) {
    char* got = path_normalize(in);
    if (strcmp(got, want) != 0)
        fail_msg("path_normalize(\"%s\") = \"%s\", want \"%s\"", in, got, want);
    free(got);
}

static void test_path_normalize(void** state) {
    (void)state;
    check_norm("/", "/");
    check_norm("", ".");
    check_norm(".", ".");
    check_norm("./nonexisting_testfile", "nonexisting_testfile");
    check_norm("a//b/./c/", "a/b/c");
    check_norm("/a/b/../c", "/a/c");
    check_norm("/../../a", "/a");
    check_norm("../a", "../a");
    check_norm("../../a/../b", "../../b");
    check_norm("a/../..", "..");
    check_norm("a/..", ".");
    check_norm("/a/..", "/");
    check_norm("//x//", "/x");
    char* j = path_join("/lib/", "/x");
    assert_string_equal(j, "/lib/x");
    free(j);
    j = path_join("/", "x");
    assert_string_equal(j, "/x");
    free(j);
    j = path_join("scripts", "a.py");
    assert_string_equal(j, "scripts/a.py");
    free(j);
}

static void test_hex(void** state) {
    (void)state;
    uint8_t in[256];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    char out[513];
    assert_int_equal(hex_encode(in, sizeof(in), out, sizeof(out)), 512);
    assert_memory_equal(out, "000102", 6);
    assert_memory_equal(out + 2 * 0xab, "ab", 2);
    assert_memory_equal(out + 2 * 0xff, "ff", 2);
    uint8_t back[256];
    assert_int_equal(hex_decode(out, 512, back, sizeof(back)), 256);
    assert_memory_equal(in, back, 256);
    assert_int_equal(hex_decode("ABCDEF", 6, back, 3), 3);
    assert_int_equal(back[0], 0xab);
    const char* bad[] = {"0g", "g0", "0:", "/0", "@0", "0G", "`0", "  "};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(hex_decode(bad[i], 2, back, 1), -EINVAL);
    assert_int_equal(hex_decode("abc", 3, back, 2), -EINVAL);
    assert_int_equal(hex_decode("abcd", 4, back, 1), -EINVAL);
    assert_int_equal(hex_encode(in, 4, out, 8), -ENOBUFS);
    /* every byte value: only [0-9a-fA-F] decode */
    for (int c = 0; c < 256; c++) {
        char s[2] = {(char)c, '0'};
        bool ok   = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        assert_int_equal(hex_decode(s, 2, back, 1), ok ? 1 : -EINVAL);
    }
}

static void test_base64(void** state) {
    (void)state;
    const char* vec[][2] = {{"", ""},
                            {"f", "Zg=="},
                            {"fo", "Zm8="},
                            {"foo", "Zm9v"},
                            {"foob", "Zm9vYg=="},
                            {"fooba", "Zm9vYmE="},
                            {"foobar", "Zm9vYmFy"},
                            {"\xff\xfe\xfd", "//79"},
                            {"\xfb\xef", "++8="}};
    for (size_t i = 0; i < ARRAY_SIZE(vec); i++) {
        char* e = base64_encode_alloc(vec[i][0], strlen(vec[i][0]));
        assert_string_equal(e, vec[i][1]);
        free(e);
        uint8_t* d;
        size_t dl;
        assert_int_equal(base64_decode_alloc(vec[i][1], strlen(vec[i][1]), &d, &dl), 0);
        assert_int_equal(dl, strlen(vec[i][0]));
        assert_memory_equal(d, vec[i][0], dl);
        free(d);
    }
    uint8_t* d;
    size_t dl;
    const char* bad[] = {"Zg=", "Z===", "Zm9v!A==", "Zh==", "Zm9=", "Zm 9"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(base64_decode_alloc(bad[i], strlen(bad[i]), &d, &dl), -EINVAL);
}

/* RFC 7515 Appendix C, and the JWS header of RFC 7515 A.1 */
static void test_base64url(void** state) {
    (void)state;
    const char* vec[][2] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"\xff\xfe\xfd", "__79"},
        {"\xfb\xef", "--8"},
        {"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}", "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"}};
    for (size_t i = 0; i < ARRAY_SIZE(vec); i++) {
        char* e = base64url_encode_alloc(vec[i][0], strlen(vec[i][0]));
        assert_string_equal(e, vec[i][1]);
        free(e);
        uint8_t* d;
        size_t dl;
        assert_int_equal(base64url_decode_alloc(vec[i][1], strlen(vec[i][1]), &d, &dl), 0);
        assert_int_equal(dl, strlen(vec[i][0]));
        assert_memory_equal(d, vec[i][0], dl);
        free(d);
    }
    uint8_t* d;
    size_t dl;
    const char* bad[] = {"Zg==", "Z", "//79", "++8", "Zh", "Zm 9", "Zm9v!A"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(base64url_decode_alloc(bad[i], strlen(bad[i]), &d, &dl), -EINVAL);
}

static void test_utf8_seq_len(void** state) {
    (void)state;
    assert_int_equal(utf8_seq_len("a", 1), 1);
    assert_int_equal(utf8_seq_len("\xc3\xa9", 2), 2);         /* é */
    assert_int_equal(utf8_seq_len("\xe2\x82\xac", 3), 3);     /* € */
    assert_int_equal(utf8_seq_len("\xf0\x9f\x98\x80", 4), 4); /* U+1F600 */
    assert_int_equal(utf8_seq_len("\xc3\xa9", 1), 0);         /* cut short */
    assert_int_equal(utf8_seq_len("\xc0\xaf", 2), 0);         /* overlong '/' */
    assert_int_equal(utf8_seq_len("\xed\xa0\x80", 3), 0);     /* surrogate */
    assert_int_equal(utf8_seq_len("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
    assert_int_equal(utf8_seq_len("\x80", 1), 0);
    assert_int_equal(utf8_seq_len("\xc3(", 2), 0);
}

static void test_cursor(void** state) {
    (void)state;
    const uint8_t buf[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct cursor c     = cursor_init(buf, sizeof(buf));
    uint16_t a;
    uint32_t b;
    uint64_t q;
    assert_int_equal(cur_u16le(&c, &a), 0);
    assert_int_equal(a, 0x0201);
    assert_int_equal(cur_u32be(&c, &b), 0);
    assert_int_equal(b, 0x03040506);
    assert_int_equal(cur_u64le(&c, &q), -EBADMSG);
    assert_int_equal(c.len, 3); /* unchanged on failure */
    struct cursor sub;
    assert_int_equal(cur_sub(&c, 2, &sub), 0);
    assert_int_equal(sub.len, 2);
    assert_int_equal(cur_skip(&c, 2), -EBADMSG);
    assert_int_equal(cur_skip(&c, 1), 0);
    assert_int_equal(c.len, 0);
}

static void test_sha256(void** state) {
    (void)state;
    uint8_t d[32];
    char hex[65];
    assert_int_equal(sha256_buf("trusted_testfile", 16, d), 0);
    assert_int_equal(hex_encode(d, 32, hex, sizeof(hex)), 64);
    /* value from reference/gramine.md §7 */
    assert_string_equal(hex, "41dacdf1e6d0481d3b1ab1a91f93139db02b96f29cfdd3fb0b819ba1e33cafc4");
    char path[] = "/tmp/moat-test-XXXXXX";
    int fd      = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, "trusted_testfile", 16), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    uint8_t d2[32];
    assert_int_equal(sha256_fd(fd, d2), 0);
    assert_memory_equal(d, d2, 32);
    close(fd);
    unlink(path);
}

static void test_files(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char* p = path_join(dir, "out.txt");
    struct moat_error err;
    assert_int_equal(write_file_atomic(p, "hello\n", 6, 0640, &err), 0);
    char* buf;
    size_t len;
    assert_int_equal(read_file(p, &buf, &len, &err), 0);
    assert_int_equal(len, 6);
    assert_string_equal(buf, "hello\n");
    free(buf);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* a failed write leaves nothing behind and names the path */
    char* bad = path_join(dir, "missing/out.txt");
    assert_int_equal(write_file_atomic(bad, "x", 1, 0644, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "missing/out.txt"));
    assert_int_equal(read_file(bad, &buf, &len, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_int_equal(read_file(dir, &buf, &len, &err), -EISDIR);
    unlink(p);
    rmdir(dir);
    free(p);
    free(bad);
}

static void test_strbuf_and_errors(void** state) {
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&sb, "%d,", i);
    assert_int_equal(strncmp(sb.buf, "0,1,2,", 6), 0);
    size_t len;
    char* s = strbuf_take(&sb, &len);
    assert_int_equal(len, strlen(s));
    free(s);
    struct moat_error err;
    assert_int_equal(moat_error_set(&err, -EINVAL, "bad '%s'", "k"), -EINVAL);
    assert_int_equal(moat_error_prefix(&err, "file.toml"), -EINVAL);
    assert_string_equal(err.msg, "file.toml: bad 'k'");
    moat_error_set_errno(&err, -ENOENT, "open '%s'", "x");
    assert_string_equal(err.msg, "open 'x': No such file or directory");
    enum log_level l;
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARNING);
    assert_int_equal(log_level_parse("warn", &l), -EINVAL);
    int64_t i64;
    assert_int_equal(parse_i64("-12", 10, &i64), 0);
    assert_int_equal(i64, -12);
    assert_int_equal(parse_i64("12x", 10, &i64), -EINVAL);
    assert_int_equal(parse_i64("", 10, &i64), -EINVAL);
    assert_int_equal(parse_i64("99999999999999999999", 10, &i64), -ERANGE);
    uint64_t u64;
    assert_int_equal(parse_u64("-1", 10, &u64), -EINVAL);
    assert_int_equal(parse_u64("0xff", 16, &u64), 0);
    assert_int_equal(u64, 255);
}

static void test_format_double(void** state) {
    (void)state;
    static const struct {
        double d;
        const char* want;
    } cases[] = {{0.1, "0.1"},
                 {2.0, "2.0"},
                 {-0.5, "-0.5"},
                 {1e100, "1e+100"},
                 {1.0 / 3, "0.3333333333333333"},
                 {0.0, "0.0"},
                 {-1.0 / 0.0, "-inf"},
                 /* Python's repr: positional up to 1e16, exponent below 1e-4 */
                 {1e15, "1000000000000000.0"},
                 {1e16, "1e+16"},
                 {1.5e-5, "1.5e-05"},
                 {0.0001, "0.0001"},
                 {-0.0, "-0.0"},
                 {1.5e10, "15000000000.0"},
                 {123.456, "123.456"},
                 {5e-324, "5e-324"},
                 {1.7976931348623157e308, "1.7976931348623157e+308"}};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char buf[64];
        format_double(cases[i].d, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
    char buf[32];
    format_double(0.0 / 0.0, buf, sizeof(buf));
    assert_string_equal(buf, "nan");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_double),
        cmocka_unit_test(test_size_strings),
        cmocka_unit_test(test_path_normalize),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_utf8_seq_len),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_strbuf_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
