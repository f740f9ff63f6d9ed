"""`moat run`: Gramine's runtime behaviours (reference/gramine.md §1.3, §6) in the sandbox.

Each test renders a small manifest for tests/apps/probe.c, runs it with `moat run` and checks
what the app saw and what moat printed.
"""
import os
import re
import shutil
import tempfile
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import descendants, moat_binary

ROOT = Path(__file__).resolve().parent.parent
LIBDIR = "/lib/x86_64-linux-gnu"

BASE = """\
libos.entrypoint = "/probe"
loader.log_level = "warning"
fs.mounts = [
  { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" },
  { path = "/lib64", uri = "file:/lib64" },
  { path = "/probe", uri = "file:probe" },
  { path = "/data", uri = "file:data" },
  { type = "tmpfs", path = "/tmp" },
]
sgx.trusted_files = [
  "file:probe",
  "file:{{ gramine.runtimedir() }}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
  "file:data/trusted.txt",
  "file:data/big.bin",
]
sgx.allowed_files = [ "file:data/allowed/" ]
"""


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", out, ROOT / "tests/apps/probe.c"],
                   check=True)
    return out


@pytest.fixture
def app(tmp_path, probe_binary, moat):
    """app(extra_manifest_lines, *args, ...) renders probe.manifest and runs it."""
    (tmp_path / "probe").write_bytes(probe_binary.read_bytes())
    (tmp_path / "probe").chmod(0o755)
    data = tmp_path / "data"
    (data / "allowed").mkdir(parents=True)
    (data / "trusted.txt").write_text("trusted content\n")
    (data / "unlisted.txt").write_text("not in the manifest\n")
    (data / "big.bin").write_bytes(os.urandom(64 << 10))

    def run(extra="", *args, render=True, start=True, env=None, input=None, timeout=60,
            level="warning"):
        if render:
            (tmp_path / "probe.manifest.template").write_text(
                BASE.replace('loader.log_level = "warning"', f'loader.log_level = "{level}"') +
                extra)
            moat("manifest", "render", "--no-progress", "probe.manifest.template",
                 "probe.manifest", cwd=tmp_path, check=0)
        if not start:
            return None
        full_env = {k: v for k, v in os.environ.items()}
        full_env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the order of trusted files
        full_env.update(env or {})
        return moat("run", "probe", *args, cwd=tmp_path, env=full_env, input=input,
                    timeout=timeout)

    run.dir = tmp_path
    return run


def test_hello_and_exit_status(app):
    r = app("")
    assert r.returncode == 0 and r.stdout == "argc=1\n", r.stderr
    r = app('loader.argv = ["probe", "exit", "42"]\n')
    assert r.returncode == 42


def test_killed_by_signal(app):
    r = app('loader.argv = ["probe", "kill", "9"]\n')
    assert r.returncode == 128 + 9


def test_missing_manifest(moat, tmp_path):
    r = moat("run", "nothing", cwd=tmp_path, check=2)
    assert "Invalid application path specified (nothing.manifest does not exist)." in r.stderr


# ---- argv (reference §1.3) ----

def test_argv_not_configured(app):
    r = app("", "extra")
    assert r.returncode != 0
    assert ("argv handling wasn't configured in the manifest, but cmdline arguments were "
            "specified.") in r.stderr


def test_argv_from_cmdline(app):
    r = app("loader.insecure__use_cmdline_argv = true\n", "argv", "a b", "c")
    assert r.stdout == "argv[0]=/probe\nargv[1]=argv\nargv[2]=a b\nargv[3]=c\n", r.stderr
    assert "loader.insecure__use_cmdline_argv = true" in r.stderr  # insecure banner


def test_argv_from_manifest_discards_cmdline(app):
    r = app('loader.argv = ["zero", "argv", "x"]\n', "ignored")
    assert r.stdout == "argv[0]=zero\nargv[1]=argv\nargv[2]=x\n"
    assert ("Discarding cmdline arguments (ignored) because loader.argv was specified in the "
            "manifest.") in r.stderr


def test_argv_src_file(app):
    (app.dir / "args").write_bytes(b"first\0argv\0from file\0")
    r = app('loader.argv_src_file = "file:args"\n')
    assert r.stdout == "argv[0]=first\nargv[1]=argv\nargv[2]=from file\n", r.stderr
    (app.dir / "args").write_bytes(b"no terminator")
    r = app(render=False)
    assert r.returncode != 0 and "Cannot load arguments from 'loader.argv_src_file'" in r.stderr


def test_argv_exclusive(app):
    (app.dir / "probe.manifest").write_text(
        'libos.entrypoint = "/probe"\nloader.argv = ["a"]\nloader.insecure__use_cmdline_argv = true\n')
    r = app(render=False)
    assert ("Options loader.argv, loader.argv_src_file, and loader.insecure__use_cmdline_argv "
            "are mutually exclusive") in r.stderr


# ---- environment (reference §1.3, build_envs) ----

def env_of(r):
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def test_env_only_what_the_manifest_allows(app):
    r = app('loader.argv = ["probe", "env"]\nloader.env.A = "1"\nloader.env.B = { value = "2" }\n'
            'loader.env.PASS = { passthrough = true }\n',
            env={"PASS": "from host", "SECRET": "host only"})
    assert env_of(r) == {"A": "1", "B": "2", "PASS": "from host"}, r.stdout


def test_env_passthrough_false_is_refused(app):
    (app.dir / "probe.manifest").write_text(
        'libos.entrypoint = "/probe"\nloader.env.X = { passthrough = false }\n')
    r = app(render=False)
    assert r.returncode != 0
    assert "Detected environment variable 'X' with 'passthrough = false'" in r.stderr


def test_env_from_host_and_file(app):
    r = app('loader.argv = ["probe", "env"]\nloader.insecure__use_host_env = true\n'
            'loader.env.A = "manifest wins"\n', env={"A": "host", "HOSTVAR": "h"})
    env = env_of(r)
    assert env["A"] == "manifest wins" and env["HOSTVAR"] == "h"
    (app.dir / "envs").write_bytes(b"F1=file\0A=from file\0")
    r = app('loader.argv = ["probe", "env"]\nloader.env_src_file = "file:envs"\n'
            'loader.env.A = "manifest"\n', env={"HOSTVAR": "h"})
    assert env_of(r) == {"F1": "file", "A": "manifest"}, r.stdout


