/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `moat run`: the supervisor and the sandbox child (../shared/ARCHITECTURE.md, "moat run").
 *
 *   supervisor (host mount namespace): manifest -> argv, env, file policy, mount plan; serves
 *   the FUSE view on the connection the child passes back over a socketpair.
 *   child (clone: new user, mount, pid, ipc, uts namespaces; PID 1 there): mounts the FUSE view
 *   as the new root, tmpfs mounts, bind mounts of allowed paths, /proc, a minimal /dev, /sys
 *   read-only; pivot_root; limits; no_new_privs; capabilities dropped; seccomp; then forks the
 *   app and reaps until it exits, passing its status on.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "amberfs.h"
#include "check.h"
#include "confine.h"
#include "devfs.h"
#include "encfs.h"
#include "fusefs.h"
#include "hostpath.h"
#include "identity.h"
#include "provider.h"
#include "seccomp_filter.h"
#include "sigstruct.h"
#include "verify.h"

extern char** environ;

struct sandbox {
    const struct run_opts* opts;
    struct manifest* manifest;
    char* manifest_path; /* absolute */
    struct strv argv, env;
    struct encfs* encfs; /* keys of encrypted mounts */
    struct file_policy policy;
    struct mount_plan plan;
    char root[64];    /* child: staging mount point of the new root */
    int sock[2];      /* [0] supervisor, [1] child */
    int* allowed_fds; /* child: O_PATH fds of the allowed paths to bind */
    uint64_t stack_size, fds_limit;
    bool stack_set, disallow_subprocesses, sigterm_injection;
    struct seccomp_mock* mocks; /* sys.debug__mock_syscalls */
    size_t nmocks;
    uint64_t sgx_enclave_size, sgx_max_threads; /* --emulate-sgx-limits (0: off) */
    struct attest_identity id;                  /* what the app's reports and quotes carry */
    char* measured; /* the manifest bytes MRENCLAVE is over (hashed when used) */
    size_t measured_len;
    bool mrenclave_set;               /* id.mrenclave is their measurement */
    bool remote_dcap;                 /* sgx.remote_attestation = "dcap" */
    struct attest_provider* provider; /* where quotes come from */
    bool amber;                       /* /dev/amber: an sgx.amber_* or sgx.kbs_* key is set */
    char* amber_cacerts;              /* sgx.amber_cacerts' PEM text (checked), or NULL */
    size_t amber_cacerts_len;
    /* confinement (docs/security.md) */
    bool privileged;  /* moat runs as root: the app's users are SANDBOX_HOST_ID on the host */
    int userns_fd;    /* privileged: the app's user namespace (its user is SANDBOX_HOST_ID) */
    int idmap_fd;     /* privileged: the idmapping of allowed binds (root is SANDBOX_HOST_ID) */
    unsigned app_uid; /* the app's user as the host sees it */
    unsigned app_gid;
    unsigned ns_uid; /* loader.uid, loader.gid: the app's user inside (Gramine's emulated ids) */
    unsigned ns_gid;
    int init_fd;        /* moat-init, exec'd as the sandbox's PID 1 */
    int stdio[3];       /* child: what the app gets as 0-2 (-1: moat's own) */
    pthread_t profiler; /* supervisor: compiles the seccomp profiles, sends them */
    bool profiler_started;
};

/* ---------------------------------------------------------------------------------------- */
/* Messages across the socketpair                                                             */

static int send_fd(int sock, int fd) {
    char byte        = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level     = SOL_SOCKET;
    c->cmsg_type      = SCM_RIGHTS;
    c->cmsg_len       = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* recvmsg(2) that reads past one ECONNRESET. A child that fails early (say, /dev/fuse is not
 * accessible) exits before it reads what the profiler thread sent it; closing a socket with
 * unread data makes the kernel report ECONNRESET once to the peer (unix_release_sock), ahead of
 * the error message the child sent last, which a second read returns. */
static ssize_t recvmsg_after_reset(int sock, struct msghdr* m, int flags) {
    ssize_t n;
    bool reset = false;
    while ((n = recvmsg(sock, m, flags)) < 0 && (errno == EINTR || (errno == ECONNRESET && !reset)))
        reset = reset || errno == ECONNRESET;
    return n;
}

/* Receives the FUSE fd; if the child sent an error message instead, it lands in msg. */
static int recv_fd(int sock, char* msg, size_t msg_size) {
    struct iovec iov = {.iov_base = msg, .iov_len = msg_size - 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    memset(msg, 0, msg_size);
    if (recvmsg_after_reset(sock, &m, MSG_CMSG_CLOEXEC) < 1)
        return -EPIPE;
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -EPROTO;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* One status byte, or an error message from the child ("E<text>"). */
static int send_msg(int sock, const char* msg) {
    return send(sock, msg, strlen(msg), MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The child                                                                                  */

static char g_child_err[1024];

#define STAGING_ATTESTATION "/tmp/attestation"
#define STAGING_AMBER       "/tmp/amber"

PRINTF_FMT(1, 2) static int child_fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    g_child_err[0] = 'E';
    vsnprintf(g_child_err + 1, sizeof(g_child_err) - 1, fmt, ap);
    va_end(ap);
    return -1;
}

static char* in_root(const struct sandbox* sb, const char* app_path) {
    return path_join(sb->root, app_path);
}

/* The app's user as the mounts the child makes see it: as root, moat mounts in the host's user
 * namespace before it becomes that user; otherwise in the app's own. */
static unsigned mount_uid(const struct sandbox* sb) {
    return sb->privileged ? sb->app_uid : sb->ns_uid;
}

static unsigned mount_gid(const struct sandbox* sb) {
    return sb->privileged ? sb->app_gid : sb->ns_gid;
}

/* tmpfs options: owned by the app's user (loader.uid/gid) */
static char* tmpfs_opts(const struct sandbox* sb, const char* opts) {
    return xasprintf("%s,uid=%u,gid=%u", opts, mount_uid(sb), mount_gid(sb));
}

static int bind_dev(const struct sandbox* sb, const char* name) {
    _cleanup_free_ char* host   = xasprintf("/dev/%s", name);
    _cleanup_free_ char* target = xasprintf("%s/dev/%s", sb->root, name);
    struct stat st;
    if (stat(host, &st) < 0)
        return 0; /* e.g. no /dev/tty without a terminal */
    int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0)
        return child_fail("cannot create %s: %s", target, strerror(errno));
    close(fd);
    /* read-only: the app uses the device, it cannot chmod or chown the host's inode */
    if (mount(host, target, NULL, MS_BIND, NULL) < 0 ||
        mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) <
            0)
        return child_fail("cannot bind %s: %s", host, strerror(errno));
    return 0;
}

static int mount_dev(const struct sandbox* sb) {
    _cleanup_free_ char* dev      = in_root(sb, "/dev");
    _cleanup_free_ char* dev_opts = tmpfs_opts(sb, "mode=755,size=1m");
    _cleanup_free_ char* shm_opts = tmpfs_opts(sb, "mode=1777");
    if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, dev_opts) < 0)
        return child_fail("cannot mount /dev: %s", strerror(errno));
    static const char* const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
        if (bind_dev(sb, nodes[i]) < 0)
            return -1;
    _cleanup_free_ char* shm = in_root(sb, "/dev/shm");
    _cleanup_free_ char* pts = in_root(sb, "/dev/pts");
    if (mkdir(shm, 01777) < 0 || mount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV, shm_opts) < 0)
        return child_fail("cannot mount /dev/shm: %s", strerror(errno));
    if (mkdir(pts, 0755) < 0 || mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC,
                                      "newinstance,ptmxmode=0666,mode=620") < 0)
        return child_fail("cannot mount /dev/pts: %s", strerror(errno));
    static const char* const links[][2] = {{"pts/ptmx", "ptmx"},
                                           {"/proc/self/fd", "fd"},
                                           {"/proc/self/fd/0", "stdin"},
                                           {"/proc/self/fd/1", "stdout"},
                                           {"/proc/self/fd/2", "stderr"}};
    for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
        _cleanup_free_ char* l = xasprintf("%s/dev/%s", sb->root, links[i][1]);
        if (symlink(links[i][0], l) < 0)
            return child_fail("cannot create /dev/%s: %s", links[i][1], strerror(errno));
    }
    /* /dev/attestation: its FUSE connection was mounted on the staging area (devfs.c) */
    _cleanup_free_ char* att = in_root(sb, "/dev/attestation");
    if (mkdir(att, 0755) < 0 || mount(STAGING_ATTESTATION, att, NULL, MS_MOVE, NULL) < 0)
        return child_fail("cannot mount /dev/attestation: %s", strerror(errno));
    _cleanup_free_ char* amber = in_root(sb, "/dev/amber");
    if (sb->amber &&
        (mkdir(amber, 0755) < 0 || mount(STAGING_AMBER, amber, NULL, MS_MOVE, NULL) < 0))
        return child_fail("cannot mount /dev/amber: %s", strerror(errno));
    return 0;
}

