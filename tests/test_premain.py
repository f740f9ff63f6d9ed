"""The Marble premain in both forms (issue 13; ../shared/reference/marblerun.md §4.2, §5; seeds
000-002): `moat-premain`, the executable used as Gramine's libos.entrypoint, and
`libmoat-premain.so`, the LD_PRELOAD library, against a real `moat coordinator`.

Natively (no /dev/attestation) the premain sends an empty quote, which only a Coordinator in
MarbleRun's simulation mode (OE_SIMULATION=1) accepts. Under `moat run` it quotes through
/dev/attestation with the SIMULATED platform and the Coordinator verifies the quote for real
(measurement, debug flag, report data bound to the Marble's certificate).
"""
import json
import os
import re
import stat
import subprocess
import uuid as uuidlib
from pathlib import Path

import pytest

from conftest import build_app

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from test_coordinator import Coordinator
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-cryptography missing: {e}", allow_module_level=True)


@pytest.fixture(scope="module")
def premain(build_dir):
    exe = build_dir / "src" / "premain" / "moat-premain"
    lib = build_dir / "src" / "premain" / "libmoat-premain.so"
    assert exe.exists() and lib.exists(), f"the premain is not built in {build_dir}"
    return exe, lib


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return build_app(tmp_path_factory, "marble_app")


@pytest.fixture
def coordinator(moat_path, sim, tmp_path):
    """coordinator(manifest=None, simulation=False) -> a Coordinator, killed by PID at the end."""
    started = []

    def run(manifest=None, simulation=False):
        env = {"OE_SIMULATION": "1"} if simulation else {}
        c = Coordinator(moat_path, tmp_path, tmp_path / f"seal{len(started)}", sim, env=env)
        started.append(c)
        if manifest is not None:
            c.set_manifest(json.dumps(manifest).encode())  # asserts that it was set
        return c

    yield run
    for c in started:
        c.kill()


def marble_manifest(params, unique_id=None, debug=True, max_activations=None, secrets=None,
                    package=None):
    pkg = package or {"Debug": debug}
    if unique_id:
        pkg["UniqueID"] = unique_id
    marble = {"Package": "pkg", "Parameters": params}
    if max_activations:
        marble["MaxActivations"] = max_activations
    m = {"Packages": {"pkg": pkg}, "Marbles": {"hello": marble}}
    if secrets:
        m["Secrets"] = secrets
    return m


HELLO = {
    "Env": {"HELLO_WORLD": "Hello World from MarbleRun!"},
    "Argv": ["./hello", "Hello World from MarbleRun!"],
}


