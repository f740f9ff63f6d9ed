"""The clients of issue 14 (moat-amber-client): `moat amber verify-token` and `moat kbs get-key`,
against `moat amber serve` and `moat kbs serve` on the SIMULATED platform, and — for the x5c
chain and CRL checks of ../shared/reference/attestation.md §4.2 "Verification" — against a PKI
and CRLs made here with python3-cryptography and served over plain HTTP (CRLs are signed).

Debian's python3-jwt is the reference for what a valid token is: verify-token must reject what
it rejects. Servers bind 127.0.0.1:0 and are stopped by PID (test_kbs.py's helpers).
"""
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

try:
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-jwt / python3-cryptography missing (scripts/install-deps): {e}",
                allow_module_level=True)

from test_kbs import amber_state, ita, logs  # noqa: E402,F401 (module-scoped fixtures, shared)
from test_kbs import (MRENCLAVE, admin, amber, get_token, held_data, kbs, new_key,  # noqa: E402
                      policy)

VALID, RUNTIME, USAGE, INVALID = 0, 1, 2, 3


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------------------------------------
# fixtures: a token service, a key broker that checks the chain, a token for an RSA key


@pytest.fixture(scope="module")
def tls(amber_state, ita):
    """moat amber serve's TLS certificate (localhost, 127.0.0.1), reused by the key broker."""
    return amber_state / "tls.pem", amber_state / "tls.key"


@pytest.fixture(scope="module")
def root_ca(amber_state, ita):
    return amber_state / "root_ca.pem"


@pytest.fixture(scope="module")
def broker(moat_path, logs, tmp_path_factory, ita, amber_state, tls, root_ca):
    state = tmp_path_factory.mktemp("clients-kbs") / "state"
    s = kbs(moat_path, logs, state, ita, amber_state, "--token-root-ca", root_ca,
            "--tls-cert", tls[0], "--tls-key", tls[1])
    yield s
    assert s.stop() == 0, s.text()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory, rsa_key):
    p = tmp_path_factory.mktemp("clients-key") / "key.pem"
    p.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return p


@pytest.fixture(scope="module")
def token(ita, quote_tool, sim, rsa_key):
    return get_token(ita, quote_tool, sim, held_data(rsa_key))


def verify(moat, token, *args, tls=None, root=None, input=None):
    a = ["amber", "verify-token"]
    if tls:
        a += ["--cacerts", tls]
    if root:
        a += ["--root-ca", root]
    return moat(*a, *args, token, input=input)


def python_decode(ita, token):
    """PyJWT with the JWK the kid names and the algorithm the JWK says (§4.2)."""
    st, _, body = ita.request("GET", "/certs")
    assert st == 200
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in json.loads(body)["keys"] if k["kid"] == kid)
    return jwt.decode(token, key=jwt.PyJWK(jwk).key, algorithms=[jwk.get("alg", "PS384")],
                      options={"require": ["exp", "iat", "nbf"]})


# ---------------------------------------------------------------------------------------------
# verify-token against moat amber serve


def test_verify_token_valid(moat, ita, token, tls, root_ca, tmp_path):
    claims = python_decode(ita, token)
    r = verify(moat, token, tls=tls[0], root=root_ca)
    assert r.returncode == VALID, r.stdout + r.stderr
    out = r.stdout
    assert "verdict: valid (SIMULATED): PS384 signature of key" in out
    assert "x5c chain to 'moat Amber Attestation Token Root CA'" in out
    assert "CRLs checked (next update" in out
    assert "\nSIMULATED: " in out
    # the header and claims, pretty JSON, as PyJWT decodes them
    header_txt = out[out.index("header:\n") + 8:out.index("\nclaims:\n")]
    assert json.loads(header_txt) == jwt.get_unverified_header(token)
    claims_txt = out[out.index("claims:\n") + 8:out.index("\nSIMULATED:")]
    assert json.loads(claims_txt) == claims
    assert claims["sgx_mrenclave"] == MRENCLAVE and claims["moat_simulated"] is True
    # @FILE, stdin, and an explicit --jwks (a file too)
    f = tmp_path / "token.jwt"
    f.write_text(token + "\n")
    assert verify(moat, f"@{f}", tls=tls[0], root=root_ca).returncode == VALID
    assert verify(moat, "-", tls=tls[0], root=root_ca, input=token).returncode == VALID
    st, _, body = ita.request("GET", "/certs")
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(body)
    r = verify(moat, token, "--jwks", jwks, tls=tls[0], root=root_ca)
    assert r.returncode == VALID and f"from {jwks};" in r.stdout, r.stdout + r.stderr


