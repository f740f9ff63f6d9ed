/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat's enclave measurement (docs/measurement.md). moat cannot reproduce an SGX MRENCLAVE (that
 * covers Gramine's libpal.so pages, reference/gramine.md §3), so it measures what defines the
 * workload: the exact finalized manifest, which pins every trusted file by its SHA-256.
 */
#include <string.h>

#include "sigstruct.h"

int moat_measurement(const void* manifest, size_t len, uint8_t out[32]) {
    struct sha256_ctx ctx;
    int ret = sha256_init(&ctx);
    if (ret == 0) /* the identity string and its NUL terminator */
        ret = sha256_update(&ctx, MOAT_MEASUREMENT_ID, sizeof(MOAT_MEASUREMENT_ID));
    if (ret == 0)
        ret = sha256_update(&ctx, manifest, len);
    if (ret == 0)
        ret = sha256_final(&ctx, out);
    sha256_ctx_free(&ctx);
    return ret;
}
