/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Marble premain (../shared/reference/marblerun.md §4.2, §5; docs/marblerun.md): activates
 * this process with a MarbleRun-compatible Coordinator and applies what it returns. Two fronts
 * use it: moat-premain (an executable, Gramine's libos.entrypoint, that execs the real app) and
 * libmoat-premain.so (an LD_PRELOAD library that activates from a constructor before main).
 *
 * Steps: read EDG_MARBLE_COORDINATOR_ADDR|TYPE|UUID_FILE|DNS_NAMES; make a P-384 key, a
 * self-signed certificate and a CSR; load or create the UUID file; quote sha256(certificate
 * DER) through /dev/attestation (an empty quote when there is none, as MarbleRun's premain
 * does); call /rpc.Marble/Activate over TLS with ALPN h2; write the /dev/attestation keys
 * first, then the other files; set the environment.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct premain_params {
    char** argv; /* the manifest's Argv (NULL-terminated; empty: argc 0) */
    size_t argc;
    void* resp; /* internal: the Coordinator's answer */
};

/* Activates and applies Files and Env. Errors read as MarbleRun's premain prints them
 * ("rpc error: code = FailedPrecondition desc = cannot accept marbles in current state"). */
int premain_run(struct premain_params* ret, struct moat_error* err) WARN_UNUSED;
void premain_params_clear(struct premain_params* p);

/* The process's environment, edited in `environ` itself (see premain.c). */
const char* premain_getenv(const char* key);
void premain_setenv(const char* key, const char* value);
void premain_unsetenv(const char* key);

/* "[PreMain] " lines on stderr (EDG_LOG_FORMAT=json: JSON lines as MarbleRun's zap logger). */
void premain_log(const char* level, const char* fmt, ...) PRINTF_FMT(2, 3);
