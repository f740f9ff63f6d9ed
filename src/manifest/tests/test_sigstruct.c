/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the measurement and SIGSTRUCT (reference/gramine.md §3); the OpenSSL
 * cross-check of the signature is tests/test_sign.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include "sigstruct.h"

static EVP_PKEY* g_key;

static int setup(void** state) {
    (void)state;
    struct moat_error err = {0};
    return enclave_key_generate(&g_key, &err);
}

static int teardown(void** state) {
    (void)state;
    EVP_PKEY_free(g_key);
    return 0;
}

/* The model of a manifest (with a libos.entrypoint added), as moat sign builds it. */
static struct manifest* model(const char* keys) {
    _cleanup_free_ char* text   = xasprintf("libos.entrypoint = \"/a\"\n%s", keys);
    struct manifest* m          = NULL;
    struct manifest_load_opts o = {0};
    struct manifest_diags diags = {0};
    struct moat_error err       = {0};
    if (manifest_load(text, strlen(text), "t.manifest", &o, &m, &diags, &err) < 0)
        fail_msg("%s", err.msg);
    manifest_diags_free(&diags);
    return m;
}

static void test_measurement(void** state) {
    (void)state;
    uint8_t m[32], want[32];
    const char doc[] = "libos.entrypoint = \"/a\"\n";
    assert_int_equal(moat_measurement(doc, strlen(doc), m), 0);
    char buf[128];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "moat-measurement-v1%c%s", '\0', doc);
    assert_int_equal(sha256_buf(buf, n, want), 0);
    assert_memory_equal(m, want, 32);
}

static void test_date(void** state) {
    (void)state;
    uint32_t d;
    assert_int_equal(sigstruct_date_parse("2026-11-24", &d), 0);
    assert_int_equal(d, 0x20261124);
    assert_int_equal(sigstruct_date_parse("2024-02-29", &d), 0); /* leap year */
    assert_int_equal(d, 0x20240229);
    assert_int_equal(sigstruct_date_parse("1999-01-05", &d), 0);
    assert_int_equal(d, 0x19990105);
    static const char* const bad[] = {
        "2026-13-01",  "26-1-1",     "2026-02-29", "2100-02-29", "2026-04-31",
        "2026-00-10",  "2026-01-00", "2026-+1-24", "2026- 1-24", "2026/11/24",
        "2026-11-241", "1969-12-31", "",           "today ",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (sigstruct_date_parse(bad[i], &d) != -EINVAL)
            fail_msg("date '%s' was accepted", bad[i]);
    assert_int_equal(sigstruct_date_parse("today", &d), 0);
    assert_true(d >= 0x20240101 && (d >> 28) == 2);
}

/* reference/gramine.md §3: the offsets every other tool (and the pytest checks) rely on */
static void test_layout(void** state) {
    (void)state;
    struct sigstruct s;
    memset(&s, 0, sizeof(s));
    s.vendor      = 0x11223344;
    s.date        = 0x20261124;
    s.exponent    = 3;
    s.misc_select = 0x1;
    s.misc_mask   = 0xffffffffU;
    s.attr_flags  = 0x6;
    s.attr_xfrm   = 0x3;
    s.isv_prod_id = 0x0102;
    s.isv_svn     = 0x0304;
    s.modulus[0]  = 0xaa;
    s.q2[383]     = 0xbb;
    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, buf);
    static const uint8_t header[16]  = {6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    static const uint8_t header2[16] = {1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0};
    assert_memory_equal(buf, header, 16);
    assert_memory_equal(buf + 24, header2, 16);
    assert_int_equal(buf[16], 0x44);
    /* date: day@20, month@21, year u16@22 */
    assert_int_equal(buf[20], 0x24);
    assert_int_equal(buf[21], 0x11);
    assert_int_equal(buf[22], 0x26);
    assert_int_equal(buf[23], 0x20);
    assert_int_equal(buf[128], 0xaa);
    assert_int_equal(buf[512], 3);
    assert_int_equal(buf[900], 1);
    assert_int_equal(buf[904], 0xff);
    assert_int_equal(buf[907], 0xff);
    assert_int_equal(buf[928], 6);
    assert_int_equal(buf[936], 3);
    assert_int_equal(buf[1024], 2);
    assert_int_equal(buf[1025], 1);
    assert_int_equal(buf[1026], 4);
    assert_int_equal(buf[1807], 0xbb);
    static const size_t offs[] = {
        SIGSTRUCT_OFF_MODULUS,      SIGSTRUCT_OFF_EXPONENT,    SIGSTRUCT_OFF_SIGNATURE,
        SIGSTRUCT_OFF_MISC_SELECT,  SIGSTRUCT_OFF_ATTRIBUTES,  SIGSTRUCT_OFF_ATTRIBUTE_MASK,
        SIGSTRUCT_OFF_ENCLAVE_HASH, SIGSTRUCT_OFF_ISV_PROD_ID, SIGSTRUCT_OFF_ISV_SVN,
        SIGSTRUCT_OFF_Q1,           SIGSTRUCT_OFF_Q2};
    static const size_t want[] = {128, 512, 516, 900, 928, 944, 960, 1024, 1026, 1040, 1424};
    for (size_t i = 0; i < ARRAY_SIZE(offs); i++)
        assert_int_equal(offs[i], want[i]);

    /* parse gives back the same struct; reserved bytes must be zero */
    struct sigstruct parsed;
    struct moat_error err = {0};
    assert_int_equal(sigstruct_parse(buf, sizeof(buf), &parsed, &err), 0);
    assert_memory_equal(&parsed, &s, sizeof(s));
    static const size_t reserved[] = {44, 127, 910, 911, 992, 1007, 1028, 1039};
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
        uint8_t bad[SIGSTRUCT_SIZE];
        memcpy(bad, buf, sizeof(bad));
        bad[reserved[i]] = 1;
        assert_int_equal(sigstruct_parse(bad, sizeof(bad), &parsed, &err), -EINVAL);
        char want_msg[80];
        snprintf(want_msg, sizeof(want_msg), "reserved byte at offset %zu is not 0", reserved[i]);
        assert_non_null(strstr(err.msg, want_msg));
    }
}

