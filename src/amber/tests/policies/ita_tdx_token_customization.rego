# Intel Trust Authority, "Policy builder tool", TDX token customization Rego.
# https://docs.trustauthority.intel.com/main/articles/articles/ita/utility-policy-builder.html
get_token_fields[token_fields] {
token_fields := { 
"my_tdx_seamsvn" : input.tdx_seamsvn,
"my_tdx_rtmr0" : input.tdx_rtmr0,
"my_tdx_rtmr1" : input.tdx_rtmr1,
"my_tdx_rtmr2" : input.tdx_rtmr2,
"my_tdx_rtmr3" : input.tdx_rtmr3,
"my_tdx_mrtd" : input.tdx_mrtd,
"my_tdx_mrsignerseam" : input.tdx_mrsignerseam,
"my_debuggable" : input.tdx_is_debuggable,
"my_attester_tcb_date" : input.attester_tcb_date,
"my_attester_advisory_id" : input.attester_advisory_ids,
"my_attester_tcb_status" : input.attester_tcb_status,
}}
