"""Every real Gramine and MarbleRun template in ../shared/testdata renders with `moat manifest
render` and the result passes `moat manifest check --finalized`.

The -D values are those the upstream Makefiles (or gramine-test) pass; see
../shared/testdata/gramine-manifests/README.md. Files the templates name relative to the working
directory (the app binaries, scripts/, helper-files/, ...) are created in a scratch workspace, as
the examples' Makefiles would create them.
"""
import hashlib
import random
import tomllib
from pathlib import Path

import pytest

from test_manifest_model import assert_agree

ARCH_LIBDIR = "/lib/x86_64-linux-gnu"
PYTHON = "/usr/bin/python3.11"

# template (relative to testdata) -> (-D values, subdirectory of the workspace to run in)
CASES = {
    "gramine-manifests/helloworld/helloworld.manifest.template": ({"log_level": "error"}, "."),
    "gramine-manifests/bash/manifest.template": (
        {"log_level": "error", "execdir": "/usr/bin", "arch_libdir": ARCH_LIBDIR}, "."),
    "gramine-manifests/python/python.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR, "entrypoint": PYTHON,
         "ra_type": "dcap"}, "."),
    "gramine-manifests/redis/redis-server.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR}, "."),
    "gramine-manifests/nginx/nginx.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR, "install_dir": "install",
         "install_dir_abspath": "@WS@/install"}, "."),
    "gramine-manifests/memcached/memcached.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR}, "."),
    "gramine-manifests/lighttpd/lighttpd.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR, "install_dir": "@WS@/install"}, "."),
    "gramine-manifests/sqlite/manifest.template": (
        {"log_level": "error", "execdir": "@WS@/bin", "arch_libdir": ARCH_LIBDIR}, "."),
    "gramine-manifests/busybox/busybox.manifest.template": (
        {"busybox": "@WS@/bin/busybox", "log_level": "error", "ra_type": "none"}, "."),
    "gramine-manifests/rust/rust-hyper-http-server.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR,
         "self_exe": "target/release/rust-hyper-http-server"}, "."),
    "gramine-manifests/ra-tls-secret-prov/secret_prov/client.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR}, "secret_prov"),
    "gramine-manifests/ra-tls-secret-prov/secret_prov_minimal/client.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR}, "secret_prov"),
    "gramine-manifests/ra-tls-secret-prov/secret_prov_pf/client.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR}, "secret_prov"),
    "marblerun-manifests/gramine-hello/hello.manifest.template": ({}, "."),
    "marblerun-manifests/gramine-nginx/nginx.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR, "install_dir": "install",
         "install_dir_abspath": "@WS@/install"}, "."),
    "marblerun-manifests/gramine-redis/redis-server.manifest.template": (
        {"log_level": "error", "arch_libdir": ARCH_LIBDIR}, "."),
}

# gramine-test renders regression/fs templates with these (README: "How each template is
# rendered"); entrypoint is the test name from tests.toml.
TEST_DEFINES = {"arch_libdir": ARCH_LIBDIR, "coreutils_libdir": ARCH_LIBDIR,
                "binary_dir": "@WS@/tests", "libc": "glibc"}
REGRESSION = {
    "manifest.template": "bootstrap_static",
    "argv_from_file.manifest.template": "argv_from_file",
    "argv_from_manifest.manifest.template": "argv_from_manifest",
    "env_from_file.manifest.template": "env_from_file",
    "env_from_host.manifest.template": "env_from_host",
    "env_passthrough.manifest.template": "env_passthrough",
    "file_check_policy_allow_all_but_log.manifest.template": "file_check_policy_allow_all_but_log",
    "file_check_policy_strict.manifest.template": "file_check_policy_strict",
    "toml_parsing.manifest.template": "toml_parsing",
}
for name, entry in REGRESSION.items():
    CASES[f"gramine-manifests/libos/test/regression/{name}"] = (
        dict(TEST_DEFINES, entrypoint=entry), ".")
CASES["gramine-manifests/libos/test/fs/manifest.template"] = (
    dict(TEST_DEFINES, entrypoint="open_close"), ".")

