/* SPDX-License-Identifier: Apache-2.0 */
/* The verify cache: see vcache.h. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "vcache.h"

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

struct vcache {
    int dir; /* .../moat/verified */
};

/* One entry: fixed size, checked whole (a torn or corrupted file is not an entry). */
struct vcache_record {
    char magic[8]; /* "moatvc1" */
    struct vcache_key key;
    uint8_t digest[32];
    uint8_t check[32]; /* SHA-256 of everything before it */
};
static const char g_magic[8] = "moatvc1";

/* Local file systems whose inode metadata the kernel of this machine maintains: a FUSE server,
 * an NFS/CIFS/9p server or anything on the other side of a network could present unchanged
 * metadata over changed bytes. */
static const unsigned long g_local_fs[] = {
    EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC, TMPFS_MAGIC, OVERLAYFS_SUPER_MAGIC,
};

/* Opens `name` beneath `at` as a directory private to this user, creating it mode 0700. */
static int private_dir(int at, const char* name, struct moat_error* err) {
    if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
        return moat_error_set_errno(err, -errno, "cannot create '%s'", name);
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = -errno;
        if (fd >= 0)
            close(fd);
        return moat_error_set_errno(err, e, "cannot open '%s'", name);
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077)) {
        close(fd);
        return moat_error_set(err, -EPERM,
                              "'%s' is not private to this user (owner %u, mode %04o; expected "
                              "owner %u, mode 0700)",
                              name, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
                              (unsigned)geteuid());
    }
    return fd;
}

struct vcache* vcache_open(struct moat_error* err) {
    const char* xdg  = getenv("XDG_RUNTIME_DIR");
    const char* base = xdg && xdg[0] == '/' ? xdg
                       : geteuid() == 0     ? "/run"
                                            : NULL; /* never the cache dir */
    if (!base) {
        moat_error_set(err, -ENOENT, "$XDG_RUNTIME_DIR is not set");
        return NULL;
    }
    int root = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        moat_error_set_errno(err, -errno, "cannot open '%s'", base);
        return NULL;
    }
    int moat = private_dir(root, "moat", err);
    close(root);
    if (moat < 0) {
        moat_error_prefix(err, "%s: ", base);
        return NULL;
    }
    int dir = private_dir(moat, "verified", err);
    close(moat);
    if (dir < 0) {
        moat_error_prefix(err, "%s/moat: ", base);
        return NULL;
    }
    struct vcache* c = xcalloc(1, sizeof(*c));
    c->dir           = dir;
    return c;
}

void vcache_free(struct vcache* c) {
    if (!c)
        return;
    close(c->dir);
    free(c);
}

int vcache_key_of(int fd, struct vcache_key* ret, const char** ret_why) {
    struct statfs sf;
    struct statx sx;
    if (fstatfs(fd, &sf) < 0) {
        *ret_why = "its file system cannot be identified";
        return -1;
    }
    bool local = false;
    for (size_t i = 0; i < sizeof(g_local_fs) / sizeof(g_local_fs[0]); i++)
        local |= (unsigned long)sf.f_type == g_local_fs[i];
    if (!local) {
        *ret_why = "not on a local file system (only ext4, xfs, btrfs, tmpfs, overlayfs)";
        return -1;
    }
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &sx) <
            0 ||
        (sx.stx_mask & (STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME)) !=
            (STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME)) {
        *ret_why = "statx does not give its identity";
        return -1;
    }
    /* the generation tells a reused inode number apart (ext4, xfs, btrfs); where there is none
     * (tmpfs), the birth time and ctime of a new inode are those of its creation */
    int generation = 0;
    if (ioctl(fd, FS_IOC_GETVERSION, &generation) < 0)
        generation = 0;
    *ret = (struct vcache_key){
        .fstype     = (uint64_t)sf.f_type,
        .dev_major  = sx.stx_dev_major,
        .dev_minor  = sx.stx_dev_minor,
        .ino        = sx.stx_ino,
        .generation = (uint32_t)generation,
        .size       = sx.stx_size,
        .mtime_s    = sx.stx_mtime.tv_sec,
        .mtime_ns   = sx.stx_mtime.tv_nsec,
        .ctime_s    = sx.stx_ctime.tv_sec,
        .ctime_ns   = sx.stx_ctime.tv_nsec,
        .btime_s    = sx.stx_mask & STATX_BTIME ? sx.stx_btime.tv_sec : 0,
        .btime_ns   = sx.stx_mask & STATX_BTIME ? sx.stx_btime.tv_nsec : 0,
    };
    return 0;
}

