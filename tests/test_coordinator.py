"""`moat coordinator` end to end: the MarbleRun-compatible Coordinator against clients nobody
here wrote (curl, Python's http.client, grpcio, openssl, cryptography).

Every section number is one of ../shared/reference/marblerun.md: the client REST API (§3.5,
v2 and v1, JSend), the states (§3.2), the certificate hierarchy (§3.3), sealing and recovery
(§3.4), the Marble API (§4.1, §4.3) with real quote checks (§4.4) against the simulated
platform (`moat attest init`), simulation mode (§6), updates (§1.8), the manifest checks (§1.7)
and the MarbleRun samples (§9). Coordinators bind free ports (127.0.0.1:0) and print them in
their start-up line; each is killed by PID when its fixture ends.
"""
import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:
    import grpc
    import grpc_tools.protoc  # noqa: F401
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.x509.oid import NameOID
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-grpcio / python3-grpc-tools / python3-cryptography missing: {e}",
                allow_module_level=True)

if not shutil.which("curl"):  # pragma: no cover
    pytest.skip("curl missing", allow_module_level=True)

# §3.2 status messages
MSG = {
    1: "Coordinator is in recovery mode. Either upload a key to unseal the saved state, or set a "
       "new manifest. For more information on how to proceed, consult the documentation.",
    2: "Coordinator is ready to accept a manifest.",
    3: "Coordinator is running correctly and ready to accept marbles.",
}
NOT_IN_STATE = "server is not in expected state"

U1, U2, S1 = "11" * 32, "22" * 32, "33" * 32


# ---------------------------------------------------------------------------------------------
# Fixtures: the simulated platform, the gRPC stubs, certificates


def openssl_cert(d: Path, name: str):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    """Client certificates made with openssl: alice, bob, carol (in manifests), mallory (not)."""
    d = tmp_path_factory.mktemp("users")
    return {n: openssl_cert(d, n) for n in ("alice", "bob", "carol", "mallory")}


def pem_of(users, name):
    return users[name][0].read_text()


# ---------------------------------------------------------------------------------------------
# The Coordinator process

STARTED = re.compile(r"Coordinator started: client API on \S+ \(port (\d+)\), Marble API on \S+ "
                     r"\(port (\d+)\)(?:, metrics on \S+ \(port (\d+)\))?")


class Coordinator:
    def __init__(self, moat_path, workdir: Path, seal_dir, sim_dir, *args, env=None, flags=True,
                 metrics=True):
        self.log = workdir / f"coordinator-{time.monotonic_ns()}.log"
        cmd = [str(moat_path), "coordinator"]
        if flags:
            cmd += ["--client-addr", "127.0.0.1:0", "--mesh-addr", "127.0.0.1:0"]
            if metrics:
                cmd += ["--prometheus-addr", "127.0.0.1:0"]
            if seal_dir is not None:
                cmd += ["--seal-dir", str(seal_dir)]
        cmd += [str(a) for a in args]
        full_env = dict(os.environ, MOAT_SIM_DIR=str(sim_dir))
        full_env.update(env or {})
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=full_env)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while True:
            text = self.text()
            m = STARTED.search(text)
            if m:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the Coordinator did not start:\n{text}")
            time.sleep(0.05)
        self.client, self.mesh = int(m.group(1)), int(m.group(2))
        self.metrics = int(m.group(3)) if m.group(3) else None

    def text(self):
        return self.log.read_text(errors="replace")

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(30)

    # the client API

    def request(self, method, path, body=None, cert=None, headers=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        c = http.client.HTTPSConnection("127.0.0.1", self.client, context=ctx, timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Resp(r.status, r.getheader("Content-Type"), r.read())
        finally:
            c.close()

    def v2(self, method, path, obj=None, cert=None):
        body = None if obj is None else json.dumps(obj).encode()
        return self.request(method, "/api/v2" + path, body, cert,
                            {"Content-Type": "application/json"} if body else None)

    def status(self):
        r = self.v2("GET", "/status")
        assert r.status == 200, r
        return r.json["data"]["code"]

    def set_manifest(self, raw: bytes):
        r = self.v2("POST", "/manifest", {"manifest": b64(raw)})
        assert r.status == 200, r
        return r.json["data"]

    def root_pem(self):
        """The Coordinator root: the last PEM of /quote's cert (§3.5)."""
        return pems(self.v2("GET", "/quote").json["data"]["cert"])[-1]

    def mesh_cert(self):
        return ssl.get_server_certificate(("127.0.0.1", self.mesh))

    def curl(self, *args, cert=None):
        """curl -k; returns (status, body)."""
        cmd = ["curl", "-sk", "-o", "-", "-w", "\n%{http_code}"]
        if cert:
            cmd += ["--cert", str(cert[0]), "--key", str(cert[1])]
        out = subprocess.run(cmd + list(args), capture_output=True, check=True, timeout=60).stdout
        body, _, code = out.rpartition(b"\n")
        return int(code), body

    def url(self, path):
        return f"https://127.0.0.1:{self.client}{path}"


class Resp:
    def __init__(self, status, ctype, body):
        self.status, self.ctype, self.body = status, ctype, body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.ctype} {self.body[:2000]!r}"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def pems(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)


def issued_by(cert, issuer):
    """cert is signed by issuer's key and names it (cryptography's verify_directly_issued_by,
    which older python3-cryptography lacks)."""
    assert cert.issuer == issuer.subject
    issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                               ec.ECDSA(cert.signature_hash_algorithm))


def der_of(pem):
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def start(moat_path, sim, tmp_path):
    """start(seal_dir=..., *args, env=...) -> a Coordinator, killed by PID at the end."""
    started = []

    def run(*args, seal_dir="default", **kwargs):
        if seal_dir == "default":
            seal_dir = tmp_path / f"seal{len(started)}"
        c = Coordinator(moat_path, tmp_path, seal_dir, sim, *args, **kwargs)
        started.append(c)
        return c

    yield run
    for c in started:
        c.kill()


@pytest.fixture(scope="module")
def module_start(moat_path, sim, tmp_path_factory):
    started = []
    d = tmp_path_factory.mktemp("coordinators")

    def run(*args, **kwargs):
        c = Coordinator(moat_path, d, d / f"seal{len(started)}", sim, *args, **kwargs)
        started.append(c)
        return c

    yield run
    for c in started:
        c.kill()


# ---------------------------------------------------------------------------------------------
# A Marble (§4.2): a P-384 key, a self-signed cert, a CSR, a quote over sha256(cert DER)


