/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app's own seccomp rules (filter 3 of seccomp_filter.c): parsing sys.debug__mock_syscalls,
 * and the supervisor's thread that answers the calls the filter sends to user space.
 *
 * Everything in a notification comes from the app and is hostile. The thread reads only the
 * call's number, never its arguments or the app's memory, and answers every notification with
 * a value (a mock's, or EAGAIN for a subprocess): it never lets a call run
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE is not used). A notification whose task died is skipped
 * (ENOENT); nothing the app does can block it. If the thread is gone, the kernel fails the
 * notified calls with ENOSYS: they still do not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "sandbox.h"
#include "seccomp_filter.h"

void seccomp_mocks_free(struct seccomp_mock* mocks, size_t n) {
    for (size_t i = 0; mocks && i < n; i++)
        free(mocks[i].name);
    free(mocks);
}

bool sandbox_syscall_known(const char* name) {
    return seccomp_syscall_known(name);
}

bool seccomp_syscall_known(const char* name) {
    int nr = seccomp_syscall_resolve_name(name);
    return nr != __NR_SCMP_ERROR && nr >= 0;
}

int seccomp_mocks_from(const struct manifest* m, struct seccomp_mock** ret, size_t* ret_n,
                       struct moat_error* err) {
    struct seccomp_mock* mocks = xcalloc(m->sys.nmock + 1, sizeof(*mocks));
    size_t n                   = 0;
    for (size_t i = 0; i < m->sys.nmock; i++) {
        const struct manifest_mock_syscall* e = &m->sys.mock_syscalls[i];
        int nr                                = seccomp_syscall_resolve_name(e->name);
        if (nr == __NR_SCMP_ERROR || nr < 0) { /* the model checked the names already */
            seccomp_mocks_free(mocks, n);
            return moat_error_set(err, -EINVAL,
                                  "Unrecognized mock syscall `%s` in manifest at index %zu",
                                  e->name, i);
        }
        size_t j = 0;
        while (j < n && mocks[j].nr != nr)
            j++;
        if (j < n) /* the last entry for a call wins, as in Gramine's table */
            free(mocks[j].name);
        else
            n++;
        mocks[j] = (struct seccomp_mock){nr, e->ret, xstrdup(e->name)};
    }
    *ret   = mocks;
    *ret_n = n;
    return 0;
}

struct seccomp_notifier {
    int listener;
    int stop[2]; /* a byte on stop[1] ends the thread */
    pthread_t thread;
    bool started;
    struct seccomp_mock* mocks; /* a copy */
    size_t nmocks;
    bool disallow_subprocesses;
    atomic_bool warned;
    struct seccomp_notif_sizes sizes;
};

/* The answer to call `nr`: a mock's value, or EAGAIN for a subprocess; ENOSYS otherwise (the
 * filter notifies nothing else). */
static void answer(struct seccomp_notifier* n, int nr, struct seccomp_notif_resp* resp) {
    for (size_t i = 0; i < n->nmocks; i++) {
        if (n->mocks[i].nr == nr) {
            log_trace("mocked system call %s returned %lld", n->mocks[i].name,
                      (long long)n->mocks[i].ret);
            resp->val = n->mocks[i].ret;
            return;
        }
    }
    bool fork = nr == SYS_clone || nr == SYS_fork || nr == SYS_vfork;
    if (fork && n->disallow_subprocesses) {
        /* Gramine v1.9 libos/src/sys/libos_clone.c: a warning, once */
        if (!atomic_exchange(&n->warned, true))
            log_warning(
                "The app tried to create a subprocess, but this is disabled "
                "(sys.disallow_subprocesses = true)");
        resp->error = -EAGAIN;
        return;
    }
    resp->error = -ENOSYS;
}

static void* notifier_main(void* arg) {
    struct seccomp_notifier* n = arg;
    /* the kernel's structures may be larger than this build's: use its sizes */
    size_t req_size           = n->sizes.seccomp_notif > sizeof(struct seccomp_notif)
                                    ? n->sizes.seccomp_notif
                                    : sizeof(struct seccomp_notif);
    size_t resp_size          = n->sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
                                    ? n->sizes.seccomp_notif_resp
                                    : sizeof(struct seccomp_notif_resp);
    struct seccomp_notif* req = xcalloc(1, req_size);
    struct seccomp_notif_resp* resp = xcalloc(1, resp_size);
    for (;;) {
        struct pollfd p[2] = {{.fd = n->listener, .events = POLLIN},
                              {.fd = n->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents || (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)))
            break; /* stopped, or every process of the filter is gone */
        if (!(p[0].revents & POLLIN))
            continue;
        memset(req, 0, req_size); /* the kernel wants it zeroed */
        if (ioctl(n->listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0)
            continue; /* EINTR, or ENOENT: the task died before we read it */
        memset(resp, 0, resp_size);
        resp->id = req->id;
        answer(n, req->data.nr, resp);
        (void)ioctl(n->listener, SECCOMP_IOCTL_NOTIF_SEND, resp); /* ENOENT: it died */
    }
    free(req);
    free(resp);
    return NULL;
}

int seccomp_notifier_start(int listener, const struct seccomp_app* app,
                           struct seccomp_notifier** ret) {
    struct seccomp_notifier* n = xcalloc(1, sizeof(*n));
    n->listener                = listener;
    n->stop[0] = n->stop[1]  = -1;
    n->disallow_subprocesses = app->disallow_subprocesses;
    n->nmocks                = app->nmocks;
    n->mocks                 = xcalloc(app->nmocks + 1, sizeof(*n->mocks));
    for (size_t i = 0; i < app->nmocks; i++)
        n->mocks[i] =
            (struct seccomp_mock){app->mocks[i].nr, app->mocks[i].ret, xstrdup(app->mocks[i].name)};
    int r = 0;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &n->sizes) < 0 ||
        pipe2(n->stop, O_CLOEXEC) < 0)
        r = -errno;
    else if ((r = -pthread_create(&n->thread, NULL, notifier_main, n)) == 0) {
        n->started = true;
        *ret       = n;
        return 0;
    }
    seccomp_notifier_stop(n);
    return r;
}

void seccomp_notifier_stop(struct seccomp_notifier* n) {
    if (!n)
        return;
    if (n->started) {
        (void)!write(n->stop[1], "x", 1);
        pthread_join(n->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (n->stop[i] >= 0)
            close(n->stop[i]);
    close(n->listener);
    seccomp_mocks_free(n->mocks, n->nmocks);
    free(n);
}
