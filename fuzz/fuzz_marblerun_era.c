/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: MarbleRun's coordinator-era.json (src/marblerun/era.c). Every failure says
 * why; an accepted config names a UniqueID or a SignerID (nothing else identifies code). */
#include <stdint.h>
#include <stdlib.h>

#include "marblerun.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct mr_era e       = {0};
    struct moat_error err = {0};
    if (mr_era_parse((const char*)data, size, &e, &err) < 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (!e.has_unique_id && !e.has_signer_id)
        abort();
    return 0;
}
