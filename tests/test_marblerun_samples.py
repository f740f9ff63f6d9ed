"""MarbleRun's Gramine samples end to end (issue 13): examples/marblerun-{hello,nginx,redis}.

Each test runs the real binaries: `moat coordinator` natively on a SIMULATED attestation platform
(`moat attest init`: Marble quotes are verified for real, docs/coordinator.md), `moat manifest
render` + `moat sign` of the Gramine template, the measured identity put into the MarbleRun
manifest, and the app under `moat run` with moat-premain (copied as `premain-libos`) as its
`libos.entrypoint` (../shared/reference/marblerun.md §4.2, §5). The flows are the examples'
Makefiles (`make check`); the checks that need the Coordinator's API or a second run drive the
same built directories from here.

Upstream's templates and manifests (../shared/testdata/marblerun-manifests) run unchanged
through the same Makefiles (TEMPLATE=, MANIFEST=): only the package identity is filled in
(UniqueID for the placeholder; for redis also the SignerID, since upstream's is Edgeless' key).
Those tests skip without ../shared.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, moat_binary

UPSTREAM = "marblerun-manifests"
STARTED = re.compile(r"Coordinator started: client API on \S+ \(port (\d+)\), Marble API on \S+ "
                     r"\(port (\d+)\)")


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def premain():
    """moat-premain of the build under test (next to moat: build*/src/premain/)."""
    p = moat_binary().parents[1] / "premain" / "moat-premain"
    if not p.exists():
        pytest.skip(f"{p} is not built (src/premain; make build)")
    return p


def need(*paths):
    for path in paths:
        if not Path(path).exists():
            pytest.skip(f"{path} is not installed (scripts/install-deps installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample(tmp_path, name):
    """A copy of examples/<name> and the shared examples/marblerun-common (the Makefiles include
    ../marblerun-common/marble.mk)."""
    shutil.copytree(ROOT / "examples" / "marblerun-common", tmp_path / "marblerun-common")
    work = tmp_path / name
    shutil.copytree(ROOT / "examples" / name, work)
    return work


def make(work, premain, *args, timeout=600):
    r = subprocess.run(["make", "-C", str(work), f"MOAT={moat_binary()}", f"PREMAIN={premain}",
                        *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-6000:]
    return r.stdout


def measurement(work, stem):
    """mr_enclave and mr_signer of the sample's SIGSTRUCT, as the Makefile put them."""
    r = subprocess.run([str(moat_binary()), "sigstruct-view", "-f", "json", f"{stem}.sig"],
                       cwd=work, capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


class Coordinator:
    """`moat coordinator` on free ports with the sample's simulated platform, stopped by PID."""

    def __init__(self, work):
        self.sim = work / "coordinator" / "sim"
        if not (self.sim / "root_ca.pem").exists():
            subprocess.run([str(moat_binary()), "attest", "init", "--dir", str(self.sim)],
                           check=True, capture_output=True)
        self.log = work / f"coordinator-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(moat_binary()), "coordinator", "--client-addr", "127.0.0.1:0",
                 "--mesh-addr", "127.0.0.1:0", "--no-seal"], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, env=dict(os.environ, MOAT_SIM_DIR=str(self.sim)))
        deadline = time.monotonic() + 60
        while not (m := STARTED.search(self.text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the Coordinator did not start:\n{self.text()}")
            time.sleep(0.05)
        self.client, self.mesh = int(m.group(1)), int(m.group(2))

    def text(self):
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)

    def curl(self, path, *args):
        r = subprocess.run(["curl", "-sk", *args, f"https://127.0.0.1:{self.client}{path}"],
                           capture_output=True, text=True, timeout=60, check=True)
        return json.loads(r.stdout)

    def set_manifest(self, manifest: dict):
        raw = json.dumps(manifest).encode()
        r = self.curl("/api/v2/manifest", "--data",
                      json.dumps({"manifest": base64.b64encode(raw).decode()}))
        assert r["status"] == "success", r

    def marble_root(self):
        """The Marble root certificate: the Marble API presents it, and it (the intermediate's
        key) signs Marble and secret certificates (marblerun.md §3.3)."""
        return ssl.get_server_certificate(("127.0.0.1", self.mesh))


@pytest.fixture
def coordinators():
    started = []
    yield started
    for c in started:
        c.stop()


def marble_env(coord, marble_type):
    return dict(os.environ, MOAT_SIM_DIR=str(coord.sim), EDG_MARBLE_TYPE=marble_type,
                EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{coord.mesh}",
                EDG_MARBLE_UUID_FILE="uuid", EDG_MARBLE_DNS_NAMES="localhost")


def run_marble(work, stem, coord, marble_type):
    return subprocess.run([str(moat_binary()), "run", stem], cwd=work,
                          env=marble_env(coord, marble_type), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def measured_manifest(work):
    return json.loads((work / "manifest.measured.json").read_text())


def wait_for(fn, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (OSError, ssl.SSLError, subprocess.CalledProcessError):
            if proc.poll() is not None:
                raise AssertionError(f"{what} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not answer within {timeout} s")
            time.sleep(0.1)


def terminate(proc):
    """SIGTERM by PID (the templates set sys.enable_sigterm_injection) and wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


HELLO_LINES = ["argv[0]: ./hello", "argv[1]: Hello World from MarbleRun!",
               "HELLO_WORLD: Hello World from MarbleRun!", "Marble certificate: provisioned"]


# ---------------------------------------------------------------------------------------------
# hello: provisioned Env and Argv (marblerun.md §4.2 step 8, §5 step 5)


def test_hello_make_check(tmp_path, premain):
    work = sample(tmp_path, "marblerun-hello")
    out = make(work, premain, "check")
    assert "marblerun-hello: ok" in out
    # what the app printed: the manifest's Argv (not loader.argv's "hello") and Env
    assert (work / "OUTPUT").read_text().splitlines() == HELLO_LINES
    # the measurement that `moat sign` printed is the UniqueID the Coordinator was given
    mr = measurement(work, "hello")["mr_enclave"]
    assert re.search(rf"Measurement:\n\s+{mr}\n", out)
    assert measured_manifest(work)["Packages"]["world"]["UniqueID"] == mr
    # the quote was verified against the simulated platform, not waved through in simulation
    log = (work / "coordinator" / "LOG").read_text()
    assert "Marble quotes are verified against the SIMULATED platform" in log
    assert "Successfully activated new Marble: MarbleType=hello" in log
    assert "simulation mode" not in (work / "LOG.marble").read_text()
    # the UUID file the premain made (Go's canonical text form, no newline)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        (work / "uuid").read_text())


def test_hello_upstream_files(tmp_path, premain, shared):
    """Upstream's gramine-hello template and manifest unchanged; the Makefile fills in the
    UniqueID placeholder, as upstream's README asks the user to."""
    up = shared / UPSTREAM / "gramine-hello"
    work = sample(tmp_path, "marblerun-hello")
    out = make(work, premain, f"TEMPLATE={up / 'hello.manifest.template'}",
               f"MANIFEST={up / 'manifest.json'}", "check")
    assert "marblerun-hello: ok" in out
    assert (work / "OUTPUT").read_text().splitlines() == HELLO_LINES
    original = json.loads((up / "manifest.json").read_text())
    assert original["Packages"]["world"]["UniqueID"].startswith("<replace with mrenclave")
    filled = measured_manifest(work)
    assert filled["Packages"]["world"]["UniqueID"] == measurement(work, "hello")["mr_enclave"]
    filled["Packages"]["world"]["UniqueID"] = original["Packages"]["world"]["UniqueID"]
    assert filled == original  # nothing else changed


def test_hello_changed_binary_is_refused(tmp_path, premain, coordinators):
    """A new build of the app is a new measurement: the Coordinator refuses it with MarbleRun's
    message (marblerun.md §4.4; seed 001 "PackageProperties not compliant")."""
    work = sample(tmp_path, "marblerun-hello")
    make(work, premain, "all")
    old = measurement(work, "hello")["mr_enclave"]
    coord = Coordinator(work)
    coordinators.append(coord)
    coord.set_manifest(measured_manifest(work))
    # the build the manifest names runs
    r = run_marble(work, "hello", coord, "hello")
    assert r.returncode == 0 and r.stdout.splitlines() == HELLO_LINES, r.stderr
    # a changed app, rendered and signed again, keeps the manifest of before
    hello_c = work / "hello.c"
    hello_c.write_text(hello_c.read_text().replace("Marble certificate", "Marble cert"))
    make(work, premain, "hello.manifest.sgx")
    new = measurement(work, "hello")["mr_enclave"]
    assert new != old
    r = run_marble(work, "hello", coord, "hello")
    assert r.returncode != 0
    assert ("rpc error: code = PermissionDenied desc = marble verification failed: invalid "
            "quote: PackageProperties not compliant:\n"
            f'expected: {{Debug: true, UniqueID: "{old}"}}\n'
            f'got: {{Debug: true, UniqueID: "{new}"') in r.stderr, r.stderr
    assert "HELLO_WORLD" not in r.stdout  # the app never ran


def test_hello_before_the_manifest_is_set(tmp_path, premain, coordinators):
    """seed 001: activation before the manifest is set."""
    work = sample(tmp_path, "marblerun-hello")
    make(work, premain, "all")
    coord = Coordinator(work)
    coordinators.append(coord)
    r = run_marble(work, "hello", coord, "hello")
    assert r.returncode != 0
    assert ("rpc error: code = FailedPrecondition desc = cannot accept marbles in current state"
            in r.stderr), r.stderr
    assert "HELLO_WORLD" not in r.stdout


def test_hello_max_activations(tmp_path, premain, coordinators):
    """A manifest variant with MaxActivations = 1: the second activation (the same Marble
    again, same UUID: every activation counts, marblerun.md §4.3) is refused."""
    work = sample(tmp_path, "marblerun-hello")
    make(work, premain, "all")
    manifest = measured_manifest(work)
    manifest["Marbles"]["hello"]["MaxActivations"] = 1
    coord = Coordinator(work)
    coordinators.append(coord)
    coord.set_manifest(manifest)
    r = run_marble(work, "hello", coord, "hello")
    assert r.returncode == 0 and r.stdout.splitlines() == HELLO_LINES, r.stderr
    uid = (work / "uuid").read_text()
    r = run_marble(work, "hello", coord, "hello")
    assert r.returncode != 0
    assert 'reached max activations count (1) for marble type "hello"' in r.stderr, r.stderr
    assert "HELLO_WORLD" not in r.stdout
    assert (work / "uuid").read_text() == uid


def test_hello_as_an_ordinary_user(premain, coordinators, request):
    """moat run by an ordinary user (nobody): the premain writes its UUID file into the host
    directory (an allowed file) and activates as it does for root."""
    if os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists():
        pytest.skip("run by root and, through setpriv, by an ordinary user")
    request.getfixturevalue("fuse_for_users")
    # not below pytest's base directory, which is root's (0700)
    base = Path(tempfile.mkdtemp(prefix="moat-test-"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    work = sample(base, "marblerun-hello")
    make(work, premain, "all")
    coord = Coordinator(work)
    coordinators.append(coord)
    coord.set_manifest(measured_manifest(work))
    for p in [base, *base.rglob("*")]:
        os.lchown(p, 65534, 65534)
    env = marble_env(coord, "hello")
    env.update(HOME=str(base), XDG_CACHE_HOME=str(base / "cache"))
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        str(moat_binary()), "run", "hello"], cwd=work, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.splitlines() == HELLO_LINES, r.stderr
    assert (work / "uuid").stat().st_uid == 65534


# ---------------------------------------------------------------------------------------------
# nginx: HTTPS with the provisioned certificate, its key encrypted on the host


def test_nginx_make_check(tmp_path, premain):
    need("/usr/sbin/nginx", "/usr/bin/curl", "/usr/bin/openssl")
    work = sample(tmp_path, "marblerun-nginx")
    out = make(work, premain, f"PORT={free_port()}", "check")
    assert "marblerun-nginx: ok" in out
    assert "Hello from nginx, a MarbleRun Marble under moat" in (work / "OUTPUT").read_text()
    key = (work / "secrets" / "server.key").read_bytes()
    assert key[:8] == b"GRAFS_PF" and b"PRIVATE KEY" not in key


def test_nginx_upstream_files(tmp_path, premain, shared):
    """Upstream's gramine-nginx template (install_dir, arch_libdir, whole library directories
    as trusted files) and manifest unchanged, with Debian's nginx (README.md)."""
    need("/usr/sbin/nginx", "/usr/bin/curl", "/usr/bin/openssl")
    up = shared / UPSTREAM / "gramine-nginx"
    work = sample(tmp_path, "marblerun-nginx")
    out = make(work, premain, f"TEMPLATE={up / 'nginx.manifest.template'}",
               f"MANIFEST={up / 'manifest.json'}", f"PORT={free_port()}", "check")
    assert "marblerun-nginx: ok" in out
    assert "Hello from nginx" in (work / "OUTPUT").read_text()
    assert (work / "secrets" / "server.key").read_bytes()[:8] == b"GRAFS_PF"


def openssl_user(d: Path):
    key, crt = d / "admin.key", d / "admin.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=admin",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def pem(kind, der_b64):
    body = base64.encodebytes(base64.b64decode(der_b64)).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def test_nginx_serves_the_provisioned_certificate_and_its_key_is_encrypted(
        tmp_path, premain, coordinators):
    """A variant of the sample's manifest whose secrets are Shared and readable by a user
    (marblerun.md §1.3, §1.4), so the test can compare: the certificate nginx serves is the
    Coordinator's ServerCert; secrets/server.key on the host is a Gramine encrypted file without
    the PEM, and `moat pf decrypt` with the Coordinator's ProtectedFilesKey gives back exactly
    the provisioned key (docs/encrypted-files.md; /dev/attestation/keys/default written first)."""
    need("/usr/sbin/nginx", "/usr/bin/curl", "/usr/bin/openssl")
    port = free_port()
    work = sample(tmp_path, "marblerun-nginx")
    make(work, premain, f"PORT={port}", "all")
    crt, key = openssl_user(tmp_path)
    manifest = measured_manifest(work)
    for s in manifest["Secrets"].values():
        s["Shared"] = True
    manifest["Users"] = {"admin": {"Certificate": crt.read_text(), "Roles": ["reader"]}}
    manifest["Roles"] = {"reader": {"ResourceType": "Secrets", "Actions": ["ReadSecret"],
                                    "ResourceNames": ["ServerCert", "ProtectedFilesKey"]}}
    coord = Coordinator(work)
    coordinators.append(coord)
    coord.set_manifest(manifest)
    secrets = coord.curl("/api/v2/secrets?s=ServerCert&s=ProtectedFilesKey", "--cert", str(crt),
                         "--key", str(key))["data"]["secrets"]
    (tmp_path / "marble-root.pem").write_text(coord.marble_root())

    nginx = subprocess.Popen([str(moat_binary()), "run", "nginx"], cwd=work,
                             env=marble_env(coord, "frontend"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        served = wait_for(lambda: ssl.get_server_certificate(("127.0.0.1", port)), nginx,
                          "nginx")
        page = subprocess.run(["curl", "-sS", "--cacert", str(tmp_path / "marble-root.pem"),
                               f"https://localhost:{port}/"], capture_output=True, text=True,
                              timeout=60)
        assert "a MarbleRun Marble under moat" in page.stdout, page.stderr
    finally:
        terminate(nginx)
    out = nginx.stdout.read().decode(errors="replace")
    assert "[PreMain] done: 3 files" in out, out

    assert ssl.PEM_cert_to_DER_cert(served) == base64.b64decode(secrets["ServerCert"]["Cert"])
    # on the host: encrypted files, no PEM
    for name in ("server.crt", "server.key"):
        data = (work / "secrets" / name).read_bytes()
        assert data[:8] == b"GRAFS_PF", name
        assert b"-----BEGIN" not in data, name
    # the provisioned key opens them: the Coordinator's ProtectedFilesKey (raw, 16 bytes)
    wrap = tmp_path / "wrap.key"
    wrap.write_bytes(base64.b64decode(secrets["ProtectedFilesKey"]["Private"]))
    assert len(wrap.read_bytes()) == 16
    for name, expect in (("server.key", pem("PRIVATE KEY", secrets["ServerCert"]["Private"])),
                         ("server.crt", pem("CERTIFICATE", secrets["ServerCert"]["Cert"]))):
        out = tmp_path / f"{name}.plain"
        subprocess.run([str(moat_binary()), "pf", "decrypt", "-w", str(wrap), "-i",
                        f"secrets/{name}", "-o", str(out)], cwd=work, check=True,
                       capture_output=True)
        assert out.read_text() == expect, name
    # and another key does not
    bad = tmp_path / "bad.key"
    bad.write_bytes(bytes(16))
    r = subprocess.run([str(moat_binary()), "pf", "decrypt", "-w", str(bad), "-i",
                        "secrets/server.key", "-o", str(tmp_path / "x")], cwd=work,
                       capture_output=True, text=True)
    assert r.returncode != 0


# ---------------------------------------------------------------------------------------------
# redis: main and replica talk TLS with their Marble certificates


def test_redis_make_check(tmp_path, premain):
    need("/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/openssl")
    work = sample(tmp_path, "marblerun-redis")
    main, replica = free_port(), free_port()
    out = make(work, premain, f"MAIN_PORT={main}", f"REPLICA_PORT={replica}", "check")
    assert "marblerun-redis: ok" in out
    assert "the replica has: hello from the main" in out
    assert "master_link_status:up" in out
    # the package is identified by signer, product and security version (manifest.json)
    ident = measurement(work, "redis-server")
    pkg = measured_manifest(work)["Packages"]["redis-package"]
    assert pkg["SignerID"] == ident["mr_signer"] and "UniqueID" not in pkg
    assert (pkg["ProductID"], pkg["SecurityVersion"]) == (13, 1) == (ident["isv_prod_id"],
                                                                      ident["isv_svn"])
    # two Marbles, two UUIDs; their files encrypted on the host
    uuids = {(work / d / "uuid").read_text() for d in ("run-main", "run-replica")}
    assert len(uuids) == 2
    for d in ("run-main", "run-replica"):
        for name in ("redis.conf", "redis.crt", "redis.key", "ca.crt"):
            data = (work / d / "redis-data" / name).read_bytes()
            assert data[:8] == b"GRAFS_PF" and b"-----BEGIN" not in data, f"{d}/{name}"


def test_redis_marble_certificates(tmp_path, premain, coordinators):
    """The certificate redis-main serves over TLS is its Marble certificate: CN = its UUID,
    MarbleRun's marble-type extension (OID 1.3.9903.2.1, the raw type), issued with the
    Marble root (marblerun.md §3.3)."""
    need("/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/openssl")
    x509 = pytest.importorskip("cryptography.x509")
    main = free_port()
    work = sample(tmp_path, "marblerun-redis")
    make(work, premain, f"MAIN_PORT={main}", "all", "manifest.ports.json")
    run = work / "run-main"
    (run / "redis-data").mkdir(parents=True)
    for f in ("redis-server", "premain-libos", "redis-server.manifest.sgx", "redis-server.sig"):
        shutil.copy2(work / f, run / f)
    coord = Coordinator(work)
    coordinators.append(coord)
    coord.set_manifest(json.loads((work / "manifest.ports.json").read_text()))
    root = x509.load_pem_x509_certificate(coord.marble_root().encode())
    redis = subprocess.Popen([str(moat_binary()), "run", "redis-server"], cwd=run,
                             env=marble_env(coord, "redis-main"), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        served = wait_for(lambda: ssl.get_server_certificate(("127.0.0.1", main)), redis,
                          "redis-server")
        (tmp_path / "marble-root.pem").write_text(coord.marble_root())
        cli = subprocess.run(["redis-cli", "--tls", "--cacert", str(tmp_path / "marble-root.pem"),
                              "-p", str(main), "ping"], capture_output=True, text=True,
                             timeout=60)
        assert cli.stdout.strip() == "PONG", cli.stderr
    finally:
        terminate(redis)
    assert redis.returncode == 0  # redis-server shut down on the injected SIGTERM
    cert = x509.load_pem_x509_certificate(served.encode())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == (run / "uuid").read_text()
    assert cert.issuer == root.subject
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.9903.2.1"))
    assert ext.value.value == b"redis-main"


def test_redis_signer_identity(tmp_path, premain, coordinators):
    """SignerID + ProductID + SecurityVersion (marblerun.md §4.4): another build signed with the
    same key is accepted without a new manifest; the same build signed with another key is
    refused."""
    need("/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/openssl")
    main = free_port()
    work = sample(tmp_path, "marblerun-redis")
    make(work, premain, f"MAIN_PORT={main}", "all", "manifest.ports.json")
    first = measurement(work, "redis-server")
    coord = Coordinator(work)
    coordinators.append(coord)
    coord.set_manifest(json.loads((work / "manifest.ports.json").read_text()))

    def start_main(name):
        run = work / name
        (run / "redis-data").mkdir(parents=True)
        for f in ("redis-server", "premain-libos", "redis-server.manifest.sgx",
                  "redis-server.sig"):
            shutil.copy2(work / f, run / f)
        return subprocess.run(
            ["timeout", "-s", "TERM", "60", str(moat_binary()), "run", "redis-server"], cwd=run,
            env=marble_env(coord, "redis-main"), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=120)

    # another build (here: another log level in the template), the same key
    (work / "redis-server.manifest").unlink()
    make(work, premain, f"MAIN_PORT={main}", "LOG_LEVEL=warning", "redis-server.manifest.sgx")
    second = measurement(work, "redis-server")
    assert second["mr_enclave"] != first["mr_enclave"]
    assert second["mr_signer"] == first["mr_signer"]
    (work / "redis-data").mkdir()
    proc = subprocess.Popen([str(moat_binary()), "run", "redis-server"], cwd=work,
                            env=marble_env(coord, "redis-main"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: ssl.get_server_certificate(("127.0.0.1", main)), proc, "redis-server")
    finally:
        terminate(proc)
    assert "Successfully activated new Marble: MarbleType=redis-main" in coord.text()
    # the same build, signed with another key
    (work / "enclave-key.pem").unlink()
    make(work, premain, f"MAIN_PORT={main}", "LOG_LEVEL=warning", "redis-server.manifest.sgx")
    assert measurement(work, "redis-server")["mr_signer"] != first["mr_signer"]
    r = start_main("run-other-key")
    assert r.returncode != 0
    assert "PackageProperties not compliant" in r.stderr, r.stderr
    assert f'SignerID: "{first["mr_signer"]}"' in r.stderr, r.stderr


@pytest.mark.skipif(not Path("/usr/bin/redis-server").exists(), reason="redis-server missing")
def test_redis_upstream_files(tmp_path, premain, shared):
    """Upstream's gramine-redis template and manifest: the main Marble (its redis.conf says
    tls-port 6379). Upstream's replica also listens on 6379 and finds its main as
    redis-main.redis (a Kubernetes name), so on one host without a network namespace only the
    main can run; the SignerID is replaced by this build's signer (upstream's is Edgeless')."""
    need("/usr/bin/redis-cli", "/usr/bin/openssl")
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 6379)) == 0:
            pytest.skip("port 6379 (upstream's tls-port) is in use")
    up = shared / UPSTREAM / "gramine-redis"
    work = sample(tmp_path, "marblerun-redis")
    out = make(work, premain, f"TEMPLATE={up / 'redis-server.manifest.template'}",
               f"MANIFEST={up / 'manifest.json'}", "check-main")
    assert "redis-main: PONG over TLS on port 6379" in out
    assert "marblerun-redis (main): ok" in out
    original = json.loads((up / "manifest.json").read_text())
    filled = json.loads((work / "manifest.ports.json").read_text())
    assert filled["Packages"]["redis-package"]["SignerID"] == \
        measurement(work, "redis-server")["mr_signer"]
    filled["Packages"]["redis-package"]["SignerID"] = \
        original["Packages"]["redis-package"]["SignerID"]
    assert filled == original  # nothing else changed
