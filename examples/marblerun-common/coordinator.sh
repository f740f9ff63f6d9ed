#!/usr/bin/env bash
# The MarbleRun samples' Coordinator: `moat coordinator` run natively, with Marble quotes verified
# for real against a SIMULATED attestation platform of the sample's own (docs/coordinator.md,
# "simulated platform"; docs/attestation.md). Everything lives in one state directory DIR:
#   DIR/sim/          the simulated platform (moat attest init; its keys.pem signs quotes)
#   DIR/seal/         the Coordinator's sealed state
#   DIR/LOG, DIR/PID  its log and process id
#   DIR/client_port, DIR/mesh_port   the ports it bound (it binds free ones: 127.0.0.1:0)
#
#   coordinator.sh start DIR          start it, wait until its client API answers
#   coordinator.sh set-manifest DIR F set the MarbleRun manifest F (v2 API), print the reply
#   coordinator.sh stop DIR           SIGTERM by PID, wait for it to exit
# MOAT names the moat binary (default: moat on PATH).
set -euo pipefail
MOAT=${MOAT:-moat}
cmd=${1:?usage: coordinator.sh start|set-manifest|stop DIR [FILE]}
dir=${2:?usage: coordinator.sh start|set-manifest|stop DIR [FILE]}

api() { echo "https://127.0.0.1:$(cat "$dir/client_port")/api/v2"; }

case $cmd in
start)
  mkdir -p "$dir"
  [ -s "$dir/sim/root_ca.pem" ] || "$MOAT" attest init --dir "$dir/sim" >/dev/null
  rm -rf "$dir/seal" "$dir/client_port" "$dir/mesh_port"
  : > "$dir/LOG"
  # stdout and stderr to the log: a background process holding make's output open would keep
  # whoever reads it (a pipe) waiting until the Coordinator exits
  MOAT_SIM_DIR="$dir/sim" "$MOAT" coordinator --client-addr 127.0.0.1:0 \
      --mesh-addr 127.0.0.1:0 --seal-dir "$dir/seal" </dev/null >>"$dir/LOG" 2>&1 &
  echo $! > "$dir/PID"
  # readiness: the start-up line names both ports (docs/coordinator.md)
  re='Coordinator started: client API on [^ ]* \(port ([0-9]+)\), Marble API on [^ ]* \(port ([0-9]+)\)'
  for _ in $(seq 300); do
    if [[ $(cat "$dir/LOG") =~ $re ]]; then
      echo "${BASH_REMATCH[1]}" > "$dir/client_port"
      echo "${BASH_REMATCH[2]}" > "$dir/mesh_port"
      break
    fi
    kill -0 "$(cat "$dir/PID")" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$dir/mesh_port" ]; then
    echo "coordinator.sh: the Coordinator did not start:" >&2; cat "$dir/LOG" >&2
    kill -TERM "$(cat "$dir/PID")" 2>/dev/null || true
    exit 1
  fi
  echo "Coordinator (SIMULATED attestation platform $dir/sim): client API 127.0.0.1:$(cat "$dir/client_port"), Marble API 127.0.0.1:$(cat "$dir/mesh_port")"
  ;;
set-manifest)
  file=${3:?usage: coordinator.sh set-manifest DIR FILE}
  # v2 takes {"manifest": base64}; the samples' READMEs' v1 form is
  #   curl -k --data-binary @manifest.json https://127.0.0.1:PORT/manifest
  reply=$(curl -sk --data "{\"manifest\":\"$(base64 -w0 "$file")\"}" "$(api)/manifest")
  echo "set $file: $reply"
  grep -q '"status":"success"' <<<"$reply"
  ;;
stop)
  [ -s "$dir/PID" ] || exit 0
  pid=$(cat "$dir/PID")
  kill -TERM "$pid" 2>/dev/null || true
  # not our child any more (started by another shell): poll until it is gone
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$dir/PID"
  ;;
*)
  echo "coordinator.sh: unknown command '$cmd'" >&2; exit 2
  ;;
esac
