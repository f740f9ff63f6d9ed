"""`moat quote verify`: every vector of ../shared/testdata/attestation gives exactly the verdict
its README.md / EXPECTED.json states at its verify_at, and the README's negative cases ("Negative
tests to derive at test time") are rejected at the right check with Intel QVL's status name
(reference/attestation.md §2.2). Simulated quotes are covered in src/attest/tests/test_verify.c."""
import json

import pytest

from conftest import SHARED

if not (SHARED / "attestation").is_dir():
    pytest.skip(f"conformance data not found at {SHARED} (a clone without ../shared)",
                allow_module_level=True)

ATT = SHARED / "attestation"
GOTDX = "tdx/go-tdx-guest/"
SYN = "sgx/intel_qvl_synthetic/"


def expected():
    path = ATT / "EXPECTED.json"
    return json.loads(path.read_text()) if path.is_file() else {}


EXPECTED = expected()

# How each vector's collateral is given (README "Expected outcomes").
COLLATERAL = {
    "phala_sgx_v3": ["--collateral", "sgx/phala/sgx_quote_collateral.json"],
    "phala_tdx_v4": ["--collateral", "tdx/phala/tdx_quote_v4_collateral.json"],
    "phala_tdx_v5_outdated": ["--collateral", "tdx/phala/tdx_quote_v5_outdated_collateral.json"],
    "gotdx_tdx_v5_sample_with_phala_v5_collateral":
        ["--collateral", "tdx/phala/tdx_quote_v5_outdated_collateral.json"],
    "gotdx_tdx_v4_spr_e4": [
        "--tcb-info", GOTDX + "tcbinfo_50806f000000.json",
        "--tcb-info-chain", GOTDX + "tcb_info_issuer_chain.pem",
        "--qe-identity", GOTDX + "qe_identity_td_qe.json",
        "--qe-identity-chain", GOTDX + "qe_identity_issuer_chain.pem",
        "--root-crl", GOTDX + "rootcrl.der", "--pck-crl", GOTDX + "pckcrl_platform.der",
        "--pck-crl-chain", GOTDX + "pck_crl_issuer_chain.pem"],
    "intel_qvl_synthetic_sgx_v3": [
        "--pck-chain", SYN + "pckCert.pem", "--pck-chain", SYN + "pckSignChain.pem",
        "--tcb-info", SYN + "tcbInfo.json", "--tcb-info-chain", SYN + "tcbSignChain.pem",
        "--qe-identity", SYN + "qeIdentity.json", "--root-crl", SYN + "rootCaCrl.der",
        "--pck-crl", SYN + "intermediateCaCrl.der", "--pck-crl-chain", SYN + "pckSignChain.pem"],
}
# The synthetic vector's TEST root (README: UpToDate against it, must fail against Intel's).
ANCHOR = {"intel_qvl_synthetic_sgx_v3": ["--trusted-root", SYN + "trustedRootCaCert.pem"]}
# README's expected advisories (EXPECTED.json has them per level; this is the final list).
ADVISORIES = {"phala_sgx_v3": ["INTEL-SA-00289", "INTEL-SA-00615"]}
WITH_COLLATERAL = [n for n in sorted(EXPECTED) if EXPECTED[n].get("full_verification")]
WITHOUT_COLLATERAL = [n for n in sorted(EXPECTED) if not EXPECTED[n].get("full_verification")]


def need(*rels):
    for rel in rels:
        if not (ATT / rel).exists():
            pytest.skip(f"{rel} is not in {ATT}")


def verify(moat, name, *extra, anchor=True, collateral=True, at=None):
    vec = EXPECTED[name]
    need(vec["file"])
    fv = vec.get("full_verification") or {}
    args = ["quote", "verify", vec["file"], "--json",
            "--at", at or fv.get("verify_at", "2025-06-20T00:00:00Z")]
    if collateral:
        args += COLLATERAL.get(name, [])
    if anchor:
        args += ANCHOR.get(name, [])
    r = moat(*args, *extra, cwd=ATT)
    assert r.returncode in (0, 1), r.stderr
    out = json.loads(r.stdout)
    assert (r.returncode == 0) == out["accepted"], (r.returncode, out["status"])
    return out, r


def failed(out):
    return [c["name"] for c in out["checks"] if c["result"] == "fail"]


def check(out, name):
    return next(c for c in out["checks"] if c["name"] == name)


