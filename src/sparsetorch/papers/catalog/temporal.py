"""Papers on the time axis: which steps carry events (spiking neurons, spike-based learning, dynamics).

Data only: `sparsetorch.papers.catalog` registers these entries. Claims are drawn from the abstracts
in `papers.md`; see `sparsetorch.papers.base` for the fields.
"""

from __future__ import annotations

from datetime import date

from sparsetorch.papers.base import Axis, Paper

CATALOG: tuple[Paper, ...] = (
    Paper(
        index=8,
        key="ultralif",
        title=(
            "UltraLIF: Fully Differentiable Spiking Neural Networks via Ultradiscretization and Max-Plus "
            "Algebra"
        ),
        date=date(2026, 2, 10),
        axis=Axis.TIME,
        claim=(
            "Replacing surrogate gradients with a log-sum-exp (max-plus ultradiscretization) relaxation of "
            "LIF dynamics gives fully differentiable spiking networks that beat surrogate-gradient baselines "
            "on six benchmarks, most at a single timestep (T=1), while an optional sparsity penalty cuts "
            "energy at competitive accuracy."
        ),
    ),
    Paper(
        index=18,
        key="sltt",
        title="Towards Memory- and Time-Efficient Backpropagation for Training Spiking Neural Networks",
        date=date(2023, 2, 28),
        axis=Axis.TIME,
        claim=(
            "Dropping the temporal routes of backpropagation through time (SLTT) trains spiking networks to "
            "state-of-the-art ImageNet accuracy while reducing memory by more than 70% and training time by "
            "more than 50% compared with BPTT."
        ),
    ),
    Paper(
        index=26,
        key="elm-neuron",
        title=(
            "The Expressive Leaky Memory Neuron: an Efficient and Expressive Phenomenological Neuron Model "
            "Can Solve Long-Horizon Tasks"
        ),
        date=date(2023, 6, 14),
        axis=Axis.TIME,
        claim=(
            "The Expressive Leaky Memory neuron matches a detailed cortical neuron's input-output "
            "relationship with under ten thousand parameters, outperforms Transformers and Chrono-LSTM on "
            "Long Range Arena, and solves Pathfinder-X (16k context) with over 70% accuracy."
        ),
    ),
    Paper(
        index=28,
        key="spikingbrain",
        title="SpikingBrain Technical Report: Spiking Brain-inspired Large Models",
        date=date(2025, 9, 5),
        axis=Axis.TIME,
        claim=(
            "Linear and hybrid-linear attention models with adaptive spiking neurons match open-source "
            "Transformer baselines with about 150B tokens of continual pre-training, give SpikingBrain-7B "
            "over 100x faster time to first token on 4M-token sequences, and their spiking scheme reaches "
            "69.15% sparsity."
        ),
    ),
    Paper(
        index=30,
        key="dynamical-intelligence",
        title="A brain basis of dynamical intelligence for AI and computational neuroscience",
        date=date(2021, 5, 15),
        axis=Axis.TIME,
        claim=(
            "A perspective arguing that sparsity in network structure and temporal dynamics (neural "
            "synchrony, nested oscillations, flexible sequences) form a computational layer that AI should "
            "take from computational neuroscience, without quantitative results."
        ),
    ),
    Paper(
        index=41,
        key="spiking-delays",
        title="Learning heterogeneous delays in a layer of spiking neurons for fast motion detection",
        date=date(2023, 7, 26),
        axis=Axis.TIME,
        claim=(
            "A layer of spiking neurons with learned heterogeneous synaptic delays, trained as a "
            "time-invariant logistic regression, detects motion in event streams and stays efficient when "
            "its weights are heavily pruned."
        ),
    ),
    Paper(
        index=42,
        key="nalsm",
        title=(
            "Increasing Liquid State Machine Performance with Edge-of-Chaos Dynamics Organized by "
            "Astrocyte-modulated Plasticity"
        ),
        date=date(2021, 10, 26),
        axis=Axis.TIME,
        claim=(
            "Astrocyte-modulated STDP that self-organizes a liquid state machine near the edge of chaos "
            "reaches 97.61% on MNIST, 97.51% on N-MNIST and 85.84% on Fashion-MNIST without data-specific "
            "tuning, comparable to backpropagation-trained fully connected spiking networks."
        ),
    ),
    Paper(
        index=51,
        key="hlop",
        title=(
            "Hebbian Learning based Orthogonal Projection for Continual Learning of Spiking Neural Networks"
        ),
        date=date(2024, 2, 19),
        axis=Axis.TIME,
        claim=(
            "Hebbian and anti-Hebbian learning on lateral connections extracts the principal subspace of "
            "neural activity so that weight updates are projected orthogonally to it, giving nearly zero "
            "forgetting in continual learning of spiking networks."
        ),
    ),
)
