"""`moat attest init`: the simulated SGX platform (src/attest/sim.h). Its cryptography is
checked in src/attest/tests/test_sim.c; here the command line."""
import os
import stat


def test_attest_init(moat, tmp_path):
    d = tmp_path / "sim"
    r = moat("attest", "init", "--dir", d, "--days", "30", check=0)
    assert "SIMULATED" in r.stdout and "proves nothing" in r.stdout
    for name in ("root_ca.pem", "pck_chain.pem", "tcb_chain.pem", "root_crl.der", "pck_crl.der",
                 "tcb_info.json", "qe_identity.json", "keys.pem", "platform.json"):
        assert (d / name).is_file(), name
    assert stat.S_IMODE(os.stat(d / "keys.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert "SIMULATED" in (d / "platform.json").read_text()
    before = (d / "root_ca.pem").read_bytes()
    # an existing platform is kept unless --force
    r = moat("attest", "init", "--dir", d, check=1)
    assert "--force" in r.stderr and (d / "root_ca.pem").read_bytes() == before
    moat("attest", "init", "--dir", d, "--force", check=0)
    assert (d / "root_ca.pem").read_bytes() != before


def test_attest_init_default_dir_and_errors(moat, tmp_path):
    env = dict(os.environ, MOAT_SIM_DIR=str(tmp_path / "from-env"))
    moat("attest", "init", env=env, check=0)
    assert (tmp_path / "from-env" / "root_ca.pem").is_file()
    r = moat("attest", "init", "--days", "0", check=2)
    assert "--days" in r.stderr
    r = moat("attest", "nonsense", check=2)
    assert "init" in r.stderr
    (tmp_path / "file").write_text("x")
    r = moat("attest", "init", "--dir", tmp_path / "file" / "sim", check=1)
    assert str(tmp_path / "file") in r.stderr
