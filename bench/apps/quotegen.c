/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote generation through /dev/attestation, as an app does it (bench/quote_gen.sh): write 64
 * bytes of report data to user_report_data, read the quote; N times. Prints
 * "quote_ms <mean latency in ms> <quote size>"; a quote that does not carry the report data
 * at offset 368 (SGX v3 body, reference/attestation.md §1.2) is an error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
    long n = argc > 1 ? atol(argv[1]) : 100;
    unsigned char rd[64], quote[16384];
    ssize_t len = 0;
    double t0   = now();
    for (long i = 0; i < n; i++) {
        memset(rd, 0, sizeof(rd));
        memcpy(rd, &i, sizeof(i));
        int fd = open("/dev/attestation/user_report_data", O_WRONLY);
        if (fd < 0 || write(fd, rd, sizeof(rd)) != (ssize_t)sizeof(rd) || close(fd) != 0) {
            perror("user_report_data");
            return 1;
        }
        fd = open("/dev/attestation/quote", O_RDONLY);
        if (fd < 0 || (len = read(fd, quote, sizeof(quote))) < 432 || close(fd) != 0) {
            perror("quote");
            return 1;
        }
        if (memcmp(quote + 368, rd, sizeof(rd)) != 0) {
            fprintf(stderr, "quotegen: the quote does not carry the report data\n");
            return 1;
        }
    }
    printf("quote_ms %.3f %zd\n", (now() - t0) * 1000 / (double)n, len);
    return 0;
}