class Marble:
    def __init__(self, stubs, tool, sim):
        self.pb, self.pbg = stubs
        self.tool, self.sim = tool, sim

    def quote(self, report_data: bytes, mrenclave=U1, mrsigner=None, prodid=None, svn=None,
              debug=False):
        args = [str(self.tool), str(self.sim), report_data.hex(), f"mrenclave={mrenclave}"]
        if mrsigner:
            args.append(f"mrsigner={mrsigner}")
        if prodid is not None:
            args.append(f"prodid={prodid}")
        if svn is not None:
            args.append(f"svn={svn}")
        if debug:
            args.append("debug=1")
        q = bytes.fromhex(subprocess.check_output(args, timeout=60).decode().strip())
        # the OpenEnclave remote-report header (§4.4)
        return bytes([1, 0, 0, 0, 2, 0, 0, 0]) + len(q).to_bytes(8, "little") + q

    def activate(self, port, marble_type, uid=None, quote="sim", bind=True, **identity):
        """The ActivationResp, or raises grpc.RpcError. quote: "sim" (a quote of the simulated
        platform for `identity`) or the bytes to send."""
        key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MarbleRun Marble")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        csr = (x509.CertificateSigningRequestBuilder().subject_name(name)
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        if quote == "sim":
            rd = hashlib.sha256(der if bind else b"not the certificate").digest()
            quote = self.quote(rd, **identity)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        # the client does not verify the server (§4.1): trust whatever it presents
        server = ssl.get_server_certificate(("127.0.0.1", port)).encode()
        creds = grpc.ssl_channel_credentials(root_certificates=server, private_key=key_pem,
                                             certificate_chain=cert.public_bytes(
                                                 serialization.Encoding.PEM))
        with grpc.secure_channel(f"127.0.0.1:{port}", creds,
                                 options=[("grpc.ssl_target_name_override", "localhost"),
                                          ("grpc.default_authority", "localhost")]) as ch:
            stub = self.pbg.MarbleStub(ch)
            self.last_uuid = uid or str(uuidlib.uuid4())
            return stub.Activate(self.pb.ActivationReq(Quote=quote, CSR=csr,
                                                       MarbleType=marble_type,
                                                       UUID=self.last_uuid), timeout=60)


@pytest.fixture(scope="module")
def marble(stubs, quote_tool, sim):
    return Marble(stubs, quote_tool, sim)


