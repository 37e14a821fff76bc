// sparsetorch's CPU sparse products as PyTorch custom operators (namespace `sparsetorch`).
//
//   bitmask_linear(x, bits, values, row_ptr, bias?, in_features)
//   csr_linear(x, cols, values, row_ptr, bias?, in_features)
//   nm_linear(x, values, index, pad, bias?, n, m)
//   block_linear(x, values, block_cols, row_ptr, bias?, in_features)
//   isa() / set_isa(name)                                  the kernel table in use (tests compare them)
//
// Each product computes y (..., out) = x (..., in) @ W.T + bias for the compressed W of
// sparsetorch.kernels.formats, on torch's own intra-op pool (at::parallel_for; this file is built
// with -fopenmp so that the pool is torch's libgomp, not a second one). Fake kernels live in
// sparsetorch/kernels/ops.py, autograd and the `positions` op in autograd.cpp.
//
// The ops trust the index tensors' contents (validated when a format is built or loaded, see
// kernels/validate.py) and check everything else: dtypes, devices, shapes, contiguity.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels.h"

namespace {
using at::Tensor;
namespace K = sparsetorch_kernels;

// --- the kernel table ------------------------------------------------------------------------------

const K::Table* table_named(const std::string& name) {
  if (name == "generic" || name == "default") return K::table_generic();
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (name == "avx2")
    return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? K::table_avx2() : nullptr;
  if (name == "avx512")
    return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
               ? K::table_avx512()
               : nullptr;
#endif
  return nullptr;
}

const K::Table* best_table() {
  // ATEN_CPU_CAPABILITY (default | avx2 | avx512) caps the choice, as it does for ATen and Inductor.
  const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
  const std::string limit = cap ? cap : "";
  if (limit.empty() || limit == "avx512") {
    if (auto* t = table_named("avx512")) return t;
  }
  if (limit.empty() || limit == "avx512" || limit == "avx2") {
    if (auto* t = table_named("avx2")) return t;
  }
  return K::table_generic();
}

std::atomic<const K::Table*> g_table{nullptr};

const K::Table& table() {
  const K::Table* t = g_table.load(std::memory_order_acquire);
  if (!t) {
    t = best_table();
    g_table.store(t, std::memory_order_release);
  }
  return *t;
}

std::string isa() { return table().isa; }

std::string set_isa(const std::string& name) {
  std::string previous = isa();
  const K::Table* t = name == "best" ? best_table() : table_named(name);
  TORCH_CHECK_VALUE(t != nullptr, "sparsetorch.set_isa: kernel table '", name,
                    "' is not available on this CPU (expected best, generic, avx2 or avx512)");
  g_table.store(t, std::memory_order_release);
  return previous;
}

// --- checks ---------------------------------------------------------------------------------------

void check_input(const char* op, const Tensor& x, int64_t in) {
  TORCH_CHECK_VALUE(x.device().is_cpu(), op, ": the input is on ", x.device(),
                    "; the sparse CPU kernels need a CPU tensor (move it, or decompile the model)");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat, op, ": the input has dtype ", x.scalar_type(),
                   "; the sparse kernels compute in float32");
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.size(-1) == in, op, ": the input has ",
                    (x.dim() >= 1 ? std::to_string(x.size(-1)) : std::string("no")),
                    " features (shape ", x.sizes(), "), the layer expects ", in);
  TORCH_CHECK_VALUE(x.is_contiguous(), op, ": the input is not contiguous (shape ", x.sizes(), ", strides ",
                    x.strides(), "); call .contiguous() first");
}

void check_index(const char* op, const char* name, const Tensor& t, at::ScalarType dtype, int64_t dim) {
  TORCH_CHECK_VALUE(t.device().is_cpu() && t.is_contiguous() && t.dim() == dim, op, ": ", name,
                    " must be a contiguous ", dim, "-D CPU tensor, got shape ", t.sizes(), " on ", t.device());
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, op, ": ", name, " must be ", dtype, ", got ", t.scalar_type());
}

