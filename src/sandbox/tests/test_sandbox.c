/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the sandbox's pure parts: argv/env (reference/gramine.md §1.3), the mount plan
 * the trusted/allowed file policy (§6) and host path resolution (hostpath.c). The running
 * sandbox is tested in tests/test_run.py and tests/test_attack_paths.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "hostpath.h"
#include "sandbox.h"

/* The model `moat run` reads (runtime rules); a libos.entrypoint is added when missing. */
static struct manifest* parse(const char* text) {
    _cleanup_free_ char* full   = strstr(text, "libos.entrypoint")
                                      ? xstrdup(text)
                                      : xasprintf("libos.entrypoint = \"/a\"\n%s", text);
    struct manifest* m          = NULL;
    struct manifest_load_opts o = {.runtime = true};
    struct manifest_diags diags = {0};
    struct moat_error err       = {0};
    if (manifest_load(full, strlen(full), "t.manifest", &o, &m, &diags, &err) < 0)
        fail_msg("%s: %s", err.msg, diags.len ? diags.items[0].msg : "");
    manifest_diags_free(&diags);
    return m;
}

/* `moat run` refuses the manifest, with a message that contains `want`. */
static void refused(const char* text, const char* want) {
    _cleanup_free_ char* full   = strstr(text, "libos.entrypoint")
                                      ? xstrdup(text)
                                      : xasprintf("libos.entrypoint = \"/a\"\n%s", text);
    struct manifest* m          = NULL;
    struct manifest_load_opts o = {.runtime = true};
    struct manifest_diags diags = {0};
    struct moat_error err       = {0};
    assert_int_equal(manifest_load(full, strlen(full), "t.manifest", &o, &m, &diags, &err),
                     -EINVAL);
    assert_null(m);
    bool found = false;
    for (size_t i = 0; i < diags.len; i++)
        found |= diags.items[i].sev == DIAG_ERROR && strstr(diags.items[i].msg, want) != NULL;
    if (!found)
        fail_msg("'%s': no error contains '%s' (first: '%s')", text, want,
                 diags.len ? diags.items[0].msg : "none");
    manifest_diags_free(&diags);
}

static void test_argv(void** state) {
    (void)state;
    const char* host[]    = {"app", "x", "y"};
    struct strv v         = {0};
    struct moat_error err = {0};
    struct strbuf warn    = STRBUF_INIT;

    _cleanup_manifest_ struct manifest* none = parse("libos.entrypoint = \"/bin/app\"\n");
    assert_int_equal(sandbox_build_argv(none, host, 1, &v, &warn, &err), 0);
    assert_int_equal(v.len, 1);
    assert_string_equal(v.items[0], "/bin/app");
    assert_null(v.items[1]);
    strv_free(&v);
    assert_int_equal(sandbox_build_argv(none, host, 3, &v, &warn, &err), -EINVAL);
    assert_string_equal(err.msg,
                        "argv handling wasn't configured in the manifest, but cmdline "
                        "arguments were specified.");

    _cleanup_manifest_ struct manifest* cmdline =
        parse("libos.entrypoint = \"/bin/app\"\nloader.insecure__use_cmdline_argv = true\n");
    assert_int_equal(sandbox_build_argv(cmdline, host, 3, &v, &warn, &err), 0);
    assert_int_equal(v.len, 3);
    assert_string_equal(v.items[0], "/bin/app");
    assert_string_equal(v.items[2], "y");
    strv_free(&v);

    _cleanup_manifest_ struct manifest* fixed =
        parse("libos.entrypoint = \"/bin/app\"\nloader.argv = [\"a\", \"b\"]\n");
    assert_int_equal(sandbox_build_argv(fixed, host, 3, &v, &warn, &err), 0);
    assert_int_equal(v.len, 2);
    assert_non_null(strstr(warn.buf,
                           "Discarding cmdline arguments (x y) because loader.argv "
                           "was specified in the manifest."));
    strv_free(&v);
    strbuf_free(&warn);

    refused("libos.entrypoint = \"/bin/app\"\nloader.argv = []\n",
            "'loader.argv' has no arguments, this is unsupported");
    refused("libos.entrypoint = \"/a\"\nloader.argv = [\"a\"]\nloader.argv_src_file = \"file:x\"\n",
            "are mutually exclusive");
}

static const char* env_get(const struct strv* v, const char* name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < v->len; i++)
        if (!strncmp(v->items[i], name, n) && v->items[i][n] == '=')
            return v->items[i] + n + 1;
    return NULL;
}

