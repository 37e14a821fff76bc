"""SR-STE: N:M sparse networks trained from scratch with the sparse-refined straight-through estimator.

Paper key `sr-ste`: Zhou, Ma, Zhu, Liu, Zhang, Yuan, Sun and Li 2021, "Learning N:M Fine-grained
Structured Sparse Neural Networks From Scratch" (reference code NM-sparsity/NM-sparsity,
`devkit/sparse_ops/sparse_ops.py`, `Sparse.apply(w, N, M, decay)`).

Rule, for every target weight W kept dense, at every optimizer step t (see `nm`):

    mask_t = N:M of |W_t|   (n largest of every m consecutive weights along the input dimension)
    W~_t   = mask_t * W_t                                     (used in the forward pass)
    W_t+1  = W_t - lr * (dL/dW~_t + lambda_w * (~mask_t) * W_t)

The first term is the straight-through estimator (the gradient of the sparse weight applied to
the dense one); the second, the sparse refinement, decays the pruned weights so that the mask
stops flipping late in training. With momentum, weight decay or Adam the bracket is the gradient
the optimizer is given.

Defaults: `pattern="2:4"` (sparsity 0.5, implied), `decay=2e-4` (the paper's lambda_w and the
reference's default), "uniform" (every target layer N:M).

Deviations:
- N:M groups run along the input dimension (dim 1 of a Conv weight, at each kernel position), the
  layout sparse tensor cores use; the reference groups consecutive elements of the flattened NCHW
  weight, i.e. along the kernel dimensions (its README calls that out against NVIDIA ASP).
- The mask is recomputed after each optimizer step rather than inside each forward; weights change
  only at optimizer steps, so the forward passes see the same masks.
- The refinement is added once per optimizer step (a pre-step hook), not once per backward pass,
  so gradient accumulation over k micro-batches adds it once, as one large batch would.
- The default targets leave the final classifier dense (as the reference's ResNet recipe does).
"""

from __future__ import annotations

from sparsetorch.training.base import TRAINERS
from sparsetorch.training.nm import NMFromScratch


@TRAINERS.register("sr-ste")
class SRSTE(NMFromScratch):
    """N:M of |W| in the forward pass, straight-through gradient plus the sparse refinement."""

    name = "sr-ste"
    paper = "sr-ste"
