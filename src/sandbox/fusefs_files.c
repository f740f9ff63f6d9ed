/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The file half of the app's FUSE view (see fusefs.c and fusefs_internal.h): opening trusted
 * files (verified, served from their sealed copy or by passthrough), allowed and unlisted
 * files under the file-check policy, encrypted files (encfs.c, one shared state per file),
 * reading, writing, creating, truncating, renaming (nodes follow: the kernel keeps the inode)
 * and removing names, following Gramine's rules (reference/gramine.md §6). Every host path is
 * opened, created, renamed or removed through hostpath.c: below an allowed directory nothing
 * is followed through a symlink the app planted.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "encfs.h"
#include "fusefs_internal.h"
#include "verify.h"

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                      */

/* The shared open state of an encrypted file: opened (or created) by the first open, closed
 * (flushed) by the last release. Called with nothing locked. */
static int enc_acquire(struct fusefs* fs, struct node* n, bool create, bool write, bool trunc) {
    pthread_mutex_lock(&n->enc_lock);
    /* read once: a rename may move the node out of the encrypted mount meanwhile */
    const struct mount_entry* enc = __atomic_load_n(&n->enc, __ATOMIC_ACQUIRE);
    int r                         = enc ? 0 : -EACCES;
    if (r == 0 && !n->ef)
        r = encfile_open(fs->encfs, enc, n->host_path, n->bind, create, &n->ef);
    if (r == 0 && write && !encfile_writable(n->ef))
        r = -EACCES;
    if (r == 0 && trunc)
        r = encfile_set_size(n->ef, 0);
    if (r == 0)
        n->ef_refs++;
    else if (n->ef && !n->ef_refs) {
        (void)encfile_close(n->ef);
        n->ef = NULL;
    }
    pthread_mutex_unlock(&n->enc_lock);
    return r;
}

static void enc_release(struct fusefs* fs, struct node* n) {
    pthread_mutex_lock(&n->enc_lock);
    bool closed = false;
    if (n->ef_refs && --n->ef_refs == 0) {
        (void)encfile_close(n->ef); /* a failed flush is logged; the app has closed the file */
        n->ef  = NULL;
        closed = true;
    }
    pthread_mutex_unlock(&n->enc_lock);
    if (closed) /* its lookups may all have been forgotten while it was open */
        fs_node_closed(fs, n);
}

static bool wants_write(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND));
}

/* The reply to an OPEN that asks the kernel to serve the file from a registered backing file:
 * libfuse 3.14 cannot say so, so the reply is amended on its way out (io_writev). */
_Thread_local int32_t tls_backing_id;

static void reply_open_passthrough(fuse_req_t req, struct fuse_file_info* fi, int32_t id) {
    fi->keep_cache = 0;
    tls_backing_id = id;
    fuse_reply_open(req, fi);
    tls_backing_id = 0;
}

/* Opens a host file that must be a regular file: what the stat before said may have changed
 * (the app can put a FIFO in an allowed directory; O_NONBLOCK keeps it from holding a
 * worker). Returns the fd, with the app's own O_NONBLOCK, or -errno. */
