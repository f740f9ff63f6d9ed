#!/usr/bin/env bash
# `moat run` against native on this machine, in one run (issue: moat run benchmarks):
#   helloworld start-up (target: <= +30 ms), python3 importing the standard library
#   (target: <= 1.25x wall time), redis-benchmark SET/GET with 50 clients (target: >= 0.95x),
#   nginx serving a 10 KiB file to wrk (target: >= 0.95x).
# usage: bench/run_overhead.sh BUILD_DIR        RUNS (default 10) start-up repetitions
set -euo pipefail
build=${1:-build}
moat=$(realpath "$build/src/cli/moat")
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-10}
work=$(mktemp -d)
cleanup() { [ -n "${pids:-}" ] && kill $pids 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cp -r "$root/examples/helloworld" "$root/examples/python" "$root/examples/redis" \
      "$root/examples/nginx" "$work/"
make -s -C "$work/helloworld" MOAT="$moat" all >/dev/null
make -s -C "$work/python" MOAT="$moat" all >/dev/null

ms() { date +%s%N; }
best_ms() {  # best wall time of "$@" over $runs runs, in ms
  local best=""
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(ms); "$@" >/dev/null 2>&1; t1=$(ms)
    local d=$(( (t1 - t0) / 1000 ))
    if [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
  done
  awk -v us="$best" 'BEGIN {printf "%.1f", us / 1000}'
}

printf '%-44s %12s %12s %10s  %s\n' benchmark native moat ratio target
row() { printf '%-44s %12s %12s %10s  %s\n' "$@"; }

# start-up
n=$(cd "$work/helloworld" && best_ms ./helloworld)
m=$(cd "$work/helloworld" && best_ms "$moat" run helloworld)
row "helloworld start-up (ms, best of $runs)" "$n" "$m" \
    "+$(awk -v a="$m" -v b="$n" 'BEGIN {printf "%.1f ms", a - b}')" "<= +30 ms"

# python imports
py=$(realpath /usr/bin/python3)
imports='import json, email, http.client, asyncio, decimal, sqlite3, ssl'
n=$(cd "$work/python" && best_ms "$py" -c "$imports")
m=$(cd "$work/python" && best_ms "$moat" run python -c "$imports")
row "python3 stdlib imports (ms, best of $runs)" "$n" "$m" \
    "$(awk -v a="$m" -v b="$n" 'BEGIN {printf "%.2fx", a / b}')" "<= 1.25x"

# redis: one server at a time, 2 cores shared by server and benchmark
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
  rb() { redis-benchmark -p "$1" -t set,get -c 50 -n "${REDIS_REQUESTS:-200000}" --csv 2>/dev/null |
         awk -F'"' '/"SET"|"GET"/ {s += $4; n++} END {printf "%.0f", s / n}'; }
  redis-server --port 6411 --save "" --appendonly no >/dev/null 2>&1 & pids=$!
  for _ in $(seq 50); do redis-cli -p 6411 ping >/dev/null 2>&1 && break; sleep 0.1; done
  n=$(rb 6411); kill $pids; wait $pids 2>/dev/null || true; pids=""
  make -s -C "$work/redis" MOAT="$moat" PORT=6412 all >/dev/null
  (cd "$work/redis" && exec "$moat" run redis-server >/dev/null 2>&1) & pids=$!
  for _ in $(seq 50); do redis-cli -p 6412 ping >/dev/null 2>&1 && break; sleep 0.1; done
  m=$(rb 6412); kill -TERM $pids; wait $pids 2>/dev/null || true; pids=""
  row "redis SET+GET (req/s, 50 clients)" "$n" "$m" \
      "$(awk -v a="$m" -v b="$n" 'BEGIN {printf "%.2fx", a / b}')" ">= 0.95x"
fi

# nginx: static 10 KiB file
if command -v nginx >/dev/null && command -v wrk >/dev/null; then
  make -s -C "$work/nginx" MOAT="$moat" PORT=8411 all >/dev/null
  wrkrps() { wrk -t1 -c20 -d"${WRK_SECONDS:-5}"s "http://127.0.0.1:$1/big.bin" 2>/dev/null |
             awk '/Requests\/sec/ {print int($2)}'; }
  sed 's/8411/8412/' "$work/nginx/conf/nginx.conf" > "$work/nginx/native.conf"
  sed -i "s|root /html;|root $work/nginx/html;|; s|/tmp/|$work/nginx/tmp-|g" "$work/nginx/native.conf"
  nginx -p "$work/nginx" -c "$work/nginx/native.conf" >/dev/null 2>&1 & pids=$!
  sleep 0.5; n=$(wrkrps 8412); kill $pids; wait $pids 2>/dev/null || true; pids=""
  (cd "$work/nginx" && exec "$moat" run nginx >/dev/null 2>&1) & pids=$!
  sleep 1; m=$(wrkrps 8411); kill -TERM $pids; wait $pids 2>/dev/null || true; pids=""
  row "nginx 10 KiB static file (req/s, wrk -c20)" "$n" "$m" \
      "$(awk -v a="$m" -v b="${n:-1}" 'BEGIN {printf "%.2fx", a / b}')" ">= 0.95x"
fi
echo "(2-core shared machine: server and load generator share the cores; expect noise)"
