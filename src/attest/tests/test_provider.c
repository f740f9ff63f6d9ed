/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider selection (provider.c: configfs-tsm when its directory exists, else a simulated
 * platform, else none) and the sealing keys (per-machine secret + identity).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    struct attest_identity a    = {.isvprodid = 1, .isvsvn = 1};
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_sealing_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
