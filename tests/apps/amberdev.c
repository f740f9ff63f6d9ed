/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/test_dev_amber.py's app: operations on /dev/amber files, one per argument pair, each
 * reported on a line of stdout:
 *   r NAME        "r NAME ok <hex of the content>" or "r NAME err <errno>"
 *   w NAME VALUE  "w NAME ok" or "w NAME err <errno>"
 *   ls            "ls <entries, space-separated>" (of /dev/amber)
 * Content is read with read() until 0, as the seed's sample does; errors are what read/write
 * (or open) returned.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void op_read(const char* name) {
    char path[256], buf[65536];
    snprintf(path, sizeof(path), "/dev/amber/%s", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("r %s err %d\n", name, errno);
        return;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r > 0) {
            n += (size_t)r;
            if (n == sizeof(buf))
                break;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            printf("r %s err %d\n", name, errno);
            close(fd);
            return;
        }
        break;
    }
    close(fd);
    printf("r %s ok ", name);
    for (size_t i = 0; i < n; i++)
        printf("%02x", (unsigned char)buf[i]);
    printf("\n");
}

static void op_write(const char* name, const char* value) {
    char path[256];
    snprintf(path, sizeof(path), "/dev/amber/%s", name);
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        printf("w %s err %d\n", name, errno);
        return;
    }
    ssize_t w = write(fd, value, strlen(value));
    if (w < 0)
        printf("w %s err %d\n", name, errno);
    else
        printf("w %s ok\n", name);
    close(fd);
}

int main(int argc, char** argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "r") && i + 1 < argc) {
            op_read(argv[++i]);
        } else if (!strcmp(argv[i], "w") && i + 2 < argc) {
            op_write(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (!strcmp(argv[i], "ls")) {
            DIR* d = opendir("/dev/amber");
            printf("ls");
            struct dirent* e;
            while (d && (e = readdir(d)))
                if (e->d_name[0] != '.')
                    printf(" %s", e->d_name);
            printf(d ? "\n" : " err %d\n", errno);
            if (d)
                closedir(d);
        } else {
            fprintf(stderr, "usage: amberdev [r NAME | w NAME VALUE | ls]...\n");
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