static void test_fields_from_manifest(void** state) {
    (void)state;
    _cleanup_manifest_ struct manifest* root = model(
        "sgx.debug = true\nsgx.isvprodid = 513\nsgx.isvsvn = 2\nsgx.use_exinfo = true\n"
        "sgx.cpu_features.avx512 = \"required\"\n");
    uint8_t m[32] = {1, 2, 3};
    struct sigstruct s;
    assert_int_equal(sigstruct_from_manifest(root, m, 0x20260101, &s), 0);
    assert_int_equal(s.attr_flags, SGX_FLAGS_DEBUG | SGX_FLAGS_MODE64BIT);
    assert_int_equal(s.attr_xfrm, SGX_XFRM_LEGACY | SGX_XFRM_AVX512);
    assert_int_equal(s.attr_mask_xfrm, SGX_XFRM_MASK_DEFAULT | SGX_XFRM_AVX512);
    assert_int_equal(s.attr_mask_flags, 0xffffffffffffffffULL);
    assert_int_equal(s.misc_mask, 0xffffffffU);
    assert_int_equal(s.misc_select, SGX_MISC_EXINFO);
    assert_int_equal(s.isv_prod_id, 513);

    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, buf);
    assert_int_equal(buf[SIGSTRUCT_OFF_ISV_PROD_ID], 1);
    assert_int_equal(buf[SIGSTRUCT_OFF_ISV_PROD_ID + 1], 2);
    assert_int_equal(buf[SIGSTRUCT_OFF_DATE + 3], 0x20);
    assert_memory_equal(buf + SIGSTRUCT_OFF_ENCLAVE_HASH, m, 32);

    /* out of range: the model refuses it, naming the key */
    const char* bad             = "libos.entrypoint = \"/a\"\nsgx.isvsvn = 65536\n";
    struct manifest_load_opts o = {0};
    struct manifest_diags diags = {0};
    struct manifest* none       = NULL;
    struct moat_error err       = {0};
    assert_int_equal(manifest_load(bad, strlen(bad), "t.manifest", &o, &none, &diags, &err),
                     -EINVAL);
    assert_null(none);
    assert_int_equal(diags.len, 1);
    assert_non_null(strstr(diags.items[0].msg, "'sgx.isvsvn'"));
    manifest_diags_free(&diags);
}