static int open_regular(struct fusefs* fs, const char* host, int flags) {
    int fd = hostpath_open(fs->hp, host, flags | O_NONBLOCK, 0);
    struct stat st;
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EACCES;
    }
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    fs_account(fs, ST_OPEN, time_now_ns());
    struct node* n = fs_node_get(fs, ino);
    if (!n || !n->host_path) {
        fuse_reply_err(req, n ? EISDIR : ENOENT);
        return;
    }
    struct stat st;
    if (hostpath_stat(fs->hp, n->host_path, &st) < 0 || !S_ISREG(st.st_mode)) {
        fuse_reply_err(req, EACCES); /* FIFOs and devices need sgx.allowed_files + a bind */
        return;
    }
    if (n->enc) {
        int r = enc_acquire(fs, n, false, wants_write(fi->flags), (fi->flags & O_TRUNC) != 0);
        if (r < 0) {
            fuse_reply_err(req, -r);
            return;
        }
        fs_learn(fs, n->host_path, wants_write(fi->flags));
        fi->fh = (uint64_t)-1;
        fuse_reply_open(req, fi);
        return;
    }
    int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
    switch (n->cls) {
        case FILE_TRUSTED: {
            if (wants_write(fi->flags)) {
                moat_log(LOG_LEVEL_ERROR, "Disallowing write/append to a trusted file '%s'",
                         fs_base_name(n->app_path));
                fuse_reply_err(req, EACCES);
                return;
            }
            struct vfile* f;
            int r = verifier_open(fs->verifier, n->trusted, &f);
            if (r < 0) {
                fuse_reply_err(req, -r);
                return;
            }
            __atomic_store_n(&n->verified, f, __ATOMIC_RELEASE);
            fs_learn(fs, n->host_path, false);
            int32_t id = __atomic_load_n(&f->backing_id, __ATOMIC_ACQUIRE);
            if (f->copy >= 0 && !id && __atomic_load_n(&fs->passthrough, __ATOMIC_RELAXED)) {
                verifier_locked(fs->verifier, f, fs_register_backing, fs);
                id = __atomic_load_n(&f->backing_id, __ATOMIC_ACQUIRE);
            }
            if (id > 0) {
                fi->fh = (uint64_t)-1;
                reply_open_passthrough(req, fi, id);
                return;
            }
            if (f->copy >= 0) { /* reads come from the copy */
                fi->fh         = (uint64_t)-1;
                fi->keep_cache = 1;
                fuse_reply_open(req, fi);
                return;
            }
            flags          = O_RDONLY;
            fi->keep_cache = 1; /* verified pages stay cached: native speed afterwards */
            break;
        }
        case FILE_ALLOWED:
            break;
        case FILE_NONE:
            if (fs->policy->strict) {
                moat_log(LOG_LEVEL_WARNING, "Disallowing access to file '%s'; file is not allowed.",
                         fs_base_name(n->app_path));
                fuse_reply_err(req, EACCES);
                return;
            }
            moat_log(LOG_LEVEL_WARNING,
                     "Allowing access to unknown file '%s' due to file_check_policy.",
                     fs_base_name(n->app_path));
            break;
    }
    int fd = open_regular(fs, n->host_path, flags);
    if (fd < 0) {
        fuse_reply_err(req, -fd);
        return;
    }
    if (n->cls != FILE_TRUSTED) /* trusted files were recorded when verified */
        fs_learn(fs, n->host_path, wants_write(fi->flags));
    fi->fh = (uint64_t)fd;
    fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    uint64_t t0       = time_now_ns();
    struct node* n    = fs_node_get(fs_of(req), ino);
    char* buf         = xmalloc(size ? size : 1);
    size_t len        = 0;
    int r             = 0;
    struct vfile* f   = n ? __atomic_load_n(&n->verified, __ATOMIC_ACQUIRE) : NULL;
    if (n && n->enc) {
        pthread_mutex_lock(&n->enc_lock);
        r = n->ef ? encfile_read(n->ef, off, size, buf, &len) : -EBADF;
        pthread_mutex_unlock(&n->enc_lock);
    } else if (n && n->cls == FILE_TRUSTED) {
        r = f ? verifier_read(fs->verifier, f, n->trusted, (int)fi->fh, off, size, buf, &len)
              : -EIO;
    } else {
        ssize_t got = pread((int)fi->fh, buf, size, off);
        if (got < 0)
            r = -errno;
        else
            len = (size_t)got;
    }
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_buf(req, buf, len);
    free(buf);
    fs_account(fs, ST_READ, t0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
                     struct fuse_file_info* fi) {
    struct node* n = fs_node_get(fs_of(req), ino);
    if (n && n->enc) {
        pthread_mutex_lock(&n->enc_lock);
        int r = n->ef ? encfile_write(n->ef, off, size, buf) : -EBADF;
        pthread_mutex_unlock(&n->enc_lock);
        if (r < 0)
            fuse_reply_err(req, -r);
        else
            fuse_reply_write(req, size);
        return;
    }
    if (n && n->cls == FILE_TRUSTED) {
        moat_log(LOG_LEVEL_WARNING, "Writing to a trusted file is disallowed!"); /* chroot_write */
        fuse_reply_err(req, EACCES);
        return;
    }
    ssize_t done = pwrite((int)fi->fh, buf, size, off);
    if (done < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_write(req, (size_t)done);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
    struct node* n = fs_node_get(fs_of(req), ino);
    if (n && n->enc)
        enc_release(fs_of(req), n);
    else if (fi->fh != (uint64_t)-1)
        close((int)fi->fh);
    fuse_reply_err(req, 0);
}

/* fsync: encrypted files are flushed (every changed node and the metadata) and synced. */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi) {
    (void)datasync;
    struct node* n = fs_node_get(fs_of(req), ino);
    int r          = 0;
    if (n && n->enc) {
        pthread_mutex_lock(&n->enc_lock);
        r = n->ef ? encfile_flush(n->ef) : 0;
        pthread_mutex_unlock(&n->enc_lock);
    } else if (fi->fh != (uint64_t)-1 && fsync((int)fi->fh) < 0) {
        r = -errno;
    }
    fuse_reply_err(req, -r);
}

