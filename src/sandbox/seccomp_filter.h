/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the sandbox's seccomp profile (seccomp_filter.c, docs/security.md). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "model.h"

/* One mocked system call (sys.debug__mock_syscalls): it returns `ret` and does nothing. */
struct seccomp_mock {
    int nr;
    int64_t ret;
    char* name;
};

/* What the app's profile adds to moat-init's (NULL: moat-init's). */
struct seccomp_app {
    bool disallow_subprocesses; /* fork, vfork, clone of a process: EAGAIN (notified) */
    const struct seccomp_mock* mocks;
    size_t nmocks;
};

/* The mocked calls of sys.debug__mock_syscalls (from the manifest model), one per system
 * call: the last one for a name wins, as in Gramine's init_syscalls. Free with
 * seccomp_mocks_free. */
int seccomp_mocks_from(const struct manifest* m, struct seccomp_mock** ret, size_t* ret_n,
                       struct moat_error* err) WARN_UNUSED;
/* True if libseccomp knows the system call `name` on this architecture. */
bool seccomp_syscall_known(const char* name);
void seccomp_mocks_free(struct seccomp_mock* mocks, size_t n);

/* True if the app's profile answers some call from user space (a notification listener). */
bool seccomp_app_needs_listener(const struct seccomp_app* app);

/* Compiles the profile into `ret` (malloc'd, *ret_len bytes): the BPF programs to load, in
 * order. `app` adds the app's own rules (NULL for moat-init): sys.disallow_subprocesses and
 * mocked calls, in a third filter loaded last, with a listener when a call needs one. Compiling
 * costs microseconds, so moat does it beside the sandbox's set-up. Returns 0 or a negative
 * errno. */
int seccomp_profile_build(const struct seccomp_app* app, char** ret, size_t* ret_len);

/* Loads a compiled profile into the calling process (no_new_privs must be set); it is
 * inherited by every child and kept across execve. *ret_listener gets the notification
 * listener of the profile, or -1 when it has none. Returns 0 or a negative errno. */
int seccomp_profile_load(const char* blob, size_t len, int* ret_listener);

/* Writes the profile as a table: one rule a line, "syscall<TAB>action[<TAB>condition]". */
void seccomp_profile_print(FILE* out, const struct seccomp_app* app);

/* The supervisor's side of the listener: a thread that answers every notification with the
 * mocked value, or EAGAIN (and one warning) for a subprocess under sys.disallow_subprocesses.
 * It never lets a call run and never reads the app's memory. Takes `listener`. */
struct seccomp_notifier;
int seccomp_notifier_start(int listener, const struct seccomp_app* app,
                           struct seccomp_notifier** ret) WARN_UNUSED;
/* Stops the thread (NULL is fine) and closes the listener. */
void seccomp_notifier_stop(struct seccomp_notifier* n);
