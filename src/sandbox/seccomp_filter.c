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
 *   3. the app's own rules, only when the manifest asks (not in moat-init's profile): mocked
 *      system calls (sys.debug__mock_syscalls) return their value without running — by
 *      SECCOMP_RET_ERRNO for 0 and -1..-4095, through a user-space notification answered by the
 *      supervisor (seccomp_notify.c) for any other value; fork/vfork/clone of a process under
 *      sys.disallow_subprocesses are notified too (EAGAIN and one warning). Filters 1 and 2
 *      allow a mocked call so that the mock's answer is the one that counts (the kernel takes
 *      ERRNO over USER_NOTIF over ALLOW): a mocked call never runs, whatever filter 1 says.
 * Everything else runs natively: a filter costs nanoseconds a call, and only the calls named in
 * filter 3 ever reach user space. `moat run --print-seccomp [STEM]` lists the rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "seccomp_filter.h"

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

/* Filter 2: calls Gramine emulates without any effect, answered 0 here without running
 * (Gramine v1.9 libos/src/sys/libos_getuid.c setgroups: kept in the LibOS only;
 * libos_sched.c sched_setscheduler: validated, then ignored; libos_file.c chown family: the
 * LibOS's inode only, never the host file). Nothing runs, so nothing reaches the host. */
enum emulation {
    EMUL_ALWAYS,    /* always 0 */
    EMUL_GROUPS,    /* size (argument 0) in 0..65536: 0, else EINVAL (Gramine's NGROUPS_MAX) */
    EMUL_RT_POLICY, /* SCHED_FIFO or SCHED_RR (argument 1, less SCHED_RESET_ON_FORK), pid >= 0:
                     * 0; a negative pid: EINVAL; other policies run (unprivileged anyway) */
};
static const struct {
    const char* name;
    enum emulation kind;
    const char* condition;
} g_emulated[] = {
    {"setgroups", EMUL_GROUPS, "size <= 65536 (else EINVAL)"},
    {"sched_setscheduler", EMUL_RT_POLICY, "policy is SCHED_FIFO or SCHED_RR (pid < 0: EINVAL)"},
    {"chown", EMUL_ALWAYS, "always"},
    {"fchown", EMUL_ALWAYS, "always"},
    {"lchown", EMUL_ALWAYS, "always"},
    {"fchownat", EMUL_ALWAYS, "always"},
};

/* Filter 2: ioctl requests refused (the kernel reads the request as 32 bits: compare those). */
static const struct {
    const char* name;
    unsigned long request;
} g_ioctls[] = {{"TIOCSTI", TIOCSTI}, {"TIOCLINUX", TIOCLINUX}};

/* The programs are written here as classic BPF rather than compiled by libseccomp, whose
 * compiler costs about 2 ms of CPU per run on the start-up path; libseccomp still names the
 * system calls of this architecture. Each rule is "nr == N ? <block> : next", every block
 * ends in a return, so every jump is short and forward. Filters whose answer for a system call
 * does not depend on its arguments are cached by the kernel per call (Linux >= 5.11): the
 * allowlist costs nothing on hot paths. */
struct prog {
    struct sock_filter insns[2048];
    size_t len;
    bool overflow;
};

static void emit(struct prog* p, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
    if (p->len >= ARRAY_SIZE(p->insns)) {
        p->overflow = true;
        return;
    }
    p->insns[p->len++] = (struct sock_filter){code, jt, jf, k};
}

/* A compiled program whose count has this bit is loaded with a notification listener. */
#define BLOB_LISTENER 0x80000000U

static void ret(struct prog* p, uint32_t action) {
    emit(p, BPF_RET | BPF_K, action, 0, 0);
}

#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | ((e)&SECCOMP_RET_DATA))

/* The low 32 bits of argument i: what the kernel reads of an int, a mode or an ioctl request
 * (and where every namespace flag of clone lies). */
static uint32_t arg_low(unsigned i) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t)(offsetof(struct seccomp_data, args) + i * sizeof(uint64_t));
#else
    return (uint32_t)(offsetof(struct seccomp_data, args) + i * sizeof(uint64_t) + 4);
#endif
}

/* Every program starts: the native architecture only (another one is killed: its numbers mean
 * other calls), then the call's number in A. */
