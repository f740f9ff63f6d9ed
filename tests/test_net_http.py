"""src/net's HTTP/1.1 server (evhttp) against curl and Python's http.client/ssl/requests.

The server is the test-only src/net/tests/http_echo_server: it echoes method, path, query, body
length and the SHA-256 of the client certificate as JSON. The Coordinator's client API is HTTPS
with a client certificate requested but optional (../shared/reference/marblerun.md §3.5); the
Prometheus listener is plain HTTP.
"""
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from test_net_grpc import make_cert


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {n: make_cert(d, n) for n in ("server", "server2", "client")}


def der_sha256(crt: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(crt.read_text())).hexdigest()


def binary(build_dir):
    p = build_dir / "src" / "net" / "tests" / "http_echo_server"
    if not p.exists():
        pytest.skip(f"{p} not built")
    return p


class Server:
    def __init__(self, build_dir, certs, *flags, plain=False, port=0):
        args = [str(binary(build_dir)), *flags]
        if plain:
            args += ["--plain", str(port)]
        else:
            args += [str(port), *map(str, certs["server"]), *map(str, certs["server2"])]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            pytest.fail(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[2])

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        err = self.proc.stderr.read()
        assert rc == 0, err  # ASan builds also fail here on leaks
        return err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start(build_dir, certs):
    servers = []

    def go(*flags, **kw):
        s = Server(build_dir, certs, *flags, **kw)
        servers.append(s)
        return s

    yield go
    for s in servers:
        s.kill()


def client_ctx(certs, client_cert=False):
    ctx = ssl.create_default_context(cafile=str(certs["server"][0]))
    ctx.load_verify_locations(cafile=str(certs["server2"][0]))
    if client_cert:
        ctx.load_cert_chain(*map(str, certs["client"]))
    return ctx


def request(conn, method, path, body=None):
    conn.request(method, path, body=body)
    r = conn.getresponse()
    data = r.read()
    return r, data


def test_get_post_query_and_decoded_path(start, certs):
    s = start()
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    r, data = request(conn, "GET", "/api/v2/status?x=1&y=%20")
    assert r.status == 200 and r.getheader("Content-Type") == "application/json"
    assert int(r.getheader("Content-Length")) == len(data)
    j = json.loads(data)
    assert j["method"] == "GET" and j["path"] == "/api/v2/status" and j["query"] == "x=1&y=%20"
    assert j["cert"] is None and j["body_len"] == 0 and j["body_nul"]
    r, data = request(conn, "POST", "/a%20b/%C3%A9", body=b"x" * 1000)
    j = json.loads(data)
    assert j["method"] == "POST" and j["path"] == "/a b/\u00e9" and j["query"] is None
    assert j["body_len"] == 1000 and j["body_nul"]
    for m in ("PUT", "DELETE", "PATCH"):
        r, data = request(conn, m, "/m")
        assert json.loads(data)["method"] == m
    s.stop()


def test_handler_routes_and_errors(start, certs):
    s = start()
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    r, data = request(conn, "GET", "/405")
    assert r.status == 405 and data == b""
    r, data = request(conn, "GET", "/fail")  # a failing handler: 500, the server lives on
    assert r.status == 500 and data == b""
    r, data = request(conn, "GET", "/null")  # status 200 with a NULL body
    assert r.status == 200 and data == b"" and r.getheader("Content-Length") == "0"
    r, data = request(conn, "GET", "/a%00b")  # NUL in the decoded path: refused
    assert r.status == 400
    r, data = request(conn, "GET", "/ok")
    assert r.status == 200
    s.stop()


