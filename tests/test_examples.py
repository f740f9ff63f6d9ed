"""The examples (examples/*/Makefile: make check) and the Gramine CI templates of
../shared/testdata/gramine-manifests running unchanged under `moat run` with Debian's binaries.

-D values used for the Gramine templates (as their Makefiles pass them):
  helloworld: -Dlog_level=error                       (helloworld built from examples/helloworld)
  bash:       -Dlog_level=error -Dexecdir=/usr/bin -Darch_libdir=/lib/x86_64-linux-gnu
  python:     -Dlog_level=error -Darch_libdir=/lib/x86_64-linux-gnu
              -Dentrypoint=/usr/bin/python3.11 -Dra_type=none
  redis:      -Dlog_level=error -Darch_libdir=/lib/x86_64-linux-gnu (redis-server copied from
              /usr/bin, as the template mounts file:redis-server)
"""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import moat_binary

ROOT = Path(__file__).resolve().parent.parent
ARCH = "/lib/x86_64-linux-gnu"


@pytest.mark.parametrize("example", ["helloworld", "bash", "python", "redis", "nginx"])
def test_example(example, tmp_path):
    need = {"redis": "/usr/bin/redis-server", "nginx": "/usr/sbin/nginx"}.get(example)
    if need and not Path(need).exists():
        pytest.skip(f"{need} is not installed (scripts/install-deps installs it)")
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
