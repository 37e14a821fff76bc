"""Test helpers for the methods that `training_testutil.FAST` does not list: pruning at
initialization (which needs a calibration batch), N:M from scratch and IMP.

`method` and `prepared` accept every registered method: the others go to `training_testutil`.
"""

from __future__ import annotations

from sparsetorch.training import TRAINERS
from tests.training import training_testutil
from tests.training.training_testutil import FAST, SPARSITY, TOTAL, batches, net

PAI = ("snip", "grasp", "synflow", "cts")  # masks from a calibration batch at prepare, fixed afterwards
NM_METHODS = ("sr-ste", "bdwp")  # dense weights, N:M masks recomputed every step
# Tiny settings; 1:4 keeps 3 of every 4, i.e. SPARSITY, so the contract's counts hold for N:M too.
EXTRA_FAST = {
    "snip": {},
    "grasp": {},
    "synflow": {"iterations": 10},
    "cts": {"iterations": 10, "batch_size": 8},
    "sr-ste": {"pattern": "1:4"},
    "bdwp": {"pattern": "1:4"},
    "imp": {"prune_fraction": 0.3, "rewind": 1},  # 4 rounds: prune after steps 3, 5, 7 and 9
    "g2gnet": {"update_every": 2},  # default 0.75 = SPARSITY; window 20 covers every step
    "wgsef": {"end": 8},  # prox after steps 1-7, rows fixed at step 8
    "turbo-vbi": {"update_every": 2, "end": 8},  # GMP's cubic schedule, masks by posterior support
}


def calibration(seed: int = 99, size: int = 16):
    """A labelled batch for the pruning-at-initialization scores."""
    return batches(1, seed=seed, size=size)[0]


def method(name: str, **overrides):
    if name in FAST:
        return training_testutil.method(name, **overrides)
    config = {**EXTRA_FAST[name], **overrides}
    if name not in NM_METHODS:  # an N:M pattern implies its sparsity
        config = {"sparsity": SPARSITY, **config}
    return TRAINERS.get(name)(**config)


def optimizer_for(model, opt: str = "sgd"):
    import torch

    if opt == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    if opt == "adam":
        return torch.optim.Adam(model.parameters(), lr=0.01)
    return torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1, amsgrad=True)


def prepared(name: str, *, model_seed: int = 0, opt: str = "sgd", **overrides):
    """`training_testutil.prepared` for every registered method (PaI gets `calibration()`)."""
    if name in FAST:
        return training_testutil.prepared(name, model_seed=model_seed, opt=opt, **overrides)
    model = net(model_seed)
    optimizer = optimizer_for(model, opt)
    m = method(name, **overrides)
    data = {"data": calibration()} if name in PAI else {}
    m.prepare(model, optimizer, total_steps=TOTAL, **data)
    return model, optimizer, m
