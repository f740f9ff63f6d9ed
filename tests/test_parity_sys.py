"""`moat run`: system calls Gramine emulates (issue 11, reference/gramine.md §1.3 sys.*).

Each test renders a manifest for tests/apps/parity_sys.c (one mode per behaviour), runs it with
`moat run` as root and, through setpriv, as an ordinary user, and checks what the app saw and
what moat printed.
"""
import resource
import subprocess

import pytest

from conftest import build_app


TEMPLATE = """\
libos.entrypoint = "/parity_sys"
loader.log_level = "{level}"
loader.argv = ["parity_sys", "{mode}"]
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/parity_sys", uri = "file:parity_sys" }},
  {{ type = "tmpfs", path = "/tmp" }},
]
sgx.trusted_files = [
  "file:parity_sys",
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
"""


@pytest.fixture(scope="session")
def parity_binary(tmp_path_factory):
    return build_app(tmp_path_factory, "parity_sys", "-Werror", "-pthread")


@pytest.fixture
def run_app(workdir, parity_binary):
    """run_app(mode, extra_manifest, level="warning", moat_args=()) -> CompletedProcess."""
    workdir.add_app(parity_binary, "parity_sys")

    def run(mode, extra="", level="warning", moat_args=(), setup=None):
        workdir.render(TEMPLATE.format(mode=mode, level=level) + extra, "parity_sys")
        return workdir.run("parity_sys", moat_args=moat_args, timeout=60, preexec_fn=setup)

    run.identity = workdir.identity
    return run


def values(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def ok(r):
    assert r.returncode == 0 and r.stdout.splitlines()[-1:] == ["OK"], (r.stdout, r.stderr)
    return values(r.stdout)


# ---------------------------------------------------------------------------------------------
# 4. soft RLIMIT_NOFILE / RLIMIT_STACK: sys.fds.limit and sys.stack.size, raisable to the hard
#    limit, which stays the host's (Gramine libos/src/sys/libos_getrlimit.c)

def limit_hard(hard_nofile, hard_stack):
    def setup():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard_nofile))
        resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, hard_stack))
    return setup


def test_rlimit_soft_limits_are_the_manifests_and_raisable(run_app):
    v = ok(run_app("rlimit", 'sys.fds.limit = 100\nsys.stack.size = "1M"\n',
                   setup=limit_hard(4096, 64 << 20)))
    assert v["nofile.soft"] == "100" and v["nofile.hard"] == "4096"
    assert v["nofile.raised"] == "101"
    assert v["stack.soft"] == str(1 << 20) and v["stack.hard"] == str(64 << 20)
    assert v["stack.raised"] == str((1 << 20) + 1)
    assert v["child.nofile.soft"] == "4096"  # raised to the hard limit, inherited by fork


def test_rlimit_default_fds_limit_is_900(run_app):
    v = ok(run_app("rlimit", setup=limit_hard(4096, resource.RLIM_INFINITY)))
    assert v["nofile.soft"] == "900" and v["nofile.hard"] == "4096"


def test_rlimit_soft_limit_is_clamped_to_the_hosts_hard_limit(run_app):
    v = ok(run_app("rlimit", "sys.fds.limit = 60000\n", setup=limit_hard(2048, 1 << 30)))
    assert v["nofile.soft"] == "2048" and v["nofile.hard"] == "2048"
    assert "nofile.raised" not in v


# ---------------------------------------------------------------------------------------------
# 2. sys.debug__mock_syscalls (Gramine libos/src/libos_syscalls.c init_syscalls; the
#    mock_syscalls regression test)

MOCKS = """\
sys.debug__mock_syscalls = [
  { name = "sched_yield" },
  { name = "vhangup", return = 123 },
  { name = "sethostname", return = -5 },
  { name = "eventfd2", return = -38 },
  { name = "fork", return = -38 },
  { name = "clone", return = -38 },
  { name = "getppid", return = 7 },
  { name = "getppid", return = 0x123456789 },
]
"""