const float* check_bias(const char* op, const std::optional<Tensor>& bias, int64_t out) {
  if (!bias.has_value() || !bias->defined()) return nullptr;
  const Tensor& b = *bias;
  TORCH_CHECK_VALUE(b.device().is_cpu() && b.dim() == 1 && b.size(0) == out && b.is_contiguous(), op,
                    ": bias must be a contiguous CPU tensor of shape (", out, "), got ", b.sizes(), " on ",
                    b.device());
  TORCH_CHECK_TYPE(b.scalar_type() == at::kFloat, op, ": bias must be float32, got ", b.scalar_type());
  return b.data_ptr<float>();
}

// --- the shared driver ------------------------------------------------------------------------------

constexpr int64_t kParallelMinWork = 40000;  // stored values x batch rows below which one thread wins

int64_t panel_width(int64_t batch) { return batch >= 48 ? 64 : batch <= 8 ? 8 : 16; }

// y = x @ W.T + bias for format W, with the kernels `spmv` and `spmm` of the table in use (members
// of K::Table). `rows` counts the kernels' row units (output features, or tile rows of `row_unit`
// features for block formats); `work` the stored values (for the serial threshold).
template <typename Fmt, typename Spmv, typename Spmm>
Tensor run(const Tensor& x, int64_t in, int64_t out, int64_t rows, int64_t row_unit, int64_t work,
           const float* bias, const Fmt& w, Spmv K::Table::*spmv, Spmm K::Table::*spmm) {
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = out;
  Tensor y = at::empty(sizes, x.options());
  const int64_t B = c10::multiply_integers(x.sizes().begin(), x.sizes().end() - 1);
  if (B == 0 || out == 0) return y;
  float* yp = y.data_ptr<float>();
  if (in == 0 || rows == 0) {  // no stored value can contribute
    for (int64_t b = 0; b < B; ++b)
      for (int64_t r = 0; r < out; ++r) yp[b * out + r] = bias ? bias[r] : 0.f;
    return y;
  }
  const float* xp = x.data_ptr<float>();
  const K::Table& k = table();
  const bool serial = work * B < kParallelMinWork;
  if (B <= K::kSpmvMaxBatch) {
    at::parallel_for(0, rows, serial ? rows : 1, [&](int64_t r0, int64_t r1) {
      (k.*spmv)(w, xp, B, in, out, bias, yp, r0, r1);
    });
    return y;
  }
  const int64_t T = panel_width(B);
  const int64_t tiles = (B + T - 1) / T;
  Tensor panel = at::empty({tiles, in, T}, x.options());
  Tensor yt = at::empty({tiles, rows * row_unit, T}, x.options());
  float* pp = panel.data_ptr<float>();
  float* ytp = yt.data_ptr<float>();
  // 1. pack X into tile-major panels: tile t holds batch rows [tT, tT + T), column c at row c
  const int64_t col_chunk = 256;
  const int64_t col_chunks = (in + col_chunk - 1) / col_chunk;
  at::parallel_for(0, tiles * col_chunks, serial ? tiles * col_chunks : 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t t = u / col_chunks, c0 = (u % col_chunks) * col_chunk;
      k.pack(xp, B, in, t * T, T, pp + t * in * T, c0, std::min(c0 + col_chunk, in));
    }
  });
  // 2. compute and unpack: units are (tile, 16-row group), tile-major, so a thread with several
  //    units of one tile runs them as one kernel call (its column blocks stay in L2 across rows)
  const int64_t groups = (rows + 15) / 16;
  const int64_t scratch_len = in + 64 + rows + 16;
  const int64_t nthreads = serial ? 1 : at::get_num_threads();
  Tensor scratch = at::empty({nthreads + 1, scratch_len}, x.options().dtype(at::kInt));
  at::parallel_for(0, tiles * groups, serial ? tiles * groups : 1, [&](int64_t u0, int64_t u1) {
    int32_t* sc = scratch.data_ptr<int32_t>() + std::min<int64_t>(at::get_thread_num(), nthreads) * scratch_len;
    for (int64_t u = u0; u < u1;) {
      const int64_t t = u / groups;
      const int64_t g1 = std::min(u1, (t + 1) * groups);
      const int64_t r0 = (u - t * groups) * 16, r1 = std::min(rows, (g1 - t * groups) * 16);
      float* ytile = ytp + t * rows * row_unit * T;
      (k.*spmm)(w, pp + t * in * T, T, in, ytile, r0, r1, sc);
      k.unpack(ytile, T, B, out, t * T, bias, yp, r0 * row_unit, r1 * row_unit);
      u = g1;
    }
  });
  return y;
}

