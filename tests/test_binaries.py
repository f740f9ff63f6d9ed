"""The `moat` front and the programs behind it: `moat run` (and every other command of the
front) maps none of the libraries of the Coordinator (libevent, nghttp2, protobuf-c) nor
libcurl (dlopen'd by `moat quote verify --pccs` only); `moat coordinator` runs the program that
does (issue 12, issue 15)."""
import subprocess
from pathlib import Path

import pytest

SERVER_LIBS = ("libevent", "libnghttp2", "libprotobuf-c", "libcurl")


def needed(path):
    r = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def test_moat_maps_no_server_library(moat_path):
    libs = needed(moat_path)
    assert libs, "ldd printed nothing"
    bad = [lib for lib in libs if lib.startswith(SERVER_LIBS)]
    assert not bad, f"moat links {bad}: `moat run` would pay for them at every start"


def test_coordinator_is_a_program_of_its_own(moat, moat_path):
    server = moat_path.parent / "moat-coordinator"
    assert server.exists()
    libs = needed(server)
    for want in ("libevent", "libnghttp2", "libprotobuf-c"):
        assert any(lib.startswith(want) for lib in libs), f"moat-coordinator lacks {want}"
    r = moat("coordinator", "--help", check=0)
    assert "MarbleRun-compatible Coordinator" in r.stdout
    assert "EDG_COORDINATOR_MESH_ADDR" in r.stdout
    r = moat("help", check=0)
    assert "coordinator" in r.stdout
    r = moat("coordinator", "--no-such-flag", check=2)
    assert "Try 'moat coordinator --help'" in r.stderr


def test_coordinator_front_without_the_program(moat_path, tmp_path):
    """A moat copied away from moat-coordinator says what is missing instead of failing
    obscurely."""
    lonely = tmp_path / "moat"
    lonely.write_bytes(moat_path.read_bytes())
    lonely.chmod(0o755)
    r = subprocess.run([str(lonely), "coordinator", "--help"], capture_output=True, text=True)
    if r.returncode == 0:
        pytest.skip("an installed moat-coordinator was found in the package library directory")
    assert r.returncode == 1
    assert "cannot find moat-coordinator" in r.stderr


# the libraries `moat run` may map: what it calls (OpenSSL's libcrypto for hashes and GCM,
# libfuse3, libseccomp, jansson for /dev/amber's answers) and the C library; sanitizer runtimes in
# an ASan build. libcurl (and through it libssl, GnuTLS, Kerberos, LDAP...) comes only with the
# first read of /dev/amber (dlopen).
RUN_LIBS = ("libcrypto.so", "libfuse3.so", "libseccomp.so", "libjansson.so", "libc.so",
            "libm.so", "ld-linux", "linux-vdso")
SANITIZER_LIBS = ("libasan.so", "libubsan.so", "libstdc++.so", "libgcc_s.so", "libdl.so",
                  "libpthread.so", "librt.so")


def test_moat_run_maps_only_what_it_uses(moat_path, tmp_path):
    """While an app runs (with /dev/amber configured but not read), the supervisor's
    /proc/PID/maps holds no library outside RUN_LIBS."""
    import os
    import time
    libc = "/lib/x86_64-linux-gnu"
    (tmp_path / "app.manifest.template").write_text(f"""
libos.entrypoint = "/bin/sleep"
loader.argv = ["sleep", "30"]
fs.mounts = [
  {{ path = "/bin", uri = "file:/bin" }},
  {{ path = "/lib", uri = "file:{libc}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
]
loader.env.LD_LIBRARY_PATH = "/lib"
sgx.remote_attestation = "dcap"
sgx.amber_url = "https://localhost:1/appraisal/v1/"
sgx.trusted_files = ["file:/bin/sleep", "file:{libc}/libc.so.6",
                     "file:/lib64/ld-linux-x86-64.so.2"]
""")
    subprocess.run([str(moat_path), "manifest", "render", "--no-progress",
                    "app.manifest.template", "app.manifest"], cwd=tmp_path, check=True,
                   capture_output=True)
    p = subprocess.Popen([str(moat_path), "run", "app"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        maps, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline:  # until the app runs: moat-init below moat
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children")
            if p.poll() is not None:
                break
            if kids.exists() and kids.read_text().split():
                maps = Path(f"/proc/{p.pid}/maps").read_text()
                break
            time.sleep(0.05)
        assert maps, p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.kill(p.pid, 9)
        p.wait(30)
    mapped = {line.split()[-1] for line in maps.splitlines()
              if ".so" in line.split()[-1] and line.split()[-1].startswith("/")}
    names = {Path(m).name for m in mapped}
    bad = [n for n in names if not n.startswith(RUN_LIBS + SANITIZER_LIBS)]
    assert not bad, f"moat run maps {bad}: a library it does not call costs every start"
    assert any(n.startswith("libcrypto.so") for n in names), names  # the test sees the maps
