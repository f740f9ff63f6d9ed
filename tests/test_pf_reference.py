"""Tests of the pure-Python encrypted-file reference (tests/pf_reference.py) itself.

These do not need the moat binary; they pin the reference to the format described in
/work/shared/reference/gramine.md section 4 so it can be trusted as a known-answer oracle.
"""
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import pf_reference as pf

KEY = bytes(range(16))
PATH = "enc/a.txt"
NODE = 4096

# sizes around every boundary of the format
SIZES = [
    0, 1, 3071, 3072, 3073,
    3072 + 4096,                # exactly one full data node
    3072 + 4096 + 1,            # second data node
    3072 + 4096 * 10 + 123,
    3072 + 4096 * 95 + 7,
    4096 * 96 + 3072,           # 96 full data nodes: root MHT only
    4096 * 96 + 3073,           # first size needing MHT 1 (data node 96)
    4096 * 96 + 3072 + 4096 * 3 + 5,
]

# data nodes 0..96 and a bit of 97 (under MHT 1)
TAMPER_SIZE = 3072 + 4096 * 97 + 100


def payload(n: int) -> bytes:
    # period 251 is coprime to the node size, so every node's content differs
    pattern = bytes(range(251))
    return (pattern * (n // 251 + 1))[:n]


def flip(blob: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(blob)
    b[offset] ^= 1 << bit
    return bytes(b)


@pytest.fixture(scope="module")
def tamper_file():
    data = payload(TAMPER_SIZE)
    blob = pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng("tamper"))
    assert pf.decrypt(blob, KEY, PATH) == data
    return data, blob


def status_of(blob, key=KEY, path=PATH, **kw) -> str:
    with pytest.raises(pf.PFError) as e:
        pf.decrypt(blob, key, path, **kw)
    return e.value.status


# --- node numbering and sizes --------------------------------------------------------------

def test_physical_node_table():
    assert pf.physical_mht_node(0) == 1
    assert [pf.physical_data_node(d) for d in range(96)] == list(range(2, 98))
    assert pf.physical_mht_node(1) == 98
    assert [pf.physical_data_node(d) for d in range(96, 192)] == list(range(99, 195))
    assert pf.physical_mht_node(2) == 195
    assert pf.physical_data_node(192) == 196
    # the numbering is a bijection onto 1.. with no holes
    phys = sorted([pf.physical_mht_node(m) for m in range(5)]
                  + [pf.physical_data_node(d) for d in range(5 * 96)])
    assert phys == list(range(1, 1 + 5 * 97))


@pytest.mark.parametrize("size, nodes", [
    (0, 1), (1, 1), (3072, 1),
    (3073, 3),                      # meta, root MHT, data 0
    (3072 + 4096, 3),
    (3072 + 4096 + 1, 4),
    (4096 * 96 + 3072, 98),         # data 95 is physical 97
    (4096 * 96 + 3073, 100),        # MHT 1 at 98, data 96 at 99
    (4096 * 192 + 3072, 195),
    (4096 * 192 + 3073, 197),       # MHT 2 at 195, data 192 at 196
])
def test_file_size_on_disk(size, nodes):
    assert pf.file_size_on_disk(size) == nodes * NODE


# --- crypto building blocks ----------------------------------------------------------------

def test_cmac_nist_vectors():
    # NIST SP 800-38B, AES-128 examples 2 and 3: checks the CMAC primitive the KDF relies on
    k = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a"
                        "ae2d8a571e03ac9c9eb76fac45af8e51"
                        "30c81c46a35ce411e5fbc1191a0a52ef"
                        "f69f2445df4f9b17ad2b417be66c3710")
    for n, tag in ((16, "070a16b46b4d4144f79bdd9dd04a287c"),
                   (64, "51f0bebf7e3b9d92fc49741779363cfe")):
        c = cmac.CMAC(algorithms.AES(k))
        c.update(msg[:n])
        assert c.finalize().hex() == tag


def test_kdf_input_layout():
    nonce = bytes(range(100, 132))
    data = pf.kdf_input(nonce)
    assert len(data) == 104
    assert data[:4] == b"\x01\x00\x00\x00"
    assert data[4:33] == b"SGX-PROTECTED-FS-METADATA-KEY"
    assert data[33:68] == bytes(35)
    assert data[68:100] == nonce
    assert data[100:] == b"\x80\x00\x00\x00"
    c = cmac.CMAC(algorithms.AES(KEY))
    c.update(data)
    assert pf.metadata_key(KEY, nonce) == c.finalize()


# --- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_round_trip(size):
    data = payload(size)
    blob = pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng(size))
    assert len(blob) == pf.file_size_on_disk(size)
    assert pf.decrypt(blob, KEY, PATH, strict=True) == data
    assert pf.decrypt(blob, KEY) == data
    assert pf.decrypt(pf.to_v1(blob), KEY, PATH, strict=True) == data


