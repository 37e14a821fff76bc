// Autograd of sparsetorch's products, in C++, and the `positions` op it uses.
//
//   positions(format, values, i0, i1, in_features, n, m)  the flat index `row * in + col` of each
//                                                         entry of `values` (-1: padding)
//
// Registered at the Autograd key so that a call with grad mode off, or on tensors that need no
// grad, costs no Python (a Python autograd kernel added ~5 us per call). The backward is the dense
// masked one: dL/dx = dL/dy @ W, dL/dvalues = (dL/dy^T @ x) read at the stored positions, zero on
// padding, dL/dbias = sum over rows of dL/dy. It calls only dispatcher ops (the products, positions,
// ATen), so torch.compile's AOTAutograd traces it with the fake kernels.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <string>

#include "kernels.h"

namespace {
using at::Tensor;
namespace K = sparsetorch_kernels;

// --- stored positions (for the backward and for tests) ------------------------------------------------

Tensor positions(c10::string_view format_view, const Tensor& values, const Tensor& i0, const Tensor& i1,
                 int64_t in, int64_t n, int64_t m) {
  const std::string format(format_view);
  Tensor pos = at::full({values.numel()}, -1, values.options().dtype(at::kLong));
  int64_t* p = pos.data_ptr<int64_t>();
  if (format == "bitmask") {  // i0 bits (out, chunks), i1 row_ptr
    const uint16_t* bits = reinterpret_cast<const uint16_t*>(i0.data_ptr<int16_t>());
    const int64_t out = i0.size(0), chunks = i0.size(1);
    int64_t j = 0;
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < chunks; ++c)
        for (uint32_t mk = bits[r * chunks + c]; mk; mk &= mk - 1) p[j++] = r * in + 16 * c + __builtin_ctz(mk);
  } else if (format == "csr") {  // i0 cols, i1 row_ptr
    const int32_t* rp = i1.data_ptr<int32_t>();
    const bool c16 = i0.scalar_type() == at::kShort;
    for (int64_t r = 0; r + 1 < i1.numel(); ++r)
      for (int64_t j = rp[r]; j < rp[r + 1]; ++j)
        p[j] = r * in + (c16 ? static_cast<int64_t>(reinterpret_cast<const uint16_t*>(i0.data_ptr<int16_t>())[j])
                             : static_cast<int64_t>(i0.data_ptr<int32_t>()[j]));
  } else if (format == "nm") {  // i0 index (out, words), i1 pad
    const int64_t out = values.size(0), k = values.size(1), bits = K::nm_bits(m), per = 32 / bits;
    const uint32_t* idx = reinterpret_cast<const uint32_t*>(i0.data_ptr<int32_t>());
    for (int64_t r = 0; r < out; ++r)
      for (int64_t j = 0; j < k; ++j) {
        const uint32_t word = idx[r * i0.size(1) + j / per];
        p[r * k + j] = r * in + (j / n) * m + ((word >> (bits * (j % per))) & ((1u << bits) - 1u));
      }
    const int64_t* pad = i1.data_ptr<int64_t>();
    for (int64_t q = 0; q < i1.numel(); ++q) p[pad[q]] = -1;
  } else if (format == "block") {  // i0 block_cols, i1 row_ptr; values (blocks, bh, bw)
    const int64_t bh = values.size(1), bw = values.size(2);
    const int32_t* rp = i1.data_ptr<int32_t>();
    const int32_t* bc = i0.data_ptr<int32_t>();
    for (int64_t R = 0; R + 1 < i1.numel(); ++R)
      for (int64_t blk = rp[R]; blk < rp[R + 1]; ++blk)
        for (int64_t i = 0; i < bh; ++i)
          for (int64_t jj = 0; jj < bw; ++jj)
            p[(blk * bh + i) * bw + jj] = (R * bh + i) * in + static_cast<int64_t>(bc[blk]) * bw + jj;
  } else {
    TORCH_CHECK_VALUE(false, "sparsetorch::positions: unknown format '", format, "'");
  }
  return pos;
}

// --- autograd ------------------------------------------------------------------------------------------

enum Fmt : int64_t { kBitmask = 0, kCsr = 1, kNM = 2, kBlock = 3 };
const char* kFmtNames[] = {"bitmask", "csr", "nm", "block"};

template <typename Sig>
c10::TypedOperatorHandle<Sig> handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

using Opt = std::optional<Tensor>;
using LinearSig = Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Opt&, int64_t);
using NMSig = Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Opt&, int64_t, int64_t);
using PosSig = Tensor(c10::string_view, const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t);

// Call the product below autograd. Argument order per format (i0, i1 are the index tensors):
// bitmask (x, bits=i0, values, row_ptr=i1), csr (x, cols=i0, values, row_ptr=i1),
// nm (x, values, index=i0, pad=i1, n, m), block (x, values, block_cols=i0, row_ptr=i1).
Tensor call_product(int64_t fmt, const Tensor& x, const Tensor& values, const Tensor& i0, const Tensor& i1,
                    const Opt& bias, int64_t n, int64_t m) {
  static auto bitmask = handle<LinearSig>("sparsetorch::bitmask_linear");
  static auto csr = handle<LinearSig>("sparsetorch::csr_linear");
  static auto nm = handle<NMSig>("sparsetorch::nm_linear");
  static auto block = handle<LinearSig>("sparsetorch::block_linear");
  at::AutoDispatchBelowADInplaceOrView guard;
  switch (fmt) {
    case kBitmask: return bitmask.call(x, i0, values, i1, bias, x.size(-1));
    case kCsr: return csr.call(x, i0, values, i1, bias, x.size(-1));
    case kNM: return nm.call(x, values, i0, i1, bias, n, m);
    default: return block.call(x, values, i0, i1, bias, x.size(-1));
  }
}

