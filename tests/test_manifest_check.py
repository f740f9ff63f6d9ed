"""`moat manifest check`: every problem at once, each with key and position (gramine.md §1)."""
import re

import pytest

GOOD = """\
libos.entrypoint = "/app"
loader.log_level = "error"
loader.env.LD_LIBRARY_PATH = "/lib"
loader.env.HOME = { value = "/root" }
loader.env.TERM = { passthrough = true }
fs.mounts = [
  { path = "/lib", uri = "file:/lib/x86_64-linux-gnu" },
  { type = "tmpfs", path = "/tmp" },
  { type = "encrypted", path = "/db", uri = "file:db", key_name = "default" },
]
fs.insecure__keys.default = "00112233445566778899aabbccddeeff"
sys.stack.size = "1M"
sgx.enclave_size = "1G"
sgx.max_threads = 8
sgx.remote_attestation = "dcap"
sgx.trusted_files = [ "file:app", "file:/lib/x86_64-linux-gnu/" ]
sgx.allowed_files = [ "file:/tmp/out/" ]
"""

# (manifest line, expected message fragment) — each must be reported, with its line number
BAD = [
    ('loader.log_level = "verbose"', "Unknown 'loader.log_level'"),
    ("loader.argv = []", "'loader.argv' has no arguments, this is unsupported"),
    ("loader.env.A = { passthrough = false }",
     "Detected environment variable 'A' with 'passthrough = false'"),
    ("loader.env.B = { value = 1 }", "Invalid environment variable in manifest: 'B'"),
    ('loader.env.C = { value = "x", passthrough = true }', "both 'value' and 'passthrough'"),
    ('sgx.enclve_size = "1G"', "unknown key 'sgx.enclve_size' (did you mean 'sgx.enclave_size'?)"),
    ("loader.max_threads = 3", "did you mean 'sgx.max_threads'?"),
    ('sgx.enclave_size = "1000M"', "not a power of two"),
    ('sys.stack.size = "1KB"', "'sys.stack.size' = \"1KB\" is not a valid size"),
    ('sys.brk.max_size = "99999999999999999999G"', "is not a valid size"),
    ("sgx.max_threads = 0", "'sgx.max_threads' = 0 is out of range"),
    ("sgx.debug = 1", "'sgx.debug' must be a boolean (true or false), not the integer 1"),
    ('sgx.isvprodid = "1"', "'sgx.isvprodid' must be an integer, not a string"),
    ("sgx.isvsvn = 70000", "'sgx.isvsvn' = 70000 is out of range"),
    ("sgx.remote_attestation = true", "Cannot parse 'sgx.remote_attestation'"),
    ('sgx.remote_attestation = "epid"', "Unknown 'sgx.remote_attestation' type"),
    ('sgx.file_check_policy = "lax"', "Unknown value for 'sgx.file_check_policy'"),
    ('sgx.cpu_features.avx = "yes"', "'sgx.cpu_features.avx' = \"yes\" is not one of"),
    ('sgx.seal_key.flags_mask = "ff"', "is not a hex mask"),
    ('fs.insecure__keys.k = "abc"', "Cannot parse hex key: 'fs.insecure__keys.k'"),
    ('fs.mounts = [ { path = "lib", uri = "file:/lib" } ]',
     "Relative mount path: 'fs.mounts[0].path' (\"lib\") is disallowed!"),
    ('fs.mounts = [ { path = "/", uri = "file:/" } ]',
     "'fs.mounts[0].path' cannot be \"/\". The root mount (\"/\") can be customized via the "
     "'fs.root' manifest entry."),
    ('fs.mounts = [ { path = "/x", uri = "/x" } ]', "'fs.mounts[0].uri' = \"/x\" must start with 'file:'"),
    ('fs.mounts = [ { path = "/x" } ]', "No value provided for 'fs.mounts[0].uri'"),
    ('fs.mounts = [ { uri = "file:x" } ]', "No value provided for 'fs.mounts[0].path'"),
    ('fs.mounts = [ "x" ]', "Invalid mount in manifest at index 0 (not a TOML table)"),
    ('fs.mounts = [ { type = "nfs", path = "/x", uri = "file:x" } ]', "'fs.mounts[0].type' = \"nfs\""),
    ('fs.mounts = [ { path = "/x", uri = "file:x", mode = 1 } ]', "unknown key 'fs.mounts[0].mode'"),
    ('loader.env."A=B" = "x"', "Invalid environment variable in manifest: '\"A=B\"'"),
    ('sys.debug__mock_syscalls = [ { name = "no_such_call" } ]',
     "Unrecognized mock syscall `no_such_call` in manifest at index 0"),
    ('sgx.trusted_files = [ "/etc/passwd" ]', "Trusted files must start with 'file:'"),
    ('sgx.trusted_files = [ { uri = "file:a", sha256 = "zz" } ]', "is not a SHA-256 hash"),
    ('sgx.allowed_files = [ "/tmp" ]', "must start with 'file:' or 'dev:'"),
    ('loader.exec = "file:app"', "'loader.exec' is not supported anymore"),
    ('sgx.sigfile = "x.sig"', "sgx.sigfile is not supported anymore"),
    ('loader.entrypoint = "file:libsysdb.so"', "Unknown loader.entrypoint format (not a TOML table)"),
    ('loader.entrypoint.uri = "libsysdb.so"', "'loader.entrypoint.uri' is missing the 'file:' prefix"),
]


