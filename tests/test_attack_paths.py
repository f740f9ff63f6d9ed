"""Host paths are resolved inside their mount, never through symlinks the app planted
(STYLE.md rule 14; src/sandbox/hostpath.c; docs/run.md "Symlinks").

An app can create symlinks in its allowed directories (they are bind-mounted writable). Each
test plants one that points out of every mount and checks that neither the FUSE view, nor the
bind mounts of the next run, nor moat's own files (loader.log_file, the --learn output) go
through it: the host stays unchanged (bytes, mtime, no new file) and the app gets an error.
Every attack runs as root and as an ordinary user (nobody), since the view serves the app with
moat's own host identity.
"""
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import moat_binary

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534

TEMPLATE = """\
libos.entrypoint = "/pathattack"
loader.log_level = "warning"
loader.argv = @ARGV@
fs.mounts = [
  { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" },
  { path = "/lib64", uri = "file:/lib64" },
  { path = "/pathattack", uri = "file:pathattack" },
@MOUNTS@]
sgx.trusted_files = [
  "file:pathattack",
  "file:{{ gramine.runtimedir() }}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
sgx.allowed_files = [ @ALLOWED@ ]
@EXTRA@
"""


@pytest.fixture(scope="session")
def pathattack_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("pathattack") / "pathattack"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", out, ROOT / "tests/apps/pathattack.c"],
                   check=True)
    return out


def can_switch_user():
    return (os.geteuid() == 0 and shutil.which("setpriv") is not None
            and shutil.which("unshare") is not None and Path("/dev/fuse").exists())


# An ordinary user needs a /dev/fuse it may open; the host's may not be one (and is shared):
# moat runs in a private mount namespace where a 0666 node of the same device covers it.
AS_NOBODY = ('mount -t tmpfs -o mode=755 tmpfs "$0" && mknod -m 666 "$0/fuse" c 10 229 && '
             'mount --bind "$0/fuse" /dev/fuse && exec "$@"')


class Attack:
    def __init__(self, moat, user, binary):
        self.moat = moat
        self.user = user
        self.uid = NOBODY if user == "nobody" else os.geteuid()
        # not under pytest's 0700 tmp: nobody must reach it
        self.dir = Path(tempfile.mkdtemp(prefix="moat-attack-"))
        shutil.copy(binary, self.dir / "pathattack")
        (self.dir / "data").mkdir()
        # outside every mount: what the app must never reach
        self.outside = Path(tempfile.mkdtemp(prefix="moat-outside-", dir="/var/tmp"))
        self.secret = self.outside / "secret"
        self.secret.write_text("host secret " + secrets.token_hex(8) + "\n")
        self.secret.chmod(0o644)
        os.utime(self.secret, (1_000_000_000, 1_000_000_000))
        self.outside.chmod(0o755)
        self.devdir = tempfile.mkdtemp(prefix="moat-fusedev-")

    def own(self):
        """The test files belong to the user moat runs as (as an app's own files would)."""
        for p in [self.dir, *self.dir.rglob("*"), self.outside, *self.outside.iterdir()]:
            os.lchown(p, self.uid, self.uid)

    def host_state(self):
        st = self.secret.stat()
        return (self.secret.read_bytes(), st.st_mtime_ns, sorted(os.listdir(self.outside)))

    def render(self, argv, mounts="", allowed='"file:data/"', extra=""):
        text = (TEMPLATE.replace("@ARGV@", json.dumps(["pathattack", *argv]))
                .replace("@MOUNTS@", mounts).replace("@ALLOWED@", allowed)
                .replace("@EXTRA@", extra))
        (self.dir / "app.manifest.template").write_text(text)
        self.moat("manifest", "render", "--no-progress", "app.manifest.template",
                  "app.manifest", cwd=self.dir, check=0)
        self.own()

    def run(self, *moat_args):
        env = dict(os.environ, XDG_CACHE_HOME=str(self.dir / "cache"))
        cmd = [str(moat_binary()), "run", *moat_args, "app"]
        if self.user == "nobody":
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", AS_NOBODY,
                   self.devdir, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                   "--clear-groups", *cmd]
        return subprocess.run(cmd, cwd=self.dir, env=env, capture_output=True, text=True,
                              timeout=120)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.outside, ignore_errors=True)
        shutil.rmtree(self.devdir, ignore_errors=True)


@pytest.fixture(params=["root", "nobody"])
def attack(request, moat, pathattack_binary):
    if request.param == "nobody" and not can_switch_user():
        pytest.skip("needs root, setpriv, unshare and /dev/fuse")
    if request.param == "root" and os.geteuid() != 0:
        pytest.skip("needs root")
    a = Attack(moat, request.param, pathattack_binary)
    yield a
    a.cleanup()


