/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-init: PID 1 of a `moat run` sandbox (docs/security.md, "An init that holds nothing").
 *
 * moat's sandbox process sets everything up, forks the app's process (which waits), then
 * execs this program in its own place, so that PID 1 holds no copy of moat's memory, keys,
 * environment, arguments or descriptors: its argv is "moat-init APP_PID SYNC_FD", its
 * environment is empty, and it runs under the seccomp profile it inherited. It makes itself
 * non-dumpable (no /proc/1/mem, environ or fd for the app), asks to die with moat (the
 * parent-death signal; the whole PID namespace dies with it), closes every descriptor above 2
 * — among them SYNC_FD, which releases the app's process — forwards the signals moat passes
 * on, reaps every process and exits with the app's status.
 *
 * Freestanding: no C library, a few pages, raw system calls (x86-64 and AArch64). It starts
 * on the app's critical path, and the sandbox's root is the app's, so it has no dynamic
 * loader to find either.
 */
#include <asm/unistd.h>
#include <linux/prctl.h>
#include <linux/signalfd.h>
#include <linux/wait.h>
#include <signal.h>
#include <stdint.h>

#define FORWARDED(s) ((s) == SIGTERM || (s) == SIGINT || (s) == SIGHUP || (s) == SIGQUIT)

#if defined(__x86_64__)
__asm__(
    ".globl _start\n"
    "_start:\n"
    "  xor %rbp, %rbp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call init_main\n"
    "  hlt\n");

static long sys(long n, long a, long b, long c, long d) {
    register long r10 __asm__("r10") = d;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
__asm__(
    ".globl _start\n"
    "_start:\n"
    "  mov x0, sp\n"
    "  bl init_main\n"
    "  brk #0\n");

static long sys(long n, long a, long b, long c, long d) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#else
#error "moat-init: add this architecture's system call convention"
#endif

static _Noreturn void quit(int code) {
    for (;;)
        sys(__NR_exit_group, code, 0, 0, 0);
}

static long number(const char* s) {
    long v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 1000000000L)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v > 0 ? v : -1;
}

static uint64_t bit(int sig) {
    return 1ULL << (sig - 1);
}

/* Kernel ABI: struct sigaction without the restorer (SIG_DFL needs none). */
struct k_sigaction {
    void* handler;
    unsigned long flags;
    void* restorer;
    uint64_t mask;
};

/* Called from _start with the initial stack: argc, argv[], NULL, envp[]... */
__attribute__((used)) _Noreturn void init_main(long* stack);

_Noreturn void init_main(long* stack) {
    /* first: nothing in the sandbox may read or write this process's memory */
    if (sys(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0) < 0 ||
        sys(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0) < 0)
        quit(125);
    long argc   = stack[0];
    char** argv = (char**)(stack + 1);
    long app    = argc == 3 ? number(argv[1]) : -1;
    if (app < 0 || number(argv[2]) < 0)
        quit(125);
    /* the signals to pass on arrive through a signalfd, and the children's ends too; SIGINT
     * was ignored by moat (so that Ctrl-C reaches the app, not moat): taken back here */
    struct k_sigaction dfl = {0};
    sys(__NR_rt_sigaction, SIGINT, (long)&dfl, 0, sizeof(uint64_t));
    uint64_t set = bit(SIGTERM) | bit(SIGINT) | bit(SIGHUP) | bit(SIGQUIT) | bit(SIGCHLD);
    sys(__NR_rt_sigprocmask, SIG_SETMASK, (long)&set, 0, sizeof(set));
    /* closes SYNC_FD too: the app's process was waiting for that */
    if (sys(__NR_close_range, 3, ~0U, 0, 0) < 0)
        quit(125);
    long sfd = sys(__NR_signalfd4, -1, (long)&set, sizeof(set), 02000000 /* SFD_CLOEXEC */);
    if (sfd < 0)
        quit(125);
    int app_status = 0;
    for (;;) {
        int status = 0;
        long pid;
        while ((pid = sys(__NR_wait4, -1, (long)&status, WNOHANG, 0)) > 0)
            if (pid == app)
                app_status = status;
        if (pid < 0) /* no child left */
            break;
        struct signalfd_siginfo si;
        if (sys(__NR_read, sfd, (long)&si, sizeof(si), 0) == sizeof(si) &&
            FORWARDED((int)si.ssi_signo))
            sys(__NR_kill, app, (long)si.ssi_signo, 0, 0);
    }
    /* as a shell reports it: 128 + N when the app was killed by signal N */
    if ((app_status & 0x7f) != 0 && (app_status & 0x7f) != 0x7f)
        quit(128 + (app_status & 0x7f));
    quit((app_status >> 8) & 0xff);
}