@pytest.fixture
def check(moat, tmp_path):
    def run(text, *args, expect=None):
        path = tmp_path / "app.manifest"
        path.write_text(text)
        r = moat("manifest", "check", *args, path)
        if expect is not None:
            assert r.returncode == expect, r.stderr
        return r
    return run


def test_good_manifest_passes(check):
    r = check(GOOD, expect=0)
    assert "error" not in r.stderr


@pytest.mark.parametrize("line,message", BAD, ids=[b[0][:40] for b in BAD])
def test_each_problem_is_reported_with_key_and_line(check, line, message):
    # the bad line replaces nothing: later keys of GOOD with the same name would clash, so the
    # bad line goes into a manifest of its own plus the required entrypoint
    text = 'libos.entrypoint = "/app"\n' + line + "\n"
    r = check(text, expect=2)
    assert message in r.stderr, r.stderr
    assert re.search(r"app\.manifest:2:\d+: error: ", r.stderr), r.stderr


def test_all_problems_reported_at_once(check):
    text = 'libos.entrypoint = "/app"\n' + "\n".join(
        l for l, _ in BAD if not l.startswith(("fs.mounts", "sgx.trusted_files", "loader.entrypoint",
                                               "sgx.remote_attestation", "sgx.enclave_size",
                                               "sgx.allowed_files"))) + "\n"
    r = check(text, expect=2)
    errors = re.findall(r"^.*: error: .*$", r.stderr, re.M)
    assert len(errors) == text.count("\n") - 1, r.stderr
    lines = [int(m) for m in re.findall(r"app\.manifest:(\d+):\d+: error", r.stderr)]
    assert lines == sorted(lines), "diagnostics must be in line order"
    assert re.search(r"\d+ errors$", r.stderr.strip())


def test_missing_entrypoint_and_argv_exclusivity(check):
    r = check('loader.argv = ["a"]\nloader.insecure__use_cmdline_argv = true\n', expect=2)
    assert "'libos.entrypoint' must be specified in the manifest" in r.stderr
    assert ("Options loader.argv, loader.argv_src_file, and loader.insecure__use_cmdline_argv are "
            "mutually exclusive") in r.stderr
    r = check('libos.entrypoint = "/a"\nloader.env_src_file = "file:e"\n'
              "loader.insecure__use_host_env = true\n", expect=2)
    assert ("cannot use loader.insecure__use_host_env and loader.env_src_file at the same "
            "time.") in r.stderr


def test_legacy_keys_are_warnings_naming_the_replacement(check):
    r = check('libos.entrypoint = "/app"\nsgx.thread_num = 4\nsgx.require_avx = true\n'
              'fs.mount.lib.type = "chroot"\nfs.mount.lib.path = "/lib"\nfs.mount.lib.uri = "file:/lib"\n',
              expect=0)
    assert re.search(r"app\.manifest:2:5: warning: .*'sgx\.thread_num'.*sgx\.max_threads", r.stderr)
    assert "sgx.cpu_features.avx = \"required\"" in r.stderr
    assert "fs.mounts" in r.stderr


def test_toml_syntax_error_has_position(check):
    r = check('libos.entrypoint = "/app"\nsgx.debug = true\nsgx.debug = false\n', expect=2)
    assert "app.manifest:3:5: error: duplicate key 'sgx.debug'" in r.stderr


def test_finalized_requires_hashes(check):
    r = check(GOOD, "--finalized", expect=2)
    assert "has no sha256, the manifest is not finalized" in r.stderr
    assert "No 'loader.entrypoint.uri' is specified" in r.stderr


def test_unknown_keys_allowed_on_request(check):
    check('libos.entrypoint = "/app"\nmy.own.key = 1\n', expect=2)
    check('libos.entrypoint = "/app"\nmy.own.key = 1\n', "--no-unknown-keys-check", expect=0)


def test_unreadable_file_and_usage(moat, tmp_path):
    assert moat("manifest", "check", check=2).returncode == 2
    r = moat("manifest", "check", tmp_path / "nope.manifest", check=1)
    assert "nope.manifest" in r.stderr


def test_insecure_key_value_is_never_echoed(check):
    r = check('libos.entrypoint = "/app"\nfs.insecure__keys.k = "s3cr3t-s3cr3t"\n', expect=2)
    assert "s3cr3t" not in r.stderr
