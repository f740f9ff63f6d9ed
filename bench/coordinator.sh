#!/usr/bin/env bash
# The Coordinator (issue 12, docs/coordinator.md): Marble activations per second and their p50/p99
# latency with MARBLES concurrent Marbles (bench/apps/marble_load.py: python3-grpcio, one thread
# and one TLS channel per Marble, quotes of the SIMULATED platform made before the clock starts),
# the time to set a manifest, and the size of the sealed state.
#
# The ceiling is native: `openssl speed ecdsap384 ecdsap256` on the same core. With this manifest
# an activation costs the Coordinator three P-384 signatures' worth (a fresh leaf key, the leaf's
# signature by the marble root, the per-marble "tls" secret's certificate signed by it too), a
# P-256 key (the "tls" secret's), one P-384 verification (the CSR's self-signature) and a P-256
# verification (the quote's signature; collateral, PCK chain and QE report come from a cache
# after the first); a new TLS connection adds one more P-384 signature (CertificateVerify with
# the intermediate key) and an X25519 exchange. With two or more CPUs the Coordinator runs on one
# core (--mesh-threads 1) and the client on another, so the client does not take the server's CPU
# (its CPU per activation is printed: if it is close to the wall time per activation, the client
# is the bottleneck and the rate is a lower bound).
# usage: bench/coordinator.sh BUILD_DIR    MARBLES (50), LOAD_SECONDS (10), ROUNDS (5, manifest sets),
#        PERF_OUT (a file: perf record of the Coordinator during the first load run)
set -euo pipefail
build=${1:-build}
moat=$(realpath "$build/src/cli/moat")
coord=$(realpath "$build/src/cli/moat-coordinator")
tool=$(realpath "$build/src/coordinator/sim_quote_tool")
root=$(cd "$(dirname "$0")/.." && pwd)
load=$root/bench/apps/marble_load.py
marbles=${MARBLES:-50}
seconds=${LOAD_SECONDS:-10}
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
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# 1. setting the manifest, on a fresh Coordinator each round (secrets, certificates, sealing)
set_times=()
for _ in $(seq "$rounds"); do
  start "$tmp/seal"
  set_times+=("$($pin_cli $py "$load" set-manifest "https://127.0.0.1:$cport" "$tmp/manifest.json")")
  [ ${#set_times[@]} -lt "$rounds" ] && stop
done
set_ms=$(printf '%s\n' "${set_times[@]}" | sort -g | awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] * 1000}')
size_data=$(stat -c %s "$tmp/seal/sealed_data"); size_key=$(stat -c %s "$tmp/seal/sealed_key")

# 2. activations: the last Coordinator, manifest set
t0=$(date +%s%N)
$pin_cli $py "$load" prepare "$tmp/marbles" "$tmp/sim" "$tool" "$marbles"
prep_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
ticks0=$(cpu_ticks "$pid")
# PERF_OUT=file: a perf profile (call graphs) of the Coordinator during this first run
[ -n "${PERF_OUT:-}" ] && { perf record -q ${PERF_ARGS:--g} -o "$PERF_OUT" -p "$pid" 2>/dev/null & perf_pid=$!; }
out=$($pin_cli $py "$load" run "$tmp/marbles" "127.0.0.1:$mport" "$marbles" "$seconds")
[ -n "${PERF_OUT:-}" ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
ticks1=$(cpu_ticks "$pid")
# the same with a new TLS connection per activation, as Marbles starting up make them
hticks0=$(cpu_ticks "$pid")
hout=$($pin_cli $py "$load" run "$tmp/marbles" "127.0.0.1:$mport" "$marbles" "$seconds" handshake)
hticks1=$(cpu_ticks "$pid")
# latency without queueing: one Marble at a time, a new TLS connection each (a Marble's start)
one=$($pin_cli $py "$load" run "$tmp/marbles" "127.0.0.1:$mport" 1 "$seconds" handshake)
size_after=$(stat -c %s "$tmp/seal/sealed_data")
stop
for o in "$out" "$hout" "$one"; do
  grep -q '"errors": 0' <<<"$o" || { echo "coordinator: activations failed: $o" >&2; tail -5 "$tmp/log" >&2; exit 1; }
done
read -r n rate p50 p99 ccpu wall <<<"$($py -c 'import json, sys; r = json.loads(sys.argv[1]);
print(r["activations"], round(r["rate"]), "%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"],
      "%.3f" % r["client_cpu_per_activation_ms"], r["seconds"])' "$out")"
read -r hn hrate hp50 hp99 hccpu hwall <<<"$($py -c 'import json, sys; r = json.loads(sys.argv[1]);
print(r["activations"], round(r["rate"]), "%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"],
      "%.3f" % r["client_cpu_per_activation_ms"], r["seconds"])' "$hout")"
read -r op50 op99 <<<"$($py -c 'import json, sys; r = json.loads(sys.argv[1]);
print("%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"])' "$one")"
hz=$(getconf CLK_TCK)
calc() { awk "BEGIN {printf \"%.${1}f\", $2}"; }
srv_ms=$(calc 3 "($ticks1 - $ticks0) * 1000 / $hz / $n")
wall_ms=$(calc 3 "$wall * 1000 / $n")
hsrv_ms=$(calc 3 "($hticks1 - $hticks0) * 1000 / $hz / $hn")
hwall_ms=$(calc 3 "$hwall * 1000 / $hn")