/* sys.enable_extra_runtime_domain_names_conf: hostname, hosts and resolv.conf from the host's
 * (resolv.conf keeps nameserver, search and the options Gramine passes on). */
static char* domain_file_content(const char* path) {
    char host[256] = "localhost";
    (void)gethostname(host, sizeof(host) - 1);
    if (!strcmp(path, "/etc/hostname"))
        return xasprintf("%s\n", host);
    if (!strcmp(path, "/etc/hosts"))
        return xasprintf(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
            "127.0.1.1 %s\n",
            host);
    struct strbuf sb          = STRBUF_INIT;
    _cleanup_free_ char* text = NULL;
    size_t len;
    struct moat_error err = {0};
    if (read_file("/etc/resolv.conf", &text, &len, &err) == 0) {
        for (char *line = text, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (!strncmp(line, "nameserver", 10) || !strncmp(line, "search", 6)) {
                strbuf_printf(&sb, "%s\n", line);
            } else if (!strncmp(line, "options", 7)) {
                static const char* const kept[] = {"edns0", "inet6", "rotate", "use-vc"};
                struct strbuf opts              = STRBUF_INIT;
                for (size_t i = 0; i < ARRAY_SIZE(kept); i++)
                    if (strstr(line, kept[i]))
                        strbuf_printf(&opts, " %s", kept[i]);
                if (opts.len)
                    strbuf_printf(&sb, "options%s\n", opts.buf);
                strbuf_free(&opts);
            }
        }
    }
    return strbuf_take(&sb, NULL);
}

static int bind_domain_file(const struct sandbox* sb, const char* app_path) {
    _cleanup_free_ char* content = domain_file_content(app_path);
    _cleanup_free_ char* source  = xasprintf("/tmp/domain-%s", strrchr(app_path, '/') + 1);
    _cleanup_free_ char* target  = in_root(sb, app_path);
    struct moat_error err        = {0};
    if (write_file_atomic(source, content, strlen(content), 0644, &err) < 0)
        return child_fail("cannot generate %s: %s", app_path, err.msg);
    if (mount(source, target, NULL, MS_BIND, NULL) < 0 ||
        mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
        return child_fail("cannot provide %s: %s", app_path, strerror(errno));
    if (!strcmp(app_path, "/etc/hostname")) {
        char host[256] = "localhost";
        (void)gethostname(host, sizeof(host) - 1);
        if (sethostname(host, strlen(host)) < 0)
            return child_fail("cannot set the hostname: %s", strerror(errno));
    }
    return 0;
}

/* The sandbox's UTS namespace starts as a copy of the host's. Gramine's LibOS reports the
 * hostname "localhost" and the domain name "(none)" unless
 * sys.enable_extra_runtime_domain_names_conf takes the host's (libos/src/sys/libos_uname.c,
 * libos_init.c; test_libos.py test_120_gethostname_default): so does the sandbox, which also
 * keeps the host's name from the app. With the key, bind_domain_file keeps the host's. */
static int set_uts_names(const struct sandbox* sb) {
    for (size_t i = 1; i < sb->plan.len; i++)
        if (sb->plan.items[i].type == MOUNT_PSEUDO_FILE &&
            !strcmp(sb->plan.items[i].path, "/etc/hostname"))
            return 0;
    static const char host[] = "localhost", domain[] = "(none)";
    if (sethostname(host, sizeof(host) - 1) < 0 || setdomainname(domain, sizeof(domain) - 1) < 0)
        return child_fail("cannot set the sandbox's hostname: %s", strerror(errno));
    return 0;
}

/* The kernel mount (tmpfs, /dev, /sys, ...) among entries 1..i-1 that hides entry i's path in
 * the FUSE view, or NULL. A chroot or encrypted mount there is bound from the view. */
static const struct mount_entry* shadowing(const struct mount_plan* p, size_t i) {
    const char* path = p->items[i].path;
    for (size_t j = i; j-- > 1;) {
        const struct mount_entry* k = &p->items[j];
        size_t n                    = strlen(k->path);
        if (k->type != MOUNT_CHROOT && k->type != MOUNT_ENCRYPTED && !strncmp(path, k->path, n) &&
            (path[n] == '/' || path[n] == '\0'))
            return k;
    }
    return NULL;
}

/* Before the kernel mounts hide them: a detached copy of the view's subtree for each chroot or
 * encrypted mount below one (untrusted_shm at /dev/shm, a device under /dev, a chroot mount
 * inside a tmpfs mount), attached once that mount is there. fds[i] = -1 for the others. */
static int clone_shadowed(const struct sandbox* sb, int* fds) {
    for (size_t i = 0; i < sb->plan.len; i++) {
        const struct mount_entry* m     = &sb->plan.items[i];
        fds[i]                          = -1;
        const struct mount_entry* above = i ? shadowing(&sb->plan, i) : NULL;
        if (!above || (m->type != MOUNT_CHROOT && m->type != MOUNT_ENCRYPTED) ||
            !strcmp(above->path, "/proc")) /* no mount point can be made in procfs (warned) */
            continue;
        _cleanup_free_ char* source = in_root(sb, m->path);
        fds[i] = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (fds[i] < 0)
            return child_fail("Mounting %s under %s failed: %s", m->host, m->path, strerror(errno));
    }
    return 0;
}

static int attach_shadowed(const struct sandbox* sb, const struct mount_entry* m, int tree) {
    _cleanup_free_ char* target = in_root(sb, m->path);
    struct stat st;
    int r = mkdir_parents(target, 0755);
    if (r == 0 && lstat(target, &st) < 0)
        r = mkdir(target, 0755) < 0 ? -errno : 0;
    if (r == 0 && syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        r = -errno;
    if (r < 0)
        return child_fail("Mounting %s under %s failed: %s (it is below %s)", m->host, m->path,
                          strerror(-r), shadowing(&sb->plan, (size_t)(m - sb->plan.items))->path);
    return 0;
}

static int mount_plan_entries(const struct sandbox* sb) {
    _cleanup_free_ int* trees = xcalloc(sb->plan.len + 1, sizeof(int));
    int ret                   = clone_shadowed(sb, trees);
    for (size_t i = 1; ret == 0 && i < sb->plan.len; i++) {
        const struct mount_entry* m = &sb->plan.items[i];
        _cleanup_free_ char* target = in_root(sb, m->path);
        _cleanup_free_ char* opts   = tmpfs_opts(sb, "mode=1777");
        const char* what            = NULL;
        int r                       = 0;
        switch (m->type) {
            case MOUNT_CHROOT:
            case MOUNT_ENCRYPTED: /* served by the FUSE view; bound when a mount hides it */
                if (trees[i] >= 0)
                    r = attach_shadowed(sb, m, trees[i]) < 0 ? 1 : 0;
                break;
            case MOUNT_TMPFS:
                r = mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, opts);
                break;
            case MOUNT_PSEUDO:
                if (!strcmp(m->path, "/proc")) {
                    r = mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
                    if (r == 0 && (r = confine_proc(target, &what)) < 0)
                        return child_fail("cannot make /proc/%s read-only: %s", what, strerror(-r));
                } else if (!strcmp(m->path, "/dev")) {
                    r = mount_dev(sb) < 0 ? 1 : 0;
                } else if (mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) == 0) {
                    if ((r = confine_sys(target)) < 0)
                        return child_fail("cannot make /sys read-only: %s", strerror(-r));
                } else {
                    r = -1;
                }
                break;
            case MOUNT_PSEUDO_FILE:
                r = bind_domain_file(sb, m->path) < 0 ? 1 : 0;
                break;
        }
        if (r == 1)
            ret = -1;
        else if (r < 0)
            ret = child_fail("Mounting %s under %s failed: %s", m->host ? m->host : "tmpfs",
                             m->path, strerror(errno));
    }
    for (size_t i = 0; i < sb->plan.len; i++)
        if (trees[i] >= 0)
            close(trees[i]);
    return ret;
}

