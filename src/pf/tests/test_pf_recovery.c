/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for encrypted-file recovery (reference/gramine.md §4.6): a flush stopped before
 * each of its writes, fsyncs and truncations (pf_insecure__io_hook) leaves a file that opens in
 * exactly its old or its new state, and a replay stopped likewise replays again; stale, cut and
 * damaged recovery files; opens without a recovery file or with a read-only fd; the recovery
 * file's life (deleted by a clean close, moved by a rename); and a child process writing and
 * flushing generations that is killed with SIGKILL at random moments. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pf.h"

static const uint8_t g_key[PF_KEY_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

#define SIZE_MHT1 ((size_t)PF_NODE_SIZE * PF_DATA_PER_MHT + PF_MD_USER_DATA) /* 96 nodes */
#define MAX_SIZE  (SIZE_MHT1 + 4096 * 16)

static char g_dir[64], g_host[128], g_rec[128];

/* The fault-injection hook: the `g_fail_at`-th change (from 0) and every later one fail. */
static int g_steps, g_fail_at = -1;

static bool hook(void) {
    return g_fail_at >= 0 && g_steps++ >= g_fail_at;
}

static void arm(int fail_at) {
    g_steps              = 0;
    g_fail_at            = fail_at;
    pf_insecure__io_hook = fail_at >= 0 ? hook : NULL;
}

static int setup_dir(void** state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "%s/pf-rec-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_host, sizeof(g_host), "%s/f", g_dir);
    snprintf(g_rec, sizeof(g_rec), "%s/f.gramine.recovery", g_dir);
    return 0;
}

static int teardown_dir(void** state) {
    (void)state;
    unlink(g_host);
    unlink(g_rec);
    return rmdir(g_dir);
}

static void fill(uint8_t* p, size_t len, unsigned seed) {
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 131 + seed + (i >> 12));
}

/* A file state: plaintext and bound path. */
struct state {
    uint8_t* data;
    size_t len;
    char path[32];
};

/* One change of a scenario, applied to an open file and to a plain buffer alike. */
enum { OP_WRITE, OP_SIZE, OP_RENAME, OP_END };
struct op {
    int kind;
    size_t off, len; /* OP_SIZE: len is the new size */
    const char* path;
};

static void apply(struct pf_file* pf, struct state* st, const struct op* op) {
    if (op->kind == OP_WRITE) {
        uint8_t* buf = malloc(op->len);
        fill(buf, op->len, (unsigned)op->off);
        if (pf)
            assert_int_equal(pf_write(pf, op->off, op->len, buf), PF_SUCCESS);
        if (op->off > st->len)
            memset(st->data + st->len, 0, op->off - st->len);
        memcpy(st->data + op->off, buf, op->len);
        if (op->off + op->len > st->len)
            st->len = op->off + op->len;
        free(buf);
    } else if (op->kind == OP_SIZE) {
        if (pf)
            assert_int_equal(pf_set_size(pf, op->len), PF_SUCCESS);
        if (op->len > st->len)
            memset(st->data + st->len, 0, op->len - st->len);
        st->len = op->len;
    } else { /* a flush: may be stopped by the hook */
        enum pf_status s = pf ? pf_rename(pf, op->path) : PF_SUCCESS;
        assert_true(s == PF_SUCCESS || (g_fail_at >= 0 && g_steps > g_fail_at));
        snprintf(st->path, sizeof(st->path), "%s", op->path);
    }
}

static uint8_t* read_bytes(const char* path, size_t* ret_len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *ret_len = 0;
        return NULL;
    }
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t* p = malloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *ret_len = (size_t)st.st_size;
    return p;
}

static void write_bytes(const char* path, const uint8_t* p, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    close(fd);
}

static bool exists(const char* path) {
    return access(path, F_OK) == 0;
}

static bool pending(void) {
    size_t len;
    uint8_t* p  = read_bytes(g_host, &len);
    bool result = len > 58 && p[8] == 2 && (p[58] & 1);
    free(p);
    return result;
}

