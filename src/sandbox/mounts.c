/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mount plan: fs.root, then fs.mounts in order (later mounts shadow earlier ones), as
 * Gramine's libos_fs.c mounts them (reference/gramine.md §1.3 "Mount rules"), plus the
 * sandbox's own /proc, /dev and /sys. Paths in the app are normalized and absolute; chroot
 * sources are host paths made absolute against the directory moat runs in.
 */
#include <string.h>
#include <sys/stat.h>

#include "sandbox.h"

static char* host_of_uri(const struct manifest_uri* uri, const char* cwd) {
    if (uri->path[0] == '/')
        return path_normalize(uri->path);
    _cleanup_free_ char* joined = path_join(cwd, uri->path);
    return path_normalize(joined);
}

static void add(struct mount_plan* p, size_t* cap, enum mount_type type, const char* path,
                char* host, const char* key_name) {
    p->items           = xgrow(p->items, cap, p->len + 1, sizeof(*p->items));
    p->items[p->len++] = (struct mount_entry){
        .type     = type,
        .path     = path_normalize(path),
        .host     = host,
        .key_name = key_name ? xstrdup(key_name) : NULL,
    };
}

/* One fs.root or fs.mounts entry of the model (validated: absolute path, not "/", a URI of
 * the right kind). chroot mounts of dev: URIs (devices) and untrusted_shm mounts (host shared
 * memory) are host directories or files like chroot ones: served by the FUSE view under the
 * file policy, where sgx.allowed_files entries are bound (native, MAP_SHARED with the host). */
static void load_mount(struct mount_plan* p, size_t* cap, const struct manifest_mount* mt,
                       const char* cwd) {
    static const enum mount_type types[] = {
        [MANIFEST_MOUNT_CHROOT]        = MOUNT_CHROOT,
        [MANIFEST_MOUNT_ENCRYPTED]     = MOUNT_ENCRYPTED,
        [MANIFEST_MOUNT_TMPFS]         = MOUNT_TMPFS,
        [MANIFEST_MOUNT_UNTRUSTED_SHM] = MOUNT_CHROOT,
    };
    enum mount_type type = types[mt->type];
    char* host           = mt->has_uri && type != MOUNT_TMPFS ? host_of_uri(&mt->uri, cwd) : NULL;
    add(p, cap, type, mt->path, host, mt->key_name);
    if (mt->has_uri && type != MOUNT_TMPFS)
        p->items[p->len - 1].uri = xstrdup(mt->uri.path); /* as written, for log lines */
    if (type == MOUNT_ENCRYPTED) {
        p->items[p->len - 1].bind     = path_normalize(mt->uri.path);
        p->items[p->len - 1].recovery = mt->enable_recovery;
    }
}

int mount_plan_load(const struct manifest* m, const char* cwd, struct mount_plan* ret,
                    struct moat_error* err) {
    struct mount_plan p = {0};
    size_t cap          = 0;
    load_mount(&p, &cap, &m->fs.root, cwd);
    /* the sandbox's own pseudo file systems come before the user's mounts, which may shadow
     * parts of them (Gramine mounts them right after the root) */
    static const char* const pseudo[] = {"/proc", "/dev", "/sys"};
    for (size_t i = 0; i < ARRAY_SIZE(pseudo); i++)
        add(&p, &cap, MOUNT_PSEUDO, pseudo[i], NULL, NULL);
    for (size_t i = 0; i < m->fs.nmounts; i++)
        load_mount(&p, &cap, &m->fs.mounts[i], cwd);

    const char* start = m->fs.start_dir;
    const char* ep    = m->libos.entrypoint;
    if (!*start) {
        mount_plan_free(&p);
        return moat_error_set(err, -EINVAL, "Invalid 'fs.start_dir' in manifest.");
    }
    _cleanup_free_ char* abs_start = start[0] == '/' ? xstrdup(start) : xasprintf("/%s", start);
    p.start_dir                    = path_normalize(abs_start);
    /* a relative entrypoint is resolved from fs.start_dir */
    _cleanup_free_ char* abs_ep = ep[0] == '/' ? xstrdup(ep) : path_join(p.start_dir, ep);
    p.entrypoint                = path_normalize(abs_ep);
    *ret                        = p;
    return 0;
}

void mount_plan_free(struct mount_plan* p) {
    for (size_t i = 0; i < p->len; i++) {
        free(p->items[i].path);
        free(p->items[i].host);
        free(p->items[i].key_name);
        free(p->items[i].bind);
        free(p->items[i].uri);
    }
    free(p->items);
    free(p->start_dir);
    free(p->entrypoint);
    memset(p, 0, sizeof(*p));
}

