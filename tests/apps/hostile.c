/* SPDX-License-Identifier: Apache-2.0 */
/* A hostile app for tests/test_attacks.py: each subcommand tries one way out of the `moat run`
 * sandbox and prints one line per attempt, `<name>: ok` or `<name>: <strerror>` (plus the data
 * the test needs), then exits 0. Nothing here is destructive when it succeeds: payloads are
 * markers the test can see and undo (a core_pattern that names a file, setuid bits on a copy in
 * a test directory, a cgroup directory the test removes), and files of the kernel's that act on
 * a write (/proc/sysrq-trigger, fusectl's abort) are only opened, never written. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <linux/netlink.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

static int report(const char* what, int ok) {
    if (ok)
        printf("%s: ok\n", what);
    else
        printf("%s: %s\n", what, strerror(errno));
    return ok;
}

/* an fd-returning call: report it and close what it returned */
static void report_fd(const char* what, long fd) {
    report(what, fd >= 0);
    if (fd >= 0)
        close((int)fd);
}

static ssize_t read_whole(const char* path, char* buf, size_t size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    ssize_t r;
    while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    return (ssize_t)n;
}

/* print a file's content on one line, NULs and newlines as spaces: "<label>: <content>" or the
 * error */
static void dump(const char* label, const char* path) {
    static char buf[65536];
    ssize_t n = read_whole(path, buf, sizeof(buf));
    if (n < 0) {
        report(label, 0);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0 || buf[i] == '\n')
            buf[i] = ' ';
    printf("%s: =%s\n", label, buf);
}

static void status_fields(const char* label, const char* path) {
    static char buf[16384];
    if (read_whole(path, buf, sizeof(buf)) < 0) {
        report(label, 0);
        return;
    }
    static const char* const keys[] = {
        "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"};
    for (char* line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (!strncmp(line, keys[i], strlen(keys[i])))
                printf("%s %s\n", label, line);
}

/* ---- A1: host sysctls ---- */
static void attack_sysctl(const char* payload) {
    int fd = open("/proc/sys/kernel/core_pattern", O_WRONLY);
    if (report("core_pattern open", fd >= 0)) {
        report("core_pattern write",
               write(fd, payload, strlen(payload)) == (ssize_t)strlen(payload));
        close(fd);
    }
    /* opened only: a write would act on the host */
    report_fd("sysrq-trigger open", open("/proc/sysrq-trigger", O_WRONLY));
}

/* ---- A2: setuid and setgid files in an allowed directory ---- */
static void attack_setuid(const char* dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/suid", dir);
    int in  = open("/proc/self/exe", O_RDONLY);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (!report("copy", in >= 0 && out >= 0))
        return;
    char buf[65536];
    ssize_t r;
    while ((r = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)r) != r)
            break;
    close(in);
    close(out);
    report("chmod 04755", chmod(path, 04755) == 0);
    report("chmod 02755", chmod(path, 02755) == 0);
    report("chmod 06755", chmod(path, 06755) == 0);
    report("fchmodat 04755", fchmodat(AT_FDCWD, path, 04755, 0) == 0);
    int fd = open(path, O_RDONLY);
    report("fchmod 04755", fd >= 0 && fchmod(fd, 04755) == 0);
    if (fd >= 0)
        close(fd);
    /* created with the bits */
    snprintf(path, sizeof(path), "%s/created", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 06755);
    report("open O_CREAT 06755", fd >= 0);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        printf("created mode: %o\n", st.st_mode & 07777);
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/node", dir);
    report("mknod S_IFREG|06755", mknod(path, S_IFREG | 06755, 0) == 0);
    struct stat st;
    if (stat(path, &st) == 0)
        printf("node mode: %o\n", st.st_mode & 07777);
}

/* ---- A3: host device inodes ---- */
static void attack_devnodes(void) {
    static const char* const devs[] = {"/dev/null", "/dev/zero"};
    for (size_t i = 0; i < 2; i++) {
        char what[64];
        struct stat st;
        if (stat(devs[i], &st) < 0) {
            report(devs[i], 0);
            continue;
        }
        /* the same mode as now: no change of mode on the host even when it works */
        snprintf(what, sizeof(what), "chmod %s", devs[i]);
        report(what, chmod(devs[i], st.st_mode & 07777) == 0);
        /* taking ownership (the app is uid 0 in the sandbox: a no-op when that is host root,
         * the test restores the owner when it is not) */
        snprintf(what, sizeof(what), "chown %s", devs[i]);
        report(what, chown(devs[i], 0, 0) == 0);
    }
}

