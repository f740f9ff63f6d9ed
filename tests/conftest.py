"""Shared pytest fixtures: every integration test runs the real moat binary.

MOAT is the path of the binary under test (scripts/check sets it to the ASan build); without it
the tests look for build-asan/ then build/ in the source tree.
"""
import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "testdata"

# `moat run` keeps the order of trusted files per manifest under $XDG_CACHE_HOME/moat; tests
# keep theirs out of the developer's cache
if "XDG_CACHE_HOME" not in os.environ:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="moat-test-cache-")
    atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)
# ... and the simulated attestation platform and the machine secret behind sealing keys
# ($XDG_DATA_HOME/moat) out of the developer's data
if "XDG_DATA_HOME" not in os.environ:
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="moat-test-data-")
    atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], True)
for var in ("MOAT_SIM_DIR", "MOAT_MACHINE_SECRET"):
    os.environ.pop(var, None)


def moat_binary() -> Path:
    if os.environ.get("MOAT"):
        return Path(os.environ["MOAT"]).resolve()
    for build in ("build-asan", "build"):
        p = ROOT / build / "src" / "cli" / "moat"
        if p.exists():
            return p
    pytest.exit("moat binary not found: set MOAT or run 'make check'", returncode=2)


@pytest.fixture(scope="session")
def moat_path() -> Path:
    return moat_binary()


@pytest.fixture(scope="session")
def build_dir(moat_path) -> Path:
    return moat_path.parents[2]


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"conformance data not found at {SHARED} (a clone without ../shared)")
    return SHARED


@pytest.fixture(scope="session")
def moat(moat_path):
    """moat(*args, input=None, cwd=None, env=None, check=None) -> CompletedProcess (text)."""

    def run(*args, input=None, cwd=None, env=None, check=None, timeout=300):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        r = subprocess.run([str(moat_path), *map(str, args)], input=input, cwd=cwd,
                           env=full_env, capture_output=True, text=True, timeout=timeout)
        if check is not None and r.returncode != check:
            raise AssertionError(
                f"moat {' '.join(map(str, args))}: exit {r.returncode}, expected {check}\n"
                f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    return run


def descendants(pid):
    """Host pids of every process below pid."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@pytest.fixture(scope="session")
def fuse_for_users():
    """/dev/fuse read-writable by everyone (Debian's default; 0600 on some hosts) for the tests
    that run moat as an ordinary user, restored at the end of the session. One fixture for every
    test file, so that the mode is saved once and restored once."""
    import stat
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    changed = mode & 0o006 != 0o006
    if changed:
        os.chmod("/dev/fuse", 0o666)
    try:
        yield
    finally:
        if changed:
            os.chmod("/dev/fuse", mode)
