/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Load for moat's FUSE view (bench/fuse_soak.sh, tests/test_fuse_forget.py).
 *
 *   fuse_soak soak OPS WDIR ADIR NA TDIR NT
 *     OPS lookups and opens, in a fixed mix per 10 operations: 4 stats of repeated names in
 *     ADIR (files f0..f<NA-1>), 1 open+close of a trusted file in TDIR (f0..f<NT-1>), 3 new
 *     files in WDIR (create, close, stat, unlink: a name never seen before, so a new node), 2
 *     stats of repeated names in WDIR (k0..k999, made at the start). Prints "progress P" after
 *     each tenth of the operations (P = 10, 20, ..., 100) on stdout.
 *   fuse_soak race SECONDS DIR THREADS
 *     THREADS threads create, stat, open, write, rename and unlink the same 16 names in DIR
 *     for SECONDS: every lookup races a forget, an unlink or a rename of the same name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char* what, const char* path) {
    fprintf(stderr, "fuse_soak: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void progress(int pct) {
    char line[32];
    int n = snprintf(line, sizeof(line), "progress %d\n", pct);
    if (write(1, line, (size_t)n) != n)
        exit(1);
}

static int soak(long ops, const char* wdir, const char* adir, long na, const char* tdir, long nt) {
    char path[4096];
    struct stat st;
    for (int k = 0; k < 1000; k++) {
        snprintf(path, sizeof(path), "%s/k%d", wdir, k);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0)
            die("create", path);
        close(fd);
    }
    long next = ops / 10, tenth = 1;
    for (long i = 0; i < ops; i++) {
        long r = i % 10;
        if (r < 4) {
            snprintf(path, sizeof(path), "%s/f%ld", adir, ((i / 10 * 4 + r) * 7919) % na);
            if (stat(path, &st) < 0)
                die("stat", path);
        } else if (r == 4) {
            snprintf(path, sizeof(path), "%s/f%ld", tdir, (i / 10) % nt);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                die("open", path);
            close(fd);
        } else if (r < 8) {
            snprintf(path, sizeof(path), "%s/n%ld", wdir, i);
            int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
            if (fd < 0)
                die("create", path);
            close(fd);
            if (stat(path, &st) < 0)
                die("stat", path);
            if (unlink(path) < 0)
                die("unlink", path);
        } else {
            snprintf(path, sizeof(path), "%s/k%ld", wdir, (i * 31 + r) % 1000);
            if (stat(path, &st) < 0)
                die("stat", path);
        }
        while (i + 1 >= next && tenth <= 10) {
            progress((int)(10 * tenth));
            tenth++;
            next = ops * tenth / 10;
        }
    }
    return 0;
}

static const char* g_dir;
static volatile int g_stop;

static void* racer(void* arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    char a[4096], b[4096], buf[64] = "racing";
    struct stat st;
    while (!g_stop) {
        snprintf(a, sizeof(a), "%s/r%u", g_dir, rand_r(&seed) % 16);
        snprintf(b, sizeof(b), "%s/r%u", g_dir, rand_r(&seed) % 16);
        int fd;
        switch (rand_r(&seed) % 7) {
            case 0:
                fd = open(a, O_CREAT | O_RDWR, 0644);
                if (fd >= 0) {
                    (void)!write(fd, buf, sizeof(buf));
                    (void)!rename(a, b); /* renamed while open */
                    (void)!pread(fd, buf, sizeof(buf), 0);
                    (void)!fstat(fd, &st);
                    close(fd);
                }
                break;
            case 1:
                (void)!stat(a, &st);
                break;
            case 2:
                (void)!unlink(a);
                break;
            case 3:
                (void)!rename(a, b);
                break;
            case 4:
                fd = open(a, O_RDONLY);
                if (fd >= 0) {
                    (void)!unlink(a); /* removed while open */
                    (void)!read(fd, buf, sizeof(buf));
                    (void)!fstat(fd, &st);
                    close(fd);
                }
                break;
            case 5:
                (void)!renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
                break;
            default:
                (void)!truncate(a, 10);
                break;
        }
    }
    return NULL;
}

static int race(int seconds, const char* dir, int nthreads) {
    g_dir = dir;
    pthread_t t[64];
    if (nthreads > 64)
        nthreads = 64;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, racer, (void*)(uintptr_t)(i + 1));
    struct timespec ts = {.tv_sec = seconds};
    nanosleep(&ts, NULL);
    g_stop = 1;
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("raced\n");
    return 0;
}

int main(int argc, char** argv) {
    if (argc == 8 && !strcmp(argv[1], "soak"))
        return soak(atol(argv[2]), argv[3], argv[4], atol(argv[5]), argv[6], atol(argv[7]));
    if (argc == 5 && !strcmp(argv[1], "race"))
        return race(atoi(argv[2]), argv[3], atoi(argv[4]));
    fprintf(stderr,
            "usage: fuse_soak soak OPS WDIR ADIR NA TDIR NT | fuse_soak race SECONDS DIR N\n");
    return 2;
}
