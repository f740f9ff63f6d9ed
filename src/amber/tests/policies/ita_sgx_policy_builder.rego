# Intel Trust Authority, "Policy builder tool", SGX Rego (output of the JSON policy builder).
# https://docs.trustauthority.intel.com/main/articles/articles/ita/utility-policy-builder.html
default matches_sgx_policy = false
matches_sgx_policy = true {
input.sgx_isvsvn >= 2
input.sgx_isvprodid == 1
input.sgx_mrenclave == "d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410"
input.sgx_mrsigner == "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
input.sgx_is_debuggable == false
}