# ---- trusted and allowed files (reference §6) ----

def test_trusted_file_readable_and_read_only(app):
    r = app('loader.argv = ["probe", "read", "/data/trusted.txt"]\n')
    assert r.stdout == "read 16 bytes\n", r.stderr
    r = app('loader.argv = ["probe", "write", "/data/trusted.txt"]\n')
    assert r.stdout == "open: Permission denied\n"
    assert "Disallowing write/append to a trusted file 'trusted.txt'" in r.stderr
    assert (app.dir / "data/trusted.txt").read_text() == "trusted content\n"


def test_tampered_trusted_file_refused(app):
    app('loader.argv = ["probe", "read", "/data/trusted.txt"]\n')
    (app.dir / "data/trusted.txt").write_text("tampered content\n")
    r = app(render=False)
    assert r.stdout == "open: Operation not permitted\n"
    assert "Hash of trusted file" in r.stderr and "does not match with the reference hash" in r.stderr


BIG = 80 << 20  # above the largest verified copy (64 MiB as root): served chunk by chunk


def make_big(path):
    """A sparse 80 MiB file with random bytes at both ends."""
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 16))
        f.truncate(BIG - (1 << 16))
        f.seek(0, 2)
        f.write(os.urandom(1 << 16))


def test_trusted_file_changed_while_running(app):
    """A large trusted file is re-checked chunk by chunk: a change on the host is refused."""
    make_big(app.dir / "data/big.bin")
    last = BIG - (16 << 10)
    app(f'loader.argv = ["probe", "readlater", "/data/big.bin", "{last}"]\n', start=False)
    p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(app.dir / "cache")})
    assert p.stdout.readline() == "ready\n"
    with open(app.dir / "data/big.bin", "r+b") as f:  # change the last chunk on the host
        f.seek(last)
        f.write(b"X" * 16)
    out, err = p.communicate("go\n", timeout=60)
    assert out == "second read: Operation not permitted\n", err
    assert "changed on the host" in err


def test_small_trusted_file_changed_while_running_is_not_seen(app):
    """A file up to the copy size is served from the bytes that were verified: a change on the
    host after the check never reaches the app."""
    (app.dir / "data/big.bin").write_bytes(b"A" * (64 << 10))
    app('loader.argv = ["probe", "readlater", "/data/big.bin", "32768"]\n', start=False)
    p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "XDG_CACHE_HOME": str(app.dir / "cache")})
    assert p.stdout.readline() == "ready\n"
    (app.dir / "data/big.bin").write_bytes(b"B" * (64 << 10))
    out, err = p.communicate("go\n", timeout=60)
    assert out == "second read: ok\n", err


def test_prefetch_verifies_ahead_and_still_refuses_tampering(app):
    """The second run verifies the files the first one opened before the app asks; a file
    tampered with in between is still refused."""
    r = app('loader.argv = ["probe", "read", "/data/trusted.txt"]\n', level="debug")
    assert r.returncode == 0, r.stderr
    r = app(render=False)
    m = re.search(r"trusted files verified (\d+) \([0-9.]+ ms, (\d+) ahead of use\)", r.stderr)
    # probe, libc, ld.so and trusted.txt are hashed ahead of use, except any the app opened
    # before the prefetcher (started at the clone) reached them
    assert m and int(m.group(1)) == 4 and int(m.group(2)) >= 1, r.stderr
    if os.geteuid() == 0:  # the kernel reads the verified copies itself
        assert "passthrough on" in r.stderr, r.stderr
    order = next((app.dir / "cache/moat/verify-order").iterdir()).read_text().splitlines()
    assert str(app.dir / "data/trusted.txt") in order
    (app.dir / "data/trusted.txt").write_text("tampered content\n")
    r = app(render=False)
    assert "open: Operation not permitted" in r.stdout, r.stderr
    assert r.stderr.count("Hash of trusted file") == 1


def test_unlisted_file_strict_and_log(app):
    r = app('loader.argv = ["probe", "read", "/data/unlisted.txt"]\n')
    assert r.stdout == "open: Permission denied\n"
    assert "Disallowing access to file 'unlisted.txt'; file is not allowed." in r.stderr
    r = app('loader.argv = ["probe", "read", "/data/unlisted.txt"]\n'
            'sgx.file_check_policy = "allow_all_but_log"\n')
    assert r.stdout == "read 20 bytes\n"
    assert "Allowing access to unknown file 'unlisted.txt' due to file_check_policy." in r.stderr
    assert "sgx.file_check_policy = allow_all_but_log" in r.stderr  # insecure banner


def test_creating_unlisted_file(app):
    r = app('loader.argv = ["probe", "write", "/data/new.txt"]\n')
    assert r.stdout == "open: Permission denied\n"
    assert "Disallowing creating file" in r.stderr and not (app.dir / "data/new.txt").exists()


def test_allowed_directory_is_writable(app):
    r = app('loader.argv = ["probe", "write", "/data/allowed/out.txt"]\n')
    assert r.stdout == "write: ok\n", r.stderr
    assert (app.dir / "data/allowed/out.txt").read_text() == "written\n"
    # as root the app's root is an unprivileged host id, but the allowed directory is an
    # idmapped mount: what the app creates belongs to the directory's owner, as before
    # (docs/security.md)
    st = (app.dir / "data/allowed/out.txt").stat()
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())


def test_app_is_unprivileged_on_the_host(app):
    """The app's processes run as a host id that owns nothing (as root: 2147483646)."""
    app('loader.argv = ["probe", "sleep", "30"]\n', start=False)
    p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "sleeping\n"
        pids = descendants(p.pid)
        assert len(pids) >= 2
        expected = 2147483646 if os.geteuid() == 0 else os.geteuid()
        for pid in pids:
            uids = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Uid:")][0].split()[1:]
            assert {int(u) for u in uids} == {expected}, (pid, uids)
    finally:
        p.kill()
        p.wait(timeout=10)


# ---- mounts and limits ----

