#!/usr/bin/env bash
# moat's memory under a long run of lookups and opens through the FUSE view (issue 15, "Bounded
# memory"): bench/apps/fuse_soak.c makes SOAK_OPS operations (default 10 million) under
# `moat run` — stats of repeated names in a read-only directory of SOAK_FILES files, opens of
# trusted files, new files created, stat'ed and removed in an encrypted mount (a name never
# seen before each time: a new node), stats of repeated names there — while this script
# samples the supervisor's VmRSS every SAMPLE_SECONDS and, as root, drops the kernel's dentry
# and inode caches every DROP_SECONDS (echo 2 > /proc/sys/vm/drop_caches), so that the kernel
# forgets the inodes it holds and moat must free their nodes (without it the kernel keeps every
# name it looked up while it has memory, and moat must keep their nodes).
# Prints the RSS after 10%, 50% and 100% of the operations, the peak and the final RSS, and a
# verdict: the growth from 10% to 100% must stay under GROWTH_PCT percent (default 10).
# usage: bench/fuse_soak.sh BUILD_DIR    SOAK_OPS, SOAK_FILES (default 20000), DROP_SECONDS
#        (default 1), SAMPLE_SECONDS (default 0.2), GROWTH_PCT (default 10); see bench/README.md
set -euo pipefail
build=${1:-build}
moat=$(realpath "$build/src/cli/moat")
root=$(cd "$(dirname "$0")/.." && pwd)
ops=${SOAK_OPS:-10000000}
nfiles=${SOAK_FILES:-20000}
ntrusted=500
drop=${DROP_SECONDS:-1}
sample=${SAMPLE_SECONDS:-0.2}
growth=${GROWTH_PCT:-10}
work=$(mktemp -d "${BENCH_DIR:-$root/build}/fuse-soak.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
gcc -O2 -Wall -pthread -o fuse_soak "$root/bench/apps/fuse_soak.c"
mkdir w a t
(cd a && seq 0 $((nfiles - 1)) | sed 's/^/f/' | xargs touch)
for i in $(seq 0 $((ntrusted - 1))); do echo "$i" > "t/f$i"; done
libdir=/lib/$(gcc -dumpmachine)
cat > fuse_soak.manifest.template <<EOF2
libos.entrypoint = "/fuse_soak"
loader.log_level = "error"
loader.insecure__use_cmdline_argv = true
fs.mounts = [
  { path = "/lib", uri = "file:$libdir" },
  { path = "/lib64", uri = "file:/lib64" },
  { path = "/fuse_soak", uri = "file:fuse_soak" },
  { type = "encrypted", path = "/w", uri = "file:w" },
  { path = "/a", uri = "file:a" },
  { path = "/t", uri = "file:t" },
]
fs.insecure__keys.default = "00112233445566778899aabbccddeeff"
sgx.trusted_files = [ "file:fuse_soak", "file:$libdir/libc.so.6",
                      "file:/lib64/ld-linux-x86-64.so.2", "file:t/" ]
EOF2
"$moat" manifest render --no-progress fuse_soak.manifest.template fuse_soak.manifest

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
can_drop=0
if [ -w /proc/sys/vm/drop_caches ]; then can_drop=1; fi

t0=$(date +%s%N)
coproc SOAK { exec "$moat" run fuse_soak soak "$ops" /w /a "$nfiles" /t "$ntrusted" 2>soak.err; }
pid=$SOAK_PID
out=${SOAK[0]}
# the sampler: moat's RSS every $sample s (peak and last kept in files)
( peak=0; while kill -0 "$pid" 2>/dev/null; do
    r=$(rss "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    echo "$peak" > peak; [ "$r" -gt 0 ] && echo "$r" > last
    sleep "$sample"
  done ) &
pids+=($!)
if [ "$can_drop" = 1 ]; then
  ( while kill -0 "$pid" 2>/dev/null; do echo 2 > /proc/sys/vm/drop_caches; sleep "$drop"; done ) &
  pids+=($!)
fi
declare -A at
while read -r tag pct <&"$out"; do
  [ "$tag" = progress ] || continue
  at[$pct]=$(rss "$pid")
done
wait "$pid" || { echo "fuse_soak failed:"; cat soak.err; exit 1; }
t1=$(date +%s%N)
sleep "$sample"
peak=$(cat peak); final=$(cat last)
# moat may have exited before the last progress line was read: its last sample stands for it
for p in 10 50 100; do [ "${at[$p]:-0}" -gt 0 ] || at[$p]=$final; done
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
secs=$(awk -v t=$((t1 - t0)) 'BEGIN {printf "%.1f", t / 1e9}')
echo "moat's RSS (VmRSS of the moat process) over $ops FUSE lookups/opens in ${secs} s" \
  "($(awk -v o="$ops" -v t=$((t1 - t0)) 'BEGIN {printf "%.0f", o / (t / 1e9)}') ops/s):"
printf '  %-26s %s\n' "after 10% of the ops" "$(mib "${at[10]}")" \
  "after 50%" "$(mib "${at[50]}")" "after 100%" "$(mib "${at[100]}")" \
  "peak (sampled every ${sample}s)" "$(mib "$peak")" "final (last sample)" "$(mib "$final")"
if [ "$can_drop" = 1 ]; then
  echo "  (caches dropped every ${drop}s: echo 2 > /proc/sys/vm/drop_caches)"
else
  echo "  (not root: caches not dropped; the kernel forgets inodes only under memory pressure)"
fi
g=$(awk -v a="${at[10]}" -v b="${at[100]}" 'BEGIN {printf "%.1f", (b - a) * 100 / a}')
if awk -v g="$g" -v m="$growth" 'BEGIN {exit !(g < m)}'; then
  echo "verdict: flat — RSS grew ${g}% from 10% to 100% of the ops (target < ${growth}%)"
else
  echo "verdict: GROWS — RSS grew ${g}% from 10% to 100% of the ops (target < ${growth}%)"
fi
