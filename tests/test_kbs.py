"""`moat kbs serve` end to end: the key broker of ../shared/reference/attestation.md §4.3 in
passport mode, against `moat amber serve` (§4.1, §4.2) on the SIMULATED platform.

A client nobody here wrote (Python's http.client, python3-cryptography) gets a token whose
runtime data is an RSA-3072 public key in the §4.1 key-release layout (SGX: 4-byte LE exponent ‖
modulus little-endian), transfers a key and unwraps it as §4.3 says: RSA-OAEP (SHA-256, MGF1
SHA-256, no label) of the SWK in `wrapped_swk`, then `wrapped_key` = u32 LE iv_len ‖ u32 LE
tag_len ‖ u32 LE ct_len ‖ IV ‖ AES-256-GCM ciphertext ‖ tag. Servers bind 127.0.0.1:0, print
their port in the start-up line, and are stopped by PID.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-cryptography missing (scripts/install-deps): {e}",
                allow_module_level=True)

API_KEY = "test-api-key-1"
ADMIN = "kbs-admin-token-0123456789"
MRENCLAVE = "ab" * 32
AMBER_STARTED = re.compile(r"token service started on \S+ \(port (\d+)\)")
KBS_STARTED = re.compile(r"key broker started on \S+ \(port (\d+)\)")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s)


class Server:
    def __init__(self, cmd, started, workdir: Path):
        self.log = workdir / f"server-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            m = started.search(self.text())
            if m:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{cmd[1:3]} did not start:\n{self.text()}")
            time.sleep(0.05)
        self.port = int(m.group(1))

    def text(self):
        return self.log.read_text(errors="replace")

    def stop(self, timeout=30):
        """SIGTERM drains and exits 0 (ASan builds: with no leak, no UBSan report)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout)
        assert "Sanitizer" not in self.text() and "runtime error" not in self.text(), self.text()
        return code

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def request(self, method, path, body=None, headers=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=60)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()


def amber(moat_path, workdir, state, sim, *args):
    return Server([moat_path, "amber", "serve", "--addr", "127.0.0.1:0", "--state-dir", state,
                   "--api-key", API_KEY, "--no-seal", "--trust-simulated", sim, *args],
                  AMBER_STARTED, workdir)


def kbs(moat_path, workdir, state, amber_srv, amber_state, *args):
    return Server([moat_path, "kbs", "serve", "--addr", "127.0.0.1:0", "--state-dir", state,
                   "--admin-token", ADMIN, "--no-seal",
                   "--token-jwks", f"https://localhost:{amber_srv.port}/certs",
                   "--token-ca", Path(amber_state) / "tls.pem", *args], KBS_STARTED, workdir)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("kbs-logs")


@pytest.fixture(scope="module")
def amber_state(tmp_path_factory):
    return tmp_path_factory.mktemp("amber-state") / "state"


@pytest.fixture(scope="module")
def ita(moat_path, logs, amber_state, sim):
    s = amber(moat_path, logs, amber_state, sim)
    yield s
    assert s.stop() == 0, s.text()


@pytest.fixture(scope="module")
def kbs_state(tmp_path_factory):
    return tmp_path_factory.mktemp("kbs-state") / "state"


@pytest.fixture(scope="module")
def broker(moat_path, logs, kbs_state, ita, amber_state):
    s = kbs(moat_path, logs, kbs_state, ita, amber_state)
    yield s
    assert s.stop() == 0, s.text()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def held_data(key, tee="SGX") -> bytes:
    """§4.1 key-release convention: 4-byte LE exponent ‖ modulus (SGX little-endian)."""
    n = key.public_key().public_numbers().n.to_bytes(384, "big")
    return struct.pack("<I", 65537) + (n[::-1] if tee == "SGX" else n)


def get_token(srv, quote_tool, sim, runtime: bytes, mrenclave=MRENCLAVE) -> str:
    st, _, body = srv.request("GET", "/appraisal/v1/nonce", headers={"x-api-key": API_KEY})
    assert st == 200, body
    n = json.loads(body)
    # §4.1: SGX report_data[0:32] = SHA-256(val ‖ iat ‖ runtime_data)
    rd = hashlib.sha256(unb64(n["val"]) + unb64(n["iat"]) + runtime).digest() + bytes(32)
    q = bytes.fromhex(subprocess.check_output(
        [str(quote_tool), str(sim), rd.hex(), f"mrenclave={mrenclave}"], timeout=60).decode().strip())
    st, _, body = srv.request("POST", "/appraisal/v1/attest",
                              {"quote": b64(q), "verifier_nonce": n, "runtime_data": b64(runtime)},
                              {"x-api-key": API_KEY, "Accept": "application/json",
                               "Content-Type": "application/json"})
    assert st == 200, body
    return json.loads(body)["token"]