static void test_env(void** state) {
    (void)state;
    char* host[]          = {(char*)"HOME=/root", (char*)"PASS=p", (char*)"A=host", NULL};
    struct strv v         = {0};
    struct moat_error err = {0};

    _cleanup_manifest_ struct manifest* m = parse(
        "loader.env.A = \"manifest\"\nloader.env.B = { value = \"b\" }\n"
        "loader.env.PASS = { passthrough = true }\n");
    assert_int_equal(sandbox_build_env(m, host, &v, &err), 0);
    assert_int_equal(v.len, 3);
    assert_string_equal(env_get(&v, "A"), "manifest");
    assert_string_equal(env_get(&v, "B"), "b");
    assert_string_equal(env_get(&v, "PASS"), "p");
    assert_null(env_get(&v, "HOME"));
    assert_null(v.items[v.len]);
    strv_free(&v);

    _cleanup_manifest_ struct manifest* all =
        parse("loader.insecure__use_host_env = true\nloader.env.A = \"manifest\"\n");
    assert_int_equal(sandbox_build_env(all, host, &v, &err), 0);
    assert_string_equal(env_get(&v, "HOME"), "/root");
    assert_string_equal(env_get(&v, "A"), "manifest");
    strv_free(&v);

    _cleanup_manifest_ struct manifest* nothing = parse("");
    assert_int_equal(sandbox_build_env(nothing, host, &v, &err), 0);
    assert_int_equal(v.len, 0);
    assert_null(v.items[0]);
    strv_free(&v);

    refused("loader.env.X = { passthrough = false }\n",
            "Detected environment variable 'X' with 'passthrough = false'");
    refused("loader.env.X = 1\n", "'loader.env.X' must be a string or a table");
    refused("loader.env.X = { value = 1 }\n", "Invalid environment variable in manifest: 'X'");
}

