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
# ... and the verdicts of the verify cache ($XDG_RUNTIME_DIR/moat, else /run/moat as root) out of
# the developer's runtime directory: always (a developer's own $XDG_RUNTIME_DIR is set)
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="moat-test-run-")
atexit.register(shutil.rmtree, os.environ["XDG_RUNTIME_DIR"], True)
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


@pytest.fixture(scope="module")
def sim(moat, tmp_path_factory):
    """A SIMULATED attestation platform of the module's own (`moat attest init`)."""
    d = tmp_path_factory.mktemp("sim") / "sim"
    moat("attest", "init", "--dir", d, check=0)
    return d


@pytest.fixture(scope="module")
def quote_tool(moat_path):
    """The build's sim_quote_tool: SIM_DIR REPORT_DATA_HEX [mrenclave=HEX] [debug=1] -> quote."""
    p = moat_path.parent.parent / "coordinator" / "sim_quote_tool"
    if not p.exists():
        pytest.skip(f"{p} not built")
    return p


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


# ---------------------------------------------------------------------------------------------
# Running moat as root and as an ordinary user

USER = 65534  # nobody/nogroup: the ordinary user the "user" runs are made as


def build_app(tmp_path_factory, name, *flags):
    """tests/apps/<name>.c compiled with gcc into a temporary directory; returns its path."""
    out = tmp_path_factory.mktemp("apps") / name
    subprocess.run(["gcc", "-O2", "-Wall", *flags, "-o", out, ROOT / "tests/apps" / f"{name}.c"],
                   check=True)
    return out


class Workdir:
    """A scratch directory where an app is rendered and run by root or, through setpriv, by
    USER (the directory is then USER's). `identity` is "root" or "user"."""

    def __init__(self, identity, directory, moat_path):
        self.identity = identity
        self.user = identity == "user"
        self.dir = directory
        self.moat = str(moat_path)

    @property
    def host_id(self):
        """the host uid moat runs as: what the app's files are owned by outside"""
        return USER if self.user else 0

    def add_app(self, binary, name="app"):
        (self.dir / name).write_bytes(Path(binary).read_bytes())
        (self.dir / name).chmod(0o755)

    def give_all(self):
        if self.user:
            for p in [self.dir, *self.dir.rglob("*")]:
                os.lchown(p, USER, USER)

    def render(self, text, stem="app"):
        (self.dir / f"{stem}.manifest.template").write_text(text)
        r = subprocess.run([self.moat, "manifest", "render", "--no-progress",
                            f"{stem}.manifest.template", f"{stem}.manifest"], cwd=self.dir,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        self.give_all()

    def command(self, stem="app", *args, moat_args=()):
        cmd = [self.moat, "run", *moat_args, stem, *args]
        if self.user:
            cmd = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", *cmd]
        return cmd

    def env(self):
        return dict(os.environ, XDG_CACHE_HOME=str(self.dir / "cache"))

    def run(self, stem="app", *args, moat_args=(), timeout=120, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.command(stem, *args, moat_args=moat_args), cwd=self.dir,
                              env=self.env(), capture_output=True, text=True, timeout=timeout,
                              **kwargs)


@pytest.fixture(params=["root", "user"])
def workdir(request, moat_path):
    """A Workdir for each identity (the user runs need root and setpriv)."""
    if os.geteuid() != 0:
        pytest.skip("run by root and, through setpriv, by an ordinary user")
    if request.param == "user":
        if not Path("/usr/bin/setpriv").exists():
            pytest.skip("setpriv is needed to run moat as an ordinary user")
        request.getfixturevalue("fuse_for_users")
    d = Path(tempfile.mkdtemp(prefix="moat-test-"))
    d.chmod(0o755)
    try:
        yield Workdir(request.param, d, moat_path)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(d)], check=False)


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    """(marblerun_pb2, marblerun_pb2_grpc): python3-grpcio stubs generated from our
    src/net/proto/marblerun.proto (the tests that use them skip without grpc_tools)."""
    import importlib
    import sys
    proto = ROOT / "src" / "net" / "proto"
    out = tmp_path_factory.mktemp("stubs")
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}",
                        f"--python_out={out}", f"--grpc_python_out={out}",
                        str(proto / "marblerun.proto")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sys.path.insert(0, str(out))
    try:
        return (importlib.import_module("marblerun_pb2"),
                importlib.import_module("marblerun_pb2_grpc"))
    finally:
        sys.path.remove(str(out))
