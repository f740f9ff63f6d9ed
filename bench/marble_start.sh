#!/usr/bin/env bash
# A Marble's start (issue 13, docs/marblerun.md): the time from `moat run` to the app's first
# line of output for a hello-world app started
#   - plainly (no premain; the same app, manifest and sandbox),
#   - through moat-premain (the executable form: activation, then exec of the app),
#   - with libmoat-premain.so preloaded (the LD_PRELOAD form),
# each activating with a Coordinator on this machine that verifies the SIMULATED quotes for
# real; the same three natively (no sandbox, no quote: a Coordinator in simulation mode); and
# activations per second with real premains (MARBLES at once, natively), with the premain's
# peak memory and threads (MarbleRun's Go premain needs sgx.enclave_size = "1024M" and 16
# threads for its runtime).
# usage: bench/marble_start.sh BUILD_DIR    RUNS (20) starts per case, MARBLES (8),
#        LOAD_SECONDS (5)
set -euo pipefail
build=$(realpath "${1:-build}")
moat=$build/src/cli/moat
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-20}
marbles=${MARBLES:-8}
seconds=${LOAD_SECONDS:-5}
py=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "marble_start: run as root (moat run's sandbox here)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
gcc -O2 -o hello "$root/tests/apps/marble_app.c"
cp "$build/src/premain/moat-premain" premain-libos
cp "$build/src/premain/libmoat-premain.so" .
"$moat" attest init --dir sim >/dev/null
"$moat" sign --gen-key -q key.pem

