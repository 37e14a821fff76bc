"""Issue 16: calibration statistics that overflow, and prune arguments that must be refused.

Every refusal leaves the model exactly as it was (weights and masks): `prune` is a transaction.
"""

import numpy as np
import pytest
import torch
from torch import nn

import sparsetorch as st
from sparsetorch.patterns import keep_top, n_pruned
from sparsetorch.pruning import LayerStats


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, st.get_masks(model)


def unchanged(model, before):
    state, masks = before
    now = st.get_masks(model)
    same_masks = now.keys() == masks.keys() and all(torch.equal(now[k], masks[k]) for k in masks)
    after = model.state_dict()
    return after.keys() == state.keys() and same_masks and all(torch.equal(state[k], after[k]) for k in state)


def lenet():
    return st.create_model("lenet-300-100", seed=1)


def images(scale=1.0, n=256):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * scale


def stack(bias=False):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(32, 64, bias=bias), nn.ReLU(), nn.Linear(64, 32, bias=bias), nn.ReLU(), nn.Linear(32, 4)
    )


def rows(scale=1.0, n=128):
    return torch.randn(n, 32, generator=torch.Generator().manual_seed(2)) * scale


def float64_wanda_masks(model, x, fqns, sparsity):
    """Wanda masks computed entirely in float64 from the unpruned model's layer inputs."""
    ref = st.create_model("lenet-300-100", seed=1).double()
    inputs = {}
    hooks = [
        ref.get_submodule(f.rpartition(".")[0]).register_forward_hook(
            lambda mod, args, out, f=f: inputs.__setitem__(f, args[0].reshape(-1, args[0].shape[-1]))
        )
        for f in fqns
    ]
    with torch.no_grad():
        ref(x.double())
    for h in hooks:
        h.remove()
    masks = {}
    for f in fqns:
        weight = ref.get_submodule(f.rpartition(".")[0]).weight.detach()
        scores = weight.abs() * inputs[f].pow(2).sum(0).sqrt()
        masks[f] = keep_top(scores, weight.shape[1] - n_pruned(weight.shape[1], sparsity), dim=1)
    return masks


# --- defect 4: calibration statistics overflow in fp32 ------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e19, 1e20])
def test_wanda_on_huge_inputs_matches_a_float64_reference(scale):
    """Reproducer: inputs * 1e20 kept the first 392 columns of every row with a NaN error."""
    model = lenet()
    x = images(scale)
    rep = st.prune(model, "wanda", sparsity=0.5, calibration=x)
    masks = st.get_masks(model)
    reference = float64_wanda_masks(model, x, list(masks), 0.5)
    for fqn, mask in masks.items():
        assert torch.equal(mask, reference[fqn]), (fqn, int((mask != reference[fqn]).sum()))
    assert not masks["fc1.weight"][:, :392].all()
    assert all(r.error is not None and np.isfinite(r.error) for r in rep.layers)


@pytest.mark.parametrize("scale", [2.0**66, 2.0**-100])
@pytest.mark.parametrize("method", ["sparsegpt", "icbs"])
def test_hessian_methods_are_scale_invariant_on_extreme_inputs(method, scale):
    """X^T X of inputs * 2^66 overflows fp32 (* 2^-100 underflows to 0); a power-of-two scale of
    the statistics gives the very same result as unscaled inputs."""
    small, huge = stack(), stack()
    kw = {"iterations": 1} if method == "icbs" else {}
    rep_small = st.prune(small, method, sparsity=0.5, calibration=rows(), **kw)
    rep_huge = st.prune(huge, method, sparsity=0.5, calibration=rows(scale), **kw)
    for fqn, mask in st.get_masks(small).items():
        assert torch.equal(mask, st.get_masks(huge)[fqn]), fqn
    assert [r.error for r in rep_small.layers] == pytest.approx([r.error for r in rep_huge.layers])
    assert all(np.isfinite(r.error) for r in rep_huge.layers)


