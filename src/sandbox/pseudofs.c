/* SPDX-License-Identifier: Apache-2.0 */
/* The serving loop of the pseudo-file systems: see pseudofs.h. */
#include "pseudofs.h"

#include <sys/uio.h>
#include <unistd.h>

static ssize_t io_read(int fd, void* buf, size_t len, void* userdata) {
    (void)userdata;
    return read(fd, buf, len);
}

static ssize_t io_writev(int fd, struct iovec* iov, int count, void* userdata) {
    (void)userdata;
    return writev(fd, iov, count);
}

static void* serve(void* arg) {
    (void)fuse_session_loop(arg); /* ends with the connection (ENODEV) */
    return NULL;
}

int pseudofs_start(struct fuse_session* se, int fuse_fd, pthread_t* ret_thread, const char* what,
                   struct moat_error* err) {
    static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
    if (fuse_session_custom_io(se, &io, fuse_fd) != 0) {
        close(fuse_fd);
        return moat_error_set(err, -EIO, "cannot attach to the %s FUSE connection", what);
    }
    if (pthread_create(ret_thread, NULL, serve, se) != 0)
        return moat_error_set(err, -EAGAIN, "cannot start the %s server", what);
    return 0;
}

bool pseudofs_setattr_ok(int to_set) {
    return !(to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                        FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME));
}
