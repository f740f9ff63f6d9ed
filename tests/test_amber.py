"""`moat amber serve` end to end: the Intel Trust Authority (formerly Project Amber) compatible
token service against clients nobody here wrote (Python's http.client, Debian's python3-jwt,
python3-cryptography).

Section numbers are ../shared/reference/attestation.md's: §4.1 (endpoints of every generation,
the verifier nonce, the report-data binding, request shapes), §4.2 (the token: header, claims,
JWKS with an x5c chain to the service's own root and its CRL). Quotes come from moat's SIMULATED
platform (`moat attest init`) through tests' sim_quote_tool, over report data chosen here.
Servers bind 127.0.0.1:0, print their port in the start-up line, and are killed by PID.
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

try:
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-jwt / python3-cryptography missing (scripts/install-deps): {e}",
                allow_module_level=True)

KEY = "test-api-key-1"
MRENCLAVE = "ab" * 32
STARTED = re.compile(r"token service started on \S+ \(port (\d+)\)")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s)


class Server:
    def __init__(self, moat_path, workdir: Path, state, *args, env=None):
        self.log = workdir / f"amber-{time.monotonic_ns()}.log"
        cmd = [str(moat_path), "amber", "serve"]
        if env is None:
            cmd += ["--addr", "127.0.0.1:0", "--state-dir", str(state), "--api-key", KEY]
        cmd += [str(a) for a in args]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + 120
        while True:
            m = STARTED.search(self.text())
            if m:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"moat amber serve did not start:\n{self.text()}")
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
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def nonce(self, version=1):
        st, _, body = self.request("GET", f"/appraisal/v{version}/nonce", headers={"x-api-key": KEY})
        assert st == 200, body
        return json.loads(body)

    def attest(self, obj, path="/appraisal/v1/attest", accept="application/json", key=KEY,
               ctype="application/json"):
        h = {"Content-Type": ctype}
        if accept:
            h["Accept"] = accept
        if key:
            h["x-api-key"] = key
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return self.request("POST", path, body, h)

    def jwks(self):
        st, _, body = self.request("GET", "/certs")
        assert st == 200
        return json.loads(body)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tmp_path_factory.mktemp("amber-state") / "state"


@pytest.fixture(scope="module")
def server(moat_path, tmp_path_factory, sim, state):
    s = Server(moat_path, tmp_path_factory.mktemp("amber-logs"), state, "--trust-simulated", sim)
    yield s
    assert s.stop() == 0, s.text()


@pytest.fixture(scope="module")
def strict(moat_path, tmp_path_factory, server, state):
    """Same keys (state directory), no --trust-simulated; short nonce validity."""
    s = Server(moat_path, tmp_path_factory.mktemp("amber-logs"), state, "--nonce-validity", "1")
    yield s
    assert s.stop() == 0, s.text()


def quote(tool, sim, report_data: bytes, **kw) -> bytes:
    args = [str(tool), str(sim), report_data.hex(), f"mrenclave={kw.get('mrenclave', MRENCLAVE)}"]
    if kw.get("debug"):
        args.append("debug=1")
    return bytes.fromhex(subprocess.check_output(args, timeout=60).decode().strip())


def bind_sgx(nonce, runtime: bytes) -> bytes:
    """§4.1: SGX report_data[0:32] = SHA-256(val ‖ iat ‖ runtime_data), the rest zero."""
    pre = unb64(nonce["val"]) + unb64(nonce["iat"]) if nonce else b""
    return hashlib.sha256(pre + runtime).digest() + bytes(32)


def verify_token(server, token, alg="PS384"):
    """The token checked by PyJWT with the JWK the header's kid names (§4.2)."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["typ"] == "JWT"
    assert header["jku"] == f"https://localhost:{server.port}/certs"
    assert re.fullmatch(r"[0-9a-f]{96}", header["kid"])
    jwk = next(k for k in server.jwks()["keys"] if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk).key
    return jwt.decode(token, key=key, algorithms=[alg], options={"require": ["exp", "iat", "nbf"]})


@pytest.fixture
def good_v1(server, quote_tool, sim):
    runtime = b"\x01\x00\x01\x00" + os.urandom(384)
    n = server.nonce()
    q = quote(quote_tool, sim, bind_sgx(n, runtime))
    return {"quote": b64(q), "verifier_nonce": n, "runtime_data": b64(runtime)}, n, runtime