/* ---- A4: host cgroups and fusectl ---- */
struct mnt {
    char point[512];
    char fstype[32];
    char opts[512];
};

static int cgroup_mounts(struct mnt* out, int max) {
    FILE* f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (n < max && fgets(line, sizeof(line), f)) {
        char point[512], fstype[32], src[512], opts[512];
        char* dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", point) != 1 ||
            sscanf(dash + 3, "%31s %511s %511s", fstype, src, opts) != 3)
            continue;
        if (strcmp(fstype, "cgroup") && strcmp(fstype, "cgroup2"))
            continue;
        snprintf(out[n].point, sizeof(out[n].point), "%s", point);
        snprintf(out[n].fstype, sizeof(out[n].fstype), "%s", fstype);
        snprintf(out[n].opts, sizeof(out[n].opts), ",%s,", opts);
        n++;
    }
    fclose(f);
    return n;
}

static void write_pid(const char* label, const char* file) {
    int fd = open(file, O_WRONLY);
    char what[1200];
    snprintf(what, sizeof(what), "%s %s", label, file);
    if (fd < 0) {
        report(what, 0);
        return;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%d\n", getpid());
    report(what, write(fd, pid, (size_t)len) == len);
    close(fd);
}

static void attack_cgroup(const char* newdir) {
    dump("cgroup before", "/proc/self/cgroup");
    struct mnt mounts[32];
    int nm = cgroup_mounts(mounts, 32);
    printf("cgroup mounts: %d\n", nm);
    FILE* f = fopen("/proc/self/cgroup", "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        char* c1                  = strchr(line, ':');
        char* c2                  = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2               = 0;
        const char* ctrls = c1 + 1;
        const char* path  = c2 + 1;
        char first[128];
        snprintf(first, sizeof(first), ",%.*s,", (int)strcspn(ctrls, ","), ctrls);
        for (int i = 0; i < nm; i++) {
            int v2 = !strcmp(mounts[i].fstype, "cgroup2");
            if (v2 != (*ctrls == 0) || (!v2 && !strstr(mounts[i].opts, first)))
                continue;
            char file[1100], parent[600];
            snprintf(file, sizeof(file), "%s/cgroup.procs", mounts[i].point);
            write_pid("join root", file);
            snprintf(parent, sizeof(parent), "%s", path);
            char* slash = strrchr(parent, '/');
            if (slash && slash != parent) {
                *slash = 0;
                snprintf(file, sizeof(file), "%s%s/cgroup.procs", mounts[i].point, parent);
                write_pid("join parent", file);
            }
            snprintf(file, sizeof(file), "%s%s/%s", mounts[i].point, strcmp(path, "/") ? path : "",
                     newdir);
            char what[1200];
            snprintf(what, sizeof(what), "mkdir %s", file);
            if (report(what, mkdir(file, 0755) == 0))
                rmdir(file);
        }
    }
    if (f)
        fclose(f);
    /* fusectl: opened for writing only, never written (a write aborts the connection) */
    DIR* d = opendir("/sys/fs/fuse/connections");
    struct dirent* e;
    int conns = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char file[600], what[700];
        snprintf(file, sizeof(file), "/sys/fs/fuse/connections/%s/abort", e->d_name);
        snprintf(what, sizeof(what), "open %s", file);
        report_fd(what, open(file, O_WRONLY));
        conns++;
    }
    if (d)
        closedir(d);
    printf("fuse connections: %d\n", conns);
    dump("cgroup after", "/proc/self/cgroup");
}

/* ---- A5: reopen a read-only stdin for writing ---- */
static void attack_stdin_write(void) {
    struct stat st;
    if (fstat(0, &st) == 0)
        printf("stdin flags: %o\n", fcntl(0, F_GETFL) & O_ACCMODE);
    int fd = open("/proc/self/fd/0", O_WRONLY);
    if (report("reopen O_WRONLY", fd >= 0)) {
        report("write O_WRONLY", write(fd, "PWNED-W", 7) == 7);
        close(fd);
    }
    fd = open("/proc/self/fd/0", O_RDWR);
    if (report("reopen O_RDWR", fd >= 0)) {
        report("write O_RDWR", pwrite(fd, "PWNED-RW", 8, 0) == 8);
        close(fd);
    }
    report("write fd 0", write(0, "PWNED-0", 7) == 7);
}

