"""`moat sign` and `moat sigstruct-view` (gramine.md §3): keys, SIGSTRUCT layout, signature
checked independently with OpenSSL, measurement and MRSIGNER recomputed here."""
import hashlib
import json
import os
import stat
import struct
import subprocess
import tomllib

import pytest

MANIFEST = """\
libos.entrypoint = "/app"
sgx.isvprodid = 7
sgx.isvsvn = 3
sgx.debug = true
sgx.trusted_files = [ "file:data.txt" ]
"""


@pytest.fixture
def key(moat, tmp_path):
    path = tmp_path / "enclave-key.pem"
    r = moat("sign", "--gen-key", path, check=0)
    assert r.stdout == f"wrote RSA 3072 private key to {path}\n"
    return path


@pytest.fixture
def signed(moat, key, tmp_path):
    (tmp_path / "data.txt").write_text("trusted content\n")
    (tmp_path / "app.manifest").write_text(MANIFEST)
    r = moat("sign", "--manifest", "app.manifest", "--output", "app.manifest.sgx", "--key", key,
             "--date", "2026-11-24", cwd=tmp_path, check=0)
    (tmp_path / "sign.out").write_text(r.stdout)
    return tmp_path


def test_gen_key(moat, key):
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    text = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert "3072 bit" in text and "publicExponent: 3 (0x3)" in text
    before = key.read_bytes()
    r = moat("sign", "--gen-key", key, check=2)
    assert f"refusing to overwrite {key}, use -f to force" in r.stderr
    assert key.read_bytes() == before
    moat("sign", "--gen-key", "-f", "-q", key, check=0)
    assert key.read_bytes() != before


def test_gen_key_creates_config_dir_private(moat, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    r = moat("sign", "--gen-key", env=env, check=0)
    path = home / ".config" / "gramine" / "enclave-key.pem"
    assert r.stdout == f"wrote RSA 3072 private key to {path}\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert sorted(os.listdir(path.parent)) == ["enclave-key.pem"]  # no temporary left


def test_default_key_location(moat, tmp_path):
    r = moat("sign", "--gen-key", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, check=0)
    assert (tmp_path / "cfg" / "gramine" / "enclave-key.pem").exists(), r.stdout
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/a"\n')
    r = moat("sign", "-m", "m.manifest", "-o", "m.manifest.sgx", cwd=tmp_path,
             env={"XDG_CONFIG_HOME": str(tmp_path / "none")}, check=2)
    assert "moat sign --gen-key" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["-3", "2048"], "Invalid RSA key: expected key size 3072, got 2048"),
    (["3072"], "Invalid RSA key: expected exponent 3, got 65537"),
])
def test_wrong_keys_rejected(moat, tmp_path, args, message):
    bad = tmp_path / "bad.pem"
    subprocess.run(["openssl", "genrsa", "-out", bad, *args], check=True, capture_output=True)
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/a"\n')
    r = moat("sign", "-m", "m.manifest", "-o", "m.manifest.sgx", "-k", bad, cwd=tmp_path, check=2)
    assert message in r.stderr
    assert not (tmp_path / "m.manifest.sgx").exists() and not (tmp_path / "m.sig").exists()


def test_encrypted_key_rejected(moat, tmp_path):
    enc = tmp_path / "enc.pem"
    subprocess.run(["openssl", "genrsa", "-3", "-aes128", "-passout", "pass:pw", "-out", enc,
                    "3072"], check=True, capture_output=True)
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/a"\n')
    r = moat("sign", "-m", "m.manifest", "-o", "m.manifest.sgx", "-k", enc, cwd=tmp_path,
             input="", check=2)
    assert "not an unencrypted PEM private key" in r.stderr


def test_pkcs8_key_with_exponent_3_accepted(moat, tmp_path):
    """`openssl genpkey` writes PKCS#8 ("BEGIN PRIVATE KEY"); Gramine loads either form."""
    k = tmp_path / "k8.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
                    "-pkeyopt", "rsa_keygen_pubexp:3", "-out", k], check=True, capture_output=True)
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/a"\n')
    moat("sign", "-q", "-m", "m.manifest", "-o", "m.manifest.sgx", "-k", k, cwd=tmp_path, check=0)
    assert len((tmp_path / "m.sig").read_bytes()) == 1808


