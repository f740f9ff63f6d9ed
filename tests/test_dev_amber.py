"""/dev/amber in `moat run` (seed 004; ../shared/reference/attestation.md §4.4; docs/amber.md):
an app under the sandbox reads /dev/amber/token and /dev/amber/secret, and moat, outside the
sandbox, talks to the real `moat amber serve` and `moat kbs serve` on 127.0.0.1 over TLS verified
against sgx.amber_cacerts. Tokens are checked with Debian's python3-jwt and the service's JWKS;
secrets are unwrapped here with python3-cryptography and a key the test made (§4.3).

The app is tests/apps/amberdev.c ("r NAME", "w NAME VALUE", "ls"); quotes come from a SIMULATED
platform made for the module (`moat attest init`, MOAT_SIM_DIR). Servers are stopped by PID.
"""
import base64
import errno
import hashlib
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import build_app
from test_kbs import ADMIN, API_KEY, amber, kbs

try:
    import jwt
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-jwt / python3-cryptography missing (scripts/install-deps): {e}",
                allow_module_level=True)

ARCH_LIBDIR = "/lib/" + subprocess.run(["gcc", "-dumpmachine"], capture_output=True,
                                      text=True).stdout.strip()


@pytest.fixture(scope="module")
def env(moat_path, sim, tmp_path_factory):
    """The token service and the key broker on the module's SIMULATED platform (the broker
    shares the token service's TLS certificate for localhost, which is ca.pem for the apps)."""
    base = tmp_path_factory.mktemp("dev-amber")
    ita = amber(moat_path, base, base / "amber", sim)
    tls = base / "amber" / "tls.pem"
    broker = kbs(moat_path, base, base / "kbs", ita, base / "amber", "--tls-cert", tls,
                 "--tls-key", base / "amber" / "tls.key")
    yield {"sim": sim, "amber": ita, "kbs": broker, "ca": tls.read_text(), "state": base / "amber"}
    for s in (broker, ita):
        assert s.stop() == 0, s.text()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return build_app(tmp_path_factory, "amberdev")