# ---------------------------------------------------------------------------------------------
# §4.1 nonce


@pytest.mark.parametrize("version", [1, 2])
def test_nonce_shape_and_signature(server, version):
    n = server.nonce(version)
    assert set(n) == {"val", "iat", "signature"}
    assert len(unb64(n["val"])) == 64
    assert re.fullmatch(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})? \+0000 UTC", unb64(n["iat"]))
    sig = unb64(n["signature"])
    assert len(sig) == 384  # RSA-3072
    # PS384 over val ‖ iat with one of the published keys
    ok = 0
    for k in server.jwks()["keys"]:
        pub = jwt.PyJWK(k).key
        try:
            pub.verify(sig, unb64(n["val"]) + unb64(n["iat"]),
                       padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
                       hashes.SHA384())
            ok += 1
        except Exception:
            pass
    assert ok == 1


def test_headers_auth_and_routes(server):
    st, h, _ = server.request("GET", "/appraisal/v1/nonce",
                              headers={"x-api-key": KEY, "request-id": "req-42"})
    assert st == 200 and h["request-id"] == "req-42"
    assert re.fullmatch(r"[0-9a-f-]{36}", h["trace-id"])
    st, h, body = server.request("GET", "/appraisal/v1/nonce")
    assert st == 401 and "trace-id" in h and "x-api-key" in json.loads(body)["error"]
    st, _, body = server.request("GET", "/appraisal/v2/nonce", headers={"x-api-key": "wrong"})
    assert st == 401 and json.loads(body)["error"] == "invalid API key"
    assert server.request("GET", "/appraisal/v9/nonce")[0] == 404
    assert server.request("GET", "/appraisal/v1/attest", headers={"x-api-key": KEY})[0] == 405
    assert server.request("DELETE", "/certs")[0] == 405


# ---------------------------------------------------------------------------------------------
# §4.1/§4.2 attest, ITA v1


def test_v1_token_verified_by_pyjwt(server, good_v1):
    req, n, runtime = good_v1
    st, h, body = server.attest(req)
    assert st == 200, body
    assert h["content-type"].startswith("application/json")
    c = verify_token(server, json.loads(body)["token"])
    assert c["sgx_mrenclave"] == MRENCLAVE
    assert re.fullmatch(r"[0-9a-f]{64}", c["sgx_mrsigner"])
    assert c["sgx_isvprodid"] == 0 and c["sgx_isvsvn"] == 0
    assert c["sgx_report_data"] == bind_sgx(n, runtime).hex()
    assert c["sgx_is_debuggable"] is False and c["dbgstat"] == "disabled"
    assert c["attester_held_data"] == b64(runtime)
    assert c["verifier_nonce"] == n
    assert c["attester_tcb_status"] == "UpToDate"
    assert c["attester_type"] == "SGX"
    assert isinstance(c["attester_advisory_ids"], list)
    assert c["policy_ids_matched"] == [] and c["policy_ids_unmatched"] == []
    assert len(c["verifier_instance_ids"]) == 1
    assert c["iss"] == "Intel Trust Authority" and c["ver"] == "1.0.0"
    assert c["exp"] == c["iat"] + 300 and c["nbf"] == c["iat"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        c["jti"])
    assert c["eat_profile"].startswith("https://") and c["intuse"] == "generic"
    assert set(c["sgx_collateral"]) >= {"quotehash", "tcbinfohash", "qeidhash"}
    assert c["sgx_collateral"]["quotehash"] == hashlib.sha256(unb64(req["quote"])).hexdigest()
    # simulated, and said so, in the token and loudly in the log
    assert c["moat_simulated"] is True
    assert "SIMULATED quote accepted" in server.text()


def test_rs256_on_request(server, good_v1):
    req, _, _ = good_v1
    st, _, body = server.attest(dict(req, token_signing_alg="RS256"))
    assert st == 200, body
    c = verify_token(server, json.loads(body)["token"], alg="RS256")
    assert c["sgx_mrenclave"] == MRENCLAVE
    st, _, body = server.attest(dict(req, token_signing_alg="HS256"))
    assert st == 400 and b"unsupported token signing algorithm" in body


def test_json_runtime_data_and_no_nonce(server, quote_tool, sim):
    runtime = json.dumps({"keys": [{"kid": "k", "kty": "RSA"}]}).encode()
    q = quote(quote_tool, sim, bind_sgx(None, runtime))
    st, _, body = server.attest({"quote": b64(q), "runtime_data": b64(runtime)})
    assert st == 200, body
    c = verify_token(server, json.loads(body)["token"])
    assert c["attester_runtime_data"] == {"keys": [{"kid": "k", "kty": "RSA"}]}
    assert "verifier_nonce" not in c


