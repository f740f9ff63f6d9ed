/* SPDX-License-Identifier: Apache-2.0 */
/* Gramine's encrypted-file format: see pf.h and ../shared/reference/gramine.md §4. */
#include "pf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char* const g_status[] = {
    [PF_SUCCESS]              = "Success",
    [PF_UNKNOWN_ERROR]        = "Unknown error",
    [PF_UNINITIALIZED]        = "Protected Files uninitialized",
    [PF_INVALID_PARAMETER]    = "Invalid parameter",
    [PF_INVALID_MODE]         = "Invalid mode",
    [PF_NO_MEMORY]            = "Not enough memory",
    [PF_INVALID_VERSION]      = "Invalid version",
    [PF_INVALID_HEADER]       = "Invalid header",
    [PF_INVALID_PATH]         = "Invalid path",
    [PF_MAC_MISMATCH]         = "MAC mismatch",
    [PF_NOT_IMPLEMENTED]      = "Functionality not implemented",
    [PF_CALLBACK_FAILED]      = "Callback failed",
    [PF_PATH_TOO_LONG]        = "Path is too long",
    [PF_RECOVERY_NEEDED]      = "File recovery needed but failed",
    [PF_FLUSH_ERROR]          = "Flush error",
    [PF_CRYPTO_ERROR]         = "Crypto error",
    [PF_CORRUPTED]            = "File is corrupted",
    [PF_WRITE_TO_DISK_FAILED] = "Write to disk failed",
};

const char* pf_strerror(enum pf_status status) {
    return (unsigned)status < sizeof(g_status) / sizeof(g_status[0]) ? g_status[status]
                                                                     : "Unknown error";
}

/* ---------------------------------------------------------------------------------------- */
/* Node numbering (reference §4.4)                                                            */

uint64_t pf_physical_data_node(uint64_t d) {
    return d + 2 + d / PF_DATA_PER_MHT;
}

uint64_t pf_physical_mht_node(uint64_t m) {
    return m == 0 ? 1 : 1 + (PF_DATA_PER_MHT + 1) * m;
}

uint64_t pf_data_node_count(uint64_t size) {
    return size <= PF_MD_USER_DATA ? 0 : (size - PF_MD_USER_DATA + PF_NODE_SIZE - 1) / PF_NODE_SIZE;
}

uint64_t pf_mht_node_count(uint64_t size) {
    uint64_t d = pf_data_node_count(size);
    return (d + PF_DATA_PER_MHT - 1) / PF_DATA_PER_MHT;
}

uint64_t pf_disk_size(uint64_t size) {
    uint64_t d = pf_data_node_count(size);
    return d == 0 ? PF_NODE_SIZE : (pf_physical_data_node(d - 1) + 1) * PF_NODE_SIZE;
}

/* ---------------------------------------------------------------------------------------- */
/* Nodes                                                                                      */

static uint8_t* slot_of(struct pf_file* pf, struct node* parent, bool mht, uint64_t number) {
    if (mht && number == 0)
        return pf->meta + OFF_ROOT_KEY; /* key then mac, adjacent */
    return parent->plain + slot_offset(mht, number);
}

static enum pf_status get_mht(struct pf_file* pf, uint64_t m, struct node** ret);

/* A node to fill: an evicted data node when there is one. */
static struct node* node_alloc(struct pf_file* pf) {
    struct node* n = pf->spare;
    if (n)
        pf->spare = n->hnext;
    else if (!(n = malloc(sizeof(*n))))
        return NULL;
    n->dirty = false;
    n->prev = n->next = n->hnext = NULL;
    return n;
}

/* Loads (decrypting and checking) or creates node (mht, number); `exists`: on disk, and then
 * `cipher` (if not NULL) holds its ciphertext, already read. */
static enum pf_status load_node(struct pf_file* pf, bool mht, uint64_t number, bool exists,
                                const uint8_t* cipher, struct node** ret) {
    struct node* parent = NULL;
    enum pf_status s    = PF_SUCCESS;
    if (!(mht && number == 0))
        s = get_mht(pf, parent_mht(mht, number), &parent);
    if (s != PF_SUCCESS)
        return s;
    struct node* n = node_alloc(pf);
    if (!n)
        return PF_NO_MEMORY;
    n->mht    = mht;
    n->number = number;
    if (!exists) {
        memset(n->plain, 0, sizeof(n->plain));
        n->dirty = true; /* a new node: zeros until written */
        *ret     = n;
        return PF_SUCCESS;
    }
    uint8_t own[PF_NODE_SIZE];
    if (!cipher) {
        s = pfi_read_node(pf, mht ? pf_physical_mht_node(number) : pf_physical_data_node(number),
                          own);
        cipher = own;
    }
    uint8_t* slot = slot_of(pf, parent, mht, number);
    if (s == PF_SUCCESS)
        s = pfi_gcm(pf->ctx, false, slot, cipher, PF_NODE_SIZE, n->plain, slot + PF_KEY_SIZE);
    if (s != PF_SUCCESS) {
        n->hnext  = pf->spare;
        pf->spare = n;
        return s;
    }
    *ret = n;
    return PF_SUCCESS;
}

