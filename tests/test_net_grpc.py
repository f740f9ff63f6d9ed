"""src/net's gRPC server against a real gRPC client (python3-grpcio).

The server is the test-only src/net/tests/grpc_echo_server, serving MarbleRun's
/rpc.Marble/Activate (../shared/reference/marblerun.md §4.1: HTTP/2 over TLS, ALPN h2, a client
certificate required, unary, grpc-status/grpc-message trailers). The stubs are generated at test
time from our src/net/proto/marblerun.proto.
"""
import concurrent.futures
import hashlib
import os
import resource
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:
    import grpc
    import grpc_tools.protoc
except ImportError as e:  # pragma: no cover
    pytest.skip(f"python3-grpcio / python3-grpc-tools missing: {e}", allow_module_level=True)


def make_cert(d: Path, name: str):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {"server": make_cert(d, "server"), "client": make_cert(d, "client")}


def echo_server_binary(build_dir):
    p = build_dir / "src" / "net" / "tests" / "grpc_echo_server"
    if not p.exists():
        pytest.skip(f"{p} not built")
    return p


def start_server(build_dir, certs, preexec_fn=None):
    crt, key = certs["server"]
    # ASan's quarantine keeps freed memory resident: off, so that RSS measures what is held
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = dict(os.environ, GRPC_ECHO_IDLE_MS="1500",
               ASAN_OPTIONS=(asan + ":" if asan else "") + "quarantine_size_mb=0")
    proc = subprocess.Popen([str(echo_server_binary(build_dir)), "0", str(crt), str(key)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=preexec_fn)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        pytest.fail(f"server did not start: {line!r} {proc.stderr.read()}")
    return proc, int(line.split()[2])


@pytest.fixture
def server(build_dir, certs):
    proc, port = start_server(build_dir, certs)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def stop(proc):
    os.kill(proc.pid, signal.SIGTERM)
    rc = proc.wait(timeout=30)
    err = proc.stderr.read()
    assert rc == 0, err  # ASan builds also fail here on leaks
    return err


def channel(port, certs, client_cert=True, options=()):
    server_crt = certs["server"][0].read_bytes()
    if client_cert:
        crt, key = certs["client"]
        creds = grpc.ssl_channel_credentials(server_crt, key.read_bytes(), crt.read_bytes())
    else:
        creds = grpc.ssl_channel_credentials(server_crt)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=list(options))


def client_cert_sha256(certs):
    der = ssl.PEM_cert_to_DER_cert(certs["client"][0].read_text())
    return hashlib.sha256(der).hexdigest()


def activate(stubs, ch, **fields):
    pb2, pb2_grpc = stubs
    return pb2_grpc.MarbleStub(ch).Activate(pb2.ActivationReq(**fields), timeout=20)


def test_activate_echo(server, certs, stubs):
    proc, port = server
    with channel(port, certs) as ch:
        resp = activate(stubs, ch, Quote=b"\x00quote\xff", CSR=b"csr-der",
                        MarbleType="backend", UUID="3c7cfe4e-3c0a-4e4e-9c7b-0d9a2b1b8a11")
    p = resp.Parameters
    assert dict(p.Files) == {"quote": b"\x00quote\xff", "csr": b"csr-der"}
    assert dict(p.Env) == {"MarbleType": b"backend",
                           "UUID": b"3c7cfe4e-3c0a-4e4e-9c7b-0d9a2b1b8a11"}
    # the handler got exactly the certificate the client presented
    assert list(p.Argv) == ["echo", client_cert_sha256(certs)]
    stop(proc)


def test_error_status_and_message(server, certs, stubs):
    proc, port = server
    with channel(port, certs) as ch:
        with pytest.raises(grpc.RpcError) as e:
            activate(stubs, ch, MarbleType="fail")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert e.value.details() == "marble verification failed: test"
    # grpc-message is percent-encoded on the wire (PROTOCOL-HTTP2.md); the client decodes it
    text = "100% sure ünïcødé\ttab"
    with channel(port, certs) as ch:
        with pytest.raises(grpc.RpcError) as e:
            activate(stubs, ch, MarbleType=f"fail:{text}")
    assert e.value.details() == f"marble verification failed: {text}"
    stop(proc)


def test_unknown_method(server, certs):
    proc, port = server
    with channel(port, certs) as ch:
        for path, want in [("/rpc.Marble/Nope", "unknown method Nope for service rpc.Marble"),
                           ("/rpc.Other/Activate", "unknown service rpc.Other")]:
            call = ch.unary_unary(path)
            with pytest.raises(grpc.RpcError) as e:
                call(b"", timeout=20)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert e.value.details() == want
    stop(proc)


def test_no_client_certificate(server, certs, stubs):
    proc, port = server
    with channel(port, certs, client_cert=False) as ch:
        with pytest.raises(grpc.RpcError) as e:
            activate(stubs, ch, MarbleType="backend")
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert proc.poll() is None
    stop(proc)