class Run:
    """A scratch directory with the app, ca.pem and a manifest with the given sgx.* lines."""

    def __init__(self, moat_path, d: Path, app: Path, env, keys: dict, ca=None, dcap=True):
        self.moat, self.dir, self.env = str(moat_path), d, env
        (d / "app").write_bytes(app.read_bytes())
        (d / "app").chmod(0o755)
        (d / "ca.pem").write_text(env["ca"] if ca is None else ca)
        lines = "\n".join(f"sgx.{k} = {json.dumps(v)}" for k, v in keys.items())
        (d / "app.manifest.template").write_text(f"""
libos.entrypoint = "/app"
loader.insecure__use_cmdline_argv = true
loader.env.LD_LIBRARY_PATH = "/lib"
fs.mounts = [
  {{ path = "/lib", uri = "file:{ARCH_LIBDIR}" }},
  {{ path = "/lib64", uri = "file:/lib64" }},
  {{ path = "/app", uri = "file:app" }},
]
sgx.remote_attestation = "{'dcap' if dcap else 'none'}"
sgx.trusted_files = [
  "file:app", "file:ca.pem", "file:{ARCH_LIBDIR}/libc.so.6", "file:/lib64/ld-linux-x86-64.so.2",
]
{lines}
""")
        r = subprocess.run([self.moat, "manifest", "render", "--no-progress",
                            "app.manifest.template", "app.manifest"], cwd=d,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr

    def run(self, *ops, expect=0):
        r = subprocess.run([self.moat, "run", "app", *ops], cwd=self.dir,
                           env=dict(os.environ, MOAT_SIM_DIR=str(self.env["sim"])),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        assert r.returncode == expect, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
        self.stderr = r.stderr
        out = []
        for line in r.stdout.splitlines():
            f = line.split(" ")
            if f[0] == "r":
                out.append((f[1], f[2], bytes.fromhex(f[3]) if f[2] == "ok" else int(f[3])))
            elif f[0] == "w":
                out.append((f[1], f[2], None if f[2] == "ok" else int(f[3])))
            else:
                out.append(tuple(f))
        return out


@pytest.fixture
def make(moat_path, tmp_path, app, env):
    n = [0]

    def f(keys, **kw):
        n[0] += 1
        d = tmp_path / f"run{n[0]}"
        d.mkdir()
        return Run(moat_path, d, app, env, keys, **kw)
    return f


def service(env, path="/appraisal/v1/", host="localhost"):
    return {"amber_url": f"https://{host}:{env['amber'].port}{path}", "amber_ip": "127.0.0.1",
            "amber_apikey": API_KEY, "amber_cacerts": "file:ca.pem"}


def claims_of(env, token: str, alg="PS384"):
    """python3-jwt with the JWK the header names, from the service's /certs (§4.2)."""
    header = jwt.get_unverified_header(token)
    st, _, body = env["amber"].request("GET", "/certs")
    jwk = next(k for k in json.loads(body)["keys"] if k["kid"] == header["kid"])
    return jwt.decode(token, key=jwt.PyJWK(jwk).key, algorithms=[alg],
                      options={"require": ["exp", "iat", "nbf"]})


def measurement(d: Path) -> str:
    """docs/measurement.md: SHA-256("moat-measurement-v1" ‖ 0 ‖ the manifest's bytes)."""
    return hashlib.sha256(b"moat-measurement-v1\0" + (d / "app.manifest").read_bytes()).hexdigest()


def held_data(key) -> bytes:
    """§4.1 key-release convention: 4-byte LE exponent ‖ modulus little-endian (SGX)."""
    return struct.pack("<I", 65537) + key.public_key().public_numbers().n.to_bytes(384, "big")[::-1]


# ---------------------------------------------------------------------------------------------
# tokens, in each generation the URL names


def test_token_amber_beta_as_gramine_configures_it(make, env):
    """The seed's manifest form: .../appraisal/v1/ is Amber beta (appraise, raw JWT, amber_*
    claims); userdata is bound: report data = SHA-256(val ‖ iat ‖ userdata) ‖ 0^32."""
    userdata = os.urandom(388)
    r = make({**service(env), "amber_userdata": base64.b64encode(userdata).decode()})
    (tok, state, value), (st, _, status) = r.run("r", "token", "r", "status")
    assert state == "ok", value
    c = claims_of(env, value.decode())
    assert c["amber_evidence_type"] == "SGX" and c["moat_simulated"] is True
    assert c["amber_sgx_mrenclave"] == measurement(r.dir)
    n = c["amber_signed_nonce"]
    bound = hashlib.sha256(base64.b64decode(n["val"]) + base64.b64decode(n["iat"]) + userdata)
    assert c["amber_report_data"] == bound.hexdigest() + "00" * 32
    s = status.decode()
    assert "[INFO] token saved" in s and "Amber beta" in s and "SIMULATED" in s, s


@pytest.mark.parametrize("path,nested", [("", None), ("/appraisal/v2/", "sgx")])
def test_token_ita_v1_and_v2(make, env, path, nested):
    """A service root is ITA v1 (flat sgx_* claims, {"token"} answer); .../appraisal/v2/ is v2
    (claims nested under "sgx")."""
    r = make(service(env, path))
    ((_, state, value),) = r.run("r", "token")
    assert state == "ok", value
    c = claims_of(env, value.decode())
    sgx = c[nested] if nested else c
    assert sgx["sgx_mrenclave"] == measurement(r.dir)
    assert sgx["attester_type"] == "SGX" if not nested else True
    assert c.get("moat_simulated") is True or sgx.get("moat_simulated") is True


def test_each_read_is_a_new_token_and_renew_prefetches(make, env):
    r = make(service(env))
    out = r.run("r", "token", "r", "token", "w", "renew", "token", "r", "token",
                "w", "renew", "bogus", "r", "status")
    t1, t2, renew, t3, bogus, status = out
    assert t1[1] == t2[1] == t3[1] == "ok" and renew[1] == "ok"
    jtis = {claims_of(env, t[2].decode())["jti"] for t in (t1, t2, t3)}
    assert len(jtis) == 3
    assert bogus == ("renew", "err", errno.EINVAL)
    assert 'renew: write "token" or "secret"' in status[2].decode()


# ---------------------------------------------------------------------------------------------
# failures: errno on the read, the reason in status


def test_wrong_api_key_is_eacces_with_the_reason(make, env):
    r = make({**service(env), "amber_apikey": "not-the-key"})
    (tok, (_, _, status)) = r.run("r", "token", "r", "status")
    assert tok == ("token", "err", errno.EACCES)
    assert "[ERROR] token" in status.decode() and "HTTP 401" in status.decode(), status
    assert "/dev/amber: token: " in r.stderr and "HTTP 401" in r.stderr  # and in moat's log


def test_tls_is_verified_never_skipped(make, env, tmp_path):
    """Another CA than the service's: the handshake fails (EHOSTUNREACH), the quote never
    leaves; without sgx.amber_cacerts the system store does not know the self-made cert."""
    other = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", "/dev/null",
                            "-subj", "/CN=localhost", "-days", "1"],
                           capture_output=True, text=True, check=True).stdout
    r = make(service(env), ca=other)
    (tok, (_, _, status)) = r.run("r", "token", "r", "status")
    assert tok == ("token", "err", errno.EHOSTUNREACH)
    assert "certificate" in status.decode().lower(), status
    keys = service(env)
    del keys["amber_cacerts"]
    r = make(keys)
    ((_, state, e),) = r.run("r", "token")
    assert (state, e) == ("err", errno.EHOSTUNREACH)