def test_round_trip_two_level_tree():
    # 33 * 96 + 1 data nodes: MHT 33 exists and hangs off MHT 1, not the root
    size = 3072 + 4096 * (33 * 96) + 10
    data = payload(size)
    blob = pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng("deep"))
    assert len(blob) == (pf.physical_data_node(33 * 96) + 1) * NODE
    assert pf.decrypt(blob, KEY, PATH, strict=True) == data
    # a bit flip in MHT 33 is caught through MHT 1
    off = pf.physical_mht_node(33) * NODE + 1000
    assert status_of(flip(blob, off)) == "MAC mismatch"


def test_random_urandom_round_trip():
    data = payload(20000)
    a = pf.encrypt(data, KEY, PATH)
    b = pf.encrypt(data, KEY, PATH)
    assert a != b
    assert pf.decrypt(a, KEY, PATH) == pf.decrypt(b, KEY, PATH) == data


def test_deterministic_and_draw_order():
    size = 4096 * 96 + 3073 + 4096
    data = payload(size)
    assert pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng(1)) == \
        pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng(1))
    assert pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng(1)) != \
        pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng(2))

    draws = []
    inner = pf.deterministic_rng(3)

    def recording(n):
        draws.append(n)
        return inner(n)

    blob = pf.encrypt(data, KEY, PATH, rng=recording)
    nodes = len(blob) // NODE
    # one 16-byte key per node in physical order, then the 32-byte nonce
    assert draws == [16] * (nodes - 1) + [32]
    assert pf.info(blob)["nonce"] == pf.deterministic_rng(3)(16 * (nodes - 1) + 32)[-32:].hex()

    draws.clear()
    pf.encrypt(b"small", KEY, PATH, rng=recording)
    assert draws == [32]


def test_layout_decoded_independently():
    """Parse a file by hand (no pf_reference helpers except the KDF) and check every field."""
    size = 3072 + 4096 + 50
    data = payload(size)
    blob = pf.encrypt(data, KEY, PATH, rng=pf.deterministic_rng("layout"))
    assert len(blob) == 4 * NODE
    assert blob[:8] == b"GRAFS_PF" and struct.unpack("<Q", blob[:8])[0] == 0x46505F5346415247
    assert blob[8] == 2 and blob[9] == 0 and blob[58] == 0
    assert blob[59 + 3884:NODE] == bytes(153)
    mkey = pf.metadata_key(KEY, blob[10:42])
    meta = AESGCM(mkey).decrypt(bytes(12), blob[59:59 + 3884] + blob[42:58], None)
    assert meta[:772] == PATH.encode().ljust(772, b"\0")
    assert struct.unpack("<Q", meta[772:780])[0] == size
    assert meta[812:] == data[:3072]
    root = AESGCM(meta[780:796]).decrypt(bytes(12), blob[NODE:2 * NODE] + meta[796:812], None)
    for d in range(2):
        k, t = root[32 * d:32 * d + 16], root[32 * d + 16:32 * d + 32]
        node = AESGCM(k).decrypt(bytes(12), blob[(2 + d) * NODE:(3 + d) * NODE] + t, None)
        assert node == data[3072 + 4096 * d:3072 + 4096 * (d + 1)].ljust(NODE, b"\0")
    assert root[64:] == bytes(NODE - 64)


