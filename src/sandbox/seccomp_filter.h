/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the app's seccomp filter (seccomp_filter.c, documented in docs/run.md). */
#pragma once

#include <stdbool.h>

/* Installs the filter in the calling process (no_new_privs must be set). With
 * disallow_subprocesses, fork/vfork/clone of a new process fail with EAGAIN
 * (sys.disallow_subprocesses). Returns 0 or a negative errno (message printed). */
int install_seccomp_filter(bool disallow_subprocesses);
