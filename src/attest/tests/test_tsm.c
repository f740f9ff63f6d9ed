/* SPDX-License-Identifier: Apache-2.0 */
/*
 * configfs-tsm reports (tsm.c) against a directory that mimics the kernel's interface: the fake
 * file system below behaves as configfs does (mkdir makes the attributes, a write to inblob
 * bumps generation and makes outblob from the report data), and can misbehave on request (a
 * racing writer, a refused mkdir, a provider without auxblob).
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

#include "tsm.h"

struct fake {
    char root[256];
    const char* provider;
    bool aux;      /* the provider has an auxblob (sev_guest) */
    int races;     /* this many requests see a second writer (generation jumps by 2) */
    int mkdir_err; /* mkdir fails with this */
    int made, removed;
};

static int write_file(const char* path, const void* data, size_t len) {
    FILE* f = fopen(path, "wb");
    if (!f)
        return -errno;
    size_t n = fwrite(data, 1, len, f);
    fclose(f);
    return n == len ? 0 : -EIO;
}

static int fake_mkdir(void* ctx, const char* path) {
    struct fake* fk = ctx;
    if (fk->mkdir_err)
        return -fk->mkdir_err;
    int r = tsm_fs_posix()->mkdir(NULL, path);
    if (r < 0)
        return r;
    fk->made++;
    char p[512];
    snprintf(p, sizeof(p), "%s/provider", path);
    write_file(p, fk->provider, strlen(fk->provider));
    snprintf(p, sizeof(p), "%s/generation", path);
    write_file(p, "0\n", 2);
    snprintf(p, sizeof(p), "%s/outblob", path);
    write_file(p, "", 0);
    return 0;
}

static int fake_rmdir(void* ctx, const char* path) {
    struct fake* fk = ctx;
    char p[512];
    static const char* const files[] = {"provider", "generation", "outblob", "auxblob", "inblob"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", path, files[i]);
        unlink(p);
    }
    fk->removed++;
    return tsm_fs_posix()->rmdir(NULL, path);
}

static int fake_read(void* ctx, const char* path, uint8_t** ret, size_t* ret_len) {
    (void)ctx;
    return tsm_fs_posix()->read(NULL, path, ret, ret_len);
}

/* The "kernel": a write to inblob makes the report "REPORT(<data hex>)". */
static int fake_write(void* ctx, const char* path, const uint8_t* data, size_t len) {
    struct fake* fk = ctx;
    char dir[512], p[600], report[256];
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    int n              = snprintf(report, sizeof(report), "REPORT(");
    for (size_t i = 0; i < len; i++)
        n += snprintf(report + n, sizeof(report) - (size_t)n, "%02x", data[i]);
    n += snprintf(report + n, sizeof(report) - (size_t)n, ")");
    snprintf(p, sizeof(p), "%s/outblob", dir);
    write_file(p, report, (size_t)n);
    snprintf(p, sizeof(p), "%s/generation", dir);
    bool race = fk->races > 0;
    fk->races -= race;
    write_file(p, race ? "2\n" : "1\n", 2);
    if (fk->aux) {
        snprintf(p, sizeof(p), "%s/auxblob", dir);
        write_file(p, "CERTS", 5);
    }
    return 0;
}

static struct tsm_fs fake_fs(struct fake* fk) {
    return (struct tsm_fs){.mkdir = fake_mkdir,
                           .rmdir = fake_rmdir,
                           .read  = fake_read,
                           .write = fake_write,
                           .ctx   = fk};
}

static int setup(void** state) {
    struct fake* fk = calloc(1, sizeof(*fk));
    snprintf(fk->root, sizeof(fk->root), "/tmp/moat-tsm-test-XXXXXX");
    assert_non_null(mkdtemp(fk->root));
    fk->provider = "tdx_guest\n";
    *state       = fk;
    return 0;
}

static int teardown(void** state) {
    struct fake* fk = *state;
    rmdir(fk->root);
    free(fk);
    return 0;
}

static void test_report(void** state) {
    struct fake* fk  = *state;
    struct tsm_fs fs = fake_fs(fk);
    struct tsm_report rep;
    struct moat_error err = {0};
    uint8_t data[3]       = {0xab, 0x01, 0xff};
    assert_true(tsm_available(fk->root));
    assert_int_equal(tsm_get_report(&fs, fk->root, data, sizeof(data), &rep, &err), 0);
    assert_string_equal(rep.provider, "tdx_guest");
    assert_int_equal(rep.outblob_len, strlen("REPORT(ab01ff)"));
    assert_memory_equal(rep.outblob, "REPORT(ab01ff)", rep.outblob_len);
    assert_null(rep.auxblob);
    assert_int_equal(rep.generation, 1);
    assert_int_equal(fk->made, 1);
    assert_int_equal(fk->removed, 1); /* the instance is gone again */
    tsm_report_free(&rep);
}

static void test_auxblob(void** state) {
    struct fake* fk  = *state;
    fk->provider     = "sev_guest";
    fk->aux          = true;
    struct tsm_fs fs = fake_fs(fk);
    struct tsm_report rep;
    struct moat_error err = {0};
    assert_int_equal(tsm_get_report(&fs, fk->root, (const uint8_t*)"x", 1, &rep, &err), 0);
    assert_string_equal(rep.provider, "sev_guest");
    assert_int_equal(rep.auxblob_len, 5);
    tsm_report_free(&rep);
}

static void test_race_is_retried(void** state) {
    struct fake* fk  = *state;
    fk->races        = 2; /* two requests race, the third is clean */
    struct tsm_fs fs = fake_fs(fk);
    struct tsm_report rep;
    struct moat_error err = {0};
    assert_int_equal(tsm_get_report(&fs, fk->root, (const uint8_t*)"y", 1, &rep, &err), 0);
    assert_int_equal(fk->made, 3);
    assert_int_equal(fk->removed, 3);
    tsm_report_free(&rep);
}

static void test_race_every_time_fails(void** state) {
    struct fake* fk  = *state;
    fk->races        = 100;
    struct tsm_fs fs = fake_fs(fk);
    struct tsm_report rep;
    struct moat_error err = {0};
    assert_int_equal(tsm_get_report(&fs, fk->root, (const uint8_t*)"y", 1, &rep, &err), -EAGAIN);
    assert_non_null(strstr(err.msg, "another writer"));
    assert_null(rep.outblob); /* nothing for the wrong data is returned */
    assert_int_equal(fk->removed, fk->made);
}

static void test_errors(void** state) {
    struct fake* fk  = *state;
    struct tsm_fs fs = fake_fs(fk);
    struct tsm_report rep;
    struct moat_error err = {0};
    uint8_t big[65]       = {0};
    assert_int_equal(tsm_get_report(&fs, fk->root, big, sizeof(big), &rep, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "64"));
    fk->mkdir_err = EACCES;
    assert_int_equal(tsm_get_report(&fs, fk->root, big, 64, &rep, &err), -EACCES);
    assert_non_null(strstr(err.msg, "cannot create the configfs-tsm report"));
    assert_false(tsm_available("/nonexistent/tsm"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auxblob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race_every_time_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