def test_verify_token_needs_a_trust_anchor(moat, ita, token, tls, root_ca):
    r = verify(moat, token, tls=tls[0])
    assert r.returncode == USAGE and "give --root-ca" in r.stderr, r.stderr
    r = verify(moat, token, "--insecure-self-signed-root", tls=tls[0])
    assert r.returncode == VALID, r.stderr
    assert "NOT a trust anchor" in r.stdout and "--insecure-self-signed-root" in r.stderr
    r = verify(moat, token, "--insecure-no-crl-check", tls=tls[0], root=root_ca)
    assert r.returncode == VALID and "CRLs NOT checked" in r.stdout
    assert "--insecure-no-crl-check" in r.stderr
    # usage errors are not verdicts
    assert moat("amber", "verify-token").returncode == USAGE
    assert moat("amber", "verify-token", "--alg-allow", "HS256", token).returncode == USAGE


def test_verify_token_wrong_root(moat, ita, token, tls, tmp_path):
    r = verify(moat, token, tls=tls[0], root=Path(__file__))  # not a PEM
    assert r.returncode == RUNTIME and "--root-ca" in r.stderr
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Root CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    # another root CA: the chain does not end there
    pem = tmp_path / "other-root.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    r = verify(moat, token, tls=tls[0], root=pem)
    assert r.returncode == INVALID, r.stdout + r.stderr
    assert "verdict: INVALID: the x5c chain does not verify" in r.stdout


def test_verify_token_tampered(moat, ita, token, tls, root_ca):
    h, c, s = token.split(".")
    claims = json.loads(unb64url(c))
    claims["sgx_mrenclave"] = "cd" * 32
    forged = f"{h}.{b64url(json.dumps(claims).encode())}.{s}"
    with pytest.raises(jwt.InvalidSignatureError):
        python_decode(ita, forged)
    r = verify(moat, forged, tls=tls[0], root=root_ca)
    assert r.returncode == INVALID and "signature is invalid" in r.stdout, r.stdout + r.stderr
    sig = bytearray(unb64url(s))
    sig[10] ^= 1
    bad = f"{h}.{c}.{b64url(bytes(sig))}"
    with pytest.raises(jwt.InvalidSignatureError):
        python_decode(ita, bad)
    assert verify(moat, bad, tls=tls[0], root=root_ca).returncode == INVALID
    for junk in ["not-a-jwt", f"{h}.{c}", f"{h}.!!.{s}"]:
        r = verify(moat, junk, tls=tls[0], root=root_ca)
        assert r.returncode == INVALID and "verdict: INVALID" in r.stdout, (junk, r.stdout)


def test_verify_token_alg_confusion(moat, ita, token, tls, root_ca, amber_state):
    """RFC 8725 §3.1: HS256 keyed with the public key, and "none", are refused — by PyJWT too."""
    h, c, _ = token.split(".")
    header = json.loads(unb64url(h))
    st, _, body = ita.request("GET", "/certs")
    jwk = next(k for k in json.loads(body)["keys"] if k["kid"] == header["kid"])
    pub_pem = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    hs = b64url(json.dumps(dict(header, alg="HS256")).encode())
    mac = hmac.new(pub_pem, f"{hs}.{c}".encode(), hashlib.sha256).digest()
    hs_token = f"{hs}.{c}.{b64url(mac)}"
    none_token = f"{b64url(json.dumps(dict(header, alg='none')).encode())}.{c}."
    for t in (hs_token, none_token):
        with pytest.raises(jwt.InvalidTokenError):
            python_decode(ita, t)
        r = verify(moat, t, tls=tls[0], root=root_ca)
        assert r.returncode == INVALID, r.stdout + r.stderr
        assert "but the key" in r.stdout and "is for PS384" in r.stdout, r.stdout
    # --alg-allow excludes the key's algorithm: refused before the signature
    r = verify(moat, token, "--alg-allow", "RS256", tls=tls[0], root=root_ca)
    assert r.returncode == INVALID and "--alg-allow excludes" in r.stdout


