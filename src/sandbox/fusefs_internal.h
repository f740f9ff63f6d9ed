/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: what the two halves of the FUSE view share — fusefs.c (the node table,
 * lookup, attributes, directories, the session and its workers) and fusefs_files.c (opening,
 * reading and writing files, creating, renaming and removing names).
 */
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "fusefs.h"
#include "hostpath.h"

#define CHUNK_SIZE   (16 * 1024)           /* TRUSTED_CHUNK_SIZE = 4 pages */
#define COPY_MAX     (1024 * 1024)         /* trusted files up to this size are kept ... */
#define COPY_MAX_PT  (64 * 1024 * 1024)    /* ... (this size when passthrough works) ... */
#define COPY_BUDGET  (1024L * 1024 * 1024) /* ... within this total */
#define LONG_TIMEOUT 3600.0                /* the view does not change while the app runs */
#define FUSE_WORKERS 6

/* FUSE passthrough (Linux >= 6.9; the libfuse and kernel headers of Debian 12 predate it):
 * the kernel serves read and mmap of an open file straight from a backing file the server
 * registered, with no request per read. moat registers the sealed in-memory copy of a
 * verified trusted file, so the app reads verified bytes at page-cache speed. */
#define PT_INIT_EXT       (1u << 30) /* FUSE_INIT_EXT: flags2 is valid */
#define PT_FLAG2          (1u << 5)  /* FUSE_PASSTHROUGH = 1ULL << 37, in flags2 */
#define PT_FOPEN          (1u << 7)  /* FOPEN_PASSTHROUGH */
#define PT_INIT_OUT_DEPTH (offsetof(struct fuse_init_out, flags2) + 4) /* max_stack_depth */
struct pt_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define PT_IOC_BACKING_OPEN  _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

struct node {
    fuse_ino_t ino;
    uint64_t generation; /* inode numbers are reused once the kernel forgot them */
    size_t hash;         /* of app_path, as it is in the index */
    char* app_path;
    char* host_path; /* NULL: synthetic directory (or file, see synthetic_file) */
    bool synthetic_file;
    uint64_t nlookup; /* the kernel's lookups, and uses by an operation in progress */
    enum file_class cls;
    const struct trusted_entry* trusted;
    struct vfile* verified; /* trusted, once opened and verified */
    /* under an encrypted mount: the bound path and the shared open file */
    const struct mount_entry* enc;
    char* bind;
    pthread_mutex_t enc_lock;
    struct encfile* ef;
    unsigned ef_refs;
    /* the plaintext size of the closed file, read from its metadata when the host file had
     * these attributes (a stat of an unchanged file decrypts nothing) */
    bool peek_valid;
    struct stat peek_host;
    uint64_t peek_size;
    /* the name was removed while the kernel may still hold the inode (an open file): the node
     * is no longer found by name, so a new file of that name gets a node of its own; its
     * attributes are those it had when removed */
    bool unlinked;
    struct stat unlinked_st;
};

enum { ST_LOOKUP, ST_GETATTR, ST_OPEN, ST_READ, ST_READDIR, ST_OTHER, ST_MAX };

struct learned {
    char* host_path;
    bool written;
};

