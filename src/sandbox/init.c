/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-init: PID 1 of a `moat run` sandbox (docs/security.md, "An init that holds nothing").
 *
 * moat's sandbox process sets everything up, forks the app's process (which waits), then
 * execs this small static program in its own place, so that PID 1 holds no copy of moat's
 * memory, keys, environment, arguments or descriptors: its argv is "moat-init APP_PID
 * SYNC_FD", its environment is empty, and it runs under the seccomp profile it inherited.
 * It makes itself non-dumpable (no /proc/1/mem, environ or fd for the app), asks to die with
 * moat (the parent-death signal; the whole PID namespace dies with it), closes every
 * descriptor above 2 — among them SYNC_FD, which releases the app's process — forwards the
 * signals moat passes on, reaps every process and exits with the app's status.
 *
 * Built statically (no dynamic loader: the sandbox's root is the app's, not moat's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t g_app;

static void forward(int sig) {
    if (g_app > 0)
        kill(g_app, sig);
}

static long number(const char* s) {
    char* end = NULL;
    errno     = 0;
    long v    = strtol(s, &end, 10);
    return errno || !end || *end || v <= 0 ? -1 : v;
}

int main(int argc, char** argv) {
    /* first: nothing in the sandbox may read or write this process's memory */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return 125;
    if (argc != 3 || number(argv[1]) < 0 || number(argv[2]) < 0)
        return 125;
    g_app                        = (pid_t)number(argv[1]);
    static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    struct sigaction sa          = {.sa_handler = forward};
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        sigaction(forwarded[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* moat blocked every signal across the exec */
    /* closes SYNC_FD too: the app's process was waiting for that */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    int status = 0, app_status = 0;
    for (;;) {
        pid_t p = wait(&status);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            break; /* no child left */
        }
        if (p == g_app)
            app_status = status;
    }
    if (WIFSIGNALED(app_status))
        return 128 + WTERMSIG(app_status);
    return WEXITSTATUS(app_status);
}
