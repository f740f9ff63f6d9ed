"""Process and system behaviour under `moat run` against gramine-direct v1.9: what each test
asserts is the decision written down in docs/gramine-differences.md ("Process and system
behaviour"); the Gramine sources and tests each one follows or departs from are named there.

The app is tests/apps/parity_beh.c; every case runs as root and, through setpriv, as an
ordinary user (the two ways the sandbox is built: docs/security.md).
"""
import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import USER, Workdir, build_app


TEMPLATE = """\
libos.entrypoint = "/parity_beh"
loader.log_level = "warning"
loader.argv = ["parity_beh", "{probe}"]
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/parity_beh", uri = "file:parity_beh" }},
  {{ type = "tmpfs", path = "/tmp" }},
]
sgx.trusted_files = [
  "file:parity_beh",
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
"""


def results(stdout):
    out = {}
    for line in stdout.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            out[name] = value
    return out


@pytest.fixture(scope="session")
def parity_binary(tmp_path_factory):
    return build_app(tmp_path_factory, "parity_beh")


class Box(Workdir):
    """tests/apps/parity_beh.c run with one probe as its argument."""

    def __init__(self, workdir, binary):
        super().__init__(workdir.identity, workdir.dir, workdir.moat)
        self.add_app(binary, "parity_beh")

    def render(self, probe, extra=""):
        super().render(TEMPLATE.format(probe=probe) + extra, "parity_beh")

    def run(self, probe, extra="", check=True):
        self.render(probe, extra)
        r = super().run("parity_beh", timeout=60)
        if check:
            assert r.returncode == 0, r.stderr
        return r


@pytest.fixture
def box(workdir, parity_binary):
    return Box(workdir, parity_binary)


# ---- stderr is the app's own (Gramine: dev:tty = host fd 1) ----

def test_stderr_stays_separate(box):
    r = box.run("stdio")
    assert r.stdout == "to stdout\n"
    assert "to stderr\n" in r.stderr


# ---- process ids and groups (Gramine: pid 1, pgid 1, sid 0) ----

def test_app_leads_its_process_group(box):
    res = results(box.run("ids").stdout)
    assert res["pid"] == "2" and res["ppid"] == "1"  # moat-init is PID 1
    assert res["pgid"] == res["pid"]  # a group leader, as Gramine's first process
    assert res["sid"] == "0"  # the session is outside the sandbox; Gramine says 0 as well
    assert res["setsid"] == os.strerror(errno.EPERM)  # what Gramine's sid.c expects


def test_kill_zero_stays_in_the_sandbox(box):
    """kill(0, SIGKILL) reaches the app's own group: not moat, nor what shares its group on
    the host (here a sleep of the same identity, started beside moat in one new session)."""
    box.render("killgroup")
    script = 'sleep 30 & echo $! > sleeper.pid; "$@"; echo "moat=$?" > moat.status; wait'
    cmd = ["sh", "-c", script, "sh", box.moat, "run", "parity_beh"]
    if box.identity == "user":  # the sleep too runs as the app's host identity
        cmd = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", *cmd]
    p = subprocess.Popen(cmd, cwd=box.dir, env=box.env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    try:
        deadline = time.time() + 60
        status = box.dir / "moat.status"
        while not status.exists() and time.time() < deadline:
            time.sleep(0.1)
        sleeper = int((box.dir / "sleeper.pid").read_text())
        assert status.read_text().strip() == "moat=137"  # the app killed itself
        assert Path(f"/proc/{sleeper}").exists(), "the app's kill(0) reached the host's group"
        os.kill(sleeper, 9)
    finally:
        if p.poll() is None:
            p.kill()  # by PID: the sh this test started
        p.communicate(timeout=30)


# ---- hostname (Gramine: "localhost" unless the extra runtime conf) ----

def test_hostname_is_localhost(box):
    res = results(box.run("hostname").stdout)
    assert res["gethostname"] == "localhost"
    assert res["nodename"] == "localhost"
    assert res["etc_hostname"] == os.strerror(errno.ENOENT)  # not mounted by the manifest


def test_hostname_from_host_with_extra_runtime_conf(box):
    res = results(box.run("hostname",
                          "sys.enable_extra_runtime_domain_names_conf = true\n").stdout)
    host = os.uname().nodename
    assert res["gethostname"] == host and res["nodename"] == host
    assert res["etc_hostname"] == host


# ---- /proc is the sandbox's procfs ----

def test_proc_is_the_sandbox_procfs(box):
    res = results(box.run("proc").stdout)
    assert res["self_link"] == "2"
    for entry in ["/proc/self", "/proc/1", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
                  "/proc/mounts", "/proc/uptime", "/proc/self/maps"]:
        assert res[entry] == "present", entry


# ---- argv of an execve with a NULL or empty argv (Linux >= 5.18: {""}) ----

@pytest.mark.parametrize("probe", ["execnull", "execempty"])
def test_exec_without_argv(box, probe):
    res = results(box.run(probe).stdout)
    assert res == {"argc": "1", "argv0": ""}


# ---- eventfd across fork is one kernel object ----

def test_eventfd_shared_across_fork(box):
    res = results(box.run("eventfd").stdout)
    assert res == {"child_write": "ok", "parent_read": "5"}


# ---- flock and fcntl locks are independent ----

def test_flock_and_fcntl_locks_independent(box):
    res = results(box.run("locks").stdout)
    assert res == {"flock": "ok", "fcntl_same_file": "ok", "fcntl_in_child": "ok"}


# ---- non-blocking connect reports what the kernel reports ----

def test_nonblocking_connect_refused(box):
    res = results(box.run("connect").stdout)
    refused = os.strerror(errno.ECONNREFUSED)
    assert res["connect"] in (os.strerror(errno.EINPROGRESS), refused)
    if res["connect"] != refused:
        assert res["so_error"] == refused