static void prologue(struct prog* p) {
    emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
    emit(p, BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 1, 0);
    ret(p, SECCOMP_RET_KILL_PROCESS);
    emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
#ifdef __x86_64__
    /* x32 system calls are the same numbers with bit 30 set */
    emit(p, BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
    ret(p, RET_ERRNO(EPERM));
#endif
}

/* "nr == name ? block : next": returns where the block starts (to patch its length), or -1
 * when the call does not exist here. */
static long rule_begin(struct prog* p, const char* name) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR || nr < 0)
        return -1;
    emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 0);
    return (long)p->len;
}

static void rule_end(struct prog* p, long start) {
    if (start > 0 && !p->overflow)
        p->insns[start - 1].jf = (uint8_t)(p->len - (size_t)start); /* blocks are short */
}

/* Filters 1 and 2: a mocked call is allowed here, so that filter 3's answer counts. */
static void allow_mocked(struct prog* p, const struct seccomp_app* app) {
    for (size_t i = 0; app && i < app->nmocks; i++) {
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)app->mocks[i].nr, 0, 1);
        ret(p, SECCOMP_RET_ALLOW);
    }
}

/* Filter 1: the allowlist. */
static void build_allowlist(struct prog* p, const struct seccomp_app* app) {
    prologue(p);
    allow_mocked(p, app);
    for (size_t i = 0; i < ARRAY_SIZE(g_allowed); i++) {
        long b = rule_begin(p, g_allowed[i]);
        if (b < 0)
            continue;
        ret(p, SECCOMP_RET_ALLOW);
        rule_end(p, b);
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_enosys); i++) {
        long b = rule_begin(p, g_enosys[i]);
        if (b < 0)
            continue;
        ret(p, RET_ERRNO(ENOSYS));
        rule_end(p, b);
    }
    long b = rule_begin(p, "personality");
    if (b >= 0) {
        emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(0), 0, 0);
        for (size_t i = 0; i < ARRAY_SIZE(g_personas); i++) {
            emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)g_personas[i], 0, 1);
            ret(p, SECCOMP_RET_ALLOW);
        }
        ret(p, RET_ERRNO(EPERM));
        rule_end(p, b);
    }
    ret(p, RET_ERRNO(EPERM));
}

/* A ← argument i; "A & bits ? return action : go on". */
static void refuse_bits(struct prog* p, unsigned arg, uint32_t bits, uint32_t action) {
    emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(arg), 0, 0);
    emit(p, BPF_JMP | BPF_JSET | BPF_K, bits, 0, 1);
    ret(p, action);
}

/* The block of an emulated call (every path returns). */
static void emulated_rule(struct prog* p, enum emulation kind) {
    switch (kind) {
        case EMUL_ALWAYS:
            break;
        case EMUL_GROUPS: /* the kernel reads an int: negative sizes compare above 65536 */
            emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(0), 0, 0);
            emit(p, BPF_JMP | BPF_JGT | BPF_K, 65536, 0, 1);
            ret(p, RET_ERRNO(EINVAL));
            break;
        case EMUL_RT_POLICY:
            emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(1), 0, 0);
            emit(p, BPF_ALU | BPF_AND | BPF_K, ~(uint32_t)SCHED_RESET_ON_FORK, 0, 0);
            emit(p, BPF_JMP | BPF_JEQ | BPF_K, SCHED_FIFO, 2, 0);
            emit(p, BPF_JMP | BPF_JEQ | BPF_K, SCHED_RR, 1, 0);
            ret(p, SECCOMP_RET_ALLOW);
            emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(0), 0, 0);
            emit(p, BPF_JMP | BPF_JSET | BPF_K, 0x80000000U, 0, 1);
            ret(p, RET_ERRNO(EINVAL));
            break;
    }
    ret(p, RET_ERRNO(0));
}