def test_the_ip_is_where_moat_connects(make, env):
    """The URL names localhost (the TLS name); sgx.amber_ip decides the address: 127.0.0.2 has
    no service, so the connection fails although localhost would answer."""
    r = make({**service(env), "amber_ip": "127.0.0.2"})
    (tok, (_, _, status)) = r.run("r", "token", "r", "status")
    assert tok == ("token", "err", errno.EHOSTUNREACH)
    assert "127.0.0.2" in status.decode() or "onnect" in status.decode(), status


def test_nothing_set_and_no_dcap(make, env):
    r = make({"amber_apikey": ""})
    out = r.run("r", "token", "r", "endpoint_url", "r", "secret")
    assert out[0] == ("token", "err", errno.EDESTADDRREQ)
    assert out[1] == ("endpoint_url", "ok", b"")
    assert out[2][1] == "err"


def test_settings_are_validated_and_read_back(make, env):
    r = make(service(env))
    out = r.run("w", "endpoint_url", "http://localhost:1/", "w", "endpoint_ip", "localhost",
                "w", "kbs_keyid", "not-a-uuid", "w", "userdata", "%%%",
                "w", "kbs_url", "https://kbs.example:9443/kbs/v1/keys/\n",
                "w", "kbs_keyid", "AE6281B3-E4FE-3DB5-82FD-EED40F6E4F18",
                "r", "kbs_url", "r", "endpoint_ip", "r", "endpoint_apikey", "r", "status",
                "w", "token", "x", "w", "status", "x", "ls")
    assert [o[1:] for o in out[:4]] == [("err", errno.EINVAL)] * 4
    assert out[4][1] == out[5][1] == "ok"
    assert out[6] == ("kbs_url", "ok", b"https://kbs.example:9443/kbs/v1/keys/")
    assert out[7] == ("endpoint_ip", "ok", b"127.0.0.1")
    assert out[8] == ("endpoint_apikey", "ok", API_KEY.encode())
    status = out[9][2].decode()
    assert "endpoint_url: the value written is not an https:// URL" in status
    assert "http://localhost" not in status  # values are not echoed (one may be a key)
    assert out[10][1:] == ("err", errno.EACCES) and out[11][1:] == ("err", errno.EACCES)
    # control characters (a terminal escape in moat's log, a header split) are refused
    esc = r.run("w", "endpoint_url", "https://x/\x1b[2J", "w", "endpoint_apikey", "k\r\nX-Evil: 1",
                "r", "status")
    assert [o[1:] for o in esc[:2]] == [("err", errno.EINVAL)] * 2
    assert "\x1b" not in esc[2][2].decode() and "not printable ASCII" in esc[2][2].decode()
    assert out[12][1:] == ("endpoint_url", "endpoint_ip", "endpoint_apikey", "kbs_url", "kbs_ip",
                           "kbs_keyid", "userdata", "renew", "token", "secret", "status")


def test_no_dev_amber_without_its_keys(make, env):
    r = make({})
    ((ls, *rest),) = r.run("ls")
    assert rest[0] == "err", rest


# ---------------------------------------------------------------------------------------------
# secrets (§4.3): the key broker releases a key to the app's measurement only


def admin(env, method, path, body=None):
    st, _, out = env["kbs"].request(method, path, body, {"Authorization": f"Bearer {ADMIN}",
                                                         "Content-Type": "application/json"})
    return st, json.loads(out) if out else None