/* Allowed files and directories are bind-mounted: native speed, writable. Their sources are
 * opened (O_PATH) before the staging tmpfs hides /tmp, and bound through /proc/self/fd. They
 * are the app's (an earlier run may have left a symlink there): opened through hostpath.c, and
 * a symlink is not bound but left to the FUSE view, which shows it as the symlink it is. */
static int open_allowed(struct sandbox* sb) {
    _cleanup_hostpath_ struct hostpath* hp = hostpath_new(sb->policy.allowed, sb->policy.nallowed);
    sb->allowed_fds                        = xcalloc(sb->policy.nallowed + 1, sizeof(int));
    for (size_t i = 0; i < sb->policy.nallowed; i++) {
        const char* host         = sb->policy.allowed[i];
        _cleanup_free_ char* app = mount_plan_app_path(&sb->plan, host);
        struct stat st;
        sb->allowed_fds[i] = -1;
        if (!app || !strcmp(app, "/"))
            continue; /* not visible in the app */
        _cleanup_close_ int fd = hostpath_open(hp, host, O_PATH, 0);
        if (fd == -ELOOP || (fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)))
            log_warning(
                "sgx.allowed_files: '%s' is not bound into the sandbox: it is a symbolic "
                "link or one is on its way (moat does not follow links in allowed "
                "directories)",
                host);
        if (fd < 0 || fstat(fd, &st) < 0)
            continue; /* created later through the view */
        if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))
            sb->allowed_fds[i] = TAKE_FD(fd);
    }
    return 0;
}

static int bind_allowed(const struct sandbox* sb) {
    for (size_t i = 0; i < sb->policy.nallowed; i++) {
        if (sb->allowed_fds[i] < 0)
            continue;
        _cleanup_free_ char* app    = mount_plan_app_path(&sb->plan, sb->policy.allowed[i]);
        _cleanup_free_ char* target = in_root(sb, app);
        int r                       = 0;
        if (sb->privileged) {
            bool idmapped = false;
            r = confine_bind_idmapped(sb->allowed_fds[i], target, sb->idmap_fd, &idmapped);
            if (r == 0 && !idmapped)
                log_warning(
                    "allowed path '%s' is on a file system without idmapped mounts: the app "
                    "writes there as host uid %u (docs/security.md)",
                    sb->policy.allowed[i], sb->app_uid);
        } else {
            char source[64];
            snprintf(source, sizeof(source), "/proc/self/fd/%d", sb->allowed_fds[i]);
            r = mount(source, target, NULL, MS_BIND | MS_REC, NULL) < 0 ? -errno : 0;
        }
        if (r < 0)
            return child_fail("cannot bind allowed path '%s': %s", sb->policy.allowed[i],
                              strerror(-r));
        close(sb->allowed_fds[i]);
    }
    return 0;
}