# ---------------------------------------------------------------------------------------------
# Amber beta and ITA v2 shapes (§4.1 table)


@pytest.mark.parametrize("path", ["/appraisal/v1/appraise", "/appraisal/v1/attest"])
def test_amber_beta(server, quote_tool, sim, path):
    user = os.urandom(64)
    n = server.nonce()
    q = quote(quote_tool, sim, bind_sgx(n, user))
    st, h, body = server.attest({"quote": b64(q), "nonce": n, "user_data": b64(user)}, path=path,
                                accept="application/jwt")
    assert st == 200, body
    assert h["content-type"] == "application/jwt"
    c = verify_token(server, body.decode())
    assert c["amber_sgx_mrenclave"] == MRENCLAVE
    assert c["amber_tee_held_data"] == b64(user)
    assert c["amber_sgx_is_debuggable"] is False and c["amber_tee_is_debuggable"] is False
    assert c["amber_evidence_type"] == "SGX" and c["amber_tcb_status"] == "UpToDate"
    assert c["amber_signed_nonce"] == n
    assert c["iss"] == "AS Attestation Token Issuer" and c["ver"] == "1.0"
    assert c["moat_simulated"] is True


def test_v2_nested(server, quote_tool, sim):
    runtime = os.urandom(32)
    n = server.nonce(2)
    q = quote(quote_tool, sim, bind_sgx(n, runtime), debug=True)
    st, _, body = server.attest({"sgx": {"quote": b64(q), "verifier_nonce": n,
                                         "runtime_data": b64(runtime)}},
                                path="/appraisal/v2/attest")
    assert st == 200, body
    c = verify_token(server, json.loads(body)["token"])
    assert c["sgx"]["sgx_mrenclave"] == MRENCLAVE
    assert c["sgx"]["sgx_is_debuggable"] is True and c["dbgstat"] == "enabled"
    assert c["sgx"]["attester_held_data"] == b64(runtime)
    assert c["verifier_nonce"] == n and "sgx_mrenclave" not in c
    # client-for-go's GetToken: v1's flat shape to the v2 endpoint; claims nested all the same
    n = server.nonce(2)
    q = quote(quote_tool, sim, bind_sgx(n, runtime))
    st, _, body = server.attest({"quote": b64(q), "verifier_nonce": n,
                                 "runtime_data": b64(runtime)}, path="/appraisal/v2/attest")
    assert st == 200, body
    assert verify_token(server, json.loads(body)["token"])["sgx"]["sgx_mrenclave"] == MRENCLAVE
    # evidence under the wrong TEE
    st, _, body = server.attest({"tdx": {"quote": b64(q), "verifier_nonce": n,
                                         "runtime_data": b64(runtime)}},
                                path="/appraisal/v2/attest")
    assert st == 400 and b"SGX quote" in body


# ---------------------------------------------------------------------------------------------
# Refusals


def test_report_data_mismatch(server, good_v1):
    req, _, _ = good_v1
    st, _, body = server.attest(dict(req, runtime_data=b64(b"something else")))
    assert st == 403 and b"report data does not match" in body


def test_forged_nonce(server, good_v1):
    req, n, _ = good_v1
    sig = bytearray(unb64(n["signature"]))
    sig[10] ^= 1
    st, _, body = server.attest(dict(req, verifier_nonce=dict(n, signature=b64(bytes(sig)))))
    assert st == 403 and b"nonce signature" in body
    # a val of our choosing under a real signature
    st, _, body = server.attest(dict(req, verifier_nonce=dict(n, val=b64(bytes(64)))))
    assert st == 403 and b"nonce signature" in body


def test_stale_nonce(strict, quote_tool, sim):
    n = strict.nonce()
    q = quote(quote_tool, sim, bind_sgx(n, b""))
    time.sleep(2.5)
    st, _, body = strict.attest({"quote": b64(q), "verifier_nonce": n})
    assert st == 403 and b"nonce expired" in body


def test_simulated_quote_needs_trust_simulated(strict, quote_tool, sim):
    n = strict.nonce()
    q = quote(quote_tool, sim, bind_sgx(n, b""))
    st, _, body = strict.attest({"quote": b64(q), "verifier_nonce": n})
    assert st == 403 and b"--trust-simulated" in body


