// The raw CPU kernels of sparsetorch's custom operators: plain C++ on raw pointers, no torch.
//
// Every kernel computes a range of work (output rows or batch tiles) so that threading stays in
// ops.cpp (at::parallel_for on torch's own pool). The same portable source (kernels_impl.inc) is
// compiled three times, for the baseline ISA, AVX2+FMA and AVX-512, each copy in its own
// namespace; the AVX-512 copy replaces the batch-1 kernels with intrinsic ones (vexpandps,
// vgatherdps, vpermt2ps). ops.cpp picks one table at load time from the CPU's features.
//
// Index conventions (sparsetorch.kernels.formats): bitmask chunks and 16-bit CSR columns are
// uint16, N:M index words uint32 with `bits`-bit positions packed LSB first, one row per word run.
#pragma once
#include <cstdint>

namespace sparsetorch_kernels {

// Bits per stored N:M position: 2 for m <= 4, 4 for m <= 16, 8 for m <= 256 (formats.nm_index_bits).
inline int64_t nm_bits(int64_t m) { return m <= 4 ? 2 : m <= 16 ? 4 : 8; }

// y (B, out) rows [r0, r1) of every batch row b < B, for B <= kSpmvMaxBatch (bandwidth-bound:
// the weights are streamed once per batch row). bias may be null.
constexpr int64_t kSpmvMaxBatch = 2;

struct Bitmask {
  const uint16_t* bits;  // (out, chunks)
  const float* values;   // kept values row-major
  const int32_t* row_ptr;  // (out + 1,)
  int64_t chunks;
};
struct Csr {
  const void* cols;  // (nnz,) uint16 or int32
  bool cols16;
  const float* values;
  const int32_t* row_ptr;
};
struct NM {
  const float* values;  // (out, k) with k = in / m * n
  const uint32_t* index;  // (out, words)
  int64_t n, m, bits, k, words;
};
struct Block {
  const float* values;  // (blocks, bh, bw)
  const int32_t* block_cols;
  const int32_t* row_ptr;  // (out / bh + 1,)
  int64_t bh, bw;
};

// Products: y (B, out) = x (B, in) @ W.T + bias, rows [r0, r1) of the output features.
// `spmv` kernels run every batch row (B <= kSpmvMaxBatch) over their rows. `spmm` kernels take a
// packed panel: xp (in, T) of one batch tile (T = 8, 16 or 64 batch rows, zero padded) and write
// yt (out, T) rows [r0, r1).
struct Table {
  const char* isa;
  void (*bitmask_spmv)(const Bitmask&, const float* x, int64_t B, int64_t in, int64_t out,
                       const float* bias, float* y, int64_t r0, int64_t r1);
  void (*csr_spmv)(const Csr&, const float* x, int64_t B, int64_t in, int64_t out, const float* bias,
                   float* y, int64_t r0, int64_t r1);
  void (*nm_spmv)(const NM&, const float* x, int64_t B, int64_t in, int64_t out, const float* bias,
                  float* y, int64_t r0, int64_t r1);
  void (*block_spmv)(const Block&, const float* x, int64_t B, int64_t in, int64_t out,
                     const float* bias, float* y, int64_t r0, int64_t r1);
  void (*bitmask_spmm)(const Bitmask&, const float* xp, int64_t T, int64_t in, float* yt, int64_t r0,
                       int64_t r1, int32_t* scratch);
  void (*csr_spmm)(const Csr&, const float* xp, int64_t T, int64_t in, float* yt, int64_t r0,
                   int64_t r1, int32_t* scratch);
  void (*nm_spmm)(const NM&, const float* xp, int64_t T, int64_t in, float* yt, int64_t r0, int64_t r1,
                  int32_t* scratch);
  void (*block_spmm)(const Block&, const float* xp, int64_t T, int64_t in, float* yt, int64_t r0,
                     int64_t r1, int32_t* scratch);
  // Pack batch rows [b0, b0 + T) of x (B, in) into xp (in, T), zero past B; columns [c0, c1).
  void (*pack)(const float* x, int64_t B, int64_t in, int64_t b0, int64_t T, float* xp, int64_t c0,
               int64_t c1);
  // y rows b0.. (< B) of features [r0, r1) from yt (out, T), plus bias (may be null).
  void (*unpack)(const float* yt, int64_t T, int64_t B, int64_t out, int64_t b0, const float* bias,
                 float* y, int64_t r0, int64_t r1);
};

const Table* table_generic();
const Table* table_avx2();    // null when not compiled for x86-64
const Table* table_avx512();  // null when not compiled for x86-64

}  // namespace sparsetorch_kernels