@pytest.mark.parametrize("name", WITH_COLLATERAL)
def test_vector_verdict(moat, name):
    fv = EXPECTED[name]["full_verification"]
    out, _ = verify(moat, name)
    want = fv["final_status"]
    assert out["tcb_status"] == want
    assert out["status"] == want
    assert out["advisories"] == ADVISORIES.get(name, [])
    level = fv["tdx_level"] if fv.get("tdx_level") else fv.get("sgx_level")
    assert out["tcb_date"] == (level[2] if level else None)
    assert out["crl_checked"] and not out["stale_crl"]
    assert not out["simulated"]
    assert out["accepted"] == (want == "UpToDate")  # default: UpToDate only
    # every signature, chain and collateral check passes (README); only the TCB level decides
    expect_fail = ["tcb_level"] if want == "TcbNotSupported" else []
    assert failed(out) == expect_fail
    for c in ("pck_chain", "collateral", "qe_report_signature", "qe_report_data", "qe_identity",
              "quote_signature"):
        assert check(out, c)["result"] == "pass", (c, check(out, c))
    is_tdx = EXPECTED[name]["tee_type"] in ("0x81", 129)
    assert check(out, "tdx_module")["result"] == ("pass" if is_tdx else "skipped")
    assert out["report_data"] == EXPECTED[name]["body"]["report_data"]


def test_phala_sgx_accept(moat):
    out, r = verify(moat, "phala_sgx_v3")
    assert r.returncode == 1 and "ConfigurationAndSWHardeningNeeded is not accepted" in r.stderr
    out, r = verify(moat, "phala_sgx_v3", "--accept", "UpToDate,ConfigurationAndSWHardeningNeeded")
    assert r.returncode == 0 and out["accepted"]
    body = EXPECTED["phala_sgx_v3"]["body"]
    assert out["measurements"]["mrenclave"] == body["mrenclave"]
    assert out["measurements"]["mrsigner"] == body["mrsigner"]


def test_tdx_measurements(moat):
    out, r = verify(moat, "phala_tdx_v4")
    assert r.returncode == 0
    body = EXPECTED["phala_tdx_v4"]["body"]
    for key in ("mr_td", "rtmr0", "rtmr3", "mr_seam", "td_attributes", "xfam"):
        if key in body:
            assert out["measurements"][key] == body[key], key


def test_synthetic_rejected_by_intel_root(moat):
    out, r = verify(moat, "intel_qvl_synthetic_sgx_v3", anchor=False)
    assert r.returncode == 1
    assert out["status"] == "STATUS_SGX_ROOT_CA_UNTRUSTED"
    assert failed(out)[0] == "pck_chain"


def test_production_quote_with_synthetic_root(moat):
    need(SYN + "trustedRootCaCert.pem")
    out, r = verify(moat, "phala_sgx_v3", "--trusted-root", SYN + "trustedRootCaCert.pem")
    assert r.returncode == 1 and out["status"] == "STATUS_SGX_ROOT_CA_UNTRUSTED"


@pytest.mark.parametrize("name", WITHOUT_COLLATERAL)
def test_vector_without_collateral(moat, name):
    out, r = verify(moat, name)
    assert r.returncode == 1 and not out["accepted"]
    assert out["status"] == "TcbUnverified" and out["tcb_status"] is None
    assert failed(out) == []
    for c in ("pck_chain", "qe_report_signature", "qe_report_data", "quote_signature"):
        assert check(out, c)["result"] == "pass"
    assert "NOT checked" in check(out, "pck_chain")["detail"]
    for c in ("collateral", "qe_identity", "tcb_level"):
        assert check(out, c)["result"] == "skipped"
    assert not out["crl_checked"]


# --- README "Negative tests to derive at test time" -------------------------------------------

def tampered(tmp_path, name, offset):
    data = bytearray((ATT / EXPECTED[name]["file"]).read_bytes())
    data[offset] ^= 0x01
    path = tmp_path / "q.bin"
    path.write_bytes(bytes(data))
    return str(path)


def verify_file(moat, path, name="phala_sgx_v3", *extra):
    fv = EXPECTED[name]["full_verification"]
    r = moat("quote", "verify", path, "--json", "--at", fv["verify_at"], *COLLATERAL[name],
             "--accept", "ConfigurationAndSWHardeningNeeded", *extra, cwd=ATT)
    assert r.returncode == 1, r.stdout + r.stderr
    return json.loads(r.stdout), r


# offsets of reference §1.3 (v3): header 0-47, body 48-431, attestation key 500, QE report 564
@pytest.mark.parametrize("offset,first,status", [
    (40, "quote_signature", "STATUS_INVALID_QUOTE_SIGNATURE"),            # header user data
    (48 + 64, "quote_signature", "STATUS_INVALID_QUOTE_SIGNATURE"),       # mrenclave
    (48 + 320, "quote_signature", "STATUS_INVALID_QUOTE_SIGNATURE"),      # report data
    (564 + 10, "qe_report_signature", "STATUS_INVALID_QE_REPORT_SIGNATURE"),  # QE report
    (500 + 7, "qe_report_data", "STATUS_INVALID_QE_REPORT_DATA"),         # attestation key
])
def test_tampered_quote(moat, tmp_path, offset, first, status):
    need(EXPECTED["phala_sgx_v3"]["file"])
    out, r = verify_file(moat, tampered(tmp_path, "phala_sgx_v3", offset))
    assert failed(out)[0] == first
    assert out["status"] == status
    assert status in r.stderr  # the reason names the check and the status


