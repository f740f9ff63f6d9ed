/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the TOML parser, and the writer's round-trip promise (anything the parser
 * accepts, written back out, parses to an equal tree). */
#include <stdint.h>
#include <stdlib.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct toml_value* root = NULL;
    struct toml_error terr;
    if (toml_parse((const char*)data, size, "fuzz", &root, &terr, NULL) < 0)
        return 0;
    size_t len;
    char* out                = toml_write(root, &len);
    struct toml_value* again = NULL;
    if (toml_parse(out, len, "fuzz-roundtrip", &again, &terr, NULL) < 0 || !toml_equal(root, again))
        abort();
    toml_free(again);
    free(out);
    toml_free(root);
    return 0;
}