bool vcache_settled(int fd, const struct vcache_key* k, const char** why) {
    /* ctime is set from the kernel's coarse clock: a write in the same tick as the last change
     * could leave it as it is. Once it is a second old, any later change sets a new one (the
     * realtime clock can only be turned back by root, whom the threat model trusts). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (k->ctime_s + 1 >= now.tv_sec) {
        *why = "changed less than 2 s ago";
        return false;
    }
    /* a write through a shared writable mapping touches ctime only at the first write fault
     * after writeback; so: nobody may have the file open for writing now. A read lease is
     * refused (EAGAIN) exactly then; it needs CAP_LEASE or the file's ownership. Without
     * it (an ordinary user's run over files of root's), nothing tells that no writer holds a
     * dirty shared mapping that could change the bytes after the hash without a new ctime:
     * no verdict is stored then. SIGIO is ignored by the caller: a writer opening it in
     * between breaks the lease at once */
    if (fcntl(fd, F_SETLEASE, F_RDLCK) < 0) {
        *why = errno == EAGAIN || errno == EBUSY
                   ? "open for writing by another process"
                   : "no read lease to tell that nobody writes it (moat is not root and does "
                     "not own the file)";
        return false;
    }
    if (fcntl(fd, F_SETLEASE, F_UNLCK) < 0) {
        *why = "its lease could not be released";
        return false;
    }
    return true;
}

static void record_check(const struct vcache_record* r, uint8_t out[32]) {
    if (sha256_buf(r, offsetof(struct vcache_record, check), out) < 0)
        memset(out, 0, 32);
}

static void entry_name(const struct vcache_key* k, char name[80]) {
    snprintf(name, 80, "%" PRIx64 ".%" PRIx64 ".%" PRIx64, k->dev_major, k->dev_minor, k->ino);
}

bool vcache_lookup(struct vcache* c, const struct vcache_key* k, uint8_t digest[32],
                   const char** why) {
    char name[80];
    entry_name(k, name);
    int fd = openat(c->dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = "not in the verify cache";
        return false;
    }
    struct vcache_record r;
    struct stat st;
    uint8_t check[32];
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
              st.st_size == (off_t)sizeof(r) && read_full(fd, &r, sizeof(r)) == (ssize_t)sizeof(r);
    close(fd);
    if (ok) {
        record_check(&r, check);
        ok = !memcmp(r.magic, g_magic, sizeof(g_magic)) &&
             CRYPTO_memcmp(check, r.check, sizeof(check)) == 0;
    }
    if (!ok) {
        *why = "its verify cache entry is corrupt or not this user's";
        return false;
    }
    if (memcmp(&r.key, k, sizeof(*k))) {
        *why = "changed since it was verified (or its inode was reused)";
        return false;
    }
    memcpy(digest, r.digest, 32);
    return true;
}

void vcache_store(struct vcache* c, const struct vcache_key* k, const uint8_t digest[32]) {
    struct vcache_record r = {0};
    memcpy(r.magic, g_magic, sizeof(g_magic));
    r.key = *k;
    memcpy(r.digest, digest, 32);
    record_check(&r, r.check);
    char name[80], tmp[128];
    entry_name(k, name);
    static uint64_t seq;
    snprintf(tmp, sizeof(tmp), ".%s.%d.%" PRIu64, name, (int)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    int fd = openat(c->dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    /* a rename replaces the entry whole: a reader sees the old one or the new one */
    int w = write_all(fd, &r, sizeof(r));
    close(fd);
    if (w < 0 || renameat(c->dir, tmp, c->dir, name) < 0)
        unlinkat(c->dir, tmp, 0);
}
