/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the sealed state store (store.h; reference/marblerun.md §3.4): transactions,
 * the sealed file layout, the wrong key, tampering, recovery with the DEK, and every state a
 * kill -9 can leave between two commits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static const uint8_t SEAL[STORE_KEY_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t DEK[STORE_KEY_SIZE]  = {9, 9, 9, 9, 9, 9, 9, 9, 1};

static char* scratch(void) {
    char tmpl[] = "/tmp/moat-store-XXXXXX";
    if (!mkdtemp(tmpl))
        fail_msg("mkdtemp");
    return xstrdup(tmpl);
}

static void rm_rf(const char* dir) {
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static struct store* open_store(const char* dir) {
    struct store* s = store_new(dir);
    store_set_seal_key(s, SEAL, "moat-seal-v1 test");
    return s;
}

static void commit_value(struct store* s, const char* key, const char* value) {
    struct moat_error err = {0};
    struct store_txn* t   = store_begin(s);
    txn_put(t, key, value, strlen(value));
    assert_int_equal(store_commit(t, &err), 0);
}

static void assert_value(struct store* s, const char* key, const char* want) {
    const uint8_t* v;
    size_t n;
    assert_int_equal(store_get(s, key, &v, &n), 0);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(v, want, n);
}

static int count(const char* key, const uint8_t* val, size_t len, void* ctx) {
    (void)key, (void)val, (void)len;
    (*(int*)ctx)++;
    return 0;
}

static void test_transactions(void** state) {
    (void)state;
    struct store* s       = store_new(NULL);
    struct moat_error err = {0};
    struct store_txn* t   = store_begin(s);
    txn_put(t, "marble:a", "1", 1);
    txn_put(t, "marble:b", "2", 1);
    txn_put(t, "secret:x", "\0\1", 2);
    const uint8_t* v;
    size_t n;
    assert_int_equal(txn_get(t, "marble:a", &v, &n), 0);         /* its own writes */
    assert_int_equal(store_get(s, "marble:a", &v, &n), -ENOENT); /* not yet the store's */
    int c = 0;
    assert_int_equal(txn_iterate(t, "marble:", count, &c), 0);
    assert_int_equal(c, 2);
    assert_int_equal(store_commit(t, &err), 0);
    assert_value(s, "marble:b", "2");
    assert_int_equal(store_get(s, "secret:x", &v, &n), 0);
    assert_int_equal(n, 2);

    t = store_begin(s);
    txn_delete(t, "marble:a");
    txn_put(t, "marble:b", "changed", 7);
    store_rollback(t); /* nothing changes */
    assert_value(s, "marble:a", "1");
    assert_value(s, "marble:b", "2");
    store_free(s);
}

static void test_persist_and_reload(void** state) {
    (void)state;
    _cleanup_free_ char* dir = scratch();
    struct moat_error err    = {0};
    struct store* s          = open_store(dir);
    assert_int_equal(store_load(s, &err), -ENOENT); /* a new Coordinator */
    store_set_dek(s, DEK);
    store_set_recovery_data(s, "{\"ab\":true}");
    commit_value(s, "manifest", "{\"Packages\":{}}");
    commit_value(s, "state", "3");
    store_free(s);

    s = open_store(dir);
    assert_int_equal(store_load(s, &err), 0);
    assert_value(s, "manifest", "{\"Packages\":{}}");
    assert_value(s, "state", "3");
    assert_true(store_has_dek(s));
    _cleanup_free_ char* rd = NULL;
    assert_int_equal(store_read_recovery_data(s, &rd, &err), 0);
    assert_string_equal(rd, "{\"ab\":true}");
    store_free(s);

    /* the file layout: u32le len ‖ recovery data ‖ nonce ‖ ct ‖ tag; 0600 */
    _cleanup_free_ char* path = xasprintf("%s/sealed_data", dir);
    _cleanup_free_ char* buf  = NULL;
    size_t len;
    assert_int_equal(read_file(path, &buf, &len, &err), 0);
    assert_int_equal((uint8_t)buf[0], 11);
    assert_memory_equal(buf + 4, "{\"ab\":true}", 11);
    assert_true(len > 4 + 11 + 12 + 16);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    rm_rf(dir);
}

static void test_wrong_key_and_tampering(void** state) {
    (void)state;
    _cleanup_free_ char* dir = scratch();
    struct moat_error err    = {0};
    struct store* s          = open_store(dir);
    store_set_dek(s, DEK);
    commit_value(s, "state", "ok");
    store_free(s);

    /* another identity's seal key: recovery */
    s                             = store_new(dir);
    uint8_t other[STORE_KEY_SIZE] = {42};
    store_set_seal_key(s, other, "moat-seal-v1 other");
    assert_int_equal(store_load(s, &err), -EBADMSG);
    assert_int_equal(store_get(s, "state", &(const uint8_t*){NULL}, &(size_t){0}), -ENOENT);
    /* ... which the DEK (from the recovery keys) opens */
    assert_int_equal(store_load_with_dek(s, DEK, sizeof(DEK), &err), 0);
    assert_value(s, "state", "ok");
    store_free(s);
    s                             = store_new(dir);
    uint8_t wrong[STORE_KEY_SIZE] = {7};
    assert_int_equal(store_load_with_dek(s, wrong, sizeof(wrong), &err), -EBADMSG);
    store_free(s);

    /* a flipped bit anywhere in sealed_data: the pair no longer verifies (and no .old) */
    _cleanup_free_ char* path = xasprintf("%s/sealed_data", dir);
    _cleanup_free_ char* old  = xasprintf("%s/sealed_data.old", dir);
    _cleanup_free_ char* kold = xasprintf("%s/sealed_key.old", dir);
    unlink(old);
    unlink(kold);
    _cleanup_free_ char* buf = NULL;
    size_t len;
    assert_int_equal(read_file(path, &buf, &len, &err), 0);
    for (size_t off = 0; off < len; off += len / 7 + 1) {
        buf[off] ^= 0x20;
        assert_int_equal(write_file_atomic(path, buf, len, 0600, &err), 0);
        s = open_store(dir);
        assert_int_equal(store_load(s, &err), -EBADMSG);
        store_free(s);
        buf[off] ^= 0x20;
    }
    assert_int_equal(write_file_atomic(path, buf, len, 0600, &err), 0);
    s = open_store(dir);
    assert_int_equal(store_load(s, &err), 0);
    store_free(s);
    rm_rf(dir);
}

/* A copy of the four sealed files (NULL: absent). */
struct files {
    char *key, *key_old, *data, *data_old;
    size_t key_len, key_old_len, data_len, data_old_len;
};

static void grab(const char* dir, const char* name, char** ret, size_t* ret_len) {
    _cleanup_free_ char* path = xasprintf("%s/%s", dir, name);
    struct moat_error err     = {0};
    if (read_file(path, ret, ret_len, &err) < 0)
        *ret = NULL;
}

static void put(const char* dir, const char* name, const char* buf, size_t len) {
    _cleanup_free_ char* path = xasprintf("%s/%s", dir, name);
    struct moat_error err     = {0};
    unlink(path);
    if (buf)
        assert_int_equal(write_file_atomic(path, buf, len, 0600, &err), 0);
}

/* Every state replace_file() passes through during commit N+1 (sealed_data's steps, then
 * sealed_key's): the load gives N until sealed_key is renamed, N+1 after. */
static void test_crash_between_commits(void** state) {
    (void)state;
    _cleanup_free_ char* dir = scratch();
    struct moat_error err    = {0};
    struct store* s          = open_store(dir);
    store_set_dek(s, DEK);
    commit_value(s, "state", "N-1");
    commit_value(s, "state", "N");
    struct files n = {0};
    grab(dir, "sealed_key", &n.key, &n.key_len);
    grab(dir, "sealed_data", &n.data, &n.data_len);
    grab(dir, "sealed_key.old", &n.key_old, &n.key_old_len);
    grab(dir, "sealed_data.old", &n.data_old, &n.data_old_len);
    commit_value(s, "state", "N+1");
    struct files n1 = {0};
    grab(dir, "sealed_key", &n1.key, &n1.key_len);
    grab(dir, "sealed_data", &n1.data, &n1.data_len);
    store_free(s);

    struct {
        const char *key, *key_old, *data, *data_old;
        size_t kl, kol, dl, dol;
        const char* want;
    } steps[] = {
        /* nothing renamed yet */
        {n.key, n.key_old, n.data, n.data_old, n.key_len, n.key_old_len, n.data_len, n.data_old_len,
         "N"},
        /* sealed_data moved to .old, the new one not yet in place */
        {n.key, n.key_old, NULL, n.data, n.key_len, n.key_old_len, 0, n.data_len, "N"},
        /* new sealed_data in place, sealed_key still N's */
        {n.key, n.key_old, n1.data, n.data, n.key_len, n.key_old_len, n1.data_len, n.data_len, "N"},
        /* sealed_key moved to .old, the new one not yet in place */
        {NULL, n.key, n1.data, n.data, 0, n.key_len, n1.data_len, n.data_len, "N"},
        /* the commit point: new sealed_key in place */
        {n1.key, n.key, n1.data, n.data, n1.key_len, n.key_len, n1.data_len, n.data_len, "N+1"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        put(dir, "sealed_key", steps[i].key, steps[i].kl);
        put(dir, "sealed_key.old", steps[i].key_old, steps[i].kol);
        put(dir, "sealed_data", steps[i].data, steps[i].dl);
        put(dir, "sealed_data.old", steps[i].data_old, steps[i].dol);
        s = open_store(dir);
        if (store_load(s, &err) < 0)
            fail_msg("step %zu: %s", i, err.msg);
        assert_value(s, "state", steps[i].want);
        store_free(s);
    }
    free(n.key), free(n.key_old), free(n.data), free(n.data_old), free(n1.key), free(n1.data);
    rm_rf(dir);
}

static void test_disabled_seal_mode_writes_nothing(void** state) {
    (void)state;
    _cleanup_free_ char* dir = scratch();
    struct moat_error err    = {0};
    struct store* s          = store_new(dir);
    store_set_seal_key(s, NULL, NULL); /* SealMode "Disabled" */
    store_set_dek(s, DEK);
    commit_value(s, "state", "in memory");
    assert_value(s, "state", "in memory");
    _cleanup_free_ char* path = xasprintf("%s/sealed_data", dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(store_load(s, &err), -ENOENT);
    store_free(s);
    rm_rf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_persist_and_reload),
        cmocka_unit_test(test_wrong_key_and_tampering),
        cmocka_unit_test(test_crash_between_commits),
        cmocka_unit_test(test_disabled_seal_mode_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
