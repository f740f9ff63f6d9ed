/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Probe for tests/test_parity_ids.py: the app's ids under loader.uid / loader.gid (Gramine:
 * the emulated (e)uid/(e)gid, reference/gramine.md §1.3) and the owner of what it creates.
 *   ids              -> "uid U euid U gid G egid G groups N"
 *   create PATH...   -> creates each PATH (O_CREAT|O_EXCL), "PATH U:G" from fstat, or the error
 *   stat PATH...     -> "PATH U:G", or the error
 *   setuid ID        -> "setuid ID: ok" or the error (the app cannot change its ids)
 *   caps             -> the Cap* and NoNewPrivs lines of /proc/self/status, values as hex
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char* path, const struct stat* st) {
    printf("%s %u:%u\n", path, (unsigned)st->st_uid, (unsigned)st->st_gid);
}

int main(int argc, char** argv) {
    if (argc < 2)
        return 2;
    const char* cmd = argv[1];
    if (!strcmp(cmd, "ids")) {
        printf("uid %u euid %u gid %u egid %u groups %d\n", (unsigned)getuid(), (unsigned)geteuid(),
               (unsigned)getgid(), (unsigned)getegid(), getgroups(0, NULL));
        return 0;
    }
    if (!strcmp(cmd, "caps")) {
        FILE* f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof(line), f)) {
            char* colon = strchr(line, ':');
            if (colon && (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10))) {
                *colon = '\0';
                printf("%s: %llx\n", line, strtoull(colon + 1, NULL, 16));
            }
        }
        return f ? 0 : 1;
    }
    for (int i = 2; i < argc; i++) {
        struct stat st;
        if (!strcmp(cmd, "create")) {
            int fd = open(argv[i], O_CREAT | O_EXCL | O_WRONLY, 0644);
            if (fd < 0 || fstat(fd, &st) < 0) {
                printf("%s: %s\n", argv[i], strerror(errno));
                continue;
            }
            close(fd);
            show(argv[i], &st);
        } else if (!strcmp(cmd, "stat")) {
            if (lstat(argv[i], &st) < 0)
                printf("%s: %s\n", argv[i], strerror(errno));
            else
                show(argv[i], &st);
        } else if (!strcmp(cmd, "setuid")) {
            unsigned id = (unsigned)strtoul(argv[i], NULL, 10);
            printf("setuid %u: %s\n", id, setuid(id) == 0 ? "ok" : strerror(errno));
        }
    }
    return 0;
}
