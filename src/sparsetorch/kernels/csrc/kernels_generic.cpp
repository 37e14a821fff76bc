// The portable kernels for the baseline ISA of the build (any CPU the compiler targets).
#include "kernels.h"

namespace sparsetorch_kernels {
namespace generic {
#include "kernels_impl.inc"

const Table kTable = portable_table("generic");
}  // namespace generic

const Table* table_generic() { return &generic::kTable; }
}  // namespace sparsetorch_kernels
