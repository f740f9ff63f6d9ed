/* SPDX-License-Identifier: Apache-2.0 */
/* Bounds-checked reads of untrusted bytes (s2n's stuffer in spirit): a read that would overrun
 * fails with -EBADMSG and leaves the cursor untouched. */
#include <string.h>

#include "common.h"

int cur_ptr(struct cursor* c, size_t n, const uint8_t** ret) {
    if (n > c->len)
        return -EBADMSG;
    *ret = c->p;
    c->p += n;
    c->len -= n;
    return 0;
}

int cur_bytes(struct cursor* c, void* out, size_t n) {
    const uint8_t* p;
    int ret = cur_ptr(c, n, &p);
    if (ret < 0)
        return ret;
    if (n)
        memcpy(out, p, n);
    return 0;
}

int cur_skip(struct cursor* c, size_t n) {
    const uint8_t* p;
    return cur_ptr(c, n, &p);
}

int cur_sub(struct cursor* c, size_t n, struct cursor* ret) {
    const uint8_t* p;
    int r = cur_ptr(c, n, &p);
    if (r < 0)
        return r;
    *ret = cursor_init(p, n);
    return 0;
}

int cur_u8(struct cursor* c, uint8_t* ret) {
    return cur_bytes(c, ret, 1);
}

static int cur_uint(struct cursor* c, size_t n, bool big_endian, uint64_t* ret) {
    const uint8_t* p;
    int r = cur_ptr(c, n, &p);
    if (r < 0)
        return r;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        size_t idx = big_endian ? i : n - 1 - i;
        v          = (v << 8) | p[idx];
    }
    *ret = v;
    return 0;
}

int cur_u16le(struct cursor* c, uint16_t* ret) {
    uint64_t v;
    int r = cur_uint(c, 2, false, &v);
    if (r == 0)
        *ret = (uint16_t)v;
    return r;
}

int cur_u32le(struct cursor* c, uint32_t* ret) {
    uint64_t v;
    int r = cur_uint(c, 4, false, &v);
    if (r == 0)
        *ret = (uint32_t)v;
    return r;
}

int cur_u64le(struct cursor* c, uint64_t* ret) {
    return cur_uint(c, 8, false, ret);
}

int cur_u16be(struct cursor* c, uint16_t* ret) {
    uint64_t v;
    int r = cur_uint(c, 2, true, &v);
    if (r == 0)
        *ret = (uint16_t)v;
    return r;
}

int cur_u32be(struct cursor* c, uint32_t* ret) {
    uint64_t v;
    int r = cur_uint(c, 4, true, &v);
    if (r == 0)
        *ret = (uint32_t)v;
    return r;
}
