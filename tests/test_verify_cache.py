"""`moat run`'s verify cache (issue 15, "Verification that lasts across runs"; docs/security.md,
"The verify cache"): a verdict on a trusted file is reused only while the file's identity
(device, inode, generation, birth time, size, mtime, ctime) is unchanged, on a local file
system, from a private runtime directory. Every change below must be re-verified: the debug line
says "verified", never "cached", and tampered content is refused.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import moat_binary
from test_run import BASE, app, probe_binary  # noqa: F401 (fixtures)

ARGV = 'loader.argv = ["probe", "read", "/data/trusted.txt"]\n'
SAME_SIZE = "TRUSTED CONTENT\n"  # as long as "trusted content\n"


def warm(app, env=None):
    """Renders, lets the files' ctime age past the racy window, runs twice: the second run takes
    trusted.txt from the cache."""
    app(ARGV, start=False, level="debug")
    time.sleep(2.2)
    r = app(render=False, env=env)
    assert r.stdout == "read 16 bytes\n", r.stderr
    assert verdict(r, app) == "verified", r.stderr
    r = app(render=False, env=env)
    assert r.stdout == "read 16 bytes\n", r.stderr
    assert verdict(r, app) == "cached", r.stderr
    return r


def verdict(r, app, name="data/trusted.txt"):
    m = re.search(rf"verify cache: '{re.escape(str(app.dir / name))}' (cached|verified)", r.stderr)
    return m and m.group(1)


def reason(r, app, name="data/trusted.txt"):
    """Why it was not taken from the cache (without why the verdict was not stored)."""
    m = re.search(rf"verify cache: '{re.escape(str(app.dir / name))}' verified: (.*?)"
                  r"(?: \(not stored: (.*)\))?$", r.stderr, re.M)
    return m and m.group(1)


def not_stored(r, app, name="data/trusted.txt"):
    m = re.search(rf"verify cache: '{re.escape(str(app.dir / name))}' verified: .*"
                  r" \(not stored: (.*)\)$", r.stderr, re.M)
    return m and m.group(1)


def assert_refused(r, app):
    assert verdict(r, app) == "verified", r.stderr
    assert r.stdout == "open: Operation not permitted\n", r.stderr
    assert "Hash of trusted file" in r.stderr and "does not match" in r.stderr


def test_cached_verdict_skips_hashing(app):
    r = warm(app)
    assert "cached (identity unchanged)" in r.stderr
    m = re.search(r"verify cache: (\d+) trusted files taken from the cache, (\d+) hashed", r.stderr)
    # probe, libc, ld.so and trusted.txt are all old enough: nothing was hashed
    assert m and int(m.group(1)) == 4 and int(m.group(2)) == 0, r.stderr
    entries = list((Path(os.environ["XDG_RUNTIME_DIR"]) / "moat/verified").iterdir())
    assert entries and all(e.stat().st_mode & 0o777 == 0o600 for e in entries)
    assert (Path(os.environ["XDG_RUNTIME_DIR"]) / "moat").stat().st_mode & 0o777 == 0o700


def restore_times(path, st):
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def content_changed_mtime_restored(p):
    st = p.stat()
    p.write_text(SAME_SIZE)
    restore_times(p, st)


def replaced_new_inode(p):
    st = p.stat()
    tmp = p.with_name("new.txt")
    tmp.write_text(SAME_SIZE)
    restore_times(tmp, st)
    os.rename(tmp, p)


def same_size_rewrite_in_place(p):
    st = p.stat()
    with open(p, "r+b") as f:
        f.write(SAME_SIZE.encode())
    restore_times(p, st)


def truncate_and_regrow(p):
    st = p.stat()
    os.truncate(p, 0)
    with open(p, "ab") as f:
        f.write(SAME_SIZE.encode())
    restore_times(p, st)


def cp_over_it(p):
    st = p.stat()
    src = p.with_name("src.txt")
    src.write_text(SAME_SIZE)
    restore_times(src, st)
    subprocess.run(["cp", "--preserve=timestamps", src, p], check=True)


@pytest.mark.parametrize("change", [content_changed_mtime_restored, replaced_new_inode,
                                    same_size_rewrite_in_place, truncate_and_regrow, cp_over_it])
def test_changed_file_is_reverified(app, change):
    warm(app)
    p = app.dir / "data/trusted.txt"
    change(p)
    assert p.stat().st_size == 16
    r = app(render=False)
    assert_refused(r, app)
    # and it stays refused: the failed verdict was not stored as a good one
    r = app(render=False)
    assert_refused(r, app)


def test_unchanged_content_rewritten_is_reverified_and_accepted(app):
    warm(app)
    p = app.dir / "data/trusted.txt"
    st = p.stat()
    p.write_text("trusted content\n")  # same bytes: ctime moves, a hash accepts it
    restore_times(p, st)
    r = app(render=False)
    assert r.stdout == "read 16 bytes\n", r.stderr
    assert reason(r, app) == "changed since it was verified (or its inode was reused)", r.stderr


def test_reboot_fresh_runtime_dir(app):
    warm(app)
    fresh = tempfile.mkdtemp(prefix="moat-test-reboot-")
    try:
        r = app(render=False, env={"XDG_RUNTIME_DIR": fresh})
        assert r.stdout == "read 16 bytes\n", r.stderr
        assert reason(r, app) == "not in the verify cache", r.stderr
    finally:
        shutil.rmtree(fresh, True)


def test_turned_off_by_option_and_manifest_key(app):
    warm(app)
    env = {**os.environ, "XDG_CACHE_HOME": str(app.dir / "cache")}
    r = subprocess.run([str(moat_binary()), "run", "--no-verify-cache", "probe"], cwd=app.dir,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.stdout == "read 16 bytes\n", r.stderr
    assert reason(r, app) == "the verify cache is off", r.stderr
    r = app(ARGV + "moat.verify_cache = false\n", level="debug")
    assert r.stdout == "read 16 bytes\n", r.stderr
    assert reason(r, app) == "the verify cache is off", r.stderr
    assert "verify cache: off" in r.stderr


def test_directory_not_private_is_refused(app):
    warm(app)
    d = Path(os.environ["XDG_RUNTIME_DIR"]) / "moat"
    d.chmod(0o777)
    try:
        r = app(render=False)
        assert r.stdout == "read 16 bytes\n", r.stderr
        assert "verify cache: not used" in r.stderr and "not private to this user" in r.stderr
        assert reason(r, app) == "the verify cache is off", r.stderr
    finally:
        d.chmod(0o700)


def test_corrupt_or_foreign_entry_means_rehash(app):
    warm(app)
    d = Path(os.environ["XDG_RUNTIME_DIR"]) / "moat/verified"
    st = (app.dir / "data/trusted.txt").stat()
    entry = next(e for e in d.iterdir() if e.name.endswith(f".{st.st_ino:x}"))
    raw = bytearray(entry.read_bytes())
    raw[-40] ^= 1  # the digest: the check no longer matches
    entry.write_bytes(bytes(raw))
    r = app(render=False)
    assert r.stdout == "read 16 bytes\n", r.stderr
    assert reason(r, app) == "its verify cache entry is corrupt or not this user's", r.stderr
    r = app(render=False)
    assert verdict(r, app) == "cached", r.stderr  # stored again by the run before


def test_open_for_writing_is_not_cached(app):
    """A writer could change the bytes through a shared mapping without a new ctime: no verdict
    is stored while someone has the file open for writing (as root: a read lease)."""
    if os.geteuid() != 0:
        pytest.skip("the read-lease probe needs CAP_LEASE or the file's ownership")
    app(ARGV, start=False, level="debug")
    time.sleep(2.2)
    with open(app.dir / "data/trusted.txt", "r+b"):
        r = app(render=False)
        assert not_stored(r, app) == "open for writing by another process", r.stderr
        r = app(render=False)
        assert reason(r, app) == "not in the verify cache", r.stderr
        assert not_stored(r, app) == "open for writing by another process", r.stderr


@pytest.fixture
def hello_fuse(tmp_path):
    """libfuse's hello example mounted: /hello on a FUSE file system."""
    src = Path("/usr/share/doc/libfuse3-dev/examples/hello.c")
    if not src.exists() or not shutil.which("fusermount3") or not Path("/dev/fuse").exists():
        pytest.skip("libfuse3's hello example, fusermount3 or /dev/fuse is missing")
    exe = tmp_path / "hello_fs"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                           text=True, check=True).stdout.split()
    subprocess.run(["gcc", "-o", exe, src, *flags], check=True)
    mnt = tmp_path / "fuse"
    mnt.mkdir()
    if subprocess.run([exe, mnt]).returncode != 0:
        pytest.skip("cannot mount a FUSE file system here")
    yield mnt
    subprocess.run(["fusermount3", "-u", mnt])