def admin(broker, method, path, body=None, token=ADMIN):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    st, _, out = broker.request(method, path, body, h)
    return st, json.loads(out)


def transfer(broker, key_id, token, accept="application/json"):
    h = {"Content-Type": "application/json"}
    if accept:
        h["Accept"] = accept
    st, h, body = broker.request("POST", f"/kbs/v1/keys/{key_id}/transfer",
                                 {"attestation_token": token}, h)
    return st, json.loads(body)


def unwrap(priv, resp) -> bytes:
    """§4.3, independently of moat's code."""
    swk = priv.decrypt(unb64(resp["wrapped_swk"]),
                       padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                    label=None))
    assert len(swk) == 32
    wk = unb64(resp["wrapped_key"])
    iv_len, tag_len, ct_len = struct.unpack("<III", wk[:12])
    # ct_len counts the tag (§4.3's example header 0c000000 10000000 30000000 for 32 bytes)
    assert (iv_len, tag_len) == (12, 16) and len(wk) == 12 + iv_len + ct_len
    iv = wk[12:24]
    return AESGCM(swk).decrypt(iv, wk[24:], None)


def policy(broker, **sgx_attrs):
    st, p = admin(broker, "POST", "/kbs/v1/key-transfer-policies",
                  {"attestation_type": "SGX", "sgx": {"attributes": sgx_attrs}})
    assert st == 201, p
    return p


def new_key(broker, policy_id, secret=None):
    info = {"algorithm": "AES", "key_length": 256}
    if secret:
        info["key_data"] = b64(secret)
    st, k = admin(broker, "POST", "/kbs/v1/keys", {"key_info": info,
                                                   "transfer_policy_id": policy_id})
    assert st == 201, k
    return k


@pytest.fixture(scope="module")
def good(broker, ita, quote_tool, sim, rsa_key):
    p = policy(broker, mrenclave=[MRENCLAVE], enforce_tcb_upto_date=True, isvsvn=0)
    secret = os.urandom(32)
    k = new_key(broker, p["id"], secret)
    token = get_token(ita, quote_tool, sim, held_data(rsa_key))
    return k, secret, token


# ---------------------------------------------------------------------------------------------


def test_transfer_and_unwrap(broker, good, rsa_key):
    k, secret, token = good
    st, resp = transfer(broker, k["id"], token)
    assert st == 200, resp
    assert set(resp) == {"wrapped_key", "wrapped_swk"}
    wk = unb64(resp["wrapped_key"])
    assert wk[:12] == bytes.fromhex("0c000000" "10000000" "30000000")  # §4.3 example header
    assert len(unb64(resp["wrapped_swk"])) == 384
    assert unwrap(rsa_key, resp) == secret
    # a fresh SWK and IV each time
    st, again = transfer(broker, k["id"], token)
    assert st == 200 and again["wrapped_swk"] != resp["wrapped_swk"]
    assert unwrap(rsa_key, again) == secret


def test_generated_key(broker, good, ita, rsa_key):
    k, _, token = good
    p = k["transfer_policy_id"]
    g = new_key(broker, p)
    assert g["key_info"] == {"algorithm": "AES", "key_length": 256}
    st, r1 = transfer(broker, g["id"], token)
    st2, r2 = transfer(broker, g["id"], token)
    assert st == 200 and st2 == 200
    a, b = unwrap(rsa_key, r1), unwrap(rsa_key, r2)
    assert a == b and len(a) == 32


def test_tampered_wrapped_key_fails(broker, good, rsa_key):
    k, _, token = good
    st, resp = transfer(broker, k["id"], token)
    assert st == 200
    wk = bytearray(unb64(resp["wrapped_key"]))
    wk[30] ^= 1
    with pytest.raises(InvalidTag):
        unwrap(rsa_key, dict(resp, wrapped_key=b64(bytes(wk))))


def test_forged_token(broker, good):
    k, _, token = good
    h, c, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
    claims["sgx_mrenclave"] = "cd" * 32
    c2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    st, resp = transfer(broker, k["id"], f"{h}.{c2}.{s}")
    assert st == 401 and "signature" in resp["error"], resp
    st, resp = transfer(broker, k["id"], "not-a-jwt")
    assert st == 401
    # a token with alg "none" is never accepted
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    st, resp = transfer(broker, k["id"], f"{none}.{c}.")
    assert st == 401


def test_token_from_another_token_service(broker, good, moat_path, logs, tmp_path, sim,
                                          quote_tool, rsa_key):
    k, _, _ = good
    other = amber(moat_path, logs, tmp_path / "other", sim)
    try:
        token = get_token(other, quote_tool, sim, held_data(rsa_key))
    finally:
        assert other.stop() == 0
    st, resp = transfer(broker, k["id"], token)
    assert st == 401 and "JWKS" in resp["error"], resp