/* Opens the host file with recovery (read-only pf_file, writable fd); which of `old` and
 * `new` it holds: 0 or 1, -1 for neither. `ret_status`: the open's status. */
static int which_state(const struct state* old, const struct state* new,
                       enum pf_status* ret_status) {
    int fd = open(g_host, O_RDWR);
    assert_true(fd >= 0);
    struct pf_file* pf;
    *ret_status = pf_open_ex(fd, NULL, g_rec, g_key, PF_OPEN_READ, NULL, &pf);
    if (*ret_status != PF_SUCCESS) {
        close(fd);
        return -1;
    }
    uint8_t* got = malloc(MAX_SIZE + 1);
    size_t n;
    assert_int_equal(pf_read(pf, 0, MAX_SIZE + 1, got, &n), PF_SUCCESS);
    int result = -1;
    for (int i = 0; i < 2 && result < 0; i++) {
        const struct state* s = i ? new : old;
        if (n == s->len && memcmp(got, s->data, n) == 0 && strcmp(pf_path(pf), s->path) == 0)
            result = i;
    }
    free(got);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    close(fd);
    return result;
}

/* Writes the state into a new host file (no hook, clean close). */
static void create(const struct state* st) {
    unlink(g_rec);
    int fd = open(g_host, O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct pf_file* pf;
    assert_int_equal(
        pf_open_ex(fd, st->path, g_rec, g_key, PF_OPEN_WRITE | PF_OPEN_CREATE, NULL, &pf),
        PF_SUCCESS);
    assert_int_equal(pf_write(pf, 0, st->len, st->data), PF_SUCCESS);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    close(fd);
    assert_false(exists(g_rec));
}

/* Opens the host file for writing, applies `ops` and closes, with the `fail_at`-th change of
 * the ops and the close stopped. Returns whether the hook stopped something. */
static bool run_ops(const struct state* st, const struct op* ops, int fail_at) {
    struct state scratch = {.data = malloc(MAX_SIZE), .len = 0};
    int fd               = open(g_host, O_RDWR);
    struct pf_file* pf;
    assert_int_equal(
        pf_open_ex(fd, st->path, g_rec, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf),
        PF_SUCCESS);
    arm(fail_at);
    for (const struct op* op = ops; op->kind != OP_END; op++)
        apply(pf, &scratch, op);
    enum pf_status s = pf_close(pf);
    bool stopped     = g_steps > fail_at;
    arm(-1);
    assert_int_equal(s, stopped ? PF_WRITE_TO_DISK_FAILED : PF_SUCCESS);
    close(fd);
    free(scratch.data);
    return stopped;
}

static const struct op g_grow[] = {
    /* file_data, a node under the root MHT, one under MHT 1, nodes appended */
    {OP_WRITE, 100, 50, NULL},
    {OP_WRITE, 3072 + 4096 * 5 + 10, 5000, NULL},
    {OP_WRITE, SIZE_MHT1 + 4096, 100, NULL},
    {OP_WRITE, SIZE_MHT1 + 4096 * 5, 9000, NULL},
    {OP_END, 0, 0, NULL},
};
static const struct op g_small_to_big[] = {
    {OP_WRITE, 500, 20000, NULL},
    {OP_END, 0, 0, NULL},
};
static const struct op g_shrink[] = {
    {OP_SIZE, 0, 3072 + 4096 + 17, NULL},
    {OP_WRITE, 4000, 100, NULL},
    {OP_END, 0, 0, NULL},
};
static const struct op g_shrink_small[] = {
    {OP_SIZE, 0, 100, NULL},
    {OP_END, 0, 0, NULL},
};
static const struct op g_rename[] = {
    {OP_WRITE, 10000, 300, NULL},
    {OP_WRITE, 20000, 300, NULL},
    {OP_RENAME, 0, 0, "g"}, /* the flush, with the new path */
    {OP_END, 0, 0, NULL},
};

/* Reference §4.6: stopped before any of its changes, a flush leaves the old state or the new
 * one, never anything else, and the switch happens at a single step (the commit). When the
 * flag was left set, a replay stopped at any of its own steps leaves a file whose next open
 * still recovers the old state. */
static void test_crash_at_every_step(void** state) {
    (void)state;
    const struct {
        const struct op* ops;
        size_t size;
    } scenarios[] = {
        {g_grow, SIZE_MHT1 + 4096 * 2},  {g_small_to_big, 1000},    {g_shrink, SIZE_MHT1 + 40000},
        {g_shrink_small, SIZE_MHT1 + 5}, {g_rename, SIZE_MHT1 - 7},
    };
    for (size_t sc = 0; sc < sizeof(scenarios) / sizeof(scenarios[0]); sc++) {
        struct state old = {.data = malloc(MAX_SIZE), .len = scenarios[sc].size, .path = "f"};
        fill(old.data, old.len, (unsigned)sc);
        struct state new = {.data = malloc(MAX_SIZE), .len = old.len, .path = "f"};
        memcpy(new.data, old.data, old.len);
        for (const struct op* op = scenarios[sc].ops; op->kind != OP_END; op++)
            apply(NULL, &new, op);
        create(&old);
        size_t init_len;
        uint8_t* init = read_bytes(g_host, &init_len);
        int last = 0, replays = 0;
        for (int k = 0;; k++) {
            write_bytes(g_host, init, init_len);
            unlink(g_rec);
            bool stopped = run_ops(&old, scenarios[sc].ops, k);
            bool flagged = pending();
            if (flagged)
                assert_true(exists(g_rec)); /* kept by the failed close */
            size_t crashed_len, rec_len;
            uint8_t* crashed = read_bytes(g_host, &crashed_len);
            uint8_t* rec     = read_bytes(g_rec, &rec_len);
            /* a replay stopped at each of its steps */
            for (int j = 0; flagged; j++) {
                arm(j);
                enum pf_status s;
                int got             = which_state(&old, &new, &s);
                bool stopped_replay = g_steps > j;
                arm(-1);
                if (!stopped_replay) {
                    assert_int_equal(got, 0);
                    break;
                }
                assert_int_equal(s, PF_RECOVERY_NEEDED);
                assert_int_equal(which_state(&old, &new, &s), 0);
                write_bytes(g_host, crashed, crashed_len);
                write_bytes(g_rec, rec, rec_len);
                replays++;
            }
            enum pf_status s;
            int got = which_state(&old, &new, &s);
            assert_int_equal(s, PF_SUCCESS);
            assert_true(got == 0 || got == 1);
            assert_true(got >= last); /* old ... old, new ... new */
            last = got;
            if (flagged)
                assert_int_equal(got, 0);
            free(crashed);
            free(rec);
            if (!stopped) {
                assert_int_equal(got, 1);
                assert_false(exists(g_rec)); /* deleted by the clean close */
                assert_true(k >= 3);
                break;
            }
        }
        if (sc != 3) /* shrinking to one node writes node 0 only: nothing to replay */
            assert_true(replays > 0);
        free(init);
        free(old.data);
        free(new.data);
    }
}

/* A flush stopped after the flag was set, on a file of 2 MHTs: returns the host file's bytes;
 * the recovery file is left in place. */
static uint8_t* crashed_file(struct state* old, size_t* ret_len) {
    old->len = SIZE_MHT1 + 4096 * 2;
    snprintf(old->path, sizeof(old->path), "f");
    fill(old->data, old->len, 5);
    create(old);
    for (int k = 0; !pending(); k++)
        run_ops(old, g_grow, k);
    return read_bytes(g_host, ret_len);
}

static void assert_unchanged(const uint8_t* bytes, size_t len) {
    size_t now_len;
    uint8_t* now = read_bytes(g_host, &now_len);
    assert_int_equal(now_len, len);
    assert_memory_equal(now, bytes, len);
    free(now);
}

static void test_recovery_needed(void** state) {
    (void)state;
    struct state old = {.data = malloc(MAX_SIZE)};
    size_t len;
    uint8_t* bytes = crashed_file(&old, &len);
    struct pf_file* pf;
    /* without a recovery path */
    int fd = open(g_host, O_RDWR);
    assert_int_equal(pf_open(fd, "f", g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf),
                     PF_RECOVERY_NEEDED);
    assert_int_equal(pf_open_ex(fd, "f", NULL, g_key, PF_OPEN_READ, NULL, &pf), PF_RECOVERY_NEEDED);
    close(fd);
    assert_unchanged(bytes, len);
    /* a read-only fd cannot be replayed into */
    fd = open(g_host, O_RDONLY);
    assert_int_equal(pf_open_ex(fd, "f", g_rec, g_key, PF_OPEN_READ, NULL, &pf),
                     PF_RECOVERY_NEEDED);
    close(fd);
    assert_unchanged(bytes, len);
    assert_true(exists(g_rec));
    /* a writable one can, even for a read-only pf_file: the old state, and the recovery file
     * is gone */
    enum pf_status s;
    assert_int_equal(which_state(&old, &old, &s), 0);
    assert_false(exists(g_rec));
    free(bytes);
    free(old.data);
}

/* Each damage to the recovery file of a crashed flush: PF_RECOVERY_NEEDED, host file untouched;
 * the intact recovery file then recovers. */
static void test_damaged_recovery_file(void** state) {
    (void)state;
    struct state old = {.data = malloc(MAX_SIZE)};
    size_t len, rec_len;
    uint8_t* bytes      = crashed_file(&old, &len);
    uint8_t* rec        = read_bytes(g_rec, &rec_len);
    const size_t record = 8 + PF_NODE_SIZE;
    assert_true(rec_len >= 4 * record && rec_len % record == 0);
    /* an earlier flush's recovery file: valid records, but of another node 0 than the one on
     * disk (recover, commit a write, stop the next flush after its flag) */
    enum pf_status s;
    assert_int_equal(which_state(&old, &old, &s), 0);
    struct op one[] = {{OP_WRITE, 10, 10, NULL}, {OP_END, 0, 0, NULL}};
    run_ops(&old, one, 1000);
    for (int k = 0; !pending(); k++)
        run_ops(&old, g_grow, k);
    size_t stale_len;
    uint8_t* stale = read_bytes(g_rec, &stale_len);
    const struct {
        const char* what;
        size_t cut;  /* new length, or 0: keep */
        size_t flip; /* offset of a byte to flip, or SIZE_MAX */
        bool dup;    /* append a copy of the first record */
        bool missing, stale;
    } damage[] = {
        {"missing", 0, SIZE_MAX, false, true, false},
        {"empty", 1, SIZE_MAX, false, false, false},
        {"cut inside a record", rec_len - 100, SIZE_MAX, false, false, false},
        {"node 0 record cut off", rec_len - record, SIZE_MAX, false, false, false},
        {"bytes appended", rec_len + 5, SIZE_MAX, false, false, false},
        {"data record flipped", 0, 8 + 1000, false, false, false},
        {"node number flipped", 0, 0, false, false, false},
        {"high node number bit flipped", 0, 7, false, false, false},
        {"root MHT record flipped", 0, rec_len - record - 500, false, false, false},
        {"node 0 record flipped", 0, rec_len - 300, false, false, false},
        {"node 0 nonce flipped", 0, rec_len - record + 8 + 20, false, false, false},
        {"record duplicated", 0, SIZE_MAX, true, false, false},
        {"from an earlier flush", 0, SIZE_MAX, false, false, true},
    };
    for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
        write_bytes(g_host, bytes, len);
        uint8_t* r = malloc(rec_len + record);
        memcpy(r, damage[i].stale ? stale : rec, damage[i].stale ? stale_len : rec_len);
        size_t n = damage[i].stale ? stale_len : rec_len;
        if (damage[i].cut)
            n = damage[i].cut == 1 ? 0 : damage[i].cut;
        if (n > rec_len)
            memset(r + rec_len, 0, n - rec_len);
        if (damage[i].flip != SIZE_MAX)
            r[damage[i].flip] ^= 0x10;
        if (damage[i].dup) {
            memcpy(r + rec_len, r, record);
            n += record;
        }
        if (damage[i].missing)
            unlink(g_rec);
        else
            write_bytes(g_rec, r, n);
        free(r);
        print_message("damage: %s\n", damage[i].what);
        assert_int_equal(which_state(&old, &old, &s), -1);
        assert_int_equal(s, PF_RECOVERY_NEEDED);
        assert_unchanged(bytes, len);
    }
    write_bytes(g_rec, rec, rec_len);
    assert_int_equal(which_state(&old, &old, &s), 0);
    free(stale);
    free(rec);
    free(bytes);
    free(old.data);
}