def refused(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


# ---------------------------------------------------------------------------------------------
# Manifests


def main_manifest(users):
    return {
        "Packages": {
            "prod": {"UniqueID": U1, "Debug": False},
            "signed": {"SignerID": S1, "ProductID": 7, "SecurityVersion": 3, "Debug": False},
            "dbg": {"UniqueID": U2, "Debug": True},
        },
        "Marbles": {
            "hello": {"Package": "prod", "Parameters": {
                "Files": {"/secret/cert.pem": "{{ pem .MarbleRun.MarbleCert.Cert }}",
                          "/secret/raw": {"Data": "{{ raw .Secrets.sk }}", "NoTemplates": True}},
                "Env": {"SK": "{{ hex .Secrets.sk }}", "PLAIN": "literal"},
                "Argv": ["./hello", "{{ hex .Secrets.sk }}"]}},
            "signed": {"Package": "signed", "Parameters": {"Env": {"X": "y"}}},
            "dbg": {"Package": "dbg"},
            # a user-defined secret that is not uploaded yet fails the activation (§2)
            "usersec": {"Package": "prod", "Parameters": {
                "Files": {"/secret/user.txt": "{{ raw .Secrets.userplain }}"}}},
            "limited": {"Package": "prod", "MaxActivations": 2},
        },
        "Secrets": {
            "sk": {"Type": "symmetric-key", "Size": 128, "Shared": True},
            "userplain": {"Type": "plain", "UserDefined": True},
        },
        "Users": {
            "alice": {"Certificate": pem_of(users, "alice"), "Roles": ["reader", "writer"]},
            "bob": {"Certificate": pem_of(users, "bob"), "Roles": ["writer"]},
        },
        "Roles": {
            "reader": {"ResourceType": "Secrets", "ResourceNames": ["sk", "userplain"],
                       "Actions": ["ReadSecret"]},
            "writer": {"ResourceType": "Secrets", "ResourceNames": ["userplain"],
                       "Actions": ["WriteSecret"]},
        },
    }


def raw_of(obj) -> bytes:
    # indented, with a trailing newline: the stored bytes must be exactly these (§1)
    return (json.dumps(obj, indent=4) + "\n").encode()


@pytest.fixture(scope="module")
def running(module_start, users, tmp_path_factory):
    """A Coordinator in state 3 with main_manifest, set as the Gramine READMEs do: curl -k
    --data-binary @manifest.json https://host:4433/manifest (v1, raw body)."""
    c = module_start()
    raw = raw_of(main_manifest(users))
    f = tmp_path_factory.mktemp("m") / "manifest.json"
    f.write_bytes(raw)
    code, body = c.curl("--data-binary", f"@{f}", c.url("/manifest"))
    assert code == 200, body
    assert json.loads(body) == {"status": "success", "data": None}
    c.raw = raw
    return c


# ---------------------------------------------------------------------------------------------
# 1. The client REST API (§3.5)


class TestBeforeManifest:
    @pytest.fixture(scope="class")
    def fresh(self, module_start):
        return module_start()

    def test_status_v2_v1(self, fresh):
        code, body = fresh.curl(fresh.url("/api/v2/status"))
        assert code == 200
        assert json.loads(body) == {"status": "success",
                                    "data": {"code": 2, "message": MSG[2]}}
        code, body = fresh.curl(fresh.url("/status"))
        assert json.loads(body) == {"status": "success",
                                    "data": {"StatusCode": 2, "StatusMessage": MSG[2]}}
        r = fresh.request("GET", "/status")
        assert r.status == 200 and r.ctype.startswith("application/json")

    def test_get_manifest_before_any(self, fresh):
        r = fresh.request("GET", "/manifest")
        assert r.status == 200, r
        d = r.json["data"]
        assert set(d) == {"ManifestSignatureRootECDSA", "ManifestSignature", "Manifest"}

    def test_activation_refused_before_manifest(self, fresh, marble):
        code, details = refused(lambda: marble.activate(fresh.mesh, "hello"))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert details == "cannot accept marbles in current state"

    def test_quote_in_state_2(self, fresh, moat, sim, tmp_path):
        check_quote(fresh, moat, sim, tmp_path, None)

    def test_unknown_path_405(self, fresh):
        for method, path in (("GET", "/nope"), ("GET", "/api/v2/nope"), ("DELETE", "/status"),
                             ("GET", "/api/v2/recover")):
            r = fresh.request(method, path)
            assert r.status == 405, (method, path, r)
            assert r.ctype.startswith("text/plain")
            assert r.body.endswith(b"\n")
            j = r.json
            # MarbleRun's MethodNotAllowedHandler: WriteJSONError(w, "", 405), "message" omitted
            assert j == {"status": "error", "data": None}

    def test_bad_manifests(self, fresh):
        """§1.7: the Check messages; v2 errors are 500, v1 400; the state stays 2."""
        check = "checking manifest: "
        pkg, mar = {"p": {"Debug": True}}, {"a": {"Package": "p"}}
        cases = [
            ({"Packages": {}, "Marbles": mar}, check + "no allowed packages defined"),
            ({"Packages": pkg}, check + "no allowed marbles defined"),
            ({"Packages": pkg, "Marbles": {"a": {"Package": "q"}}},
             check + "manifest does not contain marble package q"),
            ({"Packages": {"p": {"UniqueID": U1, "SignerID": S1}}, "Marbles": mar},
             check + "manifest specifies both UniqueID *and* SignerID/ProductID/SecurityVersion "
             "in package p"),
            ({"Packages": {"p": {"SignerID": S1, "ProductID": 1}}, "Marbles": mar},
             check + "manifest misses value for SecurityVersion in package p"),
            ({"Packages": pkg, "Marbles": mar, "Secrets": {"s": {"Type": "weird"}}},
             check + "unknown type: weird for secret: s"),
            ({"Packages": pkg, "Marbles": mar, "Users": {"u": {"Certificate": ""}}},
             check + "manifest does not contain a certificate for user u"),
            ({"Packages": pkg, "Marbles": mar, "Config": {"SealMode": "Sometimes"}},
             check + "unknown seal mode: Sometimes"),
            ({"Packages": pkg, "Marbles": mar,
              "Secrets": {"s": {"Type": "symmetric-key", "Size": 12, "Shared": True}}},
             "generating secrets from manifest: invalid secret size: s"),
            ({"Packages": pkg, "Marbles": {"a": {"Package": "p", "Parameters": {
                "Files": {"/f": "{{ raw .Secrets.nope }}"}}}}}, None),
        ]
        for obj, msg in cases:
            r = fresh.v2("POST", "/manifest", {"manifest": b64(json.dumps(obj).encode())})
            assert r.status == 500, (obj, r)
            assert r.ctype.startswith("text/plain") and r.body.endswith(b"\n")
            assert r.json["status"] == "error" and r.json["data"] is None
            if msg is None:
                assert r.json["message"].startswith(
                    "running manifest template dry run: in Marble a: file /f: "), r
            else:
                assert r.json["message"] == msg, r
            r1 = fresh.request("POST", "/manifest", json.dumps(obj).encode())
            assert r1.status == 400, (msg, r1)
            assert r1.json["message"] == r.json["message"]
        r = fresh.request("POST", "/manifest", b"{not json")
        assert r.status == 400, r
        assert fresh.status() == 2


def check_quote(c, moat, sim, tmp_path, nonce):
    """§3.5 /quote: cert = intermediate + root PEM; the quote verifies against the simulated
    root and its report data is sha256(root DER [‖ nonce])."""
    path = "/api/v2/quote" + (f"?nonce={base64.urlsafe_b64encode(nonce).decode()}"
                              if nonce is not None else "")
    r = c.request("GET", path)
    assert r.status == 200, r
    d = r.json["data"]
    certs = pems(d["cert"])
    assert len(certs) == 2
    inter = x509.load_pem_x509_certificate(certs[0].encode())
    root = x509.load_pem_x509_certificate(certs[1].encode())
    assert root.subject.rfc4514_string() == "CN=MarbleRun Coordinator"
    assert inter.subject.rfc4514_string() == "CN=MarbleRun Coordinator - Intermediate CA"
    issued_by(inter, root)
    q = base64.b64decode(d["quote"])
    assert q[:8] == bytes([1, 0, 0, 0, 2, 0, 0, 0])
    assert int.from_bytes(q[8:16], "little") == len(q) - 16
    f = tmp_path / f"quote-{time.monotonic_ns()}.bin"
    f.write_bytes(q[16:])
    v = moat("quote", "verify", f, "--json", "--tcb-info", sim / "tcb_info.json",
             "--qe-identity", sim / "qe_identity.json", "--pck-crl", sim / "pck_crl.der",
             "--root-crl", sim / "root_crl.der", "--tcb-info-chain", sim / "tcb_chain.pem",
             "--trusted-root", sim / "root_ca.pem")
    assert v.returncode == 0, v.stderr
    j = json.loads(v.stdout)
    assert j["accepted"] is True
    expect = hashlib.sha256(der_of(certs[1]) + (nonce or b"")).hexdigest()
    assert j["report_data"] == expect + "00" * 32
    # v1 names the same fields Cert/Quote
    r1 = c.request("GET", "/quote")
    assert set(r1.json["data"]) == {"Cert", "Quote"}
    assert r1.json["data"]["Cert"] == d["cert"]


class TestManifestAndQuote:
    def test_status_3(self, running):
        code, body = running.curl(running.url("/api/v2/status"))
        assert json.loads(body)["data"] == {"code": 3, "message": MSG[3]}
        code, body = running.curl(running.url("/status"))
        assert json.loads(body)["data"] == {"StatusCode": 3, "StatusMessage": MSG[3]}

    def test_quote_with_and_without_nonce(self, running, moat, sim, tmp_path):
        check_quote(running, moat, sim, tmp_path, None)
        check_quote(running, moat, sim, tmp_path, b"\xfb\xff nonce \x00\x01")

    def test_get_manifest_v2_v1(self, running):
        r = running.v2("GET", "/manifest")
        assert r.status == 200, r
        d = r.json["data"]
        raw = base64.b64decode(d["manifest"])
        assert raw == running.raw  # byte-exact (§1)
        assert d["manifestFingerprint"] == hashlib.sha256(raw).hexdigest()
        root = x509.load_pem_x509_certificate(running.root_pem().encode())
        root.public_key().verify(base64.b64decode(d["manifestSignatureRootECDSA"]),
                                 hashlib.sha256(raw).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
        code, body = running.curl(running.url("/manifest"))
        d1 = json.loads(body)["data"]
        assert d1 == {"ManifestSignatureRootECDSA": d["manifestSignatureRootECDSA"],
                      "ManifestSignature": d["manifestFingerprint"], "Manifest": d["manifest"]}

    def test_second_manifest_refused(self, running):
        r = running.v2("POST", "/manifest", {"manifest": b64(running.raw)})
        assert r.status == 500 and r.json["message"] == NOT_IN_STATE, r
        assert r.ctype.startswith("text/plain") and r.body.endswith(b"\n")
        r = running.request("POST", "/manifest", running.raw)
        assert r.status == 400 and r.json["message"] == NOT_IN_STATE, r
        code, body = running.curl("--data-binary", "@-", running.url("/manifest"))
        assert code == 400 and json.loads(body)["message"] == NOT_IN_STATE

    def test_v2_set_manifest_without_recovery_keys(self, module_start, users):
        c = module_start()
        r = c.v2("POST", "/manifest", {"manifest": b64(raw_of(main_manifest(users)))})
        # v2's ManifestSetResponse always has the field (a nil map encodes as null)
        assert r.status == 200 and r.json == {"status": "success",
                                              "data": {"RecoverySecrets": None}}, r
        assert c.status() == 3
        c.stop()


# ---------------------------------------------------------------------------------------------
# 2. Activation (§4.3, §4.4)


class TestActivation:
    def test_success(self, running, marble):
        resp = marble.activate(running.mesh, "hello", mrenclave=U1)
        p = resp.Parameters
        uid = marble.last_uuid
        files, env = dict(p.Files), dict(p.Env)
        # the marble leaf (§3.3): CN = UUID, type extension, issued by the marble root
        leaf = x509.load_pem_x509_certificate(files["/secret/cert.pem"])
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == uid
        ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.9903.2.1"))
        assert ext.value.value == b"hello"
        marble_root = x509.load_pem_x509_certificate(env["MARBLE_PREDEFINED_ROOT_CA"])
        issued_by(leaf, marble_root)
        assert marble_root.public_bytes(serialization.Encoding.PEM) == \
            running.mesh_cert().encode()
        chain = pems(env["MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN"].decode())
        assert len(chain) == 2 and der_of(chain[0]) == leaf.public_bytes(
            serialization.Encoding.DER)
        inter = x509.load_pem_x509_certificate(chain[1].encode())
        coord_root = x509.load_pem_x509_certificate(env["MARBLE_PREDEFINED_COORDINATOR_ROOT_CA"])
        issued_by(inter, coord_root)
        assert coord_root.public_bytes(serialization.Encoding.PEM).decode() == running.root_pem()
        key = serialization.load_pem_private_key(env["MARBLE_PREDEFINED_PRIVATE_KEY"], None)
        assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
        # the templates
        sk = env["SK"].decode()
        assert re.fullmatch(r"[0-9a-f]{32}", sk)
        assert env["PLAIN"] == b"literal"
        assert files["/secret/raw"] == b"{{ raw .Secrets.sk }}"
        assert list(p.Argv) == ["./hello", "{{ hex .Secrets.sk }}"]  # Argv is never templated
        # a shared secret is the same for every activation
        again = marble.activate(running.mesh, "hello", mrenclave=U1)
        assert again.Parameters.Env["SK"].decode() == sk

    def test_signer_identity(self, running, marble):
        r = marble.activate(running.mesh, "signed", mrenclave="44" * 32, mrsigner=S1, prodid=7,
                            svn=5)
        assert r.Parameters.Env["X"] == b"y"

    def test_debug_package_accepts_debug_quote(self, running, marble):
        marble.activate(running.mesh, "dbg", mrenclave=U2, debug=True)

    @pytest.mark.parametrize("marble_type,kwargs,expect", [
        ("hello", {"mrenclave": "99" * 32}, "PackageProperties not compliant"),
        ("hello", {"mrenclave": U1, "debug": True}, "PackageProperties not compliant"),
        ("dbg", {"mrenclave": U2}, "PackageProperties not compliant"),
        ("signed", {"mrsigner": S1, "prodid": 7, "svn": 2}, "PackageProperties not compliant"),
        ("signed", {"mrsigner": S1, "prodid": 8, "svn": 3}, "PackageProperties not compliant"),
        ("signed", {"mrsigner": "55" * 32, "prodid": 7, "svn": 3},
         "PackageProperties not compliant"),
        ("hello", {"mrenclave": U1, "bind": False}, "hash(cert) != report.Data"),
        ("hello", {"mrenclave": U1, "quote": b""}, "invalid quote"),
        ("hello", {"mrenclave": U1, "quote": b"\x01\x00\x00\x00\x02" + b"\x00" * 40},
         "invalid quote"),
    ], ids=["wrong-uniqueid", "debug-quote-for-production", "production-quote-for-debug",
            "svn-too-low", "wrong-prodid", "wrong-signer", "report-data-unbound",
            "empty-quote", "garbage-quote"])
    def test_refused(self, running, marble, marble_type, kwargs, expect):
        code, details = refused(lambda: marble.activate(running.mesh, marble_type, **kwargs))
        assert code == grpc.StatusCode.PERMISSION_DENIED, details
        assert details.startswith("marble verification failed: "), details
        assert expect in details, details
        if "PackageProperties" in expect:
            assert "PackageProperties not compliant:\nexpected: {" in details
            assert "\ngot: {" in details

    def test_unknown_marble_type(self, running, marble):
        code, details = refused(lambda: marble.activate(running.mesh, "nosuch"))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details == "marble verification failed: unknown marble type requested"

    def test_invalid_uuid(self, running, marble):
        code, details = refused(lambda: marble.activate(running.mesh, "hello", uid="not-a-uuid",
                                                        mrenclave=U1))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("invalid UUID"), details

    def test_max_activations(self, running, marble):
        # every activation counts, even with the same UUID (§4.3)
        uid = str(uuidlib.uuid4())
        for _ in range(2):
            marble.activate(running.mesh, "limited", uid=uid, mrenclave=U1)
        code, details = refused(lambda: marble.activate(running.mesh, "limited", uid=uid,
                                                        mrenclave=U1))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details == ('marble verification failed: reached max activations count (2) for '
                           'marble type "limited"')

    def test_simulation_mode_accepts_empty_quote(self, start, users, marble):
        c = start("--simulation", "--no-seal")
        assert "SIMULATION" in c.text()
        c.set_manifest(raw_of(main_manifest(users)))
        r = marble.activate(c.mesh, "hello", quote=b"")
        assert "/secret/cert.pem" in r.Parameters.Files
        # MaxActivations and the marble types still apply (§6)
        code, details = refused(lambda: marble.activate(c.mesh, "nosuch", quote=b""))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        # /quote: an empty quote
        assert c.v2("GET", "/quote").json["data"]["quote"] == ""


# ---------------------------------------------------------------------------------------------
# 3. Users and secrets (§1.4, §3.5)


class TestSecrets:
    def test_read_shared_secret(self, running, users, marble):
        r = running.v2("GET", "/secrets?s=sk", cert=users["alice"])
        assert r.status == 200, r
        sk = r.json["data"]["secrets"]["sk"]
        assert sk["Type"] == "symmetric-key"
        key = base64.b64decode(sk["Private"])
        assert len(key) == 16
        env = marble.activate(running.mesh, "hello", mrenclave=U1).Parameters.Env
        assert env["SK"].decode() == key.hex()
        # v1: a bare map, with curl and a client certificate
        code, body = running.curl(running.url("/secrets?s=sk"), cert=users["alice"])
        assert code == 200, body
        assert json.loads(body)["data"]["sk"]["Private"] == sk["Private"]

    def test_unauthenticated(self, running, users):
        r = running.v2("GET", "/secrets?s=sk")
        assert r.status == 401, r
        assert r.json["message"] == "no client certificate provided"
        r = running.v2("GET", "/secrets?s=sk", cert=users["mallory"])
        assert r.status == 401, r
        assert r.json["message"] == ("unauthorized user: client certificate did not match any "
                                     "MarbleRun users")
        code, body = running.curl(running.url("/api/v2/secrets?s=sk"), cert=users["mallory"])
        assert code == 401

    def test_permission(self, running, users):
        r = running.v2("GET", "/secrets?s=sk", cert=users["bob"])
        assert r.status == 500, r
        assert r.json["message"] == "user bob is not allowed to read one or more secrets of: [sk]"
        r = running.request("GET", "/secrets?s=sk", cert=users["bob"])
        assert r.status == 400, r

    def test_write_user_secret_then_activate(self, running, users, marble):
        code, details = refused(lambda: marble.activate(running.mesh, "usersec", mrenclave=U1))
        assert code == grpc.StatusCode.INTERNAL
        assert details.endswith("tried to parse secret with empty value"), details
        r = running.v2("POST", "/secrets", {"secrets": {"userplain": {
            "Key": b64(b"from the user\n")}}}, cert=users["bob"])
        assert r.status == 200 and r.json == {"status": "success", "data": None}, r
        files = marble.activate(running.mesh, "usersec", mrenclave=U1).Parameters.Files
        assert files["/secret/user.txt"] == b"from the user\n"
        # v1: the raw map
        r = running.request("POST", "/secrets", json.dumps(
            {"userplain": {"Key": b64(b"v1 value")}}).encode(), cert=users["alice"])
        assert r.status == 200, r
        r = running.v2("GET", "/secrets?s=userplain", cert=users["alice"])
        assert base64.b64decode(r.json["data"]["secrets"]["userplain"]["Private"]) == b"v1 value"
        files = marble.activate(running.mesh, "usersec", mrenclave=U1).Parameters.Files
        assert files["/secret/user.txt"] == b"v1 value"
        # nobody may write a generated secret
        r = running.v2("POST", "/secrets", {"secrets": {"sk": {"Key": b64(b"x" * 16)}}},
                       cert=users["alice"])
        assert r.status in (400, 500) and r.json["status"] in ("error", "fail"), r


# ---------------------------------------------------------------------------------------------
# 4. Updates (§1.8)


def update_manifest(users, threshold=0):
    m = main_manifest(users)
    m["Users"] = {
        "alice": {"Certificate": pem_of(users, "alice"), "Roles": ["pkg", "full"]},
        "bob": {"Certificate": pem_of(users, "bob"), "Roles": ["full"]},
        "carol": {"Certificate": pem_of(users, "carol"), "Roles": []},
    }
    m["Roles"] = {
        "pkg": {"ResourceType": "Packages", "ResourceNames": ["signed"],
                "Actions": ["UpdateSecurityVersion"]},
        "full": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]},
    }
    if threshold:
        m["Config"] = {"UpdateThreshold": threshold}
    return m