static enum pf_status get_mht(struct pf_file* pf, uint64_t m, struct node** ret) {
    if (m < pf->nmhts && pf->mhts[m]) {
        *ret = pf->mhts[m];
        return PF_SUCCESS;
    }
    if (m >= pf->nmhts) {
        size_t cap          = m + 1 > 2 * pf->nmhts ? m + 1 : 2 * pf->nmhts;
        struct node** grown = realloc(pf->mhts, cap * sizeof(*grown));
        if (!grown)
            return PF_NO_MEMORY;
        memset(grown + pf->nmhts, 0, (cap - pf->nmhts) * sizeof(*grown));
        pf->mhts  = grown;
        pf->nmhts = cap;
    }
    struct node* n;
    enum pf_status s = load_node(pf, true, m, m < pf_mht_node_count(pf->size), NULL, &n);
    if (s != PF_SUCCESS)
        return s;
    if (n->dirty) /* a new MHT: its parent's slot changes on flush */
        pf->meta_dirty = true;
    pf->mhts[m] = n;
    *ret        = n;
    return PF_SUCCESS;
}

/* Data-node cache: at most DATA_CACHE_MAX nodes on an LRU list, found by hash. */
static struct node* data_find(const struct pf_file* pf, uint64_t d) {
    for (struct node* n = pf->buckets[d % DATA_BUCKETS]; n; n = n->hnext)
        if (n->number == d)
            return n;
    return NULL;
}

static void lru_unlink(struct pf_file* pf, struct node* n) {
    if (n->prev)
        n->prev->next = n->next;
    else
        pf->lru_head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        pf->lru_tail = n->prev;
    n->prev = n->next = NULL;
}

static void lru_front(struct pf_file* pf, struct node* n) {
    n->next = pf->lru_head;
    if (pf->lru_head)
        pf->lru_head->prev = n;
    pf->lru_head = n;
    if (!pf->lru_tail)
        pf->lru_tail = n;
}

static void data_remove(struct pf_file* pf, struct node* n) {
    struct node** link = &pf->buckets[n->number % DATA_BUCKETS];
    while (*link != n)
        link = &(*link)->hnext;
    *link = n->hnext;
    lru_unlink(pf, n);
    pf->ndata--;
    n->hnext  = pf->spare; /* plaintext stays in the file's own memory, wiped by pf_close */
    pf->spare = n;
}

static void data_insert(struct pf_file* pf, struct node* n) {
    n->hnext                              = pf->buckets[n->number % DATA_BUCKETS];
    pf->buckets[n->number % DATA_BUCKETS] = n;
    lru_front(pf, n);
    pf->ndata++;
}

static enum pf_status flush(struct pf_file* pf);

/* Room in the cache for `count` (<= DATA_CACHE_MAX) more nodes: the least recently used clean
 * nodes go; when only dirty ones are left, everything is flushed first, as Gramine does. A
 * flush uses pf->batch: a caller holding ciphertext there makes its room before reading. */
static enum pf_status make_room(struct pf_file* pf, size_t count) {
    while (pf->ndata && pf->ndata + count > DATA_CACHE_MAX) {
        struct node* victim = pf->lru_tail;
        while (victim && victim->dirty)
            victim = victim->prev;
        if (!victim) {
            enum pf_status s = flush(pf);
            if (s != PF_SUCCESS)
                return s;
            victim = pf->lru_tail;
        }
        data_remove(pf, victim);
    }
    return PF_SUCCESS;
}

/* Data node d, loaded or created (`exists`: within the file's current size). With `whole`
 * the caller overwrites all of it, so an existing node is not read: it gets a new key and tag
 * when flushed, like any changed node. */
static enum pf_status get_data(struct pf_file* pf, uint64_t d, bool whole, struct node** ret) {
    struct node* n = data_find(pf, d);
    if (n) {
        lru_unlink(pf, n);
        lru_front(pf, n);
        *ret = n;
        return PF_SUCCESS;
    }
    enum pf_status s = make_room(pf, 1);
    if (s == PF_SUCCESS)
        s = load_node(pf, false, d, !whole && d < pf_data_node_count(pf->size), NULL, &n);
    if (s != PF_SUCCESS)
        return s;
    data_insert(pf, n);
    *ret = n;
    return PF_SUCCESS;
}

/* Reads the data nodes [first, last] that are not cached yet with one pread per run of
 * consecutive nodes (at most BATCH_NODES; a run ends at an MHT node) and decrypts them into
 * the cache: sequential reads cost a system call per run, not per node. */
static enum pf_status preload(struct pf_file* pf, uint64_t first, uint64_t last) {
    uint64_t count = pf_data_node_count(pf->size);
    if (last >= count)
        last = count - 1;
    if (last - first + 1 > DATA_CACHE_MAX / 2)
        last = first + DATA_CACHE_MAX / 2 - 1; /* the rest loads node by node */
    if (!pf->batch && !(pf->batch = malloc((size_t)BATCH_NODES * PF_NODE_SIZE)))
        return PF_NO_MEMORY;
    for (uint64_t d = first; d <= last && d < count;) {
        if (data_find(pf, d)) {
            d++;
            continue;
        }
        uint64_t start = d, end = d + 1; /* the run: uncached, consecutive on disk */
        while (end <= last && end - start < BATCH_NODES && end % PF_DATA_PER_MHT != 0 &&
               !data_find(pf, end))
            end++;
        /* room first: a flush it needs writes through pf->batch, which must not happen between
         * the read into it and the decryption (the nodes of the run are not cached, so a flush
         * leaves their ciphertext and their keys as they are) */
        enum pf_status s = make_room(pf, (size_t)(end - start));
        if (s != PF_SUCCESS)
            return s;
        size_t len = (size_t)(end - start) * PF_NODE_SIZE;
        ssize_t n =
            pread(pf->fd, pf->batch, len, (off_t)(pf_physical_data_node(start) * PF_NODE_SIZE));
        if (n != (ssize_t)len)
            return n < 0 ? PF_CALLBACK_FAILED : PF_CORRUPTED;
        for (; d < end; d++) {
            struct node* node;
            s = load_node(pf, false, d, true, pf->batch + (size_t)(d - start) * PF_NODE_SIZE,
                          &node);
            if (s != PF_SUCCESS)
                return s;
            data_insert(pf, node);
        }
    }
    return PF_SUCCESS;
}

