"""Papers beside the four axes: the foundations (SDR theory, sparse coding, sparse inputs) and execution.

Data only: `sparsetorch.papers.catalog` registers these entries. Claims are drawn from the abstracts
in `papers.md`; see `sparsetorch.papers.base` for the fields.
"""

from __future__ import annotations

from datetime import date

from sparsetorch.papers import beyond_l1, sdr_dendrites, sparsey
from sparsetorch.papers.base import Axis, Paper

CATALOG: tuple[Paper, ...] = (
    Paper(
        index=1,
        key="sdr-dendrites",
        title=(
            "How do neurons operate on sparse distributed representations? A mathematical theory of "
            "sparsity, neurons and active dendrites"
        ),
        date=date(2016, 1, 4),
        axis=Axis.FOUNDATIONS,
        claim=(
            "A neuron with active dendrites recognizes patterns in high-dimensional sparse distributed "
            "representations extremely accurately and robustly with a tiny number of synapses per pattern, "
            "synapses for many patterns can be mixed on one segment (the union property), and the derived "
            "accuracy equations predict optimal NMDA spiking thresholds that match measured ones."
        ),
        modules=(
            "sparsetorch.sdr.sdr",
            "sparsetorch.sdr.theory",
            "sparsetorch.sdr.simulate",
            "sparsetorch.sdr.dendrite",
        ),
        reproduce=sdr_dendrites.reproduce,
        entry_points=(
            "sparsetorch.sdr.theory:false_match_probability",
            "sparsetorch.sdr.dendrite:ActiveDendrites",
        ),
    ),
    Paper(
        index=9,
        key="beyond-l1",
        title="Beyond ell_1 sparse coding in V1",
        date=date(2023, 1, 24),
        axis=Axis.FOUNDATIONS,
        claim=(
            "Sparse coding with penalties approximating ell_q (0 <= q < 1) outperforms ell_1 soft "
            "thresholding, which needs a denser code or more overcompleteness for the same reconstruction "
            "error, suggesting that V1 uses a regularizer closer to ell_0."
        ),
        modules=("sparsetorch.sdr.coding", "sparsetorch.sdr.dictionary"),
        reproduce=beyond_l1.reproduce,
        entry_points=("sparsetorch.sdr.coding:sparse_code", "sparsetorch.sdr.dictionary:learn_dictionary"),
    ),
    Paper(
        index=12,
        key="sparsessp",
        title="SparseSSP: 3D Subcellular Structure Prediction from Sparse-View Transmitted Light Images",
        date=date(2024, 7, 2),
        axis=Axis.FOUNDATIONS,
        claim=(
            "Predicting 3D subcellular fluorescence from sparse transmitted-light slices with a one-to-many "
            "voxel mapping and a 2D hybrid-dimension network outperforms pure 3D networks while reducing the "
            "number of imaging acquisitions by up to 87.5%."
        ),
    ),
    Paper(
        index=13,
        key="sparsey",
        title="Superposed Episodic and Semantic Memory via Sparse Distributed Representation",
        date=date(2017, 10, 21),
        axis=Axis.FOUNDATIONS,
        claim=(
            "Storing sparse distributed codes in superposition with a single-trial learning rule that maps "
            "input similarity to code intersection builds semantic memory as a side effect of episodic "
            "memory, learning MNIST and Weizmann in minutes on one CPU though below state-of-the-art "
            "accuracy."
        ),
        modules=("sparsetorch.sdr.sparsey",),
        reproduce=sparsey.reproduce,
        entry_points=("sparsetorch.sdr.sparsey:SparseyMac",),
    ),
    Paper(
        index=44,
        key="flightllm",
        title="FlightLLM: Efficient Large Language Model Inference with a Complete Mapping Flow on FPGAs",
        date=date(2024, 1, 8),
        axis=Axis.EXECUTION,
        claim=(
            "Mapping sparse, mixed-precision LLMs onto FPGAs with a configurable sparse DSP chain and "
            "always-on-chip decode gives 6.0x higher energy efficiency and 1.8x better cost efficiency than "
            "an NVIDIA V100S, and, on a Versal VHK158, 1.2x higher throughput than an NVIDIA A100."
        ),
    ),
)
