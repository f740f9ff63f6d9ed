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

static bool is_str(const struct toml_value* v) {
    return v && v->type == TOML_STRING;
}

static char* host_of_uri(const char* uri, const char* cwd) {
    const char* path = uri + 5; /* after "file:" */
    if (path[0] == '/')
        return path_normalize(path);
    _cleanup_free_ char* joined = path_join(cwd, path);
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

static int parse_type(const struct toml_value* t, const char* key, enum mount_type* ret,
                      struct moat_error* err) {
    static const struct {
        const char* name;
        enum mount_type type;
    } types[]                     = {{"chroot", MOUNT_CHROOT},
                                     {"tmpfs", MOUNT_TMPFS},
                                     {"encrypted", MOUNT_ENCRYPTED},
                                     {"untrusted_shm", MOUNT_UNTRUSTED_SHM}};
    const struct toml_value* type = toml_table_get(t, "type");
    if (!type) {
        *ret = MOUNT_CHROOT;
        return 0;
    }
    for (size_t i = 0; is_str(type) && i < ARRAY_SIZE(types); i++) {
        if (!strcmp(type->u.str.ptr, types[i].name)) {
            *ret = types[i].type;
            return 0;
        }
    }
    return moat_error_set(err, -EINVAL, "Unknown mount type in '%s.type'", key);
}

static int load_mount(struct mount_plan* p, size_t* cap, const struct toml_value* t,
                      const char* key, bool is_root, const char* cwd, struct moat_error* err) {
    enum mount_type type = MOUNT_CHROOT;
    int r                = parse_type(t, key, &type, err);
    if (r < 0)
        return r;
    const struct toml_value* path = toml_table_get(t, "path");
    const struct toml_value* uri  = toml_table_get(t, "uri");
    const struct toml_value* kn   = toml_table_get(t, "key_name");
    const char* app               = "/";
    if (!is_root) {
        if (!is_str(path))
            return moat_error_set(err, -EINVAL, "No value provided for '%s.path'", key);
        app = path->u.str.ptr;
        if (app[0] != '/')
            return moat_error_set(err, -EINVAL,
                                  "Relative mount path: '%s.path' (\"%s\") is disallowed! "
                                  "Consider converting it to absolute by adding \"/\" at the "
                                  "beginning.",
                                  key, app);
        _cleanup_free_ char* norm = path_normalize(app);
        if (!strcmp(norm, "/"))
            return moat_error_set(err, -EINVAL,
                                  "'%s.path' cannot be \"/\". The root mount (\"/\") can be "
                                  "customized via the 'fs.root' manifest entry.",
                                  key);
    }
    char* host = NULL;
    if (type != MOUNT_TMPFS) {
        if (!is_str(uri))
            return moat_error_set(err, -EINVAL, "No value provided for '%s.uri'", key);
        const char* prefix = type == MOUNT_UNTRUSTED_SHM ? "dev:" : "file:";
        if (strncmp(uri->u.str.ptr, prefix, strlen(prefix)) != 0)
            return moat_error_set(err, -EINVAL, "'%s.uri' (\"%s\") must start with '%s'", key,
                                  uri->u.str.ptr, prefix);
        host = type == MOUNT_UNTRUSTED_SHM ? path_normalize(uri->u.str.ptr + 4)
                                           : host_of_uri(uri->u.str.ptr, cwd);
    }
    const struct toml_value* rec = toml_table_get(t, "enable_recovery");
    if (rec && rec->type != TOML_BOOL)
        return moat_error_set(err, -EINVAL, "'%s.enable_recovery' must be a boolean", key);
    add(p, cap, type, app, host, is_str(kn) ? kn->u.str.ptr : "default");
    if (is_str(uri) && type != MOUNT_UNTRUSTED_SHM)
        p->items[p->len - 1].uri = xstrdup(uri->u.str.ptr + 5); /* h-fs: log lines */
    if (type == MOUNT_ENCRYPTED) {
        p->items[p->len - 1].bind     = path_normalize(uri->u.str.ptr + 5);
        p->items[p->len - 1].recovery = rec && rec->u.boolean;
    }
    return 0;
}

int mount_plan_load(const struct toml_value* m, const char* cwd, struct mount_plan* ret,
                    struct moat_error* err) {
    struct mount_plan p           = {0};
    size_t cap                    = 0;
    int r                         = 0;
    const struct toml_value* root = toml_get_path(m, "fs.root");
    if (root && root->type == TOML_TABLE && root->u.tab.len) {
        r = load_mount(&p, &cap, root, "fs.root", true, cwd, err);
    } else {
        add(&p, &cap, MOUNT_CHROOT, "/", path_normalize(cwd), NULL);
        p.items[0].uri = xstrdup("."); /* h-fs: Gramine's default root is "file:." */
    }
    /* the sandbox's own pseudo file systems come before the user's mounts, which may shadow
     * parts of them (Gramine mounts them right after the root) */
    static const char* const pseudo[] = {"/proc", "/dev", "/sys"};
    for (size_t i = 0; r == 0 && i < ARRAY_SIZE(pseudo); i++)
        add(&p, &cap, MOUNT_PSEUDO, pseudo[i], NULL, NULL);

    const struct toml_value* mounts = toml_get_path(m, "fs.mounts");
    if (r == 0 && mounts && mounts->type != TOML_ARRAY)
        r = moat_error_set(err, -EINVAL, "'fs.mounts' must be an array");
    for (size_t i = 0; r == 0 && mounts && i < mounts->u.arr.len; i++) {
        const struct toml_value* t = mounts->u.arr.items[i];
        _cleanup_free_ char* key   = xasprintf("fs.mounts[%zu]", i);
        if (t->type != TOML_TABLE)
            r = moat_error_set(err, -EINVAL,
                               "Invalid mount in manifest at index %zu (not a TOML table)", i);
        else
            r = load_mount(&p, &cap, t, key, false, cwd, err);
    }

    const char* start = "/";
    const char* ep    = NULL;
    if (r == 0 && toml_get_string(m, "fs.start_dir", "/", &start) < 0)
        r = moat_error_set(err, -EINVAL, "Invalid 'fs.start_dir' in manifest.");
    if (r == 0 && (toml_get_string(m, "libos.entrypoint", NULL, &ep) < 0 || !ep))
        r = moat_error_set(err, -EINVAL, "'libos.entrypoint' must be specified in the manifest");
    if (r == 0 && !strncmp(ep, "file:", 5))
        r = moat_error_set(err, -EINVAL,
                           "'libos.entrypoint' should be an in-Gramine path, not URI.");
    if (r < 0) {
        mount_plan_free(&p);
        return r;
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
