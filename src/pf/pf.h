/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gramine's encrypted files ("protected files"), byte-compatible with Gramine v1.9
 * (../shared/reference/gramine.md §4): a metadata node with the bound path, the first 3072
 * bytes and the root of a Merkle tree of AES-128-GCM nodes (MHT nodes holding the key and tag
 * of up to 96 data nodes and 32 child MHT nodes), 4096-byte nodes, little-endian, packed.
 *
 * A pf_file works on a host file descriptor (pread/pwrite): the caller opens the host file
 * (O_RDWR for writing) and keeps it open until pf_close. Writes v2, reads v1 and v2 (a v1 file
 * is rewritten as v2 by its first flush). Every failure is a pf_status whose pf_strerror() is
 * the reference's status string ("Invalid path", "MAC mismatch", ...).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PF_NODE_SIZE     4096
#define PF_KEY_SIZE      16
#define PF_MAC_SIZE      16
#define PF_PATH_MAX_SIZE 772 /* includes the NUL */
#define PF_MD_USER_DATA  3072
#define PF_DATA_PER_MHT  96
#define PF_CHILDREN_MHT  32
#define PF_MAJOR_VERSION 2
#define PF_MINOR_VERSION 0
#define PF_FILE_ID       "GRAFS_PF"

enum pf_status {
    PF_SUCCESS = 0,
    PF_UNKNOWN_ERROR,
    PF_UNINITIALIZED,
    PF_INVALID_PARAMETER,
    PF_INVALID_MODE,
    PF_NO_MEMORY,
    PF_INVALID_VERSION,
    PF_INVALID_HEADER,
    PF_INVALID_PATH,
    PF_MAC_MISMATCH,
    PF_NOT_IMPLEMENTED,
    PF_CALLBACK_FAILED,
    PF_PATH_TOO_LONG,
    PF_RECOVERY_NEEDED,
    PF_FLUSH_ERROR,
    PF_CRYPTO_ERROR,
    PF_CORRUPTED,
    PF_WRITE_TO_DISK_FAILED,
};

/* The reference's status strings ("Success", "Invalid path", ...). */
const char* pf_strerror(enum pf_status status);

/* Node numbering (reference §4.4): data node d and MHT m to their physical node numbers, and
 * the on-disk size of a file of `size` plaintext bytes. */
uint64_t pf_physical_data_node(uint64_t d);
uint64_t pf_physical_mht_node(uint64_t m);
uint64_t pf_disk_size(uint64_t size);
uint64_t pf_data_node_count(uint64_t size);
uint64_t pf_mht_node_count(uint64_t size);

/* The plaintext header, readable without a key (moat pf info). */
struct pf_header {
    uint8_t major, minor;
    bool has_flags; /* v2 */
    uint8_t feature_flags;
    uint8_t nonce[32];
    uint8_t mac[PF_MAC_SIZE];
    uint64_t disk_size;
};
enum pf_status pf_read_header(int fd, struct pf_header* ret);

struct pf_file;

enum {
    PF_OPEN_READ   = 1,
    PF_OPEN_WRITE  = 2,
    PF_OPEN_CREATE = 4, /* write a new empty file (the host file must be empty) */
};

/* Opens the encrypted file in `fd`, bound to `path` (the normalized host path, compared byte
 * for byte with the one stored; NULL: any path, for reading only). On PF_INVALID_PATH, `embedded`
 * (if not NULL, at least PF_PATH_MAX_SIZE bytes) receives the path the file is bound to. */
enum pf_status pf_open(int fd, const char* path, const uint8_t key[PF_KEY_SIZE], int flags,
                       char* embedded, struct pf_file** ret);
/* pf_open with recovery (reference §4.6). With `recovery_path` (the host file
 * "<host path>.gramine.recovery", mode 0666 when created), a flush that changes nodes on disk
 * first writes undo records (u64 LE physical node number + the node's old 4096 ciphertext bytes)
 * to it, fsyncs, sets the pending-write flag in node 0 on disk and fsyncs, then writes the new
 * nodes and the new metadata with the flag clear; an open that finds the flag set replays the
 * records, fsyncs and opens the restored file. Without `recovery_path`, a set flag is
 * PF_RECOVERY_NEEDED, as is a missing or damaged recovery file. The recovery file is deleted by a
 * successful pf_close.
 *
 * Replay writes to `fd`: a read-only `fd` that finds the flag set gives PF_RECOVERY_NEEDED
 * (whatever `flags`), to be opened again with a writable one. Every record is checked against
 * the key and the file's tree before the first byte is replayed, so a cut, damaged or stale
 * recovery file leaves the host file as it is. One writer per file: an open replays whatever a
 * flush of another open handle has under way. With a recovery file, whole nodes past the end
 * of the file (a shrinking flush that died after its commit) are accepted and cut. If a flush
 * fails, the handle refuses everything after with that status (see pf_flush) and pf_close
 * keeps the recovery file: the next open replays it if the flag was left set. */
enum pf_status pf_open_ex(int fd, const char* path, const char* recovery_path,
                          const uint8_t key[PF_KEY_SIZE], int flags, char* embedded,
                          struct pf_file** ret);
/* The recovery file's new place after the caller renamed the host file (NULL: none). The old
 * recovery file, if any, is renamed to it (PF_CALLBACK_FAILED if that fails). Order for a
 * rename: pf_rename (a flush, complete when it returns), rename(2) of the host file, then this;
 * a crash in between leaves at most a stale recovery file under the old name. */
enum pf_status pf_set_recovery_path(struct pf_file* pf, const char* recovery_path);
/* Reads up to `size` bytes at `off` (fewer at the end of the file). */
enum pf_status pf_read(struct pf_file* pf, uint64_t off, size_t size, void* buf, size_t* ret_len);
/* Writes `size` bytes at `off`; a gap past the end reads as zeros. */
enum pf_status pf_write(struct pf_file* pf, uint64_t off, size_t size, const void* buf);
uint64_t pf_size(const struct pf_file* pf);
/* Truncates or extends (with zeros). */
enum pf_status pf_set_size(struct pf_file* pf, uint64_t size);
/* Binds the file to a new path (the caller renames the host file after this succeeds). */
enum pf_status pf_rename(struct pf_file* pf, const char* new_path);
/* Encrypts and writes every changed node, then the metadata node: nodes past the end of the
 * file on disk first, so that running out of space or into RLIMIT_FSIZE (EFBIG) leaves the
 * file as the last successful flush left it; then the nodes inside it, then node 0. A failure
 * after the first in-place write leaves the last good state only with recovery (pf_open_ex);
 * see flush() in pf.c for what each step guarantees.
 *
 * A failed flush (also one a pf_write, pf_set_size or pf_read starts to make room in its
 * cache) is sticky, like Gramine's file_status: every later pf_read, pf_write, pf_set_size,
 * pf_rename, pf_flush and pf_close of the handle returns the same status. */
enum pf_status pf_flush(struct pf_file* pf);
/* Flushes (when opened for writing) and frees; the status of the flush (never PF_SUCCESS
 * after a failed one: see pf_flush). */
enum pf_status pf_close(struct pf_file* pf);
/* The bound path. */
const char* pf_path(const struct pf_file* pf);

/* Tests only (src/pf/tests, fuzz/fuzz_pf.c), never set in moat: called before every change
 * the library makes to the host or recovery file (write, fsync, truncate, creating the
 * recovery file, deleting it at close); returning true stops there as if the process had been
 * killed: that change and every later one of the handle are not made (its flush returns
 * PF_WRITE_TO_DISK_FAILED, pf_close writes nothing). */
extern bool (*pf_insecure__io_hook)(void);
