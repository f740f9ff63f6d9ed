/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the sandbox's seccomp profile (seccomp_filter.c, docs/security.md). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

/* Compiles the profile (libseccomp) into `ret` (malloc'd, *ret_len bytes): the BPF programs
 * to load, in order. With disallow_subprocesses, fork/vfork/clone of a new process fail with
 * EAGAIN (sys.disallow_subprocesses). Compiling costs milliseconds, so moat does it beside the
 * sandbox's set-up. Returns 0 or a negative errno. */
int seccomp_profile_build(bool disallow_subprocesses, char** ret, size_t* ret_len);

/* Loads a compiled profile into the calling process (no_new_privs must be set); it is
 * inherited by every child and kept across execve. Returns 0 or a negative errno. */
int seccomp_profile_load(const char* blob, size_t len);

/* Writes the profile as a table: one rule a line, "syscall<TAB>action[<TAB>condition]". */
void seccomp_profile_print(FILE* out);