def tls_connect(port, certs, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(certs["server"][0]))
    ctx.load_cert_chain(str(certs["client"][0]), str(certs["client"][1]))
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]])
def test_alpn_h2_required(server, certs, alpn):
    proc, port = server
    try:
        s = tls_connect(port, certs, alpn)
    except (ssl.SSLError, ConnectionError):
        pass  # http/1.1 only: no_application_protocol alert
    else:
        # no ALPN: the handshake completes, then the server closes without speaking HTTP/2
        with s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            try:
                assert s.recv(100) == b""
            except (ssl.SSLError, ConnectionError):
                pass
    # the h2 client in the same position works
    s = tls_connect(port, certs, ["h2"])
    assert s.selected_alpn_protocol() == "h2"
    s.close()
    stop(proc)


def test_concurrent_calls(server, certs, stubs):
    proc, port = server
    with channel(port, certs) as ch, channel(port, certs) as ch2:
        def one(i):
            resp = activate(stubs, ch if i % 2 else ch2, Quote=os.urandom(1000 + i),
                            MarbleType=f"m{i}", UUID=str(i))
            return resp.Parameters.Env["MarbleType"]

        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            got = list(pool.map(one, range(200)))
    assert got == [f"m{i}".encode() for i in range(200)]
    stop(proc)


def test_oversized_message(server, certs, stubs):
    proc, port = server
    # the echo answers more than the client's own 4 MiB default
    with channel(port, certs, options=[("grpc.max_receive_message_length", 8 << 20)]) as ch:
        with pytest.raises(grpc.RpcError) as e:
            activate(stubs, ch, Quote=b"q" * (4 << 20), MarbleType="big")
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert e.value.details().startswith("grpc: received message larger than max (41943")
        # the connection is still good for calls of the allowed size
        resp = activate(stubs, ch, Quote=b"q" * ((4 << 20) - 100), MarbleType="ok")
        assert len(resp.Parameters.Files["quote"]) == (4 << 20) - 100
    stop(proc)


def test_idle_timeout(server, certs):
    proc, port = server
    # after the handshake, a client that sends nothing is dropped (GRPC_ECHO_IDLE_MS=1500)
    s = tls_connect(port, certs, ["h2"])
    s.settimeout(15)
    got = b""
    try:
        while chunk := s.recv(1000):
            got += chunk
    except (ssl.SSLError, ConnectionError):
        pass
    assert got.startswith(b"\x00\x00")  # our SETTINGS came first
    assert proc.poll() is None
    stop(proc)


def test_shutdown_with_open_channel(server, certs, stubs):
    proc, port = server
    with channel(port, certs) as ch:
        activate(stubs, ch, MarbleType="x")
        # the channel's connection is open and idle: GOAWAY ends it at once, no grace period
        t0 = time.monotonic()
        stop(proc)
        assert time.monotonic() - t0 < 4


def test_handshake_timeout_and_shutdown(server, certs):
    proc, port = server
    # a client that connects and says nothing is dropped (the echo server's handshake timeout
    # is 5 s) and does not keep the server from stopping
    idle = socket.create_connection(("127.0.0.1", port), timeout=15)
    assert idle.recv(10) == b""
    idle2 = socket.create_connection(("127.0.0.1", port), timeout=15)
    stop(proc)
    idle2.close()


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_fd_exhaustion_does_not_spin(build_dir, certs, stubs):
    # with few file descriptors, accept() fails with EMFILE while the connection stays queued:
    # the server must pause accepting instead of spinning, and recover when fds are free again
    proc, port = start_server(
        build_dir, certs, lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32)))
    try:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)]
        before = cpu_seconds(proc.pid)
        time.sleep(2)
        assert cpu_seconds(proc.pid) - before < 0.5
        for s in socks:
            s.close()
        time.sleep(1)
        with channel(port, certs) as ch:
            resp = activate(stubs, ch, MarbleType="after")
        assert resp.Parameters.Env["MarbleType"] == b"after"
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_client_that_does_not_read(server, certs, stubs):
    # PINGs make the server write (ACKs) without limit unless it stops reading while its
    # output is not taken: flood them without ever reading and watch the server's memory
    proc, port = server
    s = tls_connect(port, certs, ["h2"])
    s.settimeout(2)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"
    before = rss_kib(proc.pid)
    sent = 0
    try:
        while sent < (64 << 20):
            s.sendall(ping * 4096)
            sent += len(ping) * 4096
    except (socket.timeout, ssl.SSLError, ConnectionError):
        pass
    # the ACKs for all of it would be as many bytes; the server holds about 1 MiB + socket buffers
    assert sent < (64 << 20)
    assert rss_kib(proc.pid) - before < 24 << 10
    # and it still serves others
    with channel(port, certs) as ch:
        assert activate(stubs, ch, MarbleType="other").Parameters.Env["MarbleType"] == b"other"
    s.close()
    stop(proc)