def lines(r):
    return dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)


def test_planted_link_is_not_followed_through_another_mount_path(attack):
    """1. root `file:.` with an allowed data/ also mounted at /other: the app plants
    data/link -> / through the bind mount and walks it through the view (/data/link/...)."""
    before = attack.host_state()
    secret = f"{attack.outside}/secret"
    attack.render(["symlink", "/", "/other/link",
                   "+", "readlink", "/data/link",
                   "+", "read", f"/data/link{secret}",
                   "+", "read", "/data/link/etc/shadow",
                   "+", "write", f"/data/link{attack.outside}/planted",
                   "+", "write", f"/data/link{secret}"],
                  mounts='  { path = "/other", uri = "file:data" },\n')
    r = attack.run()
    out = lines(r)
    assert r.returncode == 0, r.stderr
    assert out["symlink /other/link"] == "ok", r.stdout
    # the view shows the app's link as a link, resolved inside the sandbox: the sandbox's
    # "/" has no such files
    assert out["readlink /data/link"] == "/", r.stdout
    assert out[f"read /data/link{secret}"] == "No such file or directory", r.stdout
    assert out["read /data/link/etc/shadow"] == "No such file or directory", r.stdout
    assert out[f"write /data/link{attack.outside}/planted"] == "No such file or directory"
    assert out[f"write /data/link{secret}"] == "No such file or directory"
    assert attack.host_state() == before
    assert os.readlink(attack.dir / "data" / "link") == "/"  # the app's link is still its own


def test_link_left_by_a_previous_run_is_not_bound(attack):
    """2. run 1 replaces data/sub (a nested mount source and an allowed bind source of run 2)
    with a link to /; run 2 must not bind the host's / (nor serve it through the view)."""
    (attack.dir / "data" / "sub").mkdir()
    attack.render(["rmdir", "/data/sub", "+", "symlink", "/", "/data/sub"],
                  mounts='  { path = "/data", uri = "file:data" },\n')
    r = attack.run()
    assert lines(r)["symlink /data/sub"] == "ok", r.stdout + r.stderr
    before = attack.host_state()
    secret = f"{attack.outside}/secret"
    attack.render(["read", f"/sub{secret}", "+", "lstat", "/sub",
                   "+", "write", f"/sub{attack.outside}/planted"],
                  mounts='  { path = "/data", uri = "file:data" },\n'
                         '  { path = "/sub", uri = "file:data/sub" },\n',
                  allowed='"file:data/", "file:data/sub/"')
    r = attack.run()
    out = lines(r)
    assert out[f"read /sub{secret}"] == "No such file or directory", r.stdout + r.stderr
    assert out["lstat /sub"] == "symlink", r.stdout
    assert out[f"write /sub{attack.outside}/planted"] == "No such file or directory"
    assert f"'{attack.dir}/data/sub' is not bound into the sandbox" in r.stderr
    assert attack.host_state() == before


def test_log_file_replaced_by_a_link_is_refused(attack):
    """3. loader.log_file in an allowed directory, replaced by the app with a link to a file
    outside every mount: the next run refuses to start, and the file is unchanged."""
    (attack.dir / "unlisted.txt").write_text("x\n")  # reading it logs a warning
    extra = 'loader.log_file = "data/moat.log"\n'
    mounts = '  { path = "/data", uri = "file:data" },\n'
    secret = f"{attack.outside}/secret"
    attack.render(["unlink", "/data/moat.log", "+", "symlink", secret, "/data/moat.log"],
                  mounts=mounts, extra=extra)
    r = attack.run()
    assert lines(r)["symlink /data/moat.log"] == "ok", r.stdout + r.stderr
    before = attack.host_state()
    attack.render(["read", "/unlisted.txt"], mounts=mounts, extra=extra)
    r = attack.run()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cannot open 'loader.log_file' data/moat.log" in r.stderr
    assert attack.host_state() == before
    # a directory on the way is no better
    (attack.dir / "data" / "moat.log").unlink()
    (attack.dir / "data" / "logs").symlink_to(attack.outside)
    attack.render(["read", "/unlisted.txt"], mounts=mounts,
                  extra='loader.log_file = "data/logs/moat.log"\n')
    r = attack.run()
    assert r.returncode == 1 and "'loader.log_file' data/logs/moat.log" in r.stderr, r.stderr
    assert attack.host_state() == before


