/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: what the pseudo-file systems /dev/attestation (devfs.c) and /dev/amber
 * (amberfs.c) share — each is a FUSE session served on one thread of its own, on a connection
 * the sandbox child mounted and passed over.
 */
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>

#include "common.h"

/* Attaches `se` to the connection `fuse_fd` (taken over: closed on failure) and serves it on a
 * new thread (*ret_thread) until the connection ends. `what` names it in errors
 * ("/dev/amber"). */
int pseudofs_start(struct fuse_session* se, int fuse_fd, pthread_t* ret_thread, const char* what,
                   struct moat_error* err) WARN_UNUSED;

/* Whether a SETATTR asks only what a pseudo-file allows: a size (open with O_TRUNC: the content
 * is made at open, nothing to truncate) and times. Anything else is EPERM. */
bool pseudofs_setattr_ok(int to_set);