/* The app path and host path of `name` in directory `parent`, for operations that create or
 * remove names; -EACCES when the name is not on a chroot mount. */
static int child_paths(struct fusefs* fs, fuse_ino_t parent, const char* name, char** ret_app,
                       char** ret_host) {
    struct node* p = fs_node_get(fs, parent);
    if (!p)
        return -ENOENT;
    char* app                   = path_join(p->app_path, name);
    char* host                  = NULL;
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, &host);
    if (!m) {
        free(app);
        return -EACCES;
    }
    *ret_app  = app;
    *ret_host = host;
    return 0;
}

/* The host file of app path `app` the way Gramine's log lines name it: the mount's URI path as
 * written, '/', the path below the mount point, nothing normalized ("./x" under the default
 * root "file:."; libos/src/fs/chroot/fs.c chroot_dentry_uri). Malloc'd. */
static char* gramine_host_name(const struct fusefs* fs, const char* app, const char* host) {
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, NULL);
    if (!m || !m->uri)
        return xstrdup(host); /* a mount moat added itself: the host path */
    const char* rest = app + (strcmp(m->path, "/") ? strlen(m->path) : 0);
    rest += *rest == '/';
    const char* root = *m->uri ? m->uri : ".";
    return *rest ? xasprintf("%s/%s", root, rest) : xstrdup(root);
}

