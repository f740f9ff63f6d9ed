"""Attacks on the `moat run` sandbox (tests/apps/hostile.c): every one must be refused.

Each test runs the hostile app once as root ("root": moat started by root) and once as an
ordinary user ("user": moat started by uid/gid 65534 through setpriv, its test directory
chowned to that user), then checks two things that could each fail: the host is unchanged (the
bytes, mode, owner and times of the target; no process, mount or FUSE connection left) and the
app got the specific refusal (EPERM, EACCES, EROFS, ENOSYS, EBADF as fits). A positive control
per identity keeps a sandbox that refuses everything from passing.

Nothing a test does may outlive it, even when the sandbox is broken: host values an attack could
change are saved and restored in `finally`, payloads are markers (a core_pattern naming a file,
never a pipe to a program), setuid files are stripped before the test directory is removed, and
only the processes a test started (by PID) are ever killed.
"""
import errno
import fcntl
import json
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import termios
import time
from pathlib import Path

import pytest

from conftest import descendants

ROOT = Path(__file__).resolve().parent.parent
USER = 65534  # nobody/nogroup
LIBDIR = "/lib/x86_64-linux-gnu"
FUSECTL = Path("/sys/fs/fuse/connections")

TEMPLATE = """\
libos.entrypoint = "/hostile"
loader.log_level = "warning"
loader.argv = {argv}
fs.mounts = [
  {{ path = "/lib", uri = "file:{{{{ gramine.runtimedir() }}}}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/hostile", uri = "file:hostile" }},
  {{ path = "/data", uri = "file:data" }},
  {{ type = "tmpfs", path = "/tmp" }},
]
sgx.trusted_files = [
  "file:hostile",
  "file:{{{{ gramine.runtimedir() }}}}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
sgx.allowed_files = [ "file:data/allowed/" ]
"""


def strerror(*codes):
    return {os.strerror(c) for c in codes}


REFUSED_WRITE = strerror(errno.EROFS, errno.EACCES, errno.EPERM)


def results(stdout):
    """{name: value} of the app's `<name>: <value>` lines (the last one wins)."""
    out = {}
    for line in stdout.replace("\r", "").splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            out[name] = value
    return out


def refused(res, names, allowed):
    """Every name in res is one of the allowed refusals: a list of what was not."""
    return [f"{n}: {res.get(n, '<missing>')}" for n in names if res.get(n) not in allowed]


# ---------------------------------------------------------------------------------------------
# fixtures

@pytest.fixture(scope="session")
def hostile_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "hostile"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wno-format-truncation", "-o", out,
                    ROOT / "tests/apps/hostile.c"], check=True)
    return out



@pytest.fixture(scope="session")
def fusectl():
    """fusectl mounted at /sys/fs/fuse/connections (unmounted at the end if we mounted it)."""
    mounted = False
    if FUSECTL.is_dir() and not any(FUSECTL.iterdir()):
        r = subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)], capture_output=True)
        mounted = r.returncode == 0
    try:
        yield FUSECTL
    finally:
        if mounted:
            subprocess.run(["umount", str(FUSECTL)], capture_output=True)


def fuse_connections():
    return set(os.listdir(FUSECTL)) if FUSECTL.is_dir() else set()


