/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gramine-manifest's template globals (reference/gramine.md §2): `gramine` (runtimedir(),
 * libos, pkglibdir), `python` (sysconfig of the host interpreter), `env` and `ldd()`.
 * moat points runtimedir() at the host's own C library directory, so Gramine templates run
 * the app with the host glibc.
 */
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "jinja_impl.h"
#include "moat-config.h"

extern char** environ;

/* ---------------------------------------------------------------------------------------- */
/* Host defaults                                                                              */

static bool is_dir(const char* path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char* path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void jinja_env_default(struct jinja_env* env) {
    static char libos[PATH_MAX];
    static const char* const libdirs[] = {"/lib/x86_64-linux-gnu",
                                          "/usr/lib/x86_64-linux-gnu",
                                          "/lib/aarch64-linux-gnu",
                                          "/usr/lib/aarch64-linux-gnu",
                                          "/lib64",
                                          "/usr/lib64",
                                          "/lib",
                                          "/usr/lib"};
    memset(env, 0, sizeof(*env));
    env->pkglibdir = MOAT_PKGLIBDIR;
    if (!libos[0] && !realpath("/proc/self/exe", libos))
        snprintf(libos, sizeof(libos), "%s/moat", MOAT_PKGLIBDIR);
    env->libos     = libos;
    env->glibc_dir = "/lib";
    for (size_t i = 0; i < ARRAY_SIZE(libdirs); i++) {
        char probe[PATH_MAX];
        snprintf(probe, sizeof(probe), "%s/libc.so.6", libdirs[i]);
        if (exists(probe)) {
            env->glibc_dir = libdirs[i];
            break;
        }
    }
    env->musl_dir  = is_dir("/usr/lib/musl/lib") ? "/usr/lib/musl/lib" : NULL;
    const char* py = getenv("MOAT_PYTHON");
    env->python    = py && *py ? py : exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

/* ---------------------------------------------------------------------------------------- */
/* Subprocesses                                                                               */

/* Runs argv (PATH lookup), returns its standard output. stderr is inherited so the user sees
 * the tool's own complaint; `what` names the template construct in messages. */
static int run_capture(struct teval* ev, const char* what, char* const* argv, char** ret_out,
                       size_t* ret_len) {
#ifdef MOAT_FUZZING
    /* fuzzed templates must not run arbitrary programs (python.get_sys_path('/any/binary')) */
    (void)argv;
    (void)ret_out;
    (void)ret_len;
    return teval_fail(ev, "%s: subprocesses are disabled in fuzzing builds", what);
#else
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return teval_fail(ev, "cannot create a pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (r != 0) {
        close(fds[0]);
        return teval_fail(ev, "%s: cannot run '%s': %s", what, argv[0], strerror(r));
    }
    struct strbuf sb = STRBUF_INIT;
    char buf[16384];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        strbuf_append(&sb, buf, (size_t)n);
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            strbuf_free(&sb);
            return teval_fail(ev, "%s: waiting for '%s': %s", what, argv[0], strerror(errno));
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        strbuf_free(&sb);
        return teval_fail(ev, "%s: '%s' failed (%s %d)", what, argv[0],
                          WIFEXITED(status) ? "exit status" : "signal",
                          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    *ret_out = strbuf_take(&sb, ret_len);
    return 0;
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* python.*                                                                                   */

struct python_info {
    const struct tval* paths; /* sysconfig.get_paths() */
    const struct tval* vars;  /* sysconfig.get_config_vars(), as strings */
    const struct tval* impl;  /* sys.implementation (name, cache_tag) */
    const struct tval* distlib;
};

static const char g_sysconfig_script[] =
    "import sys, sysconfig\n"
    "w = sys.stdout.write\n"
    "for k, v in sysconfig.get_paths().items(): w('path.' + k + '\\0' + str(v) + '\\0')\n"
    "for k, v in sysconfig.get_config_vars().items():\n"
    "    if v is not None:\n"
    "        t = 'i' if type(v) is int else 's'\n"
    "        w('var.' + k + '\\0' + t + str(v).replace('\\0', '') + '\\0')\n"
    "w('impl.name\\0' + sys.implementation.name + '\\0')\n"
    "w('impl.cache_tag\\0' + str(sys.implementation.cache_tag) + '\\0')\n"
    "w('distlib\\0' + sysconfig.get_path('stdlib', vars={'py_version_short': '3'}) + "
    "'/dist-packages\\0')\n";

static int load_python(struct teval* ev) {
    if (ev->python)
        return 0;
    char* argv[] = {(char*)ev->env->python, (char*)"-c", (char*)g_sysconfig_script, NULL};
    _cleanup_free_ char* out = NULL;
    size_t len;
    if (run_capture(ev, "python.* (the host interpreter's sysconfig)", argv, &out, &len) < 0)
        return -EINVAL;

    size_t cap = 64, npaths = 0, nvars = 0, nimpl = 0;
    const char** pk        = xmalloc(cap * sizeof(*pk));
    const struct tval** pv = xmalloc(cap * sizeof(*pv));
    size_t vcap            = 1024;
    const char** vk        = xmalloc(vcap * sizeof(*vk));
    const struct tval** vv = xmalloc(vcap * sizeof(*vv));
    const char* ik[4];
    const struct tval* iv[4];
    struct python_info* info = arena_alloc(ev->arena, sizeof(*info));
    for (size_t i = 0; i < len;) {
        const char* key = out + i;
        size_t klen     = strnlen(key, len - i);
        if (i + klen + 1 >= len)
            break;
        const char* value = key + klen + 1;
        size_t vlen       = strnlen(value, len - i - klen - 1);
        i += klen + vlen + 2;
        if (!strncmp(key, "path.", 5) && npaths < cap) {
            pk[npaths]   = key + 5;
            pv[npaths++] = tv_cstr(ev, value); /* sysconfig paths are str */
        } else if (!strncmp(key, "var.", 4)) {
            if (nvars == vcap) {
                vcap *= 2;
                vk = xrealloc(vk, vcap * sizeof(*vk));
                vv = xrealloc(vv, vcap * sizeof(*vv));
            }
            /* config vars keep their Python type: int or str */
            int64_t num;
            vk[nvars]   = key + 4;
            vv[nvars++] = value[0] == 'i' && py_parse_int(value + 1, strlen(value + 1), 10, &num)
                              ? tv_int(ev, num)
                              : tv_cstr(ev, value + (value[0] == 'i' || value[0] == 's'));
        } else if (!strncmp(key, "impl.", 5) && nimpl < 4) {
            ik[nimpl]   = key + 5;
            iv[nimpl++] = tv_cstr(ev, value);
        } else if (!strcmp(key, "distlib")) {
            info->distlib = tv_path(ev, value);
        }
    }
    info->paths = tv_dict(ev, pk, pv, npaths);
    info->vars  = tv_dict(ev, vk, vv, nvars);
    info->impl  = tv_dict(ev, ik, iv, nimpl);
    free(pk);
    free(pv);
    free(vk);
    free(vv);
    if (!info->distlib)
        info->distlib = tv_path(ev, "/usr/lib/python3/dist-packages");
    ev->python = info;
    return 0;
}

static int want_string_arg(struct teval* ev, const char* fn, const struct tval* const* args,
                           size_t nargs, size_t nkw) {
    if (nargs != 1 || nkw)
        return teval_fail(ev, "%s() takes exactly one argument", fn);
    if (args[0]->type == TV_UNDEF)
        return tv_undefined_error(ev, args[0]);
    if (args[0]->type != TV_STR && args[0]->type != TV_PATH)
        return teval_fail(ev, "%s(): expected a string argument", fn);
    return 0;
}

static int py_get_config_var(struct teval* ev, const struct tval* fn,
                             const struct tval* const* args, size_t nargs, const struct tkwarg* kw,
                             size_t nkw, const struct tval** ret) {
    (void)fn;
    (void)kw;
    if (want_string_arg(ev, "python.get_config_var", args, nargs, nkw) < 0 || load_python(ev) < 0)
        return -EINVAL;
    const struct tval* v = tv_dict_get(ev->python->vars, args[0]->u.str.s);
    *ret                 = v ? v : tv_none();
    return 0;
}

static int py_get_path(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                       size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)fn;
    (void)kw;
    if (want_string_arg(ev, "python.get_path", args, nargs, nkw) < 0 || load_python(ev) < 0)
        return -EINVAL;
    const struct tval* v = tv_dict_get(ev->python->paths, args[0]->u.str.s);
    if (!v)
        return teval_fail(ev, "KeyError: '%s' (python.get_path)", args[0]->u.str.s);
    *ret = v;
    return 0;
}

static int py_get_paths(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                        size_t nargs, const struct tkwarg* kw, size_t nkw,
                        const struct tval** ret) {
    (void)fn;
    (void)args;
    (void)kw;
    if (nargs || nkw)
        return teval_fail(ev, "python.get_paths() takes no arguments");
    if (load_python(ev) < 0)
        return -EINVAL;
    *ret = ev->python->paths;
    return 0;
}

/* python.get_sys_path(interpreter): the interpreter's sys.path entries that exist. */
static int py_get_sys_path(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                           size_t nargs, const struct tkwarg* kw, size_t nkw,
                           const struct tval** ret) {
    (void)fn;
    /* gen_jinja_env.py: python_get_sys_path(interpreter, include_nonexisting=False) */
    static const struct tentry sig = {
        "python.get_sys_path", NULL, {"interpreter", "include_nonexisting", NULL}, 1};
    struct fargs a;
    bool all;
    if (tbind(ev, &sig, args, nargs, kw, nkw, &a) < 0 || ttruth_or(ev, a.p[1], false, &all) < 0)
        return -EINVAL;
    if (a.p[0]->type != TV_STR && a.p[0]->type != TV_PATH)
        return a.p[0]->type == TV_UNDEF
                   ? tv_undefined_error(ev, a.p[0])
                   : teval_fail(ev, "python.get_sys_path() takes the interpreter path");
    args                     = a.p;
    char* argv[]             = {(char*)args[0]->u.str.s, (char*)"-c",
                                (char*)"import sys; sys.stdout.write('\\0'.join(sys.path) + '\\0')", NULL};
    _cleanup_free_ char* out = NULL;
    size_t len;
    _cleanup_free_ char* what = xasprintf("python.get_sys_path('%s')", args[0]->u.str.s);
    if (run_capture(ev, what, argv, &out, &len) < 0)
        return -EINVAL;
    size_t cap = 16, n = 0;
    const struct tval** items = xmalloc(cap * sizeof(*items));
    for (size_t i = 0; i < len;) {
        const char* p = out + i;
        size_t plen   = strnlen(p, len - i);
        i += plen + 1;
        if (!plen || (!all && !exists(p)))
            continue;
        if (n == cap)
            items = xrealloc(items, (cap *= 2) * sizeof(*items));
        items[n++] = tv_path(ev, p); /* pathlib.Path(p): normalised, '..' kept */
    }
    *ret = tv_list(ev, items, n);
    free(items);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* gramine.*, ldd(), env                                                                      */

static int g_runtimedir(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                        size_t nargs, const struct tkwarg* kw, size_t nkw,
                        const struct tval** ret) {
    (void)fn;
    const struct tval* libc = nargs                                ? args[0]
                              : nkw && !strcmp(kw[0].name, "libc") ? kw[0].value
                                                                   : NULL;
    if (nargs + nkw > 1 || (nkw && strcmp(kw[0].name, "libc")))
        return teval_fail(ev, "gramine.runtimedir() takes one optional argument, libc");
    const char* which = "glibc";
    if (libc) {
        if (libc->type == TV_UNDEF)
            return tv_undefined_error(ev, libc);
        if (libc->type != TV_STR)
            return teval_fail(ev, "gramine.runtimedir(): libc must be a string");
        which = libc->u.str.s;
    }
    if (!strcmp(which, "glibc")) {
        *ret = tv_path(ev, ev->env->glibc_dir);
    } else if (!strcmp(which, "musl")) {
        if (!ev->env->musl_dir)
            return teval_fail(ev,
                              "gramine.runtimedir('musl'): no musl runtime on this host "
                              "(install the musl package)");
        *ret = tv_path(ev, ev->env->musl_dir);
    } else {
        return teval_fail(ev, "gramine.runtimedir(): unknown libc '%s' (glibc or musl)", which);
    }
    return 0;
}

static int g_ldd(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                 size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)fn;
    (void)kw;
    if (nkw)
        return teval_fail(ev, "ldd() takes no keyword arguments");
    char** argv = xcalloc(nargs + 2, sizeof(*argv));
    argv[0]     = (char*)"ldd";
    for (size_t i = 0; i < nargs; i++) {
        if (args[i]->type != TV_STR && args[i]->type != TV_PATH) {
            free(argv);
            return args[i]->type == TV_UNDEF ? tv_undefined_error(ev, args[i])
                                             : teval_fail(ev, "ldd(): arguments must be paths");
        }
        argv[i + 1] = (char*)args[i]->u.str.s;
    }
    struct strbuf what = STRBUF_INIT;
    strbuf_puts(&what, "ldd(");
    for (size_t i = 0; i < nargs; i++)
        strbuf_printf(&what, "%s'%s'", i ? ", " : "", argv[i + 1]);
    strbuf_putc(&what, ')');
    _cleanup_free_ char* out = NULL;
    size_t len;
    int r = run_capture(ev, what.buf, argv, &out, &len);
    free(argv);
    strbuf_free(&what);
    if (r < 0)
        return -EINVAL;

    size_t cap = 16, n = 0;
    char** paths = xmalloc(cap * sizeof(*paths));
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char* arrow = strstr(line, "=>");
        char* p     = arrow ? arrow + 2 : line;
        while (*p == ' ' || *p == '\t')
            p++;
        char* end = strstr(p, " (");
        if (end)
            *end = '\0';
        size_t plen = strlen(p);
        while (plen && (p[plen - 1] == ' ' || p[plen - 1] == '\t'))
            p[--plen] = '\0';
        if (p[0] != '/' || p[plen - 1] == ':')
            continue; /* vdso, "not found", or the "file:" header of multi-file output */
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = !strcmp(paths[i], p);
        if (dup)
            continue;
        if (n == cap)
            paths = xrealloc(paths, (cap *= 2) * sizeof(*paths));
        paths[n++] = p;
    }
    /* sorted(set(...)) */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(paths[j - 1], paths[j]) > 0; j--) {
            char* t      = paths[j];
            paths[j]     = paths[j - 1];
            paths[j - 1] = t;
        }
    const struct tval** items = xmalloc((n + 1) * sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = tv_cstr(ev, paths[i]);
    *ret = tv_list(ev, items, n);
    free(items);
    free(paths);
    return 0;
}

static const struct tval* env_dict(struct teval* ev) {
    size_t n = 0;
    for (char** e = environ; e && *e; e++)
        n++;
    const char** keys          = xmalloc((n + 1) * sizeof(*keys));
    const struct tval** values = xmalloc((n + 1) * sizeof(*values));
    size_t m                   = 0;
    for (size_t i = 0; i < n; i++) {
        const char* eq = strchr(environ[i], '=');
        if (!eq)
            continue;
        keys[m]     = arena_strndup(ev->arena, environ[i], (size_t)(eq - environ[i]));
        values[m++] = tv_cstr(ev, eq + 1);
    }
    struct tval* d = (struct tval*)tv_dict(ev, keys, values, m);
    d->flags       = TVF_ENVIRON;
    free(keys);
    free(values);
    return d;
}

static int g_range(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                   size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)fn;
    (void)kw;
    int64_t v[3] = {0, 0, 1};
    if (nkw || nargs < 1 || nargs > 3)
        return teval_fail(ev, "range() takes 1 to 3 integer arguments");
    for (size_t i = 0; i < nargs; i++) {
        if (args[i]->type != TV_INT)
            return teval_fail(ev, "range() arguments must be integers");
        v[nargs == 1 ? 1 : i] = args[i]->u.i;
    }
    if (v[2] == 0)
        return teval_fail(ev, "range() step must not be zero");
    size_t n = 0, cap = 16;
    const struct tval** items = xmalloc(cap * sizeof(*items));
    for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
        if (n == 100000) {
            free(items);
            return teval_fail(ev, "range() too long (more than 100000 items)");
        }
        if (n == cap)
            items = xrealloc(items, (cap *= 2) * sizeof(*items));
        items[n++] = tv_int(ev, i);
    }
    *ret = tv_list(ev, items, n);
    free(items);
    return 0;
}