def test_expired_token(broker, good, moat_path, logs, amber_state, sim, quote_tool, rsa_key):
    """Same signing keys (state directory), tokens valid for one second."""
    k, _, _ = good
    short = amber(moat_path, logs, amber_state, sim, "--token-validity", "1")
    try:
        token = get_token(short, quote_tool, sim, held_data(rsa_key))
    finally:
        assert short.stop() == 0
    time.sleep(2.5)
    st, resp = transfer(broker, k["id"], token)
    assert st == 401 and "expired" in resp["error"], resp


def test_policy_mismatch(broker, ita, quote_tool, sim, rsa_key):
    p = policy(broker, mrenclave=["cd" * 32])
    k = new_key(broker, p["id"])
    token = get_token(ita, quote_tool, sim, held_data(rsa_key))
    st, resp = transfer(broker, k["id"], token)
    assert st == 403 and "sgx_mrenclave" in resp["error"], resp
    # attester_type must be the policy's
    st, tp = admin(broker, "POST", "/kbs/v1/key-transfer-policies",
                   {"attestation_type": "TDX", "tdx": {"attributes": {"mrtd": []}}})
    assert st == 201, tp
    k2 = new_key(broker, tp["id"])
    st, resp = transfer(broker, k2["id"], token)
    assert st == 403 and "attester_type" in resp["error"], resp
    # isvsvn minimum
    k3 = new_key(broker, policy(broker, isvsvn=1)["id"])
    st, resp = transfer(broker, k3["id"], token)
    assert st == 403 and "sgx_isvsvn" in resp["error"], resp


def test_small_key_refused(broker, good, ita, quote_tool, sim):
    k, _, _ = good
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = small.public_key().public_numbers().n.to_bytes(256, "big")
    token = get_token(ita, quote_tool, sim, struct.pack("<I", 65537) + n[::-1])
    st, resp = transfer(broker, k["id"], token)
    assert st == 400 and "2048" in resp["error"], resp


def test_errors_and_content_types(broker, good):
    k, _, token = good
    st, resp = transfer(broker, "00000000-0000-4000-8000-000000000000", token)
    assert st == 404, resp
    st, resp = transfer(broker, k["id"], token, accept=None)
    assert st == 406, resp
    st, resp = transfer(broker, k["id"], token, accept="application/jwt")
    assert st == 406, resp
    st, _, body = broker.request("POST", f"/kbs/v1/keys/{k['id']}/transfer", b"{}",
                                 {"Accept": "application/json", "Content-Type": "text/plain"})
    assert st == 415, body
    st, _, body = broker.request("POST", f"/kbs/v1/keys/{k['id']}/transfer", b"{",
                                 {"Accept": "application/json", "Content-Type": "application/json"})
    assert st == 400 and json.loads(body)["status"] == 400
    st, _, body = broker.request("POST", f"/kbs/v1/keys/{k['id']}/transfer", b"{}",
                                 {"Accept": "application/json", "Content-Type": "application/json"})
    assert st == 400 and "attestation_token" in json.loads(body)["error"]
    st, _, _ = broker.request("GET", f"/kbs/v1/keys/{k['id']}/transfer")
    assert st == 405
    assert broker.request("GET", "/kbs/v9/nothing")[0] == 404


def test_admin_api(broker, good):
    k, _, _ = good
    assert admin(broker, "GET", "/kbs/v1/keys", token=None)[0] == 401
    assert admin(broker, "GET", "/kbs/v1/keys", token="wrong-token-wrong-token")[0] == 401
    assert admin(broker, "POST", "/kbs/v1/key-transfer-policies", {}, token=None)[0] == 401
    st, keys = admin(broker, "GET", "/kbs/v1/keys")
    assert st == 200 and k["id"] in [x["id"] for x in keys]
    assert all("key_data" not in x for x in keys)
    st, one = admin(broker, "GET", f"/kbs/v1/keys/{k['id']}")
    assert st == 200 and one == k
    st, p = admin(broker, "GET", f"/kbs/v1/key-transfer-policies/{k['transfer_policy_id']}")
    assert st == 200 and p["sgx"]["attributes"]["mrenclave"] == [MRENCLAVE]
    st, err = admin(broker, "POST", "/kbs/v1/key-transfer-policies",
                    {"attestation_type": "SGX", "sgx": {"attributes": {"mrenclave": ["xy"]}}})
    assert st == 400 and "mrenclave" in err["error"]
    st, err = admin(broker, "POST", "/kbs/v1/keys",
                    {"key_info": {"algorithm": "RSA", "key_length": 3072},
                     "transfer_policy_id": k["transfer_policy_id"]})
    assert st == 400 and "AES" in err["error"]
    st, err = admin(broker, "POST", "/kbs/v1/keys",
                    {"key_info": {"algorithm": "AES", "key_length": 256},
                     "transfer_policy_id": "00000000-0000-4000-8000-000000000000"})
    assert st == 400 and "policy" in err["error"]