class TestUpdates:
    def test_package_update(self, start, users, marble):
        c = start()
        c.set_manifest(raw_of(update_manifest(users)))
        before_root, before_mesh = c.root_pem(), c.mesh_cert()
        pkg = {"Packages": {"signed": {"SecurityVersion": 5}}}
        r = c.v2("POST", "/update", {"manifest": b64(json.dumps(pkg).encode())},
                 cert=users["carol"])
        assert r.status == 500 and "carol" in r.json["message"], r
        r = c.v2("POST", "/update", {"manifest": b64(json.dumps(pkg).encode())},
                 cert=users["alice"])
        assert r.status == 200, r
        log = c.v2("GET", "/update").json["data"]["updateLog"]
        assert any("signed" in line and "5" in line for line in log), log
        code, body = c.curl(c.url("/update"))
        assert code == 200 and json.loads(body)["data"].rstrip("\n").split("\n") == log
        # a new marble root on the Marble API, the same Coordinator root (§1.8)
        after_mesh = c.mesh_cert()
        assert after_mesh != before_mesh and c.root_pem() == before_root
        code, details = refused(lambda: marble.activate(c.mesh, "signed", mrsigner=S1, prodid=7,
                                                        svn=4))
        assert "PackageProperties not compliant" in details
        env = marble.activate(c.mesh, "signed", mrsigner=S1, prodid=7, svn=5).Parameters.Env
        assert env["MARBLE_PREDEFINED_ROOT_CA"].decode() == after_mesh
        # downgrades are refused
        down = {"Packages": {"signed": {"SecurityVersion": 4}}}
        r = c.v2("POST", "/update", {"manifest": b64(json.dumps(down).encode())},
                 cert=users["alice"])
        assert r.status == 500 and r.json["message"].endswith(
            "update manifest tries to downgrade SecurityVersion of the original manifest"), r

    def test_full_update_acknowledge_and_cancel(self, start, users, marble):
        c = start()
        c.set_manifest(raw_of(update_manifest(users)))
        old_mesh = c.mesh_cert()
        new = update_manifest(users)
        new["Marbles"]["extra"] = {"Package": "prod", "Parameters": {"Env": {"NEW": "1"}}}
        new_raw = raw_of(new)
        r = c.v2("POST", "/update", {"manifest": b64(new_raw)}, cert=users["alice"])
        assert r.status == 200, r
        assert r.json["data"]["missingAcknowledgments"] == 1
        assert r.json["data"]["missingUsers"] == ["bob"]
        g = c.v2("GET", "/update-manifest")
        assert g.status == 200 and base64.b64decode(g.json["data"]["manifest"]) == new_raw, g
        # not applied yet
        assert base64.b64decode(c.v2("GET", "/manifest").json["data"]["manifest"]) != new_raw
        # a second update while one is pending
        r = c.v2("POST", "/update", {"manifest": b64(new_raw)}, cert=users["bob"])
        assert r.status == 500 and r.json["message"].endswith(
            "update already in progress. Acknowledge the update to apply it, or cancel it to "
            "start a new one"), r
        r = c.v2("POST", "/update-manifest", {"manifest": b64(new_raw)}, cert=users["bob"])
        assert r.status == 200, r
        assert r.json["data"]["missingAcknowledgments"] == 0
        d = c.v2("GET", "/manifest").json["data"]
        assert base64.b64decode(d["manifest"]) == new_raw
        assert d["manifestFingerprint"] == hashlib.sha256(new_raw).hexdigest()
        root = x509.load_pem_x509_certificate(c.root_pem().encode())
        root.public_key().verify(base64.b64decode(d["manifestSignatureRootECDSA"]),
                                 hashlib.sha256(new_raw).digest(),
                                 ec.ECDSA(Prehashed(hashes.SHA256())))
        assert c.mesh_cert() != old_mesh
        assert marble.activate(c.mesh, "extra", mrenclave=U1).Parameters.Env["NEW"] == b"1"
        # cancel
        third = update_manifest(users)
        third["Marbles"]["other"] = {"Package": "prod"}
        r = c.v2("POST", "/update", {"manifest": b64(raw_of(third))}, cert=users["bob"])
        assert r.status == 200, r
        r = c.v2("POST", "/update-cancel", cert=users["carol"])
        assert r.status == 500, r
        r = c.v2("POST", "/update-cancel", cert=users["alice"])
        assert r.status == 200, r
        assert r.json["data"] == {"message": "Update successfully cancelled"}
        g = c.v2("GET", "/update-manifest")
        assert g.status == 404 and g.json["message"] == "no update in progress", g
        assert base64.b64decode(c.v2("GET", "/manifest").json["data"]["manifest"]) == new_raw


