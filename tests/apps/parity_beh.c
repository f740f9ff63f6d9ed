/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What an app sees of its process and system under `moat run`, for
 * tests/test_parity_behaviour.py and docs/gramine-differences.md ("Process and system
 * behaviour"). One probe per argument; each prints `name: value` lines.
 *
 *   ids       pid, ppid, pgid, sid; setsid() (EPERM for a group leader); kill(0, 0)
 *   hostname  gethostname(), uname().nodename, /etc/hostname
 *   stdio     one line to stdout, one to stderr
 *   proc      which /proc entries exist and what /proc/self is
 *   execnull  execve(self, NULL argv): the new image prints its argc and argv[0]
 *   execempty execve(self, {NULL}): the same
 *   eventfd   an eventfd written by a forked child, read by the parent
 *   locks     flock(LOCK_SH) then fcntl(F_SETLK, F_RDLCK) on the same file
 *   connect   non-blocking connect to a closed loopback port
 *   killgroup kill(0, SIGKILL): every process of the app's group (the app too)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static const char* result(int r) {
    return r < 0 ? strerror(errno) : "ok";
}

static int ids(void) {
    printf("pid: %d\nppid: %d\npgid: %d\nsid: %d\n", (int)getpid(), (int)getppid(), (int)getpgid(0),
           (int)getsid(0));
    printf("setsid: %s\n", result(setsid()));
    printf("kill0: %s\n", result(kill(0, 0)));
    return 0;
}

static int hostname(void) {
    char name[256] = "";
    struct utsname u;
    printf("gethostname: %s\n", gethostname(name, sizeof(name) - 1) < 0 ? strerror(errno) : name);
    printf("nodename: %s\n", uname(&u) < 0 ? strerror(errno) : u.nodename);
    FILE* f        = fopen("/etc/hostname", "r");
    char line[256] = "";
    if (f && fgets(line, sizeof(line), f))
        line[strcspn(line, "\n")] = '\0';
    printf("etc_hostname: %s\n", f ? line : strerror(errno));
    if (f)
        fclose(f);
    return 0;
}

static int stdio(void) {
    printf("to stdout\n");
    fflush(stdout);
    fprintf(stderr, "to stderr\n");
    return 0;
}

static int proc(void) {
    static const char* const entries[] = {"/proc/self",    "/proc/1",       "/proc/cpuinfo",
                                          "/proc/meminfo", "/proc/stat",    "/proc/mounts",
                                          "/proc/sys",     "/proc/uptime",  "/proc/version",
                                          "/proc/kcore",   "/proc/loadavg", "/proc/self/maps"};
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        struct stat st;
        printf("%s: %s\n", entries[i], stat(entries[i], &st) < 0 ? strerror(errno) : "present");
    }
    char link[64] = "";
    ssize_t n     = readlink("/proc/self", link, sizeof(link) - 1);
    printf("self_link: %s\n", n < 0 ? strerror(errno) : link);
    return 0;
}

static int exec_with(char* const* argv) {
    char* const envp[] = {"PARITY_EXECED=1", NULL};
    syscall(SYS_execve, "/proc/self/exe", argv, envp);
    printf("execve: %s\n", strerror(errno));
    return 1;
}

static int eventfd_fork(void) {
    int efd = eventfd(0, EFD_NONBLOCK);
    if (efd < 0) {
        printf("eventfd: %s\n", strerror(errno));
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t v = 5;
        _exit(write(efd, &v, sizeof(v)) == sizeof(v) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    uint64_t v = 0;
    ssize_t n  = read(efd, &v, sizeof(v));
    printf("child_write: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");
    if (n == sizeof(v))
        printf("parent_read: %llu\n", (unsigned long long)v);
    else
        printf("parent_read: %s\n", strerror(errno));
    return 0;
}

static int locks(void) {
    char path[] = "/tmp/parity-lock-XXXXXX";
    int fd      = mkstemp(path);
    if (fd < 0) {
        printf("open: %s\n", strerror(errno));
        return 0;
    }
    printf("flock: %s\n", result(flock(fd, LOCK_SH)));
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
    printf("fcntl_same_file: %s\n", result(fcntl(fd, F_SETLK, &fl)));
    pid_t pid = fork();
    if (pid == 0) {
        struct flock wr = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
        printf("fcntl_in_child: %s\n", result(fcntl(fd, F_SETLK, &wr)));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    unlink(path);
    return 0;
}

static int nb_connect(void) {
    /* a port nothing listens on: bind one, learn its number, close it */
    int probe             = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len         = sizeof(sa);
    if (probe < 0 || bind(probe, (struct sockaddr*)&sa, sizeof(sa)) < 0 ||
        getsockname(probe, (struct sockaddr*)&sa, &len) < 0) {
        printf("connect: setup failed: %s\n", strerror(errno));
        return 0;
    }
    close(probe);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(s, (struct sockaddr*)&sa, sizeof(sa));
    printf("connect: %s\n", r < 0 ? strerror(errno) : "ok");
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = s, .events = POLLOUT};
        poll(&p, 1, 5000);
        int so_error   = 0;
        socklen_t olen = sizeof(so_error);
        getsockopt(s, SOL_SOCKET, SO_ERROR, &so_error, &olen);
        printf("so_error: %s\n", strerror(so_error));
    }
    close(s);
    return 0;
}

int main(int argc, char** argv) {
    if (getenv("PARITY_EXECED")) { /* the image execve started */
        printf("argc: %d\nargv0: %s\n", argc, argc > 0 && argv[0] ? argv[0] : "(null)");
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char* what        = argc > 1 ? argv[1] : "";
    char* const null_argv[] = {NULL};
    if (!strcmp(what, "ids"))
        return ids();
    if (!strcmp(what, "hostname"))
        return hostname();
    if (!strcmp(what, "stdio"))
        return stdio();
    if (!strcmp(what, "proc"))
        return proc();
    if (!strcmp(what, "execnull"))
        return exec_with(NULL);
    if (!strcmp(what, "execempty"))
        return exec_with(null_argv);
    if (!strcmp(what, "eventfd"))
        return eventfd_fork();
    if (!strcmp(what, "locks"))
        return locks();
    if (!strcmp(what, "connect"))
        return nb_connect();
    if (!strcmp(what, "killgroup"))
        return kill(0, SIGKILL) < 0 ? 1 : 0;
    fprintf(stderr,
            "usage: parity_beh ids|hostname|stdio|proc|execnull|execempty|eventfd|locks|"
            "connect|killgroup\n");
    return 2;
}
