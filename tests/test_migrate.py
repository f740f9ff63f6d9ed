"""`moat manifest migrate`: Graphene-era manifests (shared/seeds 000 and 003) become current
Gramine syntax that passes `check` (gramine.md §1.4)."""
import tomllib
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "graphene"


@pytest.fixture
def migrated(moat, tmp_path):
    out = tmp_path / "marble.manifest"
    r = moat("manifest", "migrate", DATA / "marble.manifest", out, check=0)
    return tomllib.loads(out.read_text()), r.stderr, out


def test_unmigrated_graphene_manifest_fails_check(moat):
    r = moat("manifest", "check", DATA / "marble.manifest", check=2)
    assert "'libos.entrypoint' should be an in-Gramine path, not URI." in r.stderr
    assert "Cannot parse 'sgx.remote_attestation'" in r.stderr


def test_migrated_manifest_passes_check(moat, migrated):
    _, _, out = migrated
    r = moat("manifest", "check", out, check=0)
    assert "error" not in r.stderr


def test_migration_rewrites(migrated):
    m, log, _ = migrated
    assert m["libos"]["entrypoint"] == "premain-graphene"
    assert "entrypoint" not in m["loader"] and "preload" not in m["loader"]
    assert m["loader"]["argv"] == ["hello"]
    assert m["loader"]["insecure__use_host_env"] is True
    assert m["fs"]["root"] == {"type": "chroot", "uri": "file:."}
    mounts = m["fs"]["mounts"]
    assert {"type": "chroot", "path": "/lib", "uri": "file:../../Runtime"} in mounts
    assert {"type": "tmpfs", "path": "/tmp"} in mounts
    enc = [x for x in mounts if x["type"] == "encrypted"]
    assert {(x["path"], x["uri"], x["key_name"]) for x in enc} == {
        ("/server.crt", "file:server.crt", "default"), ("/server.key", "file:server.key", "default")}
    assert m["fs"]["insecure__keys"]["default"] == "ffeeddccbbaa99887766554433221100"
    sgx = m["sgx"]
    assert sgx["max_threads"] == 16 and "thread_num" not in sgx
    assert sgx["insecure__rpc_thread_num"] == 0
    assert sgx["remote_attestation"] == "dcap"
    assert "ra_client_spid" not in sgx and "nonpie_binary" not in sgx
    assert sgx["cpu_features"] == {"avx": "required"}
    assert sgx["debug"] is True  # Graphene's default kept
    assert sgx["trusted_files"][:3] == ["file:premain-graphene", "file:premain-graphene.so",
                                        "file:hello.argv"]
    assert sgx["trusted_files"][3] == {"uri": "file:../../Runtime/ld-linux-x86-64.so.2",
                                       "sha256": "0" * 64}
    assert sgx["allowed_files"] == ["file:uuid"]
    assert sgx["profile"]["with_stack"] is True
    assert m["sys"]["enable_sigterm_injection"] is True


def test_migration_reports_changes_and_losses(migrated):
    _, log, _ = migrated
    assert "note: 'sgx.thread_num' renamed to 'sgx.max_threads'" in log
    assert "warning: 'loader.pal_internal_mem_size' removed" in log
    assert "changes, 1 warning" in log


def test_argv0_override_with_cmdline_argv_cannot_migrate(moat, tmp_path):
    src = tmp_path / "a.manifest"
    src.write_text('libos.entrypoint = "/a"\nloader.argv0_override = "x"\n'
                   "loader.insecure__use_cmdline_argv = true\n")
    r = moat("manifest", "migrate", src, check=0)
    assert "warning: 'loader.argv0_override' removed" in r.stderr
    assert "argv0_override" not in r.stdout


def test_in_place_and_invalid_result_writes_nothing(moat, tmp_path):
    src = tmp_path / "b.manifest"
    original = 'libos.entrypoint = "/a"\nsgx.thread_num = 2\nsgx.enclave_size = "3M"\n'
    src.write_text(original)
    r = moat("manifest", "migrate", "--in-place", src, check=2)
    assert "not a power of two" in r.stderr and "nothing written" in r.stderr
    assert src.read_text() == original
    src.write_text('libos.entrypoint = "/a"\nsgx.thread_num = 2\n')
    moat("manifest", "migrate", "-i", src, check=0)
    assert tomllib.loads(src.read_text())["sgx"]["max_threads"] == 2


def test_protected_file_under_a_mount_gets_the_in_app_path(moat, tmp_path):
    src = tmp_path / "c.manifest"
    src.write_text('libos.entrypoint = "/a"\n'
                   'fs.mount.data.type = "chroot"\nfs.mount.data.path = "/data"\n'
                   'fs.mount.data.uri = "file:/srv/data"\n'
                   'sgx.protected_mrsigner_files = [ "file:/srv/data/secrets/" ]\n')
    r = moat("manifest", "migrate", src, check=0)
    m = tomllib.loads(r.stdout)
    enc = [x for x in m["fs"]["mounts"] if x["type"] == "encrypted"]
    assert enc == [{"type": "encrypted", "path": "/data/secrets", "uri": "file:/srv/data/secrets/",
                    "key_name": "_sgx_mrsigner"}]