static void test_sign_parse_verify(void** state) {
    (void)state;
    _cleanup_manifest_ struct manifest* root = model("sgx.isvsvn = 9\n");
    uint8_t m[32];
    memset(m, 0xab, sizeof(m));
    struct sigstruct s, parsed;
    struct moat_error err = {0};
    assert_int_equal(sigstruct_from_manifest(root, m, 0x20261124, &s), 0);
    assert_int_equal(sigstruct_sign(&s, g_key, &err), 0);
    assert_int_equal(sigstruct_verify(&s, &err), 0);

    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, buf);
    assert_int_equal(sigstruct_parse(buf, sizeof(buf), &parsed, &err), 0);
    assert_int_equal(parsed.isv_svn, 9);
    assert_int_equal(sigstruct_verify(&parsed, &err), 0);

    /* every signed or checked region is covered: header, body, q1/q2 */
    static const size_t offsets[] = {
        SIGSTRUCT_OFF_DATE,     SIGSTRUCT_OFF_MISC_SELECT,     SIGSTRUCT_OFF_ENCLAVE_HASH + 5,
        SIGSTRUCT_OFF_ISV_SVN,  SIGSTRUCT_OFF_SIGNATURE + 100, SIGSTRUCT_OFF_Q1 + 7,
        SIGSTRUCT_OFF_Q2 + 300, SIGSTRUCT_OFF_MODULUS + 1};
    for (size_t i = 0; i < ARRAY_SIZE(offsets); i++) {
        uint8_t bad[SIGSTRUCT_SIZE];
        memcpy(bad, buf, sizeof(bad));
        bad[offsets[i]] ^= 0x10;
        struct sigstruct t;
        if (sigstruct_parse(bad, sizeof(bad), &t, &err) == 0 && sigstruct_verify(&t, &err) == 0)
            fail_msg("tampering at offset %zu was not detected", offsets[i]);
    }
    assert_int_equal(sigstruct_parse(buf, sizeof(buf) - 1, &parsed, &err), -EINVAL);
    buf[0] ^= 1;
    assert_int_equal(sigstruct_parse(buf, sizeof(buf), &parsed, &err), -EINVAL);
}

static void test_format(void** state) {
    (void)state;
    struct sigstruct s;
    memset(&s, 0, sizeof(s));
    memset(s.enclave_hash, 0xab, 32);
    s.isv_prod_id = 7;
    s.isv_svn     = 3;
    s.attr_flags  = SGX_FLAGS_DEBUG | SGX_FLAGS_MODE64BIT;
    s.misc_mask   = 0xffffffffU;
    s.date        = 0x20261124;
    uint8_t mrsigner[32];
    assert_int_equal(sha256_buf(s.modulus, sizeof(s.modulus), mrsigner), 0);
    char signer_hex[SHA256_HEX_SIZE], mre_hex[SHA256_HEX_SIZE], want[1024];
    assert_int_equal(hex_encode(mrsigner, 32, signer_hex, sizeof(signer_hex)), 64);
    assert_int_equal(hex_encode(s.enclave_hash, 32, mre_hex, sizeof(mre_hex)), 64);

    struct strbuf out = STRBUF_INIT;
    assert_int_equal(sigstruct_format(&s, SIGSTRUCT_FORMAT_TEXT, false, &out), 0);
    snprintf(want, sizeof(want),
             "Attributes:\n    mr_signer: %s\n    mr_enclave: %s\n    isv_prod_id: 7\n"
             "    isv_svn: 3\n    debug_enclave: True\n",
             signer_hex, mre_hex);
    assert_string_equal(out.buf, want);
    strbuf_free(&out);

    assert_int_equal(sigstruct_format(&s, SIGSTRUCT_FORMAT_JSON, false, &out), 0);
    snprintf(want, sizeof(want),
             "{\"mr_signer\": \"%s\", \"mr_enclave\": \"%s\", \"isv_prod_id\": 7, "
             "\"isv_svn\": 3, \"debug_enclave\": true}\n",
             signer_hex, mre_hex);
    assert_string_equal(out.buf, want);
    strbuf_free(&out);

    s.attr_flags = SGX_FLAGS_MODE64BIT;
    assert_int_equal(sigstruct_format(&s, SIGSTRUCT_FORMAT_TOML, true, &out), 0);
    assert_non_null(strstr(out.buf, "\ndebug_enclave = false\n"));
    assert_non_null(strstr(out.buf, "\nattribute_flags = \"0x4\"\n"));
    assert_non_null(strstr(out.buf, "\nmisc_mask = \"0xffffffff\"\n"));
    assert_non_null(strstr(out.buf, "\ndate = \"0x20261124\"\n"));
    assert_non_null(strstr(out.buf, "\nisv_prod_id = 7\n"));
    strbuf_free(&out);

    enum sigstruct_format fmt;
    assert_int_equal(sigstruct_format_parse("json", &fmt), 0);
    assert_int_equal(fmt, SIGSTRUCT_FORMAT_JSON);
    assert_int_equal(sigstruct_format_parse("yaml", &fmt), -EINVAL);
}

