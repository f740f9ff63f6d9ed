/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for trusted-file expansion and hashing (reference/gramine.md §3). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "trusted.h"

static char g_dir[64];

static void put(const char* rel, const char* content) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", g_dir, rel);
    struct moat_error err = {0};
    assert_int_equal(write_file_atomic(path, content, strlen(content), 0644, &err), 0);
}

static void hex_of(const char* content, char out[SHA256_HEX_SIZE]) {
    uint8_t d[32];
    assert_int_equal(sha256_buf(content, strlen(content), d), 0);
    assert_true(hex_encode(d, 32, out, SHA256_HEX_SIZE) > 0);
}

static int setup(void** state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/moat-trusted-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char p[256];
    snprintf(p, sizeof(p), "%s/tree", g_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/tree/sub", g_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/other", g_dir);
    mkdir(p, 0755);
    put("tree/b.txt", "bee\n");
    put("tree/a.txt", "ay\n");
    put("tree/sub/c.txt", "sea\n");
    put("other/hidden.txt", "not reached through the symlinked dir\n");
    char target[256], link[256];
    snprintf(target, sizeof(target), "%s/other", g_dir);
    snprintf(link, sizeof(link), "%s/tree/linkdir", g_dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(target, sizeof(target), "%s/tree/a.txt", g_dir);
    snprintf(link, sizeof(link), "%s/tree/z-link.txt", g_dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(p, sizeof(p), "%s/tree/fifo", g_dir);
    assert_int_equal(mkfifo(p, 0644), 0);
    return 0;
}

static int teardown(void** state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct toml_value* manifest_with(const char* const* uris, size_t n) {
    struct toml_value* root = toml_new_table();
    struct toml_value* arr  = toml_new_array();
    for (size_t i = 0; i < n; i++)
        toml_array_append(arr, toml_new_string(uris[i]));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    return root;
}

static const char* entry(const struct toml_value* root, size_t i, const char* field) {
    const struct toml_value* tf = toml_get_path(root, "sgx.trusted_files");
    assert_true(i < tf->u.arr.len);
    return toml_table_get(tf->u.arr.items[i], field)->u.str.ptr;
}

static void test_directory_expansion(void** state) {
    (void)state;
    _cleanup_free_ char* uri               = xasprintf("file:%s/tree/", g_dir);
    const char* uris[]                     = {uri};
    _cleanup_toml_ struct toml_value* root = manifest_with(uris, 1);
    struct trusted_opts opts               = {.threads = 2};
    struct moat_error err                  = {0};
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    const struct toml_value* tf = toml_get_path(root, "sgx.trusted_files");
    /* sorted, recursive, fifo skipped, symlinked dir not followed, symlinked file kept */
    assert_int_equal(tf->u.arr.len, 4);
    static const char* const names[] = {"a.txt", "b.txt", "sub/c.txt", "z-link.txt"};
    static const char* const data[]  = {"ay\n", "bee\n", "sea\n", "ay\n"};
    for (size_t i = 0; i < 4; i++) {
        _cleanup_free_ char* want = xasprintf("file:%s/tree/%s", g_dir, names[i]);
        assert_string_equal(entry(root, i, "uri"), want);
        char hex[SHA256_HEX_SIZE];
        hex_of(data[i], hex);
        assert_string_equal(entry(root, i, "sha256"), hex);
    }
}

static void test_given_hash_kept_and_duplicates(void** state) {
    (void)state;
    _cleanup_free_ char* a  = xasprintf("file:%s/tree/a.txt", g_dir);
    struct toml_value* root = toml_new_table();
    struct toml_value* arr  = toml_new_array();
    struct toml_value* t    = toml_new_table();
    toml_table_set(t, "uri", toml_new_string(a));
    toml_table_set(
        t, "sha256",
        toml_new_string("AB"
                        "00000000000000000000000000000000000000000000000000000000000000"));
    toml_array_append(arr, toml_new_string(a));
    toml_array_append(arr, t);
    toml_array_append(arr, toml_new_string("file:/nonexistent-but-hashed"));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    /* the third entry has no hash and does not exist */
    struct trusted_opts opts = {0};
    struct moat_error err    = {0};
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), -ENOENT);
    assert_string_equal(err.msg, "Missing trusted file: '/nonexistent-but-hashed'");
    toml_free(root);

    root = toml_new_table();
    arr  = toml_new_array();
    t    = toml_new_table();
    toml_table_set(t, "uri", toml_new_string(a));
    toml_table_set(
        t, "sha256",
        toml_new_string("ab00000000000000000000000000000000000000000000000000000000000000"));
    toml_array_append(arr, toml_new_string(a));
    toml_array_append(arr, t);
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_int_equal(toml_get_path(root, "sgx.trusted_files")->u.arr.len, 1);
    assert_string_equal(entry(root, 0, "sha256"),
                        "ab00000000000000000000000000000000000000000000000000000000000000");
    toml_free(root);
}

static void test_errors(void** state) {
    (void)state;
    struct trusted_opts opts = {0};
    struct moat_error err    = {0};
    _cleanup_free_ char* dir = xasprintf("file:%s/tree", g_dir);
    const char* u1[]         = {dir};
    struct toml_value* root  = manifest_with(u1, 1);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), -EINVAL);
    _cleanup_free_ char* want = xasprintf("Directory URI ('%s') does not end with \"/\"", dir);
    assert_string_equal(err.msg, want);
    toml_free(root);

    _cleanup_free_ char* file = xasprintf("file:%s/tree/a.txt/", g_dir);
    const char* u2[]          = {file};
    root                      = manifest_with(u2, 1);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "ends with \"/\" but is not a directory"));
    toml_free(root);

    const char* u3[] = {"http://example.com/x"};
    root             = manifest_with(u3, 1);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "must start with 'file:'"));
    toml_free(root);
}