def test_same_keys_after_restart(server, strict):
    """Keys and certificates persist in --state-dir (§4.2 JWKS)."""
    kid = lambda s: sorted(k["kid"] for k in s.jwks()["keys"])  # noqa: E731
    assert kid(server) == kid(strict)


def test_tampered_quote(server, good_v1):
    req, _, _ = good_v1
    q = bytearray(unb64(req["quote"]))
    q[48 + 64] ^= 0xff  # MRENCLAVE (§1.2 at body offset 64)
    st, _, body = server.attest(dict(req, quote=b64(bytes(q))))
    assert st == 403 and b"quote verification failed" in body
    st, _, body = server.attest(dict(req, quote=b64(bytes(q[:100]))))
    assert st == 400


@pytest.mark.parametrize("path, tee", [("sgx/phala/sgx_quote.bin", "sgx"),
                                       ("tdx/phala/tdx_quote_v4.bin", "tdx")])
def test_hardware_quote_without_collateral(server, shared, path, tee):
    """A real Intel quote (testdata/attestation) without --collateral: its TCB cannot be
    evaluated, so no token (verify.h: TcbUnverified is never accepted)."""
    q = (shared / "attestation" / path).read_bytes()
    st, _, body = server.attest({tee: {"quote": b64(q)}}, path="/appraisal/v2/attest")
    assert st == 403 and b"quote verification failed" in body, body
    other = "sgx" if tee == "tdx" else "tdx"
    st, _, body = server.attest({other: {"quote": b64(q)}}, path="/appraisal/v2/attest")
    assert st == 400 and b"quote" in body


def test_wrong_or_missing_api_key_on_attest(server, good_v1):
    req, _, _ = good_v1
    assert server.attest(req, key=None)[0] == 401
    assert server.attest(req, key="nope")[0] == 401


@pytest.mark.parametrize("body, message", [
    (b"{", b"not JSON"),
    (b"[]", b"JSON object"),
    (b'{"quote": 5}', b"'quote' must be a base64 string"),
    (b'{"quote": "@@@@"}', b"'quote' is not valid base64"),
    (b'{"runtime_data": "AAAA"}', b"'quote' is required"),
    (b'{"quote": "AAAA", "policy_ids": ["nope"]}', b"not a UUID"),
    (b'{"quote": "AAAA", "verifier_nonce": {"val": "AAAA"}}', b"needs val, iat and signature"),
])
def test_malformed_requests(server, body, message):
    st, _, out = server.attest(body)
    assert st == 400 and message in out, out


def test_content_negotiation(server, good_v1):
    req, _, _ = good_v1
    assert server.attest(req, ctype="text/plain")[0] == 415
    assert server.attest(req, path="/appraisal/v2/attest", accept="application/jwt")[0] == 406


def test_policy_ids_not_defined(server, good_v1):
    """A policy id the service has no policy for is refused (400)."""
    req, _, _ = good_v1
    pid = "4a6e0e4e-8a3c-4b1b-9e1a-0c1d2e3f4a5b"
    st, _, body = server.attest(dict(req, policy_ids=[pid]))
    assert st == 400 and json.loads(body)["error"] == f"policy {pid} is not defined"


MATCH, NO_MATCH, CUSTOM = ("1b2c3d4e-0000-4000-8000-00000000000" + c for c in "abc")
POLICIES = {
    # ITA's appraisal policy shape (docs/rego.md): matches the simulated quote's enclave
    MATCH: f"""package policy
import future.keywords.in
default matches_sgx_policy = false
matches_sgx_policy = true {{
    input.sgx_mrenclave == "{MRENCLAVE}"
    input.attester_type in ["SGX"]
    input.sgx_is_debuggable == false
}}
""",
    NO_MATCH: """default matches_sgx_policy = false
matches_sgx_policy { input.sgx_isvsvn >= 100 }
""",
    # a token customization policy: its fields become policy_defined_claims
    CUSTOM: """get_token_fields[fields] {
    fields := {"my_mrenclave": input.sgx_mrenclave, "my_svn": input.sgx_isvsvn}
}
""",
}