/* ---- B1: the sandbox's init ---- */
static void attack_proc1(void) {
    dump("environ", "/proc/1/environ");
    dump("cmdline", "/proc/1/cmdline");
    dump("status", "/proc/1/status");
    status_fields("pid1", "/proc/1/status");
    DIR* d = opendir("/proc/1/fd");
    if (!d)
        report("opendir /proc/1/fd", 0);
    struct dirent* e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], target[4096] = "";
        snprintf(path, sizeof(path), "/proc/1/fd/%s", e->d_name);
        ssize_t n             = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = 0;
        int fd                = open(path, O_RDONLY);
        char what[4500];
        snprintf(what, sizeof(what), "fd1 %s -> %s", e->d_name, target);
        report(what, fd >= 0);
        if (fd >= 0)
            close(fd);
    }
    if (d)
        closedir(d);
    report_fd("mem O_RDWR", open("/proc/1/mem", O_RDWR));
    report_fd("mem O_WRONLY", open("/proc/1/mem", O_WRONLY));
    /* reading the init's memory: the host environment sits at the top of its stack */
    int fd = open("/proc/1/mem", O_RDONLY);
    if (report("mem O_RDONLY", fd >= 0)) {
        FILE* maps = fopen("/proc/1/maps", "r");
        char line[512];
        while (maps && fgets(line, sizeof(line), maps)) {
            unsigned long lo, hi;
            if (!strstr(line, "[stack]") || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
                continue;
            size_t len = hi - lo;
            char* buf  = malloc(len + 1);
            ssize_t r  = buf ? pread(fd, buf, len, (off_t)lo) : -1;
            printf("stack read: %zd bytes\n", r);
            for (ssize_t i = 0; buf && r > 0 && i < r; i++)
                if (!strncmp(buf + i, "MOAT_ATTACK_SECRET=", 19) && i + 19 < r) {
                    buf[r - 1] = 0;
                    printf("stack has: %s\n", buf + i);
                    break;
                }
            free(buf);
        }
        if (maps)
            fclose(maps);
        close(fd);
    }
}

/* ---- B2: make the sandbox outlive moat ---- */
static void attack_survive(void) {
    /* the FUSE connections of the sandbox, named as in /sys/fs/fuse/connections (the kernel's
     * dev_t: major << 20 | minor) */
    static const char* const views[] = {"/", "/dev/attestation"};
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        if (stat(views[i], &st) == 0)
            printf("fuse conn: %u\n", (major(st.st_dev) << 20) | minor(st.st_dev));
    }
    report("setsid", setsid() >= 0);
    report("PR_SET_PDEATHSIG 0", prctl(PR_SET_PDEATHSIG, 0) == 0);
    report("PR_SET_CHILD_SUBREAPER", prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    pid_t c = fork();
    if (c == 0) {
        setsid();
        if (fork() == 0) { /* a daemon: double fork, own session, no parent-death signal */
            setsid();
            prctl(PR_SET_PDEATHSIG, 0);
            for (int i = 0; i < 300; i++)
                sleep(1);
            _exit(0);
        }
        _exit(0);
    }
    if (c > 0)
        waitpid(c, NULL, 0);
    report("daemon", c > 0);
    printf("sleeping\n");
    for (int i = 0; i < 300; i++)
        sleep(1);
}

/* ---- D: the terminal ---- */
static void attack_tty(void) {
    char c = 'x';
    report("sti", ioctl(0, TIOCSTI, &c) == 0);
    report("sti_hi", syscall(SYS_ioctl, 0, (1UL << 32) | TIOCSTI, &c) == 0);
    char sub = 6; /* TIOCL_GETSHIFTSTATE: harmless when it works */
    report("tiocl", ioctl(0, TIOCLINUX, &sub) == 0);
    char paste = 3; /* TIOCL_PASTESEL */
    report("tiocl_paste", syscall(SYS_ioctl, 0, (unsigned long)TIOCLINUX, &paste) == 0);
    int pending = -1;
    ioctl(0, FIONREAD, &pending);
    printf("pending: %d\n", pending);
}

static volatile sig_atomic_t g_sigint;
static void on_sigint(int sig) {
    (void)sig;
    g_sigint = 1;
}

static void wait_sigint(void) {
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    printf("waiting\n");
    for (int i = 0; i < 300 && !g_sigint; i++)
        usleep(100000);
    printf(g_sigint ? "got SIGINT\n" : "no SIGINT\n");
}

