"""Gramine parity of `moat run`'s file systems (issue 11): what Gramine's LibOS regression suite
v1.9 checks, with our own probe (tests/apps/parity_fs.c), run by root and, through setpriv, by
an ordinary user.

* getdents after unlink/create and lseek(fd, 0) shows the current names on every mount kind
  (test_022_getdents_lseek): the root view (`file:.`, FUSE), an allowed directory (bind mount),
  an encrypted mount (FUSE) and a tmpfs.
* re-creating a file in an encrypted mount while the removed one is still open: both work.
* `fs.root.uri = "file:/"` runs its entrypoint (host_root_fs.manifest.template): the interpreter
  is the trusted one at /lib, as Gramine's find_interp finds it.
* file-policy log lines name files as Gramine does (reference/gramine.md §6): `<name>` is the
  basename, `<path>` the mount URI as written + the path below the mount.
"""
import subprocess

import pytest

from conftest import Workdir, build_app

KEY = "00112233445566778899aabbccddeeff"

TEMPLATE = """\
libos.entrypoint = "/app"
loader.log_level = "{level}"
loader.insecure__use_cmdline_argv = true
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/app", uri = "file:app" }},
  {{ path = "/d", uri = "file:data/" }},
  {{ type = "tmpfs", path = "/tmp" }},
  {{ type = "encrypted", path = "/enc", uri = "file:enc", key_name = "default" }},
]
fs.insecure__keys.default = "{key}"
sgx.file_check_policy = "{policy}"
sgx.trusted_files = [
  "file:app",
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
  "file:data/trusted.txt",
]
sgx.allowed_files = [ "file:allowed/" ]
"""

# Gramine's host_root_fs test: the host's / is the root, the C library at /lib, /etc hidden
ROOT_TEMPLATE = """\
libos.entrypoint = "{app}"
loader.log_level = "warning"
loader.env.LD_LIBRARY_PATH = "/lib"
loader.insecure__use_cmdline_argv = true
fs.root.uri = "file:/"
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ type = "tmpfs", path = "/etc" }},
]
sgx.trusted_files = [
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:{{{{ gramine.runtimedir() }}}}/ld-linux-x86-64.so.2",
  "file:{app}",
]
"""


@pytest.fixture(scope="session")
def parity_binary(tmp_path_factory):
    return build_app(tmp_path_factory, "parity_fs")


class Box(Workdir):
    """The app with its data, allowed and encrypted directories, run under TEMPLATE."""

    def __init__(self, workdir, binary):
        super().__init__(workdir.identity, workdir.dir, workdir.moat)
        self.add_app(binary)
        for d in ("data", "allowed", "enc"):
            (self.dir / d).mkdir()
        (self.dir / "data" / "trusted.txt").write_text("trusted\n")
        (self.dir / "data" / "unlisted.txt").write_text("unlisted\n")
        self.give_all()

    def run(self, *args, policy="strict", level="warning", stem="app", template=None):
        if template is None:
            template = TEMPLATE.format(level=level, key=KEY, policy=policy)
        self.render(template, stem)
        return super().run(stem, *args)


@pytest.fixture
def box(workdir, parity_binary):
    return Box(workdir, parity_binary)


# ---- 1. getdents after lseek(fd, 0) (Gramine test_022_getdents_lseek) ----

@pytest.mark.parametrize("where", ["/", "/d", "/allowed", "/enc", "/tmp"])
def test_getdents_after_rewind(box, where):
    if where == "/":
        where = "/rootdir"  # a directory of the root view (file:.)
        (box.dir / "rootdir").mkdir()
    elif where == "/d":
        where = "/d/sub"  # a directory of a chroot mount
        (box.dir / "data" / "sub").mkdir()
    r = box.run("getdents", where, policy="allow_all_but_log")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "first: a b\n" in r.stdout, r.stdout + r.stderr
    assert "again: b c\n" in r.stdout, r.stdout + r.stderr


# ---- 2. re-creating a removed file that is still open ----

@pytest.mark.parametrize("where", ["/enc", "/rootdir"])
def test_recreate_while_open(box, where):
    if where == "/rootdir":
        (box.dir / "rootdir").mkdir()
    r = box.run("recreate", where, policy="allow_all_but_log")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ("old: old-1\nnew: new-1\nold: old-2\nnew: new-2\nsize: 5\n"), \
        r.stdout + r.stderr
    r = box.run("cat", f"{where}/f", policy="allow_all_but_log")
    assert r.stdout == "new-2", r.stdout + r.stderr


