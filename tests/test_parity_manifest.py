"""Gramine parity of manifest keys, messages and exit codes in `moat run` (issue 11;
docs/gramine-differences.md "Manifest keys" and "Messages and exit codes").

Each test runs tests/apps/probe.c under a manifest of its own and checks what the app saw and
what moat printed, against gramine-direct v1.9's behaviour (reference/gramine.md §1.3).
"""
import os
import stat

import pytest

from test_run import probe_binary  # noqa: F401 (the probe app, built once)


TEMPLATE = """\
libos.entrypoint = "/probe"
loader.log_level = "{level}"
{extra}
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/probe", uri = "file:probe" }},
{mounts}]
sgx.trusted_files = [
  "file:probe",
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
sgx.allowed_files = [ {allowed} ]
"""


@pytest.fixture
def run(tmp_path, probe_binary, moat):
    """run(argv, extra=, mounts=, allowed=, level=, args=) renders probe.manifest and runs it."""
    (tmp_path / "probe").write_bytes(probe_binary.read_bytes())
    (tmp_path / "probe").chmod(0o755)

    def go(argv, extra="", mounts="", allowed="", level="error", args=()):
        argv_line = "loader.argv = [" + ", ".join(f'"{a}"' for a in argv) + "]\n" if argv else ""
        (tmp_path / "probe.manifest.template").write_text(TEMPLATE.format(
            level=level, extra=argv_line + extra, mounts=mounts, allowed=allowed))
        moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
             cwd=tmp_path, check=0)
        return moat("run", "probe", *args, cwd=tmp_path, timeout=60)

    go.dir = tmp_path
    return go


# ---- messages and exit codes ----------------------------------------------------------------

def test_unexpected_argument_exits_1_with_gramines_message(run):
    """gramine-direct exits 1 (PAL's INIT_FAIL) when the host passes arguments the manifest
    does not take; so does moat run, with the same message and nothing run."""
    r = run([], args=("extra",))
    assert r.returncode == 1, r.stderr
    assert ("argv handling wasn't configured in the manifest, but cmdline arguments were "
            "specified.") in r.stderr
    assert r.stdout == ""


def test_invalid_manifest_exits_1_and_names_key_and_line(moat, tmp_path):
    (tmp_path / "app.manifest").write_text('libos.entrypoint = "/app"\nsgx.isvsvn = 70000\n')
    r = moat("run", "app", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "app.manifest:2:" in r.stderr and "'sgx.isvsvn' = 70000 is out of range" in r.stderr


def test_usage_error_of_moat_run_itself_exits_2(moat, tmp_path):
    assert moat("run", "--no-such-option", "x", cwd=tmp_path).returncode == 2
    assert moat("run", "nothing", cwd=tmp_path).returncode == 2  # no manifest at all


def test_debug_log_lines(run):
    """The lines users and Gramine's tests grep for at loader.log_level = "debug"."""
    r = run(["probe"], level="debug")
    assert r.returncode == 0, r.stderr
    assert "debug: Host: Linux" in r.stderr
    assert "debug: LibOS initialized" in r.stderr
    assert r.stderr.index("Host: Linux") < r.stderr.index("LibOS initialized")
    quiet = run(["probe"], level="error")
    assert "LibOS initialized" not in quiet.stderr and "Host:" not in quiet.stderr


def test_debug_log_lines_go_to_log_file(run):
    r = run(["probe"], level="debug", extra='loader.log_file = "moat.log"\n')
    assert r.returncode == 0, r.stderr
    log = (run.dir / "moat.log").read_text()
    assert "LibOS initialized" in log and "LibOS initialized" not in r.stderr
    assert stat.S_IMODE(os.stat(run.dir / "moat.log").st_mode) == 0o600  # Gramine's mode


def test_graphene_keys_are_read_and_said(run):
    """A Graphene-era key is read as what `moat manifest migrate` writes, with a warning naming
    both (Gramine v1.9 ignores it silently)."""
    r = run(["probe", "threads", "3"], level="warning", extra="sgx.thread_num = 8\n")
    assert r.returncode == 0, r.stderr
    assert "Graphene-era key 'sgx.thread_num' is read as sgx.max_threads" in r.stderr


# ---- mounts: dev: URIs and untrusted_shm ------------------------------------------------------

def test_untrusted_shm_mount_shares_files_with_the_host(run, tmp_path):
    """type = "untrusted_shm" with a dev: URI: host shared memory, files allowed by
    sgx.allowed_files are the host's (what the app writes, the host reads); others are refused
    under the strict policy."""
    shm = tmp_path / "shm"
    (shm / "ok").mkdir(parents=True)
    (shm / "other.txt").write_text("host only\n")
    mounts = f'  {{ type = "untrusted_shm", path = "/dev/shm", uri = "dev:{shm}" }},\n'
    r = run(["probe", "write", "/dev/shm/ok/seg"], mounts=mounts, allowed=f'"dev:{shm}/ok/"')
    assert r.returncode == 0, r.stderr
    assert (shm / "ok" / "seg").exists()
    r = run(["probe", "read", "/dev/shm/other.txt"], mounts=mounts, allowed=f'"dev:{shm}/ok/"')
    assert "Permission denied" in r.stdout + r.stderr or r.returncode != 0, r.stdout + r.stderr
    assert "read 10 bytes" not in r.stdout


def test_chroot_mount_of_a_device(run):
    """A chroot mount with a dev: URI (device passthrough) of a device the manifest allows."""
    mounts = '  { path = "/devnull", uri = "dev:/dev/null" },\n'
    r = run(["probe", "read", "/devnull"], mounts=mounts, allowed='"dev:/dev/null"')
    assert r.returncode == 0 and r.stdout == "read 0 bytes\n", r.stdout + r.stderr


def test_chroot_mount_inside_a_tmpfs_mount(run, tmp_path):
    """A chroot mount below a tmpfs mount is visible (bound from the view over the tmpfs)."""
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "f.txt").write_text("inner file\n")
    mounts = ('  { type = "tmpfs", path = "/mnt" },\n'
              '  { path = "/mnt/inner", uri = "file:inner" },\n')
    r = run(["probe", "read", "/mnt/inner/f.txt"], mounts=mounts, allowed='"file:inner/"')
    assert r.returncode == 0 and r.stdout == "read 11 bytes\n", r.stdout + r.stderr


def test_mount_below_proc_is_warned_about(run, tmp_path):
    (tmp_path / "somedir").mkdir()
    mounts = '  { path = "/proc/test/nested/dirs/exec", uri = "file:somedir" },\n'
    r = run(["probe"], mounts=mounts, level="warning")
    assert r.returncode == 0, r.stderr
    assert "the mount at /proc/test/nested/dirs/exec is not visible to the app" in r.stderr