/* Random bytes for node keys, drawn from OpenSSL's DRBG a few hundred at a time. */
static enum pf_status random_key(struct pf_file* pf, uint8_t out[PF_KEY_SIZE]) {
    if (pf->rand_left < PF_KEY_SIZE) {
        if (RAND_bytes(pf->rand_pool, sizeof(pf->rand_pool)) != 1)
            return PF_CRYPTO_ERROR;
        pf->rand_left = sizeof(pf->rand_pool);
    }
    pf->rand_left -= PF_KEY_SIZE;
    memcpy(out, pf->rand_pool + pf->rand_left, PF_KEY_SIZE);
    OPENSSL_cleanse(pf->rand_pool + pf->rand_left, PF_KEY_SIZE);
    return PF_SUCCESS;
}

/* ---------------------------------------------------------------------------------------- */
/* Flush                                                                                      */

/* Encrypts a node with a fresh key into `cipher` and puts key and tag into its parent. */
static enum pf_status seal_node(struct pf_file* pf, struct node* n, uint8_t cipher[PF_NODE_SIZE]) {
    struct node* parent = NULL;
    enum pf_status s    = PF_SUCCESS;
    if (!(n->mht && n->number == 0))
        s = get_mht(pf, parent_mht(n->mht, n->number), &parent);
    if (s != PF_SUCCESS)
        return s;
    uint8_t* slot = slot_of(pf, parent, n->mht, n->number);
    s             = random_key(pf, slot);
    if (s == PF_SUCCESS)
        s = pfi_gcm(pf->ctx, true, slot, n->plain, PF_NODE_SIZE, cipher, slot + PF_KEY_SIZE);
    if (s != PF_SUCCESS)
        return s;
    if (parent)
        parent->dirty = true;
    else
        pf->meta_dirty = true;
    return PF_SUCCESS;
}

/* Seals and writes a node; it stays dirty unless its bytes were written. */
static enum pf_status encrypt_node(struct pf_file* pf, struct node* n) {
    uint8_t cipher[PF_NODE_SIZE];
    enum pf_status s = seal_node(pf, n, cipher);
    if (s == PF_SUCCESS)
        s = pfi_write_node(
            pf, n->mht ? pf_physical_mht_node(n->number) : pf_physical_data_node(n->number),
            cipher);
    if (s == PF_SUCCESS)
        n->dirty = false;
    return s;
}

static int by_node_number(const void* a, const void* b) {
    uint64_t x = (*(struct node*const*)a)->number, y = (*(struct node*const*)b)->number;
    return x < y ? -1 : x > y;
}

/* Part of a flush's data nodes, sorted, whose keys are already in their parents' slots:
 * encrypted (tag into the slot) and written with one pwrite per run of consecutive nodes (at
 * most BATCH_NODES). Touches nothing shared but the host file and its own nodes' slots, so
 * two of these run at once. */
struct seal_job {
    struct pf_file* pf;
    EVP_CIPHER_CTX* ctx;
    uint8_t* batch;
    struct node** nodes;
    uint8_t** slots;
    size_t count;
    enum pf_status status;
};

static size_t run_length(struct node* const* nodes, size_t count) {
    size_t run = 1;
    while (run < count && run < BATCH_NODES && nodes[run]->number == nodes[0]->number + run &&
           nodes[run]->number % PF_DATA_PER_MHT != 0)
        run++;
    return run;
}

static void* seal_runs(void* arg) {
    struct seal_job* job = arg;
    job->status          = PF_SUCCESS;
    for (size_t i = 0; i < job->count && job->status == PF_SUCCESS;) {
        size_t run = run_length(job->nodes + i, job->count - i);
        for (size_t k = 0; k < run && job->status == PF_SUCCESS; k++) {
            struct node* n = job->nodes[i + k];
            uint8_t* slot  = job->slots[i + k];
            job->status    = pfi_gcm(job->ctx, true, slot, n->plain, PF_NODE_SIZE,
                                     job->batch + k * PF_NODE_SIZE, slot + PF_KEY_SIZE);
        }
        if (job->status == PF_SUCCESS)
            job->status = pfi_write_at(job->pf, job->pf->fd, job->batch, run * PF_NODE_SIZE,
                                       pf_physical_data_node(job->nodes[i]->number) * PF_NODE_SIZE);
        for (size_t k = 0; k < run && job->status == PF_SUCCESS; k++)
            job->nodes[i + k]->dirty = false; /* clean only once its bytes are written */
        i += run;
    }
    return NULL;
}

/* Every dirty data node of one part of a flush (`appended`: physical node number at or past
 * `old_nodes`, else below it), in disk order. A large flush is split in two at a run boundary
 * and the halves are encrypted and written on two threads (the app waits for the flush, so its
 * core is free); a test's I/O hook needs one deterministic order, so never with it. */