def test_mock_syscalls_return_their_value_without_running(run_app):
    """0 and negative values come from the filter, positive ones from the supervisor; a call
    the profile refuses (vhangup, sethostname, clone of a user namespace) is mocked, not run;
    the last entry for a name wins."""
    v = ok(run_app("mock", MOCKS))
    assert v["vhangup"] == "123"
    assert v["sethostname"] == "-1 errno=5"
    assert v["getppid"] == str(0x123456789)


def test_mock_syscalls_are_logged(run_app):
    r = run_app("mock", MOCKS, level="debug")
    assert r.returncode == 0, r.stderr
    assert "mocking system call vhangup: returns 123" in r.stderr


def test_print_seccomp_lists_the_manifests_mocks(tmp_path, moat_path):
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/x"\n' + MOCKS +
                                         "sys.disallow_subprocesses = true\n")
    out = subprocess.run([str(moat_path), "run", "--print-seccomp", "m"], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    rules = [line.split("\t") for line in out.splitlines() if not line.startswith("#")]
    assert ["default", "EPERM"] in rules
    mocked = {r[0]: r[1] for r in rules if len(r) == 3 and "debug__mock_syscalls" in r[2]}
    assert mocked["vhangup"] == "RETURN 123" and mocked["sched_yield"] == "RETURN 0"
    assert mocked["getppid"] == f"RETURN {0x123456789}"
    # clone and fork are mocked: only vfork is left to sys.disallow_subprocesses
    assert [r[0] for r in rules if r[1] == "EAGAIN"] == ["vfork"]


@pytest.mark.parametrize("entry, message", [
    ('{ name = "no_such_call" }', "Unrecognized mock syscall `no_such_call` in manifest at index 1"),
    ('"sched_yield"', "Invalid mock syscall in manifest at index 1 (not a TOML table)"),
    ('{ name = "vhangup", return = "1" }',
     "Invalid mock syscall in manifest at index 1 (can't parse `return`)"),
    ('{ return = 1 }', "Invalid mock syscall in manifest at index 1 (can't parse `name`)"),
])
def test_mock_syscalls_errors_are_gramines(tmp_path, moat_path, entry, message):
    (tmp_path / "m.manifest").write_text(
        'libos.entrypoint = "/x"\nsys.debug__mock_syscalls = [ { name = "sched_yield" }, '
        f'{entry} ]\n')
    r = subprocess.run([str(moat_path), "run", "m"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and message in r.stderr, r.stderr  # gramine-direct exits 1
    # moat manifest check refuses it with the same message (one model for both)
    r = subprocess.run([str(moat_path), "manifest", "check", "m.manifest"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# 3. sys.disallow_subprocesses (Gramine libos/src/sys/libos_clone.c)

WARNING = ("The app tried to create a subprocess, but this is disabled "
           "(sys.disallow_subprocesses = true)")


def test_disallow_subprocesses_fails_with_eagain_and_warns_once(run_app):
    r = run_app("subprocess", "sys.disallow_subprocesses = true\n")
    ok(r)
    assert r.stderr.count(WARNING) == 1, r.stderr


def test_subprocesses_without_the_key_work(run_app):
    r = run_app("subprocess")
    assert r.returncode != 0 and "FAIL" in r.stdout and WARNING not in r.stderr


# ---------------------------------------------------------------------------------------------
# 1. setgroups, sched_setscheduler(SCHED_RR), chown family: accepted without effect, as
#    Gramine's emulations (libos_getuid.c, libos_sched.c, libos_file.c)

def test_setgroups_rt_scheduler_and_chown_succeed_without_effect(run_app):
    v = ok(run_app("ids"))
    assert v["scheduler"] == "0"  # SCHED_OTHER, as Gramine's sched_getscheduler


def test_mock_listener_survives_a_flood_and_an_exit_mid_flight(run_app):
    """Threads flood the supervisor with notified calls; the app exits with some in flight:
    moat returns the app's status, without hanging or crashing."""
    r = run_app("flood", '[[sys.debug__mock_syscalls]]\nname = "vhangup"\nreturn = 123\n')
    assert r.returncode == 7 and r.stdout.splitlines() == ["OK"], (r.stdout, r.stderr)