/* dict(**kw) and namespace(**kw) (jinja2.utils.Namespace: the one mutable value) */
static int g_dict(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                  size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    bool ns = !strcmp(fn->u.fn.name, "namespace");
    if (nargs > 1 || (nargs && (args[0]->type != TV_DICT || (args[0]->flags & TVF_NAMESPACE))))
        return teval_fail(ev, "%s() takes keyword arguments or one dict", fn->u.fn.name);
    size_t base                = nargs ? args[0]->u.dict.n : 0;
    const char** keys          = arena_alloc(ev->arena, (base + nkw + 1) * sizeof(*keys));
    const struct tval** values = arena_alloc(ev->arena, (base + nkw + 1) * sizeof(*values));
    for (size_t i = 0; i < base; i++) {
        keys[i]   = args[0]->u.dict.items[i].key;
        values[i] = args[0]->u.dict.items[i].value;
    }
    for (size_t i = 0; i < nkw; i++) {
        keys[base + i]   = kw[i].name;
        values[base + i] = kw[i].value;
    }
    struct tval* d = (struct tval*)tv_dict(ev, keys, values, base + nkw);
    d->flags       = ns ? TVF_NAMESPACE : 0;
    *ret           = d;
    return 0;
}

/* python.* members are computed when first used, so templates without them never start an
 * interpreter. The dict holds functions and lazily bound values. */