def unwrap(priv, answer) -> bytes:
    swk = priv.decrypt(base64.b64decode(answer["wrapped_swk"]),
                       padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                    label=None))
    wk = base64.b64decode(answer["wrapped_key"])
    iv_len, tag_len, ct_len = struct.unpack("<III", wk[:12])
    assert (iv_len, tag_len, len(wk)) == (12, 16, 12 + 12 + ct_len)
    return AESGCM(swk).decrypt(wk[12:24], wk[24:], None)


def test_secret_end_to_end_and_refused_to_another_app(make, env):
    priv = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    keys = {**service(env, ""), "amber_userdata": base64.b64encode(held_data(priv)).decode(),
            "kbs_url": f"https://localhost:{env['kbs'].port}/kbs/v1/keys/", "kbs_ip": "127.0.0.1"}
    # the measurement of the manifest that names the key: the key id is written at run time
    r = make(keys)
    st, pol = admin(env, "POST", "/kbs/v1/key-transfer-policies",
                    {"attestation_type": "SGX",
                     "sgx": {"attributes": {"mrenclave": [measurement(r.dir)]}}})
    assert st == 201, pol
    secret = os.urandom(32)
    st, key = admin(env, "POST", "/kbs/v1/keys",
                    {"key_info": {"algorithm": "AES", "key_length": 256,
                                  "key_data": base64.b64encode(secret).decode()},
                     "transfer_policy_id": pol["id"]})
    assert st == 201, key
    out = r.run("w", "kbs_keyid", key["id"], "r", "secret", "w", "renew", "secret", "r", "secret",
                "r", "status")
    assert out[0][1] == "ok" and out[1][1] == "ok" and out[3][1] == "ok", out
    for got in (out[1][2], out[3][2]):
        assert unwrap(priv, json.loads(got)) == secret
    assert "[INFO] secret saved" in out[4][2].decode()
    # another manifest (one byte more): another measurement, refused by the policy
    keys2 = dict(keys, kbs_keyid=key["id"], amber_apikey=API_KEY + "")
    r2 = make(keys2)
    with open(r2.dir / "app.manifest", "a") as f:
        f.write("# another app\n")
    (sec, (_, _, status)) = r2.run("r", "secret", "r", "status")
    assert sec == ("secret", "err", errno.EACCES)
    assert "sgx_mrenclave" in status.decode() and "HTTP 403" in status.decode(), status


def test_tampered_cacerts_file_stops_the_run(make, env):
    """sgx.amber_cacerts names a trusted file: a CA the host swapped after rendering would let
    it impersonate both services, so moat refuses to start."""
    r = make(service(env))
    (r.dir / "ca.pem").write_text(env["ca"].replace("A", "B", 1))
    r.run("r", "token", expect=1)
    assert "sgx.amber_cacerts" in r.stderr and "does not match its hash" in r.stderr, r.stderr


def test_manifest_check_names_the_key(moat, tmp_path):
    m = tmp_path / "bad.manifest"
    m.write_text('libos.entrypoint = "/app"\n'
                 'sgx.amber_url = "http://x/appraisal/v1/"\nsgx.amber_ip = "host"\n'
                 'sgx.kbs_keyid = "1234"\nsgx.amber_cacerts = "file:/etc/ssl/certs/x.pem"\n'
                 'sgx.amber_userdata = "5wISSLU3UP0vZ8G+pgkO3BhhRAtdcY22UMomtdQabSxlA=="\n')
    r = moat("manifest", "check", m, check=2)
    for needle in ("'sgx.amber_url' = \"http://x/appraisal/v1/\" is not an https:// URL",
                   "'sgx.amber_url' needs sgx.remote_attestation = \"dcap\"",
                   "'sgx.amber_ip' = \"host\" is not a numeric IPv4 or IPv6 address",
                   "'sgx.kbs_keyid' = \"1234\" is not a UUID",
                   "is not one of sgx.trusted_files",
                   "warning: 'sgx.amber_userdata' is not base64"):
        assert needle in r.stderr, r.stderr


