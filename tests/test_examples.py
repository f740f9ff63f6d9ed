"""The examples (examples/*/Makefile: make check) and the Gramine CI templates of
../shared/testdata/gramine-manifests running unchanged under `moat run` with Debian's binaries.

-D values used for the Gramine templates (as their Makefiles pass them):
  helloworld: -Dlog_level=error                       (helloworld built from examples/helloworld)
  bash:       -Dlog_level=error -Dexecdir=/usr/bin -Darch_libdir=/lib/x86_64-linux-gnu
  python:     -Dlog_level=error -Darch_libdir=/lib/x86_64-linux-gnu
              -Dentrypoint=/usr/bin/python3.11 -Dra_type=none
  redis:      -Dlog_level=error -Darch_libdir=/lib/x86_64-linux-gnu (redis-server copied from
              /usr/bin, as the template mounts file:redis-server)
  sqlite:     -Dlog_level=error -Dexecdir=/usr/bin -Darch_libdir=/lib/x86_64-linux-gnu
"""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import moat_binary

ROOT = Path(__file__).resolve().parent.parent
ARCH = "/lib/x86_64-linux-gnu"


@pytest.mark.parametrize("example", ["helloworld", "bash", "python", "redis", "nginx", "sqlite",
                                     "attestation", "coordinator", "amber"])
def test_example(example, tmp_path):
    need = {"redis": ["/usr/bin/redis-server"], "nginx": ["/usr/sbin/nginx"],
            "sqlite": ["/usr/bin/sqlite3", "/usr/bin/xxd"],
            "coordinator": ["/usr/bin/curl", str(moat_binary().parent / "moat-coordinator")],
            "amber": ["/usr/bin/curl", str(moat_binary().parent / "moat-amber"),
                      str(moat_binary().parent / "moat-kbs")],
            }.get(example, [])
    for path in need:
        if not Path(path).exists():
            pytest.skip(f"{path} is not installed (scripts/install-deps installs it)")
    work = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, work)
    r = subprocess.run(["make", "-C", str(work), f"MOAT={moat_binary()}", "check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{example}: ok" in r.stdout


def render(moat, shared, template, cwd, *defines):
    args = [a for d in defines for a in ("-D", d)]
    moat("manifest", "render", "--no-progress", *args, shared / template, cwd / "app.manifest",
         cwd=cwd, check=0)


def test_gramine_helloworld_template(moat, shared, tmp_path):
    subprocess.run(["gcc", "-O2", "-o", tmp_path / "helloworld",
                    ROOT / "examples/helloworld/helloworld.c"], check=True)
    render(moat, shared, "gramine-manifests/helloworld/helloworld.manifest.template", tmp_path,
           "log_level=error")
    r = moat("run", "app", cwd=tmp_path, check=0)
    assert r.stdout == "Hello, world\n"


def test_gramine_bash_template(moat, shared, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "t.sh").write_text("ls /scripts; cat /scripts/t.sh | wc -l; date +%Y\n")
    render(moat, shared, "gramine-manifests/bash/manifest.template", tmp_path, "log_level=error",
           "execdir=/usr/bin", f"arch_libdir={ARCH}")
    r = moat("run", "app", "-c", "bash /scripts/t.sh", cwd=tmp_path, check=0)
    assert r.stdout.splitlines()[:2] == ["t.sh", "1"], r.stderr


def test_gramine_python_template(moat, shared, tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "helper-files").mkdir()
    (tmp_path / "helper-files" / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "scripts" / "t.py").write_text(
        "import json, email, http.client, asyncio, decimal, sqlite3, ssl\nprint('imports ok')\n")
    python = str(Path("/usr/bin/python3").resolve())
    render(moat, shared, "gramine-manifests/python/python.manifest.template", tmp_path,
           "log_level=error", f"arch_libdir={ARCH}", f"entrypoint={python}", "ra_type=none")
    r = moat("run", "app", "scripts/t.py", cwd=tmp_path, check=0)
    assert r.stdout == "imports ok\n", r.stderr


@pytest.mark.skipif(not Path("/usr/bin/redis-server").exists(), reason="redis-server missing")
def test_gramine_redis_template(moat, shared, tmp_path):
    shutil.copy("/usr/bin/redis-server", tmp_path / "redis-server")
    render(moat, shared, "gramine-manifests/redis/redis-server.manifest.template", tmp_path,
           "log_level=error", f"arch_libdir={ARCH}")
    p = subprocess.Popen([str(moat_binary()), "run", "app"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            r = subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, text=True)
            if r.stdout.strip() == "PONG":
                break
            time.sleep(0.1)
        assert r.stdout.strip() == "PONG"
    finally:
        p.terminate()  # sys.enable_sigterm_injection = true in the template
        p.wait(timeout=30)


@pytest.mark.skipif(not Path("/usr/bin/sqlite3").exists(), reason="sqlite3 missing")
def test_gramine_sqlite_template(moat, shared, tmp_path):
    """Gramine's CI-Examples/sqlite template unchanged: `sqlite3 /db/test.db` with /db an encrypted
    mount keyed by fs.insecure__keys.default; on the host db/test.db is a Gramine encrypted file
    (reference/gramine.md §4.1: "GRAFS_PF" at offset 0) without the plaintext, and a second
    sqlite3 process reopens it (the DB persists through the encrypted files)."""
    (tmp_path / "scripts").mkdir()  # the template lists file:scripts/ as trusted files
    (tmp_path / "db").mkdir()  # the host directory behind the encrypted mount /db/
    render(moat, shared, "gramine-manifests/sqlite/manifest.template", tmp_path,
           "log_level=error", "execdir=/usr/bin", f"arch_libdir={ARCH}")
    sql = ("CREATE TABLE t (x TEXT);\n"
           "BEGIN;\n"
           "INSERT INTO t VALUES ('moat-gramine-sqlite-1'), ('moat-gramine-sqlite-2');\n"
           "COMMIT;\n"
           "SELECT x FROM t ORDER BY x;\n")
    r = moat("run", "app", input=sql, cwd=tmp_path, check=0)
    assert r.stdout.splitlines() == ["moat-gramine-sqlite-1", "moat-gramine-sqlite-2"], r.stderr
    assert "fs.insecure__keys" in r.stderr  # the banner names the insecure key
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["test.db"]  # journal deleted
    data = (tmp_path / "db" / "test.db").read_bytes()
    assert data[:8] == b"GRAFS_PF"
    assert b"moat-gramine-sqlite" not in data and b"SQLite format 3" not in data
    assert len(data) % 4096 == 0 and len(data) > 4096  # §4.1: whole 4096-byte nodes
    # §4.5: bound to the relative host path, under the template's key
    (tmp_path / "wrap.key").write_bytes(bytes.fromhex("ffeeddccbbaa99887766554433221100"))
    r = moat("pf", "info", "-w", "wrap.key", "db/test.db", cwd=tmp_path, check=0)
    assert "bound path:  db/test.db\n" in r.stdout

    r = moat("run", "app", input="SELECT count(*) FROM t;\nPRAGMA integrity_check;\n",
             cwd=tmp_path, check=0)
    assert r.stdout.splitlines() == ["2", "ok"], r.stderr
