/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: Gramine encrypted files (src/pf).
 *
 * Input byte 0 selects the mode. Odd: the rest is a file on disk, opened and read in full
 * under a fixed key (header checks, MAC failures, size and path validation must fail cleanly).
 * Even: the rest is a program of operations on a file in a memfd — write, truncate/extend,
 * flush, close and reopen, read and compare with a plain buffer that saw the same operations,
 * and flip a byte on disk — so that every code path of the node cache, the Merkle tree and
 * flushing runs on valid files, and every corruption is either detected or harmless (a file
 * that still opens after a flip must read back exactly what was written, or fail). After a
 * flip, the first operation that fails ends the program: a write may have been applied in part
 * (as write(2) may), so the plain buffer no longer describes the file.
 *
 * Programs run with a recovery file (reference §4.6), and one operation is a crash: a flush,
 * a write, then a close stopped before its n-th change to the disk (pf_insecure__io_hook), and
 * an open that recovers: the file must then hold exactly the state before the write or after
 * it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pf.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#define MAX_SIZE (3072 + 4096 * 400) /* beyond the cache (256 nodes) and into MHT 4 */

static const uint8_t g_key[PF_KEY_SIZE] = {7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static char g_rec[64];  /* the recovery file, one per process, deleted after each input */
static int g_left = -1; /* changes the hook lets through; -1: all */

static bool stop_io(void) {
    if (g_left < 0)
        return false;
    if (g_left == 0)
        return true;
    g_left--;
    return false;
}

static void make_recovery_path(void) {
    snprintf(g_rec, sizeof(g_rec), "%s/fuzz-pf-%d.gramine.recovery",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
}

struct input {
    const uint8_t* p;
    size_t left;
};

static uint32_t take(struct input* in, int bytes) {
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v <<= 8;
        if (in->left) {
            v |= *in->p++;
            in->left--;
        }
    }
    return v;
}

static void read_all(int fd) {
    struct pf_file* pf;
    if (pf_open(fd, NULL, g_key, PF_OPEN_READ, NULL, &pf) != PF_SUCCESS)
        return;
    static uint8_t buf[65536];
    size_t n;
    for (uint64_t off = 0; off < pf_size(pf) && off < MAX_SIZE; off += sizeof(buf))
        if (pf_read(pf, off, sizeof(buf), buf, &n) != PF_SUCCESS)
            break;
    pf_close(pf);
}

/* Which of two states (0 or 1) the whole file holds; -1: reading failed. Reading what is
 * neither is tampering (or a bug) that went unnoticed. */
static int which(struct pf_file* pf, const uint8_t* a, uint64_t alen, const uint8_t* b,
                 uint64_t blen) {
    uint8_t* buf = malloc(MAX_SIZE + 1);
    size_t n;
    int result = -1;
    if (pf_read(pf, 0, MAX_SIZE + 1, buf, &n) == PF_SUCCESS) {
        if (n == alen && memcmp(buf, a, alen) == 0)
            result = 0;
        else if (n == blen && memcmp(buf, b, blen) == 0)
            result = 1;
        else
            abort();
    }
    free(buf);
    return result;
}

/* The whole file equals the shadow, or reading it fails (after a flip). */
static void compare(int fd, const uint8_t* shadow, uint64_t size, bool flipped) {
    struct pf_file* pf;
    enum pf_status s = pf_open(fd, "/f", g_key, PF_OPEN_READ, NULL, &pf);
    if (s != PF_SUCCESS) {
        if (!flipped)
            abort();
        return;
    }
    if (which(pf, shadow, size, shadow, size) < 0 && !flipped)
        abort();
    pf_close(pf);
}

/* A write of the program (offset below `limit`, length, seed) to the file and the shadow. */
static enum pf_status do_write(struct pf_file* pf, struct input* in, uint64_t limit,
                               uint8_t* shadow, uint64_t* shadow_len) {
    uint64_t off = take(in, 3) % limit;
    size_t len   = take(in, 2) % 20000;
    uint8_t seed = (uint8_t)take(in, 1);
    if (off + len > MAX_SIZE)
        len = MAX_SIZE - off;
    uint8_t* buf = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7);
    enum pf_status s = pf_write(pf, off, len, buf);
    if (s == PF_SUCCESS) {
        memcpy(shadow + off, buf, len);
        if (off > *shadow_len)
            memset(shadow + *shadow_len, 0, off - *shadow_len);
        if (off + len > *shadow_len)
            *shadow_len = off + len;
    }
    free(buf);
    return s;
}

/* Flush, a write, a close stopped after `left` changes to the disk, a recovering open: the
 * file is the state before the write or after it (reference §4.6). Returns the open file, or
 * NULL if something failed after a flip. */