@pytest.fixture(scope="module")
def with_policies(moat_path, tmp_path_factory, server, state, sim):
    d = tmp_path_factory.mktemp("policies")
    for pid, text in POLICIES.items():
        (d / f"{pid.upper()}.rego").write_text(text)  # any case: ids are canonicalised
    s = Server(moat_path, tmp_path_factory.mktemp("amber-logs"), state, "--trust-simulated", sim,
               "--policy-dir", d)
    yield s
    assert s.stop() == 0, s.text()


def test_policies_matched_unmatched_and_defined_claims(with_policies, quote_tool, sim):
    s = with_policies
    runtime = b"\x01\x00\x01\x00" + os.urandom(384)
    n = s.nonce()
    req = {"quote": b64(quote(quote_tool, sim, bind_sgx(n, runtime))), "verifier_nonce": n,
           "runtime_data": b64(runtime), "policy_ids": [MATCH, NO_MATCH, CUSTOM]}
    st, _, body = s.attest(req)
    assert st == 200, body
    c = verify_token(s, json.loads(body)["token"])
    assert c["policy_ids_matched"] == [{"id": MATCH, "version": "v1"}]
    assert c["policy_ids_unmatched"] == [{"id": NO_MATCH, "version": "v1"}]
    assert c["policy_defined_claims"] == {"my_mrenclave": MRENCLAVE, "my_svn": c["sgx_isvsvn"]}
    # policy_must_match: an unmatched policy gets no token
    st, _, body = s.attest(dict(req, policy_must_match=True))
    assert st == 403 and json.loads(body)["error"] == \
        f"policy {NO_MATCH} did not match (policy_must_match)"
    # a debug enclave does not match the first policy
    n = s.nonce()
    dbg = dict(req, verifier_nonce=n, policy_ids=[MATCH],
               quote=b64(quote(quote_tool, sim, bind_sgx(n, runtime), debug=True)))
    st, _, body = s.attest(dbg)
    assert st == 200, body
    c = verify_token(s, json.loads(body)["token"])
    assert c["policy_ids_matched"] == [] and c["policy_ids_unmatched"][0]["id"] == MATCH


