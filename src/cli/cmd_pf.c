/* SPDX-License-Identifier: Apache-2.0 */
/* `moat pf gen-key|encrypt|decrypt|info`: gramine-sgx-pf-crypt (reference/gramine.md §4.8)
 * and more: --bind-path, and `info` to see what a file is bound to. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "pf.h"

static int pf_run(int argc, char** argv);

const struct moat_command cmd_pf = {
    .name    = "pf",
    .run     = pf_run,
    .summary = "create keys for, encrypt, decrypt and inspect Gramine encrypted files",
    .usage =
        "usage: moat pf gen-key -w WRAP_KEY\n"
        "       moat pf encrypt -w WRAP_KEY -i IN -o OUT [--bind-path PATH]\n"
        "       moat pf decrypt -w WRAP_KEY -i IN -o OUT [-V]\n"
        "       moat pf info [-w WRAP_KEY] FILE\n"
        "\n"
        "Gramine's encrypted-file format (gramine-sgx-pf-crypt). A wrap key file holds exactly\n"
        "16 raw bytes (fs.insecure__keys takes the same key as 32 hex digits).\n"
        "\n"
        "An encrypted file is bound to the host path it has when the app opens it: encrypt\n"
        "embeds the normalized OUT path, or PATH with --bind-path (for a directory, PATH/<the\n"
        "file's path below IN>). Encrypt at the path the manifest's encrypted mount uses, or\n"
        "pass that path with --bind-path; 'moat pf info -w KEY FILE' shows the bound path.\n"
        "\n"
        "options:\n"
        "  -w, --wrap-key FILE   the 16-byte key\n"
        "  -i, --input PATH      file or directory (encrypt and decrypt recurse)\n"
        "  -o, --output PATH     where to write (parent directories are created)\n"
        "  -b, --bind-path PATH  encrypt: the path to bind instead of OUT\n"
        "  -V, --verify          decrypt: require the bound path to be the normalized IN path\n"
        "  -h, --help            show this help\n"
        "\n"
        "exit codes: 0 ok, 1 a file could not be processed, 2 usage error.\n",
};

struct pf_opts {
    const char* key_file;
    const char* in;
    const char* out;
    const char* bind;
    bool verify;
    uint8_t key[PF_KEY_SIZE];
};

static int load_key(const char* path, uint8_t key[PF_KEY_SIZE]) {
    struct moat_error err    = {0};
    _cleanup_free_ char* buf = NULL;
    size_t len;
    if (read_file(path, &buf, &len, &err) < 0) {
        log_error("%s", err.msg);
        return -1;
    }
    if (len != PF_KEY_SIZE) {
        log_error("Wrap key size %zu != %d (%s)", len, PF_KEY_SIZE, path);
        OPENSSL_cleanse(buf, len);
        return -1;
    }
    memcpy(key, buf, PF_KEY_SIZE);
    OPENSSL_cleanse(buf, len);
    return 0;
}

/* Encrypts one file: written to a temporary file beside OUT and renamed, so OUT is either
 * the old file or the complete new one. */
static int encrypt_file(const struct pf_opts* o, const char* in, const char* out,
                        const char* bind) {
    _cleanup_free_ char* bound = path_normalize(bind);
    _cleanup_free_ char* tmp   = xasprintf("%s.moat-tmp.%d", out, (int)getpid());
    printf("Encrypting: %s -> %s\n", in, out);
    int in_fd = open(in, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0 || mkdir_parents(out, 0755) < 0) {
        log_error("cannot read %s or create the directory of %s: %s", in, out, strerror(errno));
        if (in_fd >= 0)
            close(in_fd);
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot create %s: %s", tmp, strerror(errno));
        close(in_fd);
        return -1;
    }
    struct pf_file* pf;
    enum pf_status s = pf_open(fd, bound, o->key, PF_OPEN_WRITE | PF_OPEN_CREATE, NULL, &pf);
    enum { BUF = 1 << 20 };
    _cleanup_free_ uint8_t* buf = xmalloc(BUF);
    uint64_t off                = 0;
    int r                       = 0;
    while (s == PF_SUCCESS) {
        ssize_t n = read_full(in_fd, buf, BUF);
        if (n < 0) {
            r = (int)n;
            break;
        }
        if (n == 0)
            break;
        s = pf_write(pf, off, (size_t)n, buf);
        off += (uint64_t)n;
    }
    if (pf) {
        enum pf_status c = pf_close(pf);
        if (s == PF_SUCCESS)
            s = c;
    }
    close(in_fd);
    if (s == PF_SUCCESS && r == 0 && (fsync(fd) < 0 || rename(tmp, out) < 0))
        r = -errno;
    close(fd);
    if (s != PF_SUCCESS || r < 0) {
        unlink(tmp);
        log_error("cannot encrypt %s: %s", in, s != PF_SUCCESS ? pf_strerror(s) : strerror(-r));
        return -1;
    }
    printf("(Gramine's encrypted files must contain this exact path: \"%s\")\n", bound);
    return 0;
}

