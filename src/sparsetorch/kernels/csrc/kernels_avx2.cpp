// The portable kernels compiled for AVX2 + FMA (x86-64-v3); chosen at run time when the CPU has
// AVX2 and FMA but not AVX-512.
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c")

namespace sparsetorch_kernels {
namespace avx2 {
#include "kernels_impl.inc"

const Table kTable = portable_table("avx2");
}  // namespace avx2

const Table* table_avx2() { return &avx2::kTable; }
}  // namespace sparsetorch_kernels
#else
namespace sparsetorch_kernels {
const Table* table_avx2() { return nullptr; }
}  // namespace sparsetorch_kernels
#endif
