/* SPDX-License-Identifier: Apache-2.0 */
/* The Coordinator certificate cache (marblerun.h; reference/marblerun.md §7 --coordinator-cert,
 * MarbleRun's cli/internal/certcache). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "marblerun.h"
#include "pck.h"

char* mr_cache_default_path(void) {
    const char* xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg)
        return xasprintf("%s/marblerun/coordinator-cert.pem", xdg);
    const char* home = getenv("HOME");
    return xasprintf("%s/.config/marblerun/coordinator-cert.pem", home && *home ? home : ".");
}

int mr_cache_load(const char* path, char** ret_pem, X509** ret_root, struct moat_error* err) {
    _cleanup_free_ char* pem = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &pem, &len, err);
    if (r < 0)
        return r;
    /* the root is the last certificate (MarbleRun caches intermediate + root) */
    _cleanup_cert_chain_ struct cert_chain* chain = NULL;
    if (cert_chain_parse_pem(pem, len, &chain, err) < 0)
        return moat_error_prefix(err, "--coordinator-cert '%s'", path);
    *ret_root                = chain->certs[chain->n - 1];
    chain->certs[--chain->n] = NULL;
    *ret_pem                 = TAKE_PTR(pem);
    return 0;
}

int mr_cache_store(const char* path, const char* pem, struct moat_error* err) {
    int r = mkdir_parents(path, 0700);
    if (r < 0)
        return moat_error_set_errno(err, r, "--coordinator-cert '%s': cannot make its directory",
                                    path);
    return write_file_atomic(path, pem, strlen(pem), 0644, err);
}