/* With the flag clear, whatever lies at the recovery path is ignored, and a clean close after
 * a flush deletes it. */
static void test_stale_recovery_file(void** state) {
    (void)state;
    struct state st = {.data = malloc(MAX_SIZE), .len = SIZE_MHT1 + 100, .path = "f"};
    fill(st.data, st.len, 9);
    create(&st);
    uint8_t junk[8 + PF_NODE_SIZE + 33];
    memset(junk, 0, sizeof(junk)); /* a record for node 0 of zeros, then a cut one */
    write_bytes(g_rec, junk, sizeof(junk));
    enum pf_status s;
    assert_int_equal(which_state(&st, &st, &s), 0);
    assert_true(exists(g_rec)); /* a read-only open leaves it */
    struct op one[] = {{OP_WRITE, 5000, 10, NULL}, {OP_END, 0, 0, NULL}};
    run_ops(&st, one, 1000);
    apply(NULL, &st, &one[0]);
    assert_false(exists(g_rec));
    assert_int_equal(which_state(&st, &st, &s), 0);
    free(st.data);
}

/* The recovery file exists from the first flush that changes the tree until the clean close,
 * and follows the host file when it is renamed. */
static void test_recovery_file_life_and_rename(void** state) {
    (void)state;
    struct state st = {.data = malloc(MAX_SIZE), .len = 1000, .path = "f"};
    fill(st.data, st.len, 2);
    create(&st);
    char host2[160], rec2[160];
    snprintf(host2, sizeof(host2), "%s/g", g_dir);
    snprintf(rec2, sizeof(rec2), "%s/g.gramine.recovery", g_dir);
    int fd = open(g_host, O_RDWR);
    struct pf_file* pf;
    assert_int_equal(pf_open_ex(fd, "f", g_rec, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf),
                     PF_SUCCESS);
    uint8_t buf[100] = {1};
    assert_int_equal(pf_write(pf, 10, sizeof(buf), buf), PF_SUCCESS);
    assert_int_equal(pf_flush(pf), PF_SUCCESS); /* node 0 only */
    assert_false(exists(g_rec));
    assert_int_equal(pf_write(pf, 20000, sizeof(buf), buf), PF_SUCCESS);
    assert_int_equal(pf_flush(pf), PF_SUCCESS); /* the tree: with the protocol */
    assert_true(exists(g_rec));
    assert_int_equal(pf_rename(pf, "g"), PF_SUCCESS);
    assert_int_equal(rename(g_host, host2), 0);
    assert_int_equal(pf_set_recovery_path(pf, rec2), PF_SUCCESS);
    assert_false(exists(g_rec));
    assert_true(exists(rec2));
    assert_int_equal(pf_write(pf, 30000, sizeof(buf), buf), PF_SUCCESS);
    assert_int_equal(pf_flush(pf), PF_SUCCESS);
    assert_false(exists(g_rec));
    assert_true(exists(rec2));
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    assert_false(exists(rec2));
    close(fd);
    /* NULL: no recovery any more; the file goes at once */
    fd = open(host2, O_RDWR);
    assert_int_equal(pf_open_ex(fd, "g", rec2, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf),
                     PF_SUCCESS);
    assert_int_equal(pf_write(pf, 40000, sizeof(buf), buf), PF_SUCCESS);
    assert_int_equal(pf_flush(pf), PF_SUCCESS);
    assert_true(exists(rec2));
    assert_int_equal(pf_set_recovery_path(pf, NULL), PF_SUCCESS);
    assert_false(exists(rec2));
    assert_int_equal(pf_write(pf, 50000, sizeof(buf), buf), PF_SUCCESS);
    assert_int_equal(pf_close(pf), PF_SUCCESS);
    assert_false(exists(rec2));
    close(fd);
    assert_int_equal(unlink(host2), 0);
    free(st.data);
}

