"""`moat quote view`: every DCAP quote in ../shared/testdata/attestation parses to the fields
EXPECTED.json lists (reference/attestation.md §1), with or without MarbleRun's OpenEnclave
header (reference/marblerun.md §4.4); broken quotes exit 2 with a message naming the field."""
import json
import struct

import pytest

from conftest import SHARED

if not (SHARED / "attestation").is_dir():
    pytest.skip(f"conformance data not found at {SHARED} (a clone without ../shared)",
                allow_module_level=True)

ATTESTATION = SHARED / "attestation"


def load_expected():
    path = ATTESTATION / "EXPECTED.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


EXPECTED = load_expected()

# Scalar fields of EXPECTED.json that describe the quote bytes (the rest is verification).
FIELDS = ["size", "version", "att_key_type", "tee_type", "header_bytes_8_11", "qe_vendor_id",
          "header_user_data", "body_type", "body_offset", "body_size", "sig_data_len_offset",
          "sig_data_len", "trailing_bytes_after_sig_data", "cert_data_type_inner",
          "qe_auth_data_len", "qe_svn", "pce_svn", "is_debug"]

# EXPECTED.json says cert_data_type_inner 5 for Intel's synthetic quote, but its own note and
# README.md say type 1 (PPID in clear text, the PCK certificate comes separately in
# pckCert.pem), and so do the bytes: u16 1 at offset 1014, 34 bytes of data.
OVERRIDES = {"intel_qvl_synthetic_sgx_v3": {"cert_data_type_inner": 1}}


def quote_file(name):
    path = ATTESTATION / EXPECTED[name]["file"]
    if not path.is_file():
        pytest.skip(f"{EXPECTED[name]['file']} is named in EXPECTED.json but not in "
                    f"{ATTESTATION}")
    return path


def view_json(moat, path):
    r = moat("quote", "view", "--json", path, check=0)
    return json.loads(r.stdout)


def assert_matches(name, got):
    want = EXPECTED[name]
    overrides = OVERRIDES.get(name, {})
    for key in FIELDS:
        if key in want:
            assert got[key] == overrides.get(key, want[key]), (name, key)
    for part in ("body", "qe_report"):
        for key, value in want[part].items():
            assert got[part][key] == value, (name, part, key)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_fields(moat, name):
    got = view_json(moat, quote_file(name))
    assert_matches(name, got)
    assert got["oe_header"] is False
    # the signed region is header || [v5 type, size ||] body (§1.5)
    assert got["signed_size"] == got["body_offset"] + got["body_size"]
    assert got["cert_data_type"] == (6 if got["version"] >= 4 else got["cert_data_type_inner"])
    if got["cert_data_type_inner"] == 5:
        assert got["pck_chain"].startswith("-----BEGIN CERTIFICATE-----")
        assert got["pck_chain"].count("BEGIN CERTIFICATE") == 3


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vector_behind_openenclave_header(moat, name, tmp_path):
    data = quote_file(name).read_bytes()
    wrapped = tmp_path / "oe.bin"
    wrapped.write_bytes(struct.pack("<IIQ", 1, 2, len(data)) + data)
    got = view_json(moat, wrapped)
    assert got["oe_header"] is True
    assert_matches(name, got)


def text_fields(stdout):
    """[(name, value)] of `moat quote view`'s "name:   value" lines, in order."""
    return [(name, value.strip()) for name, value in
            (line.split(":", 1) for line in stdout.splitlines())]


def first(fields, name):
    return next(value for key, value in fields if key == name)


def test_text_view(moat):
    name = "phala_sgx_v3"
    r = moat("quote", "view", quote_file(name), check=0)
    fields = text_fields(r.stdout)
    assert first(fields, "version") == "3"
    # the body's fields come before the QE report's
    assert first(fields, "  mr_enclave") == EXPECTED[name]["body"]["mrenclave"]
    assert [v for k, v in fields if k == "  mr_enclave"][1] == \
        EXPECTED[name]["qe_report"]["mrenclave"]
    assert first(fields, "  report_data") == EXPECTED[name]["body"]["report_data"]
    assert first(fields, "signed bytes") == "[0, 432)"
    assert first(fields, "certification data").startswith("type 5 (PCK certificate chain)")
    # one aligned column
    lines = r.stdout.splitlines()
    assert len({line.index(line.split(":", 1)[1].strip()) for line in lines}) == 1