def premain_env(c, mtype="hello", **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EDG_MARBLE_TYPE": mtype,
           "EDG_MARBLE_COORDINATOR_ADDR": f"127.0.0.1:{c.mesh}"}
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_exe(premain, app, cwd, env, timeout=60):
    """moat-premain with argv[0] = the app, as Gramine's loader.argv makes it"""
    return subprocess.run([str(app)], executable=str(premain[0]), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_preload(premain, app, cwd, env, *args, timeout=60):
    return subprocess.run([str(app), *args], cwd=cwd, env=dict(env, LD_PRELOAD=str(premain[1])),
                          capture_output=True, text=True, timeout=timeout)


def cert_cn(pem_text):
    cert = x509.load_pem_x509_certificate(pem_text.encode())
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


# ---------------------------------------------------------------------------------------------
# Natively, against a Coordinator in simulation mode


def test_exe_activates_and_execs_the_app(premain, app, coordinator, tmp_path):
    out = tmp_path / "out"
    params = dict(HELLO, Files={
        str(out / "sub" / "dir" / "cert.pem"): "{{ pem .MarbleRun.MarbleCert.Cert }}",
        str(out / "key"): "{{ hex .Secrets.k }}",
    })
    c = coordinator(marble_manifest(params, secrets={"k": {"Type": "symmetric-key", "Size": 128}}),
                    simulation=True)
    env = premain_env(c, MARBLE_APP_FILES=str(out / "key"))
    r = run_exe(premain, app, tmp_path, env)
    assert r.returncode == 0, r.stderr
    # the app runs with the manifest's Argv and Env, after the files were written
    assert "argv[0]=./hello\nargv[1]=Hello World from MarbleRun!\n" in r.stdout
    assert "env HELLO_WORLD=Hello World from MarbleRun!" in r.stdout
    assert "env MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN=(long)" in r.stdout
    assert "[PreMain] failed to get quote" in r.stderr and "simulation mode" in r.stderr
    key = (out / "key").read_text()
    assert len(key) == 32 and f"file {out / 'key'}={key} (32 bytes)" in r.stdout
    # mkdir -p 0700, files 0600
    for d in (out, out / "sub", out / "sub" / "dir"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in (out / "key", out / "sub" / "dir" / "cert.pem"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # the UUID file: created 0600 in the working directory, the certificate's CN
    uid = (tmp_path / "uuid").read_text()
    assert str(uuidlib.UUID(uid)) == uid and stat.S_IMODE((tmp_path / "uuid").stat().st_mode) == 0o600
    assert cert_cn((out / "sub" / "dir" / "cert.pem").read_text()) == uid
    # a restart keeps the identity: same UUID, same per-marble key
    r = run_exe(premain, app, tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "uuid").read_text() == uid and (out / "key").read_text() == key
    assert cert_cn((out / "sub" / "dir" / "cert.pem").read_text()) == uid


def test_exe_default_argv_and_uuid_file_variable(premain, app, coordinator, tmp_path):
    c = coordinator(marble_manifest({"Env": {"HELLO_WORLD": "x"}}), simulation=True)
    (tmp_path / "ids").mkdir()
    r = run_exe(premain, app, tmp_path, premain_env(c, EDG_MARBLE_UUID_FILE=str(tmp_path / "ids" / "u")))
    assert r.returncode == 0, r.stderr
    assert "argv[0]=./marble\n" in r.stdout and "argv[1]" not in r.stdout  # MarbleRun's default
    uuidlib.UUID((tmp_path / "ids" / "u").read_text())
    assert not (tmp_path / "uuid").exists()


@pytest.mark.parametrize("form", ["upper", "urn", "braces", "hex"])
def test_uuid_file_forms_go_accepts(premain, app, coordinator, tmp_path, form):
    u = uuidlib.uuid4()
    text = {"upper": str(u).upper(), "urn": u.urn, "braces": "{" + str(u) + "}", "hex": u.hex}[form]
    (tmp_path / "uuid").write_text(text)
    params = dict(HELLO, Files={str(tmp_path / "cert.pem"): "{{ pem .MarbleRun.MarbleCert.Cert }}"})
    c = coordinator(marble_manifest(params), simulation=True)
    r = run_exe(premain, app, tmp_path, premain_env(c))
    assert r.returncode == 0, r.stderr
    assert cert_cn((tmp_path / "cert.pem").read_text()) == str(u)
    assert (tmp_path / "uuid").read_text() == text  # left as it was


@pytest.mark.parametrize("text,why", [(None, "invalid UUID length: 37"),
                                      ("not-a-uuid", "invalid UUID length: 10"),
                                      ("", "invalid UUID length: 0")])
def test_uuid_file_refused(premain, app, coordinator, tmp_path, text, why):
    (tmp_path / "uuid").write_text(str(uuidlib.uuid4()) + "\n" if text is None else text)
    c = coordinator(marble_manifest(HELLO), simulation=True)
    r = run_exe(premain, app, tmp_path, premain_env(c))
    assert r.returncode == 2 and f"panic: {tmp_path / 'uuid'}: {why}\n" in r.stderr, r.stderr
    assert "argv[0]" not in r.stdout


def test_errors_read_as_marbleruns(premain, app, coordinator, tmp_path):
    c = coordinator()  # no manifest yet
    r = run_exe(premain, app, tmp_path, premain_env(c))
    assert r.returncode == 2 and r.stderr.endswith(
        "panic: rpc error: code = FailedPrecondition desc = cannot accept marbles in current state\n"
    ), r.stderr
    assert r.stdout == ""
    r = run_exe(premain, app, tmp_path, premain_env(c, mtype=None))
    assert r.returncode == 2 and "panic: environment variable not set: EDG_MARBLE_TYPE\n" in r.stderr
    c.set_manifest(json.dumps(marble_manifest(HELLO)).encode())
    r = run_exe(premain, app, tmp_path, premain_env(c, mtype="nope"))
    assert r.returncode == 2 and "panic: rpc error: code = " in r.stderr
    assert "unknown marble type requested" in r.stderr
    r = run_exe(premain, app, tmp_path, premain_env(c, EDG_MARBLE_COORDINATOR_ADDR="127.0.0.1:1"))
    assert r.returncode == 2 and "panic: rpc error: code = Unavailable desc = connection error" in r.stderr
    # argv[0] must name the app, not the premain (it would exec itself forever)
    r = subprocess.run([str(premain[0])], cwd=tmp_path, env=premain_env(c), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "argv[0] must be the app" in r.stderr


def test_pinned_coordinator(premain, app, coordinator, tmp_path):
    """beyond MarbleRun: MOAT_MARBLE_COORDINATOR_CERT pins the Coordinator's key"""
    c = coordinator(marble_manifest(HELLO), simulation=True)
    other = coordinator(marble_manifest(HELLO), simulation=True)
    chain = c.v2("GET", "/quote").json["data"]["cert"]  # intermediate, root (§3.5)
    (tmp_path / "chain.pem").write_text(chain)
    for pin in (str(tmp_path / "chain.pem"), chain):  # a file or the PEM itself
        r = run_exe(premain, app, tmp_path, premain_env(c, MOAT_MARBLE_COORDINATOR_CERT=pin))
        assert r.returncode == 0 and "env HELLO_WORLD=" in r.stdout, r.stderr
    # another Coordinator (an impostor on the network) is refused before it can provision
    r = run_exe(premain, app, tmp_path, premain_env(other, MOAT_MARBLE_COORDINATOR_CERT=chain))
    assert r.returncode == 2 and r.stdout == ""
    assert "panic: rpc error: code = Unavailable desc = connection error: TLS handshake" in r.stderr
    assert "MOAT_MARBLE_COORDINATOR_CERT" in r.stderr, r.stderr
    r = run_exe(premain, app, tmp_path, premain_env(c, MOAT_MARBLE_COORDINATOR_CERT="/nonexistent"))
    assert r.returncode == 2 and "panic: MOAT_MARBLE_COORDINATOR_CERT: " in r.stderr
    r = run_exe(premain, app, tmp_path, premain_env(c, MOAT_MARBLE_COORDINATOR_CERT=str(app)))
    assert r.returncode == 2 and "no PEM certificate in it" in r.stderr


def test_max_activations(premain, app, coordinator, tmp_path):
    c = coordinator(marble_manifest(HELLO, max_activations=1), simulation=True)
    assert run_exe(premain, app, tmp_path, premain_env(c)).returncode == 0
    r = run_exe(premain, app, tmp_path, premain_env(c))
    assert r.returncode == 2, r.stdout
    assert 'reached max activations count (1) for marble type \\"hello\\"' in r.stderr or \
        'reached max activations count (1) for marble type "hello"' in r.stderr, r.stderr


def test_json_logs(premain, app, coordinator, tmp_path):
    c = coordinator(marble_manifest(HELLO), simulation=True)
    r = run_exe(premain, app, tmp_path, premain_env(c, EDG_LOG_FORMAT="json"))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stderr.splitlines()]
    assert lines and all(set(x) >= {"level", "ts", "msg"} for x in lines)
    assert any(x["msg"] == "Not using TTLS" for x in lines)


def test_preload_activates_before_main_and_leaves_no_trace(premain, app, coordinator, tmp_path):
    c = coordinator(marble_manifest(dict(HELLO, Files={str(tmp_path / "f"): "provisioned"})),
                    simulation=True)
    r = run_preload(premain, app, tmp_path, premain_env(c, MARBLE_APP_FILES=str(tmp_path / "f")),
                    "spawn")
    assert r.returncode == 0, r.stderr
    # argv stays the command line's (the manifest's Argv is the executable form's)
    assert "argv[0]=" + str(app) + "\nargv[1]=spawn\n" in r.stdout
    assert "env HELLO_WORLD=Hello World from MarbleRun!" in r.stdout
    assert f"file {tmp_path / 'f'}=provisioned (11 bytes)" in r.stdout
    # LD_PRELOAD is gone from the app's environment, so its child does not activate again
    assert "env LD_PRELOAD=(unset)" in r.stdout
    assert "argv[0]=child" in r.stdout and "child exited 0" in r.stdout
    assert r.stderr.count("[PreMain] starting PreMain") == 1, r.stderr
    # other preloaded libraries stay
    env = premain_env(c)
    env["LD_PRELOAD"] = f"{premain[1]}:libm.so.6"
    r = subprocess.run([str(app)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "env LD_PRELOAD=libm.so.6" in r.stdout, r.stdout + r.stderr


def test_preload_failure_stops_the_app(premain, app, coordinator, tmp_path):
    c = coordinator()
    r = run_preload(premain, app, tmp_path, premain_env(c))
    assert r.returncode == 2 and "cannot accept marbles in current state" in r.stderr
    assert r.stdout == ""  # main never ran


def test_ttls_is_refused(premain, app, coordinator, tmp_path):
    c = coordinator(marble_manifest({"Env": {"MARBLE_TTLS_CONFIG": "{}"}}), simulation=True)
    r = run_exe(premain, app, tmp_path, premain_env(c))
    assert r.returncode == 2 and "MARBLE_TTLS_CONFIG" in r.stderr and r.stdout == "", r.stderr


# ---------------------------------------------------------------------------------------------
# Under `moat run`: the quote comes from /dev/attestation and is verified for real


def sandbox_run(moat_path, d, sim, c, stem, timeout=120, **env):
    full = dict(os.environ, MOAT_SIM_DIR=str(sim), EDG_MARBLE_TYPE="hello",
                EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{c.mesh}", XDG_CACHE_HOME=str(d / "cache"))
    full.update(env)
    return subprocess.run([str(moat_path), "run", stem], cwd=d, env=full, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def prepare(moat, d: Path, stem, template, migrate=False):
    """render (after `moat manifest migrate` for Graphene syntax) and sign; the measurement"""
    (d / f"{stem}.manifest.template").write_text(template)
    src = f"{stem}.manifest.template"
    if migrate:
        r = moat("manifest", "migrate", src, f"{stem}.migrated.template", cwd=d)
        assert r.returncode == 0, r.stderr
        src = f"{stem}.migrated.template"
    r = moat("manifest", "render", "--no-progress", src, f"{stem}.manifest", cwd=d)
    assert r.returncode == 0, r.stderr
    r = moat("sign", "-m", f"{stem}.manifest", "-o", f"{stem}.manifest.sgx", "--key",
             d / "key.pem", cwd=d)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("Measurement:")[1].split()[0]


@pytest.fixture
def sandbox(moat, premain, app, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("moat run as root here (the user runs are tested elsewhere)")
    d = tmp_path / "marble"
    d.mkdir()
    for src, name in ((premain[0], "premain-libos"), (premain[1], "libmoat-premain.so"),
                      (app, "hello")):
        (d / name).write_bytes(Path(src).read_bytes())
        (d / name).chmod(0o755)
    r = moat("sign", "--gen-key", "-q", d / "key.pem")
    assert r.returncode == 0, r.stderr
    return d


GRAMINE_ERA = """
libos.entrypoint = "/premain-libos"
loader.argv = ["/hello"]
loader.env.LD_LIBRARY_PATH = "/lib"
loader.env.EDG_MARBLE_TYPE = { passthrough = true }
loader.env.EDG_MARBLE_COORDINATOR_ADDR = { passthrough = true }
loader.env.EDG_MARBLE_UUID_FILE = { passthrough = true }
loader.env.EDG_MARBLE_DNS_NAMES = { passthrough = true }
loader.env.MARBLE_APP_FILES = "/enc/secret.txt:/secrets/cert.pem"
fs.mounts = [
  { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" },
  { path = "/lib64", uri = "file:/lib64" },
  { path = "/premain-libos", uri = "file:premain-libos" },
  { path = "/hello", uri = "file:hello" },
  { path = "/enc", uri = "file:enc", type = "encrypted", key_name = "default" },
  { path = "/secrets", type = "tmpfs" },
]
sgx.remote_attestation = "dcap"
sgx.debug = true
sgx.trusted_files = [
  "file:premain-libos",
  "file:hello",
  "file:{{ gramine.runtimedir() }}/libc.so.6",
  "file:/lib64/ld-linux-x86-64.so.2",
]
sgx.allowed_files = [ "file:uuid" ]
"""

GRAMINE_FILES = {
    "/dev/attestation/keys/default": "{{ raw .Secrets.pfkey }}",
    "/enc/secret.txt": "top secret {{ hex .Secrets.pfkey }}",
    "/secrets/cert.pem": "{{ pem .MarbleRun.MarbleCert.Cert }}",
}
PFKEY = {"pfkey": {"Type": "symmetric-key", "Size": 128}}


def test_sandbox_gramine_era(moat, moat_path, sim, sandbox, coordinator):
    d = sandbox
    (d / "enc").mkdir()
    mr = prepare(moat, d, "hello", GRAMINE_ERA)
    c = coordinator(marble_manifest(dict(HELLO, Files=GRAMINE_FILES), unique_id=mr, secrets=PFKEY))
    r = sandbox_run(moat_path, d, sim, c, "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SIMULATED" in r.stderr  # the provider says what its quotes are worth
    assert "simulation mode" not in r.stderr  # a real quote was sent, and it was accepted
    assert "argv[0]=./hello\nargv[1]=Hello World from MarbleRun!\n" in r.stdout
    assert "env HELLO_WORLD=Hello World from MarbleRun!" in r.stdout
    # the key was written first: the file in the encrypted mount reads back through it ...
    line = next(x for x in r.stdout.splitlines() if x.startswith("file /enc/secret.txt="))
    assert line.startswith("file /enc/secret.txt=top secret ") and line.endswith("(43 bytes)")
    # ... and lies encrypted on the host
    host = (d / "enc" / "secret.txt").read_bytes()
    assert b"top secret" not in host and len(host) >= 4096
    uid = (d / "uuid").read_text()
    assert "file /secrets/cert.pem=-----BEGIN CERTIFICATE-----" in r.stdout
    uuidlib.UUID(uid)
    # a second start: the same UUID, the same key (the encrypted file still opens)
    r = sandbox_run(moat_path, d, sim, c, "hello")
    assert r.returncode == 0 and line in r.stdout, r.stdout + r.stderr
    assert (d / "uuid").read_text() == uid


def test_sandbox_changed_binary_is_refused(moat, moat_path, sim, sandbox, coordinator):
    d = sandbox
    (d / "enc").mkdir()
    mr = prepare(moat, d, "hello", GRAMINE_ERA)
    c = coordinator(marble_manifest(dict(HELLO, Files=GRAMINE_FILES), unique_id=mr, secrets=PFKEY))
    # a changed app is a new measurement: the manifest's UniqueID no longer matches
    with open(d / "hello", "ab") as f:
        f.write(b"\0changed")
    prepare(moat, d, "hello", GRAMINE_ERA)
    r = sandbox_run(moat_path, d, sim, c, "hello")
    assert r.returncode != 0 and "argv[0]" not in r.stdout
    assert "panic: rpc error: code = PermissionDenied desc = " in r.stderr, r.stderr
    assert "PackageProperties not compliant" in r.stderr
    assert not (d / "enc" / "secret.txt").exists()  # nothing was provisioned
    # a production package refuses a debug enclave (Debug must match)
    mr = prepare(moat, d, "hello", GRAMINE_ERA)
    c2 = coordinator(marble_manifest(dict(HELLO, Files=GRAMINE_FILES), unique_id=mr, debug=False,
                                     secrets=PFKEY))
    r = sandbox_run(moat_path, d, sim, c2, "hello")
    assert r.returncode != 0 and "PackageProperties not compliant" in r.stderr, r.stderr


# Seeds 000/001: Graphene syntax, unchanged but for the premain's file name; moat runs it after
# `moat manifest migrate` (docs/manifest.md)
GRAPHENE_ERA = """
libos.entrypoint = "file:premain-libos"
sgx.trusted_files.premain = "file:premain-libos"
loader.argv0_override = "hello"
loader.insecure__use_host_env = 1
loader.env.LD_LIBRARY_PATH = "/lib"
sgx.allowed_files.uuid = "file:uuid"
sgx.remote_attestation = 1
sgx.protected_files.secret = "file:secret.txt"
fs.mount.lib.type = "chroot"
fs.mount.lib.path = "/lib"
fs.mount.lib.uri = "file:{{ gramine.runtimedir() }}"
fs.mount.lib64.type = "chroot"
fs.mount.lib64.path = "/lib64"
fs.mount.lib64.uri = "file:/lib64"
sgx.trusted_files.hello = "file:hello"
sgx.trusted_files.libc = "file:{{ gramine.runtimedir() }}/libc.so.6"
sgx.trusted_files.ld = "file:/lib64/ld-linux-x86-64.so.2"
sgx.thread_num = 16
sgx.enclave_size = "1024M"
"""


def test_sandbox_graphene_era(moat, moat_path, sim, sandbox, coordinator):
    d = sandbox
    mr = prepare(moat, d, "hello", GRAPHENE_ERA, migrate=True)
    files = {"/dev/attestation/protected_files_key": "{{ hex .Marblerun.SealKey }}",
             "secret.txt": "graphene secret"}
    c = coordinator(marble_manifest(dict(HELLO, Files=files), unique_id=mr))
    r = sandbox_run(moat_path, d, sim, c, "hello", MARBLE_APP_FILES="secret.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "argv[0]=./hello\nargv[1]=Hello World from MarbleRun!\n" in r.stdout
    assert "file secret.txt=graphene secret (15 bytes)" in r.stdout
    host = (d / "secret.txt").read_bytes()
    assert b"graphene secret" not in host and len(host) >= 4096


GRAMINE_PRELOAD = """
libos.entrypoint = "/hello"
loader.argv = ["/hello", "spawn"]
loader.env.LD_LIBRARY_PATH = "/lib"
loader.env.LD_PRELOAD = "/libmoat-premain.so"
loader.env.EDG_MARBLE_TYPE = { passthrough = true }
loader.env.EDG_MARBLE_COORDINATOR_ADDR = { passthrough = true }
loader.env.MARBLE_APP_FILES = "/dev/attestation/keys/default"
fs.mounts = [
  { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" },
  { path = "/lib64", uri = "file:/lib64" },
  { path = "/libmoat-premain.so", uri = "file:libmoat-premain.so" },
  { path = "/hello", uri = "file:hello" },
  { path = "/enc", uri = "file:enc", type = "encrypted", key_name = "default" },
]
sgx.remote_attestation = "dcap"
sgx.debug = true
sgx.trusted_files = [
  "file:libmoat-premain.so",
  "file:hello",
{%- for lib in ["libc.so.6", "libssl.so.3", "libcrypto.so.3", "libnghttp2.so.14", "libprotobuf-c.so.1"] %}
  "file:{{ gramine.runtimedir() }}/{{ lib }}",
{%- endfor %}
  "file:/lib64/ld-linux-x86-64.so.2",
]
sgx.allowed_files = [ "file:uuid" ]
"""


def test_sandbox_preload(moat, moat_path, sim, sandbox, coordinator):
    d = sandbox
    (d / "enc").mkdir()
    mr = prepare(moat, d, "hello", GRAMINE_PRELOAD)
    files = {"/dev/attestation/keys/default": "{{ raw .Secrets.pfkey }}"}
    c = coordinator(marble_manifest(dict(HELLO, Files=files), unique_id=mr, secrets=PFKEY))
    r = sandbox_run(moat_path, d, sim, c, "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "argv[0]=/hello\nargv[1]=spawn\n" in r.stdout  # the manifest's loader.argv
    assert "env HELLO_WORLD=Hello World from MarbleRun!" in r.stdout
    assert "env LD_PRELOAD=(unset)" in r.stdout
    assert "argv[0]=child" in r.stdout and "child exited 0" in r.stdout
    assert r.stderr.count("[PreMain] starting PreMain") == 1, r.stderr
    assert "simulation mode" not in r.stderr
    assert re.search(r"file /dev/attestation/keys/default=hex:[0-9a-f]{32} \(16 bytes\)", r.stdout)
    # a key no mount uses does not exist in Gramine (ENOENT): the premain says what is missing
    files["/dev/attestation/keys/other"] = "{{ raw .Secrets.pfkey }}"
    c = coordinator(marble_manifest(dict(HELLO, Files=files), unique_id=mr, secrets=PFKEY))
    r = sandbox_run(moat_path, d, sim, c, "hello")
    assert r.returncode == 2 and "argv[0]" not in r.stdout
    assert ('panic: writing key file /dev/attestation/keys/other: no such key (no encrypted '
            'mount and no fs.insecure__keys entry of the Gramine manifest names key "other")'
            in r.stderr), r.stderr
