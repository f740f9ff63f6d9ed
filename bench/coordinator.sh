#!/usr/bin/env bash
# The Coordinator (issue 12, docs/coordinator.md): Marble activations per second and their p50/p99
# latency with MARBLES concurrent Marbles (bench/apps/marble_load.c over new connections;
# bench/apps/marble_load.py: python3-grpcio, one thread
# and one TLS channel per Marble, quotes of the SIMULATED platform made before the clock starts),
# the time to set a manifest, and the size of the sealed state.
#
# The ceiling is native: `openssl speed -elapsed` (wall clock, as the activation rate) on the
# Coordinator's core, before and after the load, averaged. With this manifest an activation
# costs the Coordinator three P-384 signatures' worth (a fresh leaf key, the leaf's signature by
# the marble root, the per-marble "tls" secret's certificate signed by it too), a P-256 key (the
# "tls" secret's), one P-384 verification (the CSR's self-signature) and a P-256 verification
# (the quote's signature; collateral, PCK chain and QE report come from a cache after the
# first). A new TLS connection, as every Marble start makes, adds a P-384 signature
# (CertificateVerify with the intermediate key), a P-384 verification (the Marble's
# CertificateVerify: its P-384 key, as MarbleRun's premain makes) and an X25519 exchange.
# With two or more CPUs the Coordinator runs on one core (--mesh-threads 1) and the client on
# another, so the client does not take the server's CPU (its CPU per activation is printed: if
# it is close to the wall time per activation, the client is the bottleneck and the rate is a
# lower bound).
#
# Latency: a closed loop of MARBLES queues them all on the core (p50 ~ MARBLES / rate); the open
# loop has the MARBLES start activations at random times at 1/8, 1/4 and 1/2 of the measured
# capacity, which is what a fleet of Marbles starting up sees, with latency counted from the
# planned start.
# usage: bench/coordinator.sh BUILD_DIR    MARBLES (50), LOAD_SECONDS (5), LOAD_ROUNDS (3),
#        ROUNDS (5, manifest sets),
#        PERF_OUT (a file: perf record of the Coordinator during the first load run)
set -euo pipefail
build=${1:-build}
moat=$(realpath "$build/src/cli/moat")
coord=$(realpath "$build/src/cli/moat-coordinator")
tool=$(realpath "$build/src/coordinator/sim_quote_tool")
cload=$(realpath "$build/bench/marble_load") # new connections (bench/apps/marble_load.c)
root=$(cd "$(dirname "$0")/.." && pwd)
load=$root/bench/apps/marble_load.py
marbles=${MARBLES:-50}
seconds=${LOAD_SECONDS:-5}
load_rounds=${LOAD_ROUNDS:-3}
rounds=${ROUNDS:-5}
py=/usr/bin/python3 # Debian's python3-grpcio and python3-cryptography
$py -c 'import grpc, grpc_tools, cryptography' 2>/dev/null ||
  { echo "coordinator: python3-grpcio, python3-grpc-tools or python3-cryptography missing" >&2; exit 1; }
