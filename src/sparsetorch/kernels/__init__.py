"""Sparse execution: compressed weight formats, C++ CPU operators, and `compile(model)`.

Why: pruning only pays when the pruned model runs faster and takes less memory. Stock PyTorch
gains nothing on CPU below ~70 % sparsity and has no 2:4 path; this package stores each masked
Linear in the most compact format that its mask allows and multiplies with C++ custom operators
(`torch.ops.sparsetorch.*`, built at install time: AVX-512 where the CPU has it, AVX2 or portable
loops elsewhere, pure torch when the extension is not built), on torch's own thread pool and
traceable by `torch.compile`.

    >>> sparsetorch.prune(model, "magnitude", 0.9)
    >>> sparsetorch.kernels.compile(model)            # measured per layer; dense where sparse loses
    >>> model = torch.compile(model)                  # optional: Inductor fuses around the sparse ops
    >>> sparsetorch.kernels.save_compiled(model, "m.safetensors")
    >>> sparsetorch.kernels.decompile(model)          # the masked model again

See `formats` (bitmask, CSR, N:M, block), `validate` (fits, build, checks) and `invariants` (the
index invariants every checkpoint must keep), `ops` (the operators: loading, fake kernels, ISA
choice; sources in `csrc/`), `cpu` (backends, the bound call per format, the torch fallback),
`module` (`SparseLinear`, training, the all-or-nothing cast guard), `compile` and `swap` (layer
swaps), `checkpoint` (compact checkpoints: validated, then loaded as a transaction), `autotune`
(the cached measurements), `timing` (interleaved wall-clock timing), `cuda`, and `gather` (the
numba kernels of the activation-sparse FFN, `sparsetorch.activations.gather`, over `simd`).

`to_dense(model)` gives a plain dense model back (`decompile`, then `masks.squash`); the old name
`kernels.squash` is a deprecated alias.
"""

from sparsetorch.kernels.compile import (
    compile,
    compression,
    decompile,
    load_compiled,
    save_compiled,
    sparse_layers,
    squash,
    to_dense,
)
from sparsetorch.kernels.cpu import backend, linear, use_backend
from sparsetorch.kernels.formats import CSR, Bitmask, BlockSparse, Dense, Format, NMPacked
from sparsetorch.kernels.module import SparseLinear
from sparsetorch.kernels.validate import build

__all__ = [
    "CSR",
    "Bitmask",
    "BlockSparse",
    "Dense",
    "Format",
    "NMPacked",
    "SparseLinear",
    "backend",
    "build",
    "compile",
    "compression",
    "decompile",
    "linear",
    "load_compiled",
    "save_compiled",
    "sparse_layers",
    "squash",
    "to_dense",
    "use_backend",
]