struct fusefs {
    uint64_t stat_count[ST_MAX], stat_ns[ST_MAX]; /* for loader.log_level = "debug" */
    bool learn;                                   /* --learn: record every file used */
    /* what moat's own files (and synthetic ones) are reported as owned by: the app's user */
    uid_t owner_uid, host_uid;
    gid_t owner_gid, host_gid;
    bool foreign_unmapped; /* other host ids are reported as ids mapped to nothing */
    struct verifier* verifier;
    struct encfs* encfs;
    int fuse_fd;
    bool want_passthrough; /* root in the initial user namespace: backing files can be opened */
    bool passthrough;      /* the kernel offered it and we asked for it in INIT */
    uint64_t init_unique;  /* the INIT request, whose reply asks for passthrough */
    struct learned* learned;
    size_t nlearned, learned_cap;
    const struct mount_plan* plan;
    const struct file_policy* policy;
    struct hostpath* hp;  /* every host path goes through it (hostpath.h) */
    pthread_mutex_t lock; /* the node table */
    struct node** nodes;  /* index = ino - 1; NULL: free (its number is in free_inos) */
    size_t nnodes, cap;
    fuse_ino_t* free_inos;
    size_t nfree, free_cap;
    uint64_t next_generation;
    size_t nlive, nfreed, peak_live; /* for loader.log_level = "debug" */
    size_t* index;                   /* open addressing: app path -> ino, 0 = empty */
    size_t nindex;
    /* freed nodes and paths a rename or unlink replaced: a worker still serving a request may
     * read them, so each is freed once every worker has started a new request or is idle
     * (epoch-based reclamation: seen[w] is the epoch worker w's request started in) */
    struct retired {
        void* p;
        uint64_t epoch;
        bool node;
    } * retired;
    size_t nretired, retired_cap, reclaim_at;
    uint64_t epoch;
    uint64_t seen[FUSE_WORKERS];
    struct fuse_session* se;
    pthread_t workers[FUSE_WORKERS];
    size_t nworkers, nstarted;
    bool go;
    pthread_mutex_t park_lock;
    pthread_cond_t park_cond;
};

/* fusefs.c */
struct fusefs* fs_of(fuse_req_t req);
void fs_account(struct fusefs* fs, int kind, uint64_t start_ns);
/* The node of an inode number the kernel holds (it holds it for the whole request). */
struct node* fs_node_get(struct fusefs* fs, fuse_ino_t ino);
/* Finds or creates the node for an app path, counting one lookup on it: the caller either
 * replies with its entry (the kernel now counts that lookup) or gives it back with
 * fs_node_forget(fs, n, 1). Until then the node cannot be freed. */
struct node* fs_node_intern(struct fusefs* fs, const char* app_path, const char* host_path);
/* Drops `count` lookups; a node nothing uses any more is freed (its number reused later). */
void fs_node_forget(struct fusefs* fs, struct node* n, uint64_t count);
/* Frees a node whose lookups were all forgotten once its encrypted file is closed. */
void fs_node_closed(struct fusefs* fs, struct node* n);
/* Sets a node's paths (taking them) and what follows from them (class, encrypted mount). */
void fs_node_place(struct fusefs* fs, struct node* n, char* app_path, char* host_path);
/* Under fs->lock: the index entry of a node whose app_path is about to change, and back. */
void fs_index_remove(struct fusefs* fs, struct node* n);
void fs_index_insert(struct fusefs* fs, struct node* n);
/* Under fs->lock: the node of an app path, or NULL. */
struct node* fs_index_find(struct fusefs* fs, const char* app_path);
/* Under fs->lock: frees p once no worker can still be reading it. */
void fs_retire(struct fusefs* fs, void* p);
/* --learn: records a file the app used (`written`: it wrote it). */
void fs_learn(struct fusefs* fs, const char* host_path, bool written);
const char* fs_base_name(const char* path);
/* Registers a verified file's sealed copy for passthrough (verifier_locked callback). */
void fs_register_backing(void* arg, struct vfile* f);
int fs_node_attr(struct fusefs* fs, struct node* n, fuse_ino_t ino, struct stat* st);
/* The inode number the app sees (st_ino): never the same for two nodes in one run, where the
 * kernel's inode numbers (FUSE node ids) are reused once forgotten. A file the kernel forgot
 * and looks up again gets a new one, as on a network file system. */
static inline ino_t fs_app_ino(const struct node* n) {
    return (ino_t)n->generation + 1;
}
/* Rewrites st's owner as the app sees it (fusefs_set_owner). */
void fs_owner_attr(const struct fusefs* fs, struct stat* st);
/* How long the kernel may cache a node's entry and attributes. */
double fs_timeout_for(const struct node* n);
/* LOOKUP (mkdir answers with the new directory's entry through it). */
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
/* The backing file of the OPEN reply being sent on this thread (io_writev amends it). */
extern _Thread_local int32_t tls_backing_id;

/* fusefs_files.c: fills in the file operations of the view. */
void fusefs_file_ops(struct fuse_lowlevel_ops* ops);
