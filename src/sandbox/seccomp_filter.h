/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the sandbox's seccomp profile (seccomp_filter.c, docs/security.md). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

/* Installs the profile in the calling process (no_new_privs must be set); it is inherited by
 * every child and kept across execve. With disallow_subprocesses, fork/vfork/clone of a new
 * process fail with EAGAIN (sys.disallow_subprocesses). Returns 0 or a negative errno (message
 * printed). */
int install_seccomp_filter(bool disallow_subprocesses);

/* Writes the profile as a table: one rule a line, "syscall<TAB>action[<TAB>condition]". */
void seccomp_profile_print(FILE* out);
