#!/bin/bash
# Runs inside the sandbox: coreutils work, the host is not visible, trusted files are read-only.
set -u
echo "bash $BASH_VERSION in the sandbox, pid $$"
ls / | tr '\n' ' '; echo
echo "sum of 1..100: $(seq 100 | paste -sd+ | bc 2>/dev/null || seq 100 | awk '{s+=$1} END {print s}')"
date +%Y > /tmp/year && echo "tmpfs works: $(cat /tmp/year)"
echo "written by the app" > /scripts/out.txt && echo "allowed dir is writable"
if echo x >> /bin/ls 2>/dev/null; then echo "ERROR: trusted file writable"; exit 1; fi
echo "trusted files are read-only"