# ---------------------------------------------------------------------------------------------
# 5. Recovery (§3.4) and 6. persistence


def rsa_key():
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = k.public_key().public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return k, pub


class TestRecoveryAndPersistence:
    def test_restart_keeps_state(self, start, users, tmp_path, marble):
        seal = tmp_path / "seal-keep"
        c = start(seal_dir=seal)
        raw = raw_of(main_manifest(users))
        c.set_manifest(raw)
        root = c.root_pem()
        sk = c.v2("GET", "/secrets?s=sk", cert=users["alice"]).json["data"]["secrets"]["sk"]
        assert c.stop() == 0
        c = start(seal_dir=seal)
        assert c.status() == 3
        assert c.root_pem() == root
        assert base64.b64decode(c.v2("GET", "/manifest").json["data"]["manifest"]) == raw
        assert c.v2("GET", "/secrets?s=sk", cert=users["alice"]).json["data"]["secrets"][
            "sk"] == sk
        marble.activate(c.mesh, "hello", mrenclave=U1)

    def test_recovery(self, start, users, tmp_path):
        seal = tmp_path / "seal-rec"
        rk, rk_pub = rsa_key()
        m = main_manifest(users)
        m["RecoveryKeys"] = {"rk": rk_pub}
        raw = raw_of(m)
        c = start(seal_dir=seal)
        data = c.set_manifest(raw)
        assert set(data["RecoverySecrets"]) == {"rk"}
        root = c.root_pem()
        assert c.stop() == 0
        # another machine: another sealing key, the sealed state no longer opens (§3.2)
        other = {"MOAT_MACHINE_SECRET": str(tmp_path / "other-machine.key")}
        c = start(seal_dir=seal, env=other)
        assert c.status() == 1
        assert c.v2("GET", "/status").json["data"]["message"] == MSG[1]
        assert c.request("GET", "/status").json["data"] == {"StatusCode": 1,
                                                            "StatusMessage": MSG[1]}
        assert ("Failed to decrypt sealed state. Proceeding with a new state. Use the /recover "
                "API endpoint") in c.text()  # §3.2
        assert c.root_pem() != root  # a fresh temporary CA
        r = c.request("POST", "/recover", b"{}")
        assert r.status == 410 and r.json["message"] == (
            "Recovering the Coordinator using the /recover API endpoint has been disabled. "
            "Use the /api/v2/recover endpoint instead."), r
        # the marbles are refused while in recovery
        r = c.v2("GET", "/secrets?s=sk", cert=users["alice"])
        assert r.status != 200
        secret = rk.decrypt(base64.b64decode(data["RecoverySecrets"]["rk"]),
                            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                         algorithm=hashes.SHA256(), label=None))
        assert len(secret) == 32
        sig = rk.sign(secret, padding.PKCS1v15(), hashes.SHA256())
        # a wrong signature is refused and leaves the Coordinator in recovery
        r = c.v2("POST", "/recover", {"recoverySecret": b64(secret),
                                      "recoverySecretSignature": b64(b"\x00" * 256)})
        assert r.status != 200 and c.status() == 1, r
        # the secret encrypted for the ephemeral key (§3.4 step 3)
        pk = c.v2("GET", "/recover/public-key")
        assert pk.status == 200 and pk.json["data"]["algorithm"] == "RSA", pk
        eph = serialization.load_der_public_key(
            base64.b64decode(pk.json["data"]["ephemeralPublicKey"]))
        assert eph.key_size == 4096
        enc = eph.encrypt(secret, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                               algorithm=hashes.SHA256(), label=None))
        r = c.v2("POST", "/recover", {"recoverySecret": b64(enc),
                                      "recoverySecretSignature": b64(sig)})
        assert r.status == 200, r
        assert r.json["data"] == {"remaining": 0, "message": "Recovery successful."}
        assert c.status() == 3
        assert c.root_pem() == root
        assert base64.b64decode(c.v2("GET", "/manifest").json["data"]["manifest"]) == raw
        # re-sealed for this machine: a restart there opens it without recovery
        assert c.stop() == 0
        c = start(seal_dir=seal, env=other)
        assert c.status() == 3 and c.root_pem() == root
        r = c.v2("GET", "/recover/public-key")
        assert r.status == 500 and r.json["message"] == NOT_IN_STATE, r

    def test_kill9_during_activations(self, start, users, tmp_path, marble):
        """The store commits whole states: killed while activations commit (MaxActivations
        counters), the Coordinator restarts with a consistent state and never forgets an
        acknowledged activation."""
        seal = tmp_path / "seal-flood"
        m = main_manifest(users)
        limit = 40
        m["Marbles"]["limited"]["MaxActivations"] = limit
        c = start("--simulation", seal_dir=seal)
        c.set_manifest(raw_of(m))
        root = c.root_pem()
        done = []
        stop = threading.Event()

        def flood():
            while not stop.is_set():
                try:
                    marble.activate(c.mesh, "limited", quote=b"")
                    done.append(1)
                except (grpc.RpcError, OSError):  # killed
                    return

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futs = [ex.submit(flood) for _ in range(4)]
            deadline = time.monotonic() + 30
            while len(done) < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            c.kill()
            stop.set()
            for f in futs:
                f.result()
        acknowledged = len(done)
        assert acknowledged >= 8
        c = start("--simulation", seal_dir=seal)
        assert c.status() == 3 and c.root_pem() == root
        more = 0
        while True:
            try:
                marble.activate(c.mesh, "limited", quote=b"")
                more += 1
            except grpc.RpcError as e:
                assert "reached max activations count" in e.details(), e.details()
                break
            assert more <= limit
        assert acknowledged + more <= limit

    def test_kill9_during_set_manifest(self, start, users, tmp_path):
        raw = raw_of(main_manifest(users))
        for i, delay in enumerate((0.0, 0.02, 0.08)):
            seal = tmp_path / f"seal-k{i}"
            c = start(seal_dir=seal)
            t = threading.Thread(target=lambda: _ignore(c.set_manifest, raw))
            t.start()
            time.sleep(delay)
            c.kill()
            t.join(60)
            c = start(seal_dir=seal)
            st = c.status()
            assert st in (2, 3), st
            if st == 3:
                got = base64.b64decode(c.v2("GET", "/manifest").json["data"]["manifest"])
                assert got == raw
            else:
                c.set_manifest(raw)
            c.kill()


    def test_kill9_during_update(self, start, users, tmp_path, marble):
        """A package update is one commit: after kill -9 at any moment the restart has either
        the old SecurityVersion and marble root, or the new ones, never a mix."""
        pkg = {"Packages": {"signed": {"SecurityVersion": 5}}}
        body = {"manifest": b64(json.dumps(pkg).encode())}
        for i, delay in enumerate((0.0, 0.01, 0.05)):
            seal = tmp_path / f"seal-u{i}"
            c = start(seal_dir=seal)
            c.set_manifest(raw_of(update_manifest(users)))
            before = c.mesh_cert()
            t = threading.Thread(target=lambda: _ignore(c.v2, "POST", "/update", body,
                                                        users["alice"]))
            t.start()
            time.sleep(delay)
            c.kill()
            t.join(60)
            c = start(seal_dir=seal)
            assert c.status() == 3
            log = c.v2("GET", "/update").json["data"]["updateLog"]
            updated = any("SecurityVersion increased" in line for line in log)
            assert (c.mesh_cert() != before) == updated, log
            svn = 5 if updated else 4
            marble.activate(c.mesh, "signed", mrsigner=S1, prodid=7, svn=svn)
            if updated:
                code, details = refused(lambda: marble.activate(c.mesh, "signed", mrsigner=S1,
                                                                prodid=7, svn=4))
                assert "PackageProperties not compliant" in details
            c.kill()


