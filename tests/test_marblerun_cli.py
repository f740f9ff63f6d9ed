"""`moat marblerun`: the marblerun CLI's commands (../shared/reference/marblerun.md §7) against
real `moat coordinator`s on free ports, with the simulated platform (`moat attest init`).

What is checked: the quote verification before trust (§7 "Attestation flow": report data =
sha256(root DER ‖ nonce), the era config's identity, the TCB status through moat's DCAP
verifier), the root certificate cache and MarbleRun's message when the root changed, the
client API calls (§3.5) in the CLI's words, sealed-state recovery (§3.4), simulation mode (§6),
and that `moat` itself does not map libcurl. Every Coordinator is killed by PID.
"""
import base64
import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-cryptography missing: {e}", allow_module_level=True)

MSG = {  # §3.2
    1: "Coordinator is in recovery mode. Either upload a key to unseal the saved state, or set a "
       "new manifest. For more information on how to proceed, consult the documentation.",
    2: "Coordinator is ready to accept a manifest.",
    3: "Coordinator is running correctly and ready to accept marbles.",
}
# MarbleRun's cli/internal/cmd/certificate.go
ROOT_CHANGED = ("root certificate of Coordinator changed. Run 'marblerun manifest verify' to "
                "verify the instance and update the local cache")
STARTED = re.compile(r"Coordinator started: client API on \S+ \(port (\d+)\)")
U1 = "11" * 32


# ---------------------------------------------------------------------------------------------
# Coordinators and the client


