/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host paths resolved inside their mount, never through symlinks the app planted (hostpath.h;
 * STYLE.md rule 14; crun's safe_openat is the model).
 *
 * Which parts of a host path are the app's? Exactly the host directories it can write
 * natively: the sgx.allowed_files entries (bind-mounted writable into the sandbox, or writable
 * through the FUSE view) and everything below them. An allowed entry's last component is the
 * app's too: through the view it may rename one allowed name over another (RENAME_EXCHANGE of
 * two allowed directories, or a symlink renamed onto an allowed file's name). Everything else
 * the view shows is read-only to the app under "strict": the app cannot create a symlink there
 * (the view has no SYMLINK operation and no LINK operation, and a rename needs both names
 * allowed); under "allow_all_but_log" the view refuses to move a symlink or a directory out of
 * an allowed entry (fusefs_files.c) for the same reason. So:
 *
 *   - for a host path P, take the OUTERMOST allowed entry W that is a component-wise prefix of
 *     P (outermost: an inner entry is app-controlled anyway, and its parent is the app's);
 *   - open W's parent normally (O_PATH | O_DIRECTORY; the administrator made it, and Debian's
 *     /var/run -> /run style links in it must keep working), once, and keep the fd;
 *   - resolve the rest, W's own name included, beneath that fd with openat2(2)
 *     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, and O_NOFOLLOW so that a
 *     symlink in the last place is an error, or with O_PATH the symlink itself (which the view
 *     then presents as a symlink, resolved by the sandbox's kernel inside the sandbox);
 *   - a path below no allowed entry resolves as the kernel resolves it: host symlinks in
 *     read-only content (/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/..., /var/run ->
 *     /run) are the administrator's, and Gramine follows them.
 *
 * Allowed entries are matched as strings, as Gramine matches them (reference/gramine.md §6):
 * a path that reaches an allowed directory through an administrator's symlink in its parent
 * (/var/run/app for an allowed /run/app) is caught by also listing each entry under its
 * parent's real path. A host path that enters an allowed directory through some other alias (a
 * symlink elsewhere that points into it, a second bind mount of it on the host) is not matched;
 * the FUSE view refuses to enter an allowed directory by such a path (it compares the device
 * and inode of each directory it looks up with the allowed ones: hostpath_is_allowed_dir).
 * Name allowed directories and the mounts that show them by their real paths (docs/run.md).
 */
#include <fcntl.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostpath.h"

struct allowed_entry {
    char* path;    /* normalized, absolute */
    size_t len;    /* strlen(path) */
    char* parent;  /* its directory: the administrator's */
    int parent_fd; /* -1 until first used; then kept (under the lock) */
    bool is_dir;   /* a directory when the resolver was made: dev, ino identify it */
    dev_t dev;
    ino_t ino;
};

struct hostpath {
    pthread_mutex_t lock;
    struct allowed_entry* items;
    size_t len, cap;
};

/* What openat2(2) accepts (it refuses unknown bits, where open(2) ignores them; FUSE passes
 * the app's open flags, which may carry the kernel's O_LARGEFILE). */
#define OPEN_FLAGS_VALID                                                                         \
    (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DSYNC |       \
     O_SYNC | O_DIRECT | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | O_TMPFILE | \
     FASYNC)
#define RESOLVE_APP (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

static void add_entry(struct hostpath* hp, const char* path) {
    for (size_t i = 0; i < hp->len; i++)
        if (!strcmp(hp->items[i].path, path))
            return;
    _cleanup_free_ char* copy = xstrdup(path);
    hp->items                 = xgrow(hp->items, &hp->cap, hp->len + 1, sizeof(*hp->items));
    hp->items[hp->len++]      = (struct allowed_entry){
             .path      = xstrdup(path),
             .len       = strlen(path),
             .parent    = xstrdup(dirname(copy)),
             .parent_fd = -1,
    };
}

struct hostpath* hostpath_new(char* const* allowed, size_t nallowed) {
    struct hostpath* hp = xcalloc(1, sizeof(*hp));
    pthread_mutex_init(&hp->lock, NULL);
    for (size_t i = 0; i < nallowed; i++) {
        if (allowed[i][0] != '/')
            continue; /* the policy makes every entry absolute */
        add_entry(hp, allowed[i]);
        /* the same directory under its parent's real path (an administrator's symlink on the
         * way to it): the app's symlinks are the app's whichever way the view reaches them */
        size_t n                  = hp->len;
        _cleanup_free_ char* real = realpath(hp->items[n - 1].parent, NULL);
        if (real && strcmp(real, hp->items[n - 1].parent) && strcmp(allowed[i], "/")) {
            _cleanup_free_ char* copy  = xstrdup(allowed[i]);
            _cleanup_free_ char* alias = path_join(real, basename(copy));
            add_entry(hp, alias);
        }
    }
    for (size_t i = 0; i < hp->len; i++) {
        struct stat st;
        struct allowed_entry* w = &hp->items[i];
        if (lstat(w->path, &st) == 0 && S_ISDIR(st.st_mode)) {
            w->is_dir = true;
            w->dev    = st.st_dev;
            w->ino    = st.st_ino;
        }
    }
    return hp;
}

void hostpath_free(struct hostpath* hp) {
    if (!hp)
        return;
    for (size_t i = 0; i < hp->len; i++) {
        free(hp->items[i].path);
        free(hp->items[i].parent);
        if (hp->items[i].parent_fd >= 0)
            close(hp->items[i].parent_fd);
    }
    free(hp->items);
    pthread_mutex_destroy(&hp->lock);
    free(hp);
}

/* `path` made absolute (against the current directory) and normalized. */
static char* absolute(const char* path) {
    if (path[0] == '/')
        return path_normalize(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return path_normalize(path);
    _cleanup_free_ char* joined = path_join(cwd, path);
    return path_normalize(joined);
}

/* The outermost allowed entry at or above `abs`, or NULL. */
static struct allowed_entry* outermost(const struct hostpath* hp, const char* abs) {
    struct allowed_entry* best = NULL;
    for (size_t i = 0; hp && i < hp->len; i++) {
        struct allowed_entry* w = &hp->items[i];
        bool under              = !strcmp(w->path, "/") || (!strncmp(abs, w->path, w->len) &&
                                               (abs[w->len] == '\0' || abs[w->len] == '/'));
        if (under && (!best || w->len < best->len))
            best = w;
    }
    return best;
}

bool hostpath_app_controlled(const struct hostpath* hp, const char* path) {
    _cleanup_free_ char* abs = absolute(path);
    return outermost(hp, abs) != NULL;
}

bool hostpath_is_allowed_dir(const struct hostpath* hp, const struct stat* st) {
    for (size_t i = 0; hp && S_ISDIR(st->st_mode) && i < hp->len; i++)
        if (hp->items[i].is_dir && hp->items[i].dev == st->st_dev && hp->items[i].ino == st->st_ino)
            return true;
    return false;
}

/* The kept fd of w's parent directory (not to be closed by the caller), or -errno. */
static int parent_fd(struct hostpath* hp, struct allowed_entry* w) {
    pthread_mutex_lock(&hp->lock);
    if (w->parent_fd < 0)
        w->parent_fd = open(w->parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = w->parent_fd >= 0 ? w->parent_fd : -errno;
    pthread_mutex_unlock(&hp->lock);
    return fd;
}

/* openat2 beneath w's parent: `abs` is at or below w. */
static int open_beneath(struct hostpath* hp, struct allowed_entry* w, const char* abs, int flags,
                        mode_t mode) {
    int base = parent_fd(hp, w);
    if (base < 0)
        return base;
    const char* rest    = !strcmp(w->path, "/")     ? abs + 1
                          : !strcmp(w->parent, "/") ? abs + 1
                                                    : abs + strlen(w->parent) + 1;
    struct open_how how = {
        .flags   = (uint64_t)((flags & OPEN_FLAGS_VALID) | O_NOFOLLOW | O_CLOEXEC),
        .mode    = (flags & (O_CREAT | O_TMPFILE)) ? (mode & 07777) : 0,
        .resolve = RESOLVE_APP,
    };
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, base, *rest ? rest : ".", &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        /* EAGAIN: a rename raced with the walk; the kernel asks for a retry */
        if (errno != EAGAIN || tries == 16)
            return -errno;
    }
}

int hostpath_open(struct hostpath* hp, const char* path, int flags, mode_t mode) {
    _cleanup_free_ char* abs = absolute(path);
    struct allowed_entry* w  = outermost(hp, abs);
    if (w)
        return open_beneath(hp, w, abs, flags, mode);
    int fd = open(abs, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

int hostpath_stat(struct hostpath* hp, const char* path, struct stat* ret) {
    _cleanup_free_ char* abs = absolute(path);
    struct allowed_entry* w  = outermost(hp, abs);
    if (!w)
        return stat(abs, ret) < 0 ? -errno : 0;
    _cleanup_close_ int fd = open_beneath(hp, w, abs, O_PATH, 0);
    if (fd < 0)
        return fd;
    return fstat(fd, ret) < 0 ? -errno : 0;
}

int hostpath_readlink(struct hostpath* hp, const char* path, char** ret) {
    _cleanup_free_ char* abs = absolute(path);
    struct allowed_entry* w  = outermost(hp, abs);
    if (!w)
        return -EINVAL;
    _cleanup_close_ int fd = open_beneath(hp, w, abs, O_PATH, 0);
    struct stat st;
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISLNK(st.st_mode))
        return -EINVAL;
    char buf[4097];
    ssize_t n = readlinkat(fd, "", buf, sizeof(buf));
    if (n < 0)
        return -errno;
    if ((size_t)n >= sizeof(buf))
        return -ENAMETOOLONG;
    *ret = xstrndup(buf, (size_t)n);
    return 0;
}

int hostpath_open_parent(struct hostpath* hp, const char* path, char** ret_name) {
    _cleanup_free_ char* abs = absolute(path);
    if (!strcmp(abs, "/"))
        return -EINVAL; /* the root has no name to create or remove */
    char* slash              = strrchr(abs, '/');
    _cleanup_free_ char* nm  = xstrdup(slash + 1);
    _cleanup_free_ char* dir = slash == abs ? xstrdup("/") : xstrndup(abs, (size_t)(slash - abs));
    struct allowed_entry* w  = outermost(hp, abs);
    int fd;
    if (w && !strcmp(abs, w->path)) { /* an allowed entry's own name: its parent is not the app's */
        int base = parent_fd(hp, w);
        fd       = base < 0 ? base : fcntl(base, F_DUPFD_CLOEXEC, 3);
        if (base >= 0 && fd < 0)
            fd = -errno;
    } else if (w) {
        fd = open_beneath(hp, w, dir, O_PATH | O_DIRECTORY, 0);
    } else {
        fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            fd = -errno;
    }
    if (fd >= 0)
        *ret_name = TAKE_PTR(nm);
    return fd;
}

int hostpath_mkdir(struct hostpath* hp, const char* path, mode_t mode) {
    _cleanup_free_ char* name = NULL;
    _cleanup_close_ int dfd   = hostpath_open_parent(hp, path, &name);
    if (dfd < 0)
        return dfd;
    return mkdirat(dfd, name, mode) < 0 ? -errno : 0;
}

int hostpath_unlink(struct hostpath* hp, const char* path, int flags) {
    _cleanup_free_ char* name = NULL;
    _cleanup_close_ int dfd   = hostpath_open_parent(hp, path, &name);
    if (dfd < 0)
        return dfd;
    return unlinkat(dfd, name, flags) < 0 ? -errno : 0;
}

int hostpath_rename(struct hostpath* hp, const char* from, const char* to, unsigned flags) {
    _cleanup_free_ char *from_name = NULL, *to_name = NULL;
    _cleanup_close_ int from_dfd = hostpath_open_parent(hp, from, &from_name);
    if (from_dfd < 0)
        return from_dfd;
    _cleanup_close_ int to_dfd = hostpath_open_parent(hp, to, &to_name);
    if (to_dfd < 0)
        return to_dfd;
    return renameat2(from_dfd, from_name, to_dfd, to_name, flags) < 0 ? -errno : 0;
}

int hostpath_chmod(struct hostpath* hp, const char* path, mode_t mode) {
    _cleanup_close_ int fd = hostpath_open(hp, path, O_PATH, 0);
    struct stat st;
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISLNK(st.st_mode))
        return -ELOOP;
    /* the file this fd holds, not a path resolved again (chmod has no AT_EMPTY_PATH before
     * fchmodat2) */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return chmod(proc, mode) < 0 ? -errno : 0;
}

int hostpath_truncate(struct hostpath* hp, const char* path, off_t size) {
    /* O_NONBLOCK: a FIFO the app planted must not hold a FUSE worker */
    _cleanup_close_ int fd = hostpath_open(hp, path, O_WRONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return fd;
    return ftruncate(fd, size) < 0 ? -errno : 0;
}

/* Creates a fresh temporary file in dfd for `name`; *ret_tmp gets its name. */
static int create_temp(int dfd, const char* name, char** ret_tmp) {
    for (int tries = 0; tries < 32; tries++) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
            rnd = time_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)tries;
        char* tmp = xasprintf(".%s.%016llx.tmp", name, (unsigned long long)rnd);
        int fd    = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *ret_tmp = tmp;
            return fd;
        }
        int e = errno;
        free(tmp);
        if (e != EEXIST)
            return -e;
    }
    return -EEXIST;
}