/* Creating files: Gramine's is_create_allowed, with its log lines and levels. */
static int create_allowed(struct fusefs* fs, const char* host, const char* app) {
    const struct trusted_entry* t;
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, NULL);
    if (m && m->type == MOUNT_ENCRYPTED)
        return 0; /* encrypted mounts have no file-check rules */
    enum file_class cls = file_policy_classify(fs->policy, host, &t);
    if (cls == FILE_ALLOWED)
        return 0;
    _cleanup_free_ char* name = gramine_host_name(fs, app, host);
    if (cls == FILE_TRUSTED) {
        moat_log(LOG_LEVEL_ERROR, "Disallowing creating a trusted file '%s'", name);
        return -EACCES;
    }
    if (fs->policy->strict) {
        moat_log(LOG_LEVEL_WARNING,
                 "Disallowing creating file '%s'; file is not trusted or allowed.", name);
        return -EACCES;
    }
    moat_log(LOG_LEVEL_WARNING, "Allowing creating unknown file '%s' due to file_check_policy.",
             name);
    return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                      struct fuse_file_info* fi) {
    struct fusefs* fs         = fs_of(req);
    _cleanup_free_ char* app  = NULL;
    _cleanup_free_ char* host = NULL;
    int r                     = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    const struct mount_entry* m = mount_plan_resolve(fs->plan, app, NULL);
    bool enc                    = m && m->type == MOUNT_ENCRYPTED;
    int fd = enc ? -1 : hostpath_open(fs->hp, host, (fi->flags | O_CREAT) & ~O_NOCTTY, mode);
    if (!enc && fd < 0) {
        fuse_reply_err(req, -fd);
        return;
    }
    fs_learn(fs, host, true);
    struct node* n = fs_node_intern(fs, app, host); /* its lookup is the reply's */
    fuse_ino_t ino = n->ino;
    if (enc) {
        struct stat st;
        bool exists = hostpath_stat(fs->hp, host, &st) == 0;
        if (exists && (fi->flags & O_EXCL)) {
            fs_node_forget(fs, n, 1);
            fuse_reply_err(req, EEXIST);
            return;
        }
        r = enc_acquire(fs, n, !exists, true, exists && (fi->flags & O_TRUNC));
        if (r < 0) {
            fs_node_forget(fs, n, 1);
            fuse_reply_err(req, -r);
            return;
        }
        if (hostpath_chmod(fs->hp, host, mode & 07777) < 0) /* the mode is a wish here */
            moat_log(LOG_LEVEL_DEBUG, "cannot set the mode of '%s'", host);
    }
    struct fuse_entry_param e = {
        .ino = ino, .generation = n->generation, .attr_timeout = 1.0, .entry_timeout = 1.0};
    if (fs_node_attr(fs, n, ino, &e.attr) < 0) {
        if (enc)
            enc_release(fs, n);
        else
            close(fd);
        fs_node_forget(fs, n, 1);
        fuse_reply_err(req, EIO);
        return;
    }
    fi->fh = (uint64_t)fd;
    if (fuse_reply_create(req, &e, fi) == -ENOENT) { /* interrupted: the kernel has no file */
        if (enc)
            enc_release(fs, n);
        else
            close(fd);
        fs_node_forget(fs, n, 1);
    }
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                       struct fuse_file_info* fi) {
    struct fusefs* fs = fs_of(req);
    struct node* n    = fs_node_get(fs, ino);
    if (!n || !n->host_path) {
        fuse_reply_err(req, n ? EPERM : ENOENT);
        return;
    }
    bool writable = n->cls == FILE_ALLOWED || (n->cls == FILE_NONE && !fs->policy->strict);
    if ((to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE)) && !writable) {
        fuse_reply_err(req, EACCES);
        return;
    }
    int r = 0;
    if ((to_set & FUSE_SET_ATTR_SIZE) && n->enc) {
        r = enc_acquire(fs, n, false, true, false);
        if (r == 0) {
            pthread_mutex_lock(&n->enc_lock);
            r = encfile_set_size(n->ef, (uint64_t)attr->st_size);
            pthread_mutex_unlock(&n->enc_lock);
            enc_release(fs, n);
        }
        if (r < 0) {
            fuse_reply_err(req, -r);
            return;
        }
    } else if (to_set & FUSE_SET_ATTR_SIZE) {
        r = fi && fi->fh != (uint64_t)-1 ? (ftruncate((int)fi->fh, attr->st_size) < 0 ? -errno : 0)
                                         : hostpath_truncate(fs->hp, n->host_path, attr->st_size);
    }
    if (r == 0 && (to_set & FUSE_SET_ATTR_MODE))
        r = hostpath_chmod(fs->hp, n->host_path, attr->st_mode & 07777);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    struct stat st;
    r = fs_node_attr(fs, n, ino, &st);
    if (r < 0)
        fuse_reply_err(req, -r);
    else
        fuse_reply_attr(req, &st, fs_timeout_for(n));
}

/* After the name `app` was removed: its node (an open file may still use it, as an encrypted
 * file does its shared state) is no longer found by name, and keeps the attributes it had
 * (with no links), so that a file created under that name is a new node, as on Linux. */