/* Generation g of the kill test: a size that moves across node and MHT boundaries, both ways,
 * and bytes that name g. */
static size_t gen_size(unsigned g) {
    static const size_t sizes[] = {3000,
                                   3072 + 4096 * 3 + 5,
                                   3072 + 4096 * 40,
                                   SIZE_MHT1 + 1,
                                   3072 + 4096 * 7,
                                   SIZE_MHT1 + 4096 * 9,
                                   100};
    return sizes[g % 7] + g % 13;
}

/* The child: from generation `g`, rewrites the file as generation g+1, g+2, ... with one flush
 * each, and reports in `shared[0]` each generation whose pf_flush returned PF_SUCCESS
 * ("flushed"). Never returns. */
static void child(unsigned g, volatile unsigned* shared) {
    int fd = open(g_host, O_RDWR);
    struct pf_file* pf;
    if (pf_open_ex(fd, "f", g_rec, g_key, PF_OPEN_READ | PF_OPEN_WRITE, NULL, &pf) != PF_SUCCESS)
        _exit(2);
    uint8_t* buf = malloc(MAX_SIZE);
    for (g++;; g++) {
        size_t size = gen_size(g);
        fill(buf, size, g);
        if (pf_set_size(pf, 0) != PF_SUCCESS || pf_write(pf, 0, size, buf) != PF_SUCCESS ||
            pf_flush(pf) != PF_SUCCESS)
            _exit(3);
        shared[0] = g;
    }
}