def _ignore(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# 7. The process


class TestProcess:
    def test_sigterm_with_client_connected(self, start, users):
        c = start()
        c.set_manifest(raw_of(main_manifest(users)))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        idle = ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.client)))
        half = socket.create_connection(("127.0.0.1", c.mesh))  # TCP only, no TLS
        t0 = time.monotonic()
        assert c.stop() == 0, c.text()
        assert time.monotonic() - t0 < 15
        assert "SIGTERM received" in c.text()
        idle.close()
        half.close()

    def test_json_logs(self, start):
        c = start(env={"EDG_LOG_FORMAT": "json"})
        assert c.status() == 2
        assert c.stop() == 0
        lines = [line for line in c.text().splitlines() if line.strip()]
        assert len(lines) >= 3
        for line in lines:
            assert isinstance(json.loads(line), dict), line

    def test_usage(self, moat):
        r = moat("coordinator", "--help")
        assert r.returncode == 0 and "usage: moat coordinator" in r.stdout + r.stderr
        r = moat("coordinator", "--no-such-flag")
        assert r.returncode == 2, r.stderr
        r = moat("coordinator", "--log-format", "xml")
        assert r.returncode == 2, r.stderr

    def test_env_config(self, start, tmp_path):
        c = start(flags=False, seal_dir=None, env={
            "EDG_COORDINATOR_CLIENT_ADDR": "127.0.0.1:0",
            "EDG_COORDINATOR_MESH_ADDR": "127.0.0.1:0",
            "EDG_COORDINATOR_PROMETHEUS_ADDR": "127.0.0.1:0",
            "EDG_COORDINATOR_SEAL_DIR": str(tmp_path / "env-seal"),
            "EDG_COORDINATOR_DNS_NAMES": "coordinator.example,10.1.2.3",
        })
        assert c.metrics
        assert c.status() == 2
        root = x509.load_pem_x509_certificate(c.root_pem().encode())
        san = root.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "coordinator.example" in san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        assert {"10.1.2.3", "127.0.0.1"} <= set(ips)
        assert (tmp_path / "env-seal").is_dir()

    def test_metrics_and_events(self, start, users, marble):
        c = start()
        c.set_manifest(raw_of(main_manifest(users)))
        marble.activate(c.mesh, "hello", mrenclave=U1)
        ok_uuid = marble.last_uuid
        refused(lambda: marble.activate(c.mesh, "hello", mrenclave="99" * 32))
        bad_uuid = marble.last_uuid
        conn = http.client.HTTPConnection("127.0.0.1", c.metrics, timeout=30)
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        text = r.read().decode()
        assert r.status == 200, text
        assert "coordinator_state 3" in text
        assert f'marble_activations_total{{type="hello",uuid="{ok_uuid}"}} 1' in text
        assert f'marble_activations_success_total{{type="hello",uuid="{ok_uuid}"}} 1' in text
        assert f'marble_activations_total{{type="hello",uuid="{bad_uuid}"}} 1' in text
        assert f'marble_activations_success_total{{type="hello",uuid="{bad_uuid}"}} 0' in text
        conn.request("GET", "/events")
        r = conn.getresponse()
        events = json.loads(r.read())
        assert r.status == 200
        acts = [e["activation"] for e in events]
        assert {"marbleType": "hello", "uuid": ok_uuid} in [
            {k: a[k] for k in ("marbleType", "uuid")} for a in acts]
        conn.close()