def test_keep_alive_with_curl(start, certs):
    s = start()
    url = f"https://127.0.0.1:{s.port}"
    r = subprocess.run(["curl", "-sv", "--cacert", str(certs["server"][0]), f"{url}/one",
                        f"{url}/two"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Re-using existing connection" in r.stderr
    assert "ALPN: server accepted http/1.1" in r.stderr
    assert '"path":"/one"' in r.stdout and '"path":"/two"' in r.stdout
    s.stop()


def test_keep_alive_one_socket(start, certs):
    s = start()
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    request(conn, "GET", "/1")
    sock = conn.sock
    request(conn, "GET", "/2")
    assert conn.sock is sock
    s.stop()


def test_alpn_never_h2(start, certs):
    s = start()
    ctx = client_ctx(certs)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            assert t.selected_alpn_protocol() == "http/1.1"
    ctx = client_ctx(certs)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            assert t.selected_alpn_protocol() is None
    s.stop()


def test_tls12_minimum(start, certs):
    s = start()
    ctx = client_ctx(certs)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1  # noqa: deprecated on purpose
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(raw, server_hostname="localhost")
    s.stop()


def test_client_cert_optional(start, certs):
    """§3.5: RequestClientCert: a certificate is asked for; with none the request is served."""
    s = start("--client-cert")
    conn = http.client.HTTPSConnection("127.0.0.1", s.port,
                                       context=client_ctx(certs, client_cert=True))
    r, data = request(conn, "GET", "/x")
    assert json.loads(data)["cert"] == der_sha256(certs["client"][0])  # self-signed: accepted
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    r, data = request(conn, "GET", "/x")
    assert r.status == 200 and json.loads(data)["cert"] is None
    s.stop()


def test_client_cert_not_requested(start, certs):
    s = start()
    conn = http.client.HTTPSConnection("127.0.0.1", s.port,
                                       context=client_ctx(certs, client_cert=True))
    r, data = request(conn, "GET", "/x")
    assert json.loads(data)["cert"] is None
    s.stop()


def test_requests_library(start, certs):
    requests = pytest.importorskip("requests")
    s = start("--client-cert")
    with requests.Session() as sess:
        sess.verify = str(certs["server"][0])
        sess.cert = tuple(map(str, certs["client"]))
        r = sess.post(f"https://localhost:{s.port}/api/v2/manifest", data=b"{}")
        assert r.status_code == 200 and r.json()["body_len"] == 2
        assert r.json()["cert"] == der_sha256(certs["client"][0])
        r = sess.get(f"https://localhost:{s.port}/api/v2/status", params={"a": "b c"})
        assert r.json()["query"] == "a=b+c"
    s.stop()


def test_plain_http(start, certs):
    s = start(plain=True)
    conn = http.client.HTTPConnection("127.0.0.1", s.port)
    r, data = request(conn, "GET", "/metrics")
    assert r.status == 200 and json.loads(data)["path"] == "/metrics"
    assert json.loads(data)["cert"] is None
    s.stop()


def test_plain_server_refuses_tls_and_tls_server_refuses_plain(start, certs):
    s = start()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        request(conn, "GET", "/x")
    s.stop()


def test_body_too_large(start, certs):
    s = start("--max-body", "1000")
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    r, _ = request(conn, "POST", "/x", body=b"a" * 1000)
    assert r.status == 200
    # only the headers: the server must refuse on Content-Length alone, before any body (a
    # client still writing a body may instead see the connection closed under it)
    raw = client_ctx(certs).wrap_socket(socket.create_connection(("127.0.0.1", s.port)),
                                        server_hostname="localhost")
    raw.sendall(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
    raw.settimeout(10)
    assert raw.recv(64).startswith(b"HTTP/1.1 413")
    raw.close()
    # chunked, no Content-Length: counted as it comes
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    try:
        conn.request("POST", "/x", body=iter([b"a" * 800, b"b" * 800]),
                     encode_chunked=True)
        assert conn.getresponse().status == 413
    except (OSError, http.client.HTTPException):
        pass  # the server may close before the client has written it all
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    r, _ = request(conn, "GET", "/still-alive")
    assert r.status == 200
    s.stop()


def test_huge_headers_refused(start, certs):
    s = start()
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    try:
        conn.putrequest("GET", "/x")
        for i in range(40):
            conn.putheader(f"X-Junk-{i}", "j" * 4000)
        conn.endheaders()
        r = conn.getresponse()
        assert r.status >= 400
    except (ConnectionError, http.client.HTTPException):
        pass
    s.stop()


def test_slowloris_times_out(start, certs):
    """A client trickling a byte at a time never trips an inactivity timeout; the per-request
    deadline closes it."""
    s = start("--timeout-ms", "1500")
    ctx = client_ctx(certs)
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        t = ctx.wrap_socket(raw, server_hostname="localhost")
        t0 = time.monotonic()
        closed = False
        for ch in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100:
            try:
                t.sendall(bytes([ch]))
            except (ConnectionError, ssl.SSLError):
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - t0 > 8:
                break
        if not closed:
            t.settimeout(5)
            try:
                closed = t.recv(100) == b""
            except (ConnectionError, ssl.SSLError):
                closed = True
        assert closed
        assert time.monotonic() - t0 < 6
    s.stop()


def test_idle_tls_handshake_times_out(start, certs):
    s = start("--timeout-ms", "1000")
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        raw.settimeout(10)
        t0 = time.monotonic()
        assert raw.recv(10) == b""  # never said hello: closed
        assert time.monotonic() - t0 < 5
    s.stop()


def test_max_connections(start, certs):
    s = start("--max-conns", "2", "--timeout-ms", "20000")
    ctx = client_ctx(certs)
    held = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", s.port)),
                            server_hostname="localhost") for _ in range(2)]
    with socket.create_connection(("127.0.0.1", s.port)) as raw:
        raw.settimeout(10)
        assert raw.recv(10) == b""  # the third is closed at once
    for t in held:
        t.close()
    time.sleep(0.5)
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx)
    r, _ = request(conn, "GET", "/after")  # the count came back down
    assert r.status == 200
    s.stop()