static enum pf_status encrypt_data_nodes(struct pf_file* pf, uint64_t old_nodes, bool appended) {
    if (!pf->ndata)
        return PF_SUCCESS;
    struct node** dirty = malloc(pf->ndata * sizeof(*dirty));
    uint8_t** slots     = malloc(pf->ndata * sizeof(*slots));
    enum pf_status s    = dirty && slots ? PF_SUCCESS : PF_NO_MEMORY;
    if (s == PF_SUCCESS && !pf->batch && !(pf->batch = malloc((size_t)BATCH_NODES * PF_NODE_SIZE)))
        s = PF_NO_MEMORY;
    size_t count = 0;
    for (struct node* n = pf->lru_head; s == PF_SUCCESS && n; n = n->next)
        if (n->dirty && (pf_physical_data_node(n->number) >= old_nodes) == appended)
            dirty[count++] = n;
    if (s == PF_SUCCESS)
        qsort(dirty, count, sizeof(*dirty), by_node_number);
    for (size_t i = 0; s == PF_SUCCESS && i < count; i++) { /* fresh keys, parents changed */
        struct node* parent;
        s = get_mht(pf, parent_mht(false, dirty[i]->number), &parent);
        if (s == PF_SUCCESS) {
            slots[i]      = slot_of(pf, parent, false, dirty[i]->number);
            parent->dirty = true;
            s             = random_key(pf, slots[i]);
        }
    }
    struct seal_job jobs[2] = {
        {.pf    = pf,
         .ctx   = pf->ctx,
         .batch = pf->batch,
         .nodes = dirty,
         .slots = slots,
         .count = count},
    };
    bool two = s == PF_SUCCESS && count >= 2 * PARALLEL_MIN && !pf_insecure__io_hook;
    if (two && !pf->ctx2 && !(pf->ctx2 = EVP_CIPHER_CTX_new()))
        two = false;
    if (two && !pf->batch2 && !(pf->batch2 = malloc((size_t)BATCH_NODES * PF_NODE_SIZE)))
        two = false;
    pthread_t helper;
    if (two) {
        size_t half = 0; /* the first run boundary at or after the middle */
        while (half < count / 2)
            half += run_length(dirty + half, count - half);
        jobs[0].count = half;
        jobs[1]       = (struct seal_job){.pf    = pf,
                                          .ctx   = pf->ctx2,
                                          .batch = pf->batch2,
                                          .nodes = dirty + half,
                                          .slots = slots + half,
                                          .count = count - half};
        two           = jobs[1].count && pthread_create(&helper, NULL, seal_runs, &jobs[1]) == 0;
        if (!two)
            jobs[0].count = count;
    }
    if (s == PF_SUCCESS)
        seal_runs(&jobs[0]);
    if (two)
        pthread_join(helper, NULL);
    if (s == PF_SUCCESS)
        s = jobs[0].status != PF_SUCCESS ? jobs[0].status : two ? jobs[1].status : PF_SUCCESS;
    free(dirty);
    free(slots);
    return s;
}

/* Encrypts the metadata with a new nonce and writes node 0 with the pending-write flag clear.
 *
 * Unprotected (no recovery, or no tree node changed): one aligned 4096-byte pwrite, which a
 * killed process cannot tear (one page, one syscall). A power cut can tear it on a disk whose
 * atomic unit is 512 bytes; the node then fails its MAC ("MAC mismatch"), it never reads as
 * wrong data. We accept that, as Gramine does.
 *
 * Under the recovery protocol (`commit`): the encrypted part and padding first, fsync, then
 * the 59-byte plaintext header (new nonce and tag, flag clear) in one write inside the first
 * 512-byte sector, fsync. Until that sector lands, the flag on disk is still set and an open
 * replays the old node 0, so the commit point is a single sector even on a power cut. */
static enum pf_status write_metadata(struct pf_file* pf, bool commit) {
    uint8_t node[PF_NODE_SIZE] = {0};
    uint8_t key[PF_KEY_SIZE];
    memcpy(pf->header, PF_FILE_ID, 8);
    pf->header[8]  = PF_MAJOR_VERSION;
    pf->header[9]  = PF_MINOR_VERSION;
    pf->header[58] = 0; /* feature_flags: no pending write */
    put_u64(pf->meta + OFF_FILE_SIZE, pf->size);
    if (RAND_bytes(pf->header + 10, 32) != 1)
        return PF_CRYPTO_ERROR;
    enum pf_status s = pfi_metadata_key(pf->kdk, pf->header + 10, key);
    if (s == PF_SUCCESS)
        s = pfi_gcm(pf->ctx, true, key, pf->meta, ENCRYPTED_SIZE, node + HEADER_V2,
                    pf->header + 42);
    OPENSSL_cleanse(key, sizeof(key));
    memcpy(node, pf->header, HEADER_V2);
    if (s == PF_SUCCESS && !commit)
        s = pfi_write_node(pf, 0, node);
    if (s == PF_SUCCESS && commit) {
        s = pfi_write_at(pf, pf->fd, node + HEADER_V2, PF_NODE_SIZE - HEADER_V2, HEADER_V2);
        if (s == PF_SUCCESS)
            s = pfi_sync_fd(pf, pf->fd);
        if (s == PF_SUCCESS)
            s = pfi_write_at(pf, pf->fd, node, HEADER_V2, 0);
        if (s == PF_SUCCESS)
            s = pfi_sync_fd(pf, pf->fd);
    }
    if (s == PF_SUCCESS)
        pf->meta_dirty = false;
    return s;
}

