/* SPDX-License-Identifier: Apache-2.0 */
/* Recovery files of Gramine's encrypted files (reference §4.6): see pf_internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pf_internal.h"

static enum pf_status add_record(struct pf_file* pf, int rfd, uint64_t* off, uint64_t physical,
                                 uint8_t rec[RECORD_SIZE]) {
    if (physical >= pf->disk_size / PF_NODE_SIZE)
        return PF_SUCCESS; /* appended by this flush: nothing to undo but the size */
    put_u64(rec, physical);
    enum pf_status s = pfi_read_node(pf, physical, rec + 8);
    if (s == PF_SUCCESS)
        s = pfi_write_at(pf, rfd, rec, RECORD_SIZE, *off);
    *off += RECORD_SIZE;
    return s;
}

/* fsync of the directory holding a new recovery file, once per handle and path: the file must
 * survive a power cut before the flag that points at it is set. */
static enum pf_status sync_recovery_dir(struct pf_file* pf) {
    char dir[PATH_MAX];
    const char* slash = strrchr(pf->recovery_path, '/');
    size_t len        = slash ? (size_t)(slash - pf->recovery_path) : 1;
    if (len >= sizeof(dir))
        return PF_PATH_TOO_LONG;
    if (!slash)
        memcpy(dir, ".", 1);
    else if (len == 0)
        memcpy(dir, "/", (len = 1));
    else
        memcpy(dir, pf->recovery_path, len);
    dir[len] = '\0';
    int dfd  = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return PF_WRITE_TO_DISK_FAILED;
    enum pf_status s = pfi_sync_fd(pf, dfd);
    close(dfd);
    if (s == PF_SUCCESS)
        pf->recovery_synced = true;
    return s;
}

/* Step 1 of the protocol: the recovery file holds the old ciphertext of every node this flush
 * overwrites (data nodes, MHT nodes bottom-up, root MHT = node 1, then node 0, as Gramine
 * orders them) and is fsynced. `old_header` receives node 0's plaintext header as on disk. */