static void test_mount_plan(void** state) {
    (void)state;
    _cleanup_manifest_ struct manifest* m = parse(
        "libos.entrypoint = \"app\"\nfs.start_dir = \"/work\"\n"
        "fs.mounts = [\n"
        "  { path = \"/lib\", uri = \"file:/usr/lib/x86_64-linux-gnu\" },\n"
        "  { path = \"/a/b/c\", uri = \"file:data\" },\n"
        "  { type = \"tmpfs\", path = \"/lib/tmp\" },\n"
        "  { path = \"/lib/sub\", uri = \"file:/other\" },\n"
        "]\n");
    struct mount_plan p   = {0};
    struct moat_error err = {0};
    assert_int_equal(mount_plan_load(m, "/home/u/app", &p, &err), 0);
    assert_string_equal(p.entrypoint, "/work/app"); /* relative: from fs.start_dir */
    char* host = NULL;
    assert_non_null(mount_plan_resolve(&p, "/lib/libc.so.6", &host));
    assert_string_equal(host, "/usr/lib/x86_64-linux-gnu/libc.so.6");
    free(host);
    assert_non_null(mount_plan_resolve(&p, "/lib/sub/x", &host)); /* later mounts shadow */
    assert_string_equal(host, "/other/x");
    free(host);
    assert_non_null(mount_plan_resolve(&p, "/etc/passwd", &host)); /* the root: the cwd */
    assert_string_equal(host, "/home/u/app/etc/passwd");
    free(host);
    assert_null(mount_plan_resolve(&p, "/lib/tmp/x", NULL)); /* tmpfs: not a host path */
    assert_true(mount_plan_is_synthetic_dir(&p, "/a"));
    assert_true(mount_plan_is_synthetic_dir(&p, "/a/b"));
    assert_false(mount_plan_is_synthetic_dir(&p, "/a/b/c"));
    char* app = mount_plan_app_path(&p, "/home/u/app/data/f");
    assert_string_equal(app, "/a/b/c/f");
    free(app);
    assert_null(mount_plan_app_path(&p, "/nowhere/visible"));
    mount_plan_free(&p);

    static const char* const bad[][2] = {
        {"fs.mounts = [ { path = \"lib\", uri = \"file:/lib\" } ]", "Relative mount path"},
        {"fs.mounts = [ { path = \"/\", uri = \"file:/\" } ]", "cannot be \"/\""},
        {"fs.mounts = [ { path = \"/x\" } ]", "No value provided for 'fs.mounts[0].uri'"},
        {"fs.mounts = [ 1 ]", "Invalid mount in manifest at index 0 (not a TOML table)"},
        {"libos.entrypoint = \"file:app\"", "should be an in-Gramine path, not URI."},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        refused(bad[i][0], bad[i][1]);
}

static void test_policy(void** state) {
    (void)state;
    const char* hash          = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    _cleanup_free_ char* text = xasprintf(
        "sgx.trusted_files = [ { uri = \"file:/usr/bin/app\", sha256 = \"%s\" } ]\n"
        "sgx.allowed_files = [ \"file:/data/\", \"file:/etc/hosts\" ]\n",
        hash);
    _cleanup_manifest_ struct manifest* m = parse(text);
    struct file_policy p                  = {0};
    struct moat_error err                 = {0};
    assert_int_equal(file_policy_load(m, &p, &err), 0);
    assert_true(p.strict);
    const struct trusted_entry* t = NULL;
    assert_int_equal(file_policy_classify(&p, "/usr/bin/app", &t), FILE_TRUSTED);
    assert_int_equal(t->sha256[0], 0x01);
    assert_int_equal(file_policy_classify(&p, "/usr/bin/app2", NULL), FILE_NONE);
    assert_int_equal(file_policy_classify(&p, "/data", NULL), FILE_ALLOWED);
    assert_int_equal(file_policy_classify(&p, "/data/x/y", NULL), FILE_ALLOWED);
    assert_int_equal(file_policy_classify(&p, "/database", NULL), FILE_NONE);
    assert_int_equal(file_policy_classify(&p, "/etc/hosts", NULL), FILE_ALLOWED);
    file_policy_free(&p);

    static const char* const bad[][2] = {
        {"sgx.trusted_files = [ \"file:/a\" ]",
         "Invalid trusted file in manifest at index 0 (not a TOML table)"},
        {"sgx.trusted_files = [ { sha256 = \"x\" } ]", "(no 'uri' key)"},
        {"sgx.trusted_files = [ { uri = \"file:/a\" } ]", "(no 'sha256' key)"},
        {"sgx.trusted_files = [ { uri = \"/a\", sha256 = \"x\" } ]",
         "Trusted files must start with 'file:'"},
        {"sgx.trusted_files = [ { uri = \"file:/a\", sha256 = \"xyz\" } ]",
         "is not a SHA-256 hash"},
        {"sgx.allowed_files = [ \"/tmp\" ]", "must start with 'file:' or 'dev:'"},
        {"sgx.file_check_policy = \"lax\"", "Unknown value for 'sgx.file_check_policy'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        refused(bad[i][0], bad[i][1]);
}

/* hostpath.c: below an allowed directory nothing is followed through a symlink; elsewhere the
 * administrator's symlinks are followed (STYLE.md rule 14). */
static char* in(const char* base, const char* rel) {
    return xasprintf("%s/%s", base, rel);
}

static void put(const char* path, const char* text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, text, strlen(text)), 0);
    close(fd);
}

static void test_hostpath(void** state) {
    (void)state;
    char tmpl[]   = "/tmp/moat-hostpath-XXXXXX";
    const char* b = mkdtemp(tmpl);
    assert_non_null(b);
    _cleanup_free_ char* allowed = in(b, "allowed");
    _cleanup_free_ char* ro      = in(b, "ro");
    _cleanup_free_ char* victim  = in(b, "ro/victim");
    _cleanup_free_ char* wlink   = in(b, "wlink"); /* an allowed entry that is itself a link */
    _cleanup_free_ char* alias   = in(b, "alias"); /* the administrator's link to b */
    assert_int_equal(mkdir(allowed, 0755), 0);
    assert_int_equal(mkdir(ro, 0755), 0);
    put(victim, "victim\n");
    _cleanup_free_ char* l_root  = in(b, "allowed/root");
    _cleanup_free_ char* l_vic   = in(b, "allowed/vic");
    _cleanup_free_ char* l_ro    = in(b, "allowed/ro");
    _cleanup_free_ char* ro_link = in(b, "ro/link");
    assert_int_equal(symlink("/", l_root), 0);
    assert_int_equal(symlink(victim, l_vic), 0);
    assert_int_equal(symlink(ro, l_ro), 0);
    assert_int_equal(symlink("victim", ro_link), 0);
    assert_int_equal(symlink(ro, wlink), 0);
    assert_int_equal(symlink(b, alias), 0);
    _cleanup_free_ char* via_alias         = in(b, "alias/allowed");
    char* list[]                           = {via_alias, wlink};
    _cleanup_hostpath_ struct hostpath* hp = hostpath_new(list, 2);

    /* the app's links: seen as links, never followed */
    struct stat st;
    assert_true(hostpath_app_controlled(hp, l_root)); /* through the alias' real parent */
    assert_int_equal(hostpath_stat(hp, l_root, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    char* target = NULL;
    assert_int_equal(hostpath_readlink(hp, l_root, &target), 0);
    assert_string_equal(target, "/");
    free(target);
    _cleanup_free_ char* passwd = in(b, "allowed/root/etc/passwd");
    assert_int_equal(hostpath_open(hp, passwd, O_RDONLY, 0), -ELOOP);
    assert_int_equal(hostpath_stat(hp, passwd, &st), -ELOOP);
    assert_int_equal(hostpath_open(hp, l_vic, O_WRONLY | O_APPEND, 0), -ELOOP);
    _cleanup_free_ char* up = in(b, "allowed/../ro/victim"); /* lexically outside: ro/victim */
    assert_false(hostpath_app_controlled(hp, up));
    _cleanup_free_ char* made = in(b, "allowed/ro/made");
    int r = hostpath_mkdir(hp, made, 0755); /* O_DIRECTORY on the link itself: ENOTDIR */
    assert_true(r == -ENOTDIR || r == -ELOOP);
    _cleanup_free_ char* ro_made = in(b, "ro/made");
    assert_int_equal(access(ro_made, F_OK), -1);
    assert_int_equal(hostpath_chmod(hp, l_vic, 0777), -ELOOP);
    assert_int_equal(hostpath_truncate(hp, l_vic, 0), -ELOOP);
    _cleanup_free_ char* in_wlink = in(b, "wlink/victim");
    assert_int_equal(hostpath_open(hp, in_wlink, O_RDONLY, 0), -ELOOP);
    assert_int_equal(hostpath_stat(hp, wlink, &st), 0);
    assert_true(S_ISLNK(st.st_mode));

    /* writing a file in their place replaces the link, never its target */
    struct moat_error err = {0};
    assert_int_equal(hostpath_write_atomic(hp, l_vic, "new\n", 4, 0600, true, &err), 0);
    assert_int_equal(lstat(l_vic, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    _cleanup_free_ char* text = NULL;
    size_t len;
    assert_int_equal(read_file(victim, &text, &len, &err), 0);
    assert_string_equal(text, "victim\n");
    _cleanup_free_ char* through = in(b, "allowed/ro/out");
    assert_true(hostpath_write_atomic(hp, through, "x", 1, 0600, false, &err) < 0);
    assert_non_null(strstr(err.msg, through));
    _cleanup_free_ char* ro_out = in(b, "ro/out");
    assert_int_equal(access(ro_out, F_OK), -1);

    /* names are renamed and removed, not what they point to */
    _cleanup_free_ char* moved = in(b, "allowed/moved");
    assert_int_equal(hostpath_rename(hp, l_ro, moved, 0), 0);
    assert_int_equal(lstat(moved, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(hostpath_unlink(hp, moved, 0), 0);
    assert_int_equal(stat(ro, &st), 0);

    /* the administrator's links elsewhere are followed, as Gramine follows them */
    assert_false(hostpath_app_controlled(hp, ro_link));
    assert_int_equal(hostpath_stat(hp, ro_link, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    int fd = hostpath_open(hp, ro_link, O_RDONLY, 0);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(hostpath_readlink(hp, ro_link, &target), -EINVAL);
    /* and a new file in an allowed directory is created there */
    _cleanup_free_ char* fresh = in(b, "allowed/fresh");
    fd                         = hostpath_open(hp, fresh, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);

    const char* rm[] = {"allowed/fresh", "allowed/root", "allowed/vic", "ro/link",
                        "ro/victim",     "wlink",        "alias"};
    for (size_t i = 0; i < ARRAY_SIZE(rm); i++) {
        _cleanup_free_ char* p = in(b, rm[i]);
        assert_int_equal(unlink(p), 0);
    }
    assert_int_equal(rmdir(allowed), 0);
    assert_int_equal(rmdir(ro), 0);
    assert_int_equal(rmdir(b), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv),       cmocka_unit_test(test_env),
        cmocka_unit_test(test_mount_plan), cmocka_unit_test(test_policy),
        cmocka_unit_test(test_hostpath),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