static void node_unlinked(struct fusefs* fs, const char* app, const struct stat* st) {
    pthread_mutex_lock(&fs->lock);
    struct node* n = fs_index_find(fs, app);
    if (n) {
        fs_index_remove(fs, n);
        fs_retire(fs, n->app_path);
        n->app_path             = xasprintf("//unlinked/%zu", (size_t)n->ino);
        n->unlinked_st          = *st;
        n->unlinked_st.st_nlink = 0;
        n->unlinked             = true;
        fs_index_insert(fs, n);
    }
    pthread_mutex_unlock(&fs->lock);
}

static void modify_entry(fuse_req_t req, fuse_ino_t parent, const char* name, int op) {
    struct fusefs* fs         = fs_of(req);
    _cleanup_free_ char* app  = NULL;
    _cleanup_free_ char* host = NULL;
    struct stat st;
    int r = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r == 0)
        r = hostpath_stat(fs->hp, host, &st);
    if (r == 0)
        r = hostpath_unlink(fs->hp, host, op == 'u' ? 0 : AT_REMOVEDIR);
    if (r == 0)
        node_unlinked(fs, app, &st);
    fuse_reply_err(req, -r);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    modify_entry(req, parent, name, 'u');
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    modify_entry(req, parent, name, 'r');
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    struct fusefs* fs         = fs_of(req);
    _cleanup_free_ char* app  = NULL;
    _cleanup_free_ char* host = NULL;
    int r                     = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r == 0)
        r = hostpath_mkdir(fs->hp, host, mode);
    if (r < 0) {
        fuse_reply_err(req, -r);
        return;
    }
    fs_op_lookup(req, parent, name);
}

/* rename: both names must be creatable (allowed, or unknown under allow_all_but_log). */
static bool path_under(const char* path, const char* dir, size_t dir_len) {
    return !strncmp(path, dir, dir_len) && (path[dir_len] == '\0' || path[dir_len] == '/');
}

/* After `from` was renamed to `to`: the kernel now knows the renamed inode (and everything
 * below it) by the new names, so its node takes the new paths, and a node the rename replaced
 * can no longer be found by name. */
static void nodes_renamed(struct fusefs* fs, const char* from, const char* to) {
    size_t from_len = strlen(from), to_len = strlen(to);
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < fs->nnodes; i++) {
        struct node* n = fs->nodes[i];
        if (n && path_under(n->app_path, to, to_len) && !path_under(n->app_path, from, from_len)) {
            fs_index_remove(fs, n);
            fs_retire(fs, n->app_path); /* replaced: its open files go on, its name is gone */
            n->app_path = xasprintf("//replaced/%zu", i + 1);
            fs_index_insert(fs, n);
        }
    }
    for (size_t i = 0; i < fs->nnodes; i++) {
        struct node* n = fs->nodes[i];
        if (!n || !path_under(n->app_path, from, from_len))
            continue;
        char* app  = xasprintf("%s%s", to, n->app_path + from_len);
        char* host = NULL;
        if (!mount_plan_resolve(fs->plan, app, &host))
            host = n->host_path ? xstrdup(n->host_path) : NULL;
        fs_index_remove(fs, n);
        fs_retire(fs, n->app_path);
        fs_retire(fs, n->host_path);
        fs_retire(fs, n->bind);
        fs_node_place(fs, n, app, host);
        fs_index_insert(fs, n);
    }
    pthread_mutex_unlock(&fs->lock);
}

/* The app's symlinks stay in the allowed directories where it made them: a rename (possible
 * under "allow_all_but_log") that would move a symlink, or a directory that may hold some, to
 * a place below no allowed directory is refused with EXDEV (the app copies instead, as across
 * devices; the view has no SYMLINK operation to copy a link with). Elsewhere the view follows
 * host symlinks, so one moved there would be followed on the host (hostpath.c). */
static int moved_out(struct fusefs* fs, const char* from, const char* to) {
    struct stat st;
    if (!hostpath_app_controlled(fs->hp, from) || hostpath_app_controlled(fs->hp, to))
        return 0;
    if (hostpath_stat(fs->hp, from, &st) < 0)
        return 0; /* renameat2 will say why */
    return S_ISREG(st.st_mode) ? 0 : -EXDEV;
}

