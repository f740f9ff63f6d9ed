#!/usr/bin/env bash
# moat example: /dev/amber end to end (README.md). Starts `moat amber serve` (the token service)
# and `moat kbs serve` (the key broker) on 127.0.0.1, on the SIMULATED platform, runs the seed's
# C sample and the secret app under `moat run`, checks what they got, and stops the services.
#   MOAT=path/to/moat ./tour.sh          (make check runs it)
set -euo pipefail
cd "$(dirname "$0")"
MOAT=${MOAT:-moat}
export MOAT_SIM_DIR=$PWD/sim # the SIMULATED platform the apps quote with
LOG_LEVEL=${LOG_LEVEL:-error}
ARCH_LIBDIR=${ARCH_LIBDIR:-/lib/$(gcc -dumpmachine)}
API_KEY=amber-example-api-key
ADMIN=amber-example-admin-token
work=state
pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap stop EXIT

# wait_port LOG REGEX: the port a service prints in its start-up line
wait_port() {
  for _ in $(seq 1 600); do
    p=$(sed -n "s/.*$2 started on .* (port \([0-9]*\)).*/\1/p" "$1" | head -1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.1
  done
  cat "$1" >&2; return 1
}

rm -rf "$work" out && mkdir -p "$work" out
[ -f sim/root_ca.pem ] || "$MOAT" attest init --dir sim >/dev/null
echo "== moat amber serve: the token service (trusting the SIMULATED platform in ./sim)"
"$MOAT" amber serve --addr 127.0.0.1:0 --state-dir "$work/amber" --api-key "$API_KEY" \
  --no-seal --trust-simulated sim > "$work/amber.log" 2>&1 & pids+=($!)
ap=$(wait_port "$work/amber.log" "token service")
cp "$work/amber/tls.pem" ca.pem # the services' TLS certificate (self-made for localhost)
echo "== moat kbs serve: the key broker, trusting the token service's JWKS"
"$MOAT" kbs serve --addr 127.0.0.1:0 --state-dir "$work/kbs" --admin-token "$ADMIN" --no-seal \
  --token-jwks "https://localhost:$ap/certs" --token-ca ca.pem \
  --tls-cert "$work/amber/tls.pem" --tls-key "$work/amber/tls.key" > "$work/kbs.log" 2>&1 & pids+=($!)
kp=$(wait_port "$work/kbs.log" "key broker")

# render APP KBS_KEYID AMBER_URL: APP.manifest, signed into APP.manifest.sgx and APP.sig
render() {
  "$MOAT" manifest render --no-progress -Dlog_level="$LOG_LEVEL" -Darch_libdir="$ARCH_LIBDIR" \
    -Dapp="$1" -Damber_url="$3" -Damber_apikey="$API_KEY" \
    -Dkbs_url="https://localhost:$kp/kbs/v1/keys/" -Dkbs_keyid="$2" \
    amber.manifest.template "$1.manifest"
  "$MOAT" sign -q --key "${KEY:-$work/enclave-key.pem}" --manifest "$1.manifest" --output "$1.manifest.sgx"
}
"$MOAT" sign --gen-key -q "$work/enclave-key.pem"

echo "== the seed's sample reads /dev/amber/token (Gramine's Amber-beta URL form .../appraisal/v1/)"
render amber_client "" "https://localhost:$ap/appraisal/v1/"
echo "\$ moat run amber_client"
"$MOAT" run amber_client > "$work/token.out" 2> "$work/token.err" || { cat "$work/token.out" "$work/token.err"; exit 1; }
head -c 300 "$work/token.out"; echo " ..."
token=$(sed -n 2p "$work/token.out")
python3 - "$token" <<'PY'
import base64, json, sys
p = sys.argv[1].split(".")[1]
c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
assert c["amber_evidence_type"] == "SGX" and c.get("moat_simulated") is True, c
print("token claims: amber_sgx_mrsigner", c["amber_sgx_mrsigner"][:16] + "…, amber_sgx_isvprodid",
      c["amber_sgx_isvprodid"], "- SIMULATED platform (moat_simulated: true): proves nothing about hardware")
PY

echo "== a key at the broker, released to apps signed with this key (MRSIGNER) and ISVPRODID 11"
mrsigner=$("$MOAT" sigstruct-view --output-format json amber_client.sig | python3 -c 'import json,sys; print(json.load(sys.stdin)["mr_signer"])')
secret=$(head -c 32 /dev/urandom | base64)
admin() { curl -sf --cacert ca.pem -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' "https://localhost:$kp/kbs/v1/$1" -d "$2"; }
policy=$(admin key-transfer-policies "{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"mrsigner\":[\"$mrsigner\"],\"isvprodid\":[11]}}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
keyid=$(admin keys "{\"key_info\":{\"algorithm\":\"AES\",\"key_length\":256,\"key_data\":\"$secret\"},\"transfer_policy_id\":\"$policy\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "key $keyid under policy $policy"

echo "== the secret app: its own RSA key in /dev/amber/userdata, then /dev/amber/secret (ITA v1 URL form)"
render amber_secret "$keyid" "https://localhost:$ap"
echo "\$ moat run amber_secret"
"$MOAT" run amber_secret 2> "$work/secret.err" || { cat "$work/secret.err"; exit 1; }
want=$(echo "$secret" | base64 -d | sha256sum | cut -d' ' -f1)
[ "$(cat out/secret.sha256)" = "$want" ] || { echo "the app unwrapped another secret"; exit 1; }
echo "the app holds the broker's key (SHA-256 matches the key imported)"

echo "== the same app signed by another key: the broker refuses, the app sees why"
KEY="$work/other-key.pem"; "$MOAT" sign --gen-key -q "$KEY"; export KEY
render amber_secret "$keyid" "https://localhost:$ap"
rm -f out/secret.sha256
if "$MOAT" run amber_secret > "$work/refused.out" 2>&1; then echo "a key was released to another signer"; exit 1; fi
grep -m1 '\[ERROR\] secret' "$work/refused.out"
[ ! -e out/secret.sha256 ]
echo "amber: ok"
