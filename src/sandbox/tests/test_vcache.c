/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the verify cache's entries (vcache.c; docs/security.md "The verify cache"): a
 * hit only for the exact identity, a miss for a changed, corrupt or too recent file, and a
 * directory that is not private refused. tests/test_verify_cache.py runs it in moat run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vcache.h"

static char g_dir[] = "/tmp/moat-vcache-test-XXXXXX";

static void test_entries(void** state) {
    (void)state;
    struct moat_error err = {0};
    struct vcache* c      = vcache_open(&err);
    assert_non_null(c);
    _cleanup_free_ char* moat = xasprintf("%s/moat/verified", g_dir);
    struct stat st;
    assert_int_equal(stat(moat, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    _cleanup_free_ char* path = xasprintf("%s/file", g_dir);
    int fd                    = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    struct vcache_key k, again;
    const char* why = NULL;
    assert_int_equal(vcache_key_of(fd, &k, &why), 0);
    /* just written: its ctime is too recent for a verdict to be stored */
    assert_false(vcache_settled(fd, &k, &why));
    assert_string_equal(why, "changed less than 2 s ago");

    uint8_t d[32], got[32];
    memset(d, 0xab, sizeof(d));
    assert_false(vcache_lookup(c, &k, got, &why));
    assert_string_equal(why, "not in the verify cache");
    vcache_store(c, &k, d);
    assert_true(vcache_lookup(c, &k, got, &why));
    assert_memory_equal(got, d, 32);

    /* a write moves ctime: the entry no longer names this file */
    assert_int_equal(pwrite(fd, "x", 1, 0), 1);
    assert_int_equal(vcache_key_of(fd, &again, &why), 0);
    assert_memory_not_equal(&again, &k, sizeof(k));
    assert_false(vcache_lookup(c, &again, got, &why));
    assert_string_equal(why, "changed since it was verified (or its inode was reused)");

    /* a damaged entry is no entry */
    vcache_store(c, &again, d);
    char name[128];
    snprintf(name, sizeof(name), "%s/%llx.%llx.%llx", moat, (unsigned long long)again.dev_major,
             (unsigned long long)again.dev_minor, (unsigned long long)again.ino);
    int e = open(name, O_WRONLY | O_CLOEXEC);
    assert_true(e >= 0);
    assert_int_equal(pwrite(e, "\1", 1, 100), 1);
    close(e);
    assert_false(vcache_lookup(c, &again, got, &why));
    assert_string_equal(why, "its verify cache entry is corrupt or not this user's");
    close(fd);
    vcache_free(c);

    /* not on a local file system */
    fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    assert_int_equal(vcache_key_of(fd, &k, &why), -1);
    assert_non_null(strstr(why, "not on a local file system"));
    close(fd);
}

static void test_not_private_refused(void** state) {
    (void)state;
    _cleanup_free_ char* moat = xasprintf("%s/moat", g_dir);
    assert_int_equal(chmod(moat, 0755), 0);
    struct moat_error err = {0};
    assert_null(vcache_open(&err));
    assert_int_equal(err.code, -EPERM);
    assert_non_null(strstr(err.msg, "not private to this user"));
    assert_int_equal(chmod(moat, 0700), 0);
}

/* Without a read lease (not root, not the file's owner) nothing tells that no writer holds a
 * dirty shared mapping: no verdict may be stored. */
static void test_no_lease_no_verdict(void** state) {
    (void)state;
    if (geteuid() != 0) {
        skip();
    }
    _cleanup_free_ char* path = xasprintf("%s/leased", g_dir);
    int fd                    = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct vcache_key k;
    const char* why = NULL;
    assert_int_equal(vcache_key_of(fd, &k, &why), 0);
    k.ctime_s = 1;                             /* past the racy window, so the lease decides */
    assert_true(vcache_settled(fd, &k, &why)); /* root: the lease is granted */
    pid_t pid = fork();
    if (pid == 0) { /* an ordinary user over root's file: the lease is refused */
        const char* w = NULL;
        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
            _exit(2);
        bool settled = vcache_settled(fd, &k, &w);
        _exit(!settled && w && strstr(w, "no read lease") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(fd);
}

int main(void) {
    if (!mkdtemp(g_dir) || setenv("XDG_RUNTIME_DIR", g_dir, 1) < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_not_private_refused),
        cmocka_unit_test(test_no_lease_no_verdict),
    };
    int r                     = cmocka_run_group_tests(tests, NULL, NULL);
    _cleanup_free_ char* rmrf = xasprintf("rm -rf '%s'", g_dir);
    if (system(rmrf) != 0)
        r = 1;
    return r;
}