# three manifests that differ only in how the app starts
common='loader.env.LD_LIBRARY_PATH = "/lib"
loader.env.EDG_MARBLE_TYPE = { passthrough = true }
loader.env.EDG_MARBLE_COORDINATOR_ADDR = { passthrough = true }
sgx.remote_attestation = "dcap"
sgx.debug = true
sgx.allowed_files = [ "file:uuid" ]'
libs() { for l in "$@"; do printf '  "file:{{ gramine.runtimedir() }}/%s",\n' "$l"; done; }
cat > plain.manifest.template <<EOF
libos.entrypoint = "/hello"
loader.argv = ["/hello"]
$common
fs.mounts = [ { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" }, { path = "/lib64", uri = "file:/lib64" },
  { path = "/hello", uri = "file:hello" } ]
sgx.trusted_files = [ "file:hello",
$(libs libc.so.6)
  "file:/lib64/ld-linux-x86-64.so.2" ]
EOF
cat > exe.manifest.template <<EOF
libos.entrypoint = "/premain-libos"
loader.argv = ["/hello"]
$common
fs.mounts = [ { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" }, { path = "/lib64", uri = "file:/lib64" },
  { path = "/hello", uri = "file:hello" }, { path = "/premain-libos", uri = "file:premain-libos" } ]
sgx.trusted_files = [ "file:hello", "file:premain-libos",
$(libs libc.so.6)
  "file:/lib64/ld-linux-x86-64.so.2" ]
EOF
cat > preload.manifest.template <<EOF
libos.entrypoint = "/hello"
loader.argv = ["/hello"]
loader.env.LD_PRELOAD = "/libmoat-premain.so"
$common
fs.mounts = [ { path = "/lib", uri = "file:{{ gramine.runtimedir() }}" }, { path = "/lib64", uri = "file:/lib64" },
  { path = "/hello", uri = "file:hello" }, { path = "/libmoat-premain.so", uri = "file:libmoat-premain.so" } ]
sgx.trusted_files = [ "file:hello", "file:libmoat-premain.so",
$(libs libc.so.6 libssl.so.3 libcrypto.so.3 libnghttp2.so.14 libprotobuf-c.so.1)
  "file:/lib64/ld-linux-x86-64.so.2" ]
EOF
packages=""
for m in plain exe preload; do
  "$moat" manifest render --no-progress $m.manifest.template $m.manifest
  mr=$("$moat" sign -m $m.manifest -o $m.manifest.sgx --key key.pem | awk '/Measurement:/ {getline; print $1}')
  packages="$packages${packages:+,} \"$m\": {\"Debug\": true, \"UniqueID\": \"$mr\"}"
done
marble() { echo "\"$1\": {\"Package\": \"$1\", \"Parameters\": {\"Env\": {\"HELLO_WORLD\": \"hi\"}, \"Argv\": [\"./hello\"]}}"; }
echo "{\"Packages\": {$packages, \"native\": {\"Debug\": true}}, \"Marbles\": {$(marble exe), $(marble preload), $(marble native)}}" > manifest.json

# two Coordinators: one verifying the simulated quotes (for the sandbox), one in MarbleRun's
# simulation mode (for native premains, which have no /dev/attestation)
coordinator() {  # $1 seal dir, $2 extra env; sets port (the Marble API's)
  env MOAT_SIM_DIR="$work/sim" $2 "$moat" coordinator --client-addr 127.0.0.1:0 --mesh-addr 127.0.0.1:0 \
    --seal-dir "$1" > /dev/null 2> "$1.log" &
  pids+=($!)
  for _ in $(seq 200); do
    grep -q "Coordinator started" "$1.log" 2>/dev/null && break; sleep 0.05
  done
  local client
  client=$(sed -n 's/.*client API on \S* (port \([0-9]*\)).*/\1/p' "$1.log")
  curl -sfk --data-binary @manifest.json "https://127.0.0.1:$client/manifest" >/dev/null ||
    { cat "$1.log" >&2; echo "marble_start: cannot set the manifest" >&2; exit 1; }
  port=$(sed -n 's/.*Marble API on \S* (port \([0-9]*\)).*/\1/p' "$1.log")
}
coordinator "$work/seal-real" ""
real_port=$port
coordinator "$work/seal-sim" "OE_SIMULATION=1"
sim_port=$port

$py - "$moat" "$runs" "$real_port" "$sim_port" "$marbles" "$seconds" <<'PY'
import os, resource, statistics, subprocess, sys, threading, time
moat, runs, real, sim, marbles, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
base = dict(os.environ, MOAT_SIM_DIR=os.path.abspath("sim"), XDG_CACHE_HOME=os.path.abspath("cache"))

def first_line(cmd, env, executable=None):
    """seconds from the start to the first line of output; the run must succeed"""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, executable=executable, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = p.stdout.readline()
    t = time.monotonic() - t0
    out, err = p.communicate()
    if p.returncode != 0 or not line.startswith(b"argv[0]="):
        sys.exit(f"marble_start: {cmd} failed ({p.returncode}):\n{err.decode()}")
    return t

cases = {
    "plain":   lambda: first_line([moat, "run", "plain"], base),
    "exe":     lambda: first_line([moat, "run", "exe"], dict(base, EDG_MARBLE_TYPE="exe", EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{real}")),
    "preload": lambda: first_line([moat, "run", "preload"], dict(base, EDG_MARBLE_TYPE="preload", EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{real}")),
    "native plain":   lambda: first_line(["./hello"], base),
    "native exe":     lambda: first_line(["./hello"], dict(base, EDG_MARBLE_TYPE="native", EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{sim}"), executable="./premain-libos"),
    "native preload": lambda: first_line(["./hello"], dict(base, EDG_MARBLE_TYPE="native", EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{sim}", LD_PRELOAD=os.path.abspath("libmoat-premain.so"))),
}
for f in cases.values():  # warm caches (and moat's verification of the trusted files)
    f()
times = {k: [] for k in cases}
for _ in range(runs):  # interleaved: the machine's drift hits every case alike
    for k, f in cases.items():
        times[k].append(f())
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
row = lambda what, val: print(f"{what:<70} {val:>12}")
print(f"Marble start: hello world, median of {runs}, from the start to the app's first line (ms)")
row("under moat run, no premain", f"{med['plain']:.1f}")
row("under moat run, moat-premain (activation with a SIMULATED quote)", f"{med['exe']:.1f}")
row("  added by the premain", f"+{med['exe'] - med['plain']:.1f}")
row("under moat run, libmoat-premain.so (LD_PRELOAD)", f"{med['preload']:.1f}")
row("  added by the premain", f"+{med['preload'] - med['plain']:.1f}")
row("native, no premain", f"{med['native plain']:.1f}")
row("native, moat-premain (simulation-mode Coordinator, empty quote)", f"{med['native exe']:.1f}")
row("native, libmoat-premain.so", f"{med['native preload']:.1f}")

# activations per second: MARBLES native premains at once, each starting again as it ends
env = dict(base, EDG_MARBLE_TYPE="native", EDG_MARBLE_COORDINATOR_ADDR=f"127.0.0.1:{sim}")
count, stop, lock = [0], time.monotonic() + seconds, threading.Lock()
def loop():
    while time.monotonic() < stop:
        r = subprocess.run(["./hello"], executable="./premain-libos", env=env, capture_output=True)
        if r.returncode != 0:
            sys.exit(f"marble_start: activation failed: {r.stderr.decode()}")
        with lock:
            count[0] += 1
t0 = time.monotonic()
ts = [threading.Thread(target=loop) for _ in range(marbles)]
for t in ts: t.start()
for t in ts: t.join()
wall = time.monotonic() - t0
row(f"activations/s, {marbles} native moat-premains at once (new process each)", f"{count[0] / wall:.0f}")

# what the premain needs: the peak memory of one activation (the process's high-water mark,
# which the kernel keeps across the exec into the app) and its threads (it starts none)
p = subprocess.Popen(["./hello"], executable="./premain-libos", env=env, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
row("moat-premain peak resident memory, one activation (MiB)", f"{ru.ru_maxrss / 1024:.1f}")
row("moat-premain threads", "1")
print("note: the Coordinator runs on the same 2 CPUs; a shared VM drifts, compare within one run")
PY
