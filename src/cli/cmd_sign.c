/* SPDX-License-Identifier: Apache-2.0 */
/* `moat sign`: gramine-sgx-sign and gramine-sgx-gen-private-key (reference/gramine.md §3). */
#include <getopt.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "commands.h"
#include "common.h"
#include "jinja.h"
#include "model.h"
#include "sigstruct.h"
#include "trusted.h"

static int sign_run(int argc, char** argv);

const struct moat_command cmd_sign = {
    .name    = "sign",
    .run     = sign_run,
    .summary = "finalize and sign a manifest (SIGSTRUCT), or generate a signing key",
    .usage =
        "usage: moat sign --manifest MANIFEST --output MANIFEST.sgx [--key KEY.pem]\n"
        "                 [--sigfile SIGFILE] [--date YYYY-MM-DD|today] [--chroot DIR] [-v|-q]\n"
        "       moat sign --gen-key [-f] [-q] [OUTPUT]\n"
        "\n"
        "Signs a manifest as gramine-sgx-sign does: injects the defaults, checks it, expands and\n"
        "hashes trusted files, writes MANIFEST.sgx, computes moat's measurement over its exact\n"
        "bytes (docs/measurement.md; this is not an SGX MRENCLAVE) and writes a SIGSTRUCT in\n"
        "Gramine's layout, signed with an RSA-3072 key with public exponent 3.\n"
        "\n"
        "options:\n"
        "  -m, --manifest FILE  manifest to sign (rendered by 'moat manifest render')\n"
        "  -o, --output FILE    finalized manifest to write (usually MANIFEST.sgx)\n"
        "  -k, --key FILE       signing key (default: $XDG_CONFIG_HOME/gramine/enclave-key.pem\n"
        "                       or ~/.config/gramine/enclave-key.pem)\n"
        "  -s, --sigfile FILE   SIGSTRUCT to write (default: OUTPUT without .manifest.sgx or\n"
        "                       .manifest, plus .sig)\n"
        "  -d, --date DATE      date in the SIGSTRUCT (default: today, UTC)\n"
        "      --chroot DIR     hash trusted files as found under DIR\n"
        "  -v, --verbose        also print the attributes and the measurement's definition\n"
        "  -q, --quiet          print nothing on success (the last of -v/-q wins)\n"
        "      --gen-key        generate a signing key at OUTPUT (default: the default key path)\n"
        "  -f, --force          with --gen-key: overwrite an existing key\n"
        "  -h, --help           show this help\n"
        "\n"
        "exit codes: 0 ok, 1 I/O or signing failure, 2 usage error or invalid manifest/key.\n",
};

enum { OPT_GEN_KEY = 256, OPT_CHROOT };

struct sign_args {
    const char *manifest, *output, *key, *sigfile, *date, *chroot;
    bool gen_key, force, verbose, quiet;
};

static char* default_key_path(void) {
    const char* xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg)
        return xasprintf("%s/gramine/enclave-key.pem", xdg);
    const char* home = getenv("HOME");
    return xasprintf("%s/.config/gramine/enclave-key.pem", home && *home ? home : ".");
}

static int exit_for(int ret) {
    return ret == -EINVAL || ret == -EEXIST ? MOAT_EXIT_USAGE : MOAT_EXIT_RUNTIME;
}

static int gen_key(const struct sign_args* a, const char* out) {
    _cleanup_free_ char* def = default_key_path();
    const char* path         = out ? out : def;
    struct moat_error err    = {0};
    if (!out && mkdir_parents(path, 0700) < 0) {
        log_error("cannot create the directory of %s: %s", path, strerror(errno));
        return MOAT_EXIT_RUNTIME;
    }
    EVP_PKEY* key = NULL;
    int ret       = enclave_key_generate(&key, &err);
    if (ret == 0)
        ret = enclave_key_write(path, key, a->force, &err);
    EVP_PKEY_free(key);
    if (ret < 0) {
        log_error("%s", err.msg);
        return exit_for(ret);
    }
    if (!a->quiet)
        printf("wrote RSA 3072 private key to %s\n", path);
    return MOAT_EXIT_OK;
}