def test_policy_outside_the_subset_stops_the_service(moat_path, tmp_path, state):
    d = tmp_path / "policies"
    d.mkdir()
    (d / f"{MATCH}.rego").write_text("package policy\nallow { input.x == data.y }\n")
    r = subprocess.run([str(moat_path), "amber", "serve", "--addr", "127.0.0.1:0", "--state-dir",
                        str(state), "--api-key", KEY, "--policy-dir", str(d)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"policy {d / (MATCH + '.rego')}: line 2, column " in r.stderr, \
        r.stderr
    assert "data" in r.stderr
    (d / f"{MATCH}.rego").unlink()
    (d / "not-a-uuid.rego").write_text("default match = false\n")
    r = subprocess.run([str(moat_path), "amber", "serve", "--addr", "127.0.0.1:0", "--state-dir",
                        str(state), "--api-key", KEY, "--policy-dir", str(d)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "the name must be <policy id (a UUID)>.rego" in r.stderr


# ---------------------------------------------------------------------------------------------
# Real Intel quotes (testdata/attestation, EXPECTED.json) with their collateral, verified as at a
# time when that collateral was valid (--insecure-verify-at)

AT = "2025-06-20T00:00:00Z"
PHALA_SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
PHALA_TDX_MRTD = ("91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f2"
                  "7428b2538873118b7")


def test_hardware_sgx_quote(moat_path, tmp_path, state, shared):
    att = shared / "attestation"
    s = Server(moat_path, tmp_path, state, "--collateral", att / "sgx/phala/sgx_quote_collateral.json",
               "--insecure-verify-at", AT)
    try:
        assert "--insecure-verify-at 2025-06-20T00:00:00Z" in s.text()
        q = (att / "sgx/phala/sgx_quote.bin").read_bytes()
        st, _, body = s.attest({"quote": b64(q)})
        assert st == 200, body
        c = verify_token(s, json.loads(body)["token"])
        assert c["sgx_mrenclave"] == PHALA_SGX_MRENCLAVE
        assert c["attester_tcb_status"] == "ConfigurationAndSWHardeningNeeded"
        assert c["attester_advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
        assert c["attester_tcb_date"] == "2024-03-13T00:00:00Z"
        assert "moat_simulated" not in c
        assert set(c["sgx_collateral"]) == {"quotehash", "tcbinfohash", "qeidhash",
                                            "tcbinfocerthash", "qeidcerthash", "tcbinfocrlhash",
                                            "qeidcrlhash"}
        coll = json.loads((att / "sgx/phala/sgx_quote_collateral.json").read_text())
        assert c["sgx_collateral"]["tcbinfohash"] == \
            hashlib.sha256(coll["tcb_info"].encode()).hexdigest()
        # the report data ("Hello, world!") binds no nonce of ours
        n = s.nonce()
        st, _, body = s.attest({"quote": b64(q), "verifier_nonce": n})
        assert st == 403 and b"report data does not match" in body
    finally:
        assert s.stop() == 0


def test_hardware_tdx_quote_v2(moat_path, tmp_path, state, shared):
    att = shared / "attestation"
    s = Server(moat_path, tmp_path, state, "--collateral",
               att / "tdx/phala/tdx_quote_v4_collateral.json", "--insecure-verify-at", AT,
               "--accept-tcb", "UpToDate")
    try:
        q = (att / "tdx/phala/tdx_quote_v4.bin").read_bytes()
        st, _, body = s.attest({"tdx": {"quote": b64(q)}, "token_signing_alg": "RS256"},
                               path="/appraisal/v2/attest")
        assert st == 200, body
        c = verify_token(s, json.loads(body)["token"], alg="RS256")
        t = c["tdx"]
        assert t["tdx_mrtd"] == PHALA_TDX_MRTD and t["attester_type"] == "TDX"
        assert t["attester_tcb_status"] == "UpToDate" and t["tdx_is_debuggable"] is False
        assert t["tdx_td_attributes_septve_disable"] is True
        assert "tdx_collateral" in t and "moat_simulated" not in c
    finally:
        assert s.stop() == 0


def test_hardware_quote_with_pccs(moat_path, tmp_path, state, shared):
    """Collateral fetched from a PCCS (a local PCS-shaped server, tests/test_pccs.py), kept
    per platform: the second attestation asks nothing."""
    import http.server
    import threading
    import test_pccs
    Pcs = test_pccs.Pcs
    Pcs.coll = json.loads((shared / test_pccs.VECTOR / "sgx_quote_collateral.json").read_text())
    Pcs.requests, Pcs.tamper = [], False
    pcs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pcs)
    threading.Thread(target=pcs.serve_forever, daemon=True).start()
    s = Server(moat_path, tmp_path, state, "--pccs", f"http://127.0.0.1:{pcs.server_address[1]}",
               "--pccs-cache", tmp_path / "pccs", "--insecure-verify-at", AT)
    try:
        q = (shared / test_pccs.VECTOR / "sgx_quote.bin").read_bytes()
        for _ in range(2):
            st, _, body = s.attest({"quote": b64(q)})
            assert st == 200, body
        assert len(Pcs.requests) == 4, Pcs.requests
        c = verify_token(s, json.loads(body)["token"])
        assert c["attester_tcb_status"] == "ConfigurationAndSWHardeningNeeded"
        assert "fetched from http://127.0.0.1" in s.text()
    finally:
        assert s.stop() == 0
        pcs.shutdown()
        pcs.server_close()


# ---------------------------------------------------------------------------------------------
# §4.2 JWKS: x5c chain to the service's own root, and the CRL it names


def fetch_crl(server, url):
    prefix = f"https://localhost:{server.port}"
    assert url.startswith(prefix + "/crl/")
    st, h, der = server.request("GET", url[len(prefix):])
    assert st == 200 and h["content-type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(der)


def cdp_of(cert):
    return cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0] \
        .full_name[0].value


def check_signed_by(cert, issuer):
    issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                               cert.signature_hash_algorithm)


def test_jwks_chain_and_crl(server):
    """What client-for-go's VerifyToken does with the JWK of the token's kid (§4.2
    "Verification"): classify the x5c certificates by CN (CA with "Root CA" = root, "Signing CA"
    = intermediate, else leaf), check the intermediate against the root's CRL (the
    intermediate's CDP) and the leaf against the intermediate's CRL (the leaf's CDP), CRL
    signatures and nextUpdate, then the chain."""
    keys = server.jwks()["keys"]
    signing = [k for k in keys if "x5c" in k]
    assert {k["alg"] for k in signing} == {"PS384", "RS256"}
    assert len(signing[0]["x5c"]) <= 10
    certs = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in signing[0]["x5c"]]
    root = inter = leaf = None
    for c in certs:
        cn = c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca and "Root CA" in cn:
            root = c
        elif "Signing CA" in cn:
            inter = c
        else:
            leaf = c
    assert root and inter and leaf and certs[0] == leaf
    for c in (root, inter, leaf):
        assert c.public_key().key_size == 3072
    check_signed_by(root, root)
    check_signed_by(inter, root)
    check_signed_by(leaf, inter)
    assert leaf.public_key().public_numbers() == jwt.PyJWK(signing[0]).key.public_numbers()
    assert cdp_of(inter) == f"https://localhost:{server.port}/crl/root.crl"
    assert cdp_of(leaf) == f"https://localhost:{server.port}/crl/signing-ca.crl"
    now = datetime.datetime.utcnow()
    for cert, issuer in ((inter, root), (leaf, inter)):
        crl = fetch_crl(server, cdp_of(cert))
        assert crl.is_signature_valid(issuer.public_key())
        assert crl.next_update > now
        assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is None
    assert server.request("GET", "/crl/other.crl")[0] == 404


def test_metrics(server):
    server.request("GET", "/appraisal/v1/nonce")  # a 401
    st, h, body = server.request("GET", "/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain")
    text = body.decode()
    assert re.search(r"^moat_amber_tokens_total \d+$", text, re.M)
    assert re.search(r"^moat_amber_nonces_total [1-9]\d*$", text, re.M)
    assert re.search(r'^moat_amber_refusals_total\{status="401"\} [1-9]\d*$', text, re.M)


def test_state_dir_is_private(server, state):
    assert state.stat().st_mode & 0o777 == 0o700
    for f in state.iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


def test_keys_sealed_at_rest(moat_path, server, state, tmp_path):
    """Private keys are sealed with the machine's sealing key (as the Coordinator's store):
    not PEM on disk, refused in plain mode and under another machine secret."""
    for name in ("root_ca.key", "signing_ca.key", "token_signing.key", "nonce_signing.key",
                 "tls.key"):
        data = (state / name).read_bytes()
        assert data.startswith(b"MOATAMB1") and b"PRIVATE KEY" not in data, name
    assert (state / "token_signing.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE")

    def start(*args, **env):
        return subprocess.run([str(moat_path), "amber", "serve", "--addr", "127.0.0.1:0",
                               "--state-dir", str(state), "--api-key", KEY, *args],
                              capture_output=True, timeout=60, env=dict(os.environ, **env))
    r = start("--no-seal")
    assert r.returncode == 1 and b"is sealed: run without --no-seal" in r.stderr, r.stderr
    r = start(MOAT_MACHINE_SECRET=str(tmp_path / "other-machine.key"))
    assert r.returncode == 1 and b"cannot unseal" in r.stderr, r.stderr


def test_no_seal(moat_path, tmp_path):
    s = Server(moat_path, tmp_path, tmp_path / "plain", "--no-seal")
    try:
        assert (tmp_path / "plain" / "token_signing.key").read_bytes().startswith(b"-----BEGIN")
        assert "--no-seal" in s.text()
        assert s.nonce()["val"]
    finally:
        assert s.stop() == 0


def test_configuration_from_the_environment(moat_path, tmp_path, state):
    """Every option has a variable: keys from MOAT_AMBER_API_KEYS and a key file together."""
    keys = tmp_path / "keys"
    keys.write_text("from-file\n\n")
    s = Server(moat_path, tmp_path, None, env={
        "MOAT_AMBER_ADDR": "127.0.0.1:0", "MOAT_AMBER_STATE_DIR": str(state),
        "MOAT_AMBER_API_KEYS": "k-a, k-b", "MOAT_AMBER_API_KEY_FILE": str(keys),
        "MOAT_AMBER_NONCE_VALIDITY": "60"})
    try:
        for k in ("k-a", "k-b", "from-file"):
            assert s.request("GET", "/appraisal/v2/nonce", headers={"x-api-key": k})[0] == 200
        assert s.request("GET", "/appraisal/v2/nonce", headers={"x-api-key": KEY})[0] == 401
    finally:
        assert s.stop() == 0


def test_usage_errors(moat_path, tmp_path):
    r = subprocess.run([str(moat_path), "amber", "serve", "--state-dir", str(tmp_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 2 and b"no API key" in r.stderr
    r = subprocess.run([str(moat_path), "amber", "frobnicate"], capture_output=True, timeout=60)
    assert r.returncode == 2
    r = subprocess.run([str(moat_path), "amber", "serve", "--help"], capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and b"--trust-simulated" in r.stdout
