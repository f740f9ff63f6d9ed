/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for trusted-file expansion and hashing (reference/gramine.md §3; Gramine's
 * python/graminelibos/manifest.py: TrustedFile.expand_directory, resolve_symlinks,
 * Manifest.expand_all_trusted_files). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "trusted.h"

#define H1       "ab00000000000000000000000000000000000000000000000000000000000000"
#define H2       "cd00000000000000000000000000000000000000000000000000000000000000"
#define H1_UPPER "AB00000000000000000000000000000000000000000000000000000000000000"
#define NOT_HEX  "g000000000000000000000000000000000000000000000000000000000000000"

static char g_dir[64];

static char* at(const char* rel) {
    return xasprintf("%s/%s", g_dir, rel);
}

static void put(const char* rel, const char* content) {
    _cleanup_free_ char* path = at(rel);
    struct moat_error err     = {0};
    assert_int_equal(write_file_atomic(path, content, strlen(content), 0644, &err), 0);
}

static void mkdir_at(const char* rel) {
    _cleanup_free_ char* path = at(rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void symlink_at(const char* target, const char* rel) {
    _cleanup_free_ char* path = at(rel);
    assert_int_equal(symlink(target, path), 0);
}

static void hex_of(const char* content, size_t len, char out[SHA256_HEX_SIZE]) {
    uint8_t d[SHA256_DIGEST_SIZE];
    assert_int_equal(sha256_buf(content, len, d), 0);
    assert_int_equal(hex_encode(d, sizeof(d), out, SHA256_HEX_SIZE), 64);
}

/*
 * tree/                       expanded as "file:<g_dir>/tree/"
 *   .hidden  B.txt  a.txt     regular files (byte order: '.' < 'B' < 'a')
 *   dangling -> nowhere       skipped
 *   empty/                    nothing in it
 *   fifo                      skipped (neither file nor directory)
 *   linkdir -> <g_dir>/other  symlinked directory: not descended into
 *   locked/x.txt              directory chmod 000: skipped unless we are root
 *   secret.txt                chmod 000: skipped unless we are root
 *   sub/c.txt sub/deeper/d.txt
 *   sub-x  sub.txt            siblings of sub/: "sub" < "sub-x" < "sub.txt", depth first
 *   z-link.txt -> a.txt       symlinked file: kept, hashed through the link
 * root/                       the --chroot tests' image (see test_chroot)
 */
static int setup(void** state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/moat-trusted-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    mkdir_at("tree");
    mkdir_at("tree/sub");
    mkdir_at("tree/sub/deeper");
    mkdir_at("tree/empty");
    mkdir_at("tree/locked");
    mkdir_at("other");
    mkdir_at("par");
    put("tree/.hidden", "dot\n");
    put("tree/B.txt", "capital bee\n");
    put("tree/a.txt", "ay\n");
    put("tree/b.txt", "bee\n");
    put("tree/secret.txt", "secret\n");
    put("tree/locked/x.txt", "locked\n");
    put("tree/sub/c.txt", "sea\n");
    put("tree/sub/deeper/d.txt", "dee\n");
    put("tree/sub-x", "dash\n");
    put("tree/sub.txt", "dot txt\n");
    put("other/hidden.txt", "not reached through the symlinked dir\n");
    _cleanup_free_ char* other = at("other");
    _cleanup_free_ char* a     = at("tree/a.txt");
    _cleanup_free_ char* none  = at("nowhere");
    symlink_at(other, "tree/linkdir");
    symlink_at(a, "tree/z-link.txt");
    symlink_at(none, "tree/dangling");
    _cleanup_free_ char* fifo = at("tree/fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    _cleanup_free_ char* secret = at("tree/secret.txt");
    _cleanup_free_ char* locked = at("tree/locked");
    assert_int_equal(chmod(secret, 0), 0);
    assert_int_equal(chmod(locked, 0), 0);
    return 0;
}

static int teardown(void** state) {
    (void)state;
    _cleanup_free_ char* cmd = xasprintf("chmod -R u+rwx '%s' && rm -rf '%s'", g_dir, g_dir);
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

static struct toml_value* entry_table(const char* uri, const char* sha256) {
    struct toml_value* t = toml_new_table();
    toml_table_set(t, "uri", toml_new_string(uri));
    if (sha256)
        toml_table_set(t, "sha256", toml_new_string(sha256));
    return t;
}

static size_t count(const struct toml_value* root) {
    const struct toml_value* tf = toml_get_path(root, "sgx.trusted_files");
    assert_non_null(tf);
    assert_int_equal(tf->type, TOML_ARRAY);
    return tf->u.arr.len;
}

static const char* entry(const struct toml_value* root, size_t i, const char* field) {
    const struct toml_value* tf = toml_get_path(root, "sgx.trusted_files");
    assert_true(i < tf->u.arr.len);
    const struct toml_value* e = tf->u.arr.items[i];
    assert_int_equal(e->type, TOML_TABLE);
    assert_int_equal(e->u.tab.len, 2);
    const struct toml_value* v = toml_table_get(e, field);
    assert_non_null(v);
    assert_int_equal(v->type, TOML_STRING);
    return v->u.str.ptr;
}

static void assert_entry(const struct toml_value* root, size_t i, const char* uri,
                         const char* content) {
    char hex[SHA256_HEX_SIZE];
    hex_of(content, strlen(content), hex);
    assert_string_equal(entry(root, i, "uri"), uri);
    assert_string_equal(entry(root, i, "sha256"), hex);
}

/* Expands and expects failure with exactly `msg`; the manifest must be left unchanged. */
static void expect_error(struct toml_value* root, const struct trusted_opts* opts, int code,
                         const char* msg) {
    _cleanup_toml_ struct toml_value* before = toml_clone(root);
    struct moat_error err                    = {0};
    assert_int_equal(manifest_expand_trusted_files(root, opts, &err), code);
    assert_string_equal(err.msg, msg);
    assert_true(toml_equal(root, before));
}

static void expect_error1(const char* uri, int code, const char* msg) {
    const char* uris[]                     = {uri};
    _cleanup_toml_ struct toml_value* root = manifest_with(uris, 1);
    struct trusted_opts opts               = {0};
    expect_error(root, &opts, code, msg);
}

/* §3: recursive, sorted, non-regular skipped, symlinked dirs not followed, symlinked files
 * kept, unreadable entries skipped. */
static void test_directory_expansion(void** state) {
    (void)state;
    _cleanup_free_ char* uri               = xasprintf("file:%s/tree/", g_dir);
    const char* uris[]                     = {uri};
    _cleanup_toml_ struct toml_value* root = manifest_with(uris, 1);
    struct trusted_opts opts               = {.threads = 2};
    struct moat_error err                  = {0};
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);

    /* root ignores the permission bits, as os.access() says for it */
    bool root_user = geteuid() == 0;
    struct {
        const char *name, *content;
        bool only_root;
    } want[] = {
        {".hidden", "dot\n", false},        {"B.txt", "capital bee\n", false},
        {"a.txt", "ay\n", false},           {"b.txt", "bee\n", false},
        {"locked/x.txt", "locked\n", true}, {"secret.txt", "secret\n", true},
        {"sub/c.txt", "sea\n", false},      {"sub/deeper/d.txt", "dee\n", false},
        {"sub-x", "dash\n", false},         {"sub.txt", "dot txt\n", false},
        {"z-link.txt", "ay\n", false},
    };
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        if (want[i].only_root && !root_user)
            continue;
        _cleanup_free_ char* u = xasprintf("file:%s/tree/%s", g_dir, want[i].name);
        assert_entry(root, k++, u, want[i].content);
    }
    assert_int_equal(count(root), k);
}

/* Relative URIs stay relative; member paths are spelled like pathlib (no "./", no "//"). */
static void test_relative_paths(void** state) {
    (void)state;
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(cwd >= 0);
    assert_int_equal(chdir(g_dir), 0);
    const char* uris[]       = {"file:tree/sub/", "file:./tree//sub/", "file:tree/a.txt",
                                "file:./tree/a.txt"};
    struct toml_value* root  = manifest_with(uris, ARRAY_SIZE(uris));
    struct trusted_opts opts = {0};
    struct moat_error err    = {0};
    int ret                  = manifest_expand_trusted_files(root, &opts, &err);
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
    assert_int_equal(ret, 0);
    /* the second directory expands to the same URIs: merged */
    assert_int_equal(count(root), 4);
    assert_entry(root, 0, "file:tree/sub/c.txt", "sea\n");
    assert_entry(root, 1, "file:tree/sub/deeper/d.txt", "dee\n");
    /* listed files keep the URI as written, so these two are different entries */
    assert_entry(root, 2, "file:tree/a.txt", "ay\n");
    assert_entry(root, 3, "file:./tree/a.txt", "ay\n");
    toml_free(root);

    /* pathlib keeps exactly two leading slashes (POSIX) and folds three or more into one */
    _cleanup_free_ char* two   = xasprintf("file://%s/tree/sub/deeper/", g_dir + 1);
    _cleanup_free_ char* three = xasprintf("file:///%s/tree/sub/deeper/", g_dir + 1);
    const char* slashes[]      = {two, three};
    root                       = manifest_with(slashes, 2);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    _cleanup_free_ char* want2 = xasprintf("file://%s/tree/sub/deeper/d.txt", g_dir + 1);
    _cleanup_free_ char* want3 = xasprintf("file:%s/tree/sub/deeper/d.txt", g_dir);
    assert_int_equal(count(root), 2);
    assert_entry(root, 0, want2, "dee\n");
    assert_entry(root, 1, want3, "dee\n");
    toml_free(root);
}

/* Given hashes are kept verbatim and not recomputed; duplicates merge at the first position;
 * a listed file only has to exist if nothing supplies its hash. */
static void test_given_hash_and_duplicates(void** state) {
    (void)state;
    _cleanup_free_ char* a       = xasprintf("file:%s/tree/a.txt", g_dir);
    _cleanup_free_ char* b       = xasprintf("file:%s/tree/b.txt", g_dir);
    _cleanup_free_ char* missing = xasprintf("file:%s/nowhere.txt", g_dir);
    struct trusted_opts opts     = {0};
    struct moat_error err        = {0};

    struct toml_value* root = toml_new_table();
    struct toml_value* arr  = toml_new_array();
    toml_array_append(arr, toml_new_string(b));
    toml_array_append(arr, entry_table(a, H1_UPPER)); /* wrong for a.txt, and upper case */
    toml_array_append(arr, entry_table(b, H2));
    toml_array_append(arr, toml_new_string(a));
    toml_array_append(arr, entry_table(b, H2));
    toml_array_append(arr, toml_new_string(missing));
    toml_array_append(arr, entry_table(missing, H1));
    toml_array_append(arr, entry_table(b, NULL));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_int_equal(count(root), 3);
    assert_string_equal(entry(root, 0, "uri"), b);
    assert_string_equal(entry(root, 0, "sha256"), H2);
    assert_string_equal(entry(root, 1, "uri"), a);
    assert_string_equal(entry(root, 1, "sha256"), H1_UPPER);
    assert_string_equal(entry(root, 2, "uri"), missing);
    assert_string_equal(entry(root, 2, "sha256"), H1);
    toml_free(root);

    /* conflicting hashes: error naming both and the URI */
    root = toml_new_table();
    arr  = toml_new_array();
    toml_array_append(arr, entry_table(a, H1));
    toml_array_append(arr, toml_new_string(b));
    toml_array_append(arr, entry_table(a, H2));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    _cleanup_free_ char* msg =
        xasprintf("Two different sha256 values (" H1 " and " H2 ") for the same URI '%s'", a);
    expect_error(root, &opts, -EINVAL, msg);
    toml_free(root);

    /* a listed file twice, and a member of a listed directory again: hashed once */
    _cleanup_free_ char* dir = xasprintf("file:%s/tree/sub/", g_dir);
    _cleanup_free_ char* c   = xasprintf("file:%s/tree/sub/c.txt", g_dir);
    const char* uris[]       = {c, dir, c};
    root                     = manifest_with(uris, ARRAY_SIZE(uris));
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_int_equal(count(root), 2);
    assert_entry(root, 0, c, "sea\n");
    toml_free(root);
}

/* The messages of TrustedFile.expand_directory and gramine-sgx-sign, exactly. */
static void test_errors(void** state) {
    (void)state;
    _cleanup_free_ char* dir  = xasprintf("file:%s/tree", g_dir);
    _cleanup_free_ char* msg1 = xasprintf("Directory URI ('%s') does not end with \"/\"", dir);
    expect_error1(dir, -EINVAL, msg1);

    _cleanup_free_ char* file = xasprintf("file:%s/tree/a.txt/", g_dir);
    _cleanup_free_ char* msg2 = xasprintf("URI '%s' ends with \"/\" but is not a directory", file);
    expect_error1(file, -EINVAL, msg2);

    _cleanup_free_ char* gone = xasprintf("file:%s/nowhere/", g_dir);
    _cleanup_free_ char* msg3 = xasprintf("URI '%s' ends with \"/\" but is not a directory", gone);
    expect_error1(gone, -EINVAL, msg3);

    _cleanup_free_ char* missing = xasprintf("file:%s/nowhere.txt", g_dir);
    _cleanup_free_ char* msg4    = xasprintf("Missing trusted file: '%s/nowhere.txt'", g_dir);
    expect_error1(missing, -ENOENT, msg4);

    _cleanup_free_ char* fifo = xasprintf("file:%s/tree/fifo", g_dir);
    _cleanup_free_ char* msg5 =
        xasprintf("trusted file '%s/tree/fifo' is not a regular file", g_dir);
    expect_error1(fifo, -EINVAL, msg5);

    /* expansion errors come before missing files, as gramine-manifest hashes last */
    const char* two[]       = {missing, dir};
    struct toml_value* root = manifest_with(two, 2);
    expect_error(root, &(struct trusted_opts){0}, -EINVAL, msg1);
    toml_free(root);

    /* a directory may not carry a hash, and a hash does not excuse a missing '/' */
    _cleanup_free_ char* dir_slash = xasprintf("%s/", dir);
    _cleanup_free_ char* msg6 = xasprintf("Directory URI ('%s') has sha256 specified", dir_slash);
    root                      = toml_new_table();
    struct toml_value* arr    = toml_new_array();
    toml_array_append(arr, entry_table(dir_slash, H1));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    expect_error(root, &(struct trusted_opts){0}, -EINVAL, msg6);
    toml_free(root);
    root = toml_new_table();
    arr  = toml_new_array();
    toml_array_append(arr, entry_table(dir, H1));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    expect_error(root, &(struct trusted_opts){0}, -EINVAL, msg1);
    toml_free(root);

    /* malformed entries name their key */
    root = toml_new_table();
    arr  = toml_new_array();
    toml_array_append(arr, toml_new_string(missing));
    toml_array_append(arr, toml_new_string("http://example.com/x"));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
    expect_error(root, &(struct trusted_opts){0}, -EINVAL,
                 "sgx.trusted_files[1]: Unsupported URI type: http://example.com/x");
    toml_free(root);

    struct {
        struct toml_value* value;
        const char* msg;
    } bad[] = {
        {entry_table("file:/x", "abc"), "sgx.trusted_files[0].sha256 must be 64 hex digits"},
        {entry_table("file:/x", NOT_HEX), "sgx.trusted_files[0].sha256 must be 64 hex digits"},
        {toml_new_integer(5),
         "sgx.trusted_files[0]: Unknown trusted file format (expected a string or a { uri, "
         "sha256 } table)"},
        {toml_new_table(), "sgx.trusted_files[0].uri must be a string"},
        {entry_table("file:/x", NULL), NULL}, /* + an extra key, below */
    };
    toml_table_set(bad[4].value, "mode", toml_new_string("r"));
    bad[4].msg = "sgx.trusted_files[0]: Leftover trusted file items: 'mode'";
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        root = toml_new_table();
        arr  = toml_new_array();
        toml_array_append(arr, bad[i].value);
        assert_int_equal(toml_set_path(root, "sgx.trusted_files", arr), 0);
        expect_error(root, &(struct trusted_opts){0}, -EINVAL, bad[i].msg);
        toml_free(root);
    }

    root = toml_new_table();
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", toml_new_integer(1)), 0);
    expect_error(root, &(struct trusted_opts){0}, -EINVAL,
                 "Unsupported trusted files syntax, more info: "
                 "https://gramine.readthedocs.io/en/latest/manifest-syntax.html#trusted-files");
    toml_free(root);
}

/* --chroot: DIR/<abs path> is hashed, symlinks resolve inside DIR (absolute targets restart at
 * DIR, ".." stops at its top), directory members are named after the resolved directory as
 * TrustedFile.from_realpath does. None of root/'s absolute targets exist on the host. */
static void test_chroot(void** state) {
    (void)state;
    mkdir_at("root");
    mkdir_at("root/tree");
    mkdir_at("root/tree/sub");
    put("root/tree/a.txt", "ay\n");
    put("root/tree/b.txt", "bee\n");
    put("root/tree/sub/c.txt", "sea\n");
    symlink_at("/tree/b.txt", "root/tree/abslink");
    symlink_at("/tree/loop", "root/tree/loop");
    symlink_at("/tree", "root/tree/up");
    symlink_at("/tree/b.txt", "root/abs.txt");
    symlink_at("../../../../../tree/a.txt", "root/esc.txt");
    symlink_at("/tree", "root/lnk");
    symlink_at("/loop2", "root/loop1");
    symlink_at("loop1", "root/loop2");

    const char* uris[] = {"file:/abs.txt", "file:/esc.txt", "file:/lnk/sub/", "file:/tree/",
                          "file:/lnk/../lnk/./a.txt"};
    _cleanup_free_ char* chroot = xasprintf("%s/root/", g_dir);
    struct trusted_opts opts    = {.chroot = chroot, .threads = 3};
    struct moat_error err       = {0};
    struct toml_value* root     = manifest_with(uris, ARRAY_SIZE(uris));
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_int_equal(count(root), 7);
    assert_entry(root, 0, "file:/abs.txt", "bee\n");
    assert_entry(root, 1, "file:/esc.txt", "ay\n");
    assert_entry(root, 2, "file:/tree/sub/c.txt", "sea\n");
    assert_entry(root, 3, "file:/tree/a.txt", "ay\n");
    assert_entry(root, 4, "file:/tree/abslink", "bee\n"); /* loop and up/ skipped */
    assert_entry(root, 5, "file:/tree/b.txt", "bee\n");
    assert_entry(root, 6, "file:/lnk/../lnk/./a.txt", "ay\n");
    toml_free(root);

    const char* loop[]       = {"file:/loop1"};
    root                     = manifest_with(loop, 1);
    _cleanup_free_ char* msg = xasprintf(
        "sgx.trusted_files[0]: cannot resolve 'file:/loop1' inside chroot '%s/root': "
        "Too many levels of symbolic links",
        g_dir);
    expect_error(root, &opts, -ELOOP, msg);
    toml_free(root);

    const char* rel[] = {"file:tree/a.txt"};
    root              = manifest_with(rel, 1);
    expect_error(root, &opts, -EINVAL,
                 "sgx.trusted_files[0]: only absolute paths can be measured in chroot: "
                 "'file:tree/a.txt'");
    toml_free(root);

    const char* gone[] = {"file:/tree/nowhere/x"};
    root               = manifest_with(gone, 1);
    expect_error(root, &opts, -ENOENT, "Missing trusted file: '/tree/nowhere/x'");
    toml_free(root);
}

static void test_entrypoint(void** state) {
    (void)state;
    _cleanup_free_ char* a   = xasprintf("file:%s/tree/a.txt", g_dir);
    struct trusted_opts opts = {0};
    struct moat_error err    = {0};
    char hex[SHA256_HEX_SIZE];
    hex_of("ay\n", 3, hex);

    /* no sgx.trusted_files at all is fine */
    struct toml_value* root = toml_new_table();
    assert_int_equal(toml_set_path(root, "loader.entrypoint.uri", toml_new_string(a)), 0);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_string_equal(toml_get_path(root, "loader.entrypoint")->u.tab.items[1].key, "sha256");
    const char* got = NULL;
    assert_int_equal(toml_get_string(root, "loader.entrypoint.sha256", NULL, &got), 0);
    assert_string_equal(got, hex);
    toml_free(root);

    root = toml_new_table();
    assert_int_equal(toml_set_path(root, "loader.entrypoint.uri", toml_new_string(a)), 0);
    assert_int_equal(toml_set_path(root, "loader.entrypoint.sha256", toml_new_string(H1)), 0);
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_int_equal(toml_get_string(root, "loader.entrypoint.sha256", NULL, &got), 0);
    assert_string_equal(got, H1);
    toml_free(root);

    root = toml_new_table();
    assert_int_equal(toml_set_path(root, "loader.entrypoint.uri", toml_new_string("dev:x")), 0);
    expect_error(root, &opts, -EINVAL, "loader.entrypoint.uri: Unsupported URI type: dev:x");
    toml_free(root);

    root                      = toml_new_table();
    _cleanup_free_ char* gone = xasprintf("file:%s/nowhere", g_dir);
    assert_int_equal(toml_set_path(root, "loader.entrypoint.uri", toml_new_string(gone)), 0);
    _cleanup_free_ char* msg =
        xasprintf("loader.entrypoint.uri: Missing trusted file: '%s/nowhere'", g_dir);
    expect_error(root, &opts, -ENOENT, msg);
    toml_free(root);
}

/* Graphene-era sgx.trusted_files.<id> tables become the array, in key order. */
static void test_graphene_table(void** state) {
    (void)state;
    _cleanup_free_ char* a   = xasprintf("file:%s/tree/a.txt", g_dir);
    _cleanup_free_ char* b   = xasprintf("file:%s/tree/b.txt", g_dir);
    _cleanup_free_ char* sub = xasprintf("file:%s/tree/sub/", g_dir);
    struct toml_value* root  = toml_new_table();
    struct toml_value* tab   = toml_new_table();
    toml_table_set(tab, "libc", toml_new_string(a));
    toml_table_set(tab, "sub", toml_new_string(sub));
    toml_table_set(tab, "given", entry_table(b, H1));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", tab), 0);
    struct trusted_opts opts = {0};
    struct moat_error err    = {0};
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    assert_int_equal(count(root), 4);
    assert_entry(root, 0, a, "ay\n");
    _cleanup_free_ char* c = xasprintf("file:%s/tree/sub/c.txt", g_dir);
    assert_entry(root, 1, c, "sea\n");
    assert_string_equal(entry(root, 3, "uri"), b);
    assert_string_equal(entry(root, 3, "sha256"), H1);
    toml_free(root);

    root = toml_new_table();
    tab  = toml_new_table();
    toml_table_set(tab, "bad", toml_new_string("http:x"));
    assert_int_equal(toml_set_path(root, "sgx.trusted_files", tab), 0);
    expect_error(root, &opts, -EINVAL, "sgx.trusted_files.bad: Unsupported URI type: http:x");
    toml_free(root);
}

/* The parser and the writer around the expansion: what 'moat manifest render' does. */
static void test_parsed_manifest(void** state) {
    (void)state;
    _cleanup_free_ char* text = xasprintf(
        "loader.entrypoint.uri = \"file:%s/tree/b.txt\"\n"
        "sgx.trusted_files = [ \"file:%s/tree/a.txt\", { uri = \"file:%s/tree/sub/deeper/\" } ]\n",
        g_dir, g_dir, g_dir);
    _cleanup_toml_ struct toml_value* root = NULL;
    struct toml_error terr;
    struct moat_error err = {0};
    assert_int_equal(toml_parse(text, strlen(text), "t.toml", &root, &terr, &err), 0);
    struct trusted_opts opts = {0};
    assert_int_equal(manifest_expand_trusted_files(root, &opts, &err), 0);
    char ha[SHA256_HEX_SIZE], hb[SHA256_HEX_SIZE], hd[SHA256_HEX_SIZE];
    hex_of("ay\n", 3, ha);
    hex_of("bee\n", 4, hb);
    hex_of("dee\n", 4, hd);
    _cleanup_free_ char* want_text = xasprintf(
        "[loader.entrypoint]\nuri = \"file:%s/tree/b.txt\"\nsha256 = \"%s\"\n"
        "[[sgx.trusted_files]]\nuri = \"file:%s/tree/a.txt\"\nsha256 = \"%s\"\n"
        "[[sgx.trusted_files]]\nuri = \"file:%s/tree/sub/deeper/d.txt\"\nsha256 = \"%s\"\n",
        g_dir, hb, g_dir, ha, g_dir, hd);
    _cleanup_toml_ struct toml_value* want = NULL;
    assert_int_equal(toml_parse(want_text, strlen(want_text), "want.toml", &want, &terr, &err), 0);
    assert_true(toml_equal(root, want));
    /* and it survives the writer (string entries became tables) */
    size_t len                             = 0;
    _cleanup_free_ char* out               = toml_write(root, &len);
    _cleanup_toml_ struct toml_value* back = NULL;
    assert_int_equal(toml_parse(out, len, "out.toml", &back, &terr, &err), 0);
    assert_true(toml_equal(back, want));
}

static void test_parallel_hashing(void** state) {
    (void)state;
    enum { N = 200, BIG = 3 * 1024 * 1024 + 7 };
    char* paths[N];
    char* contents[N];
    size_t lens[N];
    for (size_t i = 0; i < N; i++) {
        /* sizes from empty to a few pages, and one file over many read buffers */
        lens[i]     = i == 17 ? BIG : (i * 97) % 9000;
        contents[i] = xmalloc(lens[i] + 1);
        for (size_t j = 0; j < lens[i]; j++)
            contents[i][j] = (char)((i * 31 + j * 7) & 0xff);
        _cleanup_free_ char* rel = xasprintf("par/f%03zu", i);
        paths[i]                 = at(rel);
        /* plain writes: write_file_atomic's fsyncs would dominate the test's run time */
        int fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, contents[i], lens[i]), 0);
        close(fd);
    }
    char(*hex)[SHA256_HEX_SIZE] = xcalloc(N, SHA256_HEX_SIZE);
    static const int threads[]  = {1, 2, 4, 0};
    for (size_t t = 0; t < ARRAY_SIZE(threads); t++) {
        memset(hex, 0, N * SHA256_HEX_SIZE);
        struct trusted_opts opts = {.threads = threads[t]};
        struct moat_error err    = {0};
        assert_int_equal(hash_files_parallel((const char* const*)paths, N, hex, &opts, &err), 0);
        for (size_t i = 0; i < N; i++) {
            char want[SHA256_HEX_SIZE];
            hex_of(contents[i], lens[i], want);
            assert_string_equal(hex[i], want);
        }
    }
    assert_string_equal(hex[0], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    /* with one thread the first failure in list order is the one reported */
    _cleanup_free_ char* fifo = at("tree/fifo");
    const char* bad[]         = {paths[0], "/nonexistent/one", paths[1], "/nonexistent/two"};
    struct trusted_opts one   = {.threads = 1};
    struct moat_error err     = {0};
    assert_int_equal(hash_files_parallel(bad, ARRAY_SIZE(bad), hex, &one, &err), -ENOENT);
    assert_string_equal(err.msg, "Missing trusted file: '/nonexistent/one'");
    struct trusted_opts four = {.threads = 4};
    assert_int_equal(hash_files_parallel(bad, ARRAY_SIZE(bad), hex, &four, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/"));
    /* a FIFO fails instead of blocking */
    const char* nonreg[] = {fifo};
    assert_int_equal(hash_files_parallel(nonreg, 1, hex, &four, &err), -EINVAL);
    _cleanup_free_ char* msg = xasprintf("cannot hash trusted file '%s': not a regular file", fifo);
    assert_string_equal(err.msg, msg);
    assert_int_equal(hash_files_parallel(nonreg, 0, hex, &four, &err), 0);

    free(hex);
    for (size_t i = 0; i < N; i++) {
        free(paths[i]);
        free(contents[i]);
    }
}

/* The progress bar needs a terminal: with stderr redirected nothing is printed. */
static void test_no_progress_without_tty(void** state) {
    (void)state;
    _cleanup_free_ char* log = at("stderr.log");
    int fd                   = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int old                  = dup(STDERR_FILENO);
    assert_true(fd >= 0 && old >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    _cleanup_free_ char* uri               = xasprintf("file:%s/par/", g_dir);
    const char* uris[]                     = {uri};
    _cleanup_toml_ struct toml_value* root = manifest_with(uris, 1);
    struct trusted_opts opts               = {.progress = true};
    struct moat_error err                  = {0};
    int ret                                = manifest_expand_trusted_files(root, &opts, &err);
    assert_int_equal(dup2(old, STDERR_FILENO), STDERR_FILENO);
    close(old);
    close(fd);
    assert_int_equal(ret, 0);
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_true(count(root) >= 200);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory_expansion),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_given_hash_and_duplicates),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_chroot),
        cmocka_unit_test(test_entrypoint),
        cmocka_unit_test(test_graphene_table),
        cmocka_unit_test(test_parsed_manifest),
        cmocka_unit_test(test_parallel_hashing),
        cmocka_unit_test(test_no_progress_without_tty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
