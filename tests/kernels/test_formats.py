"""Formats: lossless round trips, exact byte counts, and clear errors for masks that do not fit."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetorch.kernels import formats as F
from sparsetorch.kernels import validate as V
from tests.kernels.kernels_testutil import random_layer

SHAPES = st.tuples(st.integers(1, 70), st.integers(1, 90))


def _roundtrip(fmt: F.Format, weight: torch.Tensor, mask: torch.Tensor) -> None:
    V.validate(fmt)
    assert torch.equal(fmt.to_dense(), torch.where(mask, weight, 0.0))
    assert torch.equal(fmt.mask(), mask)
    assert torch.equal(fmt.to_dense().flatten()[fmt.positions()], fmt.stored_values())
    rebuilt = V.from_tensors(fmt.meta(), fmt.tensors())
    assert torch.equal(rebuilt.to_dense(), fmt.to_dense())


@settings(max_examples=25, deadline=None)
@given(shape=SHAPES, sparsity=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
def test_unstructured_round_trip(shape, sparsity):
    weight, mask = random_layer(*shape, sparsity=sparsity)
    for fmt in (
        F.Bitmask.from_dense(weight, mask),
        F.CSR.from_dense(weight, mask),
        F.CSR.from_dense(weight, mask, index_bits=32),
        F.Dense.from_dense(weight, mask),
    ):
        _roundtrip(fmt, weight, mask)


@settings(max_examples=20, deadline=None)
@given(
    out=st.integers(1, 40),
    groups=st.integers(1, 20),
    nm=st.sampled_from([(2, 4), (1, 4), (4, 8), (2, 8), (3, 16)]),
)
def test_nm_round_trip(out, groups, nm):
    n, m = nm
    weight, mask = random_layer(out, groups * m, kind="nm", n=n, m=m)
    _roundtrip(F.NMPacked.from_dense(weight, mask, n=n, m=m), weight, mask)


def test_nm_with_fewer_kept_pads_and_keeps_the_mask():
    weight, mask = random_layer(8, 16, kind="nm")
    mask[0, :4] = False  # a group with nothing kept
    mask[1, 4:8] = torch.tensor([False, True, False, False])
    fmt = F.NMPacked.from_dense(weight, mask)
    assert fmt.pad.numel() == 3
    _roundtrip(fmt, weight, mask)


@pytest.mark.parametrize(("bh", "bw"), [(4, 16), (1, 1), (3, 5)])
def test_block_round_trip(bh, bw):
    weight, mask = random_layer(6 * bh, 7 * bw, kind="block", bh=bh, bw=bw, sparsity=0.6)
    _roundtrip(F.BlockSparse.from_dense(weight, mask, bh=bh, bw=bw), weight, mask)


def test_byte_counts_are_exact():
    out, inp = 64, 200
    weight, mask = random_layer(out, inp, sparsity=0.9)
    nnz = int(mask.sum())
    assert F.Bitmask.from_dense(weight, mask).nbytes == out * math.ceil(inp / 16) * 2 + 4 * (nnz + 16) + 4 * (
        out + 1
    )
    assert F.CSR.from_dense(weight, mask).nbytes == 2 * nnz + 4 * (nnz + 16) + 4 * (out + 1)
    assert F.CSR.from_dense(weight, mask, index_bits=32).nbytes == 4 * nnz + 4 * (nnz + 16) + 4 * (out + 1)
    w24, m24 = random_layer(out, 256, kind="nm")
    fmt = F.NMPacked.from_dense(w24, m24)
    assert fmt.nbytes == 4 * out * 128 + out * 128 * 2 // 8  # fp32 values + 2-bit positions
    w48, m48 = random_layer(out, 256, kind="nm", n=4, m=8)
    assert F.NMPacked.from_dense(w48, m48, n=4, m=8).nbytes == 4 * out * 128 + out * 128 * 4 // 8
    assert F.Dense.from_dense(weight, mask).nbytes == 4 * out * inp + math.ceil(out * inp / 8)


def test_bitmask_is_smallest_at_90_percent_and_csr16_at_99():
    weight, mask = random_layer(256, 512, sparsity=0.9)
    assert F.Bitmask.from_dense(weight, mask).nbytes < F.CSR.from_dense(weight, mask).nbytes
    weight, mask = random_layer(256, 512, sparsity=0.99)
    assert F.CSR.from_dense(weight, mask).nbytes < F.Bitmask.from_dense(weight, mask).nbytes


def test_formats_that_do_not_fit_raise():
    weight, mask = random_layer(8, 16, sparsity=0.3)
    with pytest.raises(ValueError, match="not 2:4"):
        F.NMPacked.from_dense(weight, mask)
    with pytest.raises(ValueError, match="divisible"):
        F.NMPacked.from_dense(torch.randn(4, 10), None)
    with pytest.raises(ValueError, match="block-structured"):
        F.BlockSparse.from_dense(weight, mask, bh=4, bw=4)
    with pytest.raises(ValueError, match="divisible"):
        F.BlockSparse.from_dense(weight, mask, bh=3, bw=4)
    assert V.fits("nm", mask) is not None and V.fits("bitmask", mask) is None
    with pytest.raises(ValueError, match="65536"):
        F.CSR.from_dense(torch.zeros(1, 70000), None, index_bits=16)


def test_wrong_dtype_device_shape_raise():
    with pytest.raises(TypeError, match="float32"):
        F.Bitmask.from_dense(torch.randn(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="CPU"):
        F.CSR.from_dense(torch.empty(4, 4, device="meta"))
    with pytest.raises(ValueError, match="2-D"):
        F.CSR.from_dense(torch.randn(4))
    with pytest.raises(ValueError, match="mask shape"):
        F.CSR.from_dense(torch.randn(4, 4), torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown format"):
        V.build("coo", torch.randn(4, 4))


def test_validate_catches_corruption():
    weight, mask = random_layer(16, 40)
    fmt = F.CSR.from_dense(weight, mask, index_bits=32)
    bad = dict(fmt.tensors())
    bad["cols"] = bad["cols"].clone()
    bad["cols"][0] = 1000
    with pytest.raises(ValueError, match="out of range"):
        V.from_tensors(fmt.meta(), bad)
    bm = F.Bitmask.from_dense(weight, mask)
    bad = dict(bm.tensors())
    bad["row_ptr"] = bad["row_ptr"].flip(0).contiguous()
    with pytest.raises(ValueError, match="corrupt"):
        V.from_tensors(bm.meta(), bad)
    with pytest.raises(ValueError, match="unknown format"):
        V.from_tensors({"format": "nope"}, {})
