"""The moat command line itself: version, help, subcommand table, exit codes."""
import re


def test_version(moat):
    r = moat("--version", check=0)
    assert re.fullmatch(r"moat \d+\.\d+\.\d+\n", r.stdout)
    assert moat("version", check=0).stdout == r.stdout


def test_help_lists_every_command(moat):
    out = moat("help", check=0).stdout
    for cmd in ("manifest", "sign", "sigstruct-view", "help", "version"):
        assert re.search(rf"^  {re.escape(cmd)} ", out, re.M), cmd
    assert "exit codes:" in out
    assert moat("--help", check=0).stdout == out


def test_no_arguments_is_usage_error(moat):
    r = moat(check=2)
    assert "usage: moat" in r.stderr


def test_unknown_command(moat):
    r = moat("frobnicate", check=2)
    assert "unknown command 'frobnicate'" in r.stderr


def test_every_subcommand_has_help(moat):
    for args in (["manifest"], ["manifest", "render"], ["manifest", "check"],
                 ["manifest", "migrate"], ["sign"], ["sigstruct-view"]):
        r = moat(*args, "--help", check=0)
        assert r.stdout.startswith("usage: moat"), args
        assert moat("help", *args).stdout == r.stdout, args


def test_unknown_manifest_subcommand(moat):
    r = moat("manifest", "frobnicate", check=2)
    assert "unknown subcommand 'frobnicate'" in r.stderr


def test_render_usage_errors(moat, tmp_path):
    assert "expected TEMPLATE" in moat("manifest", "render", check=2).stderr
    r = moat("manifest", "render", "-D", "1bad=x", "t", check=2)
    assert "invalid -D '1bad'" in r.stderr
    r = moat("manifest", "render", tmp_path / "missing.template", check=1)
    assert "missing.template" in r.stderr
