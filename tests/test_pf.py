"""`moat pf` and src/pf against an independent implementation of Gramine's encrypted-file format
(tests/pf_reference.py, reference/gramine.md §4): files moat writes are read by the reference
(with its strict layout checks) and the other way round, at every size boundary; the tamper
matrix; the gramine-sgx-pf-crypt interface and messages.
"""
import os

import pytest

import pf_reference as ref

KEY = bytes(range(1, 17))
MHT1 = 4096 * 96 + 3072  # the last size with only the root MHT
SIZES = [0, 1, 3071, 3072, 3073, 4096, 3072 + 4096, 3072 + 4097, MHT1, MHT1 + 1,
         4096 * 96 * 33 + 3072 + 1]  # the last one needs MHT 33, a child of MHT 1


@pytest.fixture
def work(tmp_path):
    (tmp_path / "k").write_bytes(KEY)
    return tmp_path


def data(size, seed=0):
    return bytes((i * 131 + seed + (i >> 12)) & 0xFF for i in range(size))


@pytest.mark.parametrize("size", SIZES)
def test_moat_writes_what_the_reference_reads(moat, work, size):
    (work / "plain").write_bytes(data(size, size))
    r = moat("pf", "encrypt", "-w", "k", "-i", "plain", "-o", "enc", cwd=work, check=0)
    assert r.stdout == ('Encrypting: plain -> enc\n'
                        '(Gramine\'s encrypted files must contain this exact path: "enc")\n')
    blob = (work / "enc").read_bytes()
    assert len(blob) == ref.file_size_on_disk(size)
    assert ref.decrypt(blob, KEY, "enc", strict=True) == data(size, size)


@pytest.mark.parametrize("size", SIZES)
def test_moat_reads_what_the_reference_writes(moat, work, size):
    (work / "enc").write_bytes(ref.encrypt(data(size, 3), KEY, "/srv/enc"))
    moat("pf", "decrypt", "-w", "k", "-i", "enc", "-o", "out", cwd=work, check=0)
    assert (work / "out").read_bytes() == data(size, 3)


@pytest.mark.parametrize("size", [10, 5000, MHT1 + 1])
def test_version_1_files_are_read(moat, work, size):
    (work / "enc").write_bytes(ref.to_v1(ref.encrypt(data(size), KEY, "enc")))
    r = moat("pf", "info", "-w", "k", "enc", cwd=work, check=0)
    assert "version 1.0" in r.stdout and f"size:        {size} bytes" in r.stdout
    moat("pf", "decrypt", "-w", "k", "-i", "enc", "-o", "out", "-V", cwd=work, check=0)
    assert (work / "out").read_bytes() == data(size)


def test_directories_and_bind_path(moat, work):
    (work / "in/sub").mkdir(parents=True)
    (work / "in/a").write_bytes(b"alpha")
    (work / "in/sub/b").write_bytes(data(9000))
    moat("pf", "encrypt", "-w", "k", "-i", "in", "-o", "out", "--bind-path", "/enc/db",
         cwd=work, check=0)
    assert ref.decrypt((work / "out/a").read_bytes(), KEY, "/enc/db/a") == b"alpha"
    assert ref.decrypt((work / "out/sub/b").read_bytes(), KEY, "/enc/db/sub/b") == data(9000)
    r = moat("pf", "info", "-w", "k", "out/sub/b", cwd=work, check=0)
    assert "bound path:  /enc/db/sub/b" in r.stdout
    moat("pf", "decrypt", "-w", "k", "-i", "out", "-o", "back", cwd=work, check=0)
    assert (work / "back/sub/b").read_bytes() == data(9000)
    # the embedded path is the normalized one
    moat("pf", "encrypt", "-w", "k", "-i", "in/a", "-o", "./x//y/../z", cwd=work, check=0)
    assert ref.decrypt((work / "x/z").read_bytes(), KEY, "x/z") == b"alpha"


