/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What keeps a hostile app inside the sandbox beyond namespaces and seccomp (docs/security.md):
 * the app's unprivileged host identity when moat runs as root (the rootless-container way:
 * bubblewrap, rootless podman), idmapped bind mounts so that root's allowed directories stay
 * writable, runc's masked and read-only paths, the app's standard descriptors, and finding
 * moat-init.
 */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/mount.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "moat-config.h"

/* ---------------------------------------------------------------------------------------- */
/* The app's host identity                                                                    */

static int write_str(const char* path, const char* s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, s, strlen(s));
    close(fd);
    return r;
}

int confine_map_ids(pid_t pid, unsigned ns_uid, unsigned ns_gid, unsigned uid, unsigned gid) {
    char path[64], map[64];
    int r                     = 0;
    const char* const files[] = {"uid_map", "setgroups", "gid_map"};
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(files); i++) {
        /* one id each, to the one host identity: nothing else inside maps to anything */
        snprintf(map, sizeof(map), "%u %u 1\n", i == 0 ? ns_uid : ns_gid, i == 0 ? uid : gid);
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
        r = write_str(path, i == 1 ? "deny" : map);
    }
    return r;
}

/* The process that holds the new user namespace until moat has its descriptor: it shares
 * moat's memory (no page tables copied), so it only waits, with raw system calls. */
static int userns_holder(void* arg) {
    const int* hold = arg;
    char c;
    (void)syscall(SYS_close, hold[1]);
    (void)syscall(SYS_read, hold[0], &c, 1); /* EOF: moat has the namespace */
    return 0;
}

int confine_make_userns(unsigned ns_uid, unsigned ns_gid, unsigned host_id, int* ret_fd,
                        struct moat_error* err) {
    /* a user namespace lives as long as a descriptor of it: a short-lived process is created
     * in it, moat maps it and keeps the descriptor */
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) < 0)
        return moat_error_set_errno(err, -errno, "cannot prepare the sandbox's user namespace");
    size_t stack_size = 64 * 1024;
    char* stack       = xmalloc(stack_size);
    pid_t pid =
        clone(userns_holder, stack + stack_size, CLONE_NEWUSER | CLONE_VM | SIGCHLD, &hold[0]);
    int r  = pid < 0 ? -errno : confine_map_ids(pid, ns_uid, ns_gid, host_id, host_id);
    int fd = -1;
    if (r == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        r  = fd < 0 ? -errno : 0;
    }
    close(hold[1]); /* the process exits */
    while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    close(hold[0]);
    free(stack);
    if (r < 0)
        return moat_error_set_errno(err, r, "cannot create the sandbox's user namespace");
    *ret_fd = fd;
    return 0;
}

int confine_enter_userns(int userns_fd) {
    if (setgroups(0, NULL) < 0 || setns(userns_fd, CLONE_NEWUSER) < 0)
        return -errno;
    return 0;
}

int confine_bind_idmapped(int src_fd, const char* target, int userns_fd, bool* ret_idmapped) {
    int tree = (int)syscall(SYS_open_tree, src_fd, "",
                            AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree < 0)
        return -errno;
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
    /* a file system without idmapped mounts: the bind works, the app writes as its host id */
    *ret_idmapped = syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                            sizeof(attr)) == 0;
    int r = (int)syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
    r     = r < 0 ? -errno : 0;
    close(tree);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Masked and read-only paths (runc's defaults)                                               */

static int set_attr(const char* path, uint64_t attrs) {
    struct mount_attr attr = {.attr_set = attrs};
    return syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr)) < 0
               ? -errno
               : 0;
}

/* Hides `path` (when it exists): /dev/null over a file, an empty read-only tmpfs over a
 * directory. */
static int mask(const char* path) {
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (S_ISDIR(st.st_mode))
        return mount("moat-masked", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "size=0,mode=555") < 0
                   ? -errno
                   : 0;
    return mount("/dev/null", path, NULL, MS_BIND, NULL) < 0 ? -errno : 0;
}