def test_tmpfs_and_start_dir(app):
    r = app('loader.argv = ["probe", "write", "/tmp/x"]\n')
    assert r.stdout == "write: ok\n"
    r = app('loader.argv = ["probe", "pwd"]\nfs.start_dir = "/data"\n')
    assert r.stdout == "cwd=/data\n"


def test_missing_mount_source(app):
    app('loader.argv = ["probe"]\n', start=False)
    text = (app.dir / "probe.manifest").read_text().replace("file:data", "file:no-such-dir", 1)
    (app.dir / "probe.manifest").write_text(text)
    r = app(render=False)
    assert r.returncode != 0 and "no-such-dir" in r.stderr and "failed" in r.stderr


ENC_KEY = bytes(range(16))


def encrypted_app(app, moat, key_name=None, insecure_key=True, recovery=None):
    """The probe with an encrypted mount of host dir 'enc' at /enc (relative URI: files are
    bound to enc/<name>, reference §4.5) and the key in fs.insecure__keys.default.
    run(*argv) renders the manifest and runs it; run(*argv, start=False) only renders."""
    mount = '  { type = "encrypted", path = "/enc", uri = "file:enc"%s%s },\n' % (
        f', key_name = "{key_name}"' if key_name else "",
        f", enable_recovery = {str(recovery).lower()}" if recovery is not None else "")
    text = BASE.replace('  { type = "tmpfs", path = "/tmp" },\n',
                        '  { type = "tmpfs", path = "/tmp" },\n' + mount)
    if insecure_key:
        text += f'fs.insecure__keys.default = "{ENC_KEY.hex()}"\n'
    (app.dir / "enc").mkdir(exist_ok=True)

    def run(*argv, start=True):
        (app.dir / "probe.manifest.template").write_text(
            text + "loader.argv = [%s]\n" % ", ".join(f'"{a}"' for a in ("probe",) + argv))
        moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
             cwd=app.dir, check=0)
        return app(render=False) if start else None
    return run


def test_encrypted_mount_round_trip(app, moat):
    import pf_reference as ref
    run = encrypted_app(app, moat)
    r = run("write", "/enc/a.txt")
    assert r.stdout == "write: ok\n", r.stderr
    blob = (app.dir / "enc/a.txt").read_bytes()
    assert ref.decrypt(blob, ENC_KEY, "enc/a.txt", strict=True) == b"written\n"
    assert run("cat", "/enc/a.txt").stdout == "written\n"
    # large: many nodes, odd-sized writes; read back in the app and on the host
    size = 3072 + 4096 * 150 + 11
    assert run("writebig", "/enc/big", str(size)).stdout == "write: ok\n"
    assert run("read", "/enc/big").stdout == f"read {size} bytes\n"
    assert ref.decrypt((app.dir / "enc/big").read_bytes(), ENC_KEY, "enc/big") == bytes(
        (i * 7) & 0xFF for i in range(size))
    # rename inside the mount rebinds the file to its new path
    assert run("rename", "/enc/a.txt", "/enc/b.txt").stdout == "rename: ok\n"
    assert ref.decrypt((app.dir / "enc/b.txt").read_bytes(), ENC_KEY, "enc/b.txt") == b"written\n"
    assert run("cat", "/enc/b.txt").stdout == "written\n"


def test_encrypted_mount_reads_moat_pf_files_and_refuses_bad_ones(app, moat):
    run = encrypted_app(app, moat)
    (app.dir / "plain").write_text("prepared\n")
    (app.dir / "k").write_bytes(ENC_KEY)
    moat("pf", "encrypt", "-w", "k", "-i", "plain", "-o", "enc/good", "--bind-path", "enc/good",
         cwd=app.dir, check=0)
    assert run("cat", "/enc/good").stdout == "prepared\n"
    # encrypted for another path (the common Gramine mistake): EACCES and both paths named
    moat("pf", "encrypt", "-w", "k", "-i", "plain", "-o", "enc/moved", cwd=app.dir, check=0)
    os.rename(app.dir / "enc/moved", app.dir / "enc/elsewhere")
    r = run("cat", "/enc/elsewhere")
    assert r.stdout == "open: Permission denied\n"
    assert ('pf_open failed: Invalid path (the file is bound to "enc/moved", this mount '
            'expects "enc/elsewhere")') in r.stderr
    # tampered
    blob = bytearray((app.dir / "enc/good").read_bytes())
    blob[200] ^= 1
    (app.dir / "enc/good").write_bytes(bytes(blob))
    r = run("cat", "/enc/good")
    assert r.stdout == "open: Permission denied\n" and "pf_open failed: MAC mismatch" in r.stderr
    # not an encrypted file
    (app.dir / "enc/plain").write_text("not encrypted\n")
    r = run("cat", "/enc/plain")
    assert r.stdout == "open: Permission denied\n" and "pf_open failed: Invalid header" in r.stderr


def test_encrypted_mount_without_its_key(app, moat):
    run = encrypted_app(app, moat, key_name="other")
    r = run("write", "/enc/x")
    assert r.stdout == "open: Permission denied\n"
    assert "key 'other' is not set" in r.stderr
    assert not (app.dir / "enc/x").exists()