/* The staging root lives in a tmpfs private to the sandbox: nothing is created on the host. */
static int make_staging(struct sandbox* sb) {
    _cleanup_free_ char* opts = tmpfs_opts(sb, "size=64k");
    if (mount("moat-staging", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0 ||
        mkdir("/tmp/root", 0755) < 0 || mkdir(STAGING_ATTESTATION, 0755) < 0 ||
        (sb->amber && mkdir(STAGING_AMBER, 0755) < 0))
        return child_fail("cannot create the sandbox staging directory: %s", strerror(errno));
    snprintf(sb->root, sizeof(sb->root), "/tmp/root");
    return 0;
}

static int enter_root(const struct sandbox* sb) {
    if (chdir(sb->root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return child_fail("cannot enter the sandbox root: %s", strerror(errno));
    if (chdir(sb->plan.start_dir) < 0)
        return child_fail("Invalid 'fs.start_dir' in manifest. (%s: %s)", sb->plan.start_dir,
                          strerror(errno));
    return 0;
}

/* Sets the soft limit of `resource` to `soft`, clamped to the host's hard limit, which stays:
 * the app may raise its soft limit up to it, as on Linux (Gramine: initial soft RLIMIT_NOFILE =
 * sys.fds.limit, soft RLIMIT_STACK = sys.stack.size; reference/gramine.md §1.3 sys.*). */
static int set_soft_limit(int resource, uint64_t soft) {
    struct rlimit rl;
    if (getrlimit(resource, &rl) < 0)
        return -errno;
    rl.rlim_cur = soft > rl.rlim_max ? rl.rlim_max : soft;
    return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int apply_limits(const struct sandbox* sb) {
    int r = set_soft_limit(RLIMIT_NOFILE, sb->fds_limit);
    if (r < 0)
        return child_fail("cannot apply sys.fds.limit: %s", strerror(-r));
    if (sb->stack_set && (r = set_soft_limit(RLIMIT_STACK, sb->stack_size)) < 0)
        return child_fail("cannot apply sys.stack.size: %s", strerror(-r));
    return 0;
}

/* --emulate-sgx-limits, in the app's process only (moat's own init must not be limited). */
static int apply_sgx_limits(const struct sandbox* sb) {
    struct rlimit rl;
    if (sb->sgx_enclave_size) {
        /* the enclave is the app's whole address space */
        rl.rlim_cur = rl.rlim_max = sb->sgx_enclave_size;
        if (setrlimit(RLIMIT_AS, &rl) < 0)
            return child_fail("cannot apply sgx.enclave_size: %s", strerror(errno));
    }
    if (sb->sgx_max_threads) {
        /* one TCS per thread; RLIMIT_NPROC counts the tasks of the sandbox's own user
         * namespace (Linux >= 5.14), plus one for its init */
        rl.rlim_cur = rl.rlim_max = sb->sgx_max_threads + 1;
        if (setrlimit(RLIMIT_NPROC, &rl) < 0)
            return child_fail("cannot apply sgx.max_threads: %s", strerror(errno));
    }
    return 0;
}

/* Needs CAP_SETPCAP: before the ids change (a change to non-zero ids may clear it). */
static int drop_bounding_set(void) {
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return child_fail("cannot drop capability %d: %s", cap, strerror(errno));
    return 0;
}

static int drop_capabilities(void) {
    struct {
        uint32_t version;
        int pid;
    } hdr            = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t data[6] = {0};
    if (syscall(SYS_capset, &hdr, data) < 0)
        return child_fail("cannot drop capabilities: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return child_fail("cannot set no_new_privs: %s", strerror(errno));
    return 0;
}

/* The app's process, forked before PID 1 becomes moat-init: it waits until moat-init has made
 * itself non-dumpable and closed `sync` (so the app never sees PID 1 as a copy of moat), then
 * takes the profile, the limits and only descriptors 0-2 into execve. */
/* The compiled seccomp profiles the supervisor sends ("P", u32 length of moat-init's, then
 * moat-init's and the app's). */
struct profiles {
    char* msg;
    const char *init, *app;
    size_t init_len, app_len;
};

static int recv_profiles(int sock, struct profiles* p) {
    size_t cap = 256 * 1024;
    p->msg     = xmalloc(cap);
    ssize_t n;
    while ((n = recv(sock, p->msg, cap, 0)) < 0 && errno == EINTR)
        ;
    uint32_t init_len = 0;
    if (n < 5 || p->msg[0] != 'P')
        return child_fail("cannot compile the seccomp profile%s",
                          n > 1 && p->msg[0] == 'X' ? ": libseccomp failed" : "");
    memcpy(&init_len, p->msg + 1, sizeof(init_len));
    if (init_len > (size_t)n - 5)
        return child_fail("cannot compile the seccomp profile");
    p->init     = p->msg + 5;
    p->init_len = init_len;
    p->app      = p->init + init_len;
    p->app_len  = (size_t)n - 5 - init_len;
    return 0;
}

static int load_profile(const char* blob, size_t len, int* ret_listener) {
    int r = seccomp_profile_load(blob, len, ret_listener);
    if (r < 0)
        fprintf(stderr, "moat: error: cannot install the seccomp filter: %s\n", strerror(-r));
    return r;
}

static pid_t start_app(const struct sandbox* sb, const struct profiles* prof, const sigset_t* mask,
                       int* ret_sync) {
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0)
        return child_fail("cannot start the app: %s", strerror(errno));
    pid_t app = fork();
    if (app < 0)
        return child_fail("fork: %s", strerror(errno));
    if (app > 0) {
        close(sync[0]);
        *ret_sync = sync[1]; /* moat-init closes it */
        return app;
    }
    close(sync[1]);
    /* a process-group leader, as Gramine's first process is (libos_thread.c init_main_thread:
     * pgid = pid; test sid.c relies on it): setsid() fails with EPERM, and kill(0, sig) reaches
     * the app's own processes, not moat's group on the host. On a terminal the app stays in
     * the terminal's foreground group, so that its reads, Ctrl-C and Ctrl-Z work as for any
     * command (docs/gramine-differences.md, "Process ids and groups"). */
    if (!isatty(0) && !isatty(1) && !isatty(2))
        (void)setpgid(0, 0);
    char c;
    while (read(sync[0], &c, 1) < 0 && errno == EINTR)
        ;
    /* the app starts with default dispositions (moat ignores SIGINT; ignoring survives
     * execve) and an empty mask */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    int listener = -1;
    if (load_profile(prof->app, prof->app_len, &listener) < 0)
        _exit(126);
    /* the supervisor answers the calls the app's profile notifies (after "S", on the same
     * socket); without it they fail with ENOSYS, never run */
    if (listener >= 0 && (send_fd(sb->sock[1], listener) < 0 || close(listener) < 0))
        _exit(126);
    /* last before execve: nothing of moat's may allocate under these limits */
    if (apply_sgx_limits(sb) < 0) {
        fprintf(stderr, "moat: error: %s\n", g_child_err + 1);
        _exit(126);
    }
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) /* only 0-2 enter the app */
        _exit(126);
    execve(sb->plan.entrypoint, sb->argv.items, sb->env.items);
    fprintf(stderr, "moat: error: cannot execute '%s' (libos.entrypoint): %s\n",
            sb->plan.entrypoint, strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

/* PID 1 of the sandbox: forks the app, reports "started", then becomes moat-init (init.c),
 * which reaps everything and exits with the app's status. Returns only on failure. */
static int exec_init(const struct sandbox* sb, int sock) {
    struct profiles prof = {0};
    if (recv_profiles(sock, &prof) < 0)
        return -1;
    sigset_t all, empty;
    sigfillset(&all);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &all, NULL);
    int sync  = -1;
    pid_t pid = start_app(sb, &prof, &empty, &sync);
    if (pid < 0)
        return -1;
    char app[16], sync_arg[16];
    snprintf(app, sizeof(app), "%d", (int)pid);
    snprintf(sync_arg, sizeof(sync_arg), "%d", sync);
    /* moat-init keeps only SYNC_FD (no CLOEXEC) until it is non-dumpable */
    fcntl(sync, F_SETFD, 0);
    int none = -1;
    if (load_profile(prof.init, prof.init_len, &none) < 0)
        _exit(MOAT_EXIT_RUNTIME); /* the app's process dies with PID 1 */
    (void)send_msg(sock, "S");    /* started */
    char* const argv[] = {"moat-init", app, sync_arg, NULL};
    char* const envp[] = {NULL};
    syscall(SYS_execveat, sb->init_fd, "", argv, envp, AT_EMPTY_PATH);
    fprintf(stderr, "moat: error: cannot execute moat-init: %s\n", strerror(errno));
    _exit(MOAT_EXIT_RUNTIME);
}

/* As root: the app's user namespace and the idmapping of allowed binds, which the supervisor
 * makes while the sandbox is set up. */
static int recv_userns(struct sandbox* sb, int sock) {
    if (!sb->privileged)
        return 0;
    char msg[1024];
    int* fds[] = {&sb->userns_fd, &sb->idmap_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
        *fds[i] = recv_fd(sock, msg, sizeof(msg));
        if (*fds[i] < 0)
            return child_fail(
                "%s", msg[0] == 'E' ? msg + 1 : "cannot create the sandbox's user namespace");
    }
    return 0;
}

/* Mounts a FUSE connection on `target`; passes it to the supervisor. */
static int mount_fuse(const struct sandbox* sb, int sock, const char* source, const char* target,
                      unsigned long flags) {
    int fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fuse_fd < 0)
        return child_fail("cannot open /dev/fuse: %s (%s)", strerror(errno),
                          errno == ENOENT ? "load the fuse module with 'modprobe fuse'; in a "
                                            "container, pass the device: --device /dev/fuse"
                          : errno == EACCES || errno == EPERM
                              ? "it is not accessible to this user: make it read-writable for "
                                "everyone (chmod 0666 /dev/fuse, Debian's default) or run as root"
                              : "is the fuse module loaded?");
    /* the mount admits the app's user only (as root, moat mounts it before it becomes that) */
    char opts[128];
    snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u%s", fuse_fd,
             mount_uid(sb), mount_gid(sb),
             sb->privileged ? ",allow_other" : ""); /* as root, moat sets up through it first */
    int r = 0;
    if (mount(source, target, "fuse.moat", flags, opts) < 0)
        r = child_fail("cannot mount %s: %s",
                       !strcmp(source, "moat")         ? "the FUSE view"
                       : !strcmp(source, "moat-amber") ? "/dev/amber"
                                                       : "/dev/attestation",
                       strerror(errno));
    else if (send_fd(sock, fuse_fd) < 0)
        r = child_fail("cannot pass the FUSE connection to the supervisor");
    close(fuse_fd);
    return r;
}

/* Becomes what runs the app: as root, the unprivileged host identity; its user namespace's ids
 * loader.uid/gid (Gramine's emulated ids, reference/gramine.md §1.3; the only ids it maps);
 * then no capabilities, no_new_privs, and again the parent-death signal (a change of
 * credentials clears it). The bounding set goes first: it needs CAP_SETPCAP, which the change
 * to a non-zero uid may clear; the rest goes after, whatever the change kept. */
static int become_app_identity(const struct sandbox* sb, int sock) {
    int r;
    if (sb->privileged && (r = confine_enter_userns(sb->userns_fd)) < 0)
        return child_fail("cannot take the sandbox's identity: %s", strerror(-r));
    if (drop_bounding_set() < 0)
        return -1;
    if (setresgid(sb->ns_gid, sb->ns_gid, sb->ns_gid) < 0 ||
        setresuid(sb->ns_uid, sb->ns_uid, sb->ns_uid) < 0)
        return child_fail("cannot take the app's ids (loader.uid = %u, loader.gid = %u): %s",
                          sb->ns_uid, sb->ns_gid, strerror(errno));
    if (drop_capabilities() < 0)
        return -1;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* the supervisor may have died before the line above: then the socket is closed */
    struct pollfd pfd = {.fd = sock, .events = POLLOUT};
    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)))
        _exit(1);
    if ((r = stdio_proxy_install(sb->stdio)) < 0)
        return child_fail("cannot set up the app's descriptors: %s", strerror(-r));
    return 0;
}