static int read_only(const char* path) {
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -errno;
    return set_attr(path,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
}

int confine_proc(const char* proc, const char** ret_what) {
    static const char* const masked[] = {"acpi",        "asound",        "kcore",
                                         "keys",        "latency_stats", "timer_list",
                                         "timer_stats", "sched_debug",   "scsi"};
    static const char* const ro[]     = {"bus", "fs", "irq", "sys", "sysrq-trigger"};
    char path[PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(ro) + ARRAY_SIZE(masked); i++) {
        bool is_ro       = i < ARRAY_SIZE(ro);
        const char* name = is_ro ? ro[i] : masked[i - ARRAY_SIZE(ro)];
        snprintf(path, sizeof(path), "%s/%s", proc, name);
        int r = is_ro ? read_only(path) : mask(path);
        if (r < 0) {
            *ret_what = name;
            return r;
        }
    }
    return 0;
}

int confine_sys(const char* sys) {
    static const char* const masked[] = {"firmware", "devices/virtual/powercap"};
    char path[PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(masked); i++) {
        snprintf(path, sizeof(path), "%s/%s", sys, masked[i]);
        int r = mask(path);
        if (r < 0)
            return r;
    }
    /* every submount too (cgroups, fuse connections, security, debugfs...): a remount of the
     * bind alone would leave those writable */
    return set_attr(sys,
                    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
}

/* ---------------------------------------------------------------------------------------- */
/* moat-init                                                                                  */

int confine_open_init(int* ret_fd, struct moat_error* err) {
    char self[PATH_MAX];
    ssize_t n                      = readlink("/proc/self/exe", self, sizeof(self) - 1);
    _cleanup_free_ char* next_to   = NULL;
    _cleanup_free_ char* installed = xasprintf("%s/moat-init", MOAT_PKGLIBDIR);
    if (n > 0) {
        self[n]     = '\0';
        char* slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        next_to = xasprintf("%s/moat-init", self);
    }
    const char* const candidates[] = {next_to, installed};
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (!candidates[i])
            continue;
        int fd = open(candidates[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            *ret_fd = fd;
            return 0;
        }
    }
    return moat_error_set(err, -ENOENT,
                          "cannot find moat-init (the sandbox's init) next to moat or in %s: "
                          "reinstall moat",
                          MOAT_PKGLIBDIR);
}

/* ---------------------------------------------------------------------------------------- */
/* The app's standard descriptors                                                             */

struct copier {
    int from, to;
    int stop; /* readable: stop copying (input only; -1 for output) */
    bool started;
    pthread_t thread;
};

struct stdio_proxy {
    struct copier copiers[3];
    int child_ends[3]; /* closed in the supervisor after the clone */
    int stop[2];       /* the input's copier stops when [1] is closed */
};

static void* copy_main(void* arg) {
    struct copier* c = arg;
    sigset_t pipe_sig;
    sigemptyset(&pipe_sig);
    sigaddset(&pipe_sig, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_sig, NULL); /* a closed reader is EPIPE, not a signal */
    char buf[65536];
    for (;;) {
        struct pollfd pfd[2] = {{.fd = c->from, .events = POLLIN},
                                {.fd = c->stop, .events = POLLIN}};
        if (c->stop >= 0 && poll(pfd, 2, -1) < 0 && errno == EINTR)
            continue;
        if (c->stop >= 0 && pfd[1].revents)
            break; /* the app is gone */
        ssize_t n = read(c->from, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || write_all(c->to, buf, (size_t)n) < 0)
            break;
    }
    close(c->to); /* the reader sees the end (stdio_proxy_finish closes `from`) */
    c->to = -1;
    return NULL;
}

/* Whether descriptors a and b are the same open file (2>&1). */
static bool same_file(int a, int b) {
    return syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, a, b) == 0;
}

/* A FIFO with a name on the host (not a shell's pipe): reopening it reaches whoever else uses
 * it, so it is copied like a file. */
static bool named_fifo(int fd, const struct stat* st) {
    char link[64], target[16] = "";
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    return S_ISFIFO(st->st_mode) && n > 0 && strncmp(target, "pipe:[", 6) != 0;
}

int stdio_proxy_prepare(bool privileged, struct stdio_proxy** ret, int child_fds[3],
                        struct moat_error* err) {
    struct stdio_proxy* p = xcalloc(1, sizeof(*p));
    p->stop[0] = p->stop[1] = -1;
    for (int i = 0; i < 3; i++) {
        child_fds[i]     = -1;
        p->child_ends[i] = -1;
        p->copiers[i]    = (struct copier){.from = -1, .to = -1, .stop = -1};
        struct stat st;
        int flags = fcntl(i, F_GETFL);
        if (flags < 0 || fstat(i, &st) < 0)
            continue; /* closed: stays closed */
        if (S_ISDIR(st.st_mode) || (flags & O_PATH)) {
            log_warning("descriptor %d is a directory or a path: the app gets /dev/null", i);
            child_fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (child_fds[i] < 0)
                return moat_error_set_errno(err, -errno, "cannot open /dev/null");
            p->child_ends[i] = child_fds[i];
            continue;
        }
        /* as root, the app's identity cannot reopen the caller's pipe (/dev/stdin): it gets
         * one of its own */
        bool fifo = S_ISFIFO(st.st_mode) && (privileged || named_fifo(i, &st));
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !fifo)
            continue; /* terminal, pipe, socket, character device */
        if (i == 2 && child_fds[1] >= 0 && same_file(1, 2)) {
            child_fds[2] = child_fds[1]; /* one pipe keeps stdout and stderr in order */
            continue;
        }
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0)
            return moat_error_set_errno(err, -errno, "cannot prepare descriptor %d", i);
        /* the app may reopen its end through /proc/self/fd (/dev/stdout, /dev/stdin), in
         * the direction it was given only (the mode is the pipe inode's, which only
         * processes that hold the pipe can reach) */
        if (fchmod(fds[0], i == 0 ? 0444 : 0222) < 0) {
            int r = -errno;
            close(fds[0]);
            close(fds[1]);
            return moat_error_set_errno(err, r, "cannot prepare descriptor %d", i);
        }
        bool in          = i == 0;
        child_fds[i]     = in ? fds[0] : fds[1];
        p->child_ends[i] = child_fds[i];
        p->copiers[i]    = (struct copier){.from = in ? dup(0) : fds[0],
                                           .to   = in ? fds[1] : fcntl(i, F_DUPFD_CLOEXEC, 3),
                                           .stop = -1};
        if (in) {
            fcntl(p->copiers[i].from, F_SETFD, FD_CLOEXEC);
            if (pipe2(p->stop, O_CLOEXEC) < 0)
                return moat_error_set_errno(err, -errno, "cannot prepare descriptor 0");
            p->copiers[i].stop = p->stop[0];
        }
    }
    *ret = p;
    return 0;
}