def test_encrypted_key_written_at_run_time(app, moat):
    """/dev/attestation/keys/<name> (reference §5): a single 16-byte write sets the key; files
    opened afterwards use it (what secret provisioning does in Gramine)."""
    import pf_reference as ref
    run = encrypted_app(app, moat, insecure_key=False)
    put = ("put", "/dev/attestation/keys/default", "hex:" + ENC_KEY.hex(), "+")
    # without the key: EACCES, and nothing is created
    r = run("write", "/enc/a")
    assert r.stdout == "open: Permission denied\n" and "key 'default' is not set" in r.stderr
    assert not (app.dir / "enc/a").exists()
    r = run(*put, "write", "/enc/a")
    assert r.stdout == "put: ok\nwrite: ok\n", r.stderr
    assert ref.decrypt((app.dir / "enc/a").read_bytes(), ENC_KEY, "enc/a", strict=True) == (
        b"written\n")
    assert run(*put, "cat", "/enc/a").stdout == "put: ok\nwritten\n"
    # the key reads back (16 raw bytes); an unset key reads as nothing
    assert run(*put, "gethex", "/dev/attestation/keys/default").stdout == (
        "put: ok\n16 bytes:" + ENC_KEY.hex() + "\n")
    assert run("gethex", "/dev/attestation/keys/default").stdout == "0 bytes:\n"
    assert run("ls", "/dev/attestation/keys").stdout == "default\n_sgx_mrenclave\n_sgx_mrsigner\n"
    assert run("ls", "/dev/attestation").stdout.split() == [
        "keys", "protected_files_key", "attestation_type", "user_report_data", "target_info",
        "my_target_info", "report"]  # no quote without sgx.remote_attestation = "dcap"
    # a wrong key fails like tampering; a write of another size is refused; unknown names
    r = run("put", "/dev/attestation/keys/default", "hex:" + bytes(16).hex(), "+", "cat", "/enc/a")
    assert r.stdout == "put: ok\nopen: Permission denied\n"
    assert "pf_open failed" in r.stderr
    r = run("put", "/dev/attestation/keys/default", "hex:" + ENC_KEY[:15].hex())
    assert r.stdout == "put: Permission denied\n"
    assert "exactly 16 bytes in one write (got 15)" in r.stderr
    assert run("gethex", "/dev/attestation/keys/nope").stdout == "open: No such file or directory\n"
    # Graphene's /dev/attestation/protected_files_key: the key in hex, for key "default"
    r = run("put", "/dev/attestation/protected_files_key", ENC_KEY.hex(), "+", "cat", "/enc/a")
    assert r.stdout == "put: ok\nwritten\n", r.stderr
    r = run("put", "/dev/attestation/protected_files_key", "not hex", "+", "cat", "/enc/a")
    assert r.stdout == "put: Permission denied\n"


def test_special_keys_are_read_only(app, moat):
    run = encrypted_app(app, moat, key_name="_sgx_mrenclave", insecure_key=False)
    r = run("put", "/dev/attestation/keys/_sgx_mrenclave", "hex:" + ENC_KEY.hex())
    assert r.stdout == "open: Permission denied\n"


def test_graphene_protected_files_at_run_time(app, moat):
    """sgx.protected_files and sgx.protected_files_key (Graphene) are served as the encrypted
    mounts `moat manifest migrate` would write, with a warning saying so."""
    (app.dir / "k").write_bytes(ENC_KEY)
    (app.dir / "secret.txt").write_text("top secret\n")
    moat("pf", "encrypt", "-w", "k", "-i", "secret.txt", "-o", "data/secret.txt", cwd=app.dir,
         check=0)
    r = app('loader.argv = ["probe", "cat", "/data/secret.txt"]\n'
            'sgx.protected_files = [ "file:data/secret.txt", "file:data/new.txt" ]\n'
            f'sgx.protected_files_key = "{ENC_KEY.hex()}"\n')
    assert r.stdout == "top secret\n", r.stderr
    assert ('protected file "file:data/secret.txt" rewritten as an encrypted mount at '
            '"/data/secret.txt"') in r.stderr
    # a protected file that does not exist yet is created encrypted
    r = app('loader.argv = ["probe", "write", "/data/new.txt"]\n'
            'sgx.protected_files = [ "file:data/new.txt" ]\n'
            f'sgx.protected_files_key = "{ENC_KEY.hex()}"\n')
    assert r.stdout == "write: ok\n", r.stderr
    assert (app.dir / "data/new.txt").read_bytes()[:8] == b"GRAFS_PF"


def test_encrypted_mmap_and_two_processes(app, moat):
    run = encrypted_app(app, moat)
    size = 3072 + 4096 * 100 + 5
    assert run("writebig", "/enc/big", str(size)).stdout == "write: ok\n"
    want = sum((i * 7) & 0xFF for i in range(size))
    assert run("mmapsum", "/enc/big").stdout == f"mmap {size} bytes, sum {want}\n"
    # two processes with their own opens of one file see each other's writes
    r = run("shared", "/enc/s")
    assert r.stdout == 'shared: parent reads "child"\n', r.stderr


def test_encrypted_damage_is_never_served(app, moat):
    """A flipped bit in one node fails the read that reaches it (EACCES, MAC mismatch); it is
    never served as data nor as a shorter file."""
    run = encrypted_app(app, moat)
    assert run("writebig", "/enc/big", "20000").stdout == "write: ok\n"
    blob = bytearray((app.dir / "enc/big").read_bytes())
    blob[4096 * 3 + 100] ^= 1  # inside data node 1 (plaintext 7168..11263)
    (app.dir / "enc/big").write_bytes(bytes(blob))
    r = run("read", "/enc/big")
    assert r.stdout == "read: Permission denied\n" and "pf_read failed: MAC mismatch" in r.stderr


def test_rename_then_use_the_new_name(app, moat):
    """In one run: a renamed file (plain or encrypted) and a renamed directory are found under
    their new names, and a file renamed while open is written at its new place."""
    (app.dir / "data/allowed/a.txt").write_text("plain\n")
    (app.dir / "data/allowed/d").mkdir()
    (app.dir / "data/allowed/d/in.txt").write_text("inside\n")
    r = app('loader.argv = ["probe", "cat", "/data/allowed/a.txt", "+", "rename", '
            '"/data/allowed/a.txt", "/data/allowed/b.txt", "+", "cat", "/data/allowed/b.txt", '
            '"+", "rename", "/data/allowed/d", "/data/allowed/e", "+", "cat", '
            '"/data/allowed/e/in.txt", "+", "stat", "/data/allowed/a.txt"]\n')
    assert r.stdout == "plain\nrename: ok\nplain\nrename: ok\ninside\nstat: No such file or directory\n", r.stderr
    for recovery in (False, True):
        run = encrypted_app(app, moat, recovery=recovery)
        r = run("write", "/enc/a", "+", "rename", "/enc/a", "/enc/b", "+", "cat", "/enc/b", "+",
                "renameopen", "/enc/b", "/enc/c", "+", "cat", "/enc/c")
        assert r.stdout == ("write: ok\nrename: ok\nwritten\nrenameopen: ok\n"
                            "written\nafter\n"), r.stderr
        assert sorted(os.listdir(app.dir / "enc")) == ["c"]
        os.unlink(app.dir / "enc/c")


