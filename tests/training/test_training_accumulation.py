"""Gradient accumulation: steps count optimizer steps, growth gradients sum over micro-batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.training.training_testutil import TARGETS, batches, prepared

OPTIONS = {"update_every": 2, "end": None, "drop_fraction_anneal": "constant"}


def run(accumulate: int, *, step_every_micro_batch: bool = False, name: str = "rigl"):
    model, opt, m = prepared(name, **(OPTIONS if name == "rigl" else {}))
    opt.param_groups[0].update(momentum=0.0, weight_decay=0.0)
    for x, y in batches(6, size=16):
        for xs, ys in zip(x.chunk(accumulate), y.chunk(accumulate), strict=True):
            (F.cross_entropy(model(xs), ys) / accumulate).backward()
            if step_every_micro_batch:
                m.step()  # counts nothing until the optimizer has stepped
        opt.step()
        m.step()
        opt.zero_grad()
    return model, m


@pytest.mark.parametrize("step_every_micro_batch", [False, True])
@pytest.mark.parametrize("name", ["rigl", "granet"])
def test_accumulated_micro_batches_equal_one_batch(name, step_every_micro_batch):
    whole, m1 = run(1, name=name)
    parts, m2 = run(2, step_every_micro_batch=step_every_micro_batch, name=name)
    assert m1.step_count == m2.step_count == 6
    assert m1.stats["updates"] == m2.stats["updates"] == 3
    for f in TARGETS:
        assert torch.equal(m1.masks[f], m2.masks[f]), f
    x = torch.randn(4, 12)
    torch.testing.assert_close(whole(x), parts(x), rtol=1e-4, atol=1e-5)


def test_more_than_one_optimizer_step_per_method_step_raises():
    model, opt, m = prepared("rigl", **OPTIONS)
    for x, y in batches(2):
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with pytest.raises(RuntimeError, match="2 optimizer steps"):
        m.step()


def test_update_without_backward_raises():
    _model, opt, m = prepared("rigl", **OPTIONS)
    opt.step()
    m.step()
    opt.step()  # step 2 is an update step, but no backward pass ran through the model
    with pytest.raises(RuntimeError, match="no gradient of the effective weights"):
        m.step()
