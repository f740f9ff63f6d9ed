/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider selection (provider.c: configfs-tsm when its directory exists, else a simulated
 * platform, else none) and the sealing keys (per-machine secret + identity).
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "provider.h"
#include "sim.h"

static char g_dir[64];

static int setup(void** state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/moat-provider-test-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void** state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static char* in_dir(const char* name) {
    return path_join(g_dir, name);
}

static void test_selection(void** state) {
    (void)state;
    _cleanup_free_ char* sim  = in_dir("sim");
    _cleanup_free_ char* tsm  = in_dir("tsm");
    _cleanup_free_ char* none = in_dir("no-tsm");
    struct attest_provider* p = NULL;
    struct moat_error err     = {0};
    /* nothing: none, and the description says how to get one */
    assert_int_equal(attest_provider_open(sim, none, &p, &err), 0);
    assert_int_equal(attest_provider_kind(p), ATTEST_NONE);
    assert_non_null(strstr(attest_provider_describe(p), "moat attest init"));
    uint8_t rd[64] = {1}, *q = NULL;
    size_t len                = 0;
    struct attest_identity id = {.isvprodid = 3};
    assert_int_equal(attest_provider_quote(p, &id, rd, &q, &len, &err), -ENOTSUP);
    attest_provider_free(p);
    /* a simulated platform: sim, says SIMULATED, makes quotes with the identity */
    assert_int_equal(sim_create(sim, 5, false, &err), 0);
    assert_int_equal(attest_provider_open(sim, none, &p, &err), 0);
    assert_int_equal(attest_provider_kind(p), ATTEST_SIM);
    assert_non_null(strstr(attest_provider_describe(p), "SIMULATED"));
    assert_int_equal(attest_provider_quote(p, &id, rd, &q, &len, &err), 0);
    assert_int_equal(q[48 + 256], 3); /* ISVPRODID */
    assert_int_equal(q[48 + 320], 1); /* report data */
    free(q);
    attest_provider_free(p);
    /* a configfs-tsm directory wins over the simulated platform */
    assert_int_equal(mkdir(tsm, 0700), 0);
    assert_int_equal(attest_provider_open(sim, tsm, &p, &err), 0);
    assert_int_equal(attest_provider_kind(p), ATTEST_TSM);
    assert_non_null(strstr(attest_provider_describe(p), "configfs-tsm"));
    attest_provider_free(p);
}

static void test_sealing_keys(void** state) {
    (void)state;
    _cleanup_free_ char* secret = in_dir("machine/machine.key");
    struct attest_identity a    = {.isvprodid = 1, .isvsvn = 1, .signer_verified = true};
    memset(a.mrenclave, 0x11, 32);
    memset(a.mrsigner, 0x22, 32);
    struct attest_identity b = a;
    b.mrenclave[0] ^= 1; /* another measurement, the same signer */
    uint8_t k1[16], k2[16], k3[16], k4[16];
    struct moat_error err = {0};
    assert_int_equal(attest_seal_key(secret, false, &a, k1, &err), 0);
    struct stat st;
    assert_int_equal(stat(secret, &st), 0); /* made at first use, owner only */
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    assert_int_equal(attest_seal_key(secret, false, &a, k2, &err), 0);
    assert_memory_equal(k1, k2, 16); /* stable across uses */
    assert_int_equal(attest_seal_key(secret, false, &b, k2, &err), 0);
    assert_memory_not_equal(k1, k2, 16); /* MRENCLAVE policy follows the measurement */
    assert_int_equal(attest_seal_key(secret, true, &a, k3, &err), 0);
    assert_int_equal(attest_seal_key(secret, true, &b, k4, &err), 0);
    assert_memory_equal(k3, k4, 16); /* MRSIGNER policy does not */
    assert_memory_not_equal(k1, k3, 16);
    b        = a;
    b.isvsvn = 2;
    assert_int_equal(attest_seal_key(secret, true, &b, k4, &err), 0);
    assert_memory_not_equal(k3, k4, 16); /* ... but follows the SVN */
    /* another machine (secret): other keys; a damaged secret is an error, not a new key */
    _cleanup_free_ char* other = in_dir("other.key");
    assert_int_equal(attest_seal_key(other, false, &a, k2, &err), 0);
    assert_memory_not_equal(k1, k2, 16);
    FILE* f = fopen(other, "w");
    fputs("short", f);
    fclose(f);
    assert_int_equal(attest_seal_key(other, false, &a, k2, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "32 bytes"));
}

/* Issue 10: an unsigned app's MRSIGNER is zero, so an MRSIGNER key would be shared by every
 * unsigned app on the machine: there is none without a verified signer. */
static void test_mrsigner_key_needs_a_verified_signer(void** state) {
    (void)state;
    _cleanup_free_ char* secret = in_dir("machine.key");
    struct attest_identity id   = {.isvprodid = 1};
    uint8_t key[16], before[16];
    memset(key, 0x5a, sizeof(key));
    memcpy(before, key, sizeof(key));
    struct moat_error err = {0};
    assert_int_equal(attest_seal_key(secret, true, &id, key, &err), -EPERM);
    assert_non_null(strstr(err.msg, "moat sign"));
    assert_memory_equal(key, before, 16);                                /* nothing written */
    assert_int_equal(attest_seal_key(secret, false, &id, key, &err), 0); /* MRENCLAVE: fine */
    id.signer_verified = true;
    assert_int_equal(attest_seal_key(secret, true, &id, key, &err), 0);
}

static void write_bytes(const char* path, mode_t mode, size_t n) {
    uint8_t buf[64] = {7};
    int fd          = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0); /* whatever the umask */
    close(fd);
}

