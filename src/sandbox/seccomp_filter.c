/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp profile of every process in the sandbox, its init included (docs/security.md).
 *
 * Two filters, stacked (the kernel applies the stricter answer of the two):
 *   1. an allowlist, default EPERM: the system calls of Docker's default profile for a container
 *      without added capabilities, less the ones that reach beyond the sandbox (ptrace, file
 *      handles, io_uring, the mount API); clone3 and openat2 pass their flags in memory, which
 *      a filter cannot read, so they fail with ENOSYS and libc falls back to clone / openat;
 *   2. argument rules, default allow: namespace flags on clone; terminal input injection
 *      (TIOCSTI, TIOCLINUX, compared on the 32 bits the kernel uses); set-user-ID and
 *      set-group-ID bits on chmod, open/creat and mknod.
 * Everything runs natively (no user-space notification): a filter costs nanoseconds a call.
 * The tables below are the profile; `moat run --print-seccomp` lists them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "seccomp_filter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Filter 1: allowed without conditions. Names libseccomp does not know on this architecture
 * are skipped (and so refused). */
static const char* const g_allowed[] = {
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_adjtime",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_waitv",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
};

/* Filter 1: refused with ENOSYS rather than EPERM, so that libc falls back to an older call
 * the filter can read (clone3 -> clone, openat2 -> openat, fchmodat2 -> fchmodat). */
static const char* const g_enosys[] = {"clone3", "openat2", "fchmodat2"};

/* Filter 1: the personas Docker allows (PER_LINUX, PER_LINUX32, UNAME26 and their mix, and
 * the 0xffffffff query); any other persona (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE...) is EPERM. */
static const unsigned long g_personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

/* Filter 2: a clone that asks for any of these makes a namespace. */
#define NS_FLAGS                                                                               \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
     CLONE_NEWCGROUP | CLONE_NEWTIME)

/* Filter 2: (system call, argument index of the mode, of the open flags or -1) for the set-ID
 * bit rule. open and openat read their mode only when they create (O_CREAT, O_TMPFILE): the
 * register holds anything otherwise, so the rule asks for those flags too. */
#define O_TMPFILE_BIT 020000000 /* __O_TMPFILE: O_TMPFILE without O_DIRECTORY */
static const struct {
    const char* name;
    unsigned mode_arg;
    int flags_arg;
} g_mode_args[] = {
    {"chmod", 1, -1}, {"fchmod", 1, -1},  {"fchmodat", 2, -1}, {"creat", 1, -1},
    {"mknod", 1, -1}, {"mknodat", 2, -1}, {"open", 2, 1},      {"openat", 3, 2},
};

/* Filter 2: ioctl requests refused (the kernel reads the request as 32 bits: compare those). */
static const struct {
    const char* name;
    unsigned long request;
} g_ioctls[] = {{"TIOCSTI", TIOCSTI}, {"TIOCLINUX", TIOCLINUX}};

static int add_named(scmp_filter_ctx ctx, uint32_t action, const char* name, unsigned count,
                     const struct scmp_arg_cmp* cmp) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a system call of this architecture */
    return seccomp_rule_add_array(ctx, action, nr, count, cmp);
}

static int build_allowlist(scmp_filter_ctx ctx) {
    int r = 0;
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(g_allowed); i++)
        r = add_named(ctx, SCMP_ACT_ALLOW, g_allowed[i], 0, NULL);
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(g_enosys); i++)
        r = add_named(ctx, SCMP_ACT_ERRNO(ENOSYS), g_enosys[i], 0, NULL);
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(g_personas); i++) {
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, g_personas[i]);
        r                     = add_named(ctx, SCMP_ACT_ALLOW, "personality", 1, &c);
    }
    return r;
}

