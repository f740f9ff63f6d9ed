#!/usr/bin/env bash
# Trusted-file hashing throughput of `moat manifest render` against sha256sum, in one run on
# this machine (issue: "moat at least as fast as find ... | xargs -P2 sha256sum").
# usage: bench/hash_throughput.sh BUILD_DIR
# HASH_BENCH_DIRS (space-separated) picks the trees; default: the Python standard library and
# the host's C library directory. Each tool runs RUNS times (default 3); the best time counts.
set -euo pipefail
build=${1:-build}
moat="$build/src/cli/moat"
[ -x "$moat" ] || { echo "hash_throughput: $moat not built" >&2; exit 1; }
dirs=${HASH_BENCH_DIRS:-"/usr/lib/python3.11 /lib/x86_64-linux-gnu"}
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# the same file set moat hashes: regular files and symlinks to regular files, no symlinked dirs
: >"$work/files"
for d in $dirs; do
  find "$d" \( -type f -o \( -type l -xtype f \) \) -readable -print0 >>"$work/files"
done
nfiles=$(tr -cd '\0' <"$work/files" | wc -c)
bytes=$(xargs -0 stat -L -c %s <"$work/files" | awk '{s += $1} END {print s}')
mb=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')

{
  echo 'libos.entrypoint = "/x"'
  echo 'sgx.trusted_files = ['
  for d in $dirs; do echo "  \"file:${d%/}/\","; done
  echo ']'
} >"$work/bench.manifest.template"

# warm the page cache so that every tool reads from memory
xargs -0 cat <"$work/files" >/dev/null

best() {  # best wall time in seconds of "$@" over $runs runs
  local best=""
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    best=$(awk -v a="$best" -v b="$(awk -v x="$t0" -v y="$t1" 'BEGIN {print y - x}')" \
      'BEGIN {if (a == "" || b < a) print b; else print a}')
  done
  echo "$best"
}

t_moat=$(best "$moat" manifest render --no-progress "$work/bench.manifest.template" "$work/out.manifest")
t_xargs=$(best sh -c "xargs -0 -P2 -n64 sha256sum <'$work/files'")
t_serial=$(best sh -c "xargs -0 sha256sum <'$work/files'")

# sanity: moat's hashes are sha256sum's
xargs -0 sha256sum <"$work/files" | awk '{print $1}' | sort >"$work/want"
/usr/bin/python3 -c 'import sys, tomllib
for e in tomllib.load(open(sys.argv[1], "rb"))["sgx"]["trusted_files"]: print(e["sha256"])' \
  "$work/out.manifest" | sort >"$work/got"
cmp -s "$work/want" "$work/got" || { echo "hash_throughput: moat's hashes differ from sha256sum's" >&2; exit 1; }

echo "files: $nfiles, $mb MB (page cache warm), cores: $(nproc), best of $runs"
printf '%-34s %9s %10s %8s\n' tool seconds MB/s "vs -P2"
row() { awk -v n="$1" -v t="$2" -v mb="$mb" -v ref="$t_xargs" \
  'BEGIN {printf "%-34s %9.3f %10.0f %7.2fx\n", n, t, mb / t, ref / t}'; }
row "moat manifest render" "$t_moat"
row "find | xargs -P2 sha256sum" "$t_xargs"
row "find | xargs sha256sum (1 core)" "$t_serial"
awk -v m="$t_moat" -v x="$t_xargs" 'BEGIN {
  printf "target: moat at least as fast as xargs -P2 sha256sum: %s (ratio %.2f)\n",
    (m <= x * 1.0) ? "met" : "NOT met", x / m }'
echo "(2-core shared machine: expect a few percent of noise between runs)"