# ---- 3. fs.root.uri = "file:/" (Gramine's host_root_fs) ----

def test_host_root_fs(box):
    app = str(box.dir / "app")
    tmpl = ROOT_TEMPLATE.format(app=app)
    r = box.run("ls", str(box.dir / "data"), stem="root", template=tmpl)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == f"{box.dir}/data: trusted.txt unlisted.txt\n"
    # the trusted-file policy still holds: an unlisted host file is refused, and so is the
    # entrypoint when its hash is wrong
    r = box.run("cat", str(box.dir / "data" / "unlisted.txt"), stem="root", template=tmpl)
    assert r.returncode == 1 and "Permission denied" in r.stdout, r.stdout + r.stderr
    assert "Disallowing access to file 'unlisted.txt'; file is not allowed." in r.stderr
    manifest = (box.dir / "root.manifest").read_text()
    box.run("ls", "/", stem="root", template=tmpl)  # renders again, then tamper with the app
    with open(box.dir / "app", "ab") as f:
        f.write(b"tampered")
    subprocess.run(["true"])
    (box.dir / "root.manifest").write_text(manifest)
    r = Workdir.run(box, "root", "ls", "/")  # without rendering again
    assert r.returncode != 0 and r.stdout == "", r.stdout + r.stderr
    assert (f"Hash of trusted file '{app}' does not match with the reference hash in manifest"
            in r.stderr), r.stderr


# ---- 5. file-policy log lines (reference/gramine.md §6, chroot/fs.c) ----

def test_policy_messages_strict(box):
    r = box.run("create", "/nonexisting_testfile")
    assert "/nonexisting_testfile: Permission denied" in r.stdout, r.stdout + r.stderr
    assert ("Disallowing creating file './nonexisting_testfile'; file is not trusted or "
            "allowed.") in r.stderr, r.stderr
    assert not (box.dir / "nonexisting_testfile").exists()
    r = box.run("create", "/d/new")  # the URI as written: "data/" + "/" + "new"
    assert "/d/new: Permission denied" in r.stdout
    # moat decides, as root and as a user (the kernel used to refuse first for a user: the
    # LOOKUP reply named an owner the user's namespace does not map)
    assert "Disallowing creating file 'data//new'; file is not trusted or allowed." in r.stderr
    r = box.run("open", "/d/unlisted.txt")
    assert "/d/unlisted.txt: Permission denied" in r.stdout
    assert "Disallowing access to file 'unlisted.txt'; file is not allowed." in r.stderr
    r = box.run("create", "/d/trusted.txt")  # O_WRONLY on a trusted file
    assert "/d/trusted.txt: Permission denied" in r.stdout
    assert "Disallowing write/append to a trusted file 'trusted.txt'" in r.stderr


def test_policy_messages_allow_all_but_log(box):
    r = box.run("create", "/made_here", policy="allow_all_but_log")
    assert r.stdout == "/made_here: ok\n", r.stdout + r.stderr
    assert ("Allowing creating unknown file './made_here' due to file_check_policy."
            in r.stderr), r.stderr
    r = box.run("open", "/d/unlisted.txt", policy="allow_all_but_log")
    assert r.stdout == "/d/unlisted.txt: ok\n"
    assert ("Allowing access to unknown file 'unlisted.txt' due to file_check_policy."
            in r.stderr)
    # warning level: not shown under loader.log_level = "error"
    r = box.run("open", "/d/unlisted.txt", policy="allow_all_but_log", level="error")
    assert "Allowing access" not in r.stderr


def test_trusted_hash_message_names_the_manifest_path(box):
    box.run("open", "/d/trusted.txt")  # renders the manifest
    manifest = (box.dir / "app.manifest").read_text()
    (box.dir / "data" / "trusted.txt").write_text("changed\n")
    (box.dir / "app.manifest").write_text(manifest)
    r = Workdir.run(box, "app", "cat", "/d/trusted.txt")  # without rendering again
    assert "Operation not permitted" in r.stdout, r.stdout + r.stderr
    assert ("Hash of trusted file 'data/trusted.txt' does not match with the reference hash in "
            "manifest") in r.stderr, r.stderr