class Sandbox:
    """A test directory with the hostile app, run by one identity."""

    def __init__(self, identity, directory, binary, moat_path):
        self.identity = identity
        self.dir = directory
        self.moat = str(moat_path)
        (directory / "hostile").write_bytes(binary.read_bytes())
        (directory / "hostile").chmod(0o755)
        (directory / "data" / "allowed").mkdir(parents=True)
        self.started = []  # Popen objects, stopped by PID at the end

    @property
    def user(self):
        return self.identity == "user"

    def chown(self, path):
        if self.user:
            os.chown(path, USER, USER)

    def own_all(self):
        if not self.user:
            return
        for p in [self.dir, *self.dir.rglob("*")]:
            os.lchown(p, USER, USER)

    def render(self, argv, extra=""):
        (self.dir / "hostile.manifest.template").write_text(
            TEMPLATE.format(argv=json.dumps(argv)) + extra)
        r = subprocess.run([self.moat, "manifest", "render", "--no-progress",
                            "hostile.manifest.template", "hostile.manifest"], cwd=self.dir,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        self.own_all()

    def command(self, *moat_args):
        cmd = [self.moat, "run", "hostile", *map(str, moat_args)]
        if self.user:
            cmd = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", *cmd]
        return cmd

    def env(self, extra=None):
        env = dict(os.environ)
        env["XDG_CACHE_HOME"] = str(self.dir / "cache")
        env["XDG_DATA_HOME"] = str(self.dir / "xdg-data")
        env.update(extra or {})
        return env

    def run(self, argv, *moat_args, extra="", env=None, stdin=subprocess.DEVNULL, timeout=60,
            **kw):
        self.render(argv, extra)
        return subprocess.run(self.command(*moat_args), cwd=self.dir, env=self.env(env),
                              stdin=stdin, capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, argv, *moat_args, extra="", env=None, **kw):
        self.render(argv, extra)
        p = subprocess.Popen(self.command(*moat_args), cwd=self.dir, env=self.env(env), **kw)
        self.started.append(p)
        return p

    def stop(self):
        for p in self.started:
            if p.poll() is None:
                p.kill()  # by PID: this Popen's own process
                p.wait(timeout=10)


@pytest.fixture(params=["root", "user"])
def sandbox(request, hostile_binary, moat_path):
    if os.geteuid() != 0:
        pytest.skip("the attacks are run by root and, through setpriv, by an ordinary user")
    if request.param == "user":
        if not Path("/usr/bin/setpriv").exists():
            pytest.skip("setpriv is needed to run moat as an ordinary user")
        request.getfixturevalue("fuse_for_users")
    d = Path(tempfile.mkdtemp(prefix="moat-attack-"))
    d.chmod(0o755)
    box = Sandbox(request.param, d, hostile_binary, moat_path)
    box.own_all()
    try:
        yield box
    finally:
        box.stop()
        for p in d.rglob("*"):  # no setuid file survives, even for a moment after the test
            if p.is_file() and not p.is_symlink() and p.stat().st_mode & (stat.S_ISUID | stat.S_ISGID):
                p.chmod(0o600)
        shutil.rmtree(d)


# ---------------------------------------------------------------------------------------------
# the positive control

def test_control_allowed_dir_writable_and_status_passes(sandbox):
    r = sandbox.run(["hostile", "control", "/data/allowed"])
    assert r.returncode == 7, r.stderr
    assert r.stdout == "write: ok\nchmod 0600: ok\n", r.stderr
    out = sandbox.dir / "data/allowed/out.txt"
    assert out.read_text() == "written\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.stat().st_uid == (USER if sandbox.user else 0)


# ---------------------------------------------------------------------------------------------
# A. host privilege

def test_A1_core_pattern_and_sysrq(sandbox):
    cp = Path("/proc/sys/kernel/core_pattern")
    saved = cp.read_bytes()
    payload = f"/tmp/moat-attack-core-{secrets.token_hex(4)}-%p"
    try:
        r = sandbox.run(["hostile", "sysctl", payload])
        now = cp.read_bytes()
    finally:
        if cp.read_bytes() != saved:
            cp.write_bytes(saved)
    res = results(r.stdout)
    assert now == saved, f"host core_pattern was changed to {now!r}; app: {r.stdout}"
    bad = refused(res, ["core_pattern open"], REFUSED_WRITE)
    # a kernel without CONFIG_MAGIC_SYSRQ has no /proc/sysrq-trigger at all
    no_sysrq = set() if Path("/proc/sysrq-trigger").exists() else strerror(errno.ENOENT)
    bad += refused(res, ["sysrq-trigger open"], REFUSED_WRITE | no_sysrq)
    assert not bad, f"not refused: {bad}\n{r.stdout}{r.stderr}"


def test_A2_no_setuid_or_setgid_files(sandbox):
    r = sandbox.run(["hostile", "setuid", "/data/allowed"])
    res = results(r.stdout)
    assert res.get("copy") == "ok", r.stdout + r.stderr
    allowed = sandbox.dir / "data/allowed"
    with_bits = {p.name: oct(p.stat().st_mode & 0o7777) for p in allowed.iterdir()
                 if p.stat().st_mode & (stat.S_ISUID | stat.S_ISGID)}
    assert not with_bits, f"host files with set-id bits: {with_bits}\n{r.stdout}"
    bad = refused(res, ["chmod 04755", "chmod 02755", "chmod 06755", "fchmodat 04755",
                        "fchmod 04755"], strerror(errno.EPERM))
    assert not bad, f"not refused: {bad}\n{r.stdout}"


def test_A3_host_device_nodes(sandbox):
    devs = ["/dev/null", "/dev/zero"]
    before = {d: os.stat(d) for d in devs}
    try:
        r = sandbox.run(["hostile", "devnodes"])
        after = {d: os.stat(d) for d in devs}
    finally:
        for d, st in before.items():
            now = os.stat(d)
            if (now.st_mode, now.st_uid, now.st_gid) != (st.st_mode, st.st_uid, st.st_gid):
                os.chmod(d, stat.S_IMODE(st.st_mode))
                os.chown(d, st.st_uid, st.st_gid)
    for d in devs:
        b, a = before[d], after[d]
        assert (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid), d
        assert a.st_ctime_ns == b.st_ctime_ns, \
            f"host {d} inode was changed by the app (ctime moved)\n{r.stdout}"
    res = results(r.stdout)
    bad = refused(res, [f"chmod {d}" for d in devs], REFUSED_WRITE)
    # chown answers 0 without running, as Gramine's emulation (docs/security.md "Emulated
    # without effect"): the host inode checks above are what counts
    bad += refused(res, [f"chown {d}" for d in devs], REFUSED_WRITE | {"ok"})
    assert not bad, f"not refused: {bad}\n{r.stdout}{r.stderr}"


def host_cgroup_dirs():
    """(mount point, this process's cgroup path) of every cgroup hierarchy on the host."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _, opts = post.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((pre.split()[4], fstype, set(opts.split(","))))
    out = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for point, fstype, opts in mounts:
            if (fstype == "cgroup2") == (ctrls == "") and \
                    (fstype == "cgroup2" or ctrls.split(",")[0] in opts):
                out.append((point, path))
    return out


def test_A4_host_cgroups_and_fusectl(sandbox, fusectl):
    name = f"moat-attack-{secrets.token_hex(4)}"
    candidates = [Path(point + (path if path != "/" else "")) / name
                  for point, path in host_cgroup_dirs()]
    try:
        r = sandbox.run(["hostile", "cgroup", name])
        created = [str(c) for c in candidates if c.exists()]
    finally:
        for c in candidates:
            if c.exists():
                c.rmdir()
    res = results(r.stdout)
    assert not created, f"cgroups created on the host: {created}"
    assert res.get("cgroup before") == res.get("cgroup after"), \
        f"the app moved itself to another cgroup:\n{r.stdout}"
    names = [n for n in res if n.startswith(("join root", "join parent", "mkdir", "open /sys"))]
    assert any(n.startswith("join root") for n in names), r.stdout + r.stderr
    assert any(n.startswith("open /sys/fs/fuse") for n in names), r.stdout + r.stderr
    bad = refused(res, names, REFUSED_WRITE)
    assert not bad, f"not refused: {bad}\n{r.stdout}"


def test_A5_stdin_reopened_for_writing(sandbox):
    f = sandbox.dir / "stdin.txt"
    f.write_text("original\n")
    f.chmod(0o644)
    sandbox.chown(f)
    before = f.stat()
    with open(f, "rb") as stdin:
        r = sandbox.run(["hostile", "stdinw"], stdin=stdin)
    after = f.stat()
    res = results(r.stdout)
    assert f.read_text() == "original\n", f"host file written through fd 0:\n{r.stdout}"
    assert after.st_mtime_ns == before.st_mtime_ns
    assert res.get("stdin flags") == "0", r.stdout + r.stderr  # the app was given O_RDONLY
    bad = refused(res, ["reopen O_WRONLY", "reopen O_RDWR"],
                  strerror(errno.EACCES, errno.EPERM, errno.EROFS, errno.ENXIO))
    bad += refused(res, ["write fd 0"], strerror(errno.EBADF))
    assert not bad, f"not refused: {bad}\n{r.stdout}"


# ---------------------------------------------------------------------------------------------
# B. the sandbox's init

def test_B1_init_leaks_nothing(sandbox):
    marker = f"marker-{secrets.token_hex(6)}"
    secret = f"s3cr3t-{secrets.token_hex(6)}"
    r = sandbox.run(["hostile", "proc1"], marker, env={"MOAT_ATTACK_SECRET": secret})
    assert r.returncode == 0 and "status: =" in r.stdout, r.stdout + r.stderr
    res = results(r.stdout)
    leaks = [what for what, s in (("host secret (environment)", secret),
                                  ("discarded host argument", marker)) if s in r.stdout]
    fds = {n: v for n, v in res.items() if n.startswith("fd1 ")}
    opened = [n for n, v in fds.items() if v == "ok" and n.split()[1] not in ("0", "1", "2")]
    mem = refused(res, ["mem O_RDWR", "mem O_WRONLY"], strerror(errno.EACCES, errno.EPERM))
    lines = r.stdout.splitlines()
    filt = [want for want in ("pid1 Seccomp:\t2", "pid1 NoNewPrivs:\t1") if want not in lines]
    assert not (leaks or opened or mem or filt), (
        f"leaked: {leaks}; init fds opened: {opened}; /proc/1/mem: {mem}; "
        f"init status lacks {filt}\n{r.stdout}")


def start_time(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def host_fuse_mounts():
    return {l for l in Path("/proc/self/mountinfo").read_text().splitlines()
            if " - fuse" in l or "moat" in l}


def test_B2_kill_leaves_nothing(sandbox, fusectl):
    mounts_before = host_fuse_mounts()
    p = sandbox.popen(["hostile", "survive"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    out = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line or line == "sleeping\n":
            break
        out.append(line)
    assert line == "sleeping\n", "".join(out) + p.stderr.read()
    time.sleep(0.3)  # the daemon's double fork
    sandbox_pids = {pid: start_time(pid) for pid in descendants(p.pid)}
    conns = {l.split(": ", 1)[1] for l in out if l.startswith("fuse conn: ")}
    assert len(sandbox_pids) >= 3, f"init, app and daemon expected: {sandbox_pids}\n{out}"
    p.kill()
    p.wait(timeout=10)
    alive = lambda: [pid for pid, t in sandbox_pids.items() if t and start_time(pid) == t]
    deadline = time.time() + 10
    while time.time() < deadline and alive():
        time.sleep(0.05)
    left = alive()
    for pid in left:  # ours, by PID (same start time): never outlive the test
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and fuse_connections() & conns:
        time.sleep(0.05)
    conns_left = fuse_connections() & conns
    for c in conns_left:
        (FUSECTL / c / "abort").write_text("1")
    mounts_left = host_fuse_mounts() - mounts_before
    assert not left, f"processes left behind: {left}\n{''.join(out)}"
    assert not conns_left, f"FUSE connections left behind: {conns_left}"
    assert not mounts_left, f"mounts left behind on the host: {mounts_left}"
    # the app did try: its own setsid() is EPERM (it leads its process group, as in Gramine:
    # docs/gramine-differences.md), its daemon's (after a fork) succeeds
    assert "setsid: Operation not permitted\n" in out and "daemon: ok\n" in out


# ---------------------------------------------------------------------------------------------
# D. the terminal

def run_on_pty(sandbox, argv, interact=None, timeout=60):
    """Runs moat with a new pseudo-terminal as its controlling terminal and stdin/out/err.
    Returns (exit status, what came out of the master, bytes left unread in the terminal's input
    queue after moat exited)."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ICANON  # input is readable byte by byte (ECHO and ISIG stay on)
    attrs[6][termios.VMIN] = 0
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(slave, termios.TCSANOW, attrs)

    def controlling_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        p = sandbox.popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                          preexec_fn=controlling_tty)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
                if interact:
                    interact(master, out)
            elif p.poll() is not None:
                break
        status = p.wait(timeout=10)
        os.set_blocking(slave, False)
        try:
            pending = os.read(slave, 4096)
        except BlockingIOError:
            pending = b""
        return status, out.decode(errors="replace").replace("\r", ""), pending
    finally:
        os.close(master)
        os.close(slave)