static int child_main(struct sandbox* sb) {
    close(sb->sock[0]);
    int sock = sb->sock[1];
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no sandbox outlives its supervisor */
    char go;
    if (!sb->privileged && read(sock, &go, 1) != 1) /* uid/gid maps written */
        _exit(1);
    int r = mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (r < 0)
        child_fail("cannot make mounts private: %s", strerror(errno));
    if (r == 0)
        r = open_allowed(sb) < 0 || make_staging(sb) < 0 ? -1 : 0;
    if (r == 0)
        r = mount_fuse(sb, sock, "moat", sb->root, MS_NOSUID | MS_NODEV);
    /* a second connection for /dev/attestation, moved under /dev once that is mounted */
    if (r == 0)
        r = mount_fuse(sb, sock, "moat-dev", STAGING_ATTESTATION, MS_NOSUID | MS_NODEV | MS_NOEXEC);
    /* and a third for /dev/amber, when the manifest configures it */
    if (r == 0 && sb->amber)
        r = mount_fuse(sb, sock, "moat-amber", STAGING_AMBER, MS_NOSUID | MS_NODEV | MS_NOEXEC);
    if (r == 0 && (mount_plan_entries(sb) < 0 || set_uts_names(sb) < 0 ||
                   recv_userns(sb, sock) < 0 || bind_allowed(sb) < 0 || enter_root(sb) < 0 ||
                   apply_limits(sb) < 0 || become_app_identity(sb, sock) < 0))
        r = -1;
    if (r == 0)
        r = exec_init(sb, sock);
    (void)send_msg(sock, g_child_err);
    _exit(MOAT_EXIT_RUNTIME);
}

/* ---------------------------------------------------------------------------------------- */
/* The supervisor                                                                             */

/* The app's own seccomp rules (filter 3 of seccomp_filter.c). */
static struct seccomp_app app_rules(const struct sandbox* sb) {
    return (struct seccomp_app){sb->disallow_subprocesses, sb->mocks, sb->nmocks};
}

/* Makes the app's user namespace (as root) and writes moat-init's and the app's seccomp
 * profiles while the sandbox is set up, and sends them to the child. */
static void* profiler_main(void* arg) {
    struct sandbox* sb = arg;
    if (sb->privileged) { /* first: the child needs them before the profiles */
        struct moat_error err = {0};
        char msg[sizeof(err.msg) + 1];
        /* the app's (its loader.uid/gid are the host id) and the allowed binds' idmapping (the
         * host root's files are the app's: on-disk 0 is the host id) */
        if (confine_make_userns(sb->ns_uid, sb->ns_gid, SANDBOX_HOST_ID, &sb->userns_fd, &err) <
                0 ||
            confine_make_userns(0, 0, SANDBOX_HOST_ID, &sb->idmap_fd, &err) < 0) {
            snprintf(msg, sizeof(msg), "E%s", err.msg);
            (void)send_msg(sb->sock[0], msg);
        } else {
            (void)send_fd(sb->sock[0], sb->userns_fd);
            (void)send_fd(sb->sock[0], sb->idmap_fd);
        }
    }
    char *init = NULL, *app = NULL;
    size_t init_len = 0, app_len = 0;
    struct seccomp_app own = app_rules(sb);
    int r                  = seccomp_profile_build(NULL, &init, &init_len);
    if (r == 0 && (own.nmocks || own.disallow_subprocesses))
        r = seccomp_profile_build(&own, &app, &app_len);
    struct strbuf msg = STRBUF_INIT;
    if (r == 0) {
        uint32_t len = (uint32_t)init_len;
        strbuf_append(&msg, "P", 1);
        strbuf_append(&msg, (const char*)&len, sizeof(len));
        strbuf_append(&msg, init, init_len);
        if (app)
            strbuf_append(&msg, app, app_len);
        else
            strbuf_append(&msg, init, init_len);
    } else {
        strbuf_append(&msg, "X", 1);
    }
    (void)send(sb->sock[0], msg.buf, msg.len, MSG_NOSIGNAL);
    strbuf_free(&msg);
    free(init);
    free(app);
    return NULL;
}

static int map_ids(const struct sandbox* sb, pid_t pid, struct moat_error* err) {
    int r = confine_map_ids(pid, sb->ns_uid, sb->ns_gid, (unsigned)getuid(), (unsigned)getgid());
    if (r < 0)
        return moat_error_set(err, r, "cannot map user ids into the sandbox: %s", strerror(-r));
    return 0;
}

/* The manifest `moat run STEM` runs, as an absolute path (NULL when there is none). */
static char* manifest_path_of(const char* stem) {
    return identity_manifest_path(stem);
}

/* loader.log_file, appended to by moat (perhaps as root): never through a symlink the app
 * left in an allowed directory, and only a regular file. */
static int open_log_file(const struct file_policy* policy, const char* path,
                         struct moat_error* err) {
    _cleanup_hostpath_ struct hostpath* hp = hostpath_new(policy->allowed, policy->nallowed);
    _cleanup_close_ int fd =
        hostpath_open(hp, path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0600);
    struct stat st;
    if (fd == -ELOOP)
        return moat_error_set(err, fd,
                              "cannot open 'loader.log_file' %s: it is a symbolic link "
                              "or one is on its way (moat does not follow them)",
                              path);
    if (fd < 0)
        return moat_error_set_errno(err, fd, "cannot open 'loader.log_file' %s", path);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return moat_error_set(err, -EINVAL, "'loader.log_file' %s is not a regular file", path);
    if (fcntl(fd, F_SETFL, O_APPEND) < 0) /* blocking again */
        return moat_error_set_errno(err, -errno, "cannot open 'loader.log_file' %s", path);
    FILE* f = fdopen(fd, "a");
    if (!f)
        return moat_error_set_errno(err, -errno, "cannot open 'loader.log_file' %s", path);
    TAKE_FD(fd);
    setvbuf(f, NULL, _IOLBF, 0);
    log_set_file(f);
    return 0;
}

/* The app's identity (identity.h, docs/attestation.md): the manifest read (`text`, taken) is
 * what runs and what MRENCLAVE is over; the bytes are kept and hashed only when a report, quote
 * or sealing key needs them, or now to check STEM.sig against them. */
static int load_identity(struct sandbox* sb, const char* path, char** text, size_t len,
                         struct moat_error* err) {
    sb->measured     = TAKE_PTR(*text);
    sb->measured_len = len;
    if (identity_load(sb->opts->stem, path, sb->manifest, sb->measured, len, &sb->id,
                      &sb->mrenclave_set, err) < 0)
        return -1;
    sb->remote_dcap = sb->manifest->sgx.remote_attestation_dcap;
    return 0;
}

/* The sealing keys _sgx_mrenclave and _sgx_mrsigner, when an encrypted mount uses them. */
static int sealing_keys(struct sandbox* sb, struct moat_error* err) {
    return identity_sealing_keys(&sb->plan, sb->encfs, &sb->id, &sb->mrenclave_set, sb->measured,
                                 sb->measured_len, err);
}

static enum log_level log_level_of(enum manifest_log_level l) {
    switch (l) {
        case MANIFEST_LOG_NONE:
            return LOG_LEVEL_NONE;
        case MANIFEST_LOG_ERROR:
            return LOG_LEVEL_ERROR;
        case MANIFEST_LOG_WARNING:
            return LOG_LEVEL_WARNING;
        case MANIFEST_LOG_DEBUG:
            return LOG_LEVEL_DEBUG;
        case MANIFEST_LOG_TRACE:
        case MANIFEST_LOG_ALL:
            break;
    }
    return LOG_LEVEL_TRACE;
}

/* The manifest as the model (model.h): the same check `moat manifest check --finalized` runs,
 * so the two accept and refuse the same manifests. Errors are printed with their position;
 * warnings (Graphene-era keys read, ...) at loader.log_level warning and above. */