# Files the templates expect next to them (what the upstream Makefiles build or copy).
WORKSPACE_FILES = [
    "helloworld", "redis-server", "memcached", "hello", "premain-libos", "uuid", "nginx_args",
    "lighttpd.conf", "lighttpd-generic.conf", "lighttpd-server.conf", "argv_test_input",
    "env_test_input", "testfile", "root", "scripts/test.py", "scripts/sub/b.sh",
    "helper-files/hosts", "db/.keep", "enc_files/input.txt", "tmp/enc_input", "secrets/.keep",
    "redis-data/.keep", "install/sbin/nginx", "install/conf/nginx.conf",
    "install/html/index.html", "install/logs/.keep", "install/lib/x", "bin/sqlite3",
    "bin/busybox", "target/release/rust-hyper-http-server", "ssl/ca.crt",
    "secret_prov/client", "secret_prov/enc_files/input.txt",
]
TEST_BINARIES = ["bootstrap", "bootstrap_static", "argv_from_file", "argv_from_manifest",
                 "env_from_file", "env_from_host", "env_passthrough", "file_check_policy",
                 "helloworld", "exec_victim", "open_close", "toml_parsing"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    for rel in WORKSPACE_FILES:
        p = ws / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"content of {rel}\n".encode())
    (ws / "trusted_testfile").write_bytes(b"trusted_testfile")
    (ws / "helper-files").joinpath("hosts").write_text("127.0.0.1 localhost\n")
    (ws / "tests").mkdir()
    for b in TEST_BINARIES:
        (ws / "tests" / b).write_bytes(f"#!/bin/sh\necho {b}\n".encode())
    return ws


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@pytest.mark.parametrize("template", sorted(CASES))
def test_template_renders_and_checks(template, shared, workspace, moat, tmp_path):
    defines, subdir = CASES[template]
    cwd = workspace / subdir
    args = []
    for k, v in defines.items():
        args += ["-D", f"{k}={v.replace('@WS@', str(workspace))}"]
    out = tmp_path / "out.manifest"
    r = moat("manifest", "render", "--no-progress", *args, shared / template, out, cwd=cwd,
             env={"EDMM": "0"})
    assert r.returncode == 0, r.stderr
    manifest = tomllib.loads(out.read_text())

    # gramine-manifest's post-processing happened
    assert manifest["loader"]["entrypoint"]["uri"].startswith("file:")
    assert len(manifest["loader"]["entrypoint"]["sha256"]) == 64
    assert manifest["sgx"]["max_threads"] >= 1
    assert "enclave_size" in manifest["sgx"]
    trusted = manifest["sgx"]["trusted_files"]
    assert trusted, "no trusted files"
    uris = [t["uri"] for t in trusted]
    assert len(uris) == len(set(uris)), "duplicate trusted files"

    # every hash of a file in the workspace, and a sample of system files, matches
    rng = random.Random(template)
    sample = [t for t in trusted if not t["uri"].startswith("file:/")]
    sample += rng.sample([t for t in trusted if t["uri"].startswith("file:/")],
                         k=min(15, sum(1 for t in trusted if t["uri"].startswith("file:/"))))
    for t in sample:
        path = Path(t["uri"][len("file:"):])
        if t["uri"] == "file:nonexisting\\x2dfile":  # given hash kept, file absent
            assert t["sha256"] == "0123456789012345678901234567890123456789012345678901234567890123"
            continue
        full = path if path.is_absolute() else cwd / path
        assert t["sha256"] == sha256_file(full), t["uri"]

    r = moat("manifest", "check", "--finalized", out)
    assert r.returncode == 0, r.stderr

    # moat run reads it through the same model: no manifest error (the app itself is a
    # placeholder file here, so what happens after the manifest is not this test's business)
    run = moat("run", tmp_path / "out", cwd=cwd, timeout=60)
    assert_agree(r, run, template)


def test_undefined_variable_is_an_error(shared, moat, tmp_path):
    # StrictUndefined: helloworld needs log_level
    r = moat("manifest", "render", shared / "gramine-manifests/helloworld/helloworld.manifest.template",
             tmp_path / "x.manifest", cwd=tmp_path)
    assert r.returncode == 2
    assert "log_level" in r.stderr and "undefined" in r.stderr
    assert not (tmp_path / "x.manifest").exists()


def jinja_render(text, defines, libos):
    """The template as gramine-manifest renders it (Jinja2, StrictUndefined), with moat's
    values for the gramine.* globals."""
    jinja2 = pytest.importorskip("jinja2")
    import json
    import os
    import subprocess

    class Gramine:
        pkglibdir = Path("/unused")

        @staticmethod
        def runtimedir(libc="glibc"):
            return Path(ARCH_LIBDIR)

    Gramine.libos = Path(libos)

    def get_sys_path(argv0, **kwargs):
        out = subprocess.check_output([argv0, "-c", "import json, sys; json.dump(sys.path, sys.stdout)"])
        return [Path(p) for p in json.loads(out) if p and Path(p).exists()]

    class Python:
        pass

    Python.get_sys_path = staticmethod(get_sys_path)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.globals.update(gramine=Gramine, python=Python, env=dict(os.environ, EDMM="0"))
    return env.from_string(text).render(**defines)


def subset(jinja_value, moat_value, where):
    """Every key/value of Jinja2's rendering appears unchanged in moat's finalized manifest."""
    if isinstance(jinja_value, dict):
        assert isinstance(moat_value, dict), where
        for k, v in jinja_value.items():
            assert k in moat_value, f"{where}.{k} missing"
            subset(v, moat_value[k], f"{where}.{k}")
    else:
        assert jinja_value == moat_value, where


@pytest.mark.parametrize("template", sorted(CASES))
def test_rendering_matches_jinja2(template, shared, workspace, moat, moat_path, tmp_path):
    """moat's template engine gives what Jinja2 gives: all keys except the expanded
    sgx.trusted_files must be identical after parsing both as TOML."""
    defines, subdir = CASES[template]
    defines = {k: v.replace("@WS@", str(workspace)) for k, v in defines.items()}
    args = [a for k, v in defines.items() for a in ("-D", f"{k}={v}")]
    out = tmp_path / "out.manifest"
    moat("manifest", "render", "--no-progress", *args, shared / template, out,
         cwd=workspace / subdir, env={"EDMM": "0"}, check=0)
    expected = tomllib.loads(jinja_render((shared / template).read_text(), defines, moat_path))
    expected.get("sgx", {}).pop("trusted_files", None)
    subset(expected, tomllib.loads(out.read_text()), "manifest")
