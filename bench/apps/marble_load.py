#!/usr/bin/env python3
"""Load generator for bench/coordinator.sh: N concurrent Marbles calling /rpc.Marble/Activate
(reference/marblerun.md §4.2) on a moat Coordinator, with simulated quotes made ahead of time.

  marble_load.py prepare DIR SIMDIR QUOTE_TOOL N   N Marbles: P-384 key, self-signed cert, CSR,
                                                  quote over sha256(cert DER) (OpenEnclave header)
  marble_load.py run DIR ADDR N SECONDS [handshake] [rate=R] [pid=P]
                                                  N threads, one TLS channel each, activating
                                                  in a loop with a fresh UUID per call; prints JSON;
                                                  "handshake": a new TLS connection per call, as a
                                                  Marble starting up makes; rate=R: open loop, the
                                                  N Marbles start activations at random (Poisson)
                                                  times, R per second in all, and latency counts
                                                  from the planned start; pid=P: the server's CPU
                                                  time per activation in the same window
  marble_load.py set-manifest URL FILE             POST /api/v2/manifest; prints seconds

Each thread is one Marble with a persistent channel: an activation costs the Coordinator the
quote verification, the leaf key and certificate and the templates, not a TLS handshake (a
real Marble activates once per start, over a new connection).
"""
import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import random
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

PROTO = Path(__file__).resolve().parent.parent.parent / "src" / "net" / "proto"


def stubs(work):
    out = Path(work) / "stubs"
    if not (out / "marblerun_pb2_grpc.py").exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}",
                        f"--python_out={out}", f"--grpc_python_out={out}",
                        str(PROTO / "marblerun.proto")], check=True)
    sys.path.insert(0, str(out))
    import marblerun_pb2, marblerun_pb2_grpc
    return marblerun_pb2, marblerun_pb2_grpc


def prepare(work, sim, tool, n):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    stubs(work)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MarbleRun Marble")])
    now = datetime.datetime.utcnow()
    for i in range(n):
        key = ec.generate_private_key(ec.SECP384R1())
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(i + 1)
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        csr = (x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
               .public_bytes(serialization.Encoding.DER))
        q = bytes.fromhex(subprocess.check_output(
            [tool, sim, hashlib.sha256(der).hexdigest(), "mrenclave=" + "11" * 32]).decode().strip())
        oe = bytes([1, 0, 0, 0, 2, 0, 0, 0]) + len(q).to_bytes(8, "little") + q
        d = work / f"m{i}"
        d.mkdir(exist_ok=True)
        (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / "csr.der").write_bytes(csr)
        (d / "quote.bin").write_bytes(oe)


def proc_cpu(pid):
    """utime + stime of a process in seconds (all its threads), or None"""
    if not pid:
        return None
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def run(work, addr, n, seconds, handshake=False, rate=None, pid=None):
    import grpc
    pb, pbg = stubs(work)
    work = Path(work)
    host, port = addr.rsplit(":", 1)
    server_pem = ssl.get_server_certificate((host, int(port))).encode()
    marbles = []
    for i in range(n):
        d = work / f"m{i}"
        creds = grpc.ssl_channel_credentials(root_certificates=server_pem,
                                             private_key=(d / "key.pem").read_bytes(),
                                             certificate_chain=(d / "cert.pem").read_bytes())
        ch = grpc.secure_channel(addr, creds,
                                 options=[("grpc.ssl_target_name_override", "localhost")])
        marbles.append((pbg.MarbleStub(ch), (d / "csr.der").read_bytes(),
                        (d / "quote.bin").read_bytes(), creds))
    uuids = [[str(uuid.uuid4()) for _ in range(4000)] for _ in range(n)]  # not in the timed loop
    start = threading.Barrier(n + 1)
    stop = threading.Event()

    def worker(i):
        stub, csr, quote, creds = marbles[i]
        # connect and activate once before the clock starts (TLS handshake, first call)
        stub.Activate(pb.ActivationReq(Quote=quote, CSR=csr, MarbleType="bench",
                                       UUID=str(uuid.uuid4())))
        done, errors, k = [], 0, 0
        rng = random.Random(i)
        start.wait()
        due = time.perf_counter()
        while not stop.is_set():
            req = pb.ActivationReq(Quote=quote, CSR=csr, MarbleType="bench", UUID=uuids[i][k])
            k = (k + 1) % len(uuids[i])
            if rate:  # open loop: this Marble starts at random times, rate / n per second;
                # latency counts from when it was due, so a late start is not hidden
                due += rng.expovariate(rate / n)
                wait = due - time.perf_counter()
                if wait > 0 and stop.wait(wait):
                    break
                t0 = due
            else:
                t0 = time.perf_counter()
            try:
                if handshake:  # a fresh connection: TCP, TLS 1.3 handshake, HTTP/2 preface
                    # (a fresh subchannel pool per channel, so no connection is reused)
                    with grpc.secure_channel(addr, creds, options=[
                            ("grpc.ssl_target_name_override", "localhost"),
                            ("grpc.use_local_subchannel_pool", 1)]) as ch:
                        pbg.MarbleStub(ch).Activate(req)
                else:
                    stub.Activate(req)
                t1 = time.perf_counter()
                done.append((t0, t1))
            except grpc.RpcError as e:
                errors += 1
                if errors == 1:
                    print(f"activation failed: {e.code()} {e.details()}", file=sys.stderr)
        return done, errors

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futs = [pool.submit(worker, i) for i in range(n)]
        start.wait()
        c0, s0, t0 = os.times(), proc_cpu(pid), time.perf_counter()
        time.sleep(seconds)
        c1, s1, t1 = os.times(), proc_cpu(pid), time.perf_counter()
        stop.set()
        results = [f.result() for f in futs]
    # the activations that ended inside the window (in a steady state, the throughput)
    lat = sorted(b - a for r in results for a, b in r[0] if t0 <= b <= t1)
    errors = sum(r[1] for r in results)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0
    wall = t1 - t0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    out = {"activations": len(lat), "errors": errors, "seconds": wall,
           "rate": len(lat) / wall, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
           "max_ms": lat[-1] * 1000 if lat else 0, "offered_rate": rate or 0,
           "client_cpu_s": cpu,
           "client_cpu_per_activation_ms": cpu / len(lat) * 1000 if lat else 0}
    if s0 is not None:
        out["server_cpu_per_activation_ms"] = (s1 - s0) / len(lat) * 1000 if lat else 0
    print(json.dumps(out))


def set_manifest(url, path):
    u = url.split("//", 1)[1]
    host, port = u.split("/", 1)[0].rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, int(port), context=ctx)
    conn.connect()  # the TLS handshake is not part of the time
    body = json.dumps({"manifest": base64.b64encode(Path(path).read_bytes()).decode()})
    t0 = time.perf_counter()
    conn.request("POST", "/api/v2/manifest", body=body)
    r = conn.getresponse()
    data = r.read()
    t = time.perf_counter() - t0
    if r.status != 200:
        sys.exit(f"set manifest: {r.status} {data.decode()}")
    print(f"{t:.6f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "prepare":
        prepare(args[0], args[1], args[2], int(args[3]))
    elif cmd == "run":
        opt = dict(a.split("=", 1) for a in args[4:] if "=" in a)
        run(args[0], args[1], int(args[2]), float(args[3]), "handshake" in args[4:],
            float(opt["rate"]) if "rate" in opt else None, int(opt.get("pid", 0)) or None)
    elif cmd == "set-manifest":
        set_manifest(args[0], args[1])
    else:
        sys.exit(__doc__)