def test_D_tiocsti_and_tioclinux(sandbox):
    status, out, pending = run_on_pty(sandbox, ["hostile", "tty"])
    # an injected "x" is echoed before the app's next line: "xsti: ok"
    res = results("\n".join(line.lstrip("x") for line in out.splitlines()))
    assert status == 0 and "pending" in res, out
    assert pending == b"" and res["pending"] == "0", \
        f"input injected into the terminal: {pending!r}\n{out}"
    bad = refused(res, ["sti", "sti_hi", "tiocl", "tiocl_paste"],
                  strerror(errno.EPERM, errno.EIO))
    assert not bad, f"not refused: {bad}\n{out}"


def test_D_ctrl_c_reaches_the_app(sandbox):
    sent = []

    def interact(master, out):
        if b"waiting" in out and not sent:
            os.write(master, b"\x03")
            sent.append(True)
    status, out, _ = run_on_pty(sandbox, ["hostile", "sigint"], interact)
    assert sent, out
    assert "got SIGINT" in out and status == 0, (status, out)  # status tells who died


# ---------------------------------------------------------------------------------------------
# E. inherited descriptors

def test_E_inherited_fds_are_closed(sandbox):
    target = sandbox.dir / "fd9.txt"
    target.write_text("original\n")
    sandbox.chown(target)
    before = target.stat()
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    w_fd = os.open(target, os.O_WRONLY | os.O_APPEND)

    def fds_7_and_9():  # `moat run hostile 7</ 9>>fd9.txt`, and nothing else of ours
        os.dup2(root_fd, 7)
        os.dup2(w_fd, 9)
        os.closerange(3, 7)
        os.closerange(8, 9)
        os.closerange(10, 65536)

    try:
        sandbox.render(["hostile", "fds"])
        r = subprocess.run(sandbox.command(), cwd=sandbox.dir, env=sandbox.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                           close_fds=False, preexec_fn=fds_7_and_9)
    finally:
        os.close(root_fd)
        os.close(w_fd)
    res = results(r.stdout)
    assert target.read_text() == "original\n", f"host file written through fd 9:\n{r.stdout}"
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert res.get("open fds") == "none", f"descriptors inherited: {res.get('open fds')}"
    bad = refused(res, ["F_GETFD 7", "F_GETFD 9", "write 9"], strerror(errno.EBADF))
    if res.get("openat 7 etc/passwd", "ok") == "ok":
        bad.append("openat 7 etc/passwd: ok (host /etc/passwd through fd 7)")
    assert not bad, f"not refused: {bad}\n{r.stdout}{r.stderr}"