# ---------------------------------------------------------------------------------------------
# 8. The MarbleRun samples (§9)


@pytest.mark.parametrize("sample", ["gramine-hello", "gramine-nginx", "gramine-redis"])
def test_marblerun_sample_manifest(sample, start, shared):
    """Each sample manifest is accepted as is (placeholder UniqueIDs included: Check does not
    parse them; §1.7), stored byte-exact."""
    f = shared / "marblerun-manifests" / sample / "manifest.json"
    c = start("--no-seal")
    # as the sample READMEs do it
    code, body = c.curl("--data-binary", f"@{f}", c.url("/manifest"))
    assert code == 200, body
    assert json.loads(body)["status"] == "success"
    assert c.status() == 3
    got = base64.b64decode(c.v2("GET", "/manifest").json["data"]["manifest"])
    assert got == f.read_bytes()


# ---------------------------------------------------------------------------------------------
# SealMode (§1.6), Graphene-era templates, collateral from a PCCS


def small_manifest(**config):
    m = {"Packages": {"p": {"UniqueID": U1}},
         "Marbles": {"m": {"Package": "p", "Parameters": {
             "Files": {"/dev/attestation/protected_files_key": "{{ hex .Marblerun.SealKey }}",
                       "/root.pem": "{{ pem .Marblerun.RootCA.Cert }}"}}}}}
    if config:
        m["Config"] = config
    return m


class TestSealModeAndGraphene:
    @pytest.mark.parametrize("mode,after", [("", 3), ("ProductKey", 3), ("UniqueKey", 3),
                                            ("Disabled", 2)])
    def test_seal_mode(self, start, tmp_path, mode, after):
        seal = tmp_path / f"seal-{mode or 'default'}"
        c = start(seal_dir=seal)
        root = c.root_pem()
        c.set_manifest(raw_of(small_manifest(SealMode=mode)))
        assert c.status() == 3
        assert c.stop() == 0
        keyinfo = (seal / "sealed_key").read_bytes()
        # the key the state is sealed with is named in sealed_key (docs/coordinator.md)
        assert (b"machine unique" in keyinfo) == (mode == "UniqueKey")
        c = start(seal_dir=seal)
        assert c.status() == after
        assert c.root_pem() == root  # Disabled: the state of before the manifest

    def test_graphene_seal_key(self, start, tmp_path, marble):
        seal = tmp_path / "seal-graphene"
        c = start(seal_dir=seal)
        c.set_manifest(raw_of(small_manifest()))
        assert ".Marblerun.*" in c.text()  # the warning at SetManifest
        uid = str(uuidlib.uuid4())
        key = marble.activate(c.mesh, "m", uid=uid).Parameters.Files[
            "/dev/attestation/protected_files_key"]
        assert re.fullmatch(rb"[0-9a-f]{32}", key)
        assert marble.activate(c.mesh, "m").Parameters.Files[
            "/dev/attestation/protected_files_key"] != key
        assert c.stop() == 0
        c = start(seal_dir=seal)  # the same Marble after a restart: the same key
        assert marble.activate(c.mesh, "m", uid=uid).Parameters.Files[
            "/dev/attestation/protected_files_key"] == key

    def test_new_name_with_seal_key_refused(self, start):
        c = start()
        m = small_manifest()
        m["Marbles"]["m"]["Parameters"]["Files"] = {"/k": "{{ hex .MarbleRun.SealKey }}"}
        r = c.v2("POST", "/manifest", {"manifest": b64(raw_of(m))})
        assert r.status == 500 and "running manifest template dry run" in r.json["message"], r

    def test_secret_set_in_update_log(self, running, users):
        body = {"secrets": {"userplain": {"Key": b64(b"k" * 16)}}}
        r = running.v2("POST", "/secrets", body, cert=users["alice"])
        assert r.status == 200, r
        log = running.v2("GET", "/update").json["data"]["updateLog"]
        lines = [json.loads(line) for line in log if '"Secret set"' in line]
        assert lines and lines[-1]["user"] == "alice" and lines[-1]["secret"] == "userplain"
        assert b64(b"k" * 16) not in "".join(log)


class Pccs:
    """A PCCS serving the simulated platform's collateral (reference/attestation.md §2.4)."""

    def __init__(self, sim):
        import http.server
        import urllib.parse
        sim = Path(sim)
        # PCS's response bodies are these files, byte for byte (the signatures cover the text)
        tcb = (sim / "tcb_info.json").read_bytes()
        qe = (sim / "qe_identity.json").read_bytes()
        chain = urllib.parse.quote((sim / "tcb_chain.pem").read_text(), safe="")
        # the PCK CRL's issuer: the PCK CA and the root (pck_chain.pem without its leaf)
        crl_chain = urllib.parse.quote("".join(pems((sim / "pck_chain.pem").read_text())[1:]),
                                       safe="")
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, body, header=None):
                self.send_response(200)
                if header:
                    self.send_header(header, crl_chain if "CRL" in header else chain)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = urllib.parse.urlparse(self.path).path
                outer.requests.append(path)
                if path == "/sgx/certification/v4/tcb":
                    self.reply(tcb, "TCB-Info-Issuer-Chain")
                elif path == "/sgx/certification/v4/qe/identity":
                    self.reply(qe, "SGX-Enclave-Identity-Issuer-Chain")
                elif path == "/sgx/certification/v4/pckcrl":
                    self.reply((sim / "pck_crl.der").read_bytes(), "SGX-PCK-CRL-Issuer-Chain")
                elif path == "/sgx/certification/v4/rootcacrl":
                    self.reply((sim / "root_crl.der").read_bytes())
                else:
                    self.send_response(404)
                    self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_collateral_from_a_pccs(start, sim, tmp_path, marble):
    """--pccs: the collateral for each Marble's platform is fetched once (FMSPC, PCK CA), kept,
    and verified against the trust anchor like any other."""
    pccs = Pccs(sim)
    try:
        c = start("--pccs", pccs.url, "--pccs-cache", tmp_path / "cache", "--trusted-root",
                  Path(sim) / "root_ca.pem")
        c.set_manifest(raw_of(small_manifest()))
        marble.activate(c.mesh, "m")
        n = len(pccs.requests)
        assert "/sgx/certification/v4/tcb" in pccs.requests and n >= 3
        marble.activate(c.mesh, "m")
        assert len(pccs.requests) == n  # kept in memory
        with pytest.raises(Exception) as e:
            marble.activate(c.mesh, "m", mrenclave=U2)
        assert "PackageProperties not compliant" in str(e.value)
        assert "fetched from " + pccs.url in c.text()
    finally:
        pccs.close()
    # without the trust anchor the simulated collateral (and quotes) are refused
    c = start("--pccs", "http://127.0.0.1:9", "--pccs-cache", tmp_path / "empty")
    c.set_manifest(raw_of(small_manifest()))
    with pytest.raises(Exception) as e:
        marble.activate(c.mesh, "m")
    assert "marble verification failed: invalid quote" in str(e.value)