def test_migrate_keeps_the_keys_of_a_graphene_era_manifest(moat, tmp_path):
    """The seed's keys in a Graphene-era manifest (table trusted files, remote_attestation = 1):
    migrate rewrites what Graphene spelled differently and keeps every sgx.amber_*/kbs_* key;
    the result checks (the seed's dummy userdata, which is not base64, stays a warning)."""
    old = tmp_path / "old.manifest"
    seed = {"amber_ip": "127.0.0.1", "amber_url": "https://127.0.0.1:443/appraisal/v1/",
            "amber_apikey": "", "amber_userdata": "5wISSLU3UP0vZ8G+pgkO3BhhRAtdcY22UMomtdQabSxlA==",
            "kbs_ip": "127.0.0.1", "kbs_url": "https://127.0.0.1:9443/kbs/v1/keys/",
            "kbs_keyid": "ae6281b3-e4fe-3db5-82fd-eed40f6e4f18", "amber_cacerts": "file:ca.pem"}
    old.write_text('libos.entrypoint = "file:app"\nloader.argv0_override = "app"\n'
                   'sgx.remote_attestation = 1\nsgx.trusted_files.app = "file:app"\n'
                   'sgx.trusted_files.ca = "file:ca.pem"\n' +
                   "".join(f"sgx.{k} = {json.dumps(v)}\n" for k, v in seed.items()))
    new = tmp_path / "new.manifest"
    moat("manifest", "migrate", old, new, check=0)
    import tomllib
    sgx = tomllib.loads(new.read_text())["sgx"]
    assert sgx["remote_attestation"] == "dcap"
    assert {k: sgx[k] for k in seed} == seed
    r = moat("manifest", "check", new, check=0)
    assert "warning: 'sgx.amber_userdata' is not base64" in r.stderr


# ---------------------------------------------------------------------------------------------
# the same exchange from the command line: moat amber token, checked by moat amber verify-token


def amber_token(moat, env, *args, url_path="", key=API_KEY, check=0):
    tls = env["state"] / "tls.pem"
    return moat("amber", "token", "--url", f"https://localhost:{env['amber'].port}{url_path}",
                "--cacerts", tls, "--api-key", key, "--sim-dir", env["sim"], *args, check=check)


@pytest.mark.parametrize("url_path,nested", [("", None), ("/appraisal/v2/", "sgx"),
                                             ("/appraisal/v1/", "amber")])
def test_amber_token_cli(moat, env, url_path, nested):
    mrenclave = os.urandom(32).hex()
    runtime = os.urandom(100)
    r = amber_token(moat, env, "--mrenclave", mrenclave, "--isvprodid", "7", "--runtime-data",
                    base64.b64encode(runtime).decode(), "--claims", url_path=url_path)
    token = r.stdout.strip()
    assert "SIMULATED" in r.stderr and "claims (not verified here" in r.stderr, r.stderr
    c = claims_of(env, token)
    if nested == "amber":
        assert c["amber_sgx_mrenclave"] == mrenclave and c["amber_sgx_isvprodid"] == 7
        n, rd = c["amber_signed_nonce"], c["amber_report_data"]
    else:
        sgx = c[nested] if nested else c
        assert sgx["sgx_mrenclave"] == mrenclave and sgx["sgx_isvprodid"] == 7
        n, rd = sgx.get("verifier_nonce") or c["verifier_nonce"], sgx["sgx_report_data"]
    bound = hashlib.sha256(base64.b64decode(n["val"]) + base64.b64decode(n["iat"]) + runtime)
    assert rd == bound.hexdigest() + "00" * 32
    # and moat amber verify-token accepts it against the service's own root, labelled SIMULATED
    state = env["state"]
    v = moat("amber", "verify-token", "--cacerts", state / "tls.pem", "--root-ca",
             state / "root_ca.pem", "-", input=token, check=0)
    assert "verdict: valid (SIMULATED)" in v.stdout, v.stdout + v.stderr


def test_amber_token_cli_refusals(moat, env, tmp_path):
    r = amber_token(moat, env, key="wrong", check=3)
    assert "HTTP 401" in r.stderr, r.stderr
    r = amber_token(moat, env, "--runtime-data", "%%", check=2)
    assert "--runtime-data: not base64" in r.stderr
    r = moat("amber", "token", "--url", f"https://localhost:{env['amber'].port}", "--sim-dir",
             env["sim"], "--api-key", API_KEY, check=1)  # the system store knows no such CA
    assert "certificate" in r.stderr.lower(), r.stderr
    r = moat("amber", "token", "--url", "https://localhost:1", "--sim-dir", tmp_path / "none",
             check=1)
    assert "no attestation provider" in r.stderr, r.stderr