@pytest.mark.parametrize("method", ["sparsegpt", "icbs", "dsnot", "wanda"])
def test_inputs_times_1e20_give_finite_results(method):
    model = stack(bias=True)
    kw = {"iterations": 1} if method == "icbs" else {}
    rep = st.prune(model, method, sparsity=0.5, calibration=rows(1e20), **kw)
    assert all(np.isfinite(r.error) for r in rep.layers)
    assert rep.report.params - rep.report.nonzeros == n_pruned(rep.report.params, 0.5)
    assert torch.isfinite(model(rows())).all()


def test_layer_stats_scale_only_extreme_inputs():
    x = rows()
    stats = LayerStats(32)
    stats.update(x)
    assert stats.xtx_shift == 0 and torch.equal(stats.xtx, x.T @ x)  # ordinary inputs: as before
    largest = x / x.abs().max() * 3e38  # finite in fp32, squares far beyond it
    for big, later in [(x * 1e20, x), (x * 1e-30, x), (largest, x), (x * 1e-30, x * 1e-25), (x, x * 1e30)]:
        stats = LayerStats(32)
        stats.update(big)
        stats.update(later)  # a later batch at another scale joins the common power-of-two scale
        assert all(torch.isfinite(t).all() for t in (stats.xtx, stats.norm, stats.var, stats.sq_sum))
        exact = big.double().T @ big.double() + later.double().T @ later.double()
        got = stats.xtx.double() * 4.0**stats.xtx_shift
        assert torch.allclose(got, exact, rtol=1e-4, atol=1e-5 * exact.abs().max().item())


def _stats_before_the_fix(batches, columns):
    """`LayerStats.update` as it was before the overflow fix: fp32 inputs, fp32 squares, fp64 sums."""
    total = torch.zeros(columns, dtype=torch.float64)
    sq_sum = torch.zeros(columns, dtype=torch.float64)
    xtx = torch.zeros(columns, columns)
    for x in batches:
        x = x.float()
        total += x.sum(0, dtype=torch.float64)
        sq_sum += x.pow(2).sum(0, dtype=torch.float64)
        xtx.addmm_(x.T, x)
    return total, sq_sum, xtx


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("scale", [1e-6, 1e-2, 1.0, 1e3, 1e8])
def test_ordinary_inputs_give_the_statistics_of_before_the_fix_bit_for_bit(dtype, scale):
    """The overflow fix must not perturb ordinary inputs (a near-tie in Wanda's ranking could flip)."""
    if dtype == torch.float16 and not 1e-2 <= scale <= 1e3:
        pytest.skip("beyond float16's range")
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randn(n, 48, generator=gen) * scale).to(dtype) for n in (64, 1, 200)]
    stats = LayerStats(48)
    for x in batches:
        stats.update(x)
    total, sq_sum, xtx = _stats_before_the_fix(batches, 48)
    assert stats.xtx_shift == 0 and stats.rows == 265
    assert torch.equal(stats.total, total) and torch.equal(stats.sq_sum, sq_sum)
    assert torch.equal(stats.xtx, xtx)
    assert torch.equal(stats.norm, sq_sum.sqrt().float())


