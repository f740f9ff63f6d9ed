/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE view's node table (fusefs.c): nodes are freed when their lookups are forgotten,
 * the path index finds every live node after any order of removals (linear probing without
 * tombstones), and a freed inode number comes back with a new generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fusefs_internal.h"

static struct fusefs* table_new(void) {
    struct fusefs* fs = xcalloc(1, sizeof(*fs));
    pthread_mutex_init(&fs->lock, NULL);
    for (size_t w = 0; w < FUSE_WORKERS; w++)
        fs->seen[w] = UINT64_MAX; /* no worker holds anything: retired memory goes at once */
    struct node* root = fs_node_intern(fs, "/", NULL);
    assert_int_equal(root->ino, FUSE_ROOT_ID);
    return fs;
}

static void test_forget_frees_and_index_holds(void** state) {
    (void)state;
    enum { N = 20000 };
    struct fusefs* fs = table_new();
    static struct node* nodes[N];
    static bool alive[N];
    char path[64];
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof(path), "/d%d/f%d", i % 7, i);
        nodes[i] = fs_node_intern(fs, path, NULL);
        alive[i] = true;
        /* a second lookup of the same name finds the same node and counts it */
        assert_ptr_equal(fs_node_intern(fs, path, NULL), nodes[i]);
    }
    assert_int_equal(fs->nlive, N + 1);
    srand(7);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            if (!alive[i] || rand() % 3)
                continue;
            fs_node_forget(fs, nodes[i], 1);
            assert_ptr_equal(fs_node_get(fs, nodes[i]->ino), nodes[i]); /* one lookup left */
            fs_node_forget(fs, nodes[i], 1);
            alive[i] = false;
        }
        for (int i = 0; i < N; i++) {
            snprintf(path, sizeof(path), "/d%d/f%d", i % 7, i);
            pthread_mutex_lock(&fs->lock);
            struct node* n = fs_index_find(fs, path);
            pthread_mutex_unlock(&fs->lock);
            if (alive[i])
                assert_ptr_equal(n, nodes[i]);
            else
                assert_null(n);
        }
    }
    size_t live = fs->nlive, top = fs->nnodes;
    /* freed numbers are reused, each with a generation not seen before for that number */
    for (int i = 0; i < N; i++) {
        if (alive[i])
            continue;
        snprintf(path, sizeof(path), "/new/%d", i);
        struct node* n = fs_node_intern(fs, path, NULL);
        assert_true(n->ino <= top);
        assert_true(n->generation > (uint64_t)N);
    }
    assert_int_equal(fs->nnodes, top);
    assert_int_equal(fs->nlive, top);
    assert_true(live < top);
    /* the root is never freed */
    fs_node_forget(fs, fs_node_get(fs, FUSE_ROOT_ID), 100);
    assert_non_null(fs_node_get(fs, FUSE_ROOT_ID));
    fusefs_free(fs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forget_frees_and_index_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