static int decrypt_file(const struct pf_opts* o, const char* in, const char* out) {
    int fd = open(in, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot open %s: %s", in, strerror(errno));
        return -1;
    }
    _cleanup_free_ char* expected = path_normalize(in);
    char embedded[PF_PATH_MAX_SIZE];
    struct pf_file* pf;
    printf("Decrypting: %s -> %s\n", in, out);
    enum pf_status s =
        pf_open(fd, o->verify ? expected : NULL, o->key, PF_OPEN_READ, embedded, &pf);
    if (s != PF_SUCCESS) {
        close(fd);
        if (s == PF_INVALID_PATH)
            log_error("cannot decrypt %s: %s: the file is bound to \"%s\", expected \"%s\"", in,
                      pf_strerror(s), embedded, expected);
        else
            log_error("cannot decrypt %s: %s%s", in, pf_strerror(s),
                      s == PF_MAC_MISMATCH ? " (wrong key, or the file was tampered with)" : "");
        return -1;
    }
    _cleanup_free_ char* tmp = xasprintf("%s.moat-tmp.%d", out, (int)getpid());
    int out_fd               = mkdir_parents(out, 0755) == 0
                                   ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                                   : -1;
    int r                    = out_fd < 0 ? -errno : 0;
    enum { BUF = 1 << 20 };
    _cleanup_free_ uint8_t* buf = xmalloc(BUF);
    for (uint64_t off = 0; r == 0 && s == PF_SUCCESS && off < pf_size(pf);) {
        size_t n;
        s = pf_read(pf, off, BUF, buf, &n);
        if (s == PF_SUCCESS)
            r = write_all(out_fd, buf, n);
        off += n;
    }
    OPENSSL_cleanse(buf, BUF);
    pf_close(pf);
    close(fd);
    if (r == 0 && s == PF_SUCCESS && (fsync(out_fd) < 0 || rename(tmp, out) < 0))
        r = -errno;
    if (out_fd >= 0)
        close(out_fd);
    if (r < 0 || s != PF_SUCCESS) {
        unlink(tmp);
        log_error("cannot decrypt %s: %s", in, s != PF_SUCCESS ? pf_strerror(s) : strerror(-r));
        return -1;
    }
    return 0;
}

/* Applies `fn` to IN (a file) or to every regular file below it (a directory), with the
 * matching OUT path and bound path. */