def test_verify_token_expired(moat_path, moat, logs, amber_state, sim, quote_tool, rsa_key, tls,
                              root_ca, ita):
    """Same signing keys (state directory), tokens valid for one second."""
    short = amber(moat_path, logs, amber_state, sim, "--token-validity", "1")
    try:
        token = get_token(short, quote_tool, sim, held_data(rsa_key))
    finally:
        assert short.stop() == 0
    time.sleep(2.5)
    with pytest.raises(jwt.ExpiredSignatureError):
        python_decode(ita, token)
    # the jku names the stopped service; the running one has the same keys
    jwks = ("--jwks", f"https://localhost:{ita.port}/certs")
    r = verify(moat, token, *jwks, "--leeway", "0", tls=tls[0], root=root_ca)
    assert r.returncode == INVALID and "token expired at" in r.stdout, r.stdout + r.stderr
    # within the leeway it is still good
    assert verify(moat, token, *jwks, "--leeway", "600", tls=tls[0],
                  root=root_ca).returncode == VALID


# ---------------------------------------------------------------------------------------------
# x5c chains and CRLs made here (§4.2): served over http from a thread


class Pki:
    def __init__(self, crl_base):
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        self.leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        self.root = self.cert("Test Root CA", self.root_key, None, None, True, None)
        self.ca = self.cert("Test Signing CA", self.ca_key, self.root, self.root_key, True,
                            f"{crl_base}/root.crl")
        self.leaf = self.cert("Test Token Signing Certificate", self.leaf_key, self.ca,
                              self.ca_key, False, f"{crl_base}/ca.crl")
        self.crls = {"/root.crl": self.crl(self.root, self.root_key),
                     "/ca.crl": self.crl(self.ca, self.ca_key)}

    def cert(self, cn, key, issuer, issuer_key, ca, cdp):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(self.now - datetime.timedelta(hours=1))
             .not_valid_after(self.now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                              False), critical=True)
        if cdp:
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(cdp)], None, None, None)]), critical=False)
        return b.sign(issuer_key or key, hashes.SHA384())

    def crl(self, issuer, key, revoked=None, next_hours=24):
        b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
             .last_update(self.now - datetime.timedelta(minutes=5 if next_hours > 0 else 180))
             .next_update(self.now + datetime.timedelta(hours=next_hours)))
        if revoked is not None:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(revoked.serial_number)
                                          .revocation_date(self.now).build())
        return b.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)

    def jwks(self):
        pub = self.leaf_key.public_key().public_numbers()
        x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
               for c in (self.leaf, self.ca, self.root)]
        n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "alg": "PS384", "kid": "test-kid", "e": "AQAB",
                          "n": b64url(n), "x5c": x5c}]}

    def token(self, **claims):
        now = int(time.time())
        body = {"iat": now, "nbf": now, "exp": now + 300, "iss": "test", **claims}
        return jwt.encode(body, self.leaf_key, algorithm="PS384", headers={"kid": "test-kid"})


@pytest.fixture
def pki(tmp_path):
    holder = {}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = holder["pki"].crls.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    p = Pki(f"http://127.0.0.1:{srv.server_address[1]}")
    holder["pki"] = p
    (tmp_path / "jwks.json").write_text(json.dumps(p.jwks()))
    (tmp_path / "root.pem").write_bytes(p.root.public_bytes(serialization.Encoding.PEM))
    p.jwks_file, p.root_file = tmp_path / "jwks.json", tmp_path / "root.pem"
    yield p
    srv.shutdown()
    srv.server_close()


