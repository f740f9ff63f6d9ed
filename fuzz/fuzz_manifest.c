/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: manifest check, Graphene migration and default injection on any TOML
 * document; a migrated manifest must still serialize to TOML that parses back; the typed model
 * (manifest_load, what moat run reads) is built from it in every mode, and succeeds exactly when
 * the check found no error. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct toml_value* root = NULL;
    struct toml_error terr;
    if (toml_parse((const char*)data, size, "fuzz", &root, &terr, NULL) < 0)
        return 0;
    struct manifest_diags d         = {0};
    struct manifest_check_opts opts = {.finalized = size & 1};
    (void)manifest_check(root, &opts, &d);
    manifest_diags_free(&d);

    struct toml_value* copy = toml_clone(root);
    struct moat_error err   = {0};
    if (manifest_migrate(copy, &d, &err) == 0) {
        (void)manifest_check(copy, &opts, &d);
        size_t len;
        char* out                = toml_write(copy, &len);
        struct toml_value* again = NULL;
        if (toml_parse(out, len, "fuzz-migrated", &again, &terr, NULL) < 0)
            abort();
        toml_free(again);
        free(out);
    }
    manifest_diags_free(&d);
    toml_free(copy);
    (void)manifest_inject_defaults(root, "/usr/bin/moat", &err);
    toml_free(root);

    for (int mode = 0; mode < 3; mode++) {
        struct manifest_load_opts lopts = {.runtime = mode > 0, .finalized = mode > 1};
        struct manifest* m              = NULL;
        struct manifest_diags diags     = {0};
        int r = manifest_load((const char*)data, size, "fuzz", &lopts, &m, &diags, &err);
        if ((r == 0) != (manifest_diags_count(&diags, DIAG_ERROR) == 0) || (r == 0) != (m != NULL))
            abort();
        manifest_free(m);
        manifest_diags_free(&diags);
    }
    return 0;
}