static void test_chroot(void** state) {
    (void)state;
    /* inside the chroot, /abs.txt is a symlink to /tree/b.txt (absolute, resolved in chroot) */
    char link[256];
    snprintf(link, sizeof(link), "%s/abs.txt", g_dir);
    assert_int_equal(symlink("/tree/b.txt", link), 0);
    const char* uris[]       = {"file:/abs.txt", "file:/tree/sub/"};
    struct toml_value* root  = manifest_with(uris, 2);
    struct trusted_opts opts = {.chroot = g_dir};
    struct moat_error err    = {0};
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    char hex[SHA256_HEX_SIZE];
    hex_of("bee\n", hex);
    assert_string_equal(entry(root, 0, "uri"), "file:/abs.txt");
    assert_string_equal(entry(root, 0, "sha256"), hex);
    assert_string_equal(entry(root, 1, "uri"), "file:/tree/sub/c.txt");
    toml_free(root);
}

static void test_parallel_hashing(void** state) {
    (void)state;
    enum { N = 64 };
    char* paths[N];
    char(*hex)[SHA256_HEX_SIZE] = calloc(N, SHA256_HEX_SIZE);
    for (size_t i = 0; i < N; i++) {
        char rel[32], content[32];
        snprintf(rel, sizeof(rel), "tree/sub/f%zu", i);
        snprintf(content, sizeof(content), "file %zu\n", i);
        put(rel, content);
        paths[i] = xasprintf("%s/%s", g_dir, rel);
    }
    struct trusted_opts opts = {.threads = 4};
    struct moat_error err    = {0};
    assert_int_equal(hash_files_parallel((const char* const*)paths, N, hex, &opts, &err), 0);
    for (size_t i = 0; i < N; i++) {
        char content[32], want[SHA256_HEX_SIZE];
        snprintf(content, sizeof(content), "file %zu\n", i);
        hex_of(content, want);
        assert_string_equal(hex[i], want);
        free(paths[i]);
    }
    const char* missing[] = {"/nonexistent/file"};
    assert_true(hash_files_parallel(missing, 1, hex, &opts, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/file"));
    free(hex);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_expansion),
        cmocka_unit_test(test_given_hash_kept_and_duplicates),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_chroot),
        cmocka_unit_test(test_parallel_hashing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
