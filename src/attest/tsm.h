/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence from a confidential VM through the kernel's configfs-tsm interface
 * (../shared/reference/attestation.md §5.1; Linux >= 6.7): make a report instance
 * (mkdir <root>/<name>), write up to 64 bytes of report data to `inblob`, read the report from
 * `outblob` (a DCAP quote for "tdx_guest", an SNP report for "sev_guest"), `provider`,
 * `auxblob` (SNP certificates; may be absent) and `generation`, remove the instance.
 *
 * `generation` counts the writes to the instance: it must be exactly one more after our write
 * than before, or another writer raced us and the report may carry their data — moat then
 * retries with a fresh instance, and fails after a few attempts rather than return evidence
 * for the wrong data.
 *
 * All file-system access goes through `struct tsm_fs`, so that tests can run the protocol
 * against a directory that mimics the interface (tsm_fs_posix() is the real one).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define TSM_ROOT            "/sys/kernel/config/tsm/report"
#define TSM_REPORT_DATA_MAX 64

struct tsm_fs {
    int (*mkdir)(void* ctx, const char* path);
    int (*rmdir)(void* ctx, const char* path);
    /* the whole content; -ENOENT if the file does not exist */
    int (*read)(void* ctx, const char* path, uint8_t** ret, size_t* ret_len);
    /* one write() of exactly len bytes */
    int (*write)(void* ctx, const char* path, const uint8_t* data, size_t len);
    void* ctx;
};

/* The kernel's configfs (plain system calls). */
const struct tsm_fs* tsm_fs_posix(void);

struct tsm_report {
    char provider[32]; /* "tdx_guest", "sev_guest", ... */
    uint8_t* outblob;
    size_t outblob_len;
    uint8_t* auxblob; /* NULL when the provider has none */
    size_t auxblob_len;
    uint32_t generation;
};

/* True if `root` (NULL: TSM_ROOT) exists, i.e. this is a confidential VM with a TSM driver. */
bool tsm_available(const char* root);

/* A report for `report_data` (at most 64 bytes; shorter is zero-padded by the kernel). */
int tsm_get_report(const struct tsm_fs* fs, const char* root, const uint8_t* report_data,
                   size_t len, struct tsm_report* ret, struct moat_error* err) WARN_UNUSED;
void tsm_report_free(struct tsm_report* r);