def verify_pki(moat, p, token, *args):
    return moat("amber", "verify-token", "--jwks", p.jwks_file, "--root-ca", p.root_file, *args,
                token)


def test_chain_and_crls_made_by_python(moat, pki):
    token = pki.token(sgx_mrenclave=MRENCLAVE)
    r = verify_pki(moat, pki, token)
    assert r.returncode == VALID, r.stdout + r.stderr
    assert "x5c chain to 'Test Root CA'; CRLs checked" in r.stdout
    assert "SIMULATED" not in r.stdout


def test_revoked_leaf(moat, pki):
    pki.crls["/ca.crl"] = pki.crl(pki.ca, pki.ca_key, revoked=pki.leaf)
    r = verify_pki(moat, pki, pki.token())
    assert r.returncode == INVALID, r.stdout + r.stderr
    assert "the leaf certificate 'Test Token Signing Certificate'" in r.stdout
    assert "is revoked" in r.stdout and "/ca.crl" in r.stdout


def test_revoked_intermediate(moat, pki):
    pki.crls["/root.crl"] = pki.crl(pki.root, pki.root_key, revoked=pki.ca)
    r = verify_pki(moat, pki, pki.token())
    assert r.returncode == INVALID and "intermediate certificate 'Test Signing CA'" in r.stdout
    assert "is revoked" in r.stdout


def test_forged_crl(moat, pki):
    """A CRL under the Signing CA's name, signed by another key, is refused."""
    forger = ec.generate_private_key(ec.SECP384R1())
    pki.crls["/ca.crl"] = pki.crl(pki.ca, forger)
    r = verify_pki(moat, pki, pki.token())
    assert r.returncode == INVALID, r.stdout + r.stderr
    assert "the CRL's signature does not verify with the key of 'Test Signing CA'" in r.stdout


def test_expired_crl(moat, pki):
    pki.crls["/root.crl"] = pki.crl(pki.root, pki.root_key, next_hours=-1)
    r = verify_pki(moat, pki, pki.token())
    assert r.returncode == INVALID and "the CRL expired (nextUpdate" in r.stdout, r.stdout


def test_crl_unreachable(moat, pki):
    del pki.crls["/ca.crl"]
    r = verify_pki(moat, pki, pki.token())
    assert r.returncode == RUNTIME and "cannot fetch the CRL" in r.stderr, r.stdout + r.stderr
    # the user may choose to go without
    assert verify_pki(moat, pki, pki.token(), "--insecure-no-crl-check").returncode == VALID


# ---------------------------------------------------------------------------------------------
# moat kbs get-key


@pytest.fixture(scope="module")
def stored(broker):
    p = policy(broker, mrenclave=[MRENCLAVE], enforce_tcb_upto_date=True)
    secret = b"\x00\n" + os.urandom(30)
    return new_key(broker, p["id"], secret), secret


def get_key(moat_path, broker, tls, key_id, *args, url=None):
    """Bytes out (the secret is binary)."""
    return subprocess.run(
        [str(moat_path), "kbs", "get-key", "--url", url or f"https://localhost:{broker.port}",
         "--cacerts", str(tls[0]), *map(str, args), key_id],
        capture_output=True, timeout=120)


