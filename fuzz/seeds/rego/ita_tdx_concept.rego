# Intel Trust Authority, "Attestation policies" (V1), Intel TDX appraisal policy example
# (tdx_mrsignerseam shortened in the original; tdx_seamsvn compared with a string there).
# https://docs.trustauthority.intel.com/main/articles/concept-policies.html
default matches_tdx_policy = false
matches_tdx_policy = true {
  input.tdx_mrsignerseam == "00000000000..."
  input.tdx_seamsvn == "2"
  input.attester_tcb_status == "OK"
  input.tdx_is_debuggable == false
}