def test_file_on_fuse_is_never_cached(app, hello_fuse):
    app(ARGV, start=False, level="debug")  # the app's files
    tpl = BASE.replace('loader.log_level = "warning"', 'loader.log_level = "debug"')
    tpl = tpl.replace('  { type = "tmpfs", path = "/tmp" },',
                      f'  {{ type = "tmpfs", path = "/tmp" }},\n'
                      f'  {{ path = "/fuse", uri = "file:{hello_fuse}" }},')
    tpl = tpl.replace('  "file:data/big.bin",', f'  "file:data/big.bin",\n  "file:{hello_fuse}/hello",')
    (app.dir / "probe.manifest.template").write_text(
        tpl + 'loader.argv = ["probe", "read", "/fuse/hello"]\n')
    subprocess.run([str(moat_binary()), "manifest", "render", "--no-progress",
                    "probe.manifest.template", "probe.manifest"], cwd=app.dir, check=True)
    time.sleep(2.2)
    for _ in range(2):
        r = app(render=False)
        assert r.stdout == "read 13 bytes\n", r.stderr
        m = re.search(rf"verify cache: '{re.escape(str(hello_fuse))}/hello' verified: (.*)",
                      r.stderr)
        assert m and m.group(1).startswith("not on a local file system"), r.stderr
