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
 * (as write(2) may), so the plain buffer no longer describes the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pf.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#define MAX_SIZE (3072 + 4096 * 400) /* beyond the cache (256 nodes) and into MHT 4 */

static const uint8_t g_key[PF_KEY_SIZE] = {7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

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

/* The whole file equals the shadow, or reading it fails (after a flip). */
static void compare(int fd, const uint8_t* shadow, uint64_t size, bool flipped) {
    struct pf_file* pf;
    enum pf_status s = pf_open(fd, "/f", g_key, PF_OPEN_READ, NULL, &pf);
    if (s != PF_SUCCESS) {
        if (!flipped)
            abort();
        return;
    }
    uint8_t* buf = malloc(MAX_SIZE + 1);
    size_t n;
    s = pf_read(pf, 0, MAX_SIZE + 1, buf, &n);
    if (s == PF_SUCCESS && (n != size || memcmp(buf, shadow, size) != 0))
        abort(); /* tampering (or a bug) that went unnoticed */
    if (s != PF_SUCCESS && !flipped)
        abort();
    free(buf);
    pf_close(pf);
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
    if (pf_open(fd, "/f", g_key, PF_OPEN_WRITE | PF_OPEN_CREATE, NULL, &pf) != PF_SUCCESS)
        abort();
    while (in.left && pf) {
        uint8_t op = (uint8_t)take(&in, 1) % 6;
        if (op == 0) { /* write */
            uint64_t off = take(&in, 3) % MAX_SIZE;
            size_t len   = take(&in, 2) % 20000;
            uint8_t seed = (uint8_t)take(&in, 1);
            if (off + len > MAX_SIZE)
                len = MAX_SIZE - off;
            uint8_t* buf = malloc(len + 1);
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)(seed + i * 7);
            if (pf_write(pf, off, len, buf) == PF_SUCCESS) {
                memcpy(shadow + off, buf, len);
                if (off > shadow_len)
                    memset(shadow + shadow_len, 0, off - shadow_len);
                if (off + len > shadow_len)
                    shadow_len = off + len;
            } else if (!flipped) {
                abort();
            } else {
                free(buf);
                break;
            }
            free(buf);
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
            if (pf_open(fd, "/f", g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf) != PF_SUCCESS) {
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
    free(shadow);
    close(fd);
    return 0;
}