def test_encrypted_write_behind(app, moat):
    """Large writes are applied by moat after the app's write returns (write-behind): a read
    that reaches moat before the fsync sees them, and the file on the host is exact."""
    import pf_reference as ref
    run = encrypted_app(app, moat)
    r = run("writemb", "/enc/m", "3", str((2 << 20) + 4101))
    assert r.stdout == "directread: ok\nwritemb: ok\n", r.stderr
    size = 3 << 20
    assert ref.decrypt((app.dir / "enc/m").read_bytes(), ENC_KEY, "enc/m") == bytes(
        (i * 7) & 0xFF for i in range(size))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root)")
def test_encrypted_write_failure_is_reported(app, moat):
    """A write moat fails to apply later (here: the host disk is full) is reported to the app
    by its next write, fsync or close, never lost silently."""
    run = encrypted_app(app, moat)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(app.dir / "enc")],
                   check=True)
    try:
        r = run("writemb", "/enc/big", "4")
    finally:
        subprocess.run(["umount", str(app.dir / "enc")], check=True)
    assert r.stdout.split(":")[0] in ("write", "fsync", "writemb"), r.stdout
    assert r.stdout.endswith(": Permission denied\n"), r.stdout
    assert "failed: Write to disk failed" in r.stderr


def crash_runs(app, moat, recovery, rounds=6, victim="moat", piece=4096):
    """kill -9 of moat in the middle of an app rewriting and fsyncing a file; returns what the
    next run found each time, with the last generation the app had reported durable (the
    file holds it or the one being written when moat died)."""
    import random
    run = encrypted_app(app, moat, recovery=recovery)
    size = 200_000  # 49 nodes: a generation is committed by its fsync only
    found = []
    for _ in range(rounds):
        run("generations", "/enc/f", str(size), str(piece), start=False)
        p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        assert line.startswith("g "), p.stderr.read()
        deadline = time.time() + random.uniform(0.05, 0.4)
        while time.time() < deadline:
            line = p.stdout.readline()
        if victim == "moat":
            p.kill()
        else:  # the app: moat lives on and closes the file
            os.kill(descendants(p.pid)[-1], signal.SIGKILL)
        p.wait(timeout=10)
        reported = [line] + p.stdout.read().splitlines()  # what it printed before it died
        last = max(int(x.split()[1]) for x in reported if x.startswith("g "))
        r = run("uniform", "/enc/f")
        found.append((last, r.stdout, r.stderr))
    return size, found


def test_encrypted_crash_with_recovery(app, moat):
    """enable_recovery = true: after kill -9 in the middle of writes the file opens in the
    state of the last fsync or of the one in flight, never mixed, never refused."""
    size, found = crash_runs(app, moat, recovery=True)
    found += crash_runs(app, moat, recovery=True, rounds=4, piece=200_000)[1]  # write-behind
    for last, out, err in found:
        assert out in (f"uniform {last % 251} {size}\n",
                       f"uniform {(last + 1) % 251} {size}\n"), (last, out, err)
    assert not list((app.dir / "enc").glob("*.gramine.recovery"))  # the clean runs removed it


def test_encrypted_app_killed(app, moat):
    """kill -9 of the app: moat closes the file, which stays readable (what the app wrote
    after its last fsync may be there in part, as on any file system)."""
    size, found = crash_runs(app, moat, recovery=False, rounds=3, victim="app")
    for last, out, err in found:
        assert out.startswith("uniform ") or out == "mixed\n", (last, out, err)


def test_encrypted_crash_without_recovery_is_detected(app, moat):
    """Without recovery a torn flush may make the file unreadable, but is never served."""
    size, found = crash_runs(app, moat, recovery=False)
    for last, out, err in found:
        assert out in (f"uniform {last % 251} {size}\n", f"uniform {(last + 1) % 251} {size}\n",
                       "open: Permission denied\n"), (last, out, err)
        if out.startswith("open"):
            assert "pf_open failed" in err
            break  # the file stays unreadable: nothing more to learn


def attestation_app(app, moat, extra=""):
    """The probe with /dev/attestation in use: sgx.remote_attestation = "dcap", product 5,
    SVN 2, debug; returns (run, manifest bytes)."""
    text = (BASE + 'sgx.remote_attestation = "dcap"\nsgx.isvprodid = 5\nsgx.isvsvn = 2\n'
            'sgx.debug = true\n' + extra)

    def run(*argv, env=None):
        (app.dir / "probe.manifest.template").write_text(
            text + "loader.argv = [%s]\n" % ", ".join(f'"{a}"' for a in ("probe",) + argv))
        moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
             cwd=app.dir, check=0)
        return app(render=False, env=env)
    return run


def measurement(manifest: bytes) -> str:
    import hashlib
    return hashlib.sha256(b"moat-measurement-v1\0" + manifest).hexdigest()


def test_dev_attestation_simulated_quote(app, moat, tmp_path):
    """The sim provider: attestation_type "dcap", a quote for the thread's user_report_data
    carrying moat's measurement and the manifest's identity, a report and target info; the
    start-up says that simulated quotes prove nothing."""
    import json
    env = {"MOAT_SIM_DIR": str(tmp_path / "sim")}
    moat("attest", "init", env=env, check=0)
    run = attestation_app(app, moat)
    out = "/data/allowed"
    r = run("put", "/dev/attestation/user_report_data", "hex:" + "ab" * 70, "+",
            "copy", "/dev/attestation/quote", out + "/quote", "+",
            "copy", "/dev/attestation/report", out + "/report", "+",
            "copy", "/dev/attestation/my_target_info", out + "/ti", "+",
            "gethex", "/dev/attestation/attestation_type", env=env)
    assert r.stdout == "put: ok\ncopy: ok\ncopy: ok\ncopy: ok\n4 bytes:64636170\n", r.stderr
    assert "attestation provider: sim (SIMULATED" in r.stderr
    assert "they prove nothing about hardware" in r.stderr
    mr = measurement((app.dir / "probe.manifest").read_bytes())
    q = json.loads(moat("quote", "view", "--json", app.dir / "data/allowed/quote", check=0).stdout)
    assert q["version"] == 3 and q["body"]["mrenclave"] == mr
    assert q["body"]["report_data"] == "ab" * 64  # 70 bytes written: cut to 64
    assert q["body"]["isvprodid"] == 5 and q["body"]["isvsvn"] == 2 and q["is_debug"] is True
    assert bytes.fromhex(q["header_user_data"]).startswith(b"MOAT SIMULATED")
    report = (app.dir / "data/allowed/report").read_bytes()
    assert len(report) == 432 and report[64:96].hex() == mr and report[320:384] == b"\xab" * 64
    ti = (app.dir / "data/allowed/ti").read_bytes()
    assert len(ti) == 512 and ti[:32].hex() == mr
    # another process has its own user_report_data: a fresh one reads back nothing
    assert run("gethex", "/dev/attestation/user_report_data", env=env).stdout == "0 bytes:\n"
    # the files that are produced, not written, refuse writes
    assert run("put", "/dev/attestation/quote", "x", env=env).stdout == "open: Permission denied\n"


