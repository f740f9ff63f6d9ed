"""Issue 10: the identity `moat run` gives an app is the identity of what runs
(docs/attestation.md, "What identity an app gets"; reference/gramine.md §3 SIGSTRUCT, §5
/dev/attestation).

* STEM.manifest.sgx, when it exists, is the manifest that runs and is measured;
* STEM.sig counts only when its signature verifies and its enclave_hash is that measurement,
  and then MRSIGNER, ISVPRODID, ISVSVN and DEBUG come from it; any other .sig stops the start;
* `_sgx_mrsigner` needs a verified signer (unsigned apps would all share one key);
* the per-machine secret is refused when someone else could have written it.

Each attack below worked before the fix.
"""
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from conftest import moat_binary
from test_run import BASE, app, probe_binary  # noqa: F401 (fixtures)

KEYS = ("/dev/attestation/keys/_sgx_mrenclave", "/dev/attestation/keys/_sgx_mrsigner")


def measurement(manifest: bytes) -> bytes:
    return hashlib.sha256(b"moat-measurement-v1\0" + manifest).digest()


@pytest.fixture(scope="session")
def keys(tmp_path_factory, moat):
    """Two signing keys (RSA-3072, e = 3): the victim's and another signer's."""
    d = tmp_path_factory.mktemp("keys")
    for name in ("victim.pem", "other.pem"):
        moat("sign", "--gen-key", "-q", d / name, check=0)
    return d


@pytest.fixture
def secret_env(tmp_path):
    return {"MOAT_MACHINE_SECRET": str(tmp_path / "machine" / "machine.key")}


def render(moat, d: Path, argv, extra=""):
    (d / "probe.manifest.template").write_text(
        BASE + extra + "loader.argv = [%s]\n" % ", ".join(f'"{a}"' for a in ("probe",) + argv))
    moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
         cwd=d, check=0)


def sign(moat, d: Path, key: Path):
    moat("sign", "-q", "-m", "probe.manifest", "-o", "probe.manifest.sgx", "-k", key, cwd=d,
         check=0)


def run(moat, d: Path, env, *args):
    full = dict(os.environ, XDG_CACHE_HOME=str(d / "cache"), **env)
    return moat("run", "probe", *args, cwd=d, env=full, timeout=120)


def read_keys(*extra):
    """probe argv that prints both sealing keys (gethex: "16 bytes:<hex>")."""
    return ("gethex", KEYS[0], "+", "gethex", KEYS[1]) + extra


def new_app(tmp_path_factory, probe_binary, name, tweak=b""):  # noqa: F811
    """A directory with the probe (its bytes + tweak: another program) and the data BASE
    names."""
    d = tmp_path_factory.mktemp(name)
    (d / "probe").write_bytes(probe_binary.read_bytes() + tweak)
    (d / "probe").chmod(0o755)
    (d / "data" / "allowed").mkdir(parents=True)
    (d / "data" / "trusted.txt").write_text("trusted content\n")
    (d / "data" / "big.bin").write_bytes(bytes(1024))
    return d