def test_tampered_pck_chain(moat, tmp_path):
    need(EXPECTED["phala_sgx_v3"]["file"])
    data = (ATT / EXPECTED["phala_sgx_v3"]["file"]).read_bytes()
    pos = data.index(b"-----BEGIN CERTIFICATE-----") + 28 + 300  # inside the leaf's base64
    out, _ = verify_file(moat, tampered(tmp_path, "phala_sgx_v3", pos))
    assert failed(out)[0] == "pck_chain"
    assert out["status"] in ("STATUS_UNSUPPORTED_CERT_FORMAT",
                             "STATUS_SGX_PCK_CERT_CHAIN_UNTRUSTED")


def test_tampered_tcb_info(moat, tmp_path):
    need("sgx/phala/sgx_quote_collateral.json")
    coll = json.loads((ATT / "sgx/phala/sgx_quote_collateral.json").read_text())
    text = coll["tcb_info"]
    pos = text.index('"fmspc":"') + 9
    coll["tcb_info"] = text[:pos] + ("1" if text[pos] == "0" else "0") + text[pos + 1:]
    path = tmp_path / "coll.json"
    path.write_text(json.dumps(coll))
    r = moat("quote", "verify", EXPECTED["phala_sgx_v3"]["file"], "--json", "--at",
             "2025-06-20T00:00:00Z", "--collateral", str(path), cwd=ATT)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert failed(out)[0] == "collateral"
    assert out["status"] == "STATUS_TCB_INFO_INVALID_SIGNATURE"
    assert check(out, "tcb_level")["result"] == "skipped"


def test_stale_crl(moat):
    # phala_tdx_v4: the PCK CRL's nextUpdate is 2025-07-19T10:00:35Z, the QE identity's and the
    # TCB info's are later: in between only a CRL is stale
    out, r = verify(moat, "phala_tdx_v4", at="2025-07-19T10:05:00Z")
    assert r.returncode == 1 and out["status"] == "STATUS_SGX_CRL_EXPIRED"
    assert failed(out)[0] == "pck_chain"
    out, r = verify(moat, "phala_tdx_v4", "--allow-stale-crl", at="2025-07-19T10:05:00Z")
    assert r.returncode == 0 and out["accepted"] and out["stale_crl"]
    assert "stale" in check(out, "pck_chain")["detail"]
    assert "--allow-stale-crl" in r.stderr


def test_collateral_expired(moat):
    # past the TCB info's nextUpdate: rejected even with --allow-stale-crl
    out, r = verify(moat, "phala_sgx_v3", "--allow-stale-crl", at="2025-07-25T00:00:00Z")
    assert r.returncode == 1
    assert out["status"] in ("STATUS_SGX_TCB_INFO_EXPIRED", "STATUS_SGX_ENCLAVE_IDENTITY_EXPIRED")


def test_text_output_and_unix_time(moat):
    need(EXPECTED["phala_tdx_v4"]["file"])
    r = moat("quote", "verify", EXPECTED["phala_tdx_v4"]["file"], "--at", "1750377600",
             *COLLATERAL["phala_tdx_v4"], cwd=ATT)
    assert r.returncode == 0, r.stderr
    assert "result: ACCEPTED (UpToDate)" in r.stdout
    for name in ("pck_chain", "tdx_module", "quote_signature", "tcb_level", "debug"):
        assert f" {name} " in r.stdout
    assert "mr_td:" in r.stdout and "report_data:" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--at", "yesterday"], "--at"),
    (["--accept", "Fine"], "'Fine' is not a TCB status"),
    (["--accept", "TcbNotSupported"], "TcbNotSupported"),
    (["--tcb-info", "tdx/phala/tdx_quote_v4_collateral.json"], "--qe-identity is missing"),
    (["--repeat", "0"], "--repeat"),
    ([], "takes one FILE"),
])
def test_usage_errors(moat, args, message):
    file = [] if not args else [EXPECTED["phala_tdx_v4"]["file"]]
    r = moat("quote", "verify", *file, *args, cwd=ATT)
    assert r.returncode == 2
    assert message in r.stderr


def test_not_a_quote(moat, tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x03\x00" + b"\x00" * 100)
    r = moat("quote", "verify", str(path))
    assert r.returncode == 2 and "quote" in r.stderr


def test_repeat_reports_rate(moat):
    need(EXPECTED["phala_tdx_v4"]["file"])
    r = moat("quote", "verify", EXPECTED["phala_tdx_v4"]["file"], "--at", "2025-06-20T00:00:00Z",
             "--repeat", "3", *COLLATERAL["phala_tdx_v4"], cwd=ATT)
    assert r.returncode == 0
    assert "3 verifications in" in r.stderr and "verifications/s" in r.stderr