def test_dev_attestation_state_is_per_process(app, moat, tmp_path):
    """user_report_data written by one thread is in the quote another thread of the same
    process reads; a child process starts with its own (empty) state, as in Gramine."""
    import json
    env = {"MOAT_SIM_DIR": str(tmp_path / "sim")}
    moat("attest", "init", env=env, check=0)
    run = attestation_app(app, moat)
    r = run("urdscope", "/data/allowed/thread", "/data/allowed/child", env=env)
    assert r.stdout == "copy: ok\ncopy: ok\n", r.stderr

    def report_data(name):
        q = moat("quote", "view", "--json", app.dir / "data/allowed" / name, check=0)
        return json.loads(q.stdout)["body"]["report_data"]
    assert report_data("thread") == "5a" * 64
    assert report_data("child") == "00" * 64


def test_dev_attestation_without_provider_or_dcap(app, moat, tmp_path):
    env = {"MOAT_SIM_DIR": str(tmp_path / "none")}
    run = attestation_app(app, moat)
    r = run("gethex", "/dev/attestation/attestation_type", "+", "copy", "/dev/attestation/quote",
            "/data/allowed/q", env=env)
    assert r.stdout == "4 bytes:6e6f6e65\nopen: Permission denied\n"  # "none"
    assert "no simulated platform" in r.stderr and "moat attest init" in r.stderr
    # without sgx.remote_attestation = "dcap" there is no quote file at all
    r = app('loader.argv = ["probe", "ls", "/dev/attestation"]\n')
    assert "quote" not in r.stdout.split() and "report" in r.stdout.split()


def test_sealing_keys(app, moat, tmp_path):
    """keys/_sgx_mrenclave and _sgx_mrsigner: the same across runs of the same manifest, new
    when the measurement changes, read-only; files encrypted with _sgx_mrenclave survive a
    restart and become unreadable when the manifest changes."""
    env = {"MOAT_MACHINE_SECRET": str(tmp_path / "machine.key")}
    run = attestation_app(app, moat)
    k1 = run("gethex", "/dev/attestation/keys/_sgx_mrenclave", env=env).stdout
    assert k1.startswith("16 bytes:") and k1 != "16 bytes:" + "00" * 16 + "\n"
    assert run("gethex", "/dev/attestation/keys/_sgx_mrenclave", env=env).stdout == k1
    assert oct((tmp_path / "machine.key").stat().st_mode & 0o777) == "0o600"
    r = run("put", "/dev/attestation/keys/_sgx_mrsigner", "hex:" + "00" * 16, env=env)
    assert r.stdout == "open: Permission denied\n"
    other = attestation_app(app, moat, 'loader.env.OTHER = "another measurement"\n')
    assert other("gethex", "/dev/attestation/keys/_sgx_mrenclave", env=env).stdout != k1
    # an encrypted mount sealed to the measurement
    base = BASE.replace("fs.mounts = [", "fs.mounts = [\n  { type = \"encrypted\", path = "
                        "\"/sealed\", uri = \"file:sealed\", key_name = \"_sgx_mrenclave\" },")
    (app.dir / "sealed").mkdir()

    def render(extra):  # argv from the command line: the manifest (its measurement) stays
        (app.dir / "probe.manifest.template").write_text(
            base + "loader.insecure__use_cmdline_argv = true\n" + extra)
        moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
             cwd=app.dir, check=0)
    render("")
    assert app("", "write", "/sealed/s", render=False, env=env).stdout == "write: ok\n"
    assert app("", "cat", "/sealed/s", render=False, env=env).stdout == "written\n"
    render('loader.env.CHANGED = "1"\n')
    r = app("", "cat", "/sealed/s", render=False, env=env)
    assert r.stdout == "open: Permission denied\n" and "pf_open failed" in r.stderr


def test_fd_limit(app):
    r = app('loader.argv = ["probe", "nofile"]\nsys.fds.limit = 123\n')
    assert r.stdout == "nofile=123\n"


def test_disallow_subprocesses(app):
    r = app('loader.argv = ["probe", "fork"]\n')
    assert r.stdout == "fork: ok\n"
    r = app('loader.argv = ["probe", "fork"]\nsys.disallow_subprocesses = true\n')
    assert r.stdout == "fork: Resource temporarily unavailable\n"


def test_seccomp_blocks_mount(app):
    r = app('loader.argv = ["probe", "mount"]\n')
    assert r.stdout == "umount /proc: Operation not permitted\n"


def test_sigterm_injection(app):
    for inject, expect in ((False, 0), (True, 128 + signal.SIGTERM)):
        app('loader.argv = ["probe", "sleep", "3"]\n'
            + ("sys.enable_sigterm_injection = true\n" if inject else ""), start=False)
        p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "sleeping\n"
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        assert p.returncode == expect, p.stderr.read()


