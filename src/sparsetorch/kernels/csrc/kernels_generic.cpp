// The portable kernels for the baseline ISA of the build (any CPU the compiler targets).
#include "kernels.h"

namespace sparsetorch_kernels {
namespace generic {
#include "kernels_impl.inc"

const Table kTable = {"generic",          portable_bitmask_spmv, portable_csr_spmv, portable_nm_spmv,
                      portable_block_spmv, portable_bitmask_spmm, portable_csr_spmm, portable_nm_spmm,
                      portable_block_spmm, portable_pack,         portable_unpack};
}  // namespace generic

const Table* table_generic() { return &generic::kTable; }
}  // namespace sparsetorch_kernels