def test_keys_survive_restart_encrypted(broker, good, kbs_state, moat_path, logs, ita,
                                        amber_state, rsa_key):
    k, secret, token = good
    record = (kbs_state / "keys" / f"{k['id']}.json").read_bytes()
    assert secret not in record and b64(secret).encode() not in record
    assert (kbs_state / "master.key").stat().st_mode & 0o777 == 0o600
    assert kbs_state.stat().st_mode & 0o777 == 0o700
    again = kbs(moat_path, logs, kbs_state, ita, amber_state)
    try:
        st, resp = transfer(again, k["id"], token)
        assert st == 200, resp
        assert unwrap(rsa_key, resp) == secret
    finally:
        assert again.stop() == 0


def test_background_check_needs_token_url(broker, good):
    k, _, _ = good
    st, _, body = broker.request("POST", f"/kbs/v1/keys/{k['id']}/transfer", b"",
                                 {"Accept": "application/json"})
    assert st == 501 and "background-check" in json.loads(body)["error"]


# ---------------------------------------------------------------------------------------------
# §4.3 background-check mode: the broker asks the token service for the nonce and the token


@pytest.fixture(scope="module")
def bg_broker(moat_path, logs, tmp_path_factory, ita, amber_state):
    s = kbs(moat_path, logs, tmp_path_factory.mktemp("kbs-bg") / "state", ita, amber_state,
            "--token-url", f"https://localhost:{ita.port}", "--token-api-key", API_KEY)
    yield s
    assert s.stop() == 0, s.text()


def bg_transfer(broker, key_id, quote_tool, sim, runtime, mrenclave=MRENCLAVE, tee="SGX"):
    st, h, body = broker.request("POST", f"/kbs/v1/keys/{key_id}/transfer", b"",
                                 {"Accept": "application/json"})
    assert st == 200, body
    assert h["attestation-type"] == "SGX"
    n = json.loads(body)
    assert set(n) == {"val", "iat", "signature"}
    rd = hashlib.sha256(unb64(n["val"]) + unb64(n["iat"]) + runtime).digest() + bytes(32)
    q = bytes.fromhex(subprocess.check_output(
        [str(quote_tool), str(sim), rd.hex(), f"mrenclave={mrenclave}"], timeout=60).decode().strip())
    st, _, body = broker.request(
        "POST", f"/kbs/v1/keys/{key_id}/transfer",
        {"quote": b64(q), "nonce": n, "user_data": b64(runtime)},
        {"Accept": "application/json", "Content-Type": "application/json", "Attestation-Type": tee})
    return st, json.loads(body)


def test_background_check(bg_broker, quote_tool, sim, rsa_key):
    secret = os.urandom(32)
    k = new_key(bg_broker, policy(bg_broker, mrenclave=[MRENCLAVE])["id"], secret)
    st, resp = bg_transfer(bg_broker, k["id"], quote_tool, sim, held_data(rsa_key))
    assert st == 200, resp
    assert unwrap(rsa_key, resp) == secret
    # the quote binds another key than user_data: the token service refuses, and so the broker
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    st, _, body = bg_broker.request("POST", f"/kbs/v1/keys/{k['id']}/transfer", b"",
                                    {"Accept": "application/json"})
    n = json.loads(body)
    rd = hashlib.sha256(unb64(n["val"]) + unb64(n["iat"]) + held_data(rsa_key)).digest()
    q = bytes.fromhex(subprocess.check_output(
        [str(quote_tool), str(sim), (rd + bytes(32)).hex(), f"mrenclave={MRENCLAVE}"],
        timeout=60).decode().strip())
    st, _, body = bg_broker.request(
        "POST", f"/kbs/v1/keys/{k['id']}/transfer",
        {"quote": b64(q), "nonce": n, "user_data": b64(held_data(other))},
        {"Accept": "application/json", "Content-Type": "application/json",
         "Attestation-Type": "SGX"})
    assert st == 401 and "attestation failed" in json.loads(body)["error"], body
    # policy mismatch and the wrong TEE type
    k2 = new_key(bg_broker, policy(bg_broker, mrenclave=["cd" * 32])["id"])
    st, resp = bg_transfer(bg_broker, k2["id"], quote_tool, sim, held_data(rsa_key))
    assert st == 403 and "sgx_mrenclave" in resp["error"], resp
    st, resp = bg_transfer(bg_broker, k["id"], quote_tool, sim, held_data(rsa_key), tee="TDX")
    assert st == 403 and "Attestation-Type" in resp["error"], resp