def test_learned_file_is_not_written_through_a_link(attack):
    """--learn=data/sub/learned.toml, where the app made data/sub a link out of its mounts
    during the run: moat does not write there."""
    before = attack.host_state()
    attack.render(["symlink", str(attack.outside), "/data/sub"],
                  mounts='  { path = "/data", uri = "file:data" },\n')
    r = attack.run("--learn=data/sub/learned.toml")
    assert lines(r)["symlink /data/sub"] == "ok", r.stdout + r.stderr
    assert "cannot open the directory of 'data/sub/learned.toml'" in r.stderr, r.stderr
    assert attack.host_state() == before
    # without a link the same file is written (the refusal is about the link)
    (attack.dir / "data" / "sub").unlink()
    (attack.dir / "data" / "sub").mkdir()
    attack.own()
    r = attack.run("--learn=data/sub/learned.toml")
    assert (attack.dir / "data" / "sub" / "learned.toml").exists(), r.stderr


def test_link_cannot_be_moved_out_of_the_allowed_directory(attack):
    """Under "allow_all_but_log" the view renames unknown names; a link (or a directory that
    may hold one) moved out of the allowed directory would be followed there: EXDEV."""
    before = attack.host_state()
    (attack.dir / "data" / "d").mkdir()
    secret = f"{attack.outside}/secret"
    attack.render(["symlink", "/", "/other/link",
                   "+", "rename", "/data/link", "/moved",
                   "+", "rename", "/data/d", "/moved-dir",
                   "+", "read", f"/moved{secret}"],
                  mounts='  { path = "/other", uri = "file:data" },\n',
                  extra='sgx.file_check_policy = "allow_all_but_log"\n')
    r = attack.run()
    out = lines(r)
    assert out["symlink /other/link"] == "ok", r.stdout + r.stderr
    # as an ordinary user the view's host owners are not mapped in the sandbox today, and the
    # kernel refuses first (EOVERFLOW); either way the link stays where the app made it
    refused = {"Invalid cross-device link"} | (
        {"Value too large for defined data type"} if attack.user == "nobody" else set())
    assert out["rename /data/link"] in refused, r.stdout
    assert out["rename /data/d"] in refused, r.stdout
    assert (attack.dir / "data" / "link").is_symlink()
    assert out[f"read /moved{secret}"] == "No such file or directory", r.stdout
    assert not (attack.dir / "moved").is_symlink()
    assert attack.host_state() == before


def test_host_symlinks_in_read_only_mounts_are_followed(attack):
    """4. the administrator's links in read-only content keep working, as in Gramine: Debian's
    /lib64/ld-linux-x86-64.so.2 is a link into /lib/x86_64-linux-gnu (outside /lib64)."""
    if not Path("/lib64/ld-linux-x86-64.so.2").is_symlink():
        pytest.skip("this host's ELF interpreter is not a symlink")
    size = Path("/lib64/ld-linux-x86-64.so.2").stat().st_size
    attack.render(["lstat", "/lib64/ld-linux-x86-64.so.2",
                   "+", "read", "/lib64/ld-linux-x86-64.so.2",
                   "+", "write", "/data/ok.txt"],
                  mounts='  { path = "/data", uri = "file:data" },\n')
    r = attack.run()
    out = lines(r)
    assert r.returncode == 0, r.stderr
    assert out["lstat /lib64/ld-linux-x86-64.so.2"] == "file", r.stdout
    assert out["read /lib64/ld-linux-x86-64.so.2"] == f"{min(size, 4096)} bytes", r.stdout
    assert out["write /data/ok.txt"] == "ok"
    assert (attack.dir / "data" / "ok.txt").read_text() == "from the app\n"


def test_allowed_directory_through_a_host_alias_is_not_shown(attack):
    """A mount whose source is a host symlink to an allowed directory (a path the allowed
    entries do not name): the view does not enter it, so the app's links there are never
    followed on the host."""
    before = attack.host_state()
    (attack.dir / "alias").symlink_to(attack.dir / "data")
    secret = f"{attack.outside}/secret"
    attack.render(["symlink", "/", "/data/link", "+", "read", f"/alias/link{secret}",
                   "+", "lstat", "/alias"],
                  mounts='  { path = "/data", uri = "file:data" },\n'
                         '  { path = "/alias", uri = "file:alias" },\n')
    r = attack.run()
    out = lines(r)
    assert out["symlink /data/link"] == "ok", r.stdout + r.stderr
    assert out[f"read /alias/link{secret}"] == "No such file or directory", r.stdout
    assert out["lstat /alias"] == "No such file or directory", r.stdout
    assert "is an allowed directory reached through a symbolic link" in r.stderr
    assert attack.host_state() == before