static void test_key_write_and_load(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-test-key-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char* path = xasprintf("%s/key.pem", dir);
    struct moat_error err     = {0};
    assert_int_equal(enclave_key_write(path, g_key, false, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    _cleanup_free_ char* pem = NULL;
    size_t len;
    assert_int_equal(read_file(path, &pem, &len, &err), 0);
    assert_true(strncmp(pem, "-----BEGIN RSA PRIVATE KEY-----\n", 32) == 0);

    EVP_PKEY* loaded = NULL;
    assert_int_equal(enclave_key_load(path, &loaded, &err), 0);
    assert_int_equal(EVP_PKEY_eq(loaded, g_key), 1);
    EVP_PKEY_free(loaded);

    assert_int_equal(enclave_key_write(path, g_key, false, &err), -EEXIST);
    _cleanup_free_ char* msg = xasprintf("refusing to overwrite %s, use -f to force", path);
    assert_string_equal(err.msg, msg);
    assert_int_equal(enclave_key_write(path, g_key, true, &err), 0);

    /* an encrypted key is refused, never prompted for */
    FILE* f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(
        PEM_write_PrivateKey(f, g_key, EVP_aes_128_cbc(), NULL, 0, NULL, (void*)"secret"), 1);
    fclose(f);
    assert_int_equal(enclave_key_load(path, &loaded, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not an unencrypted PEM private key"));
    assert_int_equal(enclave_key_load("/nonexistent/key.pem", &loaded, &err), -ENOENT);

    /* no temporary files are left behind */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_key_rules(void** state) {
    (void)state;
    struct moat_error err = {0};
    assert_int_equal(enclave_key_check(g_key, &err), 0);
    EVP_PKEY* k65537 = EVP_RSA_gen(3072);
    assert_non_null(k65537);
    assert_int_equal(enclave_key_check(k65537, &err), -EINVAL);
    assert_string_equal(err.msg, "Invalid RSA key: expected exponent 3, got 65537");
    EVP_PKEY_free(k65537);
    EVP_PKEY* small = EVP_RSA_gen(2048);
    assert_int_equal(enclave_key_check(small, &err), -EINVAL);
    assert_string_equal(err.msg, "Invalid RSA key: expected key size 3072, got 2048");
    EVP_PKEY_free(small);
    EVP_PKEY* ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    assert_int_equal(enclave_key_check(ec, &err), -EINVAL);
    assert_string_equal(err.msg, "Invalid key: expected RSA private key, found EC");
    uint8_t m[32] = {0};
    struct sigstruct s;
    memset(&s, 0, sizeof(s));
    memcpy(s.enclave_hash, m, 32);
    assert_int_equal(sigstruct_sign(&s, ec, &err), -EINVAL);
    EVP_PKEY_free(ec);
}

/* A SIGSTRUCT whose modulus is shorter than 3072 bits is refused even if it is consistent. */
static void test_verify_rejects_short_modulus(void** state) {
    (void)state;
    struct sigstruct s;
    struct moat_error err = {0};
    memset(&s, 0, sizeof(s));
    assert_int_equal(sigstruct_sign(&s, g_key, &err), 0);
    assert_int_equal(sigstruct_verify(&s, &err), 0);
    s.modulus[SIGSTRUCT_KEY_BYTES - 1] = 0x7f;
    assert_int_equal(sigstruct_verify(&s, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "3072-bit"));
    s.modulus[SIGSTRUCT_KEY_BYTES - 1] ^= 0xff;
    s.exponent = 65537;
    assert_int_equal(sigstruct_verify(&s, &err), -EBADMSG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measurement),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_key_write_and_load),
        cmocka_unit_test(test_verify_rejects_short_modulus),
        cmocka_unit_test(test_fields_from_manifest),
        cmocka_unit_test(test_sign_parse_verify),
        cmocka_unit_test(test_key_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
