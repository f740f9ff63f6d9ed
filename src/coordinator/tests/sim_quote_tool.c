/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only: prints (hex) a quote of moat's SIMULATED platform for any enclave identity, so
 * that tests/test_coordinator.py can play Marbles with the right and the wrong measurements.
 * usage: sim_quote_tool SIMDIR REPORT_DATA_HEX [mrenclave=HEX] [mrsigner=HEX] [prodid=N]
 *        [svn=N] [debug=1]
 * REPORT_DATA_HEX: up to 64 bytes (zero-padded). Exit 0 and one line of hex, or 1 and a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static int hex_arg(const char* s, uint8_t* out, size_t max) {
    size_t l = strlen(s);
    if (l % 2 || l / 2 > max)
        return -1;
    return hex_decode(s, l, out, max);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: sim_quote_tool SIMDIR REPORT_DATA_HEX [key=value...]\n");
        return 2;
    }
    struct sim_enclave e = {.isvprodid = 0, .isvsvn = 0};
    if (hex_arg(argv[2], e.report_data, sizeof(e.report_data)) < 0) {
        fprintf(stderr, "bad report data\n");
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        const char* a = argv[i];
        int bad       = 0;
        if (strncmp(a, "mrenclave=", 10) == 0)
            bad = hex_arg(a + 10, e.mrenclave, 32) != 32;
        else if (strncmp(a, "mrsigner=", 9) == 0)
            bad = hex_arg(a + 9, e.mrsigner, 32) != 32;
        else if (strncmp(a, "prodid=", 7) == 0)
            e.isvprodid = (uint16_t)strtoul(a + 7, NULL, 10);
        else if (strncmp(a, "svn=", 4) == 0)
            e.isvsvn = (uint16_t)strtoul(a + 4, NULL, 10);
        else if (strcmp(a, "debug=1") == 0)
            e.debug = true;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "bad argument '%s'\n", a);
            return 2;
        }
    }
    struct moat_error err  = {0};
    struct sim_platform* p = NULL;
    uint8_t* q             = NULL;
    size_t len             = 0;
    if (sim_load(argv[1], &p, &err) < 0 || sim_quote(p, &e, &q, &len, &err) < 0) {
        fprintf(stderr, "sim_quote_tool: %s\n", err.msg);
        sim_free(p);
        return 1;
    }
    char* hex = hex_encode_alloc(q, len);
    puts(hex);
    free(hex);
    free(q);
    sim_free(p);
    return 0;
}