def test_sign_output_and_default_sigfile(moat, signed, key):
    mrenclave = (signed / "app.sig").read_bytes()[960:992].hex()
    # default: Gramine's "Measurement:" block, nothing else on stdout
    assert (signed / "sign.out").read_text() == f"Measurement:\n    {mrenclave}\n"
    r = moat("sign", "-v", "-m", "app.manifest", "-o", "out.manifest.sgx", "-k", key, "-d",
             "2026-11-24", cwd=signed, check=0)
    assert (signed / "out.sig").exists()  # OUTPUT minus .manifest.sgx, plus .sig
    lines = r.stdout.splitlines()
    assert lines[0] == "Attributes (required for enclave measurement):"
    assert "    size:        0x10000000" in lines  # sgx.enclave_size default "256M"
    assert "    max_threads: 4" in lines and "    edmm:        False" in lines
    assert "    isv_prod_id: 7" in lines and "    isv_svn:     3" in lines
    assert "    attr.flags:  0x6" in lines and "    date:        2026-11-24" in lines
    assert "SGX remote attestation:" in lines
    assert "it is not an SGX MRENCLAVE" in r.stdout and "moat-measurement-v1" in r.stdout
    assert lines[-2:] == ["Measurement:", f"    {mrenclave}"]
    # -q: nothing; the output name without a known suffix gets ".sig" appended
    r = moat("sign", "-q", "-m", "app.manifest", "-o", "final.toml", "-k", key, cwd=signed,
             check=0)
    assert r.stdout == "" and (signed / "final.toml.sig").exists()
    r = moat("sign", "-q", "-m", "app.manifest", "-o", "x.manifest", "-k", key, cwd=signed,
             check=0)
    assert (signed / "x.sig").exists()


@pytest.mark.parametrize("date", ["2026-02-30", "2026-13-01", "26-11-24", "2026-+1-24", "x"])
def test_invalid_date_rejected(moat, signed, key, date):
    r = moat("sign", "-m", "app.manifest", "-o", "d.manifest.sgx", "-k", key, "--date", date,
             cwd=signed, check=2)
    assert f"invalid --date '{date}'" in r.stderr
    assert not (signed / "d.manifest.sgx").exists()


def test_sigstruct_layout_and_values(signed):
    sig = (signed / "app.sig").read_bytes()
    assert len(sig) == 1808
    assert sig[0:16] == bytes.fromhex("06000000e10000000000010000000000")
    assert sig[24:40] == bytes.fromhex("01010000600000006000000001000000")
    assert struct.unpack_from("<I", sig, 20)[0] == 0x20261124  # date
    assert struct.unpack_from("<I", sig, 512)[0] == 3  # exponent
    flags, xfrm = struct.unpack_from("<QQ", sig, 928)
    assert flags == 0x6 and xfrm == 0x3  # DEBUG | MODE64BIT, legacy XFRM
    assert struct.unpack_from("<QQ", sig, 944) == (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFF9FF1B)
    assert struct.unpack_from("<HH", sig, 1024) == (7, 3)
    manifest = (signed / "app.manifest.sgx").read_bytes()
    assert sig[960:992] == hashlib.sha256(b"moat-measurement-v1\0" + manifest).digest()
    finalized = tomllib.loads(manifest.decode())
    data_hash = hashlib.sha256(b"trusted content\n").hexdigest()
    assert finalized["sgx"]["trusted_files"] == [{"uri": "file:data.txt", "sha256": data_hash}]


def test_signature_verifies_with_openssl(signed, key):
    sig = (signed / "app.sig").read_bytes()
    (signed / "signed.bin").write_bytes(sig[0:128] + sig[900:1028])
    (signed / "sig.bin").write_bytes(sig[516:900][::-1])  # stored little-endian
    subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-out", signed / "pub.pem"],
                   check=True, capture_output=True)
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature",
                        "sig.bin", "signed.bin"], cwd=signed, capture_output=True, text=True)
    assert r.returncode == 0 and "Verified OK" in r.stdout
    # the modulus in the SIGSTRUCT is the key's, little-endian; q1/q2 as SGX defines them
    mod_hex = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"],
                             capture_output=True, text=True, check=True).stdout.split("=")[1]
    n = int(mod_hex, 16)
    assert int.from_bytes(sig[128:512], "little") == n
    s = int.from_bytes(sig[516:900], "little")
    assert int.from_bytes(sig[1040:1424], "little") == s * s // n
    assert int.from_bytes(sig[1424:1808], "little") == (s * s % n) * s // n