class SparseLinearFn : public torch::autograd::Function<SparseLinearFn> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& values,
                        const Opt& bias, const Tensor& i0, const Tensor& i1, int64_t fmt, int64_t n,
                        int64_t m) {
    ctx->save_for_backward({x, values, i0, i1});
    ctx->saved_data["grad_x"] = x.requires_grad();
    ctx->saved_data["grad_values"] = values.requires_grad();
    ctx->saved_data["fmt"] = fmt;
    ctx->saved_data["n"] = n;
    ctx->saved_data["m"] = m;
    ctx->saved_data["grad_bias"] = bias.has_value() && bias->defined() && bias->requires_grad();
    return call_product(fmt, x, values, i0, i1, bias, n, m);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static auto positions_op = handle<PosSig>("sparsetorch::positions");
    auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &values = saved[1], &i0 = saved[2], &i1 = saved[3];
    const int64_t fmt = ctx->saved_data["fmt"].toInt();
    const int64_t in = x.size(-1);
    const Tensor& gy = grads[0];
    const int64_t out = gy.size(-1);
    const Tensor gy2 = gy.reshape({-1, out});
    // the flat index of every stored value; padding entries point at one extra zero slot
    const Tensor pos = positions_op.call(kFmtNames[fmt], values, i0, i1, in, ctx->saved_data["n"].toInt(),
                                         ctx->saved_data["m"].toInt());
    const int64_t total = out * in;
    const Tensor slot = at::where(pos.ge(0), pos, at::scalar_tensor(total, pos.options()));
    Tensor grad_x, grad_values, grad_bias;
    if (ctx->saved_data["grad_x"].toBool()) {
      Tensor dense = at::zeros({total + 1}, values.options());
      dense.index_put_({slot}, values.reshape(-1));
      grad_x = at::matmul(gy, dense.narrow(0, 0, total).view({out, in}));  // (..., out) @ (out, in)
    }
    if (ctx->saved_data["grad_values"].toBool()) {
      const Tensor gw = at::mm(gy2.t(), x.reshape({-1, in})).reshape(-1);  // (out * in,)
      grad_values = at::cat({gw, at::zeros({1}, gw.options())}).index_select(0, slot).view_as(values);
    }
    if (ctx->saved_data["grad_bias"].toBool()) grad_bias = gy2.sum(0);
    return {grad_x, grad_values, grad_bias, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// The autograd kernels forward x.size(-1) as in_features: check it against the caller's first.
void check_features(const char* op, const Tensor& x, int64_t in) {
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.size(-1) == in, op, ": the input has shape ", x.sizes(),
                    ", the layer expects ", in, " features");
}

bool wants_grad(const Tensor& x, const Tensor& values, const Opt& bias) {
  return at::GradMode::is_enabled() &&
         (x.requires_grad() || values.requires_grad() || (bias.has_value() && bias->defined() && bias->requires_grad()));
}

Tensor autograd_product(int64_t fmt, const Tensor& x, const Tensor& values, const Tensor& i0, const Tensor& i1,
                        const Opt& bias, int64_t n, int64_t m) {
  if (!wants_grad(x, values, bias)) return call_product(fmt, x, values, i0, i1, bias, n, m);
  return SparseLinearFn::apply(x, values, bias, i0, i1, fmt, n, m);
}

Tensor bitmask_autograd(const Tensor& x, const Tensor& bits, const Tensor& values, const Tensor& row_ptr,
                        const Opt& bias, int64_t in) {
  check_features("sparsetorch::bitmask_linear", x, in);
  return autograd_product(kBitmask, x, values, bits, row_ptr, bias, 0, 0);
}
Tensor csr_autograd(const Tensor& x, const Tensor& cols, const Tensor& values, const Tensor& row_ptr,
                    const Opt& bias, int64_t in) {
  check_features("sparsetorch::csr_linear", x, in);
  return autograd_product(kCsr, x, values, cols, row_ptr, bias, 0, 0);
}
Tensor nm_autograd(const Tensor& x, const Tensor& values, const Tensor& index, const Tensor& pad, const Opt& bias,
                   int64_t n, int64_t m) {
  return autograd_product(kNM, x, values, index, pad, bias, n, m);
}
Tensor block_autograd(const Tensor& x, const Tensor& values, const Tensor& block_cols, const Tensor& row_ptr,
                      const Opt& bias, int64_t in) {
  check_features("sparsetorch::block_linear", x, in);
  return autograd_product(kBlock, x, values, block_cols, row_ptr, bias, 0, 0);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(sparsetorch, m) {
  m.def("positions(str format, Tensor values, Tensor i0, Tensor i1, int in_features, int n, int m) -> Tensor");
}

TORCH_LIBRARY_IMPL(sparsetorch, CPU, m) { m.impl("positions", &positions); }

TORCH_LIBRARY_IMPL(sparsetorch, Autograd, m) {
  m.impl("bitmask_linear", &bitmask_autograd);
  m.impl("csr_linear", &csr_autograd);
  m.impl("nm_linear", &nm_autograd);
  m.impl("block_linear", &block_autograd);
}