static struct pf_file* crash(int fd, struct pf_file* pf, struct input* in, uint8_t* shadow,
                             uint64_t* shadow_len, uint8_t* old, bool flipped) {
    if (pf_flush(pf) != PF_SUCCESS) {
        if (!flipped)
            abort();
        pf_close(pf);
        return NULL;
    }
    uint64_t old_len = *shadow_len;
    memcpy(old, shadow, old_len);
    /* close to the end: a write far past it fills the cache with zero nodes, and the flush
     * that makes room commits a state between the two */
    uint64_t limit = old_len + 20000 < MAX_SIZE ? old_len + 20000 : MAX_SIZE;
    if (do_write(pf, in, limit, shadow, shadow_len) != PF_SUCCESS) {
        if (!flipped)
            abort();
        pf_close(pf); /* applied in part, maybe: the shadow no longer describes the file */
        return NULL;
    }
    g_left               = (int)(take(in, 1) % 48);
    pf_insecure__io_hook = stop_io;
    pf_close(pf);
    pf_insecure__io_hook = NULL;
    g_left               = -1;
    if (pf_open_ex(fd, "/f", g_rec, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf) != PF_SUCCESS) {
        if (!flipped)
            abort();
        return NULL;
    }
    int got = which(pf, old, old_len, shadow, *shadow_len);
    if (got < 0) {
        if (!flipped)
            abort();
        pf_close(pf);
        return NULL;
    }
    if (got == 0) {
        memcpy(shadow, old, old_len);
        *shadow_len = old_len;
    }
    return pf;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        abort();
    if (data[0] & 1) {
        if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
            abort();
        read_all(fd);
        close(fd);
        return 0;
    }
    struct input in     = {data + 1, size - 1};
    uint8_t* shadow     = calloc(1, MAX_SIZE);
    uint64_t shadow_len = 0;
    bool flipped        = false;
    struct pf_file* pf  = NULL;
    if (!g_rec[0])
        make_recovery_path();
    uint8_t* old = malloc(MAX_SIZE);
    if (pf_open_ex(fd, "/f", g_rec, g_key, PF_OPEN_WRITE | PF_OPEN_CREATE, NULL, &pf) != PF_SUCCESS)
        abort();
    while (in.left && pf) {
        uint8_t op = (uint8_t)take(&in, 1) % 7;
        if (op == 0) { /* write */
            if (do_write(pf, &in, MAX_SIZE, shadow, &shadow_len) != PF_SUCCESS) {
                if (!flipped)
                    abort();
                break;
            }
        } else if (op == 1) { /* truncate or extend */
            uint64_t to = take(&in, 3) % MAX_SIZE;
            if (pf_set_size(pf, to) == PF_SUCCESS) {
                if (to > shadow_len)
                    memset(shadow + shadow_len, 0, to - shadow_len);
                else
                    memset(shadow + to, 0, shadow_len - to);
                shadow_len = to;
            } else if (!flipped) {
                abort();
            } else {
                break;
            }
        } else if (op == 2) {
            if (pf_flush(pf) != PF_SUCCESS) {
                if (!flipped)
                    abort();
                break;
            }
        } else if (op == 3) { /* close and reopen */
            enum pf_status closed = pf_close(pf);
            pf                    = NULL;
            if (closed != PF_SUCCESS) {
                if (!flipped)
                    abort();
                break;
            }
            if (pf_open_ex(fd, "/f", g_rec, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf) !=
                PF_SUCCESS) {
                if (!flipped)
                    abort();
                pf = NULL;
            } else if (pf_size(pf) != shadow_len && !flipped) {
                abort();
            }
        } else if (op == 4) { /* compare what is on disk so far */
            if (pf_flush(pf) != PF_SUCCESS) {
                if (!flipped)
                    abort();
                break;
            }
            compare(fd, shadow, shadow_len, flipped);
        } else if (op == 6) { /* a crash in the middle of a flush */
            pf = crash(fd, pf, &in, shadow, &shadow_len, old, flipped);
        } else { /* flip a byte on disk */
            off_t end   = lseek(fd, 0, SEEK_END);
            uint32_t at = take(&in, 3);
            uint8_t x   = (uint8_t)(take(&in, 1) | 1);
            if (end > 0) {
                uint8_t b;
                off_t off = (off_t)(at % (uint32_t)end);
                if (pread(fd, &b, 1, off) == 1) {
                    b ^= x;
                    if (pwrite(fd, &b, 1, off) != 1)
                        abort();
                    flipped = true;
                }
            }
        }
    }
    if (pf)
        pf_close(pf);
    if (!flipped)
        compare(fd, shadow, shadow_len, false);
    unlink(g_rec);
    free(old);
    free(shadow);
    close(fd);
    return 0;
}
