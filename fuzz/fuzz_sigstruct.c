/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: SIGSTRUCT parsing (bounds-checked cursor) and signature verification of
 * arbitrary bytes; a parsed SIGSTRUCT must serialize back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigstruct.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct sigstruct s;
    struct moat_error err = {0};
    if (sigstruct_parse(data, size, &s, &err) < 0)
        return 0;
    uint8_t out[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, out);
    /* reserved bytes are not kept: compare with them cleared */
    uint8_t want[SIGSTRUCT_SIZE];
    memcpy(want, data, sizeof(want));
    static const size_t reserved[][2] = {{44, 128}, {910, 912}, {992, 1008}, {1028, 1040}};
    for (size_t i = 0; i < 4; i++)
        memset(want + reserved[i][0], 0, reserved[i][1] - reserved[i][0]);
    if (memcmp(out, want, sizeof(out)) != 0)
        abort();
    (void)sigstruct_verify(&s, &err);
    uint8_t mrsigner[32];
    (void)sigstruct_mrsigner(&s, mrsigner);
    return 0;
}