def test_log_lines_cannot_be_forged(start, users, marble):
    """Marble types come from the network: a newline cannot start a forged log line, and bytes
    that are not UTF-8 cannot make a JSON log line vanish."""
    c = start(env={"EDG_LOG_FORMAT": "json"})
    c.set_manifest(raw_of(main_manifest(users)))
    with pytest.raises(Exception):
        marble.activate(c.mesh, "x\n{\"level\":\"info\",\"msg\":\"forged\"}")
    # a hand-made ActivationReq: MarbleType (field 3) = b"\xff\xfe", UUID (field 4) = "u"
    raw = bytes([0x1a, 2, 0xff, 0xfe, 0x22, 1, ord("u")])
    server = ssl.get_server_certificate(("127.0.0.1", c.mesh)).encode()
    crt, key = users["alice"]
    creds = grpc.ssl_channel_credentials(root_certificates=server,
                                         private_key=Path(key).read_bytes(),
                                         certificate_chain=Path(crt).read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{c.mesh}", creds,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
        call = ch.unary_unary("/rpc.Marble/Activate", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError):
            call(raw, timeout=30)
    time.sleep(0.2)
    lines = c.text().splitlines()
    for line in lines:
        assert json.loads(line)["msg"] != "forged"
    msgs = [json.loads(line)["msg"] for line in lines]
    assert any("MarbleType=x\\x0a{" in m for m in msgs), msgs
    assert any("MarbleType=\\xff\\xfe" in m for m in msgs), msgs


def test_sign_quote_and_monotonic_counter(start, marble, tmp_path):
    """The feature-gated endpoints (§3.5): /sign-quote verifies a quote and signs
    sha256(base64(quote) ‖ tcbStatus) with the root key; /monotonic-counter authenticates a
    Marble by the certificate the Coordinator issued it and keeps max(old, new)."""
    m = small_manifest()
    c = start()
    c.set_manifest(raw_of(m))
    r = c.v2("POST", "/sign-quote", {"sgxQuote": b64(b"x")})
    assert r.status == 403 and r.json["message"] == \
        "SignQuoteEndpoint feature is not enabled in the manifest", r
    r = c.v2("POST", "/monotonic-counter", {"name": "n", "value": 1})
    assert r.status == 403, r

    m["Config"] = {"FeatureGates": ["SignQuoteEndpoint", "MonotonicCounter"]}
    c = start()
    c.set_manifest(raw_of(m))
    quote = marble.quote(b"\x01" * 32)[16:]  # a raw SGX quote, without the OpenEnclave header
    r = c.v2("POST", "/sign-quote", {"sgxQuote": b64(quote)})
    assert r.status == 200, r
    d = r.json["data"]
    assert d["tcbStatus"] == "UpToDate"
    root = x509.load_pem_x509_certificate(c.root_pem().encode())
    digest = hashlib.sha256(b64(quote).encode() + d["tcbStatus"].encode()).digest()
    root.public_key().verify(base64.b64decode(d["verificationSignature"]), digest,
                             ec.ECDSA(Prehashed(hashes.SHA256())))
    bad = bytearray(quote)
    bad[100] ^= 1
    r = c.v2("POST", "/sign-quote", {"sgxQuote": b64(bytes(bad))})
    assert r.status == 400 and r.json["status"] == "fail" and \
        r.json["message"] == "quote verification failed" and r.json["data"]["sgxQuote"], r

    # a Marble's own certificate and key, as the Coordinator issued them
    env = marble.activate(c.mesh, "m").Parameters.Env
    cert, key = tmp_path / "marble.crt", tmp_path / "marble.key"
    cert.write_bytes(env["MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN"])
    key.write_bytes(env["MARBLE_PREDEFINED_PRIVATE_KEY"])
    r = c.v2("POST", "/monotonic-counter", {"name": "n", "value": 5}, cert=(cert, key))
    assert r.status == 200 and r.json["data"] == {"value": 0}, r
    r = c.v2("POST", "/monotonic-counter", {"name": "n", "value": 3}, cert=(cert, key))
    assert r.json["data"] == {"value": 5}, r
    r = c.v2("POST", "/monotonic-counter", {"name": "n", "value": 9}, cert=(cert, key))
    assert r.json["data"] == {"value": 5}, r
    # a self-made certificate is not a Marble's
    r = c.v2("POST", "/monotonic-counter", {"name": "n", "value": 9})
    assert r.status == 401 and r.json["status"] == "fail", r


def test_c_grpc_client(start, moat_path, sim, quote_tool, tmp_path):
    """src/net/grpc_client.c, through bench/apps/marble_load (a C Marble over new TLS + HTTP/2
    connections): the Coordinator's refusal comes back as its gRPC status and words, and
    activations succeed once the manifest is set."""
    load = moat_path.parent.parent.parent / "bench" / "marble_load"
    marbles = tmp_path / "marbles"
    subprocess.run([sys.executable, str(ROOT / "bench" / "apps" / "marble_load.py"), "prepare",
                    str(marbles), str(sim), str(quote_tool), "2"], check=True, timeout=120)
    c = start()
    r = subprocess.run([str(load), str(marbles), f"127.0.0.1:{c.mesh}", "1", "0.5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "rpc error: code = 9 desc = cannot accept marbles in current state" in r.stderr, r
    c.set_manifest(raw_of({
        "Packages": {"bench": {"UniqueID": "11" * 32}},
        "Marbles": {"bench": {"Package": "bench", "Parameters": {
            "Env": {"CERT": "{{ pem .MarbleRun.MarbleCert.Cert }}"}}}}}))
    r = subprocess.run([str(load), str(marbles), f"127.0.0.1:{c.mesh}", "2", "1",
                        f"pid={c.pid}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    out = json.loads(r.stdout)
    assert out["errors"] == 0 and out["activations"] > 0, out
    assert out["server_cpu_per_activation_ms"] > 0, out
    # a closed port: the connection step is named
    r = subprocess.run([str(load), str(marbles), "127.0.0.1:1", "1", "0.5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot connect to 127.0.0.1:1" in r.stderr, r
