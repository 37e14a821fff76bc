"""Papers on the activations axis: which units fire (thresholds, top-k, deltas, sparse MLP codes).

Data only: `sparsetorch.papers.catalog` registers these entries. Claims are drawn from the abstracts
in `papers.md`; see `sparsetorch.papers.base` for the fields.
"""

from __future__ import annotations

from datetime import date

from sparsetorch.papers import blockffn, chess, delta_activation, lazy_neuron, transcoders
from sparsetorch.papers.base import Axis, Paper

CATALOG: tuple[Paper, ...] = (
    Paper(
        index=3,
        key="delta-activation",
        title="Training for temporal sparsity in deep neural networks, application in video processing",
        date=date(2021, 7, 15),
        axis=Axis.ACTIVATIONS,
        claim=(
            "Training with a Delta Activation Layer, which turns temporal changes of activations into "
            "spatial activation sparsity, improves activation sparsity almost 3x on UCF101 action "
            "recognition, with an accuracy loss that longer training recovers."
        ),
        modules=("sparsetorch.activations.delta", "sparsetorch.papers.delta_activation"),
        reproduce=delta_activation.reproduce,
    ),
    Paper(
        index=17,
        key="chess",
        title="CHESS: Optimizing LLM Inference via Channel-Wise Thresholding and Selective Sparsification",
        date=date(2024, 9, 2),
        axis=Axis.ACTIVATIONS,
        claim=(
            "Channel-wise activation thresholds in FFN layers plus selective sparsification of attention "
            "layers degrade less than existing activation sparsification over 8 downstream tasks while "
            "activating fewer parameters, speeding up LLM inference by up to 1.27x."
        ),
        modules=("sparsetorch.activations.chess", "sparsetorch.papers.chess"),
        reproduce=chess.reproduce,
    ),
    Paper(
        index=32,
        key="blockffn",
        title=(
            "BlockFFN: Towards End-Side Acceleration-Friendly Mixture-of-Experts with Chunk-Level Activation "
            "Sparsity"
        ),
        date=date(2025, 7, 11),
        axis=Axis.ACTIVATIONS,
        claim=(
            "A MoE with a ReLU-and-RMSNorm router and chunk-level-sparsity-aware training reaches over 80% "
            "token-level and 70% 8-token chunk-level sparsity, and its kernels run up to 3.67x faster than "
            "dense models on end-side devices."
        ),
        modules=("sparsetorch.activations.blockffn", "sparsetorch.papers.blockffn"),
        reproduce=blockffn.reproduce,
    ),
    Paper(
        index=43,
        key="lazy-neuron",
        title="The Lazy Neuron Phenomenon: On Emergence of Activation Sparsity in Transformers",
        date=date(2022, 10, 12),
        axis=Axis.ACTIVATIONS,
        claim=(
            "Post-ReLU MLP activations of trained Transformers are sparse (e.g. 3.0% nonzero for T5-Base and "
            "6.3% for ViT-B16), sparser in larger models and even with random labels or inputs, and "
            "enforcing top-k sparsity lowers sensitivity to noisy training data, improves robustness to "
            "input corruption and improves calibration."
        ),
        modules=(
            "sparsetorch.activations.topk",
            "sparsetorch.activations.stats",
            "sparsetorch.papers.lazy_neuron",
        ),
        reproduce=lazy_neuron.reproduce,
    ),
    Paper(
        index=52,
        key="transcoders",
        title="Transcoders Find Interpretable LLM Feature Circuits",
        date=date(2024, 6, 17),
        axis=Axis.ACTIVATIONS,
        claim=(
            "Wide, sparsely activating transcoders trained to approximate the dense MLP layers of 120M to "
            "1.4B parameter language models perform at least on par with sparse autoencoders in sparsity, "
            "faithfulness and interpretability, and enable weights-based circuit analysis."
        ),
        modules=("sparsetorch.sdr.transcoder", "sparsetorch.sdr.mlp_hooks", "sparsetorch.papers.transcoders"),
        reproduce=transcoders.reproduce,
        entry_points=("sparsetorch.sdr.transcoder:Transcoder", "sparsetorch.sdr.transcoder:train_transcoder"),
    ),
)