def test_sigterm_drains(start, certs):
    s = start()
    ctx = client_ctx(certs)
    idle = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx)
    request(idle, "GET", "/idle")  # a keep-alive connection that stays open
    # a request in progress: headers sent, body not yet
    busy = ctx.wrap_socket(socket.create_connection(("127.0.0.1", s.port)),
                           server_hostname="localhost")
    busy.sendall(b"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    time.sleep(0.3)
    os.kill(s.proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert s.proc.poll() is None  # waits for the busy request
    busy.sendall(b"cd")
    busy.settimeout(10)
    data = b""
    while True:
        chunk = busy.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data
    assert b'"body_len":4' in data
    assert s.proc.wait(timeout=10) == 0
    with pytest.raises(ConnectionError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2)


def test_set_credentials_swaps_certificate(start, certs):
    s = start()
    def served_cert():
        ctx = client_ctx(certs)
        with socket.create_connection(("127.0.0.1", s.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()
    assert served_cert() == der_sha256(certs["server"][0])
    conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
    r, _ = request(conn, "POST", "/swap")
    assert r.status == 200
    assert served_cert() == der_sha256(certs["server2"][0])
    r, _ = request(conn, "GET", "/old-connection-still-works")
    assert r.status == 200
    s.stop()


def test_reuse_port_two_threads(start, certs):
    s = start("--threads", "2")
    seen = set()
    for _ in range(60):
        conn = http.client.HTTPSConnection("127.0.0.1", s.port, context=client_ctx(certs))
        r, data = request(conn, "GET", "/t")
        seen.add(json.loads(data)["thread"])
        conn.close()
        if seen == {0, 1}:
            break
    assert seen == {0, 1}
    s.stop()


def test_port_in_use_without_reuse_port(start, certs):
    s = start()
    r = subprocess.run([str(s.proc.args[0]), str(s.port), *map(str, certs["server"])],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "cannot listen on" in r.stderr
    s.stop()


def test_emfile_does_not_spin(start, certs, build_dir):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    args = [str(binary(build_dir)), "--plain", "0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit)
    try:
        port = int(proc.stdout.readline().split()[2])
        socks = []
        for _ in range(40):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        t0 = sum(map(int, Path(f"/proc/{proc.pid}/stat").read_text().split()[13:15]))
        time.sleep(2)
        t1 = sum(map(int, Path(f"/proc/{proc.pid}/stat").read_text().split()[13:15]))
        ticks = os.sysconf("SC_CLK_TCK")
        assert (t1 - t0) / ticks < 0.5, "the accept loop spins on EMFILE"
        for c in socks:
            c.close()
        time.sleep(1.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        r, _ = request(conn, "GET", "/recovered")
        assert r.status == 200
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
