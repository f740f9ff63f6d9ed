"""Independent pure-Python reference for Gramine's encrypted-file ("protected files") format.

Written from /work/shared/reference/gramine.md, section 4 (4.1-4.6), not from Gramine or the
Intel SGX SDK sources.  It is used by the test suite to produce and check known-answer files
against moat's C implementation.

Format summary (all integers little-endian, all structs packed):

* The file is a sequence of 4096-byte nodes.  Node 0 is the metadata node::

      0    8  file_id "GRAFS_PF"
      8    1  major_version (2; 1 is still read)
      9    1  minor_version (0)
      10  32  metadata_key_nonce
      42  16  metadata_mac (GCM tag of the encrypted part)
      58   1  feature_flags (bit 0: pending write) -- absent in v1
      59  3884 encrypted part (offset 58 in v1), then zero padding up to 4096

  The decrypted part is ``file_path[772] | file_size u64 | root_mht_key[16] |
  root_mht_mac[16] | file_data[3072]`` where ``file_data`` holds plaintext bytes [0, 3072).

* The metadata key is AES-128-CMAC(user key, kdf_input) with the 104-byte
  ``kdf_input = u32 1 | label[64] "SGX-PROTECTED-FS-METADATA-KEY" NUL padded | nonce[32] |
  u32 128``.

* Every node (metadata encrypted part, MHT nodes, data nodes) is AES-128-GCM encrypted with a
  12-byte all-zero IV and no AAD; the tag is kept next to the node key in the parent:
  data node d in slot d % 96 of ``data_nodes_crypto`` of MHT d // 96, MHT m >= 1 in slot
  (m - 1) % 32 of ``mht_nodes_crypto`` of MHT (m - 1) // 32, the root MHT (MHT 0) in the
  metadata's encrypted part.  An MHT node is 96 (key, mac) pairs for data nodes followed by 32
  pairs for child MHT nodes.

* Physical node numbers: metadata 0, MHT m at 1 + 97 * m, data d at d + 2 + d // 96.  Data
  node d covers plaintext [3072 + 4096 * d, 3072 + 4096 * (d + 1)), zero padded past EOF.  A
  file of at most 3072 bytes is just the metadata node; a larger one ends with the node of its
  last data node.

Random values (see :func:`encrypt`) are drawn from a caller-supplied ``rng`` so that output can
be made deterministic with :func:`deterministic_rng`.
"""

import hashlib
import os
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# --- constants (reference 4.1) -------------------------------------------------------------

NODE_SIZE = 4096
KEY_SIZE = 16
MAC_SIZE = 16
IV = bytes(12)
NONCE_SIZE = 32
FILE_ID = b"GRAFS_PF"  # 0x46505f5346415247 little-endian
MAJOR_VERSION = 2
MINOR_VERSION = 0
METADATA_KEY_NAME = b"SGX-PROTECTED-FS-METADATA-KEY"
MAX_LABEL_SIZE = 64
PATH_MAX_SIZE = 772
MD_USER_DATA_SIZE = 3072
ATTACHED_DATA_NODES_COUNT = 96
CHILD_MHT_NODES_COUNT = 32
HAS_PENDING_WRITE_FLAG = 0x01

# metadata node layout (reference 4.2)
PLAIN_PART_SIZE_V1 = 58
PLAIN_PART_SIZE_V2 = 59
ENCRYPTED_PART_SIZE = PATH_MAX_SIZE + 8 + KEY_SIZE + MAC_SIZE + MD_USER_DATA_SIZE  # 3884
_OFF_NONCE = 10
_OFF_MAC = 42
_OFF_FLAGS = 58
_ENC_OFF_SIZE = PATH_MAX_SIZE  # 772
_ENC_OFF_ROOT_KEY = _ENC_OFF_SIZE + 8  # 780
_ENC_OFF_ROOT_MAC = _ENC_OFF_ROOT_KEY + KEY_SIZE  # 796
_ENC_OFF_DATA = _ENC_OFF_ROOT_MAC + MAC_SIZE  # 812

# MHT node layout (reference 4.4)
_CRYPTO_ENTRY_SIZE = KEY_SIZE + MAC_SIZE  # 32
_MHT_OFF_CHILD_MHTS = ATTACHED_DATA_NODES_COUNT * _CRYPTO_ENTRY_SIZE  # 3072

