/* SPDX-License-Identifier: Apache-2.0 */
/* A small app for the `moat run` integration tests (tests/test_run.py): each subcommand does
 * one thing inside the sandbox and reports what the kernel said. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

static void* idle_thread(void* arg) {
    (void)arg;
    sleep(2);
    return NULL;
}

static int report(const char* what, int ok) {
    if (ok)
        printf("%s: ok\n", what);
    else
        printf("%s: %s\n", what, strerror(errno));
    return ok ? 0 : 1;
}

static int run(int argc, char** argv);

static void* copy_in_thread(void* arg) {
    return run(4, arg) == 0 ? NULL : arg;
}

/* "probe CMD ARGS [+ CMD ARGS]...": the commands in turn, in one process, while they succeed */
int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int start = 1;
    for (int i = 1; i <= argc; i++) {
        if (i < argc && strcmp(argv[i], "+") != 0)
            continue;
        argv[start - 1] = argv[0];
        char* saved     = argv[i];
        argv[i]         = NULL;
        int r           = run(i - start + 1, argv + start - 1);
        argv[i]         = saved;
        if (r != 0 || i == argc)
            return r;
        start = i + 1;
    }
    return 0;
}

static int run(int argc, char** argv) {
    if (argc < 2) {
        printf("argc=%d\n", argc);
        return 0;
    }
    const char* cmd = argv[1];
    if (!strcmp(cmd, "argv")) {
        for (int i = 0; i < argc; i++)
            printf("argv[%d]=%s\n", i, argv[i]);
        return 0;
    }
    if (!strcmp(cmd, "env")) {
        for (char** e = environ; *e; e++)
            printf("%s\n", *e);
        return 0;
    }
    if (!strcmp(cmd, "read") && argc > 2) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0)
            return report("open", 0);
        char buf[65536];
        ssize_t n, total = 0;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            total += n;
        if (n < 0)
            return report("read", 0);
        printf("read %zd bytes\n", total);
        return 0;
    }
    if (!strcmp(cmd, "cat") && argc > 2) {
        FILE* f = fopen(argv[2], "r");
        if (!f)
            return report("open", 0);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, stdout);
        fclose(f);
        return 0;
    }
    if (!strcmp(cmd, "hostname")) {
        char buf[256];
        gethostname(buf, sizeof(buf));
        printf("%s\n", buf);
        return 0;
    }
    if (!strcmp(cmd, "stat") && argc > 2) {
        struct stat st;
        return report("stat", stat(argv[2], &st) == 0);
    }
    if (!strcmp(cmd, "write") && argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return report("open", 0);
        return report("write", write(fd, "written\n", 8) == 8 && close(fd) == 0);
    }
    if (!strcmp(cmd, "writebig") && argc > 3) {
        /* N bytes of (i * 7) & 0xff, in odd-sized pieces */
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return report("open", 0);
        long total = atol(argv[3]), done = 0;
        char buf[7000];
        while (done < total) {
            long n = total - done < (long)sizeof(buf) ? total - done : (long)sizeof(buf);
            for (long i = 0; i < n; i++)
                buf[i] = (char)(((done + i) * 7) & 0xff);
            if (write(fd, buf, (size_t)n) != n)
                return report("write", 0);
            done += n;
        }
        return report("write", close(fd) == 0);
    }
    if (!strcmp(cmd, "readlater") && argc > 3) {
        /* read the first 4 KiB, say "ready", wait for a line on stdin, read at the offset */
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0)
            return report("open", 0);
        char buf[4096];
        if (read(fd, buf, sizeof(buf)) < 0)
            return report("first read", 0);
        printf("ready\n");
        char line[16];
        if (!fgets(line, sizeof(line), stdin))
            return 2;
        ssize_t n = pread(fd, buf, sizeof(buf), atol(argv[3]));
        return report("second read", n >= 0);
    }
    if (!strcmp(cmd, "threads") && argc > 2) {
        int want = atoi(argv[2]), made = 0;
        for (; made < want; made++) {
            pthread_t t;
            if (pthread_create(&t, NULL, idle_thread, NULL) != 0)
                break;
            pthread_detach(t);
        }
        printf("threads=%d\n", made);
        return 0;
    }
    if (!strcmp(cmd, "alloc") && argc > 2) {
        size_t mb = (size_t)atol(argv[2]);
        void* p   = malloc(mb << 20);
        if (p)
            memset(p, 1, mb << 20);
        return report("alloc", p != NULL);
    }
    if (!strcmp(cmd, "rename") && argc > 3)
        return report("rename", rename(argv[2], argv[3]) == 0);
    if (!strcmp(cmd, "fork")) {
        pid_t p = fork();
        if (p == 0)
            _exit(0);
        if (p > 0)
            waitpid(p, NULL, 0);
        return report("fork", p >= 0);
    }
    if (!strcmp(cmd, "pwd")) {
        char buf[4096];
        printf("cwd=%s\n", getcwd(buf, sizeof(buf)) ? buf : strerror(errno));
        return 0;
    }
    if (!strcmp(cmd, "nofile")) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        printf("nofile=%llu\n", (unsigned long long)rl.rlim_cur);
        return 0;
    }
    if (!strcmp(cmd, "exit") && argc > 2)
        return atoi(argv[2]);
    if (!strcmp(cmd, "kill") && argc > 2) {
        kill(getpid(), atoi(argv[2]));
        return 0;
    }
    if (!strcmp(cmd, "sleep") && argc > 2) {
        printf("sleeping\n");
        sleep((unsigned)atoi(argv[2]));
        printf("woke\n");
        return 0;
    }
    if (!strcmp(cmd, "put") && argc > 3) {
        /* one write() of DATA ("hex:..." decodes hex) */
        const char* data = argv[3];
        char bytes[256];
        size_t len = strlen(data);
        if (!strncmp(data, "hex:", 4)) {
            len = strlen(data + 4) / 2;
            for (size_t i = 0; i < len && i < sizeof(bytes); i++)
                sscanf(data + 4 + 2 * i, "%2hhx", (unsigned char*)&bytes[i]);
            data = bytes;
        }
        int fd = open(argv[2], O_WRONLY);
        if (fd < 0)
            return report("open", 0);
        if (write(fd, data, len) != (ssize_t)len || close(fd) != 0)
            return report("put", 0);
        printf("put: ok\n");
        return 0;
    }
    if (!strcmp(cmd, "renameopen") && argc > 3) {
        /* rename a file the app has open, then write through the open descriptor */
        int fd = open(argv[2], O_WRONLY | O_APPEND);
        if (fd < 0)
            return report("open", 0);
        if (rename(argv[2], argv[3]) != 0)
            return report("rename", 0);
        return report("renameopen", write(fd, "after\n", 6) == 6 && close(fd) == 0);
    }
    if (!strcmp(cmd, "generations") && argc > 3) {
        /* rewrites the file with generation g = 1, 2, ... (every byte g % 251) in PIECE-byte
         * writes (default 4096) and fsyncs, printing "g N" once generation N is durable,
         * until killed */
        size_t size  = (size_t)atol(argv[3]);
        size_t piece = argc > 4 ? (size_t)atol(argv[4]) : 4096;
        char* buf    = malloc(size);
        int fd       = open(argv[2], O_RDWR | O_CREAT, 0644);
        if (!buf || fd < 0)
            return report("open", 0);
        for (unsigned g = 1;; g++) {
            memset(buf, (int)(g % 251), size);
            for (size_t off = 0; off < size; off += piece)
                if (pwrite(fd, buf + off, size - off < piece ? size - off : piece, (off_t)off) < 0)
                    return report("pwrite", 0);
            if (fsync(fd) != 0)
                return report("fsync", 0);
            printf("g %u\n", g);
        }
    }
    if (!strcmp(cmd, "uniform") && argc > 2) {
        /* "uniform B SIZE" when every byte of the file is B, else "mixed" */
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0)
            return report("open", 0);
        unsigned char buf[65536];
        int first = -1, mixed = 0;
        long long total = 0;
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (first < 0)
                    first = buf[i];
                mixed |= buf[i] != first;
            }
            total += n;
        }
        if (n < 0)
            return report("read", 0);
        if (mixed)
            printf("mixed\n");
        else
            printf("uniform %d %lld\n", first, total);
        return 0;
    }
    if (!strcmp(cmd, "writemb") && argc > 3) {
        /* N MiB in 1 MiB writes (byte i is (i * 7) & 0xff), fsync, close: the first failure */
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return report("open", 0);
        static char mb[1 << 20];
        for (long m = 0; m < atol(argv[3]); m++) {
            for (size_t i = 0; i < sizeof(mb); i++)
                mb[i] = (char)(((m * sizeof(mb) + i) * 7) & 0xff);
            if (write(fd, mb, sizeof(mb)) != (ssize_t)sizeof(mb))
                return report("write", 0);
        }
        if (argc > 4) { /* "writemb PATH N OFF": read OFF back past the page cache, unsynced */
            char* sub[] = {argv[0], "directread", argv[2], argv[4], NULL};
            if (run(4, sub) != 0)
                return 1;
        }
        if (fsync(fd) != 0)
            return report("fsync", 0);
        return report("writemb", close(fd) == 0);
    }
    if (!strcmp(cmd, "directread") && argc > 3) {
        /* 4 KiB at OFFSET with O_DIRECT (past the page cache, from moat): "ok" when it holds
         * the writemb pattern */
        int fd = open(argv[2], O_RDONLY | O_DIRECT);
        if (fd < 0)
            return report("open", 0);
        static char buf[4096] __attribute__((aligned(4096)));
        long off = atol(argv[3]);
        if (pread(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
            return report("pread", 0);
        for (size_t i = 0; i < sizeof(buf); i++)
            if (buf[i] != (char)(((off + (long)i) * 7) & 0xff)) {
                printf("directread: wrong byte at %ld\n", off + (long)i);
                return 1;
            }
        return report("directread", close(fd) == 0);
    }
    if (!strcmp(cmd, "copy") && argc > 3) {
        /* the whole of SRC (read in one open) into DST */
        int in = open(argv[2], O_RDONLY), out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0)
            return report("open", 0);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                return report("write", 0);
        return report("copy", n == 0 && close(in) == 0 && close(out) == 0);
    }
    if (!strcmp(cmd, "urdscope") && argc > 3) {
        /* writes 64 bytes of 0x5a to user_report_data, then copies the quote to ARG2 from
         * another thread of this process and to ARG3 from a forked child process */
        char urd[64];
        memset(urd, 0x5a, sizeof(urd));
        int fd = open("/dev/attestation/user_report_data", O_WRONLY);
        if (fd < 0 || write(fd, urd, sizeof(urd)) != (ssize_t)sizeof(urd) || close(fd) != 0)
            return report("user_report_data", 0);
        char* copy_thread[] = {argv[0], "copy", "/dev/attestation/quote", argv[2], NULL};
        pthread_t t;
        if (pthread_create(&t, NULL, copy_in_thread, copy_thread) != 0)
            return report("pthread_create", 0);
        void* tr;
        pthread_join(t, &tr);
        if (tr)
            return 1;
        pid_t p = fork();
        if (p == 0) {
            char* copy_child[] = {argv[0], "copy", "/dev/attestation/quote", argv[3], NULL};
            _exit(run(4, copy_child));
        }
        int st = 0;
        waitpid(p, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    }
    if (!strcmp(cmd, "ls") && argc > 2) {
        DIR* d = opendir(argv[2]);
        if (!d)
            return report("opendir", 0);
        struct dirent* e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                printf("%s\n", e->d_name);
        closedir(d);
        return 0;
    }
    if (!strcmp(cmd, "gethex") && argc > 2) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0)
            return report("open", 0);
        unsigned char buf[256];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0)
            return report("read", 0);
        printf("%zd bytes:", n);
        for (ssize_t i = 0; i < n; i++)
            printf("%02x", buf[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "mmapsum") && argc > 2) {
        /* maps the whole file read-only and prints its size and the sum of its bytes */
        int fd = open(argv[2], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
            return report("open", 0);
        const unsigned char* p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return report("mmap", 0);
        unsigned long long sum = 0;
        for (off_t i = 0; i < st.st_size; i++)
            sum += p[i];
        printf("mmap %lld bytes, sum %llu\n", (long long)st.st_size, sum);
        return 0;
    }
    if (!strcmp(cmd, "shared") && argc > 2) {
        /* two processes on one file, each with its own open: each sees the other's writes */
        int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return report("open", 0);
        char buf[9000];
        memset(buf, 'A', sizeof(buf));
        if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            return report("write", 0);
        pid_t p = fork();
        if (p == 0) {
            int cfd = open(argv[2], O_RDWR);
            char got[9000];
            if (cfd < 0 || read(cfd, got, sizeof(got)) != (ssize_t)sizeof(got) ||
                memcmp(got, buf, sizeof(got)) != 0)
                _exit(3);
            if (pwrite(cfd, "child", 5, 5000) != 5 || close(cfd) != 0)
                _exit(4);
            _exit(0);
        }
        int wst = 0;
        waitpid(p, &wst, 0);
        if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
            printf("shared: child failed (%d)\n", WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
            return 1;
        }
        char got[5];
        if (pread(fd, got, 5, 5000) != 5)
            return report("pread", 0);
        printf("shared: parent reads \"%.5s\"\n", got);
        return close(fd) == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "mount"))
        return report("umount /proc", umount2("/proc", 0) == 0) == 0 ? 0 : 1;
    printf("unknown command %s\n", cmd);
    return 2;
}