def test_E_stdin_as_host_directory(sandbox):
    root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        r = sandbox.run(["hostile", "fds"], stdin=root_fd)  # `moat run hostile 0</`
    finally:
        os.close(root_fd)
    res = results(r.stdout)
    assert "openat 0 etc/passwd" in res, r.stdout + r.stderr
    bad = [f"{n}: ok" for n in ("openat 0 etc/passwd", "openat 0 ..") if res[n] == "ok"]
    assert not bad, f"host / reachable through fd 0: {bad}\n{r.stdout}"


# ---------------------------------------------------------------------------------------------
# F. seccomp

SECCOMP_EXPECT = {
    "clone NEWUSER|NEWNET": strerror(errno.EPERM),
    "clone3 NEWUSER": strerror(errno.ENOSYS),
    "clone3 plain": strerror(errno.ENOSYS),
    "unshare NEWUSER": strerror(errno.EPERM),
    "setns": strerror(errno.EPERM),
    "mount": strerror(errno.EPERM),
    "ptrace ATTACH 1": strerror(errno.EPERM),
    "keyctl": strerror(errno.EPERM),
    "add_key": strerror(errno.EPERM),
    "bpf": strerror(errno.EPERM),
    "perf_event_open": strerror(errno.EPERM),
    "userfaultfd": strerror(errno.EPERM),
    "kexec_load": strerror(errno.EPERM),
    "open_by_handle_at": strerror(errno.EPERM),
    "init_module": strerror(errno.EPERM),
    "personality PER_BSD": strerror(errno.EPERM),
    "personality query": {"ok"},
    "io_uring_setup": strerror(errno.EPERM, errno.ENOSYS),
}


