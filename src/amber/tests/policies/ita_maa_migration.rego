# Intel Trust Authority, Azure (MAA) adapter migration: the appraisal policy an Azure SGX
# policy maps to (`input.sgx_isvsvn >= 1`).
# https://docs.trustauthority.intel.com (MAA adapter article)
default matches_sgx_policy = false
matches_sgx_policy = true {
    input.sgx_is_debuggable == false
    input.sgx_isvsvn >= 1
}