KDF_INPUT_SIZE = 4 + MAX_LABEL_SIZE + NONCE_SIZE + 4  # 104

assert ENCRYPTED_PART_SIZE == 3884
assert _MHT_OFF_CHILD_MHTS + CHILD_MHT_NODES_COUNT * _CRYPTO_ENTRY_SIZE == NODE_SIZE

# status strings of the reference (4.7) used by this module
STATUS_INVALID_HEADER = "Invalid header"
STATUS_INVALID_VERSION = "Invalid version"
STATUS_INVALID_PATH = "Invalid path"
STATUS_MAC_MISMATCH = "MAC mismatch"
STATUS_CORRUPTED = "File is corrupted"
STATUS_PATH_TOO_LONG = "Path is too long"
STATUS_RECOVERY_NEEDED = "File recovery needed but failed"


class PFError(Exception):
    """A protected-file error; ``status`` is the reference's status string."""

    def __init__(self, status: str, detail: str = ""):
        super().__init__(f"{status}: {detail}" if detail else status)
        self.status = status
        self.detail = detail


# --- node numbering and sizes --------------------------------------------------------------

def physical_data_node(d: int) -> int:
    """Physical node number of logical data node ``d`` (d + 2 + d // 96)."""
    if d < 0:
        raise ValueError("negative data node number")
    return d + 2 + d // ATTACHED_DATA_NODES_COUNT


def physical_mht_node(m: int) -> int:
    """Physical node number of logical MHT node ``m`` (root MHT m = 0 is node 1)."""
    if m < 0:
        raise ValueError("negative MHT node number")
    return 1 + (ATTACHED_DATA_NODES_COUNT + 1) * m


def data_node_count(plaintext_size: int) -> int:
    """Number of data nodes of a file holding ``plaintext_size`` bytes (0 if <= 3072)."""
    if plaintext_size < 0:
        raise ValueError("negative size")
    if plaintext_size <= MD_USER_DATA_SIZE:
        return 0
    return (plaintext_size - MD_USER_DATA_SIZE + NODE_SIZE - 1) // NODE_SIZE


def mht_node_count(plaintext_size: int) -> int:
    """Number of MHT nodes (root included) of a file of ``plaintext_size`` bytes."""
    n_data = data_node_count(plaintext_size)
    if n_data == 0:
        return 0
    return (n_data - 1) // ATTACHED_DATA_NODES_COUNT + 1


def file_size_on_disk(plaintext_size: int) -> int:
    """On-disk size of a file of ``plaintext_size`` bytes (truncation rule of 4.4)."""
    n_data = data_node_count(plaintext_size)
    if n_data == 0:
        return NODE_SIZE
    return (physical_data_node(n_data - 1) + 1) * NODE_SIZE


def _mht_parent_slot(m: int) -> tuple:
    """(parent MHT, slot in its mht_nodes_crypto) of MHT ``m`` >= 1."""
    return (m - 1) // CHILD_MHT_NODES_COUNT, (m - 1) % CHILD_MHT_NODES_COUNT


def _data_parent_slot(d: int) -> tuple:
    """(parent MHT, slot in its data_nodes_crypto) of data node ``d``."""
    return d // ATTACHED_DATA_NODES_COUNT, d % ATTACHED_DATA_NODES_COUNT


def _data_slot_offset(slot: int) -> int:
    return slot * _CRYPTO_ENTRY_SIZE


def _mht_slot_offset(slot: int) -> int:
    return _MHT_OFF_CHILD_MHTS + slot * _CRYPTO_ENTRY_SIZE


# --- crypto primitives ---------------------------------------------------------------------

