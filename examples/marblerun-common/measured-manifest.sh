#!/usr/bin/env bash
# Puts a signed app's identity into a MarbleRun manifest's Packages (marblerun.md §4.4):
#   measured-manifest.sh APP.sig manifest.json > manifest.measured.json
# Every package that has a UniqueID gets the measurement (moat's MRENCLAVE, docs/measurement.md)
# in place of upstream's "<replace with mrenclave printed during the build>"; every package that
# has a SignerID gets the signing key's MRSIGNER (the samples' own key, not upstream's). ProductID,
# SecurityVersion and Debug stay as written: they must match what the template sets
# (sgx.isvprodid, sgx.isvsvn, sgx.debug). MOAT names the moat binary (default: moat on PATH).
set -euo pipefail
MOAT=${MOAT:-moat}
sig=${1:?usage: measured-manifest.sh APP.sig manifest.json}
manifest=${2:?usage: measured-manifest.sh APP.sig manifest.json}
id=$("$MOAT" sigstruct-view -f json "$sig")
jq --argjson id "$id" '.Packages |= map_values(
      (if has("UniqueID") then .UniqueID = $id.mr_enclave else . end)
    | (if has("SignerID") then .SignerID = $id.mr_signer else . end))' "$manifest"
