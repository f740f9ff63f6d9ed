/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tests/test_parity_sys.py: system calls whose answers Gramine emulates (reference/gramine.md
 * §1.3 sys.*). One mode per behaviour; each prints "key=value" lines for the test to check and
 * ends with "OK" when every expectation held.
 *
 *   parity_sys rlimit       raise the soft RLIMIT_NOFILE / RLIMIT_STACK up to the hard limit
 *   parity_sys mock         sys.debug__mock_syscalls (see the test's manifest)
 *   parity_sys subprocess   sys.disallow_subprocesses = true
 *   parity_sys flood        threads flooding a mocked, notified call; exits mid-flight
 *   parity_sys ids          setgroups, sched_setscheduler(SCHED_RR), fchown
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_failed;

#define EXPECT(cond)                                                                             \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            printf("FAIL line %d: %s (errno %d %s)\n", __LINE__, #cond, errno, strerror(errno)); \
            g_failed = 1;                                                                        \
        }                                                                                        \
    } while (0)

static void raise_soft(int resource, const char* name) {
    struct rlimit rl;
    EXPECT(getrlimit(resource, &rl) == 0);
    printf("%s.soft=%llu\n%s.hard=%llu\n", name, (unsigned long long)rl.rlim_cur, name,
           (unsigned long long)rl.rlim_max);
    rlim_t hard = rl.rlim_max;
    /* raise the soft limit by one, then to the hard limit */
    if (rl.rlim_cur < hard) {
        rl.rlim_cur++;
        EXPECT(setrlimit(resource, &rl) == 0);
        struct rlimit now;
        EXPECT(getrlimit(resource, &now) == 0 && now.rlim_cur == rl.rlim_cur);
        printf("%s.raised=%llu\n", name, (unsigned long long)now.rlim_cur);
    }
    rl.rlim_cur = hard;
    EXPECT(setrlimit(resource, &rl) == 0);
    /* soft above hard: EINVAL; hard above the host's: EPERM */
    if (hard != RLIM_INFINITY) {
        rl.rlim_cur = hard + 1;
        errno       = 0;
        EXPECT(setrlimit(resource, &rl) < 0 && errno == EINVAL);
        rl.rlim_cur = rl.rlim_max = hard + 1;
        errno                     = 0;
        EXPECT(setrlimit(resource, &rl) < 0 && errno == EPERM);
    }
    struct rlimit old, new = {.rlim_cur = hard, .rlim_max = hard};
    EXPECT(prlimit(0, resource, &new, &old) == 0 && old.rlim_cur == hard);
}

static int mode_rlimit(void) {
    raise_soft(RLIMIT_NOFILE, "nofile");
    raise_soft(RLIMIT_STACK, "stack");
    struct rlimit rl;
    EXPECT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* the raised limit is inherited */
        struct rlimit child;
        printf("child.nofile.soft=%llu\n",
               getrlimit(RLIMIT_NOFILE, &child) == 0 ? (unsigned long long)child.rlim_cur : 0ULL);
        _exit(0);
    }
    EXPECT(pid > 0 && waitpid(pid, NULL, 0) == pid);
    return 0;
}

static int mode_mock(void) {
    errno = 0;
    EXPECT(syscall(SYS_eventfd2, 0, 0) == -1 && errno == ENOSYS);
    for (int i = 0; i < 100; i++)
        EXPECT(sched_yield() == 0);
    errno  = 0;
    long r = syscall(SYS_vhangup); /* refused by moat's profile, mocked here */
    printf("vhangup=%ld\n", r);
    EXPECT(r == 123);
    errno = 0;
    r     = syscall(SYS_sethostname, "x", 1); /* refused, mocked with a negative value */
    printf("sethostname=%ld errno=%d\n", r, errno);
    EXPECT(r == -1 && errno == EIO);
    errno = 0;
    EXPECT(syscall(SYS_fork) == -1 && errno == ENOSYS);
    errno = 0;
    EXPECT(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) == -1 && errno == ENOSYS);
    /* mocked with a large value: the whole 64 bits come back */
    r = syscall(SYS_getppid);
    printf("getppid=%ld\n", r);
    EXPECT(getpid() > 0);
    return 0;
}

static void* thread_main(void* arg) {
    return arg;
}

static int mode_subprocess(void) {
    for (int i = 0; i < 3; i++) {
        errno     = 0;
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        EXPECT(pid == -1 && errno == EAGAIN);
    }
    errno = 0;
    EXPECT(syscall(SYS_vfork) == -1 && errno == EAGAIN);
    pthread_t t;
    void* ret = NULL;
    EXPECT(pthread_create(&t, NULL, thread_main, (void*)42) == 0 && pthread_join(t, &ret) == 0);
    EXPECT(ret == (void*)42);
    return 0;
}

/* Hostile use of the supervisor's listener: threads flood it with notified calls and the
 * process exits while some are in flight. moat must neither hang nor crash. */
static void* flood_main(void* arg) {
    for (;;)
        if (syscall(SYS_vhangup) != 123)
            *(int*)arg = 1;
    return NULL;
}

static int mode_flood(void) {
    static int bad;
    pthread_t t;
    for (int i = 0; i < 8; i++)
        EXPECT(pthread_create(&t, NULL, flood_main, &bad) == 0);
    usleep(300 * 1000);
    EXPECT(!bad);
    printf("%s\n", g_failed ? "FAIL" : "OK");
    fflush(stdout);
    _exit(7); /* with calls in flight */
}

static int mode_ids(void) {
    gid_t set[] = {1000, 2000, 3000};
    EXPECT(setgroups(3, set) == 0);
    EXPECT(setgroups(0, NULL) == 0);
    errno = 0;
    EXPECT(syscall(SYS_setgroups, -1, set) == -1 && errno == EINVAL);
    struct sched_param sp = {.sched_priority = 10};
    EXPECT(sched_setscheduler(0, SCHED_RR, &sp) == 0);
    EXPECT(sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0);
    printf("scheduler=%d\n", sched_getscheduler(0));
    EXPECT(sched_getscheduler(0) == SCHED_OTHER);
    int fd = open("/tmp/owned", O_CREAT | O_RDWR, 0644);
    EXPECT(fd >= 0);
    EXPECT(fchown(fd, 1000, 1000) == 0);
    EXPECT(chown("/tmp/owned", 1000, 1000) == 0);
    EXPECT(lchown("/tmp/owned", 1000, 1000) == 0);
    EXPECT(fchownat(AT_FDCWD, "/tmp/owned", 1000, 1000, 0) == 0);
    struct stat st;
    EXPECT(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0644);
    printf("uid=%u gid=%u\n", (unsigned)st.st_uid, (unsigned)st.st_gid);
    close(fd);
    return 0;
}

int main(int argc, char** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char* mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "rlimit"))
        mode_rlimit();
    else if (!strcmp(mode, "mock"))
        mode_mock();
    else if (!strcmp(mode, "subprocess"))
        mode_subprocess();
    else if (!strcmp(mode, "flood"))
        mode_flood();
    else if (!strcmp(mode, "ids"))
        mode_ids();
    else {
        fprintf(stderr, "usage: parity_sys rlimit|mock|subprocess|ids\n");
        return 2;
    }
    if (!g_failed)
        puts("OK");
    return g_failed;
}