static int build_arg_rules(scmp_filter_ctx ctx, bool disallow_subprocesses) {
    int r = 0;
    for (unsigned bit = 0; r == 0 && bit < 64; bit++) {
        unsigned long flag = 1UL << bit;
        if (!(NS_FLAGS & flag))
            continue;
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
        r                     = add_named(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &c);
    }
    if (r == 0 && disallow_subprocesses) {
        /* threads (CLONE_THREAD) stay allowed; new processes fail like Gramine's -EAGAIN */
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | NS_FLAGS, 0);
        r                     = add_named(ctx, SCMP_ACT_ERRNO(EAGAIN), "clone", 1, &c);
        if (r == 0)
            r = add_named(ctx, SCMP_ACT_ERRNO(EAGAIN), "fork", 0, NULL);
        if (r == 0)
            r = add_named(ctx, SCMP_ACT_ERRNO(EAGAIN), "vfork", 0, NULL);
    }
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(g_ioctls); i++) {
        struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, g_ioctls[i].request);
        r                     = add_named(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &c);
    }
    static const unsigned long setid[]    = {S_ISUID, S_ISGID};
    static const unsigned long creating[] = {O_CREAT, O_TMPFILE_BIT};
    for (size_t i = 0; r == 0 && i < ARRAY_LEN(g_mode_args); i++)
        for (size_t b = 0; r == 0 && b < ARRAY_LEN(setid); b++)
            for (size_t f = 0; r == 0 && f < ARRAY_LEN(creating); f++) {
                bool has_flags          = g_mode_args[i].flags_arg >= 0;
                struct scmp_arg_cmp c[] = {
                    {g_mode_args[i].mode_arg, SCMP_CMP_MASKED_EQ, setid[b], setid[b]},
                    {has_flags ? (unsigned)g_mode_args[i].flags_arg : 0, SCMP_CMP_MASKED_EQ,
                     creating[f], creating[f]},
                };
                if (!has_flags && f > 0)
                    break; /* one rule without a flags condition */
                r = add_named(ctx, SCMP_ACT_ERRNO(EPERM), g_mode_args[i].name, has_flags ? 2 : 1,
                              c);
            }
    return r;
}

int install_seccomp_filter(bool disallow_subprocesses) {
    scmp_filter_ctx allow = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    scmp_filter_ctx args  = seccomp_init(SCMP_ACT_ALLOW);
    int r                 = allow && args ? 0 : -ENOSYS;
    if (r < 0) {
        fprintf(stderr, "moat: error: seccomp is unavailable in this kernel\n");
    } else {
        r = build_allowlist(allow);
        if (r == 0)
            r = build_arg_rules(args, disallow_subprocesses);
        if (r == 0)
            r = seccomp_load(allow);
        if (r == 0)
            r = seccomp_load(args);
        if (r < 0)
            fprintf(stderr, "moat: error: cannot install the seccomp filter: %s\n", strerror(-r));
    }
    seccomp_release(allow);
    seccomp_release(args);
    return r;
}

void seccomp_profile_print(FILE* out) {
    fprintf(out, "# moat run: seccomp profile (docs/security.md)\n");
    fprintf(out, "default\tEPERM\n");
    for (size_t i = 0; i < ARRAY_LEN(g_allowed); i++)
        if (seccomp_syscall_resolve_name(g_allowed[i]) != __NR_SCMP_ERROR)
            fprintf(out, "%s\tALLOW\n", g_allowed[i]);
    for (size_t i = 0; i < ARRAY_LEN(g_enosys); i++)
        fprintf(out, "%s\tENOSYS\n", g_enosys[i]);
    for (size_t i = 0; i < ARRAY_LEN(g_personas); i++)
        fprintf(out, "personality\tALLOW\tpersona == %#lx\n", g_personas[i]);
    fprintf(out, "clone\tEPERM\tflags & %#lx (namespaces)\n", (unsigned long)NS_FLAGS);
    fprintf(out,
            "clone\tEAGAIN\tno CLONE_THREAD, with sys.disallow_subprocesses (also fork, vfork)\n");
    for (size_t i = 0; i < ARRAY_LEN(g_ioctls); i++)
        fprintf(out, "ioctl\tEPERM\t(request & 0xffffffff) == %s\n", g_ioctls[i].name);
    for (size_t i = 0; i < ARRAY_LEN(g_mode_args); i++)
        fprintf(out, "%s\tEPERM\tmode (argument %u) & (S_ISUID | S_ISGID)%s\n", g_mode_args[i].name,
                g_mode_args[i].mode_arg,
                g_mode_args[i].flags_arg >= 0 ? ", when it creates (O_CREAT, O_TMPFILE)" : "");
}