/* Issue 10: the secret is used only when nobody else can have written or replaced it; the
 * error names the path, what is wrong and the fix. */
static void test_machine_secret_refused(void** state) {
    (void)state;
    _cleanup_free_ char* secret = in_dir("m.key");
    struct attest_identity id   = {0};
    uint8_t key[16];
    struct moat_error err = {0};
    write_bytes(secret, 0644, 32);
    assert_int_equal(attest_seal_key(secret, false, &id, key, &err), -EPERM);
    assert_non_null(strstr(err.msg, secret));
    assert_non_null(strstr(err.msg, "mode 0644"));
    assert_non_null(strstr(err.msg, "chmod 0600"));
    assert_int_equal(chmod(secret, 0640), 0);
    assert_int_equal(attest_seal_key(secret, false, &id, key, &err), -EPERM);
    assert_int_equal(chmod(secret, 0600), 0);
    assert_int_equal(attest_seal_key(secret, false, &id, key, &err), 0);
    /* another owner (only root can make one) */
    if (geteuid() == 0) {
        assert_int_equal(chown(secret, 65534, 65534), 0);
        assert_int_equal(attest_seal_key(secret, false, &id, key, &err), -EPERM);
        assert_non_null(strstr(err.msg, "owned by uid 65534"));
        assert_int_equal(chown(secret, 0, 0), 0);
    }
    /* a symlink to a perfectly good secret is still refused, never followed */
    _cleanup_free_ char* link = in_dir("link.key");
    assert_int_equal(symlink(secret, link), 0);
    assert_int_equal(attest_seal_key(link, false, &id, key, &err), -EPERM);
    assert_non_null(strstr(err.msg, "symbolic link"));
    assert_non_null(strstr(err.msg, link));
    /* a dangling symlink is not followed to create a file elsewhere */
    _cleanup_free_ char* target   = in_dir("elsewhere.key");
    _cleanup_free_ char* dangling = in_dir("dangling.key");
    assert_int_equal(symlink(target, dangling), 0);
    assert_int_equal(attest_seal_key(dangling, false, &id, key, &err), -EPERM);
    assert_int_equal(access(target, F_OK), -1);
    /* not a regular file */
    _cleanup_free_ char* fifo = in_dir("fifo.key");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(attest_seal_key(fifo, false, &id, key, &err), -EPERM);
    assert_non_null(strstr(err.msg, "not a regular file"));
    /* a directory others can write: they could replace the secret */
    _cleanup_free_ char* dir = in_dir("shared");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    _cleanup_free_ char* in_shared = in_dir("shared/m.key");
    assert_int_equal(attest_seal_key(in_shared, false, &id, key, &err), -EPERM);
    assert_non_null(strstr(err.msg, "chmod go-w"));
    assert_int_equal(access(in_shared, F_OK), -1); /* nothing made there */
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(attest_seal_key(in_shared, false, &id, key, &err), 0);
}

/* Issue 10: concurrent first uses agree on one secret (the first writer wins, the others read
 * its file), so no process seals data under a key that is lost. */
static void test_machine_secret_first_use_race(void** state) {
    (void)state;
    enum { N = 8, ROUNDS = 5 };
    for (int round = 0; round < ROUNDS; round++) {
        char name[32];
        snprintf(name, sizeof(name), "race%d/machine.key", round);
        _cleanup_free_ char* secret = in_dir(name);
        int pipes[N][2];
        pid_t pids[N];
        int go[2];
        assert_int_equal(pipe(go), 0);
        for (int i = 0; i < N; i++) {
            assert_int_equal(pipe(pipes[i]), 0);
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                char c;
                close(go[1]);
                if (read(go[0], &c, 1) != 0) /* all start together, when go closes */
                    _exit(3);
                struct attest_identity id = {0};
                uint8_t key[16];
                struct moat_error err = {0};
                if (attest_seal_key(secret, false, &id, key, &err) < 0) {
                    fprintf(stderr, "%s\n", err.msg);
                    _exit(2);
                }
                _exit(write(pipes[i][1], key, 16) == 16 ? 0 : 1);
            }
            close(pipes[i][1]);
        }
        close(go[0]);
        close(go[1]);
        uint8_t keys[N][16];
        for (int i = 0; i < N; i++) {
            int status = 0;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            assert_int_equal(read(pipes[i][0], keys[i], 16), 16);
            close(pipes[i][0]);
        }
        for (int i = 1; i < N; i++)
            assert_memory_equal(keys[0], keys[i], 16);
        /* and the key that stays is theirs; no temporary file is left behind */
        struct attest_identity id = {0};
        uint8_t key[16];
        struct moat_error err = {0};
        assert_int_equal(attest_seal_key(secret, false, &id, key, &err), 0);
        assert_memory_equal(keys[0], key, 16);
        char* slash = strrchr(secret, '/');
        *slash      = '\0';
        DIR* d      = opendir(secret);
        assert_non_null(d);
        int entries = 0;
        for (struct dirent* e; (e = readdir(d));)
            entries += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
        closedir(d);
        assert_int_equal(entries, 1);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_sealing_keys),
        cmocka_unit_test(test_mrsigner_key_needs_a_verified_signer),
        cmocka_unit_test(test_machine_secret_refused),
        cmocka_unit_test(test_machine_secret_first_use_race),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