def test_small_file_has_no_root_mht():
    blob = pf.encrypt(payload(3072), KEY, PATH, rng=pf.deterministic_rng(0))
    meta = AESGCM(pf.metadata_key(KEY, blob[10:42])).decrypt(
        bytes(12), blob[59:59 + 3884] + blob[42:58], None)
    assert meta[780:812] == bytes(32)


def test_path_limits():
    long_ok = "p" * 771
    blob = pf.encrypt(b"x", KEY, long_ok)
    assert pf.decrypt(blob, KEY, long_ok) == b"x"
    with pytest.raises(pf.PFError) as e:
        pf.encrypt(b"x", KEY, "p" * 772)
    assert e.value.status == "Path is too long"


# --- rejection -----------------------------------------------------------------------------

def test_header_bit_flips(tamper_file):
    _, blob = tamper_file
    expected = {}
    for off in range(0, 8):
        expected[off] = "Invalid header"
    expected[8] = "Invalid version"
    for off in range(10, 58):  # nonce and metadata MAC
        expected[off] = "MAC mismatch"
    for off, status in expected.items():
        for bit in range(8):
            assert status_of(flip(blob, off, bit)) == status, (off, bit)
    assert status_of(flip(blob, 58, 0)) == "File recovery needed but failed"


def test_unauthenticated_header_bytes(tamper_file):
    # minor version, feature_flags bits 1-7 and padding are outside the MAC: a reader accepts
    # them; strict mode (for checking writers) insists on the values the format prescribes
    data, blob = tamper_file
    for off, bit in ((9, 0), (58, 3), (59 + 3884, 0), (NODE - 1, 7)):
        t = flip(blob, off, bit)
        assert pf.decrypt(t, KEY, PATH) == data
        if off != 9:
            assert status_of(t, strict=True) == "File is corrupted"


def test_metadata_encrypted_part_bit_flips(tamper_file):
    _, blob = tamper_file
    for off in (59, 59 + 500, 59 + 772, 59 + 780, 59 + 811, 59 + 3883):
        assert status_of(flip(blob, off, 5)) == "MAC mismatch"


@pytest.mark.parametrize("phys, where", [
    (1, "root MHT"),
    (pf.physical_data_node(0), "data node 0"),
    (pf.physical_data_node(95), "data node 95"),
    (pf.physical_mht_node(1), "MHT 1"),
    (pf.physical_data_node(96), "data node 96 (under MHT 1)"),
    (pf.physical_data_node(97), "last data node"),
])
def test_node_bit_flips(tamper_file, phys, where):
    _, blob = tamper_file
    for off in (0, 1234, NODE - 1):
        assert status_of(flip(blob, phys * NODE + off, 2)) == "MAC mismatch", where


def test_swapped_data_nodes(tamper_file):
    _, blob = tamper_file
    a, b = pf.physical_data_node(3), pf.physical_data_node(4)
    nodes = [blob[i:i + NODE] for i in range(0, len(blob), NODE)]
    nodes[a], nodes[b] = nodes[b], nodes[a]
    assert status_of(b"".join(nodes)) == "MAC mismatch"


def test_size_mismatch(tamper_file):
    _, blob = tamper_file
    assert status_of(blob[:-NODE]) == "File is corrupted"
    assert status_of(blob + bytes(NODE)) == "File is corrupted"
    assert status_of(blob[:-1]) == "Invalid header"
    assert status_of(blob + b"\0") == "Invalid header"
    assert status_of(b"") == "Invalid header"
    small = pf.encrypt(b"abc", KEY, PATH)
    assert status_of(small + bytes(NODE)) == "File is corrupted"