def test_get_key(moat_path, broker, stored, token, key_pem, tls, tmp_path):
    k, secret = stored
    out = tmp_path / "secret.bin"
    r = get_key(moat_path, broker, tls, k["id"], "--token", token, "--private-key", key_pem,
                "--out", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == secret
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # stdout, the token from a file, Gramine-style URL, connect-to IP with the URL's TLS name
    tf = tmp_path / "token"
    tf.write_text(token)
    r = get_key(moat_path, broker, tls, k["id"], "--token", f"@{tf}", "--private-key", key_pem,
                "--ip", "127.0.0.1",
                url=f"https://localhost:{broker.port}/kbs/v1/keys/")
    assert r.returncode == 0 and r.stdout == secret, r.stderr
    # --json: the response as it is
    r = get_key(moat_path, broker, tls, k["id"], "--token", token, "--json")
    assert r.returncode == 0, r.stderr
    resp = json.loads(r.stdout)
    assert set(resp) == {"wrapped_key", "wrapped_swk"}
    assert base64.b64decode(resp["wrapped_key"])[:12] == bytes.fromhex("0c000000" "10000000"
                                                                         "30000000")


def test_get_key_errors(moat_path, broker, stored, token, tls, tmp_path, ita, quote_tool, sim):
    k, _ = stored
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    r = get_key(moat_path, broker, tls, k["id"], "--token", token, "--private-key", other_pem)
    assert r.returncode == USAGE
    assert b"attester_held_data is not the public half of --private-key" in r.stderr
    # the key broker refuses: another enclave
    t2 = get_token(ita, quote_tool, sim, held_data(other), mrenclave="cd" * 32)
    r = get_key(moat_path, broker, tls, k["id"], "--token", t2, "--private-key", other_pem)
    assert r.returncode == INVALID and b"HTTP 403" in r.stderr and b"sgx_mrenclave" in r.stderr
    r = get_key(moat_path, broker, tls, "00000000-0000-4000-8000-000000000000", "--token", token,
                "--json")
    assert r.returncode == INVALID and b"HTTP 404" in r.stderr
    for bad in ["../x", "a/b", ""]:
        r = get_key(moat_path, broker, tls, bad, "--token", token, "--json")
        assert r.returncode == USAGE, bad
    r = get_key(moat_path, broker, tls, k["id"], "--token", token)
    assert r.returncode == USAGE and b"--private-key" in r.stderr
    r = get_key(moat_path, broker, tls, k["id"], "--token", token, "--json",
                url=f"http://localhost:{broker.port}")
    assert r.returncode == USAGE
    # TLS is verified: without the CA the connection fails
    r = subprocess.run([str(moat_path), "kbs", "get-key", "--url", f"https://localhost:{broker.port}",
                        "--cacerts", str(Path(__file__)), "--token", token, "--json", k["id"]],
                       capture_output=True, timeout=120)
    assert r.returncode == RUNTIME, r.stderr


def test_broker_checks_the_chain(moat_path, logs, tmp_path, ita, amber_state, tls, broker, pki):
    assert "x5c chain and CRLs of the token service's keys are not checked" not in broker.text()
    # a root CA that is not the token service's: no key is usable, the broker does not start
    from test_kbs import KBS_STARTED, Server
    with pytest.raises(AssertionError) as e:
        Server([moat_path, "kbs", "serve", "--addr", "127.0.0.1:0", "--state-dir",
                tmp_path / "kbs", "--admin-token", "kbs-admin-token-0123456789", "--no-seal",
                "--token-jwks", f"https://localhost:{ita.port}/certs", "--token-ca", tls[0],
                "--token-root-ca", pki.root_file], KBS_STARTED, logs)
    assert "no key of the JWKS" in str(e.value) and "does not verify" in str(e.value)
    # without --token-root-ca: today's behaviour, with a warning
    s = kbs(moat_path, logs, tmp_path / "kbs2", ita, amber_state)
    try:
        assert "x5c chain and CRLs of the token service's keys are not checked" in s.text()
    finally:
        assert s.stop() == 0


def test_client_is_a_program_of_its_own(moat_path):
    """moat never maps libcurl or libevent; moat-amber-client loads libcurl only when it makes a
    request (attest's https.c) and never maps libevent."""
    for prog in (moat_path, moat_path.parent / "moat-amber-client"):
        libs = subprocess.run(["ldd", str(prog)], capture_output=True, text=True).stdout
        assert "libcurl" not in libs and "libevent" not in libs, (prog, libs)
    r = subprocess.run([str(moat_path), "amber", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == USAGE and "unknown subcommand 'frobnicate'" in r.stderr
    r = subprocess.run([str(moat_path), "kbs", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "moat kbs get-key" in r.stdout


def test_kid_with_control_characters(moat, ita, token, tls, root_ca):
    h, c, s = token.split(".")
    header = json.loads(unb64url(h))
    header["kid"] = "\x1b[31mred"
    t = f"{b64url(json.dumps(header).encode())}.{c}.{s}"
    r = verify(moat, t, tls=tls[0], root=root_ca)
    assert r.returncode == INVALID and "\x1b" not in r.stdout + r.stderr
    assert "kid" in r.stdout


# ---------------------------------------------------------------------------------------------
# get-key against a key broker played here: responses wrapped by python3-cryptography (§4.3),
# intact and tampered


@pytest.fixture
def fake_kbs(tls):
    import ssl
    import struct

    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    state = {"requests": []}

    def wrap(pub, secret, iv_len=12, tag_len=16):
        swk, iv = os.urandom(32), os.urandom(12)
        ct = AESGCM(swk).encrypt(iv, secret, None)
        ws = pub.encrypt(swk, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                           algorithm=hashes.SHA256(), label=None))
        # ct_len counts the ciphertext and the tag (§4.3's example header ...30000000)
        wk = struct.pack("<III", iv_len, tag_len, len(ct)) + iv + ct
        return bytearray(wk), ws

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["requests"].append((self.path, dict(self.headers), json.loads(body)))
            out = json.dumps(state["response"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls[0], tls[1])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["url"] = f"https://localhost:{srv.server_address[1]}"
    state["wrap"] = wrap
    yield state
    srv.shutdown()
    srv.server_close()


def test_get_key_unwraps_what_python_wraps(moat_path, fake_kbs, token, key_pem, rsa_key, tls):
    secret = os.urandom(48)
    wk, ws = fake_kbs["wrap"](rsa_key.public_key(), secret)
    fake_kbs["response"] = {"wrapped_key": base64.b64encode(bytes(wk)).decode(),
                            "wrapped_swk": base64.b64encode(ws).decode()}
    r = get_key(moat_path, None, tls, "k-1", "--token", token, "--private-key", key_pem,
                url=fake_kbs["url"])
    assert r.returncode == 0 and r.stdout == secret, r.stderr
    path, headers, body = fake_kbs["requests"][-1]
    assert path == "/kbs/v1/keys/k-1/transfer"
    assert body == {"attestation_token": token}
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("how,message", [
    ("ciphertext", b"'wrapped_key' does not decrypt with the key in 'wrapped_swk' (AES-GCM tag "
                   b"mismatch"),
    ("iv_len", b"'wrapped_key' header: iv_len is 13, not 12"),
    ("tag_len", b"'wrapped_key' header: tag_len is 12, not 16"),
    ("truncated", b"but its header says 12 + 12 + 48"),
    ("other_key", b"'wrapped_swk' does not decrypt with this private key"),
    ("no_swk", b"the response has no 'wrapped_swk'"),
])
def test_get_key_tampered_response(moat_path, fake_kbs, token, key_pem, rsa_key, tls, tmp_path,
                                   how, message):
    pub = rsa_key.public_key()
    if how == "other_key":
        pub = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()
    wk, ws = fake_kbs["wrap"](pub, os.urandom(32), iv_len=13 if how == "iv_len" else 12,
                              tag_len=12 if how == "tag_len" else 16)
    if how == "ciphertext":
        wk[30] ^= 1
    if how == "truncated":
        wk = wk[:-1]
    resp = {"wrapped_key": base64.b64encode(bytes(wk)).decode(),
            "wrapped_swk": base64.b64encode(ws).decode()}
    if how == "no_swk":
        del resp["wrapped_swk"]
    fake_kbs["response"] = resp
    out = tmp_path / "secret"
    r = get_key(moat_path, None, tls, "k-1", "--token", token, "--private-key", key_pem,
                "--out", out, url=fake_kbs["url"])
    assert r.returncode == RUNTIME and message in r.stderr, r.stderr
    assert not out.exists()  # nothing written, not even a partial file
