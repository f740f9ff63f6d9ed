#!/usr/bin/env bash
# Two builds of moat against each other and against native, in one run: what a change to
# `moat run` costs (issue 10 measured its hardening with it). Start-up of helloworld (the runs
# alternate native / A / B, 40 rounds; best and median), nginx serving a 10 KiB file to wrk and
# redis-benchmark SET with 50 clients (the three servers run side by side, the load alternates
# between them, best of 5).
# usage: bench/ab_run.sh BUILD_A BUILD_B     (ROUNDS=40 start-up rounds)
# Not part of `make bench` (it needs two builds): e.g. a worktree of the previous commit.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BUILD_A BUILD_B" >&2; exit 2; }
a=$(realpath "$1/src/cli/moat")
b=$(realpath "$2/src/cli/moat")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cp -r "$root/examples/helloworld" "$work/"
make -s -C "$work/helloworld" MOAT="$b" all >/dev/null
echo "== helloworld start-up (ms): best / median of ${ROUNDS:-40}"
(cd "$work/helloworld" && python3 - "$a" "$b" "${ROUNDS:-40}" <<'PY'
import statistics, subprocess, sys, time
cmds = {"native": ["./helloworld"], "A": [sys.argv[1], "run", "helloworld"],
        "B": [sys.argv[2], "run", "helloworld"]}
res = {k: [] for k in cmds}
for _ in range(int(sys.argv[3])):
    for k, c in cmds.items():
        t = time.perf_counter()
        subprocess.run(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        res[k].append((time.perf_counter() - t) * 1000)
for k, v in res.items():
    print(f"  {k:7s} {min(v):7.2f} {statistics.median(v):7.2f}")
print(f"  B - A   {min(res['B']) - min(res['A']):+7.2f} "
      f"{statistics.median(res['B']) - statistics.median(res['A']):+7.2f}")
PY
)

best() { sort -n | tail -1; }
if command -v nginx >/dev/null && command -v wrk >/dev/null; then
  for side in A B; do
    moat=$a; [ $side = B ] && moat=$b
    port=8431; [ $side = B ] && port=8432
    cp -r "$root/examples/nginx" "$work/nginx-$side"
    make -s -C "$work/nginx-$side" MOAT="$moat" PORT=$port all >/dev/null
    (cd "$work/nginx-$side" && exec "$moat" run nginx >/dev/null 2>&1) & pids="$pids $!"
  done
  sed 's/8431/8433/' "$work/nginx-A/conf/nginx.conf" > "$work/nginx-A/native.conf"
  sed -i "s|root /html;|root $work/nginx-A/html;|; s|/tmp/|$work/nginx-A/tmp-|g" \
      "$work/nginx-A/native.conf"
  nginx -p "$work/nginx-A" -c "$work/nginx-A/native.conf" >/dev/null 2>&1 & pids="$pids $!"
  sleep 2
  declare -A rps
  for _ in 1 2 3 4 5; do
    for port in 8433 8431 8432; do
      rps[$port]+="$(wrk -t1 -c20 -d3s "http://127.0.0.1:$port/big.bin" 2>/dev/null |
                     awk '/Requests\/sec/ {print $2}') "
    done
  done
  n=$(echo ${rps[8433]} | tr ' ' '\n' | best); x=$(echo ${rps[8431]} | tr ' ' '\n' | best)
  y=$(echo ${rps[8432]} | tr ' ' '\n' | best)
  echo "== nginx 10 KiB (req/s, best of 5): native $n  A $x  B $y  B/A $(awk -v a="$x" -v b="$y" \
       'BEGIN {printf "%.3f", b / a}')"
fi

if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  for side in A B; do
    moat=$a; [ $side = B ] && moat=$b
    port=6431; [ $side = B ] && port=6432
    cp -r "$root/examples/redis" "$work/redis-$side"
    make -s -C "$work/redis-$side" MOAT="$moat" PORT=$port all >/dev/null
    (cd "$work/redis-$side" && exec "$moat" run redis-server >/dev/null 2>&1) & pids="$pids $!"
  done
  redis-server --port 6433 --save "" --appendonly no >/dev/null 2>&1 & pids="$pids $!"
  for port in 6433 6431 6432; do
    for _ in $(seq 50); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  declare -A set
  for _ in 1 2 3 4 5; do
    for port in 6433 6431 6432; do
      set[$port]+="$(redis-benchmark -p $port -t set -c 50 -n 50000 --csv 2>/dev/null |
                     awk -F'"' '/^"SET"/ {print $4}') "
    done
  done
  n=$(echo ${set[6433]} | tr ' ' '\n' | best); x=$(echo ${set[6431]} | tr ' ' '\n' | best)
  y=$(echo ${set[6432]} | tr ' ' '\n' | best)
  echo "== redis SET, 50 clients (req/s, best of 5): native $n  A $x  B $y  B/A $(awk \
       -v a="$x" -v b="$y" 'BEGIN {printf "%.3f", b / a}')"
fi