enum pf_status pfi_write_recovery(struct pf_file* pf, uint8_t old_header[HEADER_V2]) {
    if (!pfi_io_allowed(pf))
        return PF_WRITE_TO_DISK_FAILED;
    /* never through a symlink (the directory may be one the app writes to) */
    int rfd = open(pf->recovery_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (rfd < 0)
        return PF_WRITE_TO_DISK_FAILED;
    uint8_t rec[RECORD_SIZE];
    uint64_t off     = 0;
    enum pf_status s = PF_SUCCESS;
    for (struct node* n = pf->lru_head; n && s == PF_SUCCESS; n = n->next)
        if (n->dirty)
            s = add_record(pf, rfd, &off, pf_physical_data_node(n->number), rec);
    for (size_t m = pf->nmhts; s == PF_SUCCESS && m-- > 0;)
        if (pf->mhts[m] && pf->mhts[m]->dirty)
            s = add_record(pf, rfd, &off, pf_physical_mht_node(m), rec);
    if (s == PF_SUCCESS)
        s = add_record(pf, rfd, &off, 0, rec);
    if (s == PF_SUCCESS) {
        memcpy(old_header, rec + 8, HEADER_V2);
        s = pfi_sync_fd(pf, rfd);
    }
    close(rfd);
    if (s == PF_SUCCESS && !pf->recovery_synced)
        s = sync_recovery_dir(pf);
    return s;
}

/* Step 2: the pending-write flag (header byte 58, a plain byte: the header after the metadata
 * tag is not authenticated) set in node 0 on disk, and fsynced. Written as the whole 59-byte
 * plaintext header in one write inside the first sector. For a v1 node 0 the major byte
 * becomes 2 so that the flag is seen, and byte 58 (the first encrypted byte in v1) is lost:
 * replay restores the recorded v1 node. */
enum pf_status pfi_set_pending(struct pf_file* pf, const uint8_t old_header[HEADER_V2]) {
    uint8_t header[HEADER_V2];
    memcpy(header, old_header, HEADER_V2);
    header[8]        = PF_MAJOR_VERSION;
    header[58]       = FLAG_PENDING;
    enum pf_status s = pfi_write_at(pf, pf->fd, header, HEADER_V2, 0);
    return s == PF_SUCCESS ? pfi_sync_fd(pf, pf->fd) : s;
}

struct record_ref {
    uint64_t number, index; /* physical node number, record index in the file */
};

struct replay {
    int rfd;
    size_t count;
    struct record_ref* refs; /* by ascending node number */
    uint8_t node0[PF_NODE_SIZE];
    uint8_t meta[ENCRYPTED_SIZE]; /* the recorded node 0, decrypted */
    size_t nmhts;                 /* recorded MHT nodes verified so far, ascending */
    uint64_t* mht_ids;
    uint8_t (*mhts)[PF_NODE_SIZE]; /* their plaintext */
};

static void replay_free(struct replay* r) {
    if (r->rfd >= 0)
        close(r->rfd);
    if (r->mhts) /* the verified ones, and the one a failed check decrypted into */
        OPENSSL_cleanse(r->mhts, (r->nmhts + 1) * PF_NODE_SIZE);
    OPENSSL_cleanse(r->meta, sizeof(r->meta));
    free(r->mhts);
    free(r->mht_ids);
    free(r->refs);
}

static int by_number(const void* a, const void* b) {
    uint64_t x = ((const struct record_ref*)a)->number, y = ((const struct record_ref*)b)->number;
    return x < y ? -1 : x > y;
}

static enum pf_status read_record(const struct replay* r, uint64_t index, uint8_t* out) {
    ssize_t n = pread(r->rfd, out, PF_NODE_SIZE, (off_t)(index * RECORD_SIZE + 8));
    return n == PF_NODE_SIZE ? PF_SUCCESS : PF_RECOVERY_NEEDED;
}

/* The index of the records: whole records only, node numbers unique, node 0 among them. A
 * recovery file cut short (a crash while it was written) fails here. */
static enum pf_status replay_load(struct replay* r, const char* path) {
    struct stat st;
    r->rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (r->rfd < 0 || fstat(r->rfd, &st) < 0 || st.st_size <= 0 || st.st_size % RECORD_SIZE)
        return PF_RECOVERY_NEEDED;
    r->count = (size_t)(st.st_size / RECORD_SIZE);
    r->refs  = calloc(r->count, sizeof(*r->refs));
    if (!r->refs)
        return PF_NO_MEMORY;
    size_t mhts = 0;
    for (size_t i = 0; i < r->count; i++) {
        uint8_t number[8];
        if (pread(r->rfd, number, 8, (off_t)(i * RECORD_SIZE)) != 8)
            return PF_RECOVERY_NEEDED;
        r->refs[i] = (struct record_ref){get_u64(number), i};
        mhts += r->refs[i].number % (PF_DATA_PER_MHT + 1) == 1; /* physical 1, 98, 195, ... */
    }
    r->mhts    = calloc(mhts + 1, PF_NODE_SIZE);
    r->mht_ids = calloc(mhts + 1, sizeof(*r->mht_ids));
    if (!r->mhts || !r->mht_ids)
        return PF_NO_MEMORY;
    qsort(r->refs, r->count, sizeof(*r->refs), by_number);
    for (size_t i = 1; i < r->count; i++)
        if (r->refs[i].number == r->refs[i - 1].number)
            return PF_RECOVERY_NEEDED;
    return r->refs[0].number == 0 ? PF_SUCCESS : PF_RECOVERY_NEEDED;
}

/* The key and tag slot of physical node p (> 0): in the recorded metadata for the root, else
 * in the recorded (already verified) parent MHT; NULL if the parent was not recorded. A flush
 * rewrites the parents of every node it rewrites, so they are always recorded. */
static const uint8_t* replay_slot(const struct replay* r, uint64_t p, bool* ret_mht,
                                  uint64_t* ret_number) {
    bool mht       = (p - 1) % (PF_DATA_PER_MHT + 1) == 0;
    uint64_t group = (p - 2) / (PF_DATA_PER_MHT + 1);
    *ret_mht       = mht;
    *ret_number    = mht ? (p - 1) / (PF_DATA_PER_MHT + 1) : p - 2 - group;
    if (p == 1)
        return r->meta + OFF_ROOT_KEY;
    uint64_t want = parent_mht(mht, *ret_number);
    for (size_t lo = 0, hi = r->nmhts; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->mht_ids[mid] == want)
            return r->mhts[mid] + slot_offset(mht, *ret_number);
        if (r->mht_ids[mid] < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Checks every record against the tree it belongs to before anything is written, top-down (a
 * parent's physical number is below its children's): node 0 by its tag under the key, then
 * each node by the key and tag in its recorded parent. The recorded node 0 must also carry the
 * nonce and tag still in node 0 on disk (a protocol flush changes them last, in its commit):
 * a stale recovery file from an earlier flush fails here even if the flag were set by hand.
 * `ret_nodes`: the node count of the file before the interrupted flush. */
static enum pf_status replay_verify(struct pf_file* pf, struct replay* r, uint64_t* ret_nodes) {
    uint8_t header[HEADER_V2], cipher[PF_NODE_SIZE], plain[PF_NODE_SIZE];
    if (read_record(r, r->refs[0].index, r->node0) != PF_SUCCESS ||
        pread(pf->fd, header, HEADER_V2, 0) != HEADER_V2 || memcmp(header, r->node0, 8) != 0 ||
        memcmp(header + 9, r->node0 + 9, HEADER_V2 - 10) != 0 ||
        pfi_decrypt_metadata(pf->kdk, r->node0, r->meta) != PF_SUCCESS)
        return PF_RECOVERY_NEEDED;
    uint64_t size = get_u64(r->meta + OFF_FILE_SIZE);
    if (size > (UINT64_MAX >> 16) || (r->node0[8] == 2 && (r->node0[58] & FLAG_PENDING)))
        return PF_RECOVERY_NEEDED;
    *ret_nodes       = pf_disk_size(size) / PF_NODE_SIZE;
    enum pf_status s = PF_SUCCESS;
    for (size_t i = 1; i < r->count && s == PF_SUCCESS; i++) {
        bool mht            = false;
        uint64_t number     = 0;
        const uint8_t* slot = NULL;
        if (r->refs[i].number < *ret_nodes)
            slot = replay_slot(r, r->refs[i].number, &mht, &number);
        if (!slot || read_record(r, r->refs[i].index, cipher) != PF_SUCCESS)
            s = PF_RECOVERY_NEEDED;
        uint8_t* out = mht ? r->mhts[r->nmhts] : plain;
        if (s == PF_SUCCESS)
            s = pfi_gcm(pf->ctx, false, slot, cipher, PF_NODE_SIZE, out,
                        (uint8_t*)slot + PF_KEY_SIZE);
        if (s == PF_SUCCESS && mht)
            r->mht_ids[r->nmhts++] = number;
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return s;
}

/* Writes the records back: every node but 0, the cut to the old size (nodes the flush
 * appended go), fsync, then node 0, which clears the flag, fsync. A crash in between leaves the
 * flag set and the same records: the next open replays again. */
static enum pf_status replay_apply(struct pf_file* pf, const struct replay* r, uint64_t nodes) {
    uint8_t cipher[PF_NODE_SIZE];
    enum pf_status s = PF_SUCCESS;
    for (size_t i = 1; i < r->count && s == PF_SUCCESS; i++) {
        s = read_record(r, r->refs[i].index, cipher);
        if (s == PF_SUCCESS)
            s = pfi_write_node(pf, r->refs[i].number, cipher);
    }
    if (s == PF_SUCCESS)
        s = pfi_truncate_fd(pf, nodes * PF_NODE_SIZE);
    if (s == PF_SUCCESS)
        s = pfi_sync_fd(pf, pf->fd);
    if (s == PF_SUCCESS)
        s = pfi_write_node(pf, 0, r->node0);
    if (s == PF_SUCCESS)
        s = pfi_sync_fd(pf, pf->fd);
    return s;
}

/* The pending-write flag is set: replay the recovery file, if there is one that fits, into the
 * host file. Needs `fd` open for writing even for a read-only pf_file (no replay in memory). */
enum pf_status pfi_recover(struct pf_file* pf) {
    int mode = fcntl(pf->fd, F_GETFL);
    if (!pf->recovery_path || mode < 0 || (mode & O_ACCMODE) == O_RDONLY)
        return PF_RECOVERY_NEEDED;
    struct replay r  = {.rfd = -1};
    uint64_t nodes   = 0;
    enum pf_status s = replay_load(&r, pf->recovery_path);
    if (s == PF_SUCCESS)
        s = replay_verify(pf, &r, &nodes);
    if (s == PF_SUCCESS)
        s = replay_apply(pf, &r, nodes);
    replay_free(&r);
    if (s == PF_SUCCESS)
        unlink(pf->recovery_path); /* replayed: stale now (and a later one replaces it) */
    return s == PF_NO_MEMORY ? s : s == PF_SUCCESS ? PF_SUCCESS : PF_RECOVERY_NEEDED;
}

enum pf_status pf_set_recovery_path(struct pf_file* pf, const char* recovery_path) {
    char* copy = NULL;
    if (recovery_path && !(copy = strdup(recovery_path)))
        return PF_NO_MEMORY;
    /* the recovery file follows the host file: needed if a flush of this handle died (the
     * flag stays set on disk), stale otherwise */
    if (pf->recovery_path && copy && rename(pf->recovery_path, copy) < 0 && errno != ENOENT) {
        free(copy);
        return PF_CALLBACK_FAILED;
    }
    if (pf->recovery_path && !copy && !pf->failed)
        unlink(pf->recovery_path);
    free(pf->recovery_path);
    pf->recovery_path   = copy;
    pf->recovery_synced = false;
    return PF_SUCCESS;
}
