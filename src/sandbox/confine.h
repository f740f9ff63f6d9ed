/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: the mechanisms that keep a hostile app inside `moat run`'s sandbox
 * (confine.c, docs/security.md) — the app's unprivileged host identity, idmapped bind mounts,
 * masked /proc and read-only /sys, the app's standard descriptors, and moat-init.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "common.h"

/* The host uid and gid the app's user maps to when moat runs as root (the app's uid and gid in
 * the sandbox, loader.uid/gid, are this id on the host, which owns nothing there). Not an id of
 * any account; see docs/security.md. */
#define SANDBOX_HOST_ID 2147483646u

/* Maps uid `ns_uid` and gid `ns_gid` of the user namespace of process `pid` to `uid` and `gid`
 * on the host, and nothing else (setgroups denied). Returns 0 or a negative errno. */
int confine_map_ids(pid_t pid, unsigned ns_uid, unsigned ns_gid, unsigned uid,
                    unsigned gid) WARN_UNUSED;

/* Supervisor, as root: a user namespace whose uid `ns_uid` and gid `ns_gid` are `host_id` on the
 * host (kept alive by the returned descriptor; no process stays in it). */
int confine_make_userns(unsigned ns_uid, unsigned ns_gid, unsigned host_id, int* ret_fd,
                        struct moat_error* err) WARN_UNUSED;

/* Sandbox child, as host root, after every mount: drops the supplementary groups and joins the
 * user namespace `userns_fd` (with every capability there, none on the host); the caller then
 * takes the namespace's ids. Returns 0 or a negative errno. */
int confine_enter_userns(int userns_fd) WARN_UNUSED;

/* Sandbox child, as host root: binds the path `src_fd` (O_PATH) at `target` as a detached
 * copy of its mount tree, idmapped through `userns_fd` (a namespace whose 0 is the app's host
 * id) when its file system supports that, so that files the host root owns are the app's user's
 * (and files the app creates are the host root's). *ret_idmapped says which. Returns 0 or a
 * negative errno. */
int confine_bind_idmapped(int src_fd, const char* target, int userns_fd,
                          bool* ret_idmapped) WARN_UNUSED;

/* Sandbox child: /proc/sys, /proc/sysrq-trigger and the like read-only, and the host
 * interfaces runc masks hidden (`proc` is where the sandbox's procfs is mounted). Returns 0
 * or a negative errno; *ret_what names what failed. */
int confine_proc(const char* proc, const char** ret_what) WARN_UNUSED;

/* Sandbox child: every mount under `sys` (the host's /sys, bound recursively) read-only,
 * nosuid, nodev, noexec, and firmware/powercap masked. Returns 0 or a negative errno. */
int confine_sys(const char* sys) WARN_UNUSED;

/* Supervisor: moat-init (src/sandbox/init.c), next to this executable or in the package's
 * library directory, opened for execveat. */
int confine_open_init(int* ret_fd, struct moat_error* err) WARN_UNUSED;

/* The app's descriptors 0-2. A regular file, block device or named FIFO is not handed over as
 * such (the app could reopen it through /proc/self/fd with more access than it was given):
 * moat copies it through a pipe of its own, which the app can reopen in the direction it was
 * given only. As root (`privileged`), the caller's pipes are copied too, since the app's
 * unprivileged identity could not reopen them (/dev/stdin). A directory or O_PATH descriptor (a
 * way out of the sandbox's root) becomes /dev/null, with a warning. Terminals, sockets, other
 * devices and (not as root) the caller's pipes pass unchanged. */
struct stdio_proxy;

/* Supervisor, before the sandbox is cloned: decides for each of 0-2; child_fds[i] is what the
 * child puts at i (-1: keep its own). */
int stdio_proxy_prepare(bool privileged, struct stdio_proxy** ret, int child_fds[3],
                        struct moat_error* err) WARN_UNUSED;
/* Child: moves child_fds into place (closing the originals). Returns 0 or a negative errno. */
int stdio_proxy_install(const int child_fds[3]) WARN_UNUSED;
/* Supervisor, after the clone: closes the child's ends, starts the copying threads. */
void stdio_proxy_start(struct stdio_proxy* p);
/* Supervisor, after the sandbox exited: waits until the output is copied; frees (NULL ok). */
void stdio_proxy_finish(struct stdio_proxy* p);
