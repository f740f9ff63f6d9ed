/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: SIGSTRUCT parsing (bounds-checked cursor), signature verification and the
 * sigstruct-view output of arbitrary bytes. A parsed SIGSTRUCT must serialize back to exactly
 * the input (the parser refuses non-zero reserved bytes), and the views must be well formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigstruct.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void check_views(const struct sigstruct* s) {
    static const enum sigstruct_format formats[] = {SIGSTRUCT_FORMAT_TEXT, SIGSTRUCT_FORMAT_TOML,
                                                    SIGSTRUCT_FORMAT_JSON};
    for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
        for (int verbose = 0; verbose <= 1; verbose++) {
            struct strbuf out = STRBUF_INIT;
            if (sigstruct_format(s, formats[i], verbose, &out) < 0)
                abort();
            /* one line per field (plus a header for text); JSON on one line */
            size_t lines = 0;
            for (size_t k = 0; k < out.len; k++)
                lines += out.buf[k] == '\n';
            size_t fields = verbose ? 12 : 5;
            size_t want   = formats[i] == SIGSTRUCT_FORMAT_JSON   ? 1
                            : formats[i] == SIGSTRUCT_FORMAT_TEXT ? fields + 1
                                                                  : fields;
            if (lines != want || strlen(out.buf) != out.len)
                abort();
            strbuf_free(&out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct sigstruct s;
    struct moat_error err = {0};
    if (sigstruct_parse(data, size, &s, &err) < 0)
        return 0;
    uint8_t out[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, out);
    if (memcmp(out, data, sizeof(out)) != 0)
        abort();
    (void)sigstruct_verify(&s, &err);
    check_views(&s);
    return 0;
}
