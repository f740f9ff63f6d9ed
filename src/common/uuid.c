/* SPDX-License-Identifier: Apache-2.0 */
/* UUIDs as github.com/google/uuid Parse/String: see common.h. */
#include <errno.h>
#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

#include "common.h"

int moat_uuid_parse(const char* s, uint8_t ret_uuid[16], struct moat_error* err) {
    size_t len = strlen(s);
    uint8_t u[16];
    if (len == 32) {
        for (size_t i = 0; i < 16; i++) {
            int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return moat_error_set(err, -EINVAL, "invalid UUID format");
            u[i] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(ret_uuid, u, 16);
        return 0;
    }
    if (len == 45) {
        if (strncasecmp(s, "urn:uuid:", 9) != 0)
            return moat_error_set(err, -EINVAL, "invalid urn prefix: \"%.9s\"", s);
        s += 9;
    } else if (len == 38) {
        if (s[0] != '{' || s[37] != '}')
            return moat_error_set(err, -EINVAL, "invalid UUID format");
        s += 1;
    } else if (len != 36) {
        return moat_error_set(err, -EINVAL, "invalid UUID length: %zu", len);
    }
    if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return moat_error_set(err, -EINVAL, "invalid UUID format");
    static const uint8_t pos[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    for (size_t i = 0; i < 16; i++) {
        int hi = hex_digit_value(s[pos[i]]), lo = hex_digit_value(s[pos[i] + 1]);
        if (hi < 0 || lo < 0)
            return moat_error_set(err, -EINVAL, "invalid UUID format");
        u[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(ret_uuid, u, 16);
    return 0;
}

void moat_uuid_format(const uint8_t uuid[16], char out[MOAT_UUID_STR_SIZE]) {
    static const char hex[] = "0123456789abcdef";
    size_t n                = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[uuid[i] >> 4];
        out[n++] = hex[uuid[i] & 15];
    }
    out[n] = '\0';
}

void moat_uuid4(char out[MOAT_UUID_STR_SIZE]) {
    uint8_t u[16];
    if (RAND_bytes(u, sizeof(u)) != 1)
        abort();                            /* no randomness: no identifier can be trusted */
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* RFC 9562 version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* variant 10 */
    moat_uuid_format(u, out);
}
