/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the MarbleRun manifest (src/coordinator manifest.c, manifest_check.c,
 * goencoding.c; reference/marblerun.md §1). Parses the input, and when it parses runs Check, the
 * env NUL check and CheckUpdate against itself; every lookup of every map must find its entry
 * (maps are sorted with unique keys) and the raw bytes must be kept exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    log_set_level(LOG_LEVEL_NONE);
    struct coord_manifest* m = NULL;
    struct moat_error err    = {0};
    if (coord_manifest_parse(data, size, &m, &err) < 0) {
        if (!err.msg[0])
            abort(); /* every failure says why */
        return 0;
    }
    if (m->raw_len != size || memcmp(m->raw, data, size) != 0)
        abort();
    (void)coord_manifest_check(m, &err);
    (void)coord_manifest_check_env_nul(m, &err);
    if (coord_manifest_is_update(m))
        (void)coord_manifest_check_update(m, m, &err);
    for (size_t i = 0; i < m->n_packages; i++)
        if (coord_manifest_package(m, m->packages[i].name) != &m->packages[i])
            abort();
    for (size_t i = 0; i < m->n_marbles; i++) {
        if (coord_manifest_marble(m, m->marbles[i].name) != &m->marbles[i])
            abort();
        for (size_t j = 0; j < m->marbles[i].files.n; j++)
            if (!m->marbles[i].files.v[j].data)
                abort();
    }
    for (size_t i = 0; i < m->n_secrets; i++)
        if (coord_manifest_secret(m, m->secrets[i].name) != &m->secrets[i])
            abort();
    for (size_t i = 0; i < m->n_roles; i++)
        if (coord_manifest_role(m, m->roles[i].name) != &m->roles[i])
            abort();
    coord_manifest_free(m);
    return 0;
}
