/* SPDX-License-Identifier: Apache-2.0 */
/* The app of tests/test_attack_paths.py: tries what an app that wants out of its sandbox
 * tries with symlinks, one command after another ("pathattack CMD ARGS [+ CMD ARGS]..."), and
 * prints one line per command with what the kernel said; it goes on after a failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void say(const char* cmd, const char* path, int ok) {
    if (ok)
        printf("%s %s: ok\n", cmd, path);
    else
        printf("%s %s: %s\n", cmd, path, strerror(errno));
}

static void one(int argc, char** argv) {
    const char* cmd = argv[0];
    if (!strcmp(cmd, "symlink") && argc == 3) { /* symlink TARGET LINK */
        say(cmd, argv[2], symlink(argv[1], argv[2]) == 0);
    } else if (!strcmp(cmd, "read") && argc == 2) {
        char buf[4096];
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) {
            say(cmd, argv[1], 0);
            return;
        }
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0)
            say(cmd, argv[1], 0);
        else
            printf("read %s: %zd bytes\n", argv[1], n);
        close(fd);
    } else if (!strcmp(cmd, "write") && argc == 2) {
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0666);
        say(cmd, argv[1], fd >= 0 && write(fd, "from the app\n", 13) == 13);
        if (fd >= 0)
            close(fd);
    } else if (!strcmp(cmd, "readlink") && argc == 2) {
        char buf[4096];
        ssize_t n = readlink(argv[1], buf, sizeof(buf) - 1);
        if (n < 0) {
            say(cmd, argv[1], 0);
            return;
        }
        buf[n] = '\0';
        printf("readlink %s: %s\n", argv[1], buf);
    } else if (!strcmp(cmd, "lstat") && argc == 2) {
        struct stat st;
        if (lstat(argv[1], &st) < 0) {
            say(cmd, argv[1], 0);
            return;
        }
        printf("lstat %s: %s\n", argv[1],
               S_ISLNK(st.st_mode)   ? "symlink"
               : S_ISDIR(st.st_mode) ? "directory"
               : S_ISREG(st.st_mode) ? "file"
                                     : "other");
    } else if (!strcmp(cmd, "rename") && argc == 3) {
        say(cmd, argv[1], rename(argv[1], argv[2]) == 0);
    } else if (!strcmp(cmd, "unlink") && argc == 2) {
        say(cmd, argv[1], unlink(argv[1]) == 0);
    } else if (!strcmp(cmd, "rmdir") && argc == 2) {
        say(cmd, argv[1], rmdir(argv[1]) == 0);
    } else {
        printf("%s: bad command\n", cmd);
    }
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int start = 1;
    for (int i = 1; i <= argc; i++) {
        if (i < argc && strcmp(argv[i], "+") != 0)
            continue;
        if (i > start)
            one(i - start, argv + start);
        start = i + 1;
    }
    return 0;
}