/* ---- E: inherited descriptors ---- */
static void attack_fds(void) {
    char list[8192] = "";
    size_t len      = 0;
    for (int fd = 3; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) < 0)
            continue;
        char path[64], target[512] = "";
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n             = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = 0;
        len += (size_t)snprintf(list + len, sizeof(list) - len, " %d=%s", fd, target);
        if (len >= sizeof(list))
            break;
    }
    printf("open fds:%s\n", len ? list : " none");
    report("F_GETFD 7", fcntl(7, F_GETFD) >= 0);
    report("F_GETFD 9", fcntl(9, F_GETFD) >= 0);
    report_fd("openat 7 etc/passwd", openat(7, "etc/passwd", O_RDONLY));
    report("write 9", write(9, "PWNED\n", 6) == 6);
    report_fd("openat 0 etc/passwd", openat(0, "etc/passwd", O_RDONLY));
    report_fd("openat 0 ..", openat(0, "..", O_RDONLY | O_DIRECTORY));
}

/* ---- F: seccomp ---- */
struct clone_args_v0 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static void forked_result(const char* what, long r) {
    if (r == 0)
        syscall(SYS_exit_group, 0); /* the child of a clone that should have failed */
    report(what, r > 0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
}

static void attack_seccomp(void) {
    fflush(stdout);
    forked_result("clone NEWUSER|NEWNET",
                  syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
    struct clone_args_v0 ca = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    forked_result("clone3 NEWUSER", syscall(SYS_clone3, &ca, sizeof(ca)));
    struct clone_args_v0 plain = {.exit_signal = SIGCHLD};
    forked_result("clone3 plain", syscall(SYS_clone3, &plain, sizeof(plain)));
    report("unshare NEWUSER", unshare(CLONE_NEWUSER) == 0);
    int ns = open("/proc/self/ns/net", O_RDONLY);
    report("setns", setns(ns, CLONE_NEWNET) == 0);
    if (ns >= 0)
        close(ns);
    report("mount", mount("none", "/tmp", "tmpfs", 0, NULL) == 0);
    report("ptrace ATTACH 1", ptrace(PTRACE_ATTACH, 1, 0, 0) == 0);
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0) >= 0);
    report("add_key", syscall(SYS_add_key, "user", "moat-attack", "x", 1, -2 /* process */) >= 0);
    char bpf_attr[128] = {0};
    report_fd("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, bpf_attr, sizeof(bpf_attr)));
    struct perf_event_attr pa = {.type           = PERF_TYPE_SOFTWARE,
                                 .size           = sizeof(pa),
                                 .config         = PERF_COUNT_SW_CPU_CLOCK,
                                 .disabled       = 1,
                                 .exclude_kernel = 1,
                                 .exclude_hv     = 1};
    report_fd("perf_event_open", syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0));
    report_fd("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0) == 0);
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } fh = {8, 1, {0}};
    report_fd("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY));
    report("init_module", syscall(SYS_init_module, NULL, 0, "") == 0);
    int before = personality(0xffffffff);
    printf("personality query: %s\n", before >= 0 ? "ok" : strerror(errno));
    report("personality PER_BSD", personality(PER_BSD) >= 0);
    report("personality ADDR_NO_RANDOMIZE",
           personality((unsigned long)(before >= 0 ? before : 0) | ADDR_NO_RANDOMIZE) >= 0);
    personality(before >= 0 ? (unsigned long)before : 0);
    char params[120] = {0}; /* struct io_uring_params */
    report_fd("io_uring_setup", syscall(SYS_io_uring_setup, 4, params));
    report_fd("netlink NETFILTER", socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER));
    status_fields("self", "/proc/self/status");
}

/* ---- the positive control ---- */
static int control(const char* dir) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/out.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    report("write", fd >= 0 && write(fd, "written\n", 8) == 8 && close(fd) == 0);
    report("chmod 0600", chmod(path, 0600) == 0);
    return 7;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char* cmd = argc > 1 ? argv[1] : "";
    const char* arg = argc > 2 ? argv[2] : "";
    if (!strcmp(cmd, "control"))
        return control(arg);
    if (!strcmp(cmd, "sysctl"))
        attack_sysctl(arg);
    else if (!strcmp(cmd, "setuid"))
        attack_setuid(arg);
    else if (!strcmp(cmd, "devnodes"))
        attack_devnodes();
    else if (!strcmp(cmd, "cgroup"))
        attack_cgroup(arg);
    else if (!strcmp(cmd, "stdinw"))
        attack_stdin_write();
    else if (!strcmp(cmd, "proc1"))
        attack_proc1();
    else if (!strcmp(cmd, "survive"))
        attack_survive();
    else if (!strcmp(cmd, "tty"))
        attack_tty();
    else if (!strcmp(cmd, "sigint"))
        wait_sigint();
    else if (!strcmp(cmd, "fds"))
        attack_fds();
    else if (!strcmp(cmd, "seccomp"))
        attack_seccomp();
    else {
        printf("usage: hostile CMD [ARG]\n");
        return 2;
    }
    return 0;
}