static int links_stay_inside(struct fusefs* fs, const char* from, const char* to, unsigned flags) {
    int r = moved_out(fs, from, to);
    if (r == 0 && (flags & RENAME_EXCHANGE))
        r = moved_out(fs, to, from);
    return r;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                      const char* newname, unsigned int flags) {
    struct fusefs* fs        = fs_of(req);
    _cleanup_free_ char *app = NULL, *host = NULL;
    _cleanup_free_ char *newapp = NULL, *newhost = NULL;
    int r = child_paths(fs, parent, name, &app, &host);
    if (r == 0)
        r = child_paths(fs, newparent, newname, &newapp, &newhost);
    if (r == 0)
        r = create_allowed(fs, host, app);
    if (r == 0)
        r = create_allowed(fs, newhost, newapp);
    const struct mount_entry* from = r == 0 ? mount_plan_resolve(fs->plan, app, NULL) : NULL;
    const struct mount_entry* to   = r == 0 ? mount_plan_resolve(fs->plan, newapp, NULL) : NULL;
    struct stat st;
    if (r == 0 && from != to && (from->type == MOUNT_ENCRYPTED || to->type == MOUNT_ENCRYPTED))
        r = -EXDEV; /* in or out of an encrypted mount: the app copies, as across devices */
    if (r == 0)
        r = links_stay_inside(fs, host, newhost, flags);
    if (r == 0 && from->type == MOUNT_ENCRYPTED && hostpath_stat(fs->hp, host, &st) == 0 &&
        S_ISREG(st.st_mode)) {
        /* the file is bound to its path: rebind it first (pf_rename), then move it */
        struct node* src = fs_node_intern(fs, app, host);
        struct node* dst = fs_node_intern(fs, newapp, newhost);
        r                = enc_acquire(fs, src, false, true, false);
        if (r == 0) {
            pthread_mutex_lock(&src->enc_lock);
            r = encfile_rename(src->ef, dst->bind);
            pthread_mutex_unlock(&src->enc_lock);
            enc_release(fs, src);
        }
        fs_node_forget(fs, dst, 1);
        fs_node_forget(fs, src, 1);
    }
    if (r == 0)
        r = hostpath_rename(fs->hp, host, newhost, flags);
    if (r == 0 && (flags & RENAME_EXCHANGE)) {
        nodes_renamed(fs, app, "//exchanging"); /* three steps: the names swap */
        nodes_renamed(fs, newapp, app);
        nodes_renamed(fs, "//exchanging", newapp);
    } else if (r == 0) {
        nodes_renamed(fs, app, newapp);
    }
    if (r == 0 && from->type == MOUNT_ENCRYPTED) {
        /* a file the app still has open follows its host file (and its recovery file) */
        struct node* moved = fs_node_intern(fs, newapp, newhost);
        pthread_mutex_lock(&moved->enc_lock);
        if (moved->ef)
            encfile_moved(moved->ef, newhost);
        pthread_mutex_unlock(&moved->enc_lock);
        fs_node_forget(fs, moved, 1);
    }
    if (r == 0)
        fs_learn(fs, newhost, true);
    fuse_reply_err(req, -r);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
    struct fusefs* fs = fs_of(req);
    (void)ino;
    struct statvfs sv;
    const char* root       = fs->plan->items[0].host ? fs->plan->items[0].host : "/";
    _cleanup_close_ int fd = hostpath_open(fs->hp, root, O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
        fuse_reply_err(req, -fd);
    else if (fstatvfs(fd, &sv) < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

void fusefs_file_ops(struct fuse_lowlevel_ops* ops) {
    ops->setattr = op_setattr;
    ops->open    = op_open;
    ops->read    = op_read;
    ops->write   = op_write;
    ops->release = op_release;
    ops->fsync   = op_fsync;
    ops->create  = op_create;
    ops->unlink  = op_unlink;
    ops->rmdir   = op_rmdir;
    ops->mkdir   = op_mkdir;
    ops->rename  = op_rename;
    ops->statfs  = op_statfs;
}