/* Marks the parents of every dirty node dirty (encrypting a node changes its parent's slot),
 * so that the nodes a flush will write are known before it writes the first one: the undo
 * records of §4.6 must cover all of them. Parents of loaded nodes are always loaded. */
static enum pf_status mark_parents(struct pf_file* pf) {
    struct node* parent;
    for (struct node* n = pf->lru_head; n; n = n->next) {
        if (!n->dirty)
            continue;
        enum pf_status s = get_mht(pf, parent_mht(false, n->number), &parent);
        if (s != PF_SUCCESS)
            return s;
        parent->dirty = true;
    }
    for (size_t m = pf->nmhts; m-- > 1;) {
        if (!pf->mhts[m] || !pf->mhts[m]->dirty)
            continue;
        enum pf_status s = get_mht(pf, parent_mht(true, m), &parent);
        if (s != PF_SUCCESS)
            return s;
        parent->dirty = true;
    }
    if (pf->nmhts && pf->mhts[0] && pf->mhts[0]->dirty)
        pf->meta_dirty = true;
    return PF_SUCCESS;
}

/* The dirty data and MHT nodes of one part of a flush (see flush): data nodes first, each
 * putting a new key and tag into its MHT, then MHT nodes bottom-up, highest number first, each
 * putting its key and tag into its parent (a lower number, still to come: in this part or, for
 * an appended MHT under an old one, in the in-place part), the root's into the metadata. An
 * appended node's subtree is appended too (children have higher physical numbers), so the
 * appended part never needs a key from the in-place part. */
static enum pf_status write_nodes(struct pf_file* pf, uint64_t old_nodes, bool appended) {
    enum pf_status s = encrypt_data_nodes(pf, old_nodes, appended);
    for (size_t m = pf->nmhts; s == PF_SUCCESS && m-- > 0;)
        if (pf->mhts[m] && pf->mhts[m]->dirty && (pf_physical_mht_node(m) >= old_nodes) == appended)
            s = encrypt_node(pf, pf->mhts[m]);
    return s;
}

/* A flush failed while appending: no byte of the committed state was touched. The appended
 * nodes are dirty again (their bytes go) and the file is cut back to its committed size, which
 * is then exactly the last good state (an open without recovery refuses nodes past the end).
 * Not after the test hook stopped the handle: that is a crash, which changes nothing more. */
static void undo_append(struct pf_file* pf, uint64_t old_nodes) {
    for (struct node* n = pf->lru_head; n; n = n->next)
        if (pf_physical_data_node(n->number) >= old_nodes)
            n->dirty = true;
    for (size_t m = 0; m < pf->nmhts; m++)
        if (pf->mhts[m] && pf_physical_mht_node(m) >= old_nodes)
            pf->mhts[m]->dirty = true;
    (void)pfi_truncate_fd(pf, pf->disk_size); /* a failure here is the flush's already */
}

/* A flush writes, in this order:
 *
 *  (A) the nodes past the end of the committed file (physical number >= disk_size / 4096; a
 *      growing file's new data and MHT nodes). Nothing on disk refers to them yet.
 *  (B) with a recovery file and a changed tree (reference §4.6): undo records, fsync; the
 *      pending-write flag, fsync.
 *  (C) the changed nodes inside the committed file, in place, data then MHT bottom-up; with
 *      recovery, fsync.
 *  (D) node 0 (write_metadata; with recovery, committed in one sector, the flag clear).
 *  (E) the cut, if the file shrank.
 *
 * What a failure (ENOSPC, EFBIG from RLIMIT_FSIZE, EIO, a short write) leaves, and is then
 * returned by this flush and by every later call on the handle (pf->failed, sticky like
 * Gramine's file_status; a node is marked clean only once its bytes are written):
 *
 *  - in (A), with or without recovery: the committed state, untouched; the appended nodes are
 *    cut again (undo_append). Growing files fail here on a full disk or at a size limit,
 *    because only appending (or filling holes, which these files do not have) allocates
 *    blocks: overwriting allocated blocks in place does not run out of space on ordinary
 *    file systems (it can on copy-on-write ones such as btrfs or ZFS).
 *  - in (B): the committed state; a set flag is replayed by the next open (a no-op replay).
 *  - in (C), (D) with recovery: the next open replays the records: the committed state.
 *  - in (C), (D) without recovery: NOT guaranteed. The format overwrites nodes in place and
 *    node 0 names the keys of the old ones, so a node rewritten before node 0 fails its MAC
 *    ("MAC mismatch") in the old state, and a torn node 0 fails in both. This is what
 *    enable_recovery is for; without it we only make such failures rare (appending first) and
 *    never report them as success.
 *  - in (E): the new state is committed; the nodes past its end stay, which an open with
 *    recovery cuts and one without refuses ("File is corrupted").
 *
 * A crash (kill, power cut) in (A) leaves whole nodes past the committed end: an open with
 * recovery cuts them, one without refuses the file. Without recovery, nothing is fsynced: an
 * error the kernel reports only at writeback is seen by the caller's fsync, not here. */
