"""Small random layers for the kernel tests."""

from __future__ import annotations

import torch

from sparsetorch.patterns import NM, select


def random_layer(
    out: int, inp: int, *, sparsity: float = 0.8, kind: str = "unstructured", seed: int = 0, **opts: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, mask) of a random layer; `kind` is unstructured, nm or block; row 1 is emptied."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, inp, generator=g)
    if kind == "nm":
        mask = select(torch.rand(out, inp, generator=g), NM(opts.get("n", 2), opts.get("m", 4)))
    elif kind == "block":
        bh, bw = opts["bh"], opts["bw"]
        tiles = torch.rand(out // bh, 1, inp // bw, 1, generator=g) > sparsity
        mask = tiles.expand(out // bh, bh, inp // bw, bw).reshape(out, inp)
    else:
        mask = torch.rand(out, inp, generator=g) > sparsity
        if out > 1:
            mask[1] = False  # an empty row
    return weight, mask