def test_path_binding_message(moat, work):
    (work / "p").write_bytes(b"secret")
    moat("pf", "encrypt", "-w", "k", "-i", "p", "-o", "enc", cwd=work, check=0)
    os.rename(work / "enc", work / "moved")
    r = moat("pf", "decrypt", "-w", "k", "-i", "moved", "-o", "out", "-V", cwd=work, check=1)
    assert 'Invalid path: the file is bound to "enc", expected "moved"' in r.stderr
    assert not (work / "out").exists()
    # without -V the path is not checked (gramine-sgx-pf-crypt decrypt)
    moat("pf", "decrypt", "-w", "k", "-i", "moved", "-o", "out", cwd=work, check=0)


def nodes(blob):
    return [blob[i:i + 4096] for i in range(0, len(blob), 4096)]


def tampered_variants(blob):
    """(description, bytes, expected status) for every way the reference lists."""
    def flip(off):
        b = bytearray(blob)
        b[off] ^= 0x40
        return bytes(b)
    n = nodes(blob)
    swapped = b"".join(n[:2] + [n[3], n[2]] + n[4:])
    yield "file id", flip(0), "Invalid header"
    yield "version", flip(8), "Invalid version"
    yield "nonce", flip(12), "MAC mismatch"
    yield "metadata tag", flip(45), "MAC mismatch"
    yield "encrypted metadata", flip(300), "MAC mismatch"
    yield "root MHT", flip(4096 + 1), "MAC mismatch"
    yield "data node 0", flip(2 * 4096 + 100), "MAC mismatch"
    yield "MHT 1", flip(98 * 4096 + 100), "MAC mismatch"
    yield "last data node", flip(len(blob) - 1), "MAC mismatch"
    yield "two data nodes swapped", swapped, "MAC mismatch"
    yield "last node cut", blob[:-4096], "File is corrupted"
    yield "a node appended", blob + n[2], "File is corrupted"
    yield "not a node multiple", blob[:-100], "Invalid header"
    yield "empty", b"", "Invalid header"


def test_tampering_is_detected(moat, work):
    blob = ref.encrypt(data(MHT1 + 4096 * 3), KEY, "enc")
    for what, variant, status in tampered_variants(blob):
        (work / "enc").write_bytes(variant)
        r = moat("pf", "decrypt", "-w", "k", "-i", "enc", "-o", "out", cwd=work)
        assert r.returncode == 1, what
        assert status in r.stderr, (what, r.stderr)
        assert not (work / "out").exists(), what  # nothing written from a bad file


def test_wrong_key_and_other_file(moat, work):
    (work / "enc").write_bytes(ref.encrypt(b"x" * 5000, KEY, "enc"))
    (work / "k2").write_bytes(bytes(16))
    r = moat("pf", "decrypt", "-w", "k2", "-i", "enc", "-o", "out", cwd=work, check=1)
    assert "MAC mismatch (wrong key, or the file was tampered with)" in r.stderr
    # a file encrypted under the same key for another path, swapped in
    (work / "enc").write_bytes(ref.encrypt(b"y" * 5000, KEY, "other"))
    r = moat("pf", "decrypt", "-w", "k", "-i", "enc", "-o", "out", "-V", cwd=work, check=1)
    assert "Invalid path" in r.stderr


def test_cli_errors(moat, work):
    r = moat("pf", "gen-key", "-w", "new", cwd=work, check=0)
    assert r.stdout == "Wrap key saved to: new\n"
    assert len((work / "new").read_bytes()) == 16
    assert (work / "new").stat().st_mode & 0o777 == 0o600
    (work / "short").write_bytes(b"123")
    (work / "p").write_bytes(b"p")
    r = moat("pf", "encrypt", "-w", "short", "-i", "p", "-o", "e", cwd=work, check=2)
    assert "Wrap key size 3 != 16" in r.stderr
    moat("pf", "encrypt", "-w", "k", "-i", "p", cwd=work, check=2)
    moat("pf", "frobnicate", cwd=work, check=2)
    r = moat("pf", "info", "p", cwd=work, check=1)
    assert "Invalid header (not a Gramine encrypted file)" in r.stderr
    r = moat("pf", "encrypt", "-w", "k", "-i", "missing", "-o", "e", cwd=work, check=1)
    assert "missing" in r.stderr