/* Filter 2: the argument rules. */
static void build_arg_rules(struct prog* p, const struct seccomp_app* app) {
    prologue(p);
    allow_mocked(p, app);
    long b = rule_begin(p, "clone");
    if (b >= 0) {
        refuse_bits(p, 0, NS_FLAGS, RET_ERRNO(EPERM));
        ret(p, SECCOMP_RET_ALLOW);
        rule_end(p, b);
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_emulated); i++) {
        if ((b = rule_begin(p, g_emulated[i].name)) < 0)
            continue;
        emulated_rule(p, g_emulated[i].kind);
        rule_end(p, b);
    }
    if ((b = rule_begin(p, "ioctl")) >= 0) {
        emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(1), 0, 0);
        for (size_t i = 0; i < ARRAY_SIZE(g_ioctls); i++) {
            emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)g_ioctls[i].request, 0, 1);
            ret(p, RET_ERRNO(EPERM));
        }
        ret(p, SECCOMP_RET_ALLOW);
        rule_end(p, b);
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_mode_args); i++) {
        if ((b = rule_begin(p, g_mode_args[i].name)) < 0)
            continue;
        if (g_mode_args[i].flags_arg >= 0) { /* the mode counts only when it creates */
            emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low((unsigned)g_mode_args[i].flags_arg), 0, 0);
            emit(p, BPF_JMP | BPF_JSET | BPF_K, O_CREAT | O_TMPFILE_BIT, 1, 0);
            ret(p, SECCOMP_RET_ALLOW);
        }
        refuse_bits(p, g_mode_args[i].mode_arg, S_ISUID | S_ISGID, RET_ERRNO(EPERM));
        ret(p, SECCOMP_RET_ALLOW);
        rule_end(p, b);
    }
    ret(p, SECCOMP_RET_ALLOW);
}

/* The answer filter 3 gives a mocked call: ERRNO carries 0 and -1..-4095 (the kernel returns
 * -data); any other value needs the supervisor. */
static uint32_t mock_action(int64_t value) {
    return value <= 0 && value >= -4095 ? RET_ERRNO((uint32_t)-value) : SECCOMP_RET_USER_NOTIF;
}

static bool is_mocked(const struct seccomp_app* app, const char* name) {
    int nr = seccomp_syscall_resolve_name(name);
    for (size_t i = 0; i < app->nmocks; i++)
        if (app->mocks[i].nr == nr)
            return true;
    return false;
}

/* Filter 3: the app's own rules (mocks first: Gramine checks them before anything else). */
static void build_app_rules(struct prog* p, const struct seccomp_app* app) {
    prologue(p);
    for (size_t i = 0; i < app->nmocks; i++) {
        emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)app->mocks[i].nr, 0, 1);
        ret(p, mock_action(app->mocks[i].ret));
    }
    long b;
    if (app->disallow_subprocesses && !is_mocked(app, "clone") &&
        (b = rule_begin(p, "clone")) >= 0) {
        /* threads (CLONE_THREAD) stay allowed; a new process fails like Gramine's -EAGAIN */
        emit(p, BPF_LD | BPF_W | BPF_ABS, arg_low(0), 0, 0);
        emit(p, BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1);
        ret(p, SECCOMP_RET_ALLOW);
        ret(p, SECCOMP_RET_USER_NOTIF);
        rule_end(p, b);
    }
    static const char* const forks[] = {"fork", "vfork"};
    for (size_t i = 0; app->disallow_subprocesses && i < ARRAY_SIZE(forks); i++) {
        if (is_mocked(app, forks[i]) || (b = rule_begin(p, forks[i])) < 0)
            continue;
        ret(p, SECCOMP_RET_USER_NOTIF);
        rule_end(p, b);
    }
    ret(p, SECCOMP_RET_ALLOW);
}

bool seccomp_app_needs_listener(const struct seccomp_app* app) {
    if (!app)
        return false;
    for (size_t i = 0; i < app->nmocks; i++)
        if (mock_action(app->mocks[i].ret) == SECCOMP_RET_USER_NOTIF)
            return true;
    return app->disallow_subprocesses &&
           !(is_mocked(app, "clone") && is_mocked(app, "fork") && is_mocked(app, "vfork"));
}

static void append(struct strbuf* blob, const struct prog* p, bool listener) {
    uint32_t count = (uint32_t)p->len | (listener ? BLOB_LISTENER : 0);
    strbuf_append(blob, (const char*)&count, sizeof(count));
    strbuf_append(blob, (const char*)p->insns, p->len * sizeof(p->insns[0]));
}

int seccomp_profile_build(const struct seccomp_app* app, char** ret_blob, size_t* ret_len) {
    bool third        = app && (app->nmocks || app->disallow_subprocesses);
    struct prog* prog = xcalloc(3, sizeof(*prog));
    build_allowlist(&prog[0], app);
    build_arg_rules(&prog[1], app);
    if (third)
        build_app_rules(&prog[2], app);
    int r = prog[0].overflow || prog[1].overflow || prog[2].overflow ? -E2BIG : 0;
    if (r == 0) {
        struct strbuf blob = STRBUF_INIT;
        append(&blob, &prog[0], false);
        append(&blob, &prog[1], false);
        if (third)
            append(&blob, &prog[2], seccomp_app_needs_listener(app));
        *ret_blob = strbuf_take(&blob, ret_len);
    }
    free(prog);
    return r;
}