static int load_model(struct sandbox* sb, const char* path, const char* text, size_t len,
                      struct moat_error* err) {
    struct manifest_diags diags     = {0};
    struct manifest_load_opts lopts = {.runtime = true, .syscall_known = sandbox_syscall_known};
    int r = manifest_load(text, len, path, &lopts, &sb->manifest, &diags, err);
    if (r < 0) {
        manifest_diags_print(&diags, path, stderr);
    } else {
        log_set_level(log_level_of(sb->manifest->loader.log_level));
        for (size_t i = 0; i < diags.len; i++)
            log_warning("%s:%u: %s", path, diags.items[i].line, diags.items[i].msg);
    }
    manifest_diags_free(&diags);
    return r;
}

/* The encrypted mounts' keys: fs.insecure__keys, the names the mounts use, the sealing keys. */
static int load_keys(struct sandbox* sb, struct moat_error* err) {
    sb->encfs = encfs_new();
    encfs_load_keys(sb->encfs, sb->manifest);
    for (size_t i = 0; i < sb->plan.len; i++)
        if (sb->plan.items[i].type == MOUNT_ENCRYPTED)
            encfs_declare_key(sb->encfs,
                              sb->plan.items[i].key_name ? sb->plan.items[i].key_name : "default");
    return sealing_keys(sb, err);
}

/* /dev/amber's CA certificates (sgx.amber_cacerts): PEM text from the manifest, or a file that
 * must be one of the trusted files (schema.c) and is read here once, checked against its
 * measured hash, and kept: the host cannot swap it later. */
static int load_amber(struct sandbox* sb, struct moat_error* err) {
    const struct manifest* m = sb->manifest;
    const char* ca           = m->sgx.amber_cacerts;
    sb->amber                = true;
    if (!ca || !*ca)
        return 0;
    if (strncmp(ca, "file:", 5) != 0) {
        sb->amber_cacerts     = xstrdup(ca);
        sb->amber_cacerts_len = strlen(ca);
        return 0;
    }
    for (size_t i = 0; i < m->sgx.ntrusted; i++) {
        const struct manifest_trusted_file* t = &m->sgx.trusted_files[i];
        if (strcmp(t->uri.text, ca) != 0)
            continue;
        char* text = NULL;
        size_t len = 0;
        uint8_t h[32];
        if (read_file(t->uri.path, &text, &len, err) < 0)
            return moat_error_prefix(err, "sgx.amber_cacerts");
        if (sha256_buf(text, len, h) < 0 || !t->has_sha256 ||
            CRYPTO_memcmp(h, t->sha256, 32) != 0) {
            free(text);
            return moat_error_set(err, -EACCES,
                                  "sgx.amber_cacerts: %s does not match its hash in "
                                  "sgx.trusted_files (changed since the manifest was rendered)",
                                  ca);
        }
        sb->amber_cacerts     = text;
        sb->amber_cacerts_len = len;
        return 0;
    }
    return moat_error_set(err, -EINVAL, "sgx.amber_cacerts: %s is not one of sgx.trusted_files",
                          ca);
}

static int load(struct sandbox* sb, struct moat_error* err) {
    _cleanup_free_ char* path = NULL;
    _cleanup_free_ char* text = NULL;
    size_t len;
    /* STEM.manifest.sgx when there is one, else STEM.manifest: the bytes measured run */
    int ret = identity_read_manifest(sb->opts->stem, &path, &text, &len, err);
    if (ret < 0)
        return ret;
    if (load_model(sb, path, text, len, err) < 0)
        return -EINVAL;
    const struct manifest* m = sb->manifest;
    if (load_identity(sb, path, &text, len, err) < 0) /* after the log level: it may warn */
        return -1;

    struct strbuf warn = STRBUF_INIT;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return moat_error_set_errno(err, -errno, "getcwd");
    int r = sandbox_build_argv(m, sb->opts->argv, sb->opts->argc, &sb->argv, &warn, err);
    if (r == 0 && warn.len)
        log_error("%.*s", (int)warn.len - 1, warn.buf);
    strbuf_free(&warn);
    if (r == 0)
        r = sandbox_build_env(m, environ, &sb->env, err);
    if (r == 0)
        r = file_policy_load(m, &sb->policy, err);
    if (r == 0 && m->loader.log_file && m->loader.log_level != MANIFEST_LOG_NONE)
        r = open_log_file(&sb->policy, m->loader.log_file, err); /* maybe in an allowed dir */
    if (r == 0)
        r = mount_plan_load(m, cwd, &sb->plan, err);
    if (r == 0)
        r = load_keys(sb, err);
    if (r == 0 && sb->remote_dcap) /* quotes exist only then */
        r = attest_provider_open(NULL, NULL, &sb->provider, err);
    if (r == 0 && m->sgx.amber_configured)
        r = load_amber(sb, err);
    if (r < 0)
        return r;
    mount_plan_add_interpreter(&sb->plan);
    mount_plan_prefer_lib_interpreter(&sb->plan, &sb->policy); /* fs.root.uri = "file:/" */
    if (m->sys.enable_extra_runtime_domain_names_conf)
        mount_plan_add_domain_files(&sb->plan);
    if (sb->opts->learn)
        sb->policy.strict = false; /* every file is allowed and recorded */

    sb->ns_uid                = m->loader.uid;
    sb->ns_gid                = m->loader.gid;
    sb->fds_limit             = m->sys.fds_limit;
    sb->stack_set             = m->sys.has_stack_size;
    sb->stack_size            = m->sys.stack_size;
    sb->disallow_subprocesses = m->sys.disallow_subprocesses;
    sb->sigterm_injection     = m->sys.enable_sigterm_injection;
    if (seccomp_mocks_from(m, &sb->mocks, &sb->nmocks, err) < 0)
        return -EINVAL;
    for (size_t i = 0; i < sb->nmocks; i++)
        log_debug("mocking system call %s: returns %lld without running", sb->mocks[i].name,
                  (long long)sb->mocks[i].ret);

    if (sb->opts->emulate_sgx_limits) {
        sb->sgx_enclave_size = m->sgx.enclave_size;
        sb->sgx_max_threads  = m->sgx.max_threads;
        log_warning(
            "emulating SGX limits: %llu MiB of address space (sgx.enclave_size), %llu "
            "threads (sgx.max_threads)",
            (unsigned long long)(sb->sgx_enclave_size >> 20),
            (unsigned long long)sb->sgx_max_threads);
    }

    /* the kernel's procfs cannot get the directories a mount point below it needs; Gramine's
     * pseudo /proc makes them (docs/gramine-differences.md) */
    for (size_t i = 1; i < sb->plan.len; i++) {
        const char* p = sb->plan.items[i].path;
        if (!strncmp(p, "/proc/", 6) && sb->plan.items[i].type != MOUNT_PSEUDO)
            log_warning(
                "the mount at %s is not visible to the app: moat's /proc is the kernel's "
                "procfs, which cannot hold mount points (mount it elsewhere)",
                p);
    }
    /* every chroot source must exist before anything is mounted */
    for (size_t i = 0; i < sb->plan.len; i++) {
        const struct mount_entry* e = &sb->plan.items[i];
        struct stat st;
        if (e->type == MOUNT_CHROOT && stat(e->host, &st) < 0)
            return moat_error_set(err, -ENOENT, "Mounting \"file:%s\" (chroot) under %s failed: %s",
                                  e->host, e->path, strerror(errno));
    }
    return 0;
}