static char* default_sigfile(const char* output) {
    size_t n                            = strlen(output);
    static const char* const suffixes[] = {".manifest.sgx", ".manifest"};
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        size_t s = strlen(suffixes[i]);
        if (n > s && strcmp(output + n - s, suffixes[i]) == 0)
            return xasprintf("%.*s.sig", (int)(n - s), output);
    }
    return xasprintf("%s.sig", output);
}

/* Loads, completes and checks the manifest; returns the finalized document and its model (what
 * `moat run` will read from it). */
static int finalize(const struct sign_args* a, char** ret_doc, size_t* ret_len,
                    struct manifest** ret_model, struct moat_error* err) {
    _cleanup_free_ char* text = NULL;
    size_t len;
    int ret = read_file(a->manifest, &text, &len, err);
    if (ret < 0)
        return -EIO;
    _cleanup_toml_ struct toml_value* root = NULL;
    struct toml_error terr;
    if (toml_parse(text, len, a->manifest, &root, &terr, err) < 0)
        return -EINVAL;
    struct jinja_env env;
    jinja_env_default(&env);
    ret = manifest_inject_defaults(root, env.libos, err);
    if (ret < 0)
        return moat_error_prefix(err, "%s", a->manifest);
    struct manifest_diags diags     = {0};
    struct manifest_check_opts opts = {0};
    int errors                      = manifest_check(root, &opts, &diags);
    manifest_diags_print(&diags, a->manifest, stderr);
    manifest_diags_free(&diags);
    if (errors > 0)
        return moat_error_set(err, -EINVAL, "%s: manifest failed validation (%d %s)", a->manifest,
                              errors, errors == 1 ? "error" : "errors");
    struct trusted_opts topts = {.chroot = a->chroot, .progress = !a->quiet};
    ret                       = manifest_expand_trusted_files(root, &topts, err);
    if (ret < 0)
        return ret == -ENOENT || ret == -EINVAL ? -EINVAL : ret;
    _cleanup_free_ char* doc        = toml_write(root, ret_len);
    struct manifest_load_opts lopts = {.runtime = true, .finalized = true};
    ret = manifest_load(doc, *ret_len, a->output, &lopts, ret_model, &diags, err);
    if (ret < 0) /* the warnings were printed for the input already */
        manifest_diags_print(&diags, a->output, stderr);
    manifest_diags_free(&diags);
    if (ret < 0)
        return ret;
    *ret_doc = TAKE_PTR(doc);
    return 0;
}

/* gramine-sgx-sign -v (sgx_sign.py get_mrenclave_and_manifest), minus the memory map: moat
 * lays out no enclave pages. */
static void print_verbose(const struct sigstruct* s, const struct manifest* m, const char* output) {
    printf("Attributes (required for enclave measurement):\n");
    printf("    size:        0x%llx\n", (unsigned long long)m->sgx.enclave_size);
    printf("    edmm:        %s\n    max_threads: %llu\n", m->sgx.edmm_enable ? "True" : "False",
           (unsigned long long)m->sgx.max_threads);
    printf("    isv_prod_id: %u\n    isv_svn:     %u\n", s->isv_prod_id, s->isv_svn);
    printf("    attr.flags:  0x%llx\n    attr.xfrm:   0x%llx\n    misc_select: 0x%x\n",
           (unsigned long long)s->attr_flags, (unsigned long long)s->attr_xfrm, s->misc_select);
    printf("    date:        %04x-%02x-%02x\n", s->date >> 16, (s->date >> 8) & 0xff,
           s->date & 0xff);
    printf("SGX remote attestation:\n    %s\n",
           m->sgx.remote_attestation_dcap ? "DCAP/ECDSA" : "None");
    printf(
        "Measurement scheme:\n    moat-measurement-v1: SHA-256(\"moat-measurement-v1\\0\" || "
        "%s)\n    this is moat's measurement, stored as MRENCLAVE; it is not an SGX "
        "MRENCLAVE (docs/measurement.md)\n",
        output);
}