/* A real crash: SIGKILL at a random moment; the file then opens (with replay) as the last
 * generation the child reported flushed or the one after it (flushed but not yet reported). */
static void test_kill_9(void** state) {
    (void)state;
    volatile unsigned* shared =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    struct state st = {.data = malloc(MAX_SIZE), .len = gen_size(0), .path = "f"};
    fill(st.data, st.len, 0);
    create(&st);
    struct state next = {.data = malloc(MAX_SIZE), .path = "f"};
    unsigned g = 0, replays = 0, advanced = 0;
    srand((unsigned)time(NULL));
    for (int i = 0; i < 50; i++) {
        shared[0] = g;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            child(g, shared);
        struct timespec t = {0, (long)(rand() % 60000) * 1000}; /* up to 60 ms */
        nanosleep(&t, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        unsigned flushed = shared[0];
        st.len           = gen_size(flushed);
        fill(st.data, st.len, flushed);
        next.len = gen_size(flushed + 1);
        fill(next.data, next.len, flushed + 1);
        replays += pending();
        enum pf_status s;
        int got = which_state(&st, &next, &s);
        assert_int_equal(s, PF_SUCCESS);
        assert_true(got == 0 || got == 1);
        advanced += flushed > g;
        g = flushed + (unsigned)got;
    }
    print_message("kill -9: 50 kills, %u generations, %u replays, %u runs advanced\n", g, replays,
                  advanced);
    assert_true(advanced > 0);
    munmap((void*)shared, 4096);
    free(st.data);
    free(next.data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_at_every_step),
        cmocka_unit_test(test_recovery_needed),
        cmocka_unit_test(test_damaged_recovery_file),
        cmocka_unit_test(test_stale_recovery_file),
        cmocka_unit_test(test_recovery_file_life_and_rename),
        cmocka_unit_test(test_kill_9),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