static void banner(const struct sandbox* sb) {
    const struct manifest* m = sb->manifest;
    const struct {
        const char* key;
        bool on;
    } insecure[] = {
        {"loader.insecure__use_cmdline_argv", m->loader.use_cmdline_argv},
        {"loader.insecure__use_host_env", m->loader.use_host_env},
        {"loader.insecure__disable_aslr", m->loader.disable_aslr},
        {"sys.insecure__allow_eventfd", m->sys.insecure_allow_eventfd},
        {"sys.experimental__enable_flock", m->sys.experimental_enable_flock},
    };
    struct strbuf sb2 = STRBUF_INIT;
    for (size_t i = 0; i < ARRAY_SIZE(insecure); i++)
        if (insecure[i].on)
            strbuf_printf(&sb2, "  - %s = true\n", insecure[i].key);
    if (!sb->policy.strict)
        strbuf_puts(&sb2, "  - sgx.file_check_policy = allow_all_but_log\n");
    if (sb->policy.nallowed)
        strbuf_puts(&sb2, "  - sgx.allowed_files = [ ... ]\n");
    if (m->fs.nkeys)
        strbuf_puts(&sb2, "  - fs.insecure__keys.* = \"...\"\n");
    if (sb2.len)
        fprintf(stderr,
                "moat: Gramine detected the following insecure configurations:\n\n%s\n"
                "moat: Use these options only for testing, never in production.\n",
                sb2.buf);
    strbuf_free(&sb2);
    if (sb->remote_dcap) /* the provider is said at start-up; a simulated one says so */
        fprintf(stderr, "moat: attestation provider: %s\n", attest_provider_describe(sb->provider));
}

/* Where the order in which the app opened its trusted files is kept between runs, so that the
 * next run verifies them ahead of use: $XDG_CACHE_HOME/moat/verify-order/<hash of the
 * manifest's path>. Only a hint: a file listed there is still verified against the manifest.
 * NULL when there is no usable cache directory. */
static char* order_file(const char* manifest_path) {
    const char* xdg  = getenv("XDG_CACHE_HOME");
    const char* home = getenv("HOME");
    bool use_xdg     = xdg && *xdg == '/';
    if (!manifest_path || (!use_xdg && !(home && *home == '/')))
        return NULL;
    _cleanup_free_ char* cache = use_xdg ? xstrdup(xdg) : xasprintf("%s/.cache", home);
    _cleanup_free_ char* base  = xasprintf("%s/moat", cache);
    _cleanup_free_ char* dir   = xasprintf("%s/verify-order", base);
    const char* dirs[]         = {cache, base, dir};
    for (size_t i = 0; i < 3; i++)
        if (mkdir(dirs[i], 0700) < 0 && errno != EEXIST)
            return NULL;
    /* a name, not a security property (the file is a hint): FNV-1a keeps OpenSSL's start-up
     * cost off this path */
    uint64_t h = 1469598103934665603ULL;
    for (const char* c = manifest_path; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return xasprintf("%s/%016llx", dir, (unsigned long long)h);
}

/* Keeps the order directory to its ORDER_FILES_MAX most recently used files (one per
 * manifest path ever run): the oldest go. */
#define ORDER_FILES_MAX 256

static void prune_order_files(const char* order_file) {
    _cleanup_free_ char* dir =
        xstrndup(order_file, (size_t)(strrchr(order_file, '/') - order_file));
    struct dirent** names = NULL;
    int n                 = scandir(dir, &names, NULL, NULL);
    if (n <= ORDER_FILES_MAX) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return;
    }
    struct aged {
        time_t mtime;
        char* path;
    }* files      = xcalloc((size_t)n, sizeof(*files));
    size_t nfiles = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        char* path = xasprintf("%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            files[nfiles++] = (struct aged){st.st_mtime, path};
        else
            free(path);
        free(names[i]);
    }
    free(names);
    for (size_t i = 1; i < nfiles; i++) /* newest first (insertion sort: runs rarely) */
        for (size_t j = i; j > 0 && files[j].mtime > files[j - 1].mtime; j--) {
            struct aged t = files[j];
            files[j]      = files[j - 1];
            files[j - 1]  = t;
        }
    for (size_t i = 0; i < nfiles; i++) {
        if (i >= ORDER_FILES_MAX)
            unlink(files[i].path);
        free(files[i].path);
    }
    free(files);
}

/* Receives the app's notification listener (sent before it executes the entrypoint) and
 * starts answering it. If the app's process failed first, the socket closes: no listener. */
static void start_notifier(struct sandbox* sb, const struct seccomp_app* own,
                           struct seccomp_notifier** ret) {
    char msg[64];
    int fd = recv_fd(sb->sock[0], msg, sizeof(msg));
    int r  = fd < 0 ? fd : seccomp_notifier_start(fd, own, ret);
    if (r < 0)
        log_error("cannot answer the app's mocked system calls: %s", strerror(-r));
}

static volatile sig_atomic_t g_child_pid;
static volatile sig_atomic_t g_forward_term;

static void on_term(int sig) {
    if (sig == SIGTERM && g_forward_term && g_child_pid > 0)
        kill(g_child_pid, SIGTERM);
}