def resign(sig: bytes, key_pem: Path, isvprodid=None, isvsvn=None, debug=None) -> bytes:
    """A SIGSTRUCT with changed fields, signed again with key_pem as `moat sign` signs
    (reference/gramine.md §3: RSASSA-PKCS1-v1_5/SHA-256 over bytes 0-127 || 900-1027, stored
    little-endian, q1 = s^2 / n, q2 = (s^2 mod n) * s / n)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    s = bytearray(sig)
    if isvprodid is not None:
        s[1024:1026] = isvprodid.to_bytes(2, "little")
    if isvsvn is not None:
        s[1026:1028] = isvsvn.to_bytes(2, "little")
    if debug is not None:
        flags = int.from_bytes(s[928:936], "little")
        flags = flags | 2 if debug else flags & ~2
        s[928:936] = flags.to_bytes(8, "little")
    key = serialization.load_pem_private_key(key_pem.read_bytes(), None)
    signature = key.sign(bytes(s[0:128] + s[900:1028]), padding.PKCS1v15(), hashes.SHA256())
    n = key.public_key().public_numbers().n
    v = int.from_bytes(signature, "big")
    s[516:900] = v.to_bytes(384, "little")
    s[1040:1424] = (v * v // n).to_bytes(384, "little")
    s[1424:1808] = ((v * v % n) * v // n).to_bytes(384, "little")
    return bytes(s)


# ------------------------------------------------------------------------------------------
# 1. What runs is what was measured and signed


def test_copied_sgx_and_sig_do_not_give_another_app_the_victims_keys(
        moat, keys, tmp_path_factory, probe_binary, secret_env):  # noqa: F811
    """The attack of issue 10: the attacker copies the victim's public .manifest.sgx and .sig
    next to its own manifest. moat runs the .sgx (the victim's manifest), which pins the
    victim's program by hash: the attacker's program never runs with the victim's identity."""
    victim = new_app(tmp_path_factory, probe_binary, "victim")
    render(moat, victim, read_keys())
    sign(moat, victim, keys / "victim.pem")
    r = run(moat, victim, secret_env)
    assert r.returncode == 0, r.stderr
    victim_keys = r.stdout.split()
    assert len(victim_keys) == 4 and victim_keys[0] == "16" and victim_keys[2] == "16"

    attacker = new_app(tmp_path_factory, probe_binary, "attacker", tweak=b"\0attacker")
    render(moat, attacker, read_keys())
    r = run(moat, attacker, secret_env)  # its own identity: another measurement, unsigned
    assert r.stdout.startswith("16 bytes:") and victim_keys[1] not in r.stdout
    for name in ("probe.manifest.sgx", "probe.sig"):
        (attacker / name).write_bytes((victim / name).read_bytes())
    r = run(moat, attacker, secret_env)
    assert victim_keys[1] not in r.stdout and victim_keys[3] not in r.stdout, r.stdout
    assert r.returncode != 0
    # what ran was the victim's manifest, which pins the victim's probe: the attacker's is not
    # it, and does not start
    assert "Hash of trusted file" in r.stderr and "does not match" in r.stderr
    assert "cannot execute '/probe'" in r.stderr


def test_copied_sig_alone_is_refused(moat, keys, tmp_path_factory, probe_binary,
                                     secret_env):  # noqa: F811
    """The victim's .sig next to the attacker's own manifest: its enclave_hash is not the
    measurement of what would run, so moat refuses to start and says which file and why."""
    victim = new_app(tmp_path_factory, probe_binary, "victim")
    render(moat, victim, read_keys())
    sign(moat, victim, keys / "victim.pem")
    victim_keys = run(moat, victim, secret_env).stdout
    attacker = new_app(tmp_path_factory, probe_binary, "attacker", tweak=b"\0attacker")
    render(moat, attacker, read_keys())
    (attacker / "probe.sig").write_bytes((victim / "probe.sig").read_bytes())
    r = run(moat, attacker, secret_env)
    assert r.returncode == 1 and r.stdout == ""
    assert "refusing to start: probe.sig is not the signature of probe.manifest" in r.stderr
    assert measurement((victim / "probe.manifest.sgx").read_bytes()).hex() in r.stderr
    assert measurement((attacker / "probe.manifest").read_bytes()).hex() in r.stderr
    assert "moat sign" in r.stderr
    assert victim_keys.split()[1] not in r.stderr


def test_sgx_manifest_is_what_runs_and_is_measured(app, moat, keys, tmp_path):  # noqa: F811
    """With STEM.manifest.sgx present it runs (as gramine-sgx runs it), also when
    STEM.manifest was edited afterwards: that edit has no effect but a warning."""
    env = {"MOAT_SIM_DIR": str(tmp_path / "sim")}
    moat("attest", "init", env=env, check=0)
    render(moat, app.dir, ("argv", "+", "copy", "/dev/attestation/my_target_info",
                           "/data/allowed/ti"))
    sign(moat, app.dir, keys / "victim.pem")
    sgx = (app.dir / "probe.manifest.sgx").read_bytes()
    r = app(render=False, env=env)
    assert r.stdout == "argv[0]=probe\nargv[1]=argv\ncopy: ok\n", r.stderr
    assert "is newer than" not in r.stderr
    assert (app.dir / "data/allowed/ti").read_bytes()[:32] == measurement(sgx)
    # the user edits STEM.manifest and forgets to sign: the signed manifest still runs
    render(moat, app.dir, ("env",))
    st = (app.dir / "probe.manifest.sgx").stat()
    os.utime(app.dir / "probe.manifest", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = app(render=False, env=env)
    assert r.stdout.startswith("argv[0]=probe\nargv[1]=argv\n"), r.stderr
    assert ("warning: probe.manifest is newer than probe.manifest.sgx, which is what runs"
            in r.stderr) and "re-run 'moat sign'" in r.stderr


def test_edited_sgx_manifest_is_refused(app, moat, keys):  # noqa: F811
    """Sign with sgx.isvprodid = 5, then raise it in the .sgx: the measurement changed, the
    SIGSTRUCT no longer matches, moat refuses (before: it ran with the edited values)."""
    render(moat, app.dir, ("argv",), "sgx.isvprodid = 5\n")
    sign(moat, app.dir, keys / "victim.pem")
    sgx = app.dir / "probe.manifest.sgx"
    text = sgx.read_text()
    assert "isvprodid = 5\n" in text
    sgx.write_text(text.replace("isvprodid = 5\n", "isvprodid = 6\n"))
    r = app(render=False)
    assert r.returncode == 1 and r.stdout == ""
    assert ("refusing to start: probe.sig is not the signature of probe.manifest.sgx: its "
            "enclave_hash is") in r.stderr
    assert measurement(sgx.read_bytes()).hex() in r.stderr


@pytest.mark.parametrize("damage,message", [
    (lambda s: s[:600] + bytes([s[600] ^ 1]) + s[601:], "signature does not verify"),
    (lambda s: s[:1024] + b"\x09\x00" + s[1026:], "signature does not verify"),  # isvprodid
    (lambda s: s[:960] + bytes(32) + s[992:], "signature does not verify"),  # enclave_hash
    (lambda s: s[:1000], "is not a SIGSTRUCT"),
])
def test_broken_sig_is_refused(app, moat, keys, damage, message):  # noqa: F811
    """A .sig whose RSA signature does not verify over its fields is never used, and never
    silently ignored either: a user who signed expects the signed identity."""
    render(moat, app.dir, ("argv",))
    sign(moat, app.dir, keys / "victim.pem")
    assert app(render=False).stdout == "argv[0]=probe\nargv[1]=argv\n"
    sig = app.dir / "probe.sig"
    sig.write_bytes(damage(sig.read_bytes()))
    r = app(render=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "refusing to start: probe.sig" in r.stderr and message in r.stderr


def test_unreadable_sig_is_not_ignored(app, moat, keys):  # noqa: F811
    render(moat, app.dir, ("argv",))
    sign(moat, app.dir, keys / "victim.pem")
    (app.dir / "probe.sig").unlink()
    (app.dir / "probe.sig").mkdir()
    r = app(render=False)
    assert r.returncode == 1 and r.stdout == "" and "probe.sig" in r.stderr


# ------------------------------------------------------------------------------------------
# The identity of a signed app comes from its verified SIGSTRUCT


def test_signed_identity_comes_from_the_sigstruct(app, moat, keys, tmp_path):  # noqa: F811
    """MRSIGNER is the verified signer's; ISVPRODID, ISVSVN and DEBUG are the SIGSTRUCT's, even
    where a SIGSTRUCT made by another tool says otherwise than the manifest."""
    import json
    env = {"MOAT_SIM_DIR": str(tmp_path / "sim")}
    moat("attest", "init", env=env, check=0)
    extra = ('sgx.remote_attestation = "dcap"\nsgx.isvprodid = 5\nsgx.isvsvn = 2\n'
             'sgx.debug = true\n')
    render(moat, app.dir, ("copy", "/dev/attestation/quote", "/data/allowed/q"), extra)
    sign(moat, app.dir, keys / "victim.pem")
    sig = (app.dir / "probe.sig").read_bytes()
    mrsigner = hashlib.sha256(sig[128:512]).hexdigest()

    def quote():
        r = app(render=False, env=env)
        assert r.stdout == "copy: ok\n", r.stderr
        return json.loads(moat("quote", "view", "--json", app.dir / "data/allowed/q",
                               check=0).stdout)
    q = quote()
    sgx = (app.dir / "probe.manifest.sgx").read_bytes()
    assert q["body"]["mrenclave"] == measurement(sgx).hex()
    assert q["body"]["mrsigner"] == mrsigner
    assert (q["body"]["isvprodid"], q["body"]["isvsvn"], q["is_debug"]) == (5, 2, True)
    # a SIGSTRUCT of the same manifest with other values (not what moat sign writes)
    (app.dir / "probe.sig").write_bytes(
        resign(sig, keys / "victim.pem", isvprodid=7, isvsvn=9, debug=False))
    q = quote()
    assert q["body"]["mrenclave"] == measurement(sgx).hex()
    assert (q["body"]["isvprodid"], q["body"]["isvsvn"], q["is_debug"]) == (7, 9, False)
    # unsigned: MRSIGNER zero, the rest from the manifest
    (app.dir / "probe.sig").unlink()
    q = quote()
    assert q["body"]["mrsigner"] == "00" * 32
    assert (q["body"]["isvprodid"], q["body"]["isvsvn"], q["is_debug"]) == (5, 2, True)


def test_mrsigner_key_is_per_signer_product_and_svn(moat, keys, tmp_path_factory, probe_binary,
                                                    secret_env):  # noqa: F811
    """_sgx_mrsigner: shared by two apps of one signer (its purpose), different for another
    signer or another ISVSVN; _sgx_mrenclave differs between the two apps."""
    def signed_keys(name, key, extra=""):
        d = new_app(tmp_path_factory, probe_binary, name)
        render(moat, d, read_keys(), 'loader.env.APP = "%s"\n%s' % (name, extra))
        sign(moat, d, keys / key)
        r = run(moat, d, secret_env)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()[1::2]
    a = signed_keys("a", "victim.pem")
    b = signed_keys("b", "victim.pem")
    c = signed_keys("c", "other.pem")
    d = signed_keys("d", "victim.pem", "sgx.isvsvn = 1\n")
    assert a[0] != b[0]  # _sgx_mrenclave: per measurement
    assert a[1] == b[1]  # _sgx_mrsigner: per signer
    assert a[1] != c[1] and a[1] != d[1]


# ------------------------------------------------------------------------------------------
# 2. No MRSIGNER key without a verified signer


def test_unsigned_apps_get_no_mrsigner_key(moat, tmp_path_factory, probe_binary,
                                           secret_env):  # noqa: F811
    """Every unsigned app's MRSIGNER is zero: a key derived from it would be the same for all
    of them. Reading it is refused with a log line; _sgx_mrenclave stays (per measurement)."""
    seen = []
    for name in ("one", "two"):
        d = new_app(tmp_path_factory, probe_binary, name)
        render(moat, d, ("gethex", KEYS[1], "+", "gethex", KEYS[0]),
               'loader.env.APP = "%s"\n' % name)
        r = run(moat, d, secret_env)
        assert r.stdout == "open: Permission denied\n", r.stderr
        assert ("/dev/attestation/keys/_sgx_mrsigner: the app is not signed, so it has no "
                "MRSIGNER sealing key") in r.stderr
        render(moat, d, ("gethex", KEYS[0]), 'loader.env.APP = "%s"\n' % name)
        r = run(moat, d, secret_env)
        assert r.stdout.startswith("16 bytes:"), r.stderr
        seen.append(r.stdout)
    assert seen[0] != seen[1]


def test_unsigned_app_with_mrsigner_mount_is_refused(app, moat, keys, secret_env):  # noqa: F811
    """An encrypted mount sealed with _sgx_mrsigner needs a signed app: unsigned, moat refuses
    to start and names the mount; signed, the mount works across runs."""
    mount = ('fs.mounts = [\n  { type = "encrypted", path = "/sealed", uri = "file:sealed", '
             'key_name = "_sgx_mrsigner" },')
    base = BASE.replace("fs.mounts = [", mount)
    (app.dir / "sealed").mkdir()

    def render_sealed(*argv):
        (app.dir / "probe.manifest.template").write_text(
            base + "loader.argv = [%s]\n" % ", ".join(f'"{a}"' for a in ("probe",) + argv))
        moat("manifest", "render", "--no-progress", "probe.manifest.template", "probe.manifest",
             cwd=app.dir, check=0)
    render_sealed("write", "/sealed/s")
    r = app(render=False, env=secret_env)
    assert r.returncode == 1 and r.stdout == ""
    assert ('encrypted mount "/sealed" uses key_name "_sgx_mrsigner", which needs a signed app'
            in r.stderr)
    assert not list((app.dir / "sealed").iterdir())
    sign(moat, app.dir, keys / "victim.pem")
    assert app(render=False, env=secret_env).stdout == "write: ok\n"
    render_sealed("cat", "/sealed/s")  # another manifest, the same signer: the same key
    sign(moat, app.dir, keys / "victim.pem")
    assert app(render=False, env=secret_env).stdout == "written\n"


# ------------------------------------------------------------------------------------------
# 3. The per-machine secret


def test_machine_secret_refused_when_others_could_have_written_it(app, moat, tmp_path):  # noqa
    secret = tmp_path / "machine" / "machine.key"
    env = {"MOAT_MACHINE_SECRET": str(secret)}
    render(moat, app.dir, ("gethex", KEYS[0]))
    first = app(render=False, env=env).stdout
    assert first.startswith("16 bytes:")
    secret.chmod(0o644)
    r = app(render=False, env=env)
    assert r.stdout == "open: Permission denied\n"
    assert f"refusing the machine secret {secret}: it is owned by uid" in r.stderr
    assert "mode 0644" in r.stderr and f"chmod 0600 {secret}" in r.stderr
    secret.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(secret, 65534, 65534)
        r = app(render=False, env=env)
        assert r.stdout == "open: Permission denied\n" and "owned by uid 65534" in r.stderr
        os.chown(secret, 0, 0)
    link = tmp_path / "machine" / "link.key"
    link.symlink_to(secret)
    r = app(render=False, env={"MOAT_MACHINE_SECRET": str(link)})
    assert r.stdout == "open: Permission denied\n" and "symbolic link" in r.stderr
    assert app(render=False, env=env).stdout == first  # the real one still works


def test_concurrent_first_runs_agree_on_the_machine_secret(app, moat, tmp_path):  # noqa: F811
    """8 first runs at once: all end with the same secret, hence the same sealing key."""
    secret = tmp_path / "fresh" / "machine.key"
    render(moat, app.dir, ("gethex", KEYS[0]))
    env = dict(os.environ, MOAT_MACHINE_SECRET=str(secret),
               XDG_CACHE_HOME=str(app.dir / "cache"))
    procs = [subprocess.Popen([str(moat_binary()), "run", "probe"], cwd=app.dir, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=180) for p in procs]
    keys = {out for out, _ in outs}
    assert len(keys) == 1 and next(iter(keys)).startswith("16 bytes:"), outs
    assert app(render=False, env={"MOAT_MACHINE_SECRET": str(secret)}).stdout in keys
    assert sorted(os.listdir(secret.parent)) == ["machine.key"]
