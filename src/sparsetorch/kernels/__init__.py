"""Sparse execution: compressed weight formats, fast CPU kernels, and `compile(model)`.

Why: pruning only pays when the pruned model runs faster and takes less memory. Stock PyTorch
gains nothing on CPU below ~70 % sparsity and has no 2:4 path; this package stores each masked
Linear in the most compact format that its mask allows and multiplies with numba kernels
(AVX-512 where the CPU has it, portable loops elsewhere, pure torch without numba).

    >>> sparsetorch.prune(model, "magnitude", 0.9)
    >>> sparsetorch.kernels.compile(model)            # measured per layer; dense where sparse loses
    >>> sparsetorch.kernels.save_compiled(model, "m.safetensors")
    >>> sparsetorch.kernels.decompile(model)          # the masked model again

See `formats` (bitmask, CSR, N:M, block), `cpu` (the products, backends), `module`
(`SparseLinear` and the training fallback), `autotune` (the cached measurements), `timing`
(interleaved wall-clock timing) and `cuda`.
"""

from sparsetorch.kernels.compile import (
    compile,
    compression,
    decompile,
    load_compiled,
    save_compiled,
    sparse_layers,
    squash,
)
from sparsetorch.kernels.cpu import backend, linear, use_backend
from sparsetorch.kernels.formats import CSR, Bitmask, BlockSparse, Dense, Format, NMPacked, build
from sparsetorch.kernels.module import SparseLinear

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
    "use_backend",
]