static enum pf_status flush(struct pf_file* pf) {
    if (pf->failed)
        return pf->failed;
    uint64_t old_nodes = pf->disk_size / PF_NODE_SIZE;
    enum pf_status s   = mark_parents(pf);
    bool protect =
        s == PF_SUCCESS && pf->recovery_path && pf->nmhts && pf->mhts[0] && pf->mhts[0]->dirty;
    if (s == PF_SUCCESS && (s = write_nodes(pf, old_nodes, true)) != PF_SUCCESS)
        undo_append(pf, old_nodes);
    if (s == PF_SUCCESS && protect) {
        uint8_t old_header[HEADER_V2];
        s = pfi_write_recovery(pf, old_header);
        if (s == PF_SUCCESS)
            s = pfi_set_pending(pf, old_header);
    }
    if (s == PF_SUCCESS)
        s = write_nodes(pf, old_nodes, false);
    if (s == PF_SUCCESS && protect)
        s = pfi_sync_fd(pf, pf->fd);
    if (s == PF_SUCCESS && pf->meta_dirty)
        s = write_metadata(pf, protect);
    uint64_t disk = pf_disk_size(pf->size);
    if (s == PF_SUCCESS && disk < pf->disk_size)
        s = pfi_truncate_fd(pf, disk); /* shrunk: the nodes past the end go */
    if (s == PF_SUCCESS)
        pf->disk_size = disk;
    else if (!pf->failed)
        pf->failed = s; /* with recovery, a disk mid-update is left to the next open's replay */
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Node 0                                                                                     */

enum pf_status pf_read_header(int fd, struct pf_header* ret) {
    struct stat st;
    uint8_t node[HEADER_V2];
    memset(ret, 0, sizeof(*ret));
    if (fstat(fd, &st) < 0)
        return PF_CALLBACK_FAILED;
    if (st.st_size < PF_NODE_SIZE || st.st_size % PF_NODE_SIZE)
        return PF_INVALID_HEADER;
    if (pread(fd, node, sizeof(node), 0) != (ssize_t)sizeof(node))
        return PF_CALLBACK_FAILED;
    if (memcmp(node, PF_FILE_ID, 8) != 0)
        return PF_INVALID_HEADER;
    ret->major = node[8];
    ret->minor = node[9];
    if (ret->major != 1 && ret->major != 2)
        return PF_INVALID_VERSION;
    memcpy(ret->nonce, node + 10, 32);
    memcpy(ret->mac, node + 42, PF_MAC_SIZE);
    ret->has_flags     = ret->major == 2;
    ret->feature_flags = ret->has_flags ? node[58] : 0;
    ret->disk_size     = (uint64_t)st.st_size;
    return PF_SUCCESS;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening                                                                                    */

static enum pf_status open_existing(struct pf_file* pf, const char* path, char* embedded) {
    struct pf_header h;
    enum pf_status s = pf_read_header(pf->fd, &h);
    if (s == PF_SUCCESS && h.has_flags && (h.feature_flags & FLAG_PENDING)) {
        s = pfi_recover(pf); /* reference §4.6; then the restored file is opened as any other */
        if (s == PF_SUCCESS)
            s = pf_read_header(pf->fd, &h);
        if (s == PF_SUCCESS && h.has_flags && (h.feature_flags & FLAG_PENDING))
            s = PF_RECOVERY_NEEDED;
    }
    if (s != PF_SUCCESS)
        return s;
    uint8_t node[PF_NODE_SIZE];
    if ((s = pfi_read_node(pf, 0, node)) != PF_SUCCESS)
        return s;
    if ((s = pfi_decrypt_metadata(pf->kdk, node, pf->meta)) != PF_SUCCESS)
        return s;
    memcpy(pf->header, node, HEADER_V1);
    pf->header[58] = 0; /* v1 is read as v2 and written as v2 by the first flush */
    if (memchr(pf->meta, 0, PF_PATH_MAX_SIZE) == NULL)
        return PF_CORRUPTED;
    if (path && strcmp((const char*)pf->meta, path) != 0) {
        if (embedded)
            memcpy(embedded, pf->meta, PF_PATH_MAX_SIZE);
        return PF_INVALID_PATH;
    }
    pf->size = get_u64(pf->meta + OFF_FILE_SIZE);
    if (pf->size > (UINT64_MAX >> 16))
        return PF_CORRUPTED;
    pf->disk_size = pf_disk_size(pf->size);
    /* With recovery, whole nodes past the end are what a shrinking flush leaves when it dies
     * after its commit and before it cuts the file (see flush): unreferenced, cut here. */
    if (h.disk_size < pf->disk_size || (h.disk_size > pf->disk_size && !pf->recovery_path))
        return PF_CORRUPTED;
    if (h.disk_size > pf->disk_size && pf->writable &&
        (s = pfi_truncate_fd(pf, pf->disk_size)) != PF_SUCCESS)
        return s;
    if (h.major == 1)
        pf->meta_dirty = pf->writable; /* migrated when the file is written */
    return PF_SUCCESS;
}

enum pf_status pf_open_ex(int fd, const char* path, const char* recovery_path,
                          const uint8_t key[PF_KEY_SIZE], int flags, char* embedded,
                          struct pf_file** ret) {
    *ret = NULL;
    if (fd < 0 || !key || !(flags & (PF_OPEN_READ | PF_OPEN_WRITE)) ||
        (!path && (flags & PF_OPEN_WRITE)))
        return PF_INVALID_PARAMETER;
    if ((flags & PF_OPEN_CREATE) && !(flags & PF_OPEN_WRITE))
        return PF_INVALID_MODE;
    if (path && strlen(path) >= PF_PATH_MAX_SIZE)
        return PF_PATH_TOO_LONG;
    struct pf_file* pf = calloc(1, sizeof(*pf));
    if (!pf)
        return PF_NO_MEMORY;
    pf->fd       = fd;
    pf->writable = flags & PF_OPEN_WRITE;
    memcpy(pf->kdk, key, PF_KEY_SIZE);
    enum pf_status s = PF_SUCCESS;
    if (!(pf->ctx = EVP_CIPHER_CTX_new()))
        s = PF_NO_MEMORY;
    if (recovery_path && !(pf->recovery_path = strdup(recovery_path)))
        s = PF_NO_MEMORY;
    if (s == PF_SUCCESS && (flags & PF_OPEN_CREATE)) {
        strcpy((char*)pf->meta, path);
        s = write_metadata(pf, false); /* creating writes the empty file at once */
        if (s == PF_SUCCESS)
            s = pfi_truncate_fd(pf, PF_NODE_SIZE);
        pf->disk_size = PF_NODE_SIZE;
    } else if (s == PF_SUCCESS) {
        s = open_existing(pf, path, embedded);
    }
    if (s != PF_SUCCESS) {
        pf->writable = false;
        pf_close(pf);
        return s;
    }
    *ret = pf;
    return PF_SUCCESS;
}

enum pf_status pf_open(int fd, const char* path, const uint8_t key[PF_KEY_SIZE], int flags,
                       char* embedded, struct pf_file** ret) {
    return pf_open_ex(fd, path, NULL, key, flags, embedded, ret);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading and writing                                                                        */

/* Where plaintext offset `pos` lives (the metadata's file_data or a data node, loaded or
 * created), and how many bytes of that node follow it; `write` marks the node changed, and a
 * write of `len` bytes that covers a whole node does not read it first. */
static enum pf_status locate(struct pf_file* pf, uint64_t pos, bool write, size_t len,
                             uint8_t** ret, size_t* ret_avail) {
    if (pos < PF_MD_USER_DATA) {
        *ret       = pf->meta + OFF_FILE_DATA + pos;
        *ret_avail = (size_t)(PF_MD_USER_DATA - pos);
        pf->meta_dirty |= write;
        return PF_SUCCESS;
    }
    uint64_t rel = pos - PF_MD_USER_DATA;
    struct node* n;
    bool whole       = write && rel % PF_NODE_SIZE == 0 && len >= PF_NODE_SIZE;
    enum pf_status s = get_data(pf, rel / PF_NODE_SIZE, whole, &n);
    if (s != PF_SUCCESS)
        return s;
    *ret       = n->plain + rel % PF_NODE_SIZE;
    *ret_avail = PF_NODE_SIZE - (size_t)(rel % PF_NODE_SIZE);
    n->dirty |= write;
    return PF_SUCCESS;
}

enum pf_status pf_read(struct pf_file* pf, uint64_t off, size_t size, void* buf, size_t* ret_len) {
    *ret_len = 0;
    if (pf->failed) /* as Gramine's file_status: a handle whose flush failed is done */
        return pf->failed;
    if (off >= pf->size)
        return PF_SUCCESS;
    if (size > pf->size - off)
        size = (size_t)(pf->size - off);
    uint8_t* out = buf;
    if (off + size > PF_MD_USER_DATA + PF_NODE_SIZE) { /* more than one node: batch the reads */
        uint64_t first   = off < PF_MD_USER_DATA ? 0 : (off - PF_MD_USER_DATA) / PF_NODE_SIZE;
        enum pf_status s = preload(pf, first, (off + size - 1 - PF_MD_USER_DATA) / PF_NODE_SIZE);
        if (s != PF_SUCCESS)
            return s;
    }
    while (*ret_len < size) {
        size_t want = size - *ret_len;
        uint8_t* src;
        size_t avail;
        enum pf_status s = locate(pf, off + *ret_len, false, 0, &src, &avail);
        if (s != PF_SUCCESS)
            return s;
        size_t take = want < avail ? want : avail;
        memcpy(out + *ret_len, src, take);
        *ret_len += take;
    }
    return PF_SUCCESS;
}

enum pf_status pf_write(struct pf_file* pf, uint64_t off, size_t size, const void* buf) {
    if (!pf->writable)
        return PF_INVALID_MODE;
    if (pf->failed)
        return pf->failed;
    if (off + size < off || off + size > (UINT64_MAX >> 16))
        return PF_INVALID_PARAMETER;
    if (off > pf->size) { /* the gap reads as zeros: write them through */
        enum pf_status s = pf_set_size(pf, off);
        if (s != PF_SUCCESS)
            return s;
    }
    const uint8_t* in = buf;
    size_t done       = 0;
    while (done < size) {
        uint64_t pos = off + done;
        uint8_t* dst;
        size_t room;
        enum pf_status s = locate(pf, pos, true, size - done, &dst, &room);
        if (s != PF_SUCCESS)
            return s;
        size_t take = size - done < room ? size - done : room;
        memcpy(dst, in + done, take);
        done += take;
        if (pos + take > pf->size) {
            pf->size       = pos + take;
            pf->meta_dirty = true;
        }
    }
    return PF_SUCCESS;
}

uint64_t pf_size(const struct pf_file* pf) {
    return pf->size;
}

const char* pf_path(const struct pf_file* pf) {
    return (const char*)pf->meta;
}

/* Shrinking: nodes past the new end go (their slots are cleared), the bytes of the last node
 * past the end become zeros, and the disk file is cut at the next flush. */
static enum pf_status shrink(struct pf_file* pf, uint64_t size) {
    uint64_t keep_data = pf_data_node_count(size), keep_mht = pf_mht_node_count(size);
    /* the tail of the last kept node (or of the metadata's file_data) */
    if (size < PF_MD_USER_DATA) {
        memset(pf->meta + OFF_FILE_DATA + size, 0, (size_t)(PF_MD_USER_DATA - size));
    } else if (keep_data && (size - PF_MD_USER_DATA) % PF_NODE_SIZE) {
        struct node* n;
        enum pf_status s = get_data(pf, keep_data - 1, false, &n);
        if (s != PF_SUCCESS)
            return s;
        size_t from = (size_t)((size - PF_MD_USER_DATA) % PF_NODE_SIZE);
        memset(n->plain + from, 0, PF_NODE_SIZE - from);
        n->dirty = true;
    }
    /* drop data nodes past the end, clearing their slots in kept MHTs */
    for (struct node *n = pf->lru_head, *next; n; n = next) {
        next = n->next;
        if (n->number >= keep_data)
            data_remove(pf, n);
    }
    uint64_t old_data = pf_data_node_count(pf->size);
    for (uint64_t d = keep_data; d < old_data && d / PF_DATA_PER_MHT < keep_mht; d++) {
        struct node* m;
        enum pf_status s = get_mht(pf, d / PF_DATA_PER_MHT, &m);
        if (s != PF_SUCCESS)
            return s;
        memset(slot_of(pf, m, false, d), 0, 32);
        m->dirty = true;
    }
    /* drop MHT nodes past the end, clearing their slots in kept parents */
    uint64_t old_mht = pf_mht_node_count(pf->size);
    for (uint64_t m = keep_mht; m < old_mht; m++) {
        if (m == 0) {
            memset(pf->meta + OFF_ROOT_KEY, 0, 32);
        } else if ((m - 1) / PF_CHILDREN_MHT < keep_mht) {
            struct node* p;
            enum pf_status s = get_mht(pf, (m - 1) / PF_CHILDREN_MHT, &p);
            if (s != PF_SUCCESS)
                return s;
            memset(slot_of(pf, p, true, m), 0, 32);
            p->dirty = true;
        }
        if (m < pf->nmhts && pf->mhts[m]) { /* its plaintext holds its children's keys */
            OPENSSL_cleanse(pf->mhts[m]->plain, PF_NODE_SIZE);
            free(pf->mhts[m]);
            pf->mhts[m] = NULL;
        }
    }
    pf->size       = size;
    pf->meta_dirty = true;
    return PF_SUCCESS;
}

enum pf_status pf_set_size(struct pf_file* pf, uint64_t size) {
    if (!pf->writable)
        return PF_INVALID_MODE;
    if (pf->failed)
        return pf->failed;
    if (size > (UINT64_MAX >> 16))
        return PF_INVALID_PARAMETER;
    if (size < pf->size)
        return shrink(pf, size);
    static const uint8_t zeros[PF_NODE_SIZE];
    while (pf->size < size) {
        uint64_t chunk   = size - pf->size < PF_NODE_SIZE ? size - pf->size : PF_NODE_SIZE;
        enum pf_status s = pf_write(pf, pf->size, (size_t)chunk, zeros);
        if (s != PF_SUCCESS)
            return s;
    }
    return PF_SUCCESS;
}

enum pf_status pf_rename(struct pf_file* pf, const char* new_path) {
    if (!pf->writable)
        return PF_INVALID_MODE;
    if (strlen(new_path) >= PF_PATH_MAX_SIZE)
        return PF_PATH_TOO_LONG;
    if (pf->failed)
        return pf->failed;
    memset(pf->meta, 0, PF_PATH_MAX_SIZE);
    strcpy((char*)pf->meta, new_path);
    pf->meta_dirty = true;
    return flush(pf);
}

enum pf_status pf_flush(struct pf_file* pf) {
    if (!pf->writable)
        return PF_SUCCESS;
    return flush(pf);
}

enum pf_status pf_close(struct pf_file* pf) {
    if (!pf)
        return PF_SUCCESS;
    enum pf_status s = pf_flush(pf);
    /* reference §4.6: deleted by a clean close (a stale one would be ignored anyway) */
    if (s == PF_SUCCESS && pf->writable && pf->recovery_path) {
        if (pfi_io_allowed(pf))
            unlink(pf->recovery_path);
        else
            s = pf->failed;
    }
    free(pf->recovery_path);
    while (pf->lru_head)
        data_remove(pf, pf->lru_head);
    while (pf->spare) { /* evicted and cached plaintext alike */
        struct node* n = pf->spare;
        pf->spare      = n->hnext;
        OPENSSL_cleanse(n->plain, sizeof(n->plain));
        free(n);
    }
    if (pf->batch) /* ciphertext only, but it was next to plaintext: wiped all the same */
        OPENSSL_cleanse(pf->batch, (size_t)BATCH_NODES * PF_NODE_SIZE);
    free(pf->batch);
    if (pf->batch2)
        OPENSSL_cleanse(pf->batch2, (size_t)BATCH_NODES * PF_NODE_SIZE);
    free(pf->batch2);
    EVP_CIPHER_CTX_free(pf->ctx);
    EVP_CIPHER_CTX_free(pf->ctx2);
    for (size_t m = 0; m < pf->nmhts; m++) {
        if (pf->mhts[m])
            OPENSSL_cleanse(pf->mhts[m]->plain, PF_NODE_SIZE);
        free(pf->mhts[m]);
    }
    free(pf->mhts);
    OPENSSL_cleanse(pf, sizeof(*pf));
    free(pf);
    return s;
}
