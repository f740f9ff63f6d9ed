"""moat quote verify --pccs: collateral fetched from a PCCS / Intel PCS compatible service
(src/attest/pccs.c), here a local HTTP server serving the phala SGX vector's collateral in
PCS's response format (reference/attestation.md §2.4), kept on disk and verified like any
other collateral."""
import http.server
import json
import threading
import urllib.parse

import pytest

VECTOR = "attestation/sgx/phala"
AT = "2025-06-20T00:00:00Z"


class Pcs(http.server.BaseHTTPRequestHandler):
    coll = None
    requests = []
    tamper = False

    def log_message(self, *args):
        pass

    def reply(self, body, chain=None, header=None):
        self.send_response(200)
        if chain:
            self.send_header(header, urllib.parse.quote(chain, safe=""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        c, url = self.coll, urllib.parse.urlparse(self.path)
        Pcs.requests.append(self.path)
        if url.path == "/sgx/certification/v4/tcb":
            info = c["tcb_info"]
            if Pcs.tamper:
                i = info.index('"fmspc"') + 20
                info = info[:i] + ("0" if info[i] != "0" else "1") + info[i + 1:]
            body = '{"tcbInfo":%s,"signature":"%s"}' % (info, c["tcb_info_signature"])
            self.reply(body.encode(), c["tcb_info_issuer_chain"], "TCB-Info-Issuer-Chain")
        elif url.path == "/sgx/certification/v4/qe/identity":
            body = '{"enclaveIdentity":%s,"signature":"%s"}' % (c["qe_identity"],
                                                                c["qe_identity_signature"])
            self.reply(body.encode(), c["qe_identity_issuer_chain"],
                       "SGX-Enclave-Identity-Issuer-Chain")
        elif url.path == "/sgx/certification/v4/pckcrl":
            self.reply(bytes.fromhex(c["pck_crl"]), c["pck_crl_issuer_chain"],
                       "SGX-PCK-CRL-Issuer-Chain")
        elif url.path == "/sgx/certification/v4/rootcacrl":
            self.reply(bytes.fromhex(c["root_ca_crl"]))
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture
def pcs(shared):
    Pcs.coll = json.loads((shared / VECTOR / "sgx_quote_collateral.json").read_text())
    Pcs.requests, Pcs.tamper = [], False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pcs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def verify(moat, shared, url, cache, check=None):
    return moat("quote", "verify", shared / VECTOR / "sgx_quote.bin", "--pccs", url,
                "--pccs-cache", cache, "--at", AT, "--accept",
                "ConfigurationAndSWHardeningNeeded", "--json", check=check)


def test_pccs_fetch_cache_and_offline(moat, shared, pcs, tmp_path):
    url = "http://127.0.0.1:%d" % pcs.server_address[1]
    r = verify(moat, shared, url, tmp_path / "cache", check=0)
    v = json.loads(r.stdout)
    assert v["accepted"] and v["status"] == "ConfigurationAndSWHardeningNeeded"
    assert v["advisories"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    paths = sorted(urllib.parse.urlparse(p).path for p in Pcs.requests)
    assert paths == ["/sgx/certification/v4/pckcrl", "/sgx/certification/v4/qe/identity",
                     "/sgx/certification/v4/rootcacrl", "/sgx/certification/v4/tcb"]
    tcb = [p for p in Pcs.requests if "/tcb?" in p][0]
    fmspc = json.loads(Pcs.coll["tcb_info"])["fmspc"].lower()
    assert urllib.parse.parse_qs(urllib.parse.urlparse(tcb).query)["fmspc"] == [fmspc]
    assert any("ca=platform" in p or "ca=processor" in p for p in Pcs.requests)
    # kept: a second verification asks nothing; with the service gone, it still works
    Pcs.requests.clear()
    verify(moat, shared, url, tmp_path / "cache", check=0)
    assert Pcs.requests == []
    pcs.shutdown()
    verify(moat, shared, "http://127.0.0.1:9", tmp_path / "cache", check=0)
    # nothing kept and nothing to reach: an error naming the service
    r = verify(moat, shared, "http://127.0.0.1:9", tmp_path / "empty", check=1)
    assert "127.0.0.1:9" in r.stderr


def test_pccs_collateral_is_verified(moat, shared, pcs, tmp_path):
    """What the service sends is checked like any collateral: a changed TCB info is refused."""
    Pcs.tamper = True
    url = "http://127.0.0.1:%d" % pcs.server_address[1]
    r = verify(moat, shared, url, tmp_path / "cache", check=1)
    v = json.loads(r.stdout)
    assert not v["accepted"]
    assert "SIGNATURE" in json.dumps(v["checks"]).upper()


def test_pccs_usage(moat, shared, tmp_path):
    r = moat("quote", "verify", shared / VECTOR / "sgx_quote.bin", "--pccs", "http://x",
             "--collateral", shared / VECTOR / "sgx_quote_collateral.json", check=2)
    assert "not both" in r.stderr