static int sign_manifest(const struct sign_args* a) {
    struct moat_error err = {0};
    uint32_t date;
    if (sigstruct_date_parse(a->date ? a->date : "today", &date) < 0)
        return command_usage_error(&cmd_sign, "invalid --date '%s' (YYYY-MM-DD or today)", a->date);
    _cleanup_free_ char* def_key = default_key_path();
    const char* key_path         = a->key ? a->key : def_key;
    if (!a->key && access(key_path, F_OK) < 0) {
        log_error("no signing key at %s: create one with 'moat sign --gen-key' or pass --key",
                  key_path);
        return MOAT_EXIT_USAGE;
    }
    EVP_PKEY* key = NULL;
    int ret       = enclave_key_load(key_path, &key, &err);
    if (ret < 0) {
        log_error("%s", err.msg);
        return exit_for(ret);
    }

    _cleanup_free_ char* doc              = NULL;
    _cleanup_manifest_ struct manifest* m = NULL;
    size_t len                            = 0;
    struct sigstruct s;
    uint8_t measurement[32], buf[SIGSTRUCT_SIZE];
    _cleanup_free_ char* sigfile = a->sigfile ? xstrdup(a->sigfile) : default_sigfile(a->output);
    ret                          = finalize(a, &doc, &len, &m, &err);
    if (ret == 0)
        ret = moat_measurement(doc, len, measurement);
    if (ret == 0)
        ret = sigstruct_from_manifest(m, measurement, date, &s);
    if (ret == 0)
        ret = sigstruct_sign(&s, key, &err);
    EVP_PKEY_free(key);
    if (ret == 0)
        ret = write_file_atomic(a->output, doc, len, 0644, &err);
    if (ret == 0) {
        sigstruct_serialize(&s, buf);
        ret = write_file_atomic(sigfile, buf, sizeof(buf), 0644, &err);
    }
    if (ret < 0) {
        log_error("%s", err.msg[0] ? err.msg : strerror(-ret));
        return exit_for(ret);
    }
    if (a->verbose)
        print_verbose(&s, m, a->output);
    char hex[SHA256_HEX_SIZE];
    if (!a->quiet && hex_encode(measurement, sizeof(measurement), hex, sizeof(hex)) >= 0)
        printf("Measurement:\n    %s\n", hex);
    return MOAT_EXIT_OK;
}

static int sign_run(int argc, char** argv) {
    static const struct option options[] = {
        {"manifest", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"key", required_argument, NULL, 'k'},
        {"sigfile", required_argument, NULL, 's'},
        {"date", required_argument, NULL, 'd'},
        {"chroot", required_argument, NULL, OPT_CHROOT},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"gen-key", no_argument, NULL, OPT_GEN_KEY},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sign_args a = {0};
    optind             = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+m:o:k:s:d:vqfh", options, NULL)) != -1) {
        switch (c) {
            case 'm':
                a.manifest = optarg;
                break;
            case 'o':
                a.output = optarg;
                break;
            case 'k':
                a.key = optarg;
                break;
            case 's':
                a.sigfile = optarg;
                break;
            case 'd':
                a.date = optarg;
                break;
            case OPT_CHROOT:
                a.chroot = optarg;
                break;
            case 'v':
                a.verbose = true;
                a.quiet   = false;
                break;
            case 'q':
                a.quiet   = true;
                a.verbose = false;
                break;
            case OPT_GEN_KEY:
                a.gen_key = true;
                break;
            case 'f':
                a.force = true;
                break;
            case 'h':
                command_print_usage(&cmd_sign, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_sign, "invalid option");
        }
    }
    int npos = argc - optind;
    if (a.gen_key) {
        if (npos > 1 || a.manifest || a.output)
            return command_usage_error(&cmd_sign, "--gen-key takes at most one OUTPUT");
        return gen_key(&a, npos ? argv[optind] : NULL);
    }
    if (npos)
        return command_usage_error(&cmd_sign, "unexpected argument '%s'", argv[optind]);
    if (!a.manifest || !a.output)
        return command_usage_error(&cmd_sign, "--manifest and --output are required");
    return sign_manifest(&a);
}
