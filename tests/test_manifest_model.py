"""`moat manifest check --finalized` and `moat run` read a manifest through the same typed model
(src/manifest/model.c): they accept and refuse the same manifests, with the same messages.

The corpus: every bad-manifest case of test_manifest_check.py, a few that only the runtime
rules refuse (unhashed trusted files), Graphene-era manifests, and every real Gramine template
in ../shared/testdata (tests/test_render_templates.py renders each and calls assert_agree;
skipped, with the reason, without ../shared).
For each, both commands run; the `FILE:LINE:COL: error: ...` lines they print must be the same,
and both must succeed or both must refuse. moat run then stops at the manifest (exit 1, as
gramine-direct) or goes on to start the app (which may fail later for other reasons: those
are not manifest errors).
"""
import re

import pytest

from test_manifest_check import BAD, GOOD

ERROR = re.compile(r"^(?!moat:)\S+:\d+:\d+: error: .*$|^(?!moat:)\S+: error: .*$", re.M)
HASH = "0" * 64
HEADER = 'loader.entrypoint.uri = "file:/usr/lib/moat/libmoat.so"\n'

RUNTIME_ONLY = [
    # a manifest that was not rendered: Gramine's runtime refuses it, so does moat run
    ('libos.entrypoint = "/app"\nsgx.trusted_files = [ "file:app" ]\n',
     "Invalid trusted file in manifest at index 0 (not a TOML table)"),
    ('libos.entrypoint = "/app"\nsgx.trusted_files = [ { uri = "file:lib/" } ]\n',
     "Invalid trusted file in manifest at index 0 (no 'sha256' key)"),
    ('libos.entrypoint = "/app"\nloader.uid = -1\n', "'loader.uid' = -1 is out of range"),
    ('libos.entrypoint = "/app"\nloader.gid = 4294967295\n', "'loader.gid' = 4294967295 is out of range"),
    ('libos.entrypoint = "/app"\nsys.fds.limit = 70000\n', "'sys.fds.limit' = 70000 is out of range"),
    ('libos.entrypoint = "/app"\nfs.mounts = [ { type = "untrusted_shm", path = "/dev/shm", '
     'uri = "file:/dev/shm" } ]\n', "must start with 'dev:'"),
    ('libos.entrypoint = "/app"\nfs.mounts = [ { type = "encrypted", path = "/e", '
     'uri = "dev:/e" } ]\n', "must start with 'file:'"),
]

# test_manifest_check's GOOD, rendered: trusted files hashed
GOOD_RENDERED = re.sub(r'sgx.trusted_files = \[.*\]',
                       f'sgx.trusted_files = [ {{ uri = "file:app", sha256 = "{HASH}" }} ]', GOOD)

ACCEPTED = [
    GOOD_RENDERED,
    # devices through chroot mounts and host shared memory (reference/gramine.md §1.3)
    'libos.entrypoint = "/app"\nfs.mounts = [ { path = "/dev/null2", uri = "dev:/dev/null" },\n'
    '  { type = "untrusted_shm", path = "/dev/shm", uri = "dev:/dev/shm" } ]\n'
    'sgx.allowed_files = [ "dev:/dev/null", "dev:/dev/shm/" ]\n',
    # Graphene-era keys are read (migrated in memory), not refused
    'libos.entrypoint = "/app"\nsgx.thread_num = 8\n'
    'fs.mount.lib.type = "chroot"\nfs.mount.lib.path = "/lib"\nfs.mount.lib.uri = "file:/lib"\n',
    'libos.entrypoint = "/app"\nloader.uid = 1000\nloader.gid = 1000\n'
    f'sgx.trusted_files = [ {{ uri = "file:app", sha256 = "{HASH}" }} ]\n',
]


def errors(text):
    """The manifest's error lines, named by the file's base name (check names it as given,
    run as STEM.manifest)."""
    return sorted(re.sub(r"^\S*/", "", m.group(0)) for m in ERROR.finditer(text))


def both(moat, directory, text):
    """Runs check --finalized and run on STEM.manifest = text; returns the two results."""
    (directory / "app.manifest").write_text(text)
    chk = moat("manifest", "check", "--finalized", directory / "app.manifest")
    run = moat("run", "app", cwd=directory, timeout=60)
    return chk, run


def assert_agree(chk, run, text):
    # the file name is the same path for both
    assert errors(chk.stderr) == errors(run.stderr), (text, chk.stderr, run.stderr)
    if chk.returncode == 0:
        assert not errors(run.stderr), run.stderr
        assert "the manifest is invalid" not in run.stderr, run.stderr
    else:
        assert chk.returncode == 2 and run.returncode == 1, (chk.returncode, run.returncode)
        assert errors(run.stderr), run.stderr


def cases_of(lines):
    return [HEADER + 'libos.entrypoint = "/app"\n' + line + "\n" for line, _ in lines]


@pytest.mark.parametrize("text", cases_of(BAD), ids=[b[0][:40] for b in BAD])
def test_bad_manifests_refused_alike(moat, tmp_path, text):
    chk, run = both(moat, tmp_path, text)
    assert chk.returncode == 2, chk.stderr
    assert_agree(chk, run, text)


@pytest.mark.parametrize("text,message", RUNTIME_ONLY, ids=[m[:40] for _, m in RUNTIME_ONLY])
def test_runtime_rules_refused_alike(moat, tmp_path, text, message):
    chk, run = both(moat, tmp_path, HEADER + text)
    assert chk.returncode == 2 and message in chk.stderr, chk.stderr
    assert message in run.stderr, run.stderr
    assert_agree(chk, run, text)


@pytest.mark.parametrize("text", ACCEPTED, ids=range(len(ACCEPTED)))
def test_good_manifests_accepted_alike(moat, tmp_path, text):
    chk, run = both(moat, tmp_path, HEADER + text)
    assert chk.returncode == 0, chk.stderr
    assert_agree(chk, run, text)


def test_unrendered_manifest_refused_by_run_accepted_by_plain_check(moat, tmp_path):
    """Without --finalized, check validates a manifest before render; run needs it rendered."""
    text = 'libos.entrypoint = "/app"\nsgx.trusted_files = [ "file:app" ]\n'
    (tmp_path / "app.manifest").write_text(text)
    assert moat("manifest", "check", tmp_path / "app.manifest").returncode == 0
    r = moat("run", "app", cwd=tmp_path)
    assert r.returncode == 1 and "moat manifest render" in r.stderr, r.stderr
