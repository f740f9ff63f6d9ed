"""The `moat` front and the programs behind it: `moat run` (and every other command of the
front) maps none of the libraries of the Coordinator (libevent, nghttp2, protobuf-c) nor
libcurl (dlopen'd by `moat quote verify --pccs` only); `moat coordinator` runs the program that
does (issue 12, issue 15)."""
import subprocess

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