def test_F_seccomp_and_capabilities(sandbox):
    r = sandbox.run(["hostile", "seccomp"])
    res = results(r.stdout)
    assert r.returncode == 0 and "netlink NETFILTER" in res, r.stdout + r.stderr
    bad = [f"{n}: {res.get(n, '<missing>')}" for n, want in SECCOMP_EXPECT.items()
           if res.get(n) not in want]
    lines = r.stdout.splitlines()
    status = {l.split()[1].rstrip(":"): l.split()[2] for l in lines if l.startswith("self ")}
    for cap in ("CapEff", "CapPrm", "CapBnd"):
        if int(status.get(cap, "1"), 16) != 0:
            bad.append(f"{cap} {status.get(cap)}")
    if status.get("NoNewPrivs") != "1":
        bad.append(f"NoNewPrivs {status.get('NoNewPrivs')}")
    if status.get("Seccomp") != "2":
        bad.append(f"Seccomp {status.get('Seccomp')}")
    print(f"[{sandbox.identity}] netlink NETFILTER: {res['netlink NETFILTER']}; "
          f"personality ADDR_NO_RANDOMIZE: {res.get('personality ADDR_NO_RANDOMIZE')}")
    assert not bad, f"not refused: {bad}\n{r.stdout}"


# Every system call in this list reaches beyond the sandbox (docs/security.md says why for each):
# the profile must refuse it outright.
DENIED = ["mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
          "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns", "kexec_load",
          "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
          "swapoff", "acct", "syslog", "iopl", "ioperm", "quotactl", "bpf", "keyctl", "add_key",
          "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "perf_event_open",
          "open_by_handle_at", "name_to_handle_at", "userfaultfd", "io_uring_setup",
          "io_uring_enter", "io_uring_register", "kcmp", "pidfd_getfd", "sethostname",
          "setdomainname", "settimeofday", "clock_settime", "vhangup", "fanotify_init",
          "lookup_dcookie", "get_mempolicy", "set_mempolicy", "mbind", "move_pages",
          "migrate_pages", "process_madvise", "uselib", "ustat", "sysfs", "nfsservctl"]


