"""`loader.uid` / `loader.gid` (reference/gramine.md §1.3: the app's emulated (e)uid/(e)gid,
default 0; Gramine's libos/src/bookkeep/libos_thread.c), with our probe tests/apps/parity_ids.c,
run by root and, through setpriv, by an ordinary user.

* getuid/geteuid/getgid/getegid return them; the default stays 0.
* what the app creates in a tmpfs, an allowed directory (a bind), the root view and a chroot or
  encrypted mount (FUSE) is owned by loader.uid:loader.gid inside, and outside by moat's host
  identity (the uid moat runs as; as root, the allowed directory's file is the host root's
  through the idmapped bind), never by another host uid.
* the app cannot take another id (its user namespace maps only its own ids).
* as an ordinary user, creating through the FUSE view reaches moat (the kernel used to refuse
  it first: a LOOKUP reply named an owner the user's namespace does not map).
"""
import os

import pytest

from conftest import Workdir, build_app

KEY = "00112233445566778899aabbccddeeff"

TEMPLATE = """\
libos.entrypoint = "/app"
loader.log_level = "warning"
loader.insecure__use_cmdline_argv = true
{ids}
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/app", uri = "file:app" }},
  {{ path = "/d", uri = "file:data/" }},
  {{ type = "tmpfs", path = "/tmp" }},
  {{ type = "encrypted", path = "/enc", uri = "file:enc", key_name = "default" }},
]
fs.insecure__keys.default = "{key}"
sgx.file_check_policy = "allow_all_but_log"
sgx.trusted_files = [
  "file:app",
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
sgx.allowed_files = [ "file:allowed/" ]
"""

# where the app creates, and the host file that is then (None: not on the host)
PLACES = {
    "/tmp/f": None,
    "/dev/shm/f": None,
    "/allowed/f": "allowed/f",
    "/rootdir/f": "rootdir/f",
    "/d/f": "data/f",
    "/enc/f": "enc/f",
}


@pytest.fixture(scope="session")
def ids_binary(tmp_path_factory):
    return build_app(tmp_path_factory, "parity_ids")


class Box(Workdir):
    """The app with the directories of PLACES, run with loader.uid / loader.gid."""

    def __init__(self, workdir, binary):
        super().__init__(workdir.identity, workdir.dir, workdir.moat)
        self.add_app(binary)
        for d in ("data", "allowed", "enc", "rootdir"):
            (self.dir / d).mkdir()
        self.give_all()

    def run(self, *args, uid=None, gid=None):
        ids = "".join(f"loader.{k} = {v}\n" for k, v in (("uid", uid), ("gid", gid))
                      if v is not None)
        self.render(TEMPLATE.format(ids=ids, key=KEY))
        return super().run("app", *args)


@pytest.fixture
def box(workdir, ids_binary):
    return Box(workdir, ids_binary)


@pytest.mark.parametrize("uid,gid", [(None, None), (1000, 1001), (0, 4242), (65534, 0)])
def test_ids_reported(box, uid, gid):
    r = box.run("ids", uid=uid, gid=gid)
    assert r.returncode == 0, r.stdout + r.stderr
    u, g = uid or 0, gid or 0
    assert r.stdout == f"uid {u} euid {u} gid {g} egid {g} groups 0\n", r.stdout + r.stderr


@pytest.mark.parametrize("uid,gid", [(None, None), (1000, 1001)])
def test_created_files_owned_by_app(box, uid, gid):
    u, g = uid or 0, gid or 0
    r = box.run("create", *PLACES, uid=uid, gid=gid)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "".join(f"{p} {u}:{g}\n" for p in PLACES), r.stdout + r.stderr
    for host in filter(None, PLACES.values()):
        st = os.lstat(box.dir / host)
        assert (st.st_uid, st.st_gid) == (box.host_id, box.host_id), host
    # and seen again by a later run: the views and binds show moat's files as the app's
    r = box.run("stat", "/rootdir/f", "/d/f", "/enc/f", "/allowed/f", "/rootdir", "/dev",
                uid=uid, gid=gid)
    assert r.stdout == "".join(f"{p} {u}:{g}\n" for p in (
        "/rootdir/f", "/d/f", "/enc/f", "/allowed/f", "/rootdir", "/dev")), r.stdout + r.stderr


def test_no_other_id(box):
    # the app's user namespace maps its own ids only: not 0, not any host id
    r = box.run("setuid", "0", "1000", "65534", uid=1000, gid=1001)
    assert r.stdout == ("setuid 0: Invalid argument\nsetuid 1000: ok\n"
                        "setuid 65534: Invalid argument\n"), r.stdout + r.stderr
    r = box.run("setuid", "1000", "0")
    assert r.stdout == "setuid 1000: Invalid argument\nsetuid 0: ok\n", r.stdout + r.stderr


def test_no_capabilities_with_uid(box):
    # a non-zero loader.uid changes the order of the id change and the capability drop:
    # nothing survives either way
    for uid in (None, 1000):
        r = box.run("caps", uid=uid, gid=uid)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout == ("CapInh: 0\nCapPrm: 0\nCapEff: 0\nCapBnd: 0\nCapAmb: 0\n"
                            "NoNewPrivs: 1\n"), r.stdout + r.stderr