int sandbox_run(const struct run_opts* opts) {
    struct sandbox sb     = {.opts      = opts,
                             .sock      = {-1, -1},
                             .userns_fd = -1,
                             .idmap_fd  = -1,
                             .init_fd   = -1,
                             .stdio     = {-1, -1, -1}};
    struct moat_error err = {0};
    /* moat run uses OpenSSL for hashes and GMAC only: the system's openssl.cnf (TLS policy,
     * providers) is not needed, and reading it costs about 1 ms before the first hash */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    /* the files the last run of this manifest opened are hashed on another core while the
     * sandbox is set up (from the clone on). Files up to 64 MiB are verified into a sealed copy
     * when passthrough can hand it to the kernel (root); else up to 1 MiB. */
    sb.manifest_path          = manifest_path_of(opts->stem);
    char* order               = opts->learn ? NULL : order_file(sb.manifest_path);
    struct verifier* ver      = verifier_new(geteuid() == 0 ? 64 << 20 : 1 << 20);
    int ret                   = load(&sb, &err);
    int status                = MOAT_EXIT_USAGE;
    struct fusefs* fs         = NULL;
    struct devfs* dev         = NULL;
    struct amberfs* amber     = NULL;
    struct stdio_proxy* stdio = NULL;
    bool served               = false;
    if (ret < 0) {
        log_error("%s", err.msg);
        /* gramine-direct exits 1 on every start-up failure; no manifest at all is a usage
         * error of moat run (STEM names nothing) */
        status = !sb.manifest && ret == -ENOENT ? MOAT_EXIT_USAGE : MOAT_EXIT_RUNTIME;
        goto out;
    }
    banner(&sb);
    log_debug("Host: Linux (moat sandbox: namespaces, FUSE, seccomp; no enclave)");
    status = MOAT_EXIT_RUNTIME;
    /* as root, the app's users are an unprivileged host identity (docs/security.md) */
    sb.privileged = geteuid() == 0;
    sb.app_uid    = sb.privileged ? SANDBOX_HOST_ID : (unsigned)getuid();
    sb.app_gid    = sb.privileged ? SANDBOX_HOST_ID : (unsigned)getgid();
    if (confine_open_init(&sb.init_fd, &err) < 0 ||
        stdio_proxy_prepare(sb.privileged, &stdio, sb.stdio, &err) < 0) {
        log_error("%s", err.msg);
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sb.sock) < 0) {
        log_error("cannot prepare the sandbox: %s", strerror(errno));
        goto out;
    }
    struct sigaction ign  = {.sa_handler = SIG_IGN};
    struct sigaction term = {.sa_handler = on_term};
    sigaction(SIGINT, &ign, NULL); /* the terminal's Ctrl-C reaches the app directly */
    sigaction(SIGTERM, &term, NULL);
    g_forward_term = sb.sigterm_injection;

    /* the child is a fork of this thread alone: no other thread may exist yet (one that is
     * running, or even just exiting, can hold a lock of glibc's or a sanitizer's that the
     * child would wait for forever), so the prefetcher and the FUSE workers start after it */
    /* as root, the child sets up as root in namespaces the app cannot unlock, then joins the
     * app's user namespace (confine.c); otherwise its own user namespace gives it the right */
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                          (sb.privileged ? 0 : CLONE_NEWUSER);
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) {
        log_error("cannot create the sandbox namespaces: %s%s", strerror(errno),
                  errno == EPERM || errno == ENOSPC
                      ? " (user namespaces are disabled: enable them with 'sysctl -w "
                        "kernel.unprivileged_userns_clone=1' or 'sysctl -w "
                        "user.max_user_namespaces=15000')"
                      : "");
        goto out;
    }
    if (pid == 0)
        child_main(&sb);
    g_child_pid = pid;
    close(sb.sock[1]);
    sb.sock[1] = -1;
    /* not as root: the child waits for its user namespace's map ("G") */
    if (!sb.privileged && (map_ids(&sb, pid, &err) < 0 || write(sb.sock[0], "G", 1) != 1)) {
        log_error("%s", err.msg[0] ? err.msg : "the sandbox child died");
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    /* after "G": the child reads the user namespace (as root) and the profiles later on */
    sb.profiler_started = pthread_create(&sb.profiler, NULL, profiler_main, &sb) == 0;
    stdio_proxy_start(stdio);
    /* while the child sets up: verify ahead, and have the FUSE workers ready for its first
     * request */
    verifier_use_cache(ver, !opts->no_verify_cache && sb.manifest->moat.verify_cache);
    verifier_prefetch(ver, order);
    verifier_set_policy(ver, &sb.policy);
    fs = fusefs_new(&sb.plan, &sb.policy, ver, &err);
    if (!fs) {
        log_error("%s", err.msg);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    fusefs_set_learn(fs, opts->learn != NULL);
    /* in the FUSE connections' user namespace: the host's as root, else the app's own */
    fusefs_set_owner(fs, mount_uid(&sb), mount_gid(&sb), !sb.privileged);
    fusefs_set_encfs(fs, sb.encfs);
    dev = devfs_new(sb.encfs, sb.provider, &sb.id, sb.mrenclave_set, sb.measured, sb.measured_len,
                    sb.remote_dcap, &err);
    if (!dev) {
        log_error("%s", err.msg);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        goto out;
    }
    devfs_set_sandbox(dev, pid);
    devfs_set_owner(dev, mount_uid(&sb), mount_gid(&sb));
    if (sb.amber) {
        const struct manifest* m     = sb.manifest;
        struct amberfs_config config = {.url             = m->sgx.amber_url,
                                        .ip              = m->sgx.amber_ip,
                                        .apikey          = m->sgx.amber_apikey,
                                        .userdata        = m->sgx.amber_userdata,
                                        .kbs_url         = m->sgx.kbs_url,
                                        .kbs_ip          = m->sgx.kbs_ip,
                                        .kbs_keyid       = m->sgx.kbs_keyid,
                                        .cacerts_pem     = sb.amber_cacerts,
                                        .cacerts_pem_len = sb.amber_cacerts_len};
        amber                        = amberfs_new(dev, &config, &err);
        if (!amber) {
            log_error("%s", err.msg);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            goto out;
        }
        amberfs_set_owner(amber, mount_uid(&sb), mount_gid(&sb));
    }
    char msg[1024] = {0};
    int fuse_fd    = recv_fd(sb.sock[0], msg, sizeof(msg));
    served         = fuse_fd >= 0 && fusefs_start(fs, fuse_fd, &err) == 0;
    if (fuse_fd >= 0 && !served) {
        log_error("%s", err.msg);
        kill(pid, SIGKILL);
    }
    if (served) {
        int dev_fd = recv_fd(sb.sock[0], msg, sizeof(msg));
        if (dev_fd >= 0 && devfs_start(dev, dev_fd, &err) < 0) {
            log_error("%s", err.msg);
            kill(pid, SIGKILL);
        }
        fuse_fd = dev_fd; /* < 0: the child's error is in msg */
        if (amber && dev_fd >= 0) {
            int amber_fd = recv_fd(sb.sock[0], msg, sizeof(msg));
            if (amber_fd >= 0 && amberfs_start(amber, amber_fd, &err) < 0) {
                log_error("%s", err.msg);
                kill(pid, SIGKILL);
            }
            fuse_fd = amber_fd;
        }
    }
    /* the child reports "S" once the app is about to start, or "E<message>" */
    ssize_t n = msg[0] == 'E' ? (ssize_t)strlen(msg) : 0;
    if (fuse_fd >= 0) {
        memset(msg, 0, sizeof(msg));
        struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg) - 1};
        n = recvmsg_after_reset(sb.sock[0], &(struct msghdr){.msg_iov = &iov, .msg_iovlen = 1}, 0);
    }
    if (n > 0 && msg[0] == 'E')
        log_error("%s", msg + 1);
    else if (n > 0 && msg[0] == 'S') /* Gramine's debug line, which users grep for */
        log_debug("LibOS initialized");
    struct seccomp_app own            = app_rules(&sb);
    struct seccomp_notifier* notifier = NULL;
    if (n > 0 && msg[0] == 'S' && seccomp_app_needs_listener(&own))
        start_notifier(&sb, &own, &notifier);
    /* everything needed is derived: the manifest's model goes while the app runs */
    manifest_free(sb.manifest);
    sb.manifest = NULL;
    malloc_trim(0);
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    seccomp_notifier_stop(notifier); /* the sandbox is gone */
    if (n > 0 && msg[0] == 'E')
        status = MOAT_EXIT_RUNTIME;
    stdio_proxy_finish(stdio); /* the app's last output is copied */
    stdio = NULL;
out:
    stdio_proxy_finish(stdio);
    if (sb.profiler_started)
        pthread_join(sb.profiler, NULL);
    /* the sandbox's mount namespace is gone with its last process: the connection closes */
    fusefs_stop(fs);
    fusefs_wait(fs);
    devfs_wait(dev);
    amberfs_wait(amber);
    if (served && opts->learn) {
        if (fusefs_write_learned(fs, opts->learn, &err) < 0)
            log_error("%s", err.msg);
        else
            fprintf(stderr, "moat: wrote the files the app used to %s\n", opts->learn);
    }
    fusefs_free(fs);
    amberfs_free(amber); /* before the devfs its quotes come from */
    devfs_free(dev);
    verifier_stop(ver);
    if (order && served && verifier_save_order(ver, order, &err) < 0)
        log_debug("cannot keep the order of trusted files: %s", err.msg);
    else if (order && served)
        prune_order_files(order);
    verifier_free(ver);
    free(order);
    free(sb.manifest_path);
    free(sb.amber_cacerts);
    if (sb.userns_fd >= 0)
        close(sb.userns_fd);
    if (sb.idmap_fd >= 0)
        close(sb.idmap_fd);
    if (sb.init_fd >= 0)
        close(sb.init_fd);
    if (sb.sock[0] >= 0)
        close(sb.sock[0]);
    if (sb.sock[1] >= 0)
        close(sb.sock[1]);
    strv_free(&sb.argv);
    strv_free(&sb.env);
    file_policy_free(&sb.policy);
    encfs_free(sb.encfs);
    attest_provider_free(sb.provider);
    free(sb.measured);
    mount_plan_free(&sb.plan);
    seccomp_mocks_free(sb.mocks, sb.nmocks);
    manifest_free(sb.manifest);
    return status;
}

int sandbox_print_seccomp(FILE* out, const char* stem) {
    if (!stem) {
        seccomp_profile_print(out, NULL);
        return 0;
    }
    struct run_opts opts      = {.stem = stem};
    struct sandbox sb         = {.opts = &opts};
    struct moat_error err     = {0};
    _cleanup_free_ char* path = NULL;
    _cleanup_free_ char* text = NULL;
    size_t len;
    int r = identity_read_manifest(stem, &path, &text, &len, &err);
    if (r == 0)
        r = load_model(&sb, path, text, len, &err);
    if (r == 0) {
        sb.disallow_subprocesses = sb.manifest->sys.disallow_subprocesses;
        r                        = seccomp_mocks_from(sb.manifest, &sb.mocks, &sb.nmocks, &err);
    }
    if (r == 0) {
        struct seccomp_app own = app_rules(&sb);
        seccomp_profile_print(out, &own);
    } else {
        log_error("%s", err.msg);
    }
    seccomp_mocks_free(sb.mocks, sb.nmocks);
    manifest_free(sb.manifest);
    return r;
}
