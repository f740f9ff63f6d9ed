/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the Go text/template subset (lexer, parser, executor, MarbleRun functions)
 * against a Coordinator-shaped data tree, with both function sets and a small output limit. */
#include <stdint.h>
#include <stdlib.h>

#include "gotemplate.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static struct gotemplate_value* make_data(void) {
    static const uint8_t der[]     = {0x30, 0x03, 0x02, 0x01, 0x01};
    static const uint8_t key[]     = {0xde, 0xad, 0x00, 0xbe};
    struct gotemplate_value* root  = gotemplate_struct_new("manifest.SecretsWrapper");
    struct gotemplate_value* mr    = gotemplate_struct_new("manifest.ReservedSecrets");
    struct gotemplate_value* secs  = gotemplate_map_new("map[string]manifest.Secret");
    struct gotemplate_secret cert  = {.type        = "cert-ecdsa",
                                      .cert        = der,
                                      .cert_len    = sizeof(der),
                                      .private_key = key,
                                      .private_len = sizeof(key),
                                      .public_key  = der,
                                      .public_len  = sizeof(der)};
    struct gotemplate_secret sym   = {.type        = "symmetric-key",
                                      .private_key = key,
                                      .private_len = sizeof(key),
                                      .public_key  = key,
                                      .public_len  = sizeof(key)};
    struct gotemplate_secret plain = {.type = "plain", .public_key = "pw", .public_len = 2};
    int r                          = gotemplate_set(mr, "MarbleCert", gotemplate_secret_new(&cert));
    r |= gotemplate_set(mr, "RootCA", gotemplate_secret_new(&cert));
    r |= gotemplate_set(secs, "ProtectedFilesKey", gotemplate_secret_new(&sym));
    r |= gotemplate_set(secs, "ServerCert", gotemplate_secret_new(&cert));
    r |= gotemplate_set(secs, "Password", gotemplate_secret_new(&plain));
    r |= gotemplate_set(root, "MarbleRun", mr);
    r |= gotemplate_set(root, "Secrets", secs);
    if (r != 0)
        abort();
    return root;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static struct gotemplate_value* root;
    if (!root)
        root = make_data();
    for (int set = GOTEMPLATE_FUNCS_FILES; set <= GOTEMPLATE_FUNCS_ENV; set++) {
        struct moat_error err = {0};
        struct gotemplate* t  = NULL;
        if (gotemplate_parse("data", (const char*)data, size, set, &t, &err) < 0)
            continue;
        uint8_t* out = NULL;
        size_t len;
        if (gotemplate_execute(t, root, 1 << 16, &out, &len, &err) == 0)
            free(out);
        gotemplate_free(t);
    }
    return 0;
}
