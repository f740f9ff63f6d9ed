/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat example: an app proves what it is. It puts the SHA-256 of a message (its "public key",
 * say) into the report data, asks /dev/attestation for a quote over it, as Gramine apps do,
 * and writes the quote and the message where the host can hand them to a verifier.
 */
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int put(const char* path, const void* data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char** argv) {
    const char* message = argc > 1 ? argv[1] : "hello from an attested app";
    char type[16]       = {0};
    int fd              = open("/dev/attestation/attestation_type", O_RDONLY);
    if (fd < 0 || read(fd, type, sizeof(type) - 1) < 0) {
        perror("/dev/attestation/attestation_type");
        return 1;
    }
    close(fd);
    printf("attestation type: %s\n", type);
    unsigned char report_data[64] = {0};
    SHA256((const unsigned char*)message, strlen(message), report_data);
    if (put("/dev/attestation/user_report_data", report_data, sizeof(report_data)) < 0)
        return 1;
    static unsigned char quote[16384];
    fd        = open("/dev/attestation/quote", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, quote, sizeof(quote)) : -1;
    if (n <= 0) {
        perror("/dev/attestation/quote");
        return 1;
    }
    close(fd);
    printf("quote: %zd bytes over SHA-256(\"%s\")\n", n, message);
    return put("/out/quote.dat", quote, (size_t)n) < 0 ||
                   put("/out/message.txt", message, strlen(message)) < 0
               ? 1
               : 0;
}