def test_text_view_tdx(moat):
    name = "phala_tdx_v5_outdated"
    r = moat("quote", "view", quote_file(name), check=0)
    fields = text_fields(r.stdout)
    assert first(fields, "body") == "type 3 (TD report, TDX 1.5), 648 bytes at offset 54"
    for key in ("mr_td", "rtmr0", "rtmr2", "mr_servicetd", "tee_tcb_svn2", "report_data"):
        assert first(fields, "  " + key) == EXPECTED[name]["body"][key], key
    assert first(fields, "  inner").startswith("type 5 (PCK certificate chain)")
    assert first(fields, "debug") == "no"


def broken(tmp_path, data):
    path = tmp_path / "broken.bin"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d[:1000], "signature data size 4164 at offset 432 exceeds the 564 bytes present"),
    (lambda d: d[:40], "quote: user data at offset 28 needs 20 bytes, 12 left in the quote"),
    (lambda d: b"\x07\x00" + d[2:], "unsupported quote version 7"),
    (lambda d: d[:2] + b"\x03\x00" + d[4:],
     "attestation key type 3 is not ECDSA-256-with-P-256 (2)"),
    # certification data size (at 1048 with 32 bytes of QE auth data) one too large / small
    (lambda d: d[:1048] + struct.pack("<I", len(d) - 1052 + 1) + d[1052:],
     "certification data size 3549 at offset 1048 exceeds the 3548 bytes present"),
    (lambda d: d[:1048] + struct.pack("<I", len(d) - 1052 - 1) + d[1052:],
     "certification data size 3547 at offset 1048 does not cover the 3548 bytes present"),
    (lambda d: d[:1012] + struct.pack("<H", 5000) + d[1014:],
     "qe authentication data size 5000 at offset 1012 exceeds"),
    (lambda d: struct.pack("<IIQ", 1, 2, len(d) + 1) + d,
     "openenclave header: quote length at offset 8 is not the 4600 bytes"),
])
def test_broken_sgx_quote(moat, tmp_path, edit, message):
    data = quote_file("phala_sgx_v3").read_bytes()
    r = moat("quote", "view", broken(tmp_path, edit(data)))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("edit, message", [
    (lambda d: d[:48] + b"\x04\x00" + d[50:], "unsupported body type 4 at offset 48"),
    (lambda d: d[:50] + struct.pack("<I", 584) + d[54:],
     "body size 584 at offset 50 does not match body type 3 (648 bytes)"),
    (lambda d: d[:4] + b"\x00\x00\x00\x00" + d[8:],
     "body type 3 (TD report, TDX 1.5) at offset 48 does not match tee type 0x0 (SGX)"),
    (lambda d: d[:834] + b"\x05\x00" + d[836:],  # 706 + 128: the outer type must be 6
     "certification data type 5 at offset 834: a version 5 quote needs type 6"),
])
def test_broken_tdx_quote(moat, tmp_path, edit, message):
    data = quote_file("phala_tdx_v5_outdated").read_bytes()
    r = moat("quote", "view", "--json", broken(tmp_path, edit(data)))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_trailing_bytes_are_reported(moat, tmp_path):
    data = quote_file("phala_sgx_v3").read_bytes()
    got = view_json(moat, broken(tmp_path, data + b"\0" * 123))
    assert got["trailing_bytes_after_sig_data"] == 123
    assert got["size"] == len(data) + 123


def test_missing_file(moat, tmp_path):
    r = moat("quote", "view", tmp_path / "nope.bin")
    assert r.returncode == 1
    assert "nope.bin" in r.stderr


def test_usage(moat):
    r = moat("quote")
    assert r.returncode == 2
    assert "moat quote view" in r.stderr
    assert "moat quote verify" in r.stderr and "moat quote view" in r.stderr
    r = moat("quote", "frobnicate")
    assert r.returncode == 2
    assert "unknown subcommand 'frobnicate'" in r.stderr
    r = moat("quote", "view")
    assert r.returncode == 2
    assert "takes one FILE" in r.stderr
    r = moat("quote", "view", "--bogus", "x")
    assert r.returncode == 2
    assert moat("quote", "--help", check=0).stdout.startswith("usage: moat quote view")
    assert "--json" in moat("help", "quote", "view", check=0).stdout
    assert "quote" in moat("help", check=0).stdout
