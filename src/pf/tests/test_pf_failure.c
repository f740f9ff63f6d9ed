/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for encrypted files (reference/gramine.md §4, §4.6) under real I/O failures and
 * a full cache: a write, flush or close that cannot put its bytes on disk (RLIMIT_FSIZE: EFBIG;
 * a full tmpfs: ENOSPC) reports the failure, keeps reporting it (sticky, like Gramine's
 * file_status), and leaves the file at its last good state, with and without a recovery file;
 * and reads that must evict from a cache full of dirty nodes return the right bytes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pf.h"

static const uint8_t g_key[PF_KEY_SIZE] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};

#define NODE_DATA(d) ((size_t)PF_MD_USER_DATA + (size_t)PF_NODE_SIZE * (d))
#define GOOD_SIZE    (NODE_DATA(20) + 123) /* metadata, root MHT, 21 data nodes: 23 nodes */

static void fill(uint8_t* p, size_t len, unsigned seed) {
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 131 + seed + (i >> 12));
}

/* Writes `len` bytes of fill(seed) into a new encrypted file at `host` (clean close). */
static void create_file(const char* host, const char* rec, size_t len, unsigned seed) {
    int fd = open(host, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    struct pf_file* pf;
    assert_int_equal(pf_open_ex(fd, host, rec, g_key, PF_OPEN_WRITE | PF_OPEN_CREATE, NULL, &pf),
                     PF_SUCCESS);
    uint8_t* data = malloc(len);
    fill(data, len, seed);
    assert_int_equal(pf_write(pf, 0, len, data), PF_SUCCESS);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    assert_int_equal(close(fd), 0);
    free(data);
}

/* The file opens (replaying a recovery file if one is needed) and holds fill(seed). */
static void assert_content(const char* host, const char* rec, size_t len, unsigned seed) {
    int fd = open(host, O_RDWR);
    assert_true(fd >= 0);
    struct pf_file* pf;
    assert_int_equal(pf_open_ex(fd, host, rec, g_key, PF_OPEN_READ, NULL, &pf), PF_SUCCESS);
    assert_int_equal(pf_size(pf), len);
    uint8_t* want = malloc(len);
    uint8_t* got  = malloc(len + 1);
    fill(want, len, seed);
    size_t n;
    assert_int_equal(pf_read(pf, 0, len + 1, got, &n), PF_SUCCESS);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    close(fd);
    free(want);
    free(got);
}

/* Where the first failure shows: an explicit pf_flush, pf_close, or a pf_write whose full
 * cache makes it flush. */
enum fail_mode { FAIL_IN_FLUSH, FAIL_IN_CLOSE, FAIL_IN_WRITE, FAIL_MODES };

/* Opens `host` for writing, changes nodes in place (file_data, data nodes 3 and 10) and then
 * appends past what the disk or RLIMIT_FSIZE allows. Returns 0 when the failure was reported
 * where `mode` expects it and every later operation of the handle (write, flush, read, close)
 * failed too; else the number of the step that went wrong (this runs in a child process). */
static int grow_past_limit(const char* host, const char* rec, enum fail_mode mode) {
    static uint8_t buf[PF_NODE_SIZE * 16];
    fill(buf, sizeof(buf), 77);
    int fd = open(host, O_RDWR);
    struct pf_file* pf;
    if (fd < 0 || pf_open_ex(fd, host, rec, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf))
        return 1;
    if (pf_write(pf, 100, 5000, buf) || pf_write(pf, NODE_DATA(3) + 10, 20, buf) ||
        pf_write(pf, NODE_DATA(10), PF_NODE_SIZE * 2, buf))
        return 2;
    /* FAIL_IN_WRITE: 2 MiB, more than the 256-node cache holds, so a pf_write flushes */
    size_t append         = mode == FAIL_IN_WRITE ? 512 * PF_NODE_SIZE : 48 * PF_NODE_SIZE;
    enum pf_status failed = PF_SUCCESS;
    for (size_t off = 0; off < append && failed == PF_SUCCESS; off += sizeof(buf))
        failed = pf_write(pf, GOOD_SIZE + off, sizeof(buf), buf);
    if ((failed != PF_SUCCESS) != (mode == FAIL_IN_WRITE))
        return 3;
    if (mode == FAIL_IN_FLUSH && (failed = pf_flush(pf)) == PF_SUCCESS)
        return 4;
    if (mode == FAIL_IN_CLOSE) {
        enum pf_status s = pf_close(pf);
        close(fd);
        return s == PF_SUCCESS ? 5 : 0;
    }
    /* sticky: the handle keeps failing with the same status */
    size_t n;
    if (pf_write(pf, 0, 10, buf) != failed || pf_flush(pf) != failed ||
        pf_read(pf, 0, 10, buf, &n) != failed || pf_set_size(pf, 10) != failed)
        return 6;
    if (pf_close(pf) != failed)
        return 7;
    close(fd);
    return 0;
}

struct dirs {
    char dir[64], host[96], rec[128];
};

static void make_dirs(struct dirs* d) {
    snprintf(d->dir, sizeof(d->dir), "/tmp/pf-fail-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->host, sizeof(d->host), "%s/f", d->dir);
    snprintf(d->rec, sizeof(d->rec), "%s/f.gramine.recovery", d->dir);
}

static void remove_files(const struct dirs* d) {
    unlink(d->host);
    unlink(d->rec);
}

/* RLIMIT_FSIZE (a forked child, SIGXFSZ ignored: writes past the limit fail with EFBIG), with
 * and without a recovery file, failing in a flush, a close and a write: every failure is
 * reported, and the file reopens at its last good state (the one its creation closed). */
static struct dirs g_tmp;

static int make_tmp(void** state) {
    (void)state;
    make_dirs(&g_tmp);
    return 0;
}

static int remove_tmp(void** state) {
    (void)state;
    remove_files(&g_tmp);
    return rmdir(g_tmp.dir);
}

static void test_rlimit_fsize(void** state) {
    (void)state;
    const struct dirs d = g_tmp;
    for (int recovery = 0; recovery < 2; recovery++) {
        for (int mode = 0; mode < FAIL_MODES; mode++) {
            const char* rec = recovery ? d.rec : NULL;
            create_file(d.host, rec, GOOD_SIZE, 5);
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0) {
                signal(SIGXFSZ, SIG_IGN);
                /* the file's size now plus 8 nodes: in-place changes and a few appends fit */
                struct rlimit lim = {pf_disk_size(GOOD_SIZE) + 8 * PF_NODE_SIZE, RLIM_INFINITY};
                if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
                    _exit(100);
                _exit(grow_past_limit(d.host, rec, (enum fail_mode)mode));
            }
            int status;
            assert_int_equal(waitpid(pid, &status, 0), pid);
            assert_true(WIFEXITED(status));
            printf("rlimit, recovery %d, mode %d: child step %d\n", recovery, mode,
                   WEXITSTATUS(status));
            assert_int_equal(WEXITSTATUS(status), 0);
            assert_content(d.host, rec, GOOD_SIZE, 5);
            if (!recovery) { /* nothing left past the last good state's end */
                struct stat st;
                assert_int_equal(stat(d.host, &st), 0);
                assert_int_equal(st.st_size, pf_disk_size(GOOD_SIZE));
            }
            remove_files(&d);
        }
    }
}

/* A full disk: a 256 KiB tmpfs mounted for the test (needs CAP_SYS_ADMIN; skipped without),
 * unmounted by the teardown whatever the test's outcome. */
static struct dirs g_tmpfs;
static bool g_mounted;

static int mount_tmpfs(void** state) {
    (void)state;
    make_dirs(&g_tmpfs);
    g_mounted =
        mount("pf-test", g_tmpfs.dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0700") == 0;
    if (!g_mounted)
        printf("cannot mount a tmpfs (%s): test_full_disk skipped\n", strerror(errno));
    return 0;
}

static int umount_tmpfs(void** state) {
    (void)state;
    remove_files(&g_tmpfs);
    if (g_mounted && umount2(g_tmpfs.dir, MNT_DETACH) < 0) /* even with a file left open */
        return -1;
    return rmdir(g_tmpfs.dir);
}

/* The good file takes 23 of the tmpfs's 64 pages; growing it runs out of space (ENOSPC). */
static void test_full_disk(void** state) {
    (void)state;
    if (!g_mounted)
        skip();
    const struct dirs* d = &g_tmpfs;
    for (int recovery = 0; recovery < 2; recovery++) {
        for (int mode = 0; mode < FAIL_MODES; mode++) {
            const char* rec = recovery ? d->rec : NULL;
            create_file(d->host, rec, GOOD_SIZE, 9);
            int step = grow_past_limit(d->host, rec, (enum fail_mode)mode);
            printf("full disk, recovery %d, mode %d: step %d\n", recovery, mode, step);
            assert_int_equal(step, 0);
            assert_content(d->host, rec, GOOD_SIZE, 9);
            remove_files(d);
        }
    }
}

/* Reads that must make room in a cache (256 nodes) full of dirty nodes: the cache is flushed
 * in the middle of the read, and every byte read equals a plain buffer that saw the same
 * writes; then the file as closed holds the same bytes. */
static void test_read_with_dirty_cache(void** state) {
    (void)state;
    enum { NODES = 700, SIZE = PF_MD_USER_DATA + PF_NODE_SIZE * NODES };
    uint8_t* shadow = malloc(SIZE);
    uint8_t* got    = malloc(SIZE);
    fill(shadow, SIZE, 1);
    int fd = memfd_create("pf", 0);
    assert_true(fd >= 0);
    struct pf_file* pf;
    assert_int_equal(pf_open(fd, "f", g_key, PF_OPEN_WRITE | PF_OPEN_CREATE, NULL, &pf),
                     PF_SUCCESS);
    assert_int_equal(pf_write(pf, 0, SIZE, shadow), PF_SUCCESS);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    assert_int_equal(pf_open(fd, "f", g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf), PF_SUCCESS);
    unsigned r = 4242;
    for (int round = 0; round < 6; round++) {
        /* 256 distinct data nodes dirtied at random positions (a random permutation of the
         * first 300 nodes, or of nodes 300..599 in odd rounds): the cache is all dirty */
        unsigned perm[300];
        for (unsigned i = 0; i < 300; i++)
            perm[i] = i + (round % 2) * 300;
        for (unsigned i = 299; i > 0; i--) {
            r          = r * 1103515245 + 12345;
            unsigned j = (r >> 8) % (i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (unsigned i = 0; i < 256; i++) {
            r          = r * 1103515245 + 12345;
            size_t off = NODE_DATA(perm[i]) + (r >> 8) % (PF_NODE_SIZE - 200); /* one node */
            size_t len = 1 + (r >> 20) % 200;
            uint8_t b[200];
            fill(b, len, r);
            assert_int_equal(pf_write(pf, off, len, b), PF_SUCCESS);
            memcpy(shadow + off, b, len);
        }
        /* then reads of other nodes: several nodes at once (batched), and single ones */
        size_t first = round % 2 ? 10 : 320 + (size_t)round * 20;
        size_t n;
        assert_int_equal(pf_read(pf, NODE_DATA(first) + 7, PF_NODE_SIZE * 70, got, &n), PF_SUCCESS);
        assert_int_equal(n, PF_NODE_SIZE * 70);
        assert_memory_equal(got, shadow + NODE_DATA(first) + 7, n);
        assert_int_equal(pf_read(pf, NODE_DATA(650 + round), 100, got, &n), PF_SUCCESS);
        assert_memory_equal(got, shadow + NODE_DATA(650 + round), 100);
    }
    assert_int_equal(pf_read(pf, 0, SIZE, got, &(size_t){0}), PF_SUCCESS);
    assert_memory_equal(got, shadow, SIZE);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    assert_int_equal(pf_open(fd, "f", g_key, PF_OPEN_READ, NULL, &pf), PF_SUCCESS);
    memset(got, 0, SIZE);
    size_t n;
    assert_int_equal(pf_read(pf, 0, SIZE, got, &n), PF_SUCCESS);
    assert_int_equal(n, SIZE);
    assert_memory_equal(got, shadow, SIZE);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    close(fd);
    free(shadow);
    free(got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_with_dirty_cache),
        cmocka_unit_test_setup_teardown(test_rlimit_fsize, make_tmp, remove_tmp),
        cmocka_unit_test_setup_teardown(test_full_disk, mount_tmpfs, umount_tmpfs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
