/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: what the parts of src/pf share — the on-disk constants, a file's
 * in-memory state (struct pf_file: the decrypted metadata, the MHT nodes, the data-node
 * cache), the crypto and disk primitives (primitives.c) and the recovery protocol
 * (recovery.c, reference/gramine.md §4.6). pf.c is the rest: nodes, flush, open, read, write.
 */
#pragma once

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pf.h"

#define HEADER_V2      59 /* file_id 8, major 1, minor 1, nonce 32, mac 16, flags 1 */
#define HEADER_V1      58
#define ENCRYPTED_SIZE 3884
#define OFF_FILE_SIZE  772
#define OFF_ROOT_KEY   780
#define OFF_ROOT_MAC   796
#define OFF_FILE_DATA  812
#define FLAG_PENDING   0x01
#define METADATA_LABEL "SGX-PROTECTED-FS-METADATA-KEY"
#define DATA_BUCKETS   512 /* hash chains of the cache, by data node number */
#define BATCH_NODES    64  /* consecutive nodes read or written with one system call */
#define PARALLEL_MIN   32  /* data nodes per thread before a flush uses a second thread */
#define DATA_CACHE_MAX                                                    \
    256 /* decrypted data nodes kept (1 MiB; Gramine keeps 48: every full \
         * cache of dirty nodes costs a flush of the tree and metadata) */

/* A record of the recovery file (reference §4.6, the layout Gramine writes): u64 LE physical
 * node number, then the node's 4096 bytes of ciphertext as they were on disk before the flush.
 * There is nothing else in the file: no count, no old size. The old disk size is the one the
 * recorded node 0 implies (its authenticated file_size), so nodes a flush appends need no
 * record; replay cuts the file back to that size. */
#define RECORD_SIZE (8 + PF_NODE_SIZE)

struct node {
    bool mht;
    uint64_t number; /* logical: data node d or MHT m */
    bool dirty;
    struct node *prev, *next; /* data nodes: LRU list, most recent first */
    struct node* hnext;       /* data nodes: hash chain */
    uint8_t plain[PF_NODE_SIZE];
};

struct pf_file {
    int fd;
    bool writable;
    uint8_t kdk[PF_KEY_SIZE];
    uint8_t header[HEADER_V2];    /* as on disk (v2 layout once migrated) */
    uint8_t meta[ENCRYPTED_SIZE]; /* decrypted metadata */
    bool meta_dirty;
    uint64_t size;
    uint64_t disk_size; /* as on disk after the last flush */
    struct node** mhts; /* loaded MHT nodes by number (never evicted) */
    size_t nmhts;
    size_t ndata; /* loaded data nodes, on the LRU list and in `buckets` */
    struct node* buckets[DATA_BUCKETS];
    struct node *lru_head, *lru_tail;
    char* recovery_path;  /* NULL: no recovery (reference §4.6) */
    bool recovery_synced; /* the recovery file's directory entry was fsynced */
    /* A flush failed (or the test hook fired): sticky, as Gramine's file_status; every later
     * call of the handle returns it, and it writes nothing more (see flush in pf.c). */
    enum pf_status failed;
    EVP_CIPHER_CTX* ctx;  /* reused for every node */
    EVP_CIPHER_CTX* ctx2; /* the second thread's, for large flushes */
    uint8_t* batch2;
    struct node* spare;     /* evicted data nodes, reused (chained by hnext) */
    uint8_t rand_pool[512]; /* node keys, drawn in bulk */
    size_t rand_left;       /* unused bytes at the end of rand_pool */
    uint8_t* batch;         /* ciphertext of up to BATCH_NODES consecutive nodes */
};

/* The key and tag slot that protects a node: in its parent MHT, or in the metadata for the
 * root MHT. */
static inline size_t slot_offset(bool mht, uint64_t number) {
    return mht ? PF_DATA_PER_MHT * 32 + ((number - 1) % PF_CHILDREN_MHT) * 32
               : (number % PF_DATA_PER_MHT) * 32;
}

static inline uint64_t parent_mht(bool mht, uint64_t number) {
    return mht ? (number - 1) / PF_CHILDREN_MHT : number / PF_DATA_PER_MHT;
}

static inline uint64_t get_u64(const uint8_t* p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void put_u64(uint8_t* p, uint64_t v) {
    memcpy(p, &v, 8);
}

/* primitives.c: AES-128-GCM of one node or the metadata (`ctx`: the file's reusable context,
 * NULL for a temporary one), the metadata key (KDF), node 0 decrypted (v1 or v2 layout) */
enum pf_status pfi_gcm(EVP_CIPHER_CTX* ctx, bool encrypt, const uint8_t key[PF_KEY_SIZE],
                       const uint8_t* in, size_t len, uint8_t* out, uint8_t mac[PF_MAC_SIZE]);
enum pf_status pfi_metadata_key(const uint8_t kdk[PF_KEY_SIZE], const uint8_t nonce[32],
                                uint8_t out[PF_KEY_SIZE]);
enum pf_status pfi_decrypt_metadata(const uint8_t kdk[PF_KEY_SIZE], const uint8_t* node,
                                    uint8_t meta[ENCRYPTED_SIZE]);
/* primitives.c: the host file. Every change to it or to the recovery file asks
 * pfi_io_allowed first (the test hook, pf_insecure__io_hook). */
bool pfi_io_allowed(struct pf_file* pf);
enum pf_status pfi_read_node(const struct pf_file* pf, uint64_t physical, uint8_t* out);
enum pf_status pfi_write_at(struct pf_file* pf, int fd, const uint8_t* in, size_t len,
                            uint64_t off);
enum pf_status pfi_write_node(struct pf_file* pf, uint64_t physical, const uint8_t* in);
enum pf_status pfi_sync_fd(struct pf_file* pf, int fd);
enum pf_status pfi_truncate_fd(struct pf_file* pf, uint64_t size);

/* recovery.c: steps 1 and 2 of a protected flush (undo records; the pending-write flag), and
 * the replay an open does when it finds the flag set */
enum pf_status pfi_write_recovery(struct pf_file* pf, uint8_t old_header[HEADER_V2]);
enum pf_status pfi_set_pending(struct pf_file* pf, const uint8_t old_header[HEADER_V2]);
enum pf_status pfi_recover(struct pf_file* pf);
