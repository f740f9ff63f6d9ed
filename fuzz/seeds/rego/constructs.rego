package policy
import future.keywords.in
import future.keywords.every
default allow := false
allow if {
    some x in input.attester_advisory_ids
    x != "INTEL-SA-00000"
    every k, v in input.tdx.l { k >= 0; v != "y" }
    not input.sgx_is_debuggable
    count(input.sgx_mrenclave) == 64
    input["tdx"].l[1] > 2
    s := {"UpToDate", "SWHardeningNeeded"}
    s[input.attester_tcb_status]
    input.attester_tcb_status in s
}
claims contains c if { some c in [1, `raw`, null, {"a": [true]}] }
r = x { x := input.sgx_isvsvn; x >= 1.5 }