def test_F_seccomp_profile_is_listed_and_documented(moat_path):
    """`moat run --print-seccomp` lists the profile: default-deny, none of DENIED allowed, the
    argument rules present, and every refused call named in docs/security.md."""
    out = subprocess.run([str(moat_path), "run", "--print-seccomp"], capture_output=True,
                         text=True, check=True).stdout
    rules = [line.split("\t") for line in out.splitlines() if not line.startswith("#")]
    assert ["default", "EPERM"] in rules
    allowed = {r[0] for r in rules if r[1] == "ALLOW" and len(r) == 2}
    assert {"read", "write", "openat", "clone", "execve", "mmap"} <= allowed
    assert not allowed & set(DENIED), allowed & set(DENIED)
    assert ["clone3", "ENOSYS"] in rules and ["openat2", "ENOSYS"] in rules
    conditional = [(r[0], r[1], r[2]) for r in rules if len(r) == 3]
    assert ("ioctl", "EPERM", "(request & 0xffffffff) == TIOCSTI") in conditional
    assert ("ioctl", "EPERM", "(request & 0xffffffff) == TIOCLINUX") in conditional
    assert any(r[0] == "clone" and r[1] == "EPERM" and "namespaces" in r[2] for r in conditional)
    for call in ("chmod", "fchmod", "fchmodat", "open", "openat", "creat", "mknod", "mknodat"):
        assert any(r[0] == call and "S_ISUID" in r[2] for r in conditional), call
    personas = {r[2] for r in conditional if r[0] == "personality"}
    assert personas and all(p.startswith("persona == ") for p in personas)
    doc = (ROOT / "docs/security.md").read_text()
    for name in DENIED + ["clone3", "openat2", "TIOCSTI", "TIOCLINUX", "personality"]:
        assert f"`{name}`" in doc, f"docs/security.md does not explain {name}"