class _Scaled(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.fc, self.scale = nn.Linear(16, 16), scale

    def forward(self, x):
        return self.fc(x) * self.scale


class _Blocks(nn.Module):
    """Two blocks; the first multiplies its output by 1e200 (finite in float64)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([_Scaled(1e200), _Scaled(1.0)])
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.blocks[1](self.blocks[0](x)))


def test_activations_beyond_float32_raise_and_restore_earlier_blocks():
    """A float64 model whose second block sees 1e200: a clear error, and block 0 is restored."""
    torch.manual_seed(0)
    model = _Blocks().double()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"blocks\.1\.fc\.weight.*beyond the float32 range"):
        st.prune(model, "wanda", sparsity=0.5, calibration=torch.randn(32, 16, dtype=torch.float64))
    assert unchanged(model, before)


def test_infinite_inputs_raise_and_model_unchanged():
    model = lenet()
    before = snapshot(model)
    with pytest.raises(ValueError, match="NaN or Inf"):
        st.prune(model, "wanda", sparsity=0.5, calibration=images(1e39))  # overflows to inf in fp32
    assert unchanged(model, before)


# --- defect 7: argument validation --------------------------------------------------------------

BAD = [
    ({"sparsity": 0.9999999}, ValueError, r"sparsity=0\.9999999 .*every weight of fc1\.weight"),
    (
        {"sparsity": 0.999, "pattern": "channel"},
        ValueError,
        r"sparsity=0\.999 .*every channel of fc1\.weight",
    ),
    ({"sparsity": 0.999, "pattern": "channel:1"}, ValueError, r"every slice along dim 1 of fc2\.weight"),
    ({"sparsity": 0.9999, "pattern": "block4x4"}, ValueError, r"every 4x4 block of fc2\.weight"),
    ({"method": "wanda", "sparsity": 0.999}, ValueError, r"every weight in each row of fc2\.weight"),
    ({"sparsity": False}, ValueError, r"sparsity must be a number in \[0, 1\), got False"),
    ({"sparsity": True}, ValueError, r"got True"),
    ({"sparsity": float("nan")}, ValueError, r"got nan"),
    ({"targets": []}, ValueError, r"targets=\[\] matches nothing"),
    ({"targets": ()}, ValueError, r"targets=\[\] matches nothing"),
    ({"targets": iter([])}, ValueError, r"targets=\[\] matches nothing"),
    ({"targets": 5}, TypeError, r"targets must be a glob string or a list of them, got 5"),
    ({"targets": ["fc1", 3]}, TypeError, r"targets must be"),
    ({"ignore": 1.5}, TypeError, r"ignore must be"),
    ({"seed": "x"}, TypeError, r"seed must be an integer, got 'x'"),
    ({"seed": 1.5}, TypeError, r"seed must be an integer"),
    ({"seed": True}, TypeError, r"seed must be an integer"),
    ({"seed": 2**70}, ValueError, r"seed must be in"),
    ({"method": "random", "seed": "x"}, TypeError, r"seed"),
]


@pytest.mark.parametrize("prepruned", [False, True])
@pytest.mark.parametrize(("kwargs", "error", "message"), BAD)
def test_bad_arguments_raise_and_leave_model_unchanged(kwargs, error, message, prepruned):
    model = lenet()
    if prepruned:
        st.prune(model, "magnitude", sparsity=0.3)
    before = snapshot(model)
    kwargs = {"method": "magnitude", **kwargs}
    if kwargs["method"] == "wanda":
        kwargs["calibration"] = images(n=16)
    with pytest.raises(error, match=message):
        st.prune(model, **kwargs)
    assert unchanged(model, before)


def test_global_allocation_that_empties_a_layer_is_refused():
    model = stack()
    with torch.no_grad():
        model[0].weight.mul_(1e-6)  # the whole first layer scores below everything else
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"every weight of 0\.weight"):
        st.prune(model, "magnitude", sparsity=0.7, distribution="global")
    assert unchanged(model, before)


def test_integer_like_seeds_and_the_largest_sparsity_still_work():
    a, b = lenet(), lenet()
    st.prune(a, "random", sparsity=0.5, seed=np.int64(3))
    st.prune(b, "random", sparsity=0.5, seed=3)
    assert all(torch.equal(m, st.get_masks(b)[f]) for f, m in st.get_masks(a).items())
    model = lenet()
    rep = st.prune(
        model, "magnitude", sparsity=299 / 300, pattern="channel", targets="fc1.weight"
    )  # one channel of fc1 left
    assert int(st.get_masks(model)["fc1.weight"].any(1).sum()) == 1
    assert rep.sparsity < 1.0


def test_select_and_allocation_refuse_bool_sparsity():
    from sparsetorch import allocation
    from sparsetorch.patterns import select

    with pytest.raises(ValueError, match="got False"):
        select(torch.randn(4, 4), "unstructured", False)
    with pytest.raises(ValueError, match="got False"):
        select(torch.randn(4, 4), "2:4", False)
    with pytest.raises(ValueError, match="got False"):
        allocation.uniform({"a": (4, 4)}, False)
