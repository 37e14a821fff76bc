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


def compiled_lenet(fmt: str, path, *, seed: int = 1):
    """A LeNet-300-100 pruned (2:4 for N:M formats, else 50 % unstructured), compiled to `fmt`, saved."""
    import sparsetorch as st
    from sparsetorch.kernels import compile, save_compiled

    model = st.create_model("lenet-300-100", seed=seed)
    if ":" in fmt:
        st.prune(model, "magnitude", pattern=fmt, sparsity=None)
    else:
        st.prune(model, "magnitude", sparsity=0.5)
    compile(model, formats=fmt, use_cache=False, batch=1)
    save_compiled(model, path)
    return model


def rewrite_checkpoint(src, dst, *, tensors=None, header=None) -> None:
    """Copy safetensors file `src` to `dst` after `tensors(dict)` / `header(dict)` edit it in place.

    The checksum is recomputed: the result is a crafted file, as a user could write, so only the
    loader's own checks stand between it and the kernels.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from sparsetorch._io import DIGEST_KEY, tensor_digest

    data = load_file(str(src))
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    if tensors is not None:
        tensors(data)
    if header is not None:
        header(meta)
    if DIGEST_KEY in meta:
        meta[DIGEST_KEY] = tensor_digest(data)
    save_file(data, str(dst), metadata=meta)


def state_of(model) -> dict[str, object]:
    """Everything a failed load must leave as it was: module types, masks, state_dict values."""
    from sparsetorch.masks import get_masks

    return {
        "types": {n: type(m).__name__ for n, m in model.named_modules()},
        "masks": {k: v.clone() for k, v in get_masks(model).items()},
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def same_state(a: dict, b: dict) -> bool:
    return (
        a["types"] == b["types"]
        and a["masks"].keys() == b["masks"].keys()
        and all(torch.equal(a["masks"][k], b["masks"][k]) for k in a["masks"])
        and a["state"].keys() == b["state"].keys()
        and all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    )