def kdf_input(nonce: bytes) -> bytes:
    """The 104-byte packed ``kdf_input_t`` for ``nonce`` (counter 1, label, nonce, 128)."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    label = METADATA_KEY_NAME.ljust(MAX_LABEL_SIZE, b"\0")
    data = struct.pack("<I", 1) + label + nonce + struct.pack("<I", 128)
    assert len(data) == KDF_INPUT_SIZE
    return data


def metadata_key(key: bytes, nonce: bytes) -> bytes:
    """Derive the metadata key: AES-128-CMAC(key, kdf_input(nonce)) (reference 4.3)."""
    _check_key(key)
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(kdf_input(nonce))
    return mac.finalize()


def gcm_encrypt(key: bytes, plaintext: bytes) -> tuple:
    """AES-128-GCM with a zero IV and no AAD; returns (ciphertext, tag)."""
    out = AESGCM(key).encrypt(IV, plaintext, None)
    return out[:-MAC_SIZE], out[-MAC_SIZE:]


def gcm_decrypt(key: bytes, ciphertext: bytes, tag: bytes, what: str = "") -> bytes:
    """Inverse of :func:`gcm_encrypt`; raises PFError("MAC mismatch") on a bad tag."""
    try:
        return AESGCM(key).decrypt(IV, ciphertext + tag, None)
    except InvalidTag:
        raise PFError(STATUS_MAC_MISMATCH, what) from None


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes")


def _encode_path(path) -> bytes:
    return os.fsencode(path)


def deterministic_rng(seed=b""):
    """Return an ``rng(n)`` callable producing a reproducible byte stream from ``seed``.

    The stream is SHA-256(seed | u64 counter) blocks concatenated; meant only for tests.
    """
    if isinstance(seed, str):
        seed = seed.encode()
    elif isinstance(seed, int):
        seed = struct.pack("<Q", seed)
    state = {"counter": 0, "buf": b""}

    def rng(n: int) -> bytes:
        while len(state["buf"]) < n:
            block = hashlib.sha256(seed + struct.pack("<Q", state["counter"])).digest()
            state["counter"] += 1
            state["buf"] += block
        out, state["buf"] = state["buf"][:n], state["buf"][n:]
        return out

    return rng


# --- encryption ----------------------------------------------------------------------------

def encrypt(plaintext: bytes, key: bytes, path: str, *, rng=os.urandom) -> bytes:
    """Return a complete v2 encrypted file (major 2, minor 0, feature_flags 0).

    ``path`` is the path bound into the file (stored NUL-terminated, zero padded to 772
    bytes; at most 771 bytes once encoded with ``os.fsencode``, else PFError "Path is too
    long").  ``rng(n)`` supplies every random value, in this fixed order:

    1. one 16-byte node key per node, in increasing physical node order (root MHT = node 1,
       then data and MHT nodes as they are laid out on disk); nothing for files <= 3072 bytes;
    2. the 32-byte metadata key nonce, last.

    Nodes are then encrypted bottom-up (data nodes, then MHT nodes from the highest logical
    number down to the root), each tag being stored with its key in the parent's slot.
    """
    _check_key(key)
    plaintext = bytes(plaintext)
    path_bytes = _encode_path(path)
    if b"\0" in path_bytes:
        raise ValueError("path contains a NUL byte")
    if len(path_bytes) >= PATH_MAX_SIZE:
        raise PFError(STATUS_PATH_TOO_LONG, f"{len(path_bytes)} bytes")

    size = len(plaintext)
    n_data = data_node_count(size)
    n_mht = mht_node_count(size)
    n_nodes = file_size_on_disk(size) // NODE_SIZE

    # 1. draw node keys in increasing physical order
    mht_phys = {physical_mht_node(m): m for m in range(n_mht)}
    data_keys = [b""] * n_data
    mht_keys = [b""] * n_mht
    d = 0
    for phys in range(1, n_nodes):
        k = _draw(rng, KEY_SIZE)
        if phys in mht_phys:
            mht_keys[mht_phys[phys]] = k
        else:
            assert physical_data_node(d) == phys
            data_keys[d] = k
            d += 1
    assert d == n_data
    # 2. the metadata nonce, last
    nonce = _draw(rng, NONCE_SIZE)

    nodes = [b""] * n_nodes
    mhts = [bytearray(NODE_SIZE) for _ in range(n_mht)]

    # data nodes
    for d in range(n_data):
        start = MD_USER_DATA_SIZE + NODE_SIZE * d
        chunk = plaintext[start:start + NODE_SIZE].ljust(NODE_SIZE, b"\0")
        ct, tag = gcm_encrypt(data_keys[d], chunk)
        nodes[physical_data_node(d)] = ct
        parent, slot = _data_parent_slot(d)
        off = _data_slot_offset(slot)
        mhts[parent][off:off + _CRYPTO_ENTRY_SIZE] = data_keys[d] + tag

    # MHT nodes, children before parents (a parent's number is always lower)
    root_key = bytes(KEY_SIZE)
    root_mac = bytes(MAC_SIZE)
    for m in range(n_mht - 1, -1, -1):
        ct, tag = gcm_encrypt(mht_keys[m], bytes(mhts[m]))
        nodes[physical_mht_node(m)] = ct
        if m == 0:
            root_key, root_mac = mht_keys[0], tag
        else:
            parent, slot = _mht_parent_slot(m)
            off = _mht_slot_offset(slot)
            mhts[parent][off:off + _CRYPTO_ENTRY_SIZE] = mht_keys[m] + tag

    # metadata node
    enc_plain = (path_bytes.ljust(PATH_MAX_SIZE, b"\0")
                 + struct.pack("<Q", size)
                 + root_key + root_mac
                 + plaintext[:MD_USER_DATA_SIZE].ljust(MD_USER_DATA_SIZE, b"\0"))
    assert len(enc_plain) == ENCRYPTED_PART_SIZE
    ct, mac = gcm_encrypt(metadata_key(key, nonce), enc_plain)
    header = FILE_ID + bytes([MAJOR_VERSION, MINOR_VERSION]) + nonce + mac + bytes([0])
    assert len(header) == PLAIN_PART_SIZE_V2
    nodes[0] = (header + ct).ljust(NODE_SIZE, b"\0")

    blob = b"".join(nodes)
    assert all(len(n) == NODE_SIZE for n in nodes)
    assert len(blob) == file_size_on_disk(size)
    return blob


def _draw(rng, n: int) -> bytes:
    value = bytes(rng(n))
    if len(value) != n:
        raise ValueError(f"rng({n}) returned {len(value)} bytes")
    return value


# --- header parsing ------------------------------------------------------------------------

def info(blob: bytes) -> dict:
    """Return the plaintext header fields of ``blob`` (no key needed, nothing verified).

    Keys: ``file_id`` (str), ``major``, ``minor`` (int), ``nonce`` and ``mac`` (hex str),
    ``feature_flags`` (int, or None for a v1 file), ``disk_size`` (int).  Raises
    PFError("Invalid header") if ``blob`` is too short to hold the header.
    """
    blob = bytes(blob)
    if len(blob) < PLAIN_PART_SIZE_V2:
        raise PFError(STATUS_INVALID_HEADER, "file too short")
    major = blob[8]
    return {
        "file_id": blob[:8].decode("ascii", "backslashreplace"),
        "major": major,
        "minor": blob[9],
        "nonce": blob[_OFF_NONCE:_OFF_NONCE + NONCE_SIZE].hex(),
        "mac": blob[_OFF_MAC:_OFF_MAC + MAC_SIZE].hex(),
        "feature_flags": None if major == 1 else blob[_OFF_FLAGS],
        "disk_size": len(blob),
    }


def _check_header(blob: bytes) -> int:
    """Check size, file_id and version; return the offset of the encrypted part."""
    if len(blob) == 0 or len(blob) % NODE_SIZE != 0:
        raise PFError(STATUS_INVALID_HEADER, f"size {len(blob)} is not a multiple of 4096")
    if blob[:8] != FILE_ID:
        raise PFError(STATUS_INVALID_HEADER, "bad file_id")
    major = blob[8]
    if major == 1:
        return PLAIN_PART_SIZE_V1
    if major == MAJOR_VERSION:
        if blob[_OFF_FLAGS] & HAS_PENDING_WRITE_FLAG:
            raise PFError(STATUS_RECOVERY_NEEDED, "pending-write flag set")
        return PLAIN_PART_SIZE_V2
    raise PFError(STATUS_INVALID_VERSION, f"major version {major}")


# --- decryption ----------------------------------------------------------------------------

def decrypt(blob: bytes, key: bytes, path=None, *, strict: bool = False) -> bytes:
    """Verify an encrypted file (v1 or v2) and return its plaintext.

    Checks, in order (PFError ``status`` in parentheses):

    * on-disk size non-zero and a multiple of 4096, file_id "GRAFS_PF" ("Invalid header");
    * major version 1 or 2 ("Invalid version"; the minor version is not checked);
    * v2 pending-write flag clear ("File recovery needed but failed" -- no recovery file);
    * metadata GCM tag with the key derived from the stored nonce ("MAC mismatch");
    * stored path NUL-terminated ("File is corrupted") and, if ``path`` is given, equal to it
      ("Invalid path");
    * on-disk size equal to the size implied by file_size ("File is corrupted");
    * the tag of every MHT node and data node through the tree ("MAC mismatch").

    With ``strict=True`` the bytes the format says are zero must be zero ("File is
    corrupted"): metadata padding, v2 feature_flags, file_data and data-node bytes past EOF,
    root MHT key/mac of files <= 3072 bytes, and unused MHT slots.  Readers do not require
    this; it is meant for checking freshly written files.
    """
    _check_key(key)
    blob = bytes(blob)
    enc_off = _check_header(blob)

    nonce = blob[_OFF_NONCE:_OFF_NONCE + NONCE_SIZE]
    mac = blob[_OFF_MAC:_OFF_MAC + MAC_SIZE]
    enc = blob[enc_off:enc_off + ENCRYPTED_PART_SIZE]
    meta = gcm_decrypt(metadata_key(key, nonce), enc, mac, "metadata node")

    stored_path = meta[:PATH_MAX_SIZE]
    nul = stored_path.find(b"\0")
    if nul < 0:
        raise PFError(STATUS_CORRUPTED, "stored path is not NUL-terminated")
    stored_path = stored_path[:nul]
    if path is not None and stored_path != _encode_path(path):
        raise PFError(STATUS_INVALID_PATH,
                      f"file bound to {stored_path!r}, opened as {_encode_path(path)!r}")

    (size,) = struct.unpack_from("<Q", meta, _ENC_OFF_SIZE)
    root_key = meta[_ENC_OFF_ROOT_KEY:_ENC_OFF_ROOT_KEY + KEY_SIZE]
    root_mac = meta[_ENC_OFF_ROOT_MAC:_ENC_OFF_ROOT_MAC + MAC_SIZE]
    file_data = meta[_ENC_OFF_DATA:_ENC_OFF_DATA + MD_USER_DATA_SIZE]

    if file_size_on_disk(size) != len(blob):
        raise PFError(STATUS_CORRUPTED, f"file_size {size} needs {file_size_on_disk(size)} "
                                        f"bytes on disk, file has {len(blob)}")

    if strict:
        if any(blob[enc_off + ENCRYPTED_PART_SIZE:NODE_SIZE]):
            raise PFError(STATUS_CORRUPTED, "non-zero metadata padding")
        if enc_off == PLAIN_PART_SIZE_V2 and blob[_OFF_FLAGS] != 0:
            raise PFError(STATUS_CORRUPTED, "non-zero feature_flags")
        if any(file_data[min(size, MD_USER_DATA_SIZE):]):
            raise PFError(STATUS_CORRUPTED, "non-zero file_data past EOF")
        if size <= MD_USER_DATA_SIZE and any(root_key + root_mac):
            raise PFError(STATUS_CORRUPTED, "root MHT key/mac set in a small file")

    out = [file_data[:min(size, MD_USER_DATA_SIZE)]]
    n_data = data_node_count(size)
    n_mht = mht_node_count(size)

    mhts = []
    for m in range(n_mht):
        if m == 0:
            k, t = root_key, root_mac
        else:
            parent, slot = _mht_parent_slot(m)
            off = _mht_slot_offset(slot)
            entry = mhts[parent][off:off + _CRYPTO_ENTRY_SIZE]
            k, t = entry[:KEY_SIZE], entry[KEY_SIZE:]
        mhts.append(gcm_decrypt(k, _node(blob, physical_mht_node(m)), t, f"MHT node {m}"))

    if strict:
        for m, node in enumerate(mhts):
            used_data = min(ATTACHED_DATA_NODES_COUNT, n_data - m * ATTACHED_DATA_NODES_COUNT)
            used_mht = max(0, min(CHILD_MHT_NODES_COUNT,
                                  n_mht - 1 - m * CHILD_MHT_NODES_COUNT))
            if any(node[_data_slot_offset(used_data):_MHT_OFF_CHILD_MHTS]) or \
                    any(node[_mht_slot_offset(used_mht):]):
                raise PFError(STATUS_CORRUPTED, f"unused slots of MHT node {m} not zero")

    for d in range(n_data):
        parent, slot = _data_parent_slot(d)
        off = _data_slot_offset(slot)
        entry = mhts[parent][off:off + _CRYPTO_ENTRY_SIZE]
        data = gcm_decrypt(entry[:KEY_SIZE], _node(blob, physical_data_node(d)),
                           entry[KEY_SIZE:], f"data node {d}")
        remaining = size - MD_USER_DATA_SIZE - NODE_SIZE * d
        if remaining < NODE_SIZE:
            if strict and any(data[remaining:]):
                raise PFError(STATUS_CORRUPTED, f"non-zero bytes past EOF in data node {d}")
            data = data[:remaining]
        out.append(data)

    plaintext = b"".join(out)
    assert len(plaintext) == size
    return plaintext


def _node(blob: bytes, phys: int) -> bytes:
    return blob[phys * NODE_SIZE:(phys + 1) * NODE_SIZE]


# --- v1 conversion -------------------------------------------------------------------------

def to_v1(blob: bytes) -> bytes:
    """Convert a v2 file to the v1 layout and return it.

    Only node 0's plaintext header changes: major becomes 1, the feature_flags byte is
    dropped, the 3884 encrypted bytes move from offset 59 to 58 and the padding grows to 154
    zero bytes.  The metadata MAC covers only the encrypted bytes, so it stays valid.  All other
    nodes are copied unchanged.
    """
    blob = bytes(blob)
    if len(blob) < NODE_SIZE or len(blob) % NODE_SIZE != 0 or blob[:8] != FILE_ID:
        raise PFError(STATUS_INVALID_HEADER)
    if blob[8] != MAJOR_VERSION:
        raise PFError(STATUS_INVALID_VERSION, f"expected a v2 file, got major {blob[8]}")
    enc = blob[PLAIN_PART_SIZE_V2:PLAIN_PART_SIZE_V2 + ENCRYPTED_PART_SIZE]
    header = FILE_ID + bytes([1, blob[9]]) + blob[_OFF_NONCE:_OFF_MAC + MAC_SIZE]
    assert len(header) == PLAIN_PART_SIZE_V1
    node0 = (header + enc).ljust(NODE_SIZE, b"\0")
    return node0 + blob[NODE_SIZE:]


# --- command line --------------------------------------------------------------------------

def _read_key(path: str) -> bytes:
    with open(path, "rb") as f:
        key = f.read()
    if len(key) != KEY_SIZE:
        raise PFError("Invalid parameter", f"Wrap key size {len(key)} != {KEY_SIZE}")
    return key


def main(argv=None) -> int:
    """CLI: ``encrypt KEYFILE IN OUT PATH`` or ``decrypt KEYFILE IN OUT [PATH]``.

    Returns 0 on success.  On failure returns 1 and prints the status string alone on the
    first line of stderr (details, if any, on the next line); OUT is not written.
    """
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_enc = sub.add_parser("encrypt", help="encrypt IN into OUT, binding PATH")
    p_dec = sub.add_parser("decrypt", help="verify and decrypt IN into OUT")
    for p in (p_enc, p_dec):
        p.add_argument("keyfile", help="file holding the 16-byte raw key")
        p.add_argument("input")
        p.add_argument("output")
    p_enc.add_argument("path", help="path bound into the file")
    p_dec.add_argument("path", nargs="?", help="expected bound path (not checked if omitted)")
    args = parser.parse_args(argv)

    try:
        key = _read_key(args.keyfile)
        with open(args.input, "rb") as f:
            data = f.read()
        if args.command == "encrypt":
            result = encrypt(data, key, args.path)
        else:
            result = decrypt(data, key, args.path)
    except PFError as e:
        print(e.status, file=sys.stderr)
        if e.detail:
            print(e.detail, file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        f.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