// --- the four products --------------------------------------------------------------------------------

Tensor bitmask_linear(const Tensor& x, const Tensor& bits, const Tensor& values, const Tensor& row_ptr,
                      const std::optional<Tensor>& bias, int64_t in) {
  const char* op = "sparsetorch::bitmask_linear";
  check_index(op, "bits", bits, at::kShort, 2);
  check_index(op, "values", values, at::kFloat, 1);
  check_index(op, "row_ptr", row_ptr, at::kInt, 1);
  const int64_t out = bits.size(0), chunks = bits.size(1);
  TORCH_CHECK_VALUE(in >= 0 && (in + 15) / 16 == chunks, op, ": in_features=", in, " needs ", (in + 15) / 16,
                    " chunks of 16 columns, bits has ", chunks);
  check_input(op, x, in);
  TORCH_CHECK_VALUE(row_ptr.size(0) == out + 1, op, ": row_ptr has ", row_ptr.size(0), " entries, expected ",
                    out + 1);
  const int64_t nnz = out > 0 ? row_ptr.data_ptr<int32_t>()[out] : 0;
  TORCH_CHECK_VALUE(nnz >= 0 && values.numel() >= nnz + 16, op, ": values holds ", values.numel(),
                    " floats, the index needs ", nnz, " plus 16 padding");
  const float* bp = check_bias(op, bias, out);
  const K::Bitmask w{reinterpret_cast<const uint16_t*>(bits.data_ptr<int16_t>()), values.data_ptr<float>(),
                     row_ptr.data_ptr<int32_t>(), chunks};
  return run(x, in, out, out, 1, nnz, bp, w, &K::Table::bitmask_spmv, &K::Table::bitmask_spmm);
}

Tensor csr_linear(const Tensor& x, const Tensor& cols, const Tensor& values, const Tensor& row_ptr,
                  const std::optional<Tensor>& bias, int64_t in) {
  const char* op = "sparsetorch::csr_linear";
  TORCH_CHECK_TYPE(cols.scalar_type() == at::kShort || cols.scalar_type() == at::kInt, op,
                   ": cols must be int16 (read as uint16) or int32, got ", cols.scalar_type());
  check_index(op, "cols", cols, cols.scalar_type(), 1);
  check_index(op, "values", values, at::kFloat, 1);
  check_index(op, "row_ptr", row_ptr, at::kInt, 1);
  TORCH_CHECK_VALUE(row_ptr.size(0) >= 1, op, ": row_ptr must have out + 1 >= 1 entries");
  const int64_t out = row_ptr.size(0) - 1;
  TORCH_CHECK_VALUE(in >= 0 && in <= (cols.scalar_type() == at::kShort ? 65536 : INT32_MAX), op,
                    ": in_features=", in, " does not fit the column index type");
  check_input(op, x, in);
  const int64_t nnz = row_ptr.data_ptr<int32_t>()[out];
  TORCH_CHECK_VALUE(nnz >= 0 && cols.numel() == nnz && values.numel() >= nnz + 16, op, ": cols holds ",
                    cols.numel(), " and values ", values.numel(), " entries; row_ptr says ", nnz,
                    " (values plus 16 padding)");
  const float* bp = check_bias(op, bias, out);
  const K::Csr w{cols.data_ptr(), cols.scalar_type() == at::kShort, values.data_ptr<float>(),
                 row_ptr.data_ptr<int32_t>()};
  return run(x, in, out, out, 1, nnz, bp, w, &K::Table::csr_spmv, &K::Table::csr_spmm);
}