static int load_one(const char* insns, uint32_t count, bool listener) {
    struct sock_filter* copy = xmalloc(count * sizeof(*copy)); /* aligned, unlike the blob */
    memcpy(copy, insns, count * sizeof(*copy));
    struct sock_fprog prog = {.len = (unsigned short)count, .filter = copy};
    long r                 = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                     listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &prog);
    int e                  = errno;
    free(copy);
    return r < 0 ? -e : (int)r;
}

int seccomp_profile_load(const char* blob, size_t len, int* ret_listener) {
    size_t off   = 0;
    int listener = -1;
    while (off < len) {
        uint32_t count;
        if (len - off < sizeof(count))
            return -EINVAL;
        memcpy(&count, blob + off, sizeof(count));
        off += sizeof(count);
        bool with_listener = count & BLOB_LISTENER;
        count &= ~BLOB_LISTENER;
        size_t bytes = (size_t)count * sizeof(struct sock_filter);
        if (!count || count > BPF_MAXINSNS || len - off < bytes || (with_listener && listener >= 0))
            return -EINVAL;
        int r = load_one(blob + off, count, with_listener);
        if (r < 0)
            return r;
        if (with_listener)
            listener = r;
        off += bytes;
    }
    *ret_listener = listener;
    return 0;
}

void seccomp_profile_print(FILE* out, const struct seccomp_app* app) {
    fprintf(out, "# moat run: seccomp profile (docs/security.md)\n");
    fprintf(out, "default\tEPERM\n");
    for (size_t i = 0; i < ARRAY_SIZE(g_allowed); i++)
        if (seccomp_syscall_resolve_name(g_allowed[i]) != __NR_SCMP_ERROR)
            fprintf(out, "%s\tALLOW\n", g_allowed[i]);
    for (size_t i = 0; i < ARRAY_SIZE(g_enosys); i++)
        fprintf(out, "%s\tENOSYS\n", g_enosys[i]);
    for (size_t i = 0; i < ARRAY_SIZE(g_personas); i++)
        fprintf(out, "personality\tALLOW\tpersona == %#lx\n", g_personas[i]);
    fprintf(out, "clone\tEPERM\tflags & %#lx (namespaces)\n", (unsigned long)NS_FLAGS);
    for (size_t i = 0; i < ARRAY_SIZE(g_ioctls); i++)
        fprintf(out, "ioctl\tEPERM\t(request & 0xffffffff) == %s\n", g_ioctls[i].name);
    for (size_t i = 0; i < ARRAY_SIZE(g_mode_args); i++)
        fprintf(out, "%s\tEPERM\tmode (argument %u) & (S_ISUID | S_ISGID)%s\n", g_mode_args[i].name,
                g_mode_args[i].mode_arg,
                g_mode_args[i].flags_arg >= 0 ? ", when it creates (O_CREAT, O_TMPFILE)" : "");
    for (size_t i = 0; i < ARRAY_SIZE(g_emulated); i++)
        fprintf(out, "%s\tRETURN 0\t%s, without running (Gramine emulates it)\n",
                g_emulated[i].name, g_emulated[i].condition);
    if (!app) {
        fprintf(out,
                "clone\tEAGAIN\tno CLONE_THREAD, with sys.disallow_subprocesses (also fork, "
                "vfork)\n");
        fprintf(out, "# the mocks of sys.debug__mock_syscalls: moat run --print-seccomp STEM\n");
        return;
    }
    for (size_t i = 0; i < app->nmocks; i++)
        fprintf(out, "%s\tRETURN %lld\tsys.debug__mock_syscalls, without running%s\n",
                app->mocks[i].name, (long long)app->mocks[i].ret,
                mock_action(app->mocks[i].ret) == SECCOMP_RET_USER_NOTIF ? " (notified)" : "");
    static const char* const forks[] = {"clone", "fork", "vfork"};
    for (size_t i = 0; app->disallow_subprocesses && i < ARRAY_SIZE(forks); i++)
        if (!is_mocked(app, forks[i]))
            fprintf(out, "%s\tEAGAIN\t%ssys.disallow_subprocesses (notified: one warning)\n",
                    forks[i], i == 0 ? "no CLONE_THREAD, " : "");
}
