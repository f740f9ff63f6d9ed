/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File I/O for bench/enc_throughput.sh, run natively and under `moat run`; it times only the
 * I/O (not its own start-up) and prints one line "<what> <number>".
 *
 *   fileio write PATH MIB BLOCK   sequential write of MIB MiB in BLOCK-byte writes, fsync,
 *                                 close: "write_mbs N"
 *   fileio read PATH BLOCK        sequential read of the whole file: "read_mbs N"
 *   fileio randread PATH COUNT    COUNT 4 KiB preads at random 4 KiB-aligned offsets (a fixed
 *                                 seed): "randread_per_s N"
 * The content is a position pattern; read and randread check it, so a wrong byte is an error.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The content: every 4 KiB page is a fixed random-looking page whose first 8 bytes are
 * replaced by the page's offset, so a misplaced, stale or wrong node shows; cheap enough
 * (a memcpy) not to hide the I/O. */
static unsigned char g_page[4096];

static void init_page(void) {
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < sizeof(g_page); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        g_page[i] = (unsigned char)x;
    }
}

static void fill(unsigned char* buf, uint64_t off, size_t len) { /* off % 4096 == 0 */
    for (size_t i = 0; i < len; i += 4096) {
        size_t n = len - i < 4096 ? len - i : 4096;
        memcpy(buf + i, g_page, n);
        uint64_t at = off + i;
        memcpy(buf + i, &at, n < 8 ? n : 8);
    }
}

static int check(const unsigned char* buf, uint64_t off, size_t len) {
    static unsigned char want[4096];
    for (size_t i = 0; i < len; i += 4096) {
        size_t n = len - i < 4096 ? len - i : 4096;
        fill(want, off + i, n);
        if (memcmp(buf + i, want, n) != 0) {
            fprintf(stderr, "fileio: wrong content in the 4 KiB page at offset %llu\n",
                    (unsigned long long)(off + i));
            return -1;
        }
    }
    return 0;
}

static int die(const char* what) {
    perror(what);
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr,
                "usage: fileio write PATH MIB BLOCK | read PATH BLOCK | "
                "randread PATH COUNT\n");
        return 2;
    }
    const char* path = argv[2];
    init_page();
    if (!strcmp(argv[1], "write") && argc == 5) {
        uint64_t total = (uint64_t)atoll(argv[3]) << 20;
        size_t block   = (size_t)atoll(argv[4]);
        if (!block || block % 4096) {
            fprintf(stderr, "fileio: BLOCK must be a multiple of 4096\n");
            return 2;
        }
        unsigned char* buf = malloc(block);
        int fd             = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (!buf || fd < 0)
            return die("open");
        double t0 = now();
        for (uint64_t off = 0; off < total; off += block) {
            size_t n = total - off < block ? (size_t)(total - off) : block;
            fill(buf, off, n); /* part of the timing on both sides */
            if (write(fd, buf, n) != (ssize_t)n)
                return die("write");
        }
        if (fsync(fd) < 0 || close(fd) < 0)
            return die("fsync/close");
        printf("write_mbs %.0f\n", (double)total / (1 << 20) / (now() - t0));
        return 0;
    }
    if (!strcmp(argv[1], "read") && argc == 4) {
        size_t block = (size_t)atoll(argv[3]);
        if (!block || block % 4096) {
            fprintf(stderr, "fileio: BLOCK must be a multiple of 4096\n");
            return 2;
        }
        unsigned char* buf = malloc(block);
        int fd             = open(path, O_RDONLY);
        if (!buf || fd < 0)
            return die("open");
        double t0    = now();
        uint64_t off = 0;
        ssize_t n;
        while ((n = read(fd, buf, block)) > 0) {
            if (check(buf, off, (size_t)n) < 0)
                return 1;
            off += (uint64_t)n;
        }
        if (n < 0)
            return die("read");
        close(fd);
        printf("read_mbs %.0f\n", (double)off / (1 << 20) / (now() - t0));
        return 0;
    }
    if (!strcmp(argv[1], "randread") && argc == 4) {
        long count = atol(argv[3]);
        int fd     = open(path, O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 4096)
            return die("open");
        uint64_t pages = (uint64_t)st.st_size / 4096, x = 88172645463325252ULL;
        unsigned char buf[4096];
        double t0 = now();
        for (long i = 0; i < count; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            uint64_t off = (x % pages) * 4096;
            if (pread(fd, buf, 4096, (off_t)off) != 4096)
                return die("pread");
            if (check(buf, off, 4096) < 0)
                return 1;
        }
        printf("randread_per_s %.0f\n", (double)count / (now() - t0));
        return 0;
    }
    fprintf(stderr, "fileio: unknown command %s\n", argv[1]);
    return 2;
}