command -v curl >/dev/null || { echo "coordinator: curl missing" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$moat" attest init --dir "$tmp/sim" >/dev/null

if [ "$(nproc)" -ge 2 ]; then srv_cpu=1; cli_cpu=0; threads=1; else srv_cpu=0; cli_cpu=0; threads=1; fi
pin_srv="taskset -c $srv_cpu"
pin_cli="taskset -c $cli_cpu"

cat > "$tmp/manifest.json" <<'JSON'
{
  "Packages": {"bench": {"UniqueID": "1111111111111111111111111111111111111111111111111111111111111111", "Debug": false}},
  "Marbles": {"bench": {"Package": "bench", "Parameters": {
    "Files": {"/secret/cert.pem": "{{ pem .MarbleRun.MarbleCert.Cert }}",
              "/secret/key.pem": "{{ pem .MarbleRun.MarbleCert.Private }}",
              "/secret/ca.pem": "{{ pem .MarbleRun.RootCA.Cert }}"},
    "Env": {"SK": "{{ hex .Secrets.sk }}"},
    "Argv": ["./app"]}}},
  "Secrets": {
    "sk": {"Type": "symmetric-key", "Size": 128},
    "tls": {"Type": "cert-ecdsa", "Size": 256, "Cert": {"Subject": {"CommonName": "app"}}}
  }
}
JSON

free_port() { $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# start a Coordinator with an empty seal dir $1; sets pid, cport, mport
start() {
  rm -rf "$1"
  cport=$(free_port); mport=$(free_port)
  MOAT_SIM_DIR=$tmp/sim $pin_srv "$coord" --client-addr "127.0.0.1:$cport" \
    --mesh-addr "127.0.0.1:$mport" --mesh-threads "$threads" --seal-dir "$1" 2>> "$tmp/log" &
  pid=$!
  for _ in $(seq 100); do curl -sfk "https://127.0.0.1:$cport/api/v2/status" >/dev/null && return; sleep 0.05; done
  cat "$tmp/log" >&2; echo "coordinator: did not start" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || { echo "coordinator: exit status $?" >&2; exit 1; }; pid=; }

# 1. setting the manifest, on a fresh Coordinator each round (secrets, certificates, sealing)
set_times=()
for _ in $(seq "$rounds"); do
  start "$tmp/seal"
  set_times+=("$($pin_cli $py "$load" set-manifest "https://127.0.0.1:$cport" "$tmp/manifest.json")")
  [ ${#set_times[@]} -lt "$rounds" ] && stop
done
set_ms=$(printf '%s\n' "${set_times[@]}" | sort -g | awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] * 1000}')
size_data=$(stat -c %s "$tmp/seal/sealed_data"); size_key=$(stat -c %s "$tmp/seal/sealed_key")

# the native ceiling on the Coordinator's core, by the wall clock as the activations are
# (-elapsed). This VM's speed drifts by tens of percent within a minute, so the load runs in
# LOAD_ROUNDS rounds with the ceiling measured between them: each round is compared with the
# mean of the measurements before and after it, and the median round is reported.
speed() { $pin_srv openssl speed -elapsed -seconds 1 ecdsap384 ecdsap256 ecdhx25519 2>/dev/null |
  awk '/nistp384\)/ && NF > 5 {s384 = $(NF-1); v384 = $NF} /nistp256\)/ && NF > 5 {s256 = $(NF-1); v256 = $NF}
       /X25519\)/ {x = $NF} END {printf "{\"s384\": %s, \"v384\": %s, \"s256\": %s, \"v256\": %s, \"x25519\": %s}\n", s384, v384, s256, v256, x}'; }

# 2. activations: the last Coordinator, manifest set
t0=$(date +%s%N)
$pin_cli $py "$load" prepare "$tmp/marbles" "$tmp/sim" "$tool" "$marbles"
prep_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
# PERF_OUT=file: a perf profile of the Coordinator during the first run PERF_RUN (one|handshake)
perf_start() { [ -n "${PERF_OUT:-}" ] && [ "${PERF_RUN:-one}" = "$1" ] && [ "$2" = 1 ] || return 0
  perf record -q ${PERF_ARGS:--g} -o "$PERF_OUT" -p "$pid" 2>/dev/null & perf_pid=$!; }
perf_stop() { [ -n "${perf_pid:-}" ] || return 0; kill -INT "$perf_pid"; wait "$perf_pid" || true; perf_pid=; }
load_run() { $pin_cli $py "$load" run "$tmp/marbles" "127.0.0.1:$mport" "$@" "pid=$pid"; }
cload_run() { $pin_cli "$cload" "$tmp/marbles" "127.0.0.1:$mport" "$@" "pid=$pid"; }
check() { grep -q '"errors": 0' "$1" || { echo "coordinator: activations failed: $(cat "$1")" >&2; tail -5 "$tmp/log" >&2; exit 1; }; }
speed > "$tmp/speed0"
for r in $(seq "$load_rounds"); do
  # a new TLS connection per activation, as Marbles starting up make them (the C client)
  perf_start handshake "$r"
  cload_run "$marbles" "$seconds" > "$tmp/new$r"
  perf_stop
  check "$tmp/new$r"
  # one connection per Marble (python3-grpcio): the activation without the handshake
  perf_start one "$r"
  load_run "$marbles" "$seconds" > "$tmp/one$r"
  perf_stop
  check "$tmp/one$r"
  speed > "$tmp/speed$r"
done
# the latency a fleet sees: the Marbles start at random times (open loop, Poisson), at an
# eighth, a quarter and half the capacity just measured, each over a new connection
cap=$($py -c 'import json, sys; print(json.load(open(sys.argv[1]))["rate"])' "$tmp/new$load_rounds")
open_fractions="0.125 0.25 0.5"
for f in $open_fractions; do
  cload_run "$marbles" "$seconds" "rate=$(awk -v r="$cap" -v f="$f" 'BEGIN {printf "%.1f", r * f}')" > "$tmp/open$f"
  check "$tmp/open$f"
done
# latency without queueing: one Marble at a time, a new TLS connection each (a Marble's start)
cload_run 1 "$seconds" > "$tmp/single"
check "$tmp/single"
size_after=$(stat -c %s "$tmp/seal/sealed_data")
stop

if [ "$srv_cpu" != "$cli_cpu" ]; then where="server on CPU $srv_cpu, client on CPU $cli_cpu"; else where="1 CPU shared"; fi
printf 'Coordinator: %d Marbles, %d rounds of %ss, %s, --mesh-threads %d\n' "$marbles" "$load_rounds" "$seconds" "$where" "$threads"
$py - "$tmp" "$load_rounds" "$marbles" "$open_fractions" <<'PY'
import json, statistics, sys
tmp, rounds, marbles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fractions = sys.argv[4].split()
load = lambda name: json.load(open(f"{tmp}/{name}"))
speeds = [load(f"speed{r}") for r in range(rounds + 1)]
row = lambda what, val: print(f"{what:<66} {val:>14}")
def crypto(s, handshake):
    # seconds of crypto per activation (see the comment at the top)
    c = 3 / s["s384"] + 1 / s["v384"] + 1 / s["s256"] + 1 / s["v256"]
    return c + (1 / s["s384"] + 1 / s["v384"] + 1 / s["x25519"] if handshake else 0)
row("benchmark", "result")
for key, handshake, title, ceiling in (
        ("new", True, "activations/s, a new TLS connection each (a Marble's start; C client)",
         "4 P-384 signs, 2 P-384 verifies, X25519, P-256 key + verify"),
        ("one", False, "activations/s, one connection per Marble (no handshake; grpcio)",
         "3 P-384 signs, P-384 verify, P-256 key + verify")):
    rs = []
    for r in range(1, rounds + 1):
        o = load(f"{key}{r}")
        s = {k: (speeds[r - 1][k] + speeds[r][k]) / 2 for k in speeds[0]}
        c = crypto(s, handshake)
        rs.append((o["rate"] * c, o, c))
    ratio, o, c = sorted(rs, key=lambda x: x[0])[len(rs) // 2]
    row(title, f"{o['rate']:.0f}")
    row(f"  crypto ceiling: {ceiling}", f"{1 / c:.0f}/s")
    row("  ratio activations/s : ceiling (median round)", f"{ratio:.2f}")
    row("  ratios of the rounds", " ".join(f"{x[0]:.2f}" for x in rs))
    row(f"  Coordinator CPU per activation (ms; its crypto {c * 1000:.3f})",
        f"{o['server_cpu_per_activation_ms']:.3f}")
    wall = o["seconds"] * 1000 / max(1, o["activations"])
    row(f"  client CPU per activation (ms; wall per activation {wall:.3f})",
        f"{o['client_cpu_per_activation_ms']:.3f}")
    row(f"  closed loop of {marbles}: latency p50 / p99 (ms)", f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f}")
    share = o["client_cpu_per_activation_ms"] / wall
    print(f"  note: the client used {share:.2f} of its CPU: " +
          ("it is (near) the bottleneck; the rate is a lower bound" if share > 0.85 else "not the bottleneck"))
row(f"{marbles} Marbles starting at random (open loop), new connections:", "")
for f in fractions:
    o = load(f"open{f}")
    row(f"  {o['offered_rate']:.0f}/s in all ({float(f):g} of the capacity): "
        f"p50 / p99 / max (ms; {o['activations']} act.)",
        f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f} / {o['max_ms']:.0f}")
o = load("single")
row("one Marble at a time, new connection: latency p50 / p99 (ms)", f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f}")
row("openssl speed -elapsed ecdsap384 sign/s, each measurement",
    " ".join(f"{s['s384']:.0f}" for s in speeds))
row("openssl speed -elapsed ecdsap384 verify/s, each measurement",
    " ".join(f"{s['v384']:.0f}" for s in speeds))
row("openssl speed -elapsed ecdsap256 sign / verify, ecdhx25519 per s (first)",
    f"{speeds[0]['s256']:.0f} / {speeds[0]['v256']:.0f}, {speeds[0]['x25519']:.0f}")
PY
printf '%-66s %14s\n' "set a manifest (median of $rounds, ms)" "$set_ms"
printf '%-66s %14s\n' "sealed state after the manifest: sealed_data + sealed_key (B)" "$size_data + $size_key"
printf '%-66s %14s\n' "sealed_data after the activations (B)" "$size_after"
printf '%-66s %14s\n' "preparing $marbles Marbles (keys, CSRs, quotes; untimed, s)" "$prep_s"
echo "note: a closed loop of $marbles Marbles queues them on one server core: p50 is about $marbles / rate;"
echo "      the open loop is what a fleet of Marbles starting at random sees"
echo "note: a shared VM; the openssl measurements show how much its speed drifted during the run."
echo "      Compare the ratios, not the numbers."