class Coordinator:
    def __init__(self, moat_path, workdir, seal, sim, port=0, env=None):
        self.log = workdir / f"coordinator-{time.monotonic_ns()}.log"
        cmd = [str(moat_path), "coordinator", "--client-addr", f"127.0.0.1:{port}",
               "--mesh-addr", "127.0.0.1:0", "--seal-dir", str(seal)]
        full_env = dict(os.environ, MOAT_SIM_DIR=str(sim), **(env or {}))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=full_env)
        deadline = time.monotonic() + 60
        while not (m := STARTED.search(self.log.read_text(errors="replace"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("the Coordinator did not start:\n" + self.log.read_text())
            time.sleep(0.05)
        self.port = int(m.group(1))
        self.addr = f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(30)

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def quote_reply(self, nonce=None):
        """/api/v2/quote's data, read without trusting anything (the tests' own view)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        import http.client
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=60)
        q = "" if nonce is None else "?nonce=" + base64.urlsafe_b64encode(nonce).decode()
        c.request("GET", "/api/v2/quote" + q)
        data = json.loads(c.getresponse().read())["data"]
        c.close()
        return data


def pems(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)


def same_cert(a, b):
    return (x509.load_pem_x509_certificate(a.encode()) ==
            x509.load_pem_x509_certificate(b.encode()))


@pytest.fixture(scope="module")
def era(moat_path, tmp_path_factory):
    """MarbleRun's coordinator-era.json for this build: natively the Coordinator's UniqueID is
    the SHA-256 of moat-coordinator (docs/coordinator.md)."""
    exe = moat_path.parent / "moat-coordinator"
    f = tmp_path_factory.mktemp("era") / "coordinator-era.json"
    f.write_text(json.dumps({"SecurityVersion": 0, "ProductID": 0, "SignerID": "",
                             "UniqueID": hashlib.sha256(exe.read_bytes()).hexdigest(),
                             "Debug": False}))
    return f


@pytest.fixture
def start(moat_path, sim, tmp_path):
    started = []

    def run(seal=None, **kw):
        c = Coordinator(moat_path, tmp_path, seal or tmp_path / f"seal{len(started)}", sim, **kw)
        started.append(c)
        return c

    yield run
    for c in started:
        c.kill()


@pytest.fixture
def mr(moat_path, sim, era, tmp_path):
    """mr(*args, trust=True, cache=None) -> CompletedProcess: `moat marblerun` with its own
    config home; trust=True adds --era-config and --sim-dir (the simulated platform)."""
    cfg = tmp_path / "config"

    def run(*args, trust=True, env=None, cwd=None):
        full = [str(moat_path), "marblerun", *map(str, args)]
        if trust:
            full += ["--era-config", str(era), "--sim-dir", str(sim)]
        e = dict(os.environ, XDG_CONFIG_HOME=str(cfg), **(env or {}))
        e.pop("MOAT_SIM_DIR", None)
        return subprocess.run(full, capture_output=True, text=True, timeout=120, env=e,
                              cwd=cwd or tmp_path)

    run.cache = cfg / "marblerun" / "coordinator-cert.pem"
    return run


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def failed(r, code=1):
    assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stderr


def openssl_user(d: Path, name: str):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    d = tmp_path_factory.mktemp("users")
    return {n: openssl_user(d, n) for n in ("alice", "bob", "mallory")}


@pytest.fixture(scope="module")
def recovery_key(tmp_path_factory):
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    f = tmp_path_factory.mktemp("rk") / "recovery_priv.pem"
    f.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub = k.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return f, pub


def manifest(users, recovery_pub=None):
    """A manifest with users and roles (§1.4) and optionally a recovery key (§3.4)."""
    m = {
        "Packages": {"prod": {"UniqueID": U1, "Debug": False},
                     "signed": {"SignerID": "33" * 32, "ProductID": 7, "SecurityVersion": 3}},
        "Marbles": {"hello": {"Package": "prod"}},
        "Secrets": {"sk": {"Type": "symmetric-key", "Size": 128, "Shared": True},
                    "userplain": {"Type": "plain", "UserDefined": True},
                    "usercert": {"Type": "cert-ecdsa", "UserDefined": True}},
        "Users": {
            "alice": {"Certificate": users["alice"][0].read_text(),
                      "Roles": ["reader", "writer", "pkg"]},
            "bob": {"Certificate": users["bob"][0].read_text(), "Roles": ["writer"]},
        },
        "Roles": {
            "reader": {"ResourceType": "Secrets", "ResourceNames": ["sk", "userplain", "usercert"],
                       "Actions": ["ReadSecret"]},
            "writer": {"ResourceType": "Secrets", "ResourceNames": ["userplain", "usercert"],
                       "Actions": ["WriteSecret"]},
            "pkg": {"ResourceType": "Packages", "ResourceNames": ["signed"],
                    "Actions": ["UpdateSecurityVersion"]},
        },
    }
    if recovery_pub:
        m["RecoveryKeys"] = {"rk": recovery_pub}
    return m


def write_manifest(d: Path, obj, name="manifest.json"):
    f = d / name
    f.write_text(json.dumps(obj, indent=4) + "\n")
    return f


# ---------------------------------------------------------------------------------------------
# The commands against a verified Coordinator


class TestCommands:
    def test_status_verifies_and_caches(self, start, mr, tmp_path):
        c = start()
        assert not mr.cache.exists()
        r = ok(mr("status", c.addr, "--save-sgx-quote", tmp_path / "q.bin"))
        assert r.stdout == f"2: {MSG[2]}\n"  # status.go: "%d: %s"
        q = (tmp_path / "q.bin").read_bytes()  # with its OpenEnclave header (§4.4)
        assert q[:8] == bytes([1, 0, 0, 0, 2, 0, 0, 0])
        assert int.from_bytes(q[8:16], "little") == len(q) - 16
        # a simulated quote says so, and what was verified is named
        assert "SIMULATED" in r.stderr
        assert "verified the Coordinator" in r.stderr
        # §7 step 4: the root is cached, the chain as /quote served it
        assert mr.cache.read_text() == c.quote_reply()["cert"]
        # the cached root is the TLS anchor: no quote needed any more (no --sim-dir, no era)
        r = ok(mr("status", c.addr, "--json", trust=False))
        assert json.loads(r.stdout) == {"code": 2, "message": MSG[2]}

    def test_manifest_set_get_signature_verify(self, start, mr, users, tmp_path):
        c = start()
        f = write_manifest(tmp_path, manifest(users))
        sig = hashlib.sha256(f.read_bytes()).hexdigest()
        r = ok(mr("manifest", "set", f, c.addr))
        assert r.stdout == ("Successfully verified Coordinator, now uploading manifest\n"
                            f"Manifest signature: {sig}\nManifest successfully set\n")
        assert ok(mr("status", c.addr)).stdout == f"3: {MSG[3]}\n"
        assert ok(mr("manifest", "signature", f, trust=False)).stdout == sig + "\n"
        out = tmp_path / "got.json"
        ok(mr("manifest", "get", c.addr, "-o", out))
        assert out.read_bytes() == f.read_bytes()
        assert ok(mr("manifest", "get", c.addr)).stdout.encode() == f.read_bytes()
        # verify: a file, its hash, and mismatches (manifestVerify.go)
        assert ok(mr("manifest", "verify", f, c.addr)).stdout == "OK\n"
        assert ok(mr("manifest", "verify", sig.upper(), c.addr)).stdout == "OK\n"
        other = write_manifest(tmp_path, {**manifest(users), "Marbles": {}}, "other.json")
        err = failed(mr("manifest", "verify", other, c.addr))
        assert (f"remote signature differs from local signature: {sig} != "
                f"{hashlib.sha256(other.read_bytes()).hexdigest()}") in err
        err = failed(mr("manifest", "verify", "00" * 32, c.addr))
        assert "remote signature differs" in err
        err = failed(mr("manifest", "verify", "nope", c.addr), 2)
        assert "nope is not a file and of invalid length to be a signature" in err
        err = failed(mr("manifest", "verify", "zz" * 32, c.addr), 2)
        assert "not a valid signature (needs to be in hex format)" in err
        # a second manifest is refused by the Coordinator, and the CLI says so
        err = failed(mr("manifest", "set", f, c.addr))
        assert "server is not in expected state" in err
        r = json.loads(ok(mr("manifest", "verify", f, c.addr, "--json")).stdout)
        assert r == {"match": True, "remote": sig, "local": sig}
        log = ok(mr("manifest", "log", c.addr)).stdout
        assert "Initial manifest set" in log

    def test_certificates(self, start, mr, tmp_path):
        c = start()
        chain = pems(c.quote_reply()["cert"])
        for which, expect in (("root", [chain[1]]), ("intermediate", [chain[0]]),
                              ("chain", chain)):
            out = tmp_path / f"{which}.pem"
            r = ok(mr("certificate", which, c.addr, "-o", out))
            assert f"Certificate written to {out}" in r.stdout
            got = pems(out.read_text())
            assert len(got) == len(expect)
            assert all(same_cert(g, e) for g, e in zip(got, expect))
        root = x509.load_pem_x509_certificate(pems((tmp_path / "root.pem").read_text())[0].encode())
        assert root.subject.rfc4514_string() == "CN=MarbleRun Coordinator"
        # MarbleRun's default file name
        ok(mr("certificate", "root", c.addr))
        assert same_cert((tmp_path / "marblerunRootCA.crt").read_text(), chain[1])

    def test_secrets_and_update(self, start, mr, users, tmp_path):
        c = start()
        ok(mr("manifest", "set", write_manifest(tmp_path, manifest(users)), c.addr))
        alice = ["-c", users["alice"][0], "-k", users["alice"][1]]
        bob = ["--cert", users["bob"][0], "--key", users["bob"][1]]
        value = b"a user-defined secret"
        s = tmp_path / "secrets.json"
        s.write_text(json.dumps({"userplain": {"Key": base64.b64encode(value).decode()}}))
        assert ok(mr("secret", "set", s, c.addr, *bob)).stdout == "Secret successfully set\n"
        r = json.loads(ok(mr("secret", "get", "userplain", "sk", c.addr, *alice,
                             "--json")).stdout)
        assert base64.b64decode(r["userplain"]["Private"]) == value
        assert r["sk"]["Type"] == "symmetric-key" and len(base64.b64decode(r["sk"]["Private"])) == 16
        text = ok(mr("secret", "get", "sk", c.addr, *alice)).stdout
        assert text.startswith("sk:\n") and "symmetric-key" in text
        out = tmp_path / "got-secrets.json"
        ok(mr("secret", "get", "userplain", c.addr, *alice, "-o", out))
        assert base64.b64decode(json.loads(out.read_text())["userplain"]["Private"]) == value
        # permissions and authentication are the Coordinator's, reported by the CLI
        err = failed(mr("secret", "get", "sk", c.addr, *bob))
        assert "not allowed to read" in err
        mallory = ["-c", users["mallory"][0], "-k", users["mallory"][1]]
        err = failed(mr("secret", "get", "sk", c.addr, *mallory))
        assert "unable to authorize user" in err and "did not match any MarbleRun users" in err
        err = failed(mr("secret", "get", "sk", c.addr), 2)
        assert "-c/--cert and -k/--key" in err
        err = failed(mr("secret", "get", "sk", c.addr, "-c", tmp_path / "nocert.pem", "-k",
                        users["alice"][1]), 2)
        assert "-c/--cert" in err and "nocert.pem" in err
        # --from-pem: a certificate and its key as a user-defined cert secret (secretSet.go)
        both = tmp_path / "both.pem"
        both.write_text(users["bob"][0].read_text() + users["bob"][1].read_text())
        ok(mr("secret", "set", both, c.addr, *bob, "--from-pem", "usercert"))
        got = json.loads(ok(mr("secret", "get", "usercert", c.addr, *alice, "--json")).stdout)
        der = x509.load_pem_x509_certificate(users["bob"][0].read_bytes()).public_bytes(
            serialization.Encoding.DER)
        assert base64.b64decode(got["usercert"]["Cert"]) == der
        err = failed(mr("secret", "set", both, c.addr, *bob, "--from-pem", "nosuch"))
        assert "does not contain" in err
        err = failed(mr("secret", "set", users["bob"][0], c.addr, *bob, "--from-pem", "x"), 2)
        assert "must hold a PEM certificate and its PEM private key" in err
        # update apply: a package update by a user with UpdateSecurityVersion (§1.8)
        upd = write_manifest(tmp_path, {"Packages": {"signed": {"SecurityVersion": 5}}}, "u.json")
        err = failed(mr("manifest", "update", "apply", upd, c.addr, *bob))
        assert "bob" in err
        assert ok(mr("manifest", "update", "apply", upd, c.addr, *alice)).stdout == \
            "Update manifest set successfully\n"
        log = ok(mr("manifest", "log", c.addr)).stdout
        assert "signed" in log and "5" in log.split("\n")[-2]
        # no pending multi-party update
        err = failed(mr("manifest", "update", "get", c.addr))
        assert "no update in progress" in err


    def test_multi_party_update(self, start, mr, users, tmp_path):
        """A full update that two users must acknowledge (§1.8): apply, get, acknowledge, and
        cancel (manifestUpdate.go's messages)."""
        m = manifest(users)
        for u in ("alice", "bob"):
            m["Users"][u]["Roles"].append("updater")
        m["Roles"]["updater"] = {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]}
        c = start()
        ok(mr("manifest", "set", write_manifest(tmp_path, m), c.addr))
        alice = ["-c", users["alice"][0], "-k", users["alice"][1]]
        bob = ["-c", users["bob"][0], "-k", users["bob"][1]]
        new = json.loads(json.dumps(m))
        new["Marbles"]["extra"] = {"Package": "prod"}
        f = write_manifest(tmp_path, new, "new.json")
        r = ok(mr("manifest", "update", "apply", f, c.addr, *alice))
        assert r.stdout == ("Update manifest submitted successfully.\nChanges are pending and have "
                            "not been applied yet.\n1 user still needs to acknowledge the update "
                            "manifest.\nThe following users may acknowledge the update: bob\n")
        assert ok(mr("manifest", "update", "get", c.addr)).stdout.encode() == f.read_bytes()
        assert ok(mr("manifest", "update", "get", c.addr, "--missing")).stdout == \
            "The following users have not yet acknowledged the update: [bob]\n"
        r = ok(mr("manifest", "update", "acknowledge", f, c.addr, *bob))
        assert r.stdout == ("Acknowledgement successful:\nAll users have acknowledged the update "
                            "manifest. Update successfully applied\n")
        assert ok(mr("manifest", "verify", f, c.addr)).stdout == "OK\n"
        # another one, cancelled
        third = json.loads(json.dumps(new))
        third["Marbles"]["other"] = {"Package": "prod"}
        ok(mr("manifest", "update", "apply", write_manifest(tmp_path, third, "3.json"), c.addr,
              *bob))
        assert ok(mr("manifest", "update", "cancel", c.addr, *alice)).stdout == \
            "Cancellation successful\n"
        assert "no update in progress" in failed(mr("manifest", "update", "get", c.addr))
        assert ok(mr("manifest", "verify", f, c.addr)).stdout == "OK\n"


# ---------------------------------------------------------------------------------------------
# Recovery (§3.4)


def recovering(start, mr, users, pub, tmp_path):
    """A Coordinator with a recovery key whose sealed state no longer opens (another machine's
    sealing key, §3.2): (Coordinator in state 1, the encrypted secret's file, the cached root)."""
    seal = tmp_path / "seal-rec"
    c = start(seal=seal)
    rec = tmp_path / "recovery.json"
    r = ok(mr("manifest", "set", write_manifest(tmp_path, manifest(users, pub)), c.addr,
              "-r", rec))
    assert f"Recovery data saved to: {rec}" in r.stdout
    secret = base64.b64decode(json.loads(rec.read_text())["RecoverySecrets"]["rk"])
    (tmp_path / "recovery_key_encrypted").write_bytes(secret)
    root = mr.cache.read_text()
    port = c.port
    assert c.stop() == 0
    c = start(seal=seal, port=port, env={"MOAT_MACHINE_SECRET": str(tmp_path / "other.key")})
    return c, tmp_path / "recovery_key_encrypted", root


def recovered(c, mr, root):
    # the original root is back: the cache trusts it again, and it was not overwritten
    assert mr.cache.read_text() == root
    assert ok(mr("status", c.addr)).stdout == f"3: {MSG[3]}\n"
    assert same_cert(pems(c.quote_reply()["cert"])[1], pems(root)[1])


def test_recover_end_to_end(start, mr, users, recovery_key, tmp_path):
    key, pub = recovery_key
    c, enc, root = recovering(start, mr, users, pub, tmp_path)
    # the cached root is not the recovering Coordinator's
    assert ROOT_CHANGED in failed(mr("status", c.addr))
    assert ok(mr("status", c.addr, "-i")).stdout == f"1: {MSG[1]}\n"
    # the wrong key is refused before anything is sent
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    err = failed(mr("recover", enc, c.addr, "-k", wrong))
    assert "cannot decrypt the recovery secret" in err
    assert "-k/--key" in failed(mr("recover", enc, c.addr), 2)
    r = ok(mr("recover", enc, c.addr, "-k", key))
    assert r.stdout == "Successfully verified Coordinator, now uploading key\nRecovery successful.\n"
    recovered(c, mr, root)


def test_recover_split(start, mr, users, recovery_key, tmp_path):
    """recover public-key, encrypt-secret and sign-secret offline, then recover-with-signature
    (§3.4 step 3: the secret encrypted for the Coordinator's ephemeral RSA-4096 key)."""
    key, pub = recovery_key
    c, enc, root = recovering(start, mr, users, pub, tmp_path)
    ok(mr("recover", "public-key", c.addr, "-o", tmp_path / "eph.pem"))
    eph = serialization.load_pem_public_key((tmp_path / "eph.pem").read_bytes())
    assert eph.key_size == 4096
    err = failed(mr("recover", "encrypt-secret", enc, "--coordinator-pub-key",
                    tmp_path / "eph.pem", trust=False), 2)
    assert "encrypted recovery secret" in err and "-k/--key" in err
    ok(mr("recover", "encrypt-secret", enc, "--coordinator-pub-key", tmp_path / "eph.pem",
          "-k", key, "-o", tmp_path / "for-coordinator.bin", trust=False))
    assert len((tmp_path / "for-coordinator.bin").read_bytes()) == 512
    ok(mr("recover", "sign-secret", enc, "-k", key, "-o", tmp_path / "sig", trust=False))
    # a signature of something else is refused, and the Coordinator stays in recovery
    (tmp_path / "badsig").write_bytes(b"\0" * 256)
    failed(mr("recover-with-signature", tmp_path / "for-coordinator.bin", c.addr,
              "-s", tmp_path / "badsig"))
    assert ok(mr("status", c.addr, "-i")).stdout == f"1: {MSG[1]}\n"
    r = ok(mr("recover-with-signature", tmp_path / "for-coordinator.bin", c.addr,
              "--signature", tmp_path / "sig"))
    assert r.stdout.endswith("Recovery successful.\n")
    recovered(c, mr, root)


# ---------------------------------------------------------------------------------------------
# Verification refusals


@contextlib.contextmanager
def relay(tmp_path, answers, seen):
    """An HTTPS server of its own certificate that answers GET paths (without the query) from
    `answers` {path: (status, data)} in JSend envelopes, 405 otherwise; yields its port."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=relay",
                    "-keyout", str(tmp_path / "relay-k.pem"), "-out", str(tmp_path / "relay-c.pem")],
                   check=True, capture_output=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            status, data = answers.get(self.path.split("?")[0], (405, None))
            env = {"status": "success" if status == 200 else "error", "data": data}
            body = json.dumps(env).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "relay-c.pem", tmp_path / "relay-k.pem")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


class TestRefusals:
    def test_wrong_identity(self, start, mr, era, sim, tmp_path):
        c = start()
        good = json.loads(era.read_text())
        for field, needle in (("UniqueID", "invalid UniqueID"), ("SignerID", "invalid SignerID")):
            bad = tmp_path / f"era-{field}.json"
            bad.write_text(json.dumps({**good, field: "44" * 32}))
            r = mr("status", c.addr, "--era-config", bad, "--sim-dir", sim, trust=False)
            assert needle in failed(r)
            assert not mr.cache.exists()  # nothing unverified is cached
        r = mr("status", c.addr, "--era-config", era, "--security-version", "1", "--sim-dir", sim,
               trust=False)
        assert "invalid SecurityVersion" in failed(r)
        # no collateral: the TCB status is unknown, never accepted
        r = mr("status", c.addr, "--era-config", era, trust=False)
        err = failed(r)
        assert "no collateral given" in err and "--sim-dir" in err
        # no era config at all
        r = mr("status", c.addr, "--sim-dir", sim, trust=False)
        assert "no era config" in failed(r)
        # --insecure skips it all, without caching the root
        r = ok(mr("status", c.addr, "--insecure", trust=False))
        assert "Warning: skipping quote verification" in r.stderr
        assert not mr.cache.exists()

    def test_replayed_quote_refused(self, start, mr, tmp_path):
        """A relay that serves a genuine quote fetched earlier (with another nonce): the report
        data does not bind this request's nonce (§7 step 3)."""
        c = start()
        captured = c.quote_reply(nonce=b"an earlier nonce")
        seen = []
        with relay(tmp_path, {"/api/v2/quote": (200, captured)}, seen) as port:
            err = failed(mr("status", f"127.0.0.1:{port}"))
        assert "report data doesn't match the certificate's hash" in err
        assert seen and seen[0].startswith("/api/v2/quote?nonce=")
        assert not mr.cache.exists()
        # the same quote with the nonce it was made for is accepted: the check is the binding
        ok(mr("status", c.addr, "--nonce", "an earlier nonce"))

    def test_v1_quote_fallback(self, start, mr, tmp_path):
        """A v1-only Coordinator (405 on /api/v2/quote, §3.5): the v1 quote, over sha256(root
        DER) without a nonce, is verified like a v2 one."""
        c = start()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        import http.client
        h = http.client.HTTPSConnection("127.0.0.1", c.port, context=ctx, timeout=60)
        h.request("GET", "/quote")
        v1 = json.loads(h.getresponse().read())["data"]
        h.close()
        assert set(v1) == {"Cert", "Quote"}
        seen = []
        with relay(tmp_path, {"/quote": (200, v1)}, seen) as port:
            ok(mr("certificate", "root", f"127.0.0.1:{port}", "-o", tmp_path / "root.pem"))
            assert seen[0].startswith("/api/v2/quote?nonce=") and seen[1] == "/quote"
            # a v1 quote relayed with another root in "Cert" is refused
            other = start()
            v1["Cert"] = other.quote_reply()["cert"]
            err = failed(mr("certificate", "root", f"127.0.0.1:{port}", "-o", tmp_path / "x"))
            assert "report data doesn't match" in err
        assert same_cert((tmp_path / "root.pem").read_text(), pems(c.quote_reply()["cert"])[1])

    def test_changed_root(self, start, mr, tmp_path):
        a = start(seal=tmp_path / "seal-a")
        ok(mr("status", a.addr))
        cached = mr.cache.read_text()
        port = a.port
        assert a.stop() == 0
        # a second Coordinator with a fresh seal dir on the same address: another root
        b = start(seal=tmp_path / "seal-b", port=port)
        assert not same_cert(pems(b.quote_reply()["cert"])[1], pems(cached)[1])
        for args in (("status", b.addr), ("certificate", "root", b.addr, "-o", tmp_path / "r"),
                     ("manifest", "get", b.addr)):
            assert ROOT_CHANGED in failed(mr(*args))
        assert not (tmp_path / "r").exists()
        assert mr.cache.read_text() == cached
        # --insecure proceeds (and does not cache the unverified root)
        assert ok(mr("status", b.addr, "-i")).stdout == f"2: {MSG[2]}\n"
        ok(mr("certificate", "root", b.addr, "-o", tmp_path / "r", "-i"))
        assert mr.cache.read_text() == cached
        # manifest verify verifies the new instance's quote and updates the cache (§7)
        err = failed(mr("manifest", "verify", "00" * 32, b.addr))
        assert "remote signature differs" in err
        assert same_cert(pems(mr.cache.read_text())[1], pems(b.quote_reply()["cert"])[1])
        assert ok(mr("status", b.addr)).stdout == f"2: {MSG[2]}\n"

    def test_simulation_mode_needs_insecure(self, start, mr, users, tmp_path):
        c = start(env={"OE_SIMULATION": "1"})
        assert c.quote_reply()["quote"] == ""  # §6
        f = write_manifest(tmp_path, manifest(users))
        for args in (("status", c.addr), ("manifest", "set", f, c.addr)):
            err = failed(mr(*args))
            assert "empty quote" in err and "simulation mode" in err and "--insecure" in err
        r = ok(mr("manifest", "set", f, c.addr, "--insecure", trust=False))
        assert "Manifest successfully set" in r.stdout
        assert ok(mr("status", c.addr, "-i", trust=False)).stdout == f"3: {MSG[3]}\n"


# ---------------------------------------------------------------------------------------------
# Usage and packaging


def test_bad_input(mr, era, tmp_path, sim):
    assert "unknown command 'frobnicate'" in failed(mr("frobnicate", trust=False), 2)
    err = failed(mr("manifest", "set", "only-one-arg", trust=False), 2)
    assert "wrong number of arguments" in err and "<manifest.json> <IP:PORT>" in err
    err = failed(mr("status", "127.0.0.1:1", "--bogus", trust=False), 2)
    assert "--bogus" in err
    err = failed(mr("manifest", "set", tmp_path / "missing.json", "127.0.0.1:1"))
    assert "missing.json" in err
    (tmp_path / "notjson.json").write_text("Packages: {}\n")
    err = failed(mr("manifest", "set", tmp_path / "notjson.json", "127.0.0.1:1"), 2)
    assert "notjson.json" in err and "not a JSON object" in err
    bad = tmp_path / "era-bad.json"
    bad.write_text('{"UniqueID": "abc"}')
    err = failed(mr("status", "127.0.0.1:1", "--era-config", bad, "--sim-dir", sim, trust=False))
    assert "'UniqueID'" in err and str(bad) in err
    err = failed(mr("status", "127.0.0.1:1", "--accepted-tcb-statuses", "Nope", trust=False), 2)
    assert "--accepted-tcb-statuses" in err and "Nope" in err
    err = failed(mr("status", "https://127.0.0.1:1/x"))
    assert "is not an address" in err
    assert "manifest update apply" in ok(mr("--help", trust=False)).stdout


def test_moat_does_not_map_libcurl(moat_path, moat):
    """moat's rule: a command maps only the libraries it uses (moat run must not load libcurl);
    the client is moat-marblerun, exec'd by `moat marblerun`."""
    if not shutil.which("ldd"):
        pytest.skip("ldd missing")
    front = subprocess.run(["ldd", str(moat_path)], capture_output=True, text=True).stdout
    client = subprocess.run(["ldd", str(moat_path.parent / "moat-marblerun")],
                            capture_output=True, text=True).stdout
    assert "libcurl" not in front
    assert "libcurl" in client
    r = moat("marblerun", "--help", check=0)
    assert r.stdout.startswith("usage: moat marblerun")
    assert "marblerun" in moat("help", check=0).stdout