# 3. the native ceiling, on the Coordinator's core
speed=$($pin_srv openssl speed -seconds 3 ecdsap384 ecdsap256 2>/dev/null)
sign384=$(awk '/nistp384/ {print int($(NF-1))}' <<<"$speed")
ver384=$(awk '/nistp384/ {print int($NF)}' <<<"$speed")
sign256=$(awk '/nistp256/ {print int($(NF-1))}' <<<"$speed")
ver256=$(awk '/nistp256/ {print int($NF)}' <<<"$speed")
est=$($py -c "print(round(1 / (3 / $sign384 + 1 / $ver384 + 1 / $sign256 + 1 / $ver256)))")
hest=$($py -c "print(round(1 / (4 / $sign384 + 1 / $ver384 + 1 / $sign256 + 1 / $ver256)))")

if [ "$srv_cpu" != "$cli_cpu" ]; then where="server on CPU $srv_cpu, client on CPU $cli_cpu"; else where="1 CPU shared"; fi
printf 'Coordinator: %d Marbles, %ss, %s, --mesh-threads %d\n' "$marbles" "$seconds" "$where" "$threads"
printf '%-62s %12s\n' "benchmark" "result"
printf '%-62s %12s\n' "activations/s, one connection per Marble" "$rate"
printf '%-62s %12s\n' "  latency p50 / p99 (ms)" "$p50 / $p99"
printf '%-62s %12s\n' "  Coordinator CPU per activation (ms)" "$srv_ms"
printf '%-62s %12s\n' "  client CPU per activation (ms; wall per activation $wall_ms)" "$ccpu"
printf '%-62s %12s\n' "  crypto ceiling: 3 P-384 signs, P-384 verify, P-256 key + verify" "$est/s"
printf '%-62s %12s\n' "  ratio activations/s : ceiling" "$(calc 2 "$rate / $est")"
printf '%-62s %12s\n' "activations/s, a new TLS connection each" "$hrate"
printf '%-62s %12s\n' "  latency p50 / p99 (ms)" "$hp50 / $hp99"
printf '%-62s %12s\n' "  Coordinator CPU per activation (ms)" "$hsrv_ms"
printf '%-62s %12s\n' "  client CPU per activation (ms; wall per activation $hwall_ms)" "$hccpu"
printf '%-62s %12s\n' "  crypto ceiling: one more P-384 sign (the handshake)" "$hest/s"
printf '%-62s %12s\n' "  ratio activations/s : ceiling" "$(calc 2 "$hrate / $hest")"
printf '%-62s %12s\n' "one Marble at a time, new connection: latency p50 / p99 (ms)" "$op50 / $op99"
printf '%-62s %12s\n' "openssl speed ecdsap384 sign / verify per s (1 core)" "$sign384 / $ver384"
printf '%-62s %12s\n' "openssl speed ecdsap256 sign / verify per s (1 core)" "$sign256 / $ver256"
printf '%-62s %12s\n' "set a manifest (median of $rounds, ms)" "$set_ms"
printf '%-62s %12s\n' "sealed state after the manifest: sealed_data + sealed_key (B)" "$size_data + $size_key"
printf '%-62s %12s\n' "sealed_data after $n activations (B)" "$size_after"
printf '%-62s %12s\n' "preparing $marbles Marbles (keys, CSRs, quotes; untimed, s)" "$prep_s"
for m in "one connection:$ccpu:$wall_ms" "new connections:$hccpu:$hwall_ms"; do
  IFS=: read -r what c w <<<"$m"
  share=$(calc 2 "$c / $w")
  if [ "$(calc 0 "($c / $w > 0.85)")" = 1 ]; then
    echo "note ($what): the client used ${share} of its CPU: it is (near) the bottleneck; the rate is a lower bound"
  else
    echo "note ($what): the client used ${share} of its CPU: not the bottleneck"
  fi
done
echo "note: latency is a closed loop of $marbles Marbles on one server core: p50 is about $marbles / rate"
echo "note: one run on a shared machine; expect +-10% between runs. Compare the ratios, not the numbers."