def test_no_leftovers_after_kill(app):
    """kill -9 of moat takes the whole sandbox down: no process, mount or FUSE connection."""
    app('loader.argv = ["probe", "sleep", "30"]\n', start=False)
    conns = Path("/sys/fs/fuse/connections")
    if os.geteuid() == 0 and conns.is_dir() and not any(conns.iterdir()):
        subprocess.run(["mount", "-t", "fusectl", "none", str(conns)], capture_output=True)
    before = set(os.listdir(conns)) if conns.is_dir() else set()
    p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "sleeping\n"
    during = set(os.listdir(conns)) if conns.is_dir() else set()
    sandbox = descendants(p.pid)
    assert len(sandbox) >= 2  # the sandbox's init and the app
    p.kill()
    p.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in sandbox):
        time.sleep(0.05)
    left = [pid for pid in sandbox if Path(f"/proc/{pid}").exists()]
    assert not left, f"processes left behind: {left}"
    if during - before:  # fusectl is mounted: the sandbox's FUSE connection is gone too
        deadline = time.time() + 10
        while time.time() < deadline and (set(os.listdir(conns)) & (during - before)):
            time.sleep(0.05)
        assert not set(os.listdir(conns)) & (during - before), "FUSE connection left behind"


def test_argv_serialize_round_trip(app, moat):
    moat("manifest", "argv-serialize", "-o", app.dir / "args", "probe", "argv", "x y",
         check=0)
    assert (app.dir / "args").read_bytes() == b"probe\0argv\0x y\0"
    r = app('loader.argv_src_file = "file:args"\n')
    assert r.stdout == "argv[0]=probe\nargv[1]=argv\nargv[2]=x y\n"


def test_extra_runtime_domain_names_conf(app):
    import socket
    r = app('loader.argv = ["probe", "cat", "/etc/hosts"]\n'
            "sys.enable_extra_runtime_domain_names_conf = true\n")
    assert "127.0.0.1 localhost" in r.stdout and socket.gethostname() in r.stdout, r.stderr
    r = app('loader.argv = ["probe", "hostname"]\n'
            "sys.enable_extra_runtime_domain_names_conf = true\n")
    assert r.stdout.strip() == socket.gethostname()
    r = app('loader.argv = ["probe", "cat", "/etc/resolv.conf"]\n'
            "sys.enable_extra_runtime_domain_names_conf = true\n")
    assert r.returncode == 0
    assert all(l.split()[0] in ("nameserver", "search", "options") for l in r.stdout.splitlines())
    r = app('loader.argv = ["probe", "cat", "/etc/hosts"]\n')
    assert r.stdout == "open: No such file or directory\n"


def test_log_file(app):
    r = app('loader.argv = ["probe", "read", "/data/unlisted.txt"]\nloader.log_file = "moat.log"\n')
    assert "Disallowing access to file 'unlisted.txt'" not in r.stderr
    assert "Disallowing access to file 'unlisted.txt'" in (app.dir / "moat.log").read_text()
    assert oct((app.dir / "moat.log").stat().st_mode & 0o777) == "0o600"


def test_learn_writes_trusted_and_allowed_files(app, moat):
    app('loader.argv = ["probe", "read", "/data/unlisted.txt"]\n', start=False)
    r = moat("run", "--learn", "probe", cwd=app.dir)
    assert r.stdout == "read 20 bytes\n", r.stderr
    import tomllib
    learned = tomllib.loads((app.dir / "probe.learned.toml").read_text())
    assert f"file:{app.dir}/data/unlisted.txt" in learned["sgx"]["trusted_files"]
    assert f"file:{app.dir}/probe" in learned["sgx"]["trusted_files"]
    app('loader.argv = ["probe", "write", "/data/created.txt"]\n', start=False)
    r = moat("run", "--learn=out.toml", "probe", cwd=app.dir)
    assert r.stdout == "write: ok\n", r.stderr
    learned = tomllib.loads((app.dir / "out.toml").read_text())
    assert learned["sgx"]["allowed_files"] == [f"file:{app.dir}/data/created.txt"]


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
                    reason="needs root to switch to an unprivileged user")
def test_unprivileged_user(probe_binary, moat, tmp_path_factory):
    """As an ordinary user (mapped to root in the sandbox's user namespace): runs when
    /dev/fuse is accessible, otherwise fails with a message naming what to fix."""
    d = Path(tempfile.mkdtemp(prefix="moat-unpriv-"))
    try:
        (d / "probe").write_bytes(probe_binary.read_bytes())
        (d / "probe.manifest.template").write_text(BASE.replace('  { path = "/data", uri = "file:data" },\n', "")
                                                   .replace('  "file:data/trusted.txt",\n  "file:data/big.bin",\n', "")
                                                   .replace('sgx.allowed_files = [ "file:data/allowed/" ]\n', ""))
        moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
             cwd=d, check=0)
        for p in [d, *d.iterdir()]:
            p.chmod(0o755)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            str(moat_binary()), "run", "probe"], cwd=d, capture_output=True,
                           text=True, timeout=60)
        if os.stat("/dev/fuse").st_mode & 0o006 == 0o006:
            assert r.returncode == 0 and r.stdout == "argc=1\n", r.stderr
        else:
            assert r.returncode == 1
            assert "cannot open /dev/fuse: Permission denied" in r.stderr
            assert "chmod 0666 /dev/fuse" in r.stderr
    finally:
        shutil.rmtree(d)


def test_emulate_sgx_limits(app, moat):
    app('loader.argv = ["probe", "threads", "8"]\nsgx.max_threads = 4\n', start=False)
    assert moat("run", "probe", cwd=app.dir).stdout == "threads=8\n"
    r = moat("run", "--emulate-sgx-limits", "probe", cwd=app.dir)
    assert r.stdout == "threads=3\n", r.stderr  # the main thread holds the fourth TCS
    assert "emulating SGX limits" in r.stderr
    app('loader.argv = ["probe", "alloc", "400"]\nsgx.enclave_size = "256M"\n', start=False)
    assert moat("run", "probe", cwd=app.dir).stdout == "alloc: ok\n"
    r = moat("run", "--emulate-sgx-limits", "probe", cwd=app.dir)
    assert r.stdout == "alloc: Cannot allocate memory\n", r.stderr


def test_ctrl_c_reaches_the_app(app):
    """The terminal's SIGINT goes to the whole foreground process group: the app dies of it and
    moat reports 128+2."""
    app('loader.argv = ["probe", "sleep", "30"]\n', start=False)
    p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "sleeping\n"
    os.killpg(p.pid, signal.SIGINT)
    p.wait(timeout=30)
    assert p.returncode == 128 + signal.SIGINT