static int walk(const struct pf_opts* o, const char* in, const char* out, const char* bind,
                bool encrypt) {
    struct stat st;
    if (stat(in, &st) < 0) {
        log_error("cannot read %s: %s", in, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return encrypt ? encrypt_file(o, in, out, bind) : decrypt_file(o, in, out);
    DIR* d = opendir(in);
    if (!d) {
        log_error("cannot read %s: %s", in, strerror(errno));
        return -1;
    }
    int failed = 0;
    struct dirent* de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        _cleanup_free_ char* i = path_join(in, de->d_name);
        _cleanup_free_ char* t = path_join(out, de->d_name);
        _cleanup_free_ char* b = path_join(bind, de->d_name);
        if (walk(o, i, t, b, encrypt) < 0)
            failed = -1;
    }
    closedir(d);
    return failed;
}

static int gen_key(const char* path) {
    uint8_t key[PF_KEY_SIZE];
    struct moat_error err = {0};
    if (RAND_bytes(key, sizeof(key)) != 1) {
        log_error("no randomness for a key");
        return MOAT_EXIT_RUNTIME;
    }
    int r = write_file_atomic(path, key, sizeof(key), 0600, &err);
    OPENSSL_cleanse(key, sizeof(key));
    if (r < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    printf("Wrap key saved to: %s\n", path);
    return MOAT_EXIT_OK;
}

static int info(const struct pf_opts* o, const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot open %s: %s", path, strerror(errno));
        return MOAT_EXIT_RUNTIME;
    }
    struct pf_header h;
    enum pf_status s = pf_read_header(fd, &h);
    if (s != PF_SUCCESS) {
        close(fd);
        log_error("%s: %s (not a Gramine encrypted file)", path, pf_strerror(s));
        return MOAT_EXIT_RUNTIME;
    }
    printf("file:        %s\n", path);
    printf("format:      Gramine encrypted file, version %u.%u%s\n", h.major, h.minor,
           h.major == 1 ? " (read, and rewritten as 2.0 when written)" : "");
    printf("disk size:   %llu bytes (%llu nodes)\n", (unsigned long long)h.disk_size,
           (unsigned long long)(h.disk_size / PF_NODE_SIZE));
    if (h.has_flags)
        printf("flags:       %s\n",
               h.feature_flags & 1 ? "pending write (needs recovery)" : "none");
    int status = MOAT_EXIT_OK;
    if (o->key_file) {
        char embedded[PF_PATH_MAX_SIZE];
        struct pf_file* pf;
        s = pf_open(fd, NULL, o->key, PF_OPEN_READ, embedded, &pf);
        if (s == PF_SUCCESS) {
            printf("bound path:  %s\n", pf_path(pf));
            printf("size:        %llu bytes\n", (unsigned long long)pf_size(pf));
            pf_close(pf);
        } else {
            log_error("%s: %s%s", path, pf_strerror(s),
                      s == PF_MAC_MISMATCH ? " (wrong key, or the file was tampered with)" : "");
            status = MOAT_EXIT_RUNTIME;
        }
    } else {
        printf("bound path:  (encrypted: pass -w WRAP_KEY to see it and the size)\n");
    }
    close(fd);
    return status;
}

static int pf_run(int argc, char** argv) {
    if (argc < 2) {
        command_print_usage(&cmd_pf, stderr);
        return MOAT_EXIT_USAGE;
    }
    const char* sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        command_print_usage(&cmd_pf, stdout);
        return MOAT_EXIT_OK;
    }
    static const struct option options[] = {
        {"wrap-key", required_argument, NULL, 'w'},
        {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"bind-path", required_argument, NULL, 'b'},
        {"verify", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pf_opts o = {0};
    optind           = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "+w:i:o:b:Vh", options, NULL)) != -1) {
        switch (c) {
            case 'w':
                o.key_file = optarg;
                break;
            case 'i':
                o.in = optarg;
                break;
            case 'o':
                o.out = optarg;
                break;
            case 'b':
                o.bind = optarg;
                break;
            case 'V':
                o.verify = true;
                break;
            case 'h':
                command_print_usage(&cmd_pf, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_pf, "invalid option");
        }
    }
    int npos = argc - 1 - optind;
    if (!strcmp(sub, "gen-key")) {
        if (!o.key_file || npos)
            return command_usage_error(&cmd_pf, "gen-key takes -w WRAP_KEY");
        return gen_key(o.key_file);
    }
    if (!strcmp(sub, "info")) {
        if (npos != 1)
            return command_usage_error(&cmd_pf, "info takes one FILE");
        if (o.key_file && load_key(o.key_file, o.key) < 0)
            return MOAT_EXIT_USAGE;
        int r = info(&o, argv[1 + optind]);
        OPENSSL_cleanse(o.key, sizeof(o.key));
        return r;
    }
    bool encrypt = !strcmp(sub, "encrypt");
    if (!encrypt && strcmp(sub, "decrypt"))
        return command_usage_error(&cmd_pf, "unknown subcommand '%s'", sub);
    if (!o.key_file || !o.in || !o.out || npos)
        return command_usage_error(&cmd_pf, "%s takes -w WRAP_KEY -i IN -o OUT", sub);
    if (o.bind && !encrypt)
        return command_usage_error(&cmd_pf, "--bind-path is for encrypt");
    if (o.verify && encrypt)
        return command_usage_error(&cmd_pf, "--verify is for decrypt");
    if (load_key(o.key_file, o.key) < 0)
        return MOAT_EXIT_USAGE;
    int r = walk(&o, o.in, o.out, o.bind ? o.bind : o.out, encrypt);
    OPENSSL_cleanse(o.key, sizeof(o.key));
    return r < 0 ? MOAT_EXIT_RUNTIME : MOAT_EXIT_OK;
}