def test_not_a_pf_file():
    assert status_of(bytes(NODE)) == "Invalid header"
    assert status_of(b"GRAFS_PF" + bytes([3]) + bytes(NODE - 9)) == "Invalid version"
    assert status_of(b"GRAFS_PF" + bytes([0]) + bytes(NODE - 9)) == "Invalid version"


def test_wrong_key_and_path(tamper_file):
    data, blob = tamper_file
    assert status_of(blob, key=bytes(16)) == "MAC mismatch"
    assert status_of(blob, key=KEY[::-1]) == "MAC mismatch"
    assert status_of(blob, path="enc/b.txt") == "Invalid path"
    assert status_of(blob, path="./enc/a.txt") == "Invalid path"
    assert status_of(blob, path="enc/a.txt\0") == "Invalid path"
    assert status_of(blob, path="enc/a.tx") == "Invalid path"
    assert pf.decrypt(blob, KEY) == data


# --- v1 ------------------------------------------------------------------------------------

def test_v1(tamper_file):
    data, blob = tamper_file
    v1 = pf.to_v1(blob)
    assert len(v1) == len(blob) and v1[NODE:] == blob[NODE:]
    assert v1[8] == 1
    assert v1[58:58 + 3884] == blob[59:59 + 3884]
    assert v1[58 + 3884:NODE] == bytes(154)
    assert pf.decrypt(v1, KEY, PATH, strict=True) == data
    i = pf.info(v1)
    assert i["major"] == 1 and i["feature_flags"] is None
    # the v2 layout read as v1 (or vice versa) does not authenticate
    assert status_of(bytes(v1[:8]) + b"\x02" + v1[9:]) == "MAC mismatch"
    assert status_of(flip(v1, 58)) == "MAC mismatch"
    with pytest.raises(pf.PFError):
        pf.to_v1(v1)


def test_info():
    blob = pf.encrypt(b"hello", KEY, PATH, rng=pf.deterministic_rng("info"))
    i = pf.info(blob)
    assert i == {
        "file_id": "GRAFS_PF", "major": 2, "minor": 0,
        "nonce": blob[10:42].hex(), "mac": blob[42:58].hex(),
        "feature_flags": 0, "disk_size": NODE,
    }


# --- command line --------------------------------------------------------------------------

def test_cli(tmp_path: Path):
    script = Path(pf.__file__)
    keyfile = tmp_path / "key"
    keyfile.write_bytes(KEY)
    plain = tmp_path / "plain"
    plain.write_bytes(payload(5000))

    def run(*args):
        return subprocess.run([sys.executable, str(script), *map(str, args)],
                              capture_output=True, text=True)

    r = run("encrypt", keyfile, plain, tmp_path / "enc", "enc/a.txt")
    assert r.returncode == 0, r.stderr
    assert pf.decrypt((tmp_path / "enc").read_bytes(), KEY, "enc/a.txt") == payload(5000)
    r = run("decrypt", keyfile, tmp_path / "enc", tmp_path / "out", "enc/a.txt")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out").read_bytes() == payload(5000)
    r = run("decrypt", keyfile, tmp_path / "enc", tmp_path / "out2")
    assert r.returncode == 0, r.stderr

    r = run("decrypt", keyfile, tmp_path / "enc", tmp_path / "out3", "other")
    assert r.returncode == 1 and r.stderr.splitlines()[0] == "Invalid path"
    assert not (tmp_path / "out3").exists()
    (tmp_path / "bad").write_bytes(flip((tmp_path / "enc").read_bytes(), 5000))
    r = run("decrypt", keyfile, tmp_path / "bad", tmp_path / "out4")
    assert r.returncode == 1 and r.stderr.splitlines()[0] == "MAC mismatch"
