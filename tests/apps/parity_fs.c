/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File-system parity probe for tests/test_parity_fs.py: each subcommand does what one of
 * Gramine's LibOS regression tests checks (reference/gramine.md §6, §7) and prints what it saw,
 * one fact a line, so the test compares against native Linux behaviour.
 *
 *   getdents DIR   create a, b; list; unlink a, create c; lseek(0); list again
 *   recreate DIR   open DIR/f, write, unlink it, create DIR/f again; both fds read and write
 *   open PATH      open for reading and print the result
 *   create PATH    O_CREAT|O_WRONLY and print the result
 *   ls DIR         the names in DIR
 *   cat PATH       the content of PATH
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int cmp(const void* a, const void* b) {
    return strcmp(*(char* const*)a, *(char* const*)b);
}

/* Prints the sorted names getdents64 returns from the current offset of fd, on one line. */
static int list_fd(const char* tag, int fd) {
    char buf[4096];
    char* names[256];
    size_t n = 0;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (got < 0) {
            printf("%s: getdents64: %s\n", tag, strerror(errno));
            return 1;
        }
        if (got == 0)
            break;
        for (long off = 0; off < got;) {
            struct linux_dirent64* d = (void*)(buf + off);
            if (strcmp(d->d_name, ".") && strcmp(d->d_name, "..") && n < 256)
                names[n++] = strdup(d->d_name);
            off += d->d_reclen;
        }
    }
    qsort(names, n, sizeof(*names), cmp);
    printf("%s:", tag);
    for (size_t i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
    return 0;
}

static int make(const char* dir, const char* name) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) {
        printf("create %s: %s\n", path, strerror(errno));
        return 1;
    }
    close(fd);
    return 0;
}

static int do_getdents(const char* dir) {
    char path[4096];
    if (make(dir, "a") || make(dir, "b"))
        return 1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        printf("open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (list_fd("first", fd))
        return 1;
    snprintf(path, sizeof(path), "%s/a", dir);
    if (unlink(path) < 0) {
        printf("unlink: %s\n", strerror(errno));
        return 1;
    }
    if (make(dir, "c"))
        return 1;
    if (lseek(fd, 0, SEEK_SET) != 0) {
        printf("lseek: %s\n", strerror(errno));
        return 1;
    }
    int r = list_fd("again", fd);
    close(fd);
    return r;
}

static int rw(const char* tag, int fd, const char* text) {
    char buf[64] = {0};
    if (pwrite(fd, text, strlen(text), 0) != (ssize_t)strlen(text) ||
        pread(fd, buf, sizeof(buf) - 1, 0) < 0) {
        printf("%s: %s\n", tag, strerror(errno));
        return 1;
    }
    printf("%s: %s\n", tag, buf);
    return 0;
}

static int do_recreate(const char* dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/f", dir);
    int old = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (old < 0) {
        printf("create: %s\n", strerror(errno));
        return 1;
    }
    if (rw("old", old, "old-1") || unlink(path) < 0)
        return 1;
    int fresh = open(path, O_CREAT | O_RDWR | O_EXCL, 0644);
    if (fresh < 0) {
        printf("recreate: %s\n", strerror(errno));
        return 1;
    }
    int r = rw("new", fresh, "new-1") || rw("old", old, "old-2") || rw("new", fresh, "new-2");
    close(old);
    close(fresh);
    struct stat st;
    if (stat(path, &st) < 0) {
        printf("stat: %s\n", strerror(errno));
        return 1;
    }
    printf("size: %lld\n", (long long)st.st_size);
    return r;
}

static int do_open(const char* path, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        printf("%s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("%s: ok\n", path);
    close(fd);
    return 0;
}

static int do_cat(const char* path) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: %s\n", path, strerror(errno));
        return 1;
    }
    ssize_t got;
    while ((got = read(fd, buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)got, stdout);
    close(fd);
    return got < 0;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        printf("usage: parity_fs CMD ARG\n");
        return 2;
    }
    const char* cmd = argv[1];
    if (!strcmp(cmd, "getdents"))
        return do_getdents(argv[2]);
    if (!strcmp(cmd, "recreate"))
        return do_recreate(argv[2]);
    if (!strcmp(cmd, "open"))
        return do_open(argv[2], O_RDONLY);
    if (!strcmp(cmd, "create"))
        return do_open(argv[2], O_CREAT | O_WRONLY);
    if (!strcmp(cmd, "cat"))
        return do_cat(argv[2]);
    if (!strcmp(cmd, "ls")) {
        int fd = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (fd < 0) {
            printf("%s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        return list_fd(argv[2], fd);
    }
    printf("unknown command %s\n", cmd);
    return 2;
}