def test_no_fuse_deadlock_with_host_root(app):
    """The FUSE server resolves host paths in the host's mount namespace, never through its own
    mount: an app whose root is the host's / can walk it (including the directory moat itself
    runs from) without hanging."""
    (app.dir / "probe.manifest").write_text(
        'libos.entrypoint = "' + str(app.dir / "probe") + '"\n'
        'loader.argv = ["probe", "read", "' + str(app.dir / "data" / "trusted.txt") + '"]\n'
        'fs.root = { type = "chroot", uri = "file:/" }\n'
        'sgx.file_check_policy = "allow_all_but_log"\n')
    r = app(render=False, timeout=60)
    assert r.stdout == "read 16 bytes\n", r.stderr


def test_rename_follows_the_file_rules(app):
    """rename(2) through the view: refused for trusted and unlisted files under "strict",
    allowed for unknown files under "allow_all_but_log" (as creating them is)."""
    (app.dir / "data" / "tmp.txt").write_text("x")
    r = app('loader.argv = ["probe", "rename", "/data/tmp.txt", "/data/renamed.txt"]\n')
    assert r.stdout == "rename: Permission denied\n"
    r = app('loader.argv = ["probe", "rename", "/data/trusted.txt", "/data/t2.txt"]\n'
            'sgx.file_check_policy = "allow_all_but_log"\n')
    assert r.stdout == "rename: Permission denied\n"
    assert "Disallowing creating a trusted file" in r.stderr
    r = app('loader.argv = ["probe", "rename", "/data/tmp.txt", "/data/renamed.txt"]\n'
            'sgx.file_check_policy = "allow_all_but_log"\n')
    assert r.stdout == "rename: ok\n", r.stderr
    assert (app.dir / "data" / "renamed.txt").read_text() == "x"


def test_signed_manifest_is_accepted(app, moat):
    app('loader.argv = ["probe", "argv"]\n', start=False)
    (app.dir / "probe.manifest").rename(app.dir / "probe.manifest.sgx")
    r = moat("run", "probe", cwd=app.dir)
    assert r.stdout == "argv[0]=probe\nargv[1]=argv\n", r.stderr


# ---- the app's standard descriptors (docs/security.md) ----

def test_stdin_pipe_can_be_read_as_dev_stdin(app):
    """A pipe given as stdin is reopened through /dev/stdin for reading (as root the app's
    identity could not reopen the caller's pipe: moat gives it one of its own)."""
    r = app('loader.argv = ["probe", "cat", "/dev/stdin"]\n', input="piped text\n")
    assert r.stdout == "piped text\n", r.stderr


def test_named_fifo_stdin_is_not_reopened_for_writing(app):
    """A named FIFO given read-only cannot be reopened through /dev/stdin for writing (it would
    reach whoever else uses the FIFO)."""
    fifo = app.dir / "fifo"
    os.mkfifo(fifo)
    fifo.chmod(0o666)  # writable by anyone: only the descriptor given limits the app
    app('loader.argv = ["probe", "write", "/dev/stdin"]\n', start=False)
    # the shell's `moat run probe < fifo`: open the read end (a writer keeps it open)
    writer = os.open(fifo, os.O_RDWR)
    try:
        with open(fifo, "rb") as stdin:
            r = subprocess.run([str(moat_binary()), "run", "probe"], cwd=app.dir, stdin=stdin,
                               capture_output=True, text=True, timeout=60)
        os.set_blocking(writer, False)
        try:
            leaked = os.read(writer, 100)
        except BlockingIOError:
            leaked = b""
    finally:
        os.close(writer)
    assert r.stdout == "open: Permission denied\n", r.stdout + r.stderr
    assert leaked == b""


def test_unread_stdin_does_not_hold_moat(app):
    """When the app exits, moat does not wait for the rest of an input it never read."""
    app("", start=False)
    p = subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.wait(timeout=20) == 0  # stdin stays open all the while
        assert p.stdout.read() == b"argc=1\n"
    finally:
        p.stdin.close()
        if p.poll() is None:
            p.kill()
        p.wait()


def test_early_sandbox_failure_is_always_reported(probe_binary, moat_path):
    """The sandbox's child fails at its first step when /dev/fuse is not accessible (here: a
    root-only file bound over it, in a mount namespace of the test's own; moat run by an ordinary
    user). It exits before it reads what the supervisor's profiler thread sent it, so the kernel
    reports ECONNRESET ahead of the child's error message (unix_release_sock); moat must read on
    and print the message, every time. Before, about one run in five ended with exit status 1
    and no message at all."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root, unshare and setpriv")
    d = Path(tempfile.mkdtemp(prefix="moat-test-"))
    try:
        d.chmod(0o755)
        (d / "probe").write_bytes(probe_binary.read_bytes())
        (d / "probe").chmod(0o755)
        (d / "probe.manifest.template").write_text(
            'libos.entrypoint = "/probe"\n'
            'fs.mounts = [ { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" },\n'
            '              { path = "/probe", uri = "file:probe" } ]\n'
            'sgx.trusted_files = [ "file:probe", "file:{{ gramine.runtimedir() }}/libc.so.6" ]\n')
        subprocess.run([str(moat_path), "manifest", "render", "--no-progress",
                        "probe.manifest.template", "probe.manifest"], cwd=d, check=True,
                       capture_output=True)
        nofuse = d / "nofuse"
        nofuse.write_bytes(b"")
        nofuse.chmod(0o600)
        for p in [d, *d.iterdir()]:
            if p != nofuse:
                os.lchown(p, 65534, 65534)
        script = ('mount --bind "$1" /dev/fuse && exec setpriv --reuid=65534 --regid=65534 '
                  '--clear-groups env HOME="$2" XDG_CACHE_HOME="$2/cache" "$3" run probe')
        for _ in range(20):
            r = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(nofuse), str(d),
                                str(moat_path)], cwd=d, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1, r.stderr
            assert "moat: error: cannot open /dev/fuse: Permission denied" in r.stderr, r.stderr
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(d)], check=False)