/* "/a/b" is below "/a"; everything is below "/". Returns the rest ("b", "") or NULL. */
static const char* below(const char* path, const char* prefix) {
    if (!strcmp(prefix, "/"))
        return path + 1;
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return NULL;
    if (path[n] == '\0')
        return path + n;
    return path[n] == '/' ? path + n + 1 : NULL;
}

const struct mount_entry* mount_plan_resolve(const struct mount_plan* p, const char* app_path,
                                             char** ret_host) {
    for (size_t i = p->len; i-- > 0;) {
        const struct mount_entry* m = &p->items[i];
        const char* rest            = below(app_path, m->path);
        if (!rest)
            continue;
        if (m->type != MOUNT_CHROOT && m->type != MOUNT_ENCRYPTED)
            return NULL;
        if (ret_host)
            *ret_host = *rest ? path_join(m->host, rest) : xstrdup(m->host);
        return m;
    }
    return NULL;
}

bool mount_plan_is_synthetic_dir(const struct mount_plan* p, const char* app_path) {
    for (size_t i = 1; i < p->len; i++) {
        const char* rest = below(p->items[i].path, app_path);
        if (rest && *rest)
            return true;
    }
    return false;
}

char* mount_plan_app_path(const struct mount_plan* p, const char* host_path) {
    for (size_t i = p->len; i-- > 0;) {
        const struct mount_entry* m = &p->items[i];
        if (m->type != MOUNT_CHROOT)
            continue;
        const char* rest = below(host_path, m->host);
        if (!rest)
            continue;
        char* app                 = *rest ? path_join(m->path, rest) : xstrdup(m->path);
        _cleanup_free_ char* back = NULL;
        if (mount_plan_resolve(p, app, &back) == m && back && !strcmp(back, host_path))
            return app;
        free(app);
    }
    return NULL;
}

void mount_plan_add_interpreter(struct mount_plan* p) {
    /* Gramine's LibOS loads the ELF interpreter from the app's /lib (its runtimedir); the kernel
     * loads it from the PT_INTERP path. Map one to the other when the manifest does not. */
    static const char* const interp[][2] = {
        {"/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-x86-64.so.2"},
        {"/lib/ld-linux-aarch64.so.1", "/lib/ld-linux-aarch64.so.1"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(interp); i++) {
        _cleanup_free_ char* have = NULL;
        _cleanup_free_ char* from = NULL;
        struct stat st;
        if (mount_plan_resolve(p, interp[i][0], &have) && stat(have, &st) == 0)
            continue;
        if (!mount_plan_resolve(p, interp[i][1], &from) || stat(from, &st) < 0)
            continue;
        size_t cap = p->len;
        add(p, &cap, MOUNT_CHROOT, interp[i][0], TAKE_PTR(from), NULL);
    }
}

void mount_plan_prefer_lib_interpreter(struct mount_plan* p, const struct file_policy* policy) {
    /* Gramine looks the interpreter up by its base name in the library paths, /lib first
     * (libos_rtld.c find_interp): with fs.root.uri = "file:/" the kernel's PT_INTERP path,
     * /lib64/ld-linux-x86-64.so.2, is the host's own, which the manifest does not trust, while
     * Gramine loads the trusted one at /lib. The policy still decides: only a file the manifest
     * trusts or allows replaces one it does not. */
    static const char* const from_path = "/lib/ld-linux-x86-64.so.2";
    static const char* const to_path   = "/lib64/ld-linux-x86-64.so.2";
    _cleanup_free_ char* have          = NULL;
    _cleanup_free_ char* from          = NULL;
    const struct trusted_entry* t;
    struct stat st;
    if (!mount_plan_resolve(p, to_path, &have) || !mount_plan_resolve(p, from_path, &from) ||
        stat(from, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    if (file_policy_classify(policy, have, &t) != FILE_NONE ||
        file_policy_classify(policy, from, &t) == FILE_NONE)
        return;
    size_t cap = p->len;
    add(p, &cap, MOUNT_CHROOT, to_path, TAKE_PTR(from), NULL);
}

void mount_plan_add_domain_files(struct mount_plan* p) {
    static const char* const files[] = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"};
    size_t cap                       = p->len;
    for (size_t i = 0; i < ARRAY_SIZE(files); i++)
        add(p, &cap, MOUNT_PSEUDO_FILE, files[i], NULL, NULL);
}
