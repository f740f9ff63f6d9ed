"""Bounded memory of the FUSE view (issue 15): moat honours FORGET and BATCH_FORGET, so a node
lives only while the kernel may name it, and hostile races of lookups, forgets, unlinks and
renames of the same names stay memory-safe (run these under the ASan build: MOAT=...)."""
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="drops the kernel's caches: root")

LIBDIR = "/lib/" + subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True,
                                  check=True).stdout.strip()
KEY = "00112233445566778899aabbccddeeff"
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                       r"runtime error:")


@pytest.fixture(scope="module")
def soak_app(tmp_path_factory):
    out = tmp_path_factory.mktemp("apps") / "fuse_soak"
    subprocess.run(["gcc", "-O2", "-Wall", "-pthread", "-o", out,
                    ROOT / "bench/apps/fuse_soak.c"], check=True)
    return out


class CacheDropper:
    """Drops the kernel's dentries and inodes every `period` seconds while in a with block, so
    that the kernel forgets the view's inodes while the app works."""

    def __init__(self, period):
        self.period = period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.wait(self.period):
            Path("/proc/sys/vm/drop_caches").write_text("2\n")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def make_app(tmp_path, soak_app, extra_mounts="", policy="strict", log_level="debug"):
    (tmp_path / "fuse_soak").write_bytes(soak_app.read_bytes())
    (tmp_path / "fuse_soak").chmod(0o755)
    for d in "wauet":
        (tmp_path / d).mkdir()
    (tmp_path / "manifest.template").write_text(f"""
libos.entrypoint = "/fuse_soak"
loader.log_level = "{log_level}"
loader.insecure__use_cmdline_argv = true
fs.mounts = [
  {{ path = "/lib", uri = "file:{LIBDIR}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/fuse_soak", uri = "file:fuse_soak" }},
  {{ type = "encrypted", path = "/w", uri = "file:w" }},
  {{ type = "encrypted", path = "/e", uri = "file:e" }},
  {{ path = "/a", uri = "file:a" }},
  {{ path = "/u", uri = "file:u" }},
  {{ path = "/t", uri = "file:t" }},
]
fs.insecure__keys.default = "{KEY}"
sgx.file_check_policy = "{policy}"
sgx.trusted_files = [ "file:fuse_soak", "file:{LIBDIR}/libc.so.6",
                      "file:/lib64/ld-linux-x86-64.so.2", "file:t/" ]
""")


def render(moat, tmp_path):
    moat("manifest", "render", "--no-progress", "manifest.template", "app.manifest",
         cwd=tmp_path, check=0)


def test_nodes_freed_when_forgotten(moat, tmp_path, soak_app):
    """30% of the operations make a new file under a name never seen before (then remove it),
    the rest stat and open repeated names while the caches are dropped: moat frees the nodes
    the kernel forgot, so no more are live at once than the names the app keeps using (the
    1,000 kept files, the trusted and read-only ones, a few directories), not one per file
    ever made."""
    make_app(tmp_path, soak_app)
    for i in range(300):
        (tmp_path / "a" / f"f{i}").write_text("")
        (tmp_path / "t" / f"f{i}").write_text(str(i))
    render(moat, tmp_path)
    ops = 30000
    with CacheDropper(0.5):
        r = moat("run", "app", "soak", ops, "/w", "/a", 300, "/t", 300, cwd=tmp_path,
                 timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "progress 100" in r.stdout
    assert not SANITIZER.search(r.stderr), r.stderr[-5000:]
    m = re.search(r"FUSE nodes: (\d+) live, (\d+) freed \(at most (\d+) live at once\)",
                  r.stderr)
    assert m, r.stderr[-3000:]
    live, freed, peak = map(int, m.groups())
    created = ops * 3 // 10
    assert freed >= created, m.group(0)
    assert peak < 1000 + 300 + 300 + 100, m.group(0)  # not one node per file created
    assert live <= peak


@pytest.mark.parametrize("where", ["/e", "/u"])
def test_hostile_races(moat, tmp_path, soak_app, where):
    """Sixteen threads create, stat, open, write, rename (RENAME_EXCHANGE too) and unlink the
    same 16 names (files renamed and removed while open) while the kernel's caches are dropped
    every 50 ms, so lookups race forgets, unlinks and renames of the same nodes: the run ends
    normally, with no sanitizer report, and moat has freed the nodes (an encrypted mount, and
    an unlisted directory under allow_all_but_log)."""
    make_app(tmp_path, soak_app, policy="allow_all_but_log", log_level="debug")
    render(moat, tmp_path)
    with CacheDropper(0.05):
        r = moat("run", "app", "race", 8, where, 16, cwd=tmp_path, timeout=120)
    assert not SANITIZER.search(r.stderr), r.stderr[-5000:]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "raced" in r.stdout
    m = re.search(r"FUSE nodes: (\d+) live, (\d+) freed", r.stderr)
    assert m and int(m.group(2)) > 0, r.stderr[-3000:]
