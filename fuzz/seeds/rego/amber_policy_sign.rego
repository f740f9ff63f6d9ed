# Amber-era (Project Amber) policy, from the policy-sign tool's README sample output
# (amber_* claim names).
# Project Amber policy-sign tool README, "Policy payload" sample output (GitHub, Amber era)
default matches_sgx_policy = false
matches_sgx_policy = true {
   input.amber_sgx_mrenclave == "83f4e819861adef6ffb2a4865efea9337b91ed30fa33491b17f0d5d9e8204410"
   input.amber_sgx_mrsigner == "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
   input.amber_sgx_isvprodid == 0
   input.amber_sgx_isvsvn == 0
   input.amber_sgx_is_debuggable == false
}
