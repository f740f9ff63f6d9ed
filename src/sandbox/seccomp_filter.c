/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp filter of every process in the sandbox: system calls a sandboxed app never needs
 * and that could reach beyond it fail with EPERM (the list is in docs/run.md). Everything else
 * runs natively, so the filter costs nothing on hot paths (no user notification).
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "seccomp_filter.h"

static const char* const g_denied[] = {
    /* mounts and roots: the sandbox's view is fixed */
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    /* new namespaces and joining others */
    "unshare",
    "setns",
    /* the kernel itself */
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "iopl",
    "ioperm",
    "quotactl",
    "lookup_dcookie",
    /* programs and keys in the kernel */
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    /* tracing and other processes' memory */
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "perf_event_open",
    /* file handles bypass path checks */
    "open_by_handle_at",
    "name_to_handle_at",
    /* userfaultfd: used to widen kernel races */
    "userfaultfd",
};

int install_seccomp_filter(bool disallow_subprocesses) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) {
        fprintf(stderr, "moat: error: seccomp is unavailable in this kernel\n");
        return -ENOSYS;
    }
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof(g_denied) / sizeof(g_denied[0]); i++) {
        int nr = seccomp_syscall_resolve_name(g_denied[i]);
        if (nr != __NR_SCMP_ERROR)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    if (r == 0 && disallow_subprocesses) {
        /* threads (CLONE_THREAD) stay allowed; new processes fail like Gramine's -EAGAIN */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAGAIN), SCMP_SYS(fork), 0);
        if (r == 0)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAGAIN), SCMP_SYS(vfork), 0);
        if (r == 0)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAGAIN), SCMP_SYS(clone), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
        /* clone3 passes flags in memory: make glibc fall back to clone */
        if (r == 0)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    }
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    if (r < 0)
        fprintf(stderr, "moat: error: cannot install the seccomp filter: %s\n", strerror(-r));
    return r;
}
