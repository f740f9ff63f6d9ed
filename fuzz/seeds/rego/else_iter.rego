package policy
import rego.v1
r = 1 if { input.sgx_isvsvn > 5 } else = 2 if { some x in input.tdx.l; x == 1 } else = 3
ids := {id | id := input.attester_advisory_ids[_]}
ok if { object.subset({"INTEL-SA-00615", "INTEL-SA-00614"}, ids); time.now_ns() > time.add_date(time.parse_rfc3339_ns("2023-01-31T00:00:00.5+01:00"), 0, 1, 0) }
k = key if { input.tdx[key] == 2 }