int hostpath_write_atomic(struct hostpath* hp, const char* path, const void* buf, size_t len,
                          mode_t mode, bool sync, struct moat_error* err) {
    if (!strcmp(path, "-"))
        return write_file_atomic(path, buf, len, mode, err); /* standard output */
    _cleanup_free_ char* name = NULL;
    _cleanup_close_ int pfd   = hostpath_open_parent(hp, path, &name);
    if (pfd < 0)
        return moat_error_set_errno(err, pfd, "cannot open the directory of '%s'", path);
    /* a directory fd that can be written into and synced (pfd is O_PATH) */
    _cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return moat_error_set_errno(err, -errno, "cannot open the directory of '%s'", path);
    _cleanup_free_ char* tmp = NULL;
    _cleanup_close_ int fd   = create_temp(dfd, name, &tmp);
    if (fd < 0)
        return moat_error_set_errno(err, fd, "cannot create a temporary file next to '%s'", path);
    int r = write_all(fd, buf, len);
    if (r == 0 && fchmod(fd, mode) < 0)
        r = -errno;
    if (r == 0 && sync && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && close(TAKE_FD(fd)) < 0)
        r = -errno;
    if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
        r = -errno;
    if (r < 0) {
        (void)unlinkat(dfd, tmp, 0);
        return moat_error_set_errno(err, r, "cannot write '%s'", path);
    }
    if (sync && fsync(dfd) < 0 && errno != EINVAL)
        return moat_error_set_errno(err, -errno, "cannot sync the directory of '%s'", path);
    return 0;
}
