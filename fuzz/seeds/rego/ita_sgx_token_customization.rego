# Intel Trust Authority, "Attestation policies" (V1), token customization policy for Intel SGX.
# https://docs.trustauthority.intel.com/main/articles/concept-policies.html
get_token_fields[token_fields] {
    token_fields := {
        "my_claim_isvsvn": input.sgx_isvsvn,
        "my_claim_mrenclave": input.sgx_mrenclave,
        "my_claim_mrsigner": input.sgx_mrsigner,
        "my_claim_isvprodid": input.sgx_isvprodid,
        "my_claim_isSgxDebuggable": input.sgx_is_debuggable
   }
}