Tensor nm_linear(const Tensor& x, const Tensor& values, const Tensor& index, const Tensor& pad,
                 const std::optional<Tensor>& bias, int64_t n, int64_t m) {
  const char* op = "sparsetorch::nm_linear";
  TORCH_CHECK_VALUE(0 < n && n < m && m <= 256, op, ": needs 0 < n < m <= 256, got n=", n, ", m=", m);
  check_index(op, "values", values, at::kFloat, 2);
  check_index(op, "index", index, at::kInt, 2);
  check_index(op, "pad", pad, at::kLong, 1);
  const int64_t out = values.size(0), k = values.size(1);
  const int64_t in = x.dim() >= 1 ? x.size(-1) : -1;
  TORCH_CHECK_VALUE(in >= 0 && in % m == 0 && in / m * n == k, op, ": the input has ", in, " features; ",
                    n, ":", m, " values of ", k, " per row need ", k / n * m);
  check_input(op, x, in);
  const int64_t bits = K::nm_bits(m), per = 32 / bits;
  const int64_t words = (k + per - 1) / per;
  TORCH_CHECK_VALUE(index.size(0) == out && index.size(1) == words, op, ": index has shape ", index.sizes(),
                    ", expected (", out, ", ", words, ")");
  const float* bp = check_bias(op, bias, out);
  const K::NM w{values.data_ptr<float>(), reinterpret_cast<const uint32_t*>(index.data_ptr<int32_t>()), n, m,
                bits, k, words};
  return run(x, in, out, out, 1, out * k, bp, w, &K::Table::nm_spmv, &K::Table::nm_spmm);
}

Tensor block_linear(const Tensor& x, const Tensor& values, const Tensor& block_cols, const Tensor& row_ptr,
                    const std::optional<Tensor>& bias, int64_t in) {
  const char* op = "sparsetorch::block_linear";
  check_index(op, "values", values, at::kFloat, 3);
  check_index(op, "block_cols", block_cols, at::kInt, 1);
  check_index(op, "row_ptr", row_ptr, at::kInt, 1);
  TORCH_CHECK_VALUE(row_ptr.size(0) >= 1, op, ": row_ptr must have out / bh + 1 >= 1 entries");
  const int64_t bh = values.size(1), bw = values.size(2), tile_rows = row_ptr.size(0) - 1;
  const int64_t out = tile_rows * bh;
  check_input(op, x, in);
  TORCH_CHECK_VALUE(bh > 0 && bw > 0 && in % bw == 0, op, ": the input has ", in,
                    " features, not a multiple of the block width ", bw);
  const int64_t blocks = row_ptr.data_ptr<int32_t>()[tile_rows];
  TORCH_CHECK_VALUE(blocks == values.size(0) && blocks == block_cols.numel(), op, ": row_ptr says ", blocks,
                    " blocks, values has ", values.size(0), " and block_cols ", block_cols.numel());
  const float* bp = check_bias(op, bias, out);
  const K::Block w{values.data_ptr<float>(), block_cols.data_ptr<int32_t>(), row_ptr.data_ptr<int32_t>(), bh,
                   bw};
  return run(x, in, out, tile_rows, bh, values.numel(), bp, w, &K::Table::block_spmv, &K::Table::block_spmm);
}

}  // namespace

TORCH_LIBRARY(sparsetorch, m) {
  m.set_python_module("sparsetorch.kernels.ops");
  m.def(
      "bitmask_linear(Tensor x, Tensor bits, Tensor values, Tensor row_ptr, Tensor? bias, int in_features) -> "
      "Tensor");
  m.def("csr_linear(Tensor x, Tensor cols, Tensor values, Tensor row_ptr, Tensor? bias, int in_features) -> Tensor");
  m.def("nm_linear(Tensor x, Tensor values, Tensor index, Tensor pad, Tensor? bias, int n, int m) -> Tensor");
  m.def(
      "block_linear(Tensor x, Tensor values, Tensor block_cols, Tensor row_ptr, Tensor? bias, int in_features) "
      "-> Tensor");
  m.def("isa() -> str", &isa);
  m.def("set_isa(str name) -> str", &set_isa);
}

TORCH_LIBRARY_IMPL(sparsetorch, CPU, m) {
  m.impl("bitmask_linear", &bitmask_linear);
  m.impl("csr_linear", &csr_linear);
  m.impl("nm_linear", &nm_linear);
  m.impl("block_linear", &block_linear);
}

// Inputs on a GPU reach the CPU kernels' checks, which name the device (instead of the dispatcher's
// "could not run with arguments from the CUDA backend"); meta tensors get the fake kernels.
TORCH_LIBRARY_IMPL(sparsetorch, CUDA, m) {
  m.impl("bitmask_linear", &bitmask_linear);
  m.impl("csr_linear", &csr_linear);
  m.impl("nm_linear", &nm_linear);
  m.impl("block_linear", &block_linear);
}
