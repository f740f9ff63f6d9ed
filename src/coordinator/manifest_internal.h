/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers of the coordinator's manifest code: Go's decoders with Go's error texts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "coordinator.h"

/* Go's base64.StdEncoding.DecodeString: padding required, '\r' and '\n' skipped anywhere. On
 * failure writes "illegal base64 data at input byte N" into msg and returns -EINVAL; on success
 * *ret is malloc'd (never NULL). */
int go_base64_decode(const char* in, size_t len, uint8_t** ret, size_t* ret_len, char* msg,
                     size_t msg_size) WARN_UNUSED;
/* Go's hex.DecodeString: "encoding/hex: invalid byte: U+0067 'g'" or
 * "encoding/hex: odd length hex string". */
int go_hex_decode(const char* in, size_t len, uint8_t** ret, size_t* ret_len, char* msg,
                  size_t msg_size) WARN_UNUSED;
/* time.Time's JSON form (RFC 3339, optional fractional seconds, Z or +hh:mm). *ret_zero is set
 * when the instant is Go's zero time (0001-01-01T00:00:00Z). -EINVAL when malformed. */
int go_parse_rfc3339(const char* s, time_t* ret, bool* ret_zero) WARN_UNUSED;

void coord_strv_free(struct coord_strv* sv);