def test_sigstruct_view(moat, signed):
    sig = (signed / "app.sig").read_bytes()
    mrsigner = hashlib.sha256(sig[128:512]).hexdigest()
    mrenclave = sig[960:992].hex()
    out = moat("sigstruct-view", signed / "app.sig", check=0).stdout
    assert out == (f"Attributes:\n    mr_signer: {mrsigner}\n    mr_enclave: {mrenclave}\n"
                   "    isv_prod_id: 7\n    isv_svn: 3\n    debug_enclave: True\n")
    j = json.loads(moat("sigstruct-view", "--output-format", "json", signed / "app.sig",
                        check=0).stdout)
    assert j == {"mr_signer": mrsigner, "mr_enclave": mrenclave, "isv_prod_id": 7, "isv_svn": 3,
                 "debug_enclave": True}
    t = tomllib.loads(moat("sigstruct-view", "--output-format", "toml", "-v",
                           signed / "app.sig", check=0).stdout)
    assert t == {"mr_signer": mrsigner, "mr_enclave": mrenclave, "isv_prod_id": 7, "isv_svn": 3,
                 "debug_enclave": True, "attribute_flags": "0x6", "attribute_xfrms": "0x3",
                 "misc_select": "0x0", "attribute_flags_mask": "0xffffffffffffffff",
                 "attribute_xfrm_mask": "0xfffffffffff9ff1b", "misc_mask": "0xffffffff",
                 "date": "0x20261124"}
    verbose = moat("sigstruct-view", "-v", signed / "app.sig", check=0).stdout
    assert verbose.startswith(out) and "    attribute_xfrm_mask: 0xfffffffffff9ff1b\n" in verbose
    # OUT argument: same bytes in a file, nothing on stdout
    r = moat("sigstruct-view", "-f", "json", signed / "app.sig", signed / "view.json", check=0)
    assert r.stdout == "" and json.loads((signed / "view.json").read_text()) == j
    r = moat("sigstruct-view", "-f", "yaml", signed / "app.sig", check=2)
    assert "unknown output format 'yaml'" in r.stderr


def test_sigstruct_view_values_follow_manifest(moat, key, tmp_path):
    (tmp_path / "m.manifest").write_text(
        'libos.entrypoint = "/a"\nsgx.isvprodid = 65535\nsgx.isvsvn = 0\nsgx.debug = false\n'
        'sgx.use_exinfo = true\nsgx.cpu_features.avx = "required"\n')
    moat("sign", "-q", "-m", "m.manifest", "-o", "m.manifest.sgx", "-k", key, cwd=tmp_path,
         check=0)
    j = json.loads(moat("sigstruct-view", "-v", "-f", "json", tmp_path / "m.sig",
                        check=0).stdout)
    assert (j["isv_prod_id"], j["isv_svn"], j["debug_enclave"]) == (65535, 0, False)
    assert j["attribute_flags"] == "0x4" and j["misc_select"] == "0x1"
    assert j["attribute_xfrms"] == "0x7" and j["attribute_xfrm_mask"] == "0xfffffffffff9ff1f"


@pytest.mark.parametrize("offset", [0, 20, 50, 130, 600, 911, 930, 970, 1000, 1025, 1030,
                                    1500])
def test_tampered_sigstruct_rejected(moat, signed, offset):
    bad = bytearray((signed / "app.sig").read_bytes())
    bad[offset] ^= 0x01
    (signed / "bad.sig").write_bytes(bad)
    r = moat("sigstruct-view", signed / "bad.sig")
    assert r.stdout == "" and "bad.sig" in r.stderr
    if offset < 16 or 24 <= offset < 40:
        assert r.returncode == 2 and "bad header bytes" in r.stderr
    elif 44 <= offset < 128 or 910 <= offset < 912 or 992 <= offset < 1008 or 1028 <= offset < 1040:
        assert r.returncode == 2 and f"reserved byte at offset {offset} is not 0" in r.stderr
    elif offset >= 1040:
        assert r.returncode == 1 and "q1/q2 do not match" in r.stderr
    else:
        assert r.returncode == 1 and "signature does not verify" in r.stderr


def test_truncated_sigstruct_rejected(moat, signed):
    (signed / "short.sig").write_bytes((signed / "app.sig").read_bytes()[:1000])
    r = moat("sigstruct-view", signed / "short.sig", check=2)
    assert "1000 bytes, expected 1808" in r.stderr


def test_sign_is_deterministic_and_tracks_the_manifest(moat, signed, key):
    first = (signed / "app.sig").read_bytes()
    moat("sign", "-q", "-m", "app.manifest", "-o", "app.manifest.sgx", "-k", key, "-d",
         "2026-11-24", cwd=signed, check=0)
    assert (signed / "app.sig").read_bytes() == first
    (signed / "data.txt").write_text("tampered\n")
    moat("sign", "-q", "-m", "app.manifest", "-o", "app.manifest.sgx", "-k", key, "-d",
         "2026-11-24", cwd=signed, check=0)
    assert (signed / "app.sig").read_bytes()[960:992] != first[960:992]


def test_sign_refuses_invalid_manifest(moat, key, tmp_path):
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/a"\nsgx.isvsvn = 70000\n')
    r = moat("sign", "-m", "m.manifest", "-o", "m.manifest.sgx", "-k", key, cwd=tmp_path, check=2)
    assert "'sgx.isvsvn' = 70000 is out of range" in r.stderr
    (tmp_path / "m.manifest").write_text('libos.entrypoint = "/a"\nsgx.trusted_files = ["file:x"]\n')
    r = moat("sign", "-m", "m.manifest", "-o", "m.manifest.sgx", "-k", key, cwd=tmp_path, check=2)
    assert "Missing trusted file: 'x'" in r.stderr
    assert not (tmp_path / "m.manifest.sgx").exists()