static int py_attr(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                   size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret);

void template_add_globals(struct teval* ev, struct tscope* globals) {
    const struct jinja_env* env = ev->env;
    const char* gkeys[]         = {"runtimedir", "libos", "pkglibdir"};
    const struct tval* gvals[]  = {
         tv_func(ev, "gramine.runtimedir", g_runtimedir, NULL, env->glibc_dir),
         tv_path(ev, env->libos),
         tv_path(ev, env->pkglibdir),
    };
    tscope_set(globals, "gramine", tv_dict(ev, gkeys, gvals, ARRAY_SIZE(gkeys)));

    const char* pkeys[] = {"stdlib",         "platstdlib",     "purelib",  "distlib",
                           "ext_suffix",     "get_config_var", "get_path", "get_paths",
                           "implementation", "get_sys_path"};
    const struct tval* pvals[ARRAY_SIZE(pkeys)];
    for (size_t i = 0; i < ARRAY_SIZE(pkeys); i++) {
        struct tval* lazy = (struct tval*)tv_func(ev, pkeys[i], py_attr, NULL, NULL);
        lazy->u.fn.lazy   = true;
        pvals[i]          = lazy;
    }
    pvals[5]        = tv_func(ev, "python.get_config_var", py_get_config_var, NULL, NULL);
    pvals[6]        = tv_func(ev, "python.get_path", py_get_path, NULL, NULL);
    pvals[7]        = tv_func(ev, "python.get_paths", py_get_paths, NULL, NULL);
    pvals[9]        = tv_func(ev, "python.get_sys_path", py_get_sys_path, NULL, NULL);
    struct tval* py = (struct tval*)tv_dict(ev, pkeys, pvals, ARRAY_SIZE(pkeys));
    tscope_set(globals, "python", py);
    tscope_set(globals, "env", env_dict(ev));
    tscope_set(globals, "ldd", tv_func(ev, "ldd", g_ldd, NULL, NULL));
    /* Jinja's builtin globals used in manifests */
    tscope_set(globals, "range", tv_func(ev, "range", g_range, NULL, NULL));
    tscope_set(globals, "dict", tv_func(ev, "dict", g_dict, NULL, NULL));
    tscope_set(globals, "namespace", tv_func(ev, "namespace", g_dict, NULL, NULL));
}

/* python.stdlib etc. are values, not functions: resolve them on attribute access. */
static int py_attr(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                   size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)args;
    (void)nargs;
    (void)kw;
    (void)nkw;
    if (load_python(ev) < 0)
        return -EINVAL;
    const char* name = fn->u.fn.name;
    if (!strcmp(name, "distlib"))
        *ret = ev->python->distlib;
    else if (!strcmp(name, "ext_suffix"))
        *ret = tv_dict_get(ev->python->vars, "EXT_SUFFIX")
                   ? tv_dict_get(ev->python->vars, "EXT_SUFFIX")
                   : tv_none();
    else if (!strcmp(name, "implementation"))
        *ret = ev->python->impl;
    else {
        const struct tval* v = tv_dict_get(ev->python->paths, name);
        *ret                 = v ? tv_path(ev, v->u.str.s) : tv_none();
    }
    return 0;
}

void template_globals_free(struct teval* ev) {
    ev->python = NULL; /* arena-owned */
}