int stdio_proxy_install(const int child_fds[3]) {
    for (int i = 0; i < 3; i++)
        if (child_fds[i] >= 0 && dup2(child_fds[i], i) < 0) /* dup2 clears FD_CLOEXEC */
            return -errno;
    return 0;
}

void stdio_proxy_start(struct stdio_proxy* p) {
    if (!p)
        return;
    for (int i = 0; i < 3; i++) {
        if (p->child_ends[i] >= 0)
            close(p->child_ends[i]);
        p->child_ends[i] = -1;
        struct copier* c = &p->copiers[i];
        if (c->from >= 0 && c->to >= 0)
            c->started = pthread_create(&c->thread, NULL, copy_main, c) == 0;
    }
}

void stdio_proxy_finish(struct stdio_proxy* p) {
    if (!p)
        return;
    for (int i = 0; i < 3; i++) {
        struct copier* c = &p->copiers[i];
        if (c->started) {
            /* the app is gone: what it did not read of its input is not waited for (a
             * terminal's or a slow writer's pipe may never end); its output is copied to the
             * end */
            if (i == 0 && p->stop[1] >= 0) {
                close(p->stop[1]);
                p->stop[1] = -1;
            }
            pthread_join(c->thread, NULL);
        }
        if (c->from >= 0)
            close(c->from);
        if (c->to >= 0)
            close(c->to);
        if (p->child_ends[i] >= 0)
            close(p->child_ends[i]);
    }
    for (int i = 0; i < 2; i++)
        if (p->stop[i] >= 0)
            close(p->stop[i]);
    free(p);
}
