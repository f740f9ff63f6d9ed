# Intel Trust Authority, "Policy builder tool", V2 TDX Rego (composite: claims nest under
# input.tdx; `match` refers to the rule `match_tdx`; `export` defines claims).
# https://docs.trustauthority.intel.com/main/articles/articles/ita/utility-policy-builder.html
default match = false
match {
match_tdx
}
 
match_tdx {
input.tdx.tdx_seamsvn == 2
input.tdx.tdx_rtmr0 == "0b787fd971c0518f82ba4ec05109122093958517b2e19f918efa103c3f07017c8bc0ac63f97ecccfb081362fdc4bd983"
input.tdx.tdx_rtmr1 == "ca6acd5094d9319bb2d04b1859931a88124c81e4818d43cf582d98d8b2d334bba3eada276ae93a352ede1f1a5e7f2f5c"
input.tdx.tdx_rtmr2 == "0b787fd971c0518f82ba4ec05109122093958517b2e19f918efa103c3f07017c8bc0ac63f97ecccfb081362fdc4bd983"
acceptable_values_for_tdx_rtmr3 := {"ca6acd5094d9319bb2d04b1859931a88124c81e4818d43cf582d98d8b2d334bba3eada276ae93a352ede1f1a5e7f2f5c", "0b787fd971c0518f82ba4ec05109122093958517b2e19f918efa103c3f07017c8bc0ac63f97ecccfb081362fdc4bd983"}
acceptable_values_for_tdx_rtmr3[input.tdx.tdx_rtmr3]
input.tdx.tdx_mrtd == "3dfeeb7cf01210c0df8f5adffc65c7ad8a1741119ec873c8a3cf81adefb21fcd1b828b776ead31369cfe7470ac322d54"
input.tdx.tdx_mrsignerseam == "03f7b0e40e9ebd4bb4b346048bdc0879d0084d534f7848dd8d4f1be4b0e9610d22f72e45ce4d941c056d4db74eb0028c"
input.tdx.tdx_is_debuggable == true
}
export := {
"my_tdx_seamsvn" : input.tdx.tdx_seamsvn,
"my_tdx_mrtd" : input.tdx.tdx_mrtd,
"my_debuggable" : input.tdx.tdx_is_debuggable,
"my_attester_tcb_status" : input.tdx.attester_tcb_status,
}
