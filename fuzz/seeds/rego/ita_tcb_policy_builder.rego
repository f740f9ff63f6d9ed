# Intel Trust Authority, "Policy builder tool", TCB Rego: uses time.* and object.subset and a
# set comprehension (evaluated by test_rego with time.now_ns() fixed).
# https://docs.trustauthority.intel.com/main/articles/articles/ita/utility-policy-builder.html
default matches_sgx_policy = false
matches_sgx_policy = true {
min_tcb_date := "2023-03-15T00:00:00Z"
date_ns_0 := time.parse_rfc3339_ns(input.attester_tcb_date)
min_date_ns := time.parse_rfc3339_ns(min_tcb_date)
date_ns_0 >= min_date_ns
acceptable_values_for_attester_tcb_status := {"UpToDate", "SWHardeningNeeded"}
acceptable_values_for_attester_tcb_status[input.attester_tcb_status]
ttl_period := 8
date_ns_1 := time.parse_rfc3339_ns(input.attester_tcb_date)
expiry_date_ns := time.add_date(date_ns_1, 0, ttl_period, 0)
expiry_date_ns >= time.now_ns()
allowed_advisory_ids := {"INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615"}
attester_advisory_ids:= {id | id := input.attester_advisory_ids[_]}
object.subset(allowed_advisory_ids,  attester_advisory_ids)
}
