"""Papers on the connections axis: which weights exist (pruning, sparse training, N:M, search).

Data only: `sparsetorch.papers.catalog` registers these entries. Claims are drawn from the abstracts
in `papers.md`; see `sparsetorch.papers.base` for the fields.
"""

from __future__ import annotations

from datetime import date

from sparsetorch.papers import (
    bdwp,
    cts,
    dass,
    dsnot,
    g2gnet,
    granet,
    icbs,
    random_pruning,
    random_search_nas,
    rigl,
    sparse_ift,
    sparse_model_soups,
    sr_ste,
    turbo_vbi,
    wgsef,
)
from sparsetorch.papers.base import Axis, Paper

CATALOG: tuple[Paper, ...] = (
    Paper(
        index=2,
        key="g2gnet",
        title="Neuro-inspired Ensemble-to-Ensemble Communication Primitives for Sparse and Efficient ANNs",
        date=date(2025, 8, 19),
        axis=Axis.CONNECTIONS,
        claim=(
            "G2GNet's sparse, modular ensemble-to-ensemble connectivity with dynamic sparse training and "
            "Hebbian rewiring reaches up to 75% sparsity while improving accuracy by up to 4.3% over dense "
            "baselines on Fashion-MNIST, CIFAR-10 and CIFAR-100."
        ),
        modules=("sparsetorch.training.g2gnet",),
        reproduce=g2gnet.reproduce,
    ),
    Paper(
        index=11,
        key="icbs",
        title="Scalable iterative pruning of large language and vision models using block coordinate descent",
        date=date(2024, 11, 26),
        axis=Axis.CONNECTIONS,
        claim=(
            "Solving the Combinatorial Brain Surgeon problem iteratively on blocks of weights by block "
            "coordinate descent (iCBS) reaches higher performance than Wanda at the same density on large "
            "models such as Mistral and DeiT, trading extra compute for quality."
        ),
        modules=("sparsetorch.pruning.icbs",),
        reproduce=icbs.reproduce,
    ),
    Paper(
        index=14,
        key="turbo-vbi",
        title="Structured Bayesian Compression for Deep Neural Networks Based on The Turbo-VBI Approach",
        date=date(2023, 2, 21),
        axis=Axis.CONNECTIONS,
        claim=(
            "A three-layer hierarchical prior solved by Turbo-VBI prunes networks into regular per-neuron "
            "weight-level and neuron-level structured sparsity, with better compression rate and accuracy "
            "than the baselines."
        ),
        modules=("sparsetorch.training.turbo_vbi",),
        reproduce=turbo_vbi.reproduce,
    ),
    Paper(
        index=15,
        key="dsnot",
        title="Dynamic Sparse No Training: Training-Free Fine-tuning for Sparse LLMs",
        date=date(2023, 10, 13),
        axis=Axis.CONNECTIONS,
        claim=(
            "Training-free iterative pruning-and-growing that minimizes the reconstruction error between "
            "dense and sparse LLMs improves sparse LLMs without backpropagation, e.g. beating Wanda by 26.79 "
            "perplexity at 70% sparsity on LLaMA-7B."
        ),
        modules=("sparsetorch.pruning.dsnot",),
        reproduce=dsnot.reproduce,
    ),
    Paper(
        index=16,
        key="bdwp",
        title="Efficient N:M Sparse DNN Training Using Algorithm, Architecture, and Dataflow Co-Design",
        date=date(2023, 9, 22),
        axis=Axis.CONNECTIONS,
        claim=(
            "Bidirectional N:M weight pruning in the forward and backward passes, run on the SAT accelerator "
            "at 2:8 sparsity, speeds up training 1.75x on average over dense training with an average "
            "accuracy loss of 0.56%."
        ),
        modules=("sparsetorch.training.bdwp",),
        reproduce=bdwp.reproduce,
    ),
    Paper(
        index=19,
        key="sparse-model-soups",
        title="Sparse Model Soups: A Recipe for Improved Pruning via Model Averaging",
        date=date(2023, 6, 29),
        axis=Axis.CONNECTIONS,
        claim=(
            "Averaging IMP retraining runs that share one sparse mask, and starting each prune-retrain cycle "
            "from that average (SMS), preserves sparsity and improves generalization and out-of-distribution "
            "performance over the individual models and over plain IMP."
        ),
        modules=("sparsetorch.training.soups",),
        reproduce=sparse_model_soups.reproduce,
    ),
    Paper(
        index=22,
        key="teddy",
        title="TEDDY: Trimming Edges with Degree-based Discrimination strategY",
        date=date(2024, 2, 2),
        axis=Axis.CONNECTIONS,
        claim=(
            "One-shot degree-based edge sparsification followed by projected gradient descent on the ell_0 "
            "ball finds graph lottery tickets within a single training run that generalize better than those "
            "of iterative approaches."
        ),
    ),
    Paper(
        index=24,
        key="sparse-dynamics-control",
        title="Model-Based Control with Sparse Neural Dynamics",
        date=date(2023, 12, 20),
        axis=Axis.CONNECTIONS,
        claim=(
            "Gradually removing redundant neurons from a ReLU dynamics model with minimal loss of prediction "
            "accuracy makes mixed-integer predictive control efficient and yields better closed-loop "
            "performance than state-of-the-art methods."
        ),
    ),
    Paper(
        index=27,
        key="random-pruning",
        title=(
            "The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for Sparse "
            "Training"
        ),
        date=date(2022, 2, 5),
        axis=Axis.CONNECTIONS,
        claim=(
            "Sparse training of a randomly pruned network from scratch, with pre-chosen layer-wise sparsity "
            "ratios, matches its dense equivalent as networks grow wider and deeper even at high sparsity, "
            "and a randomly pruned Wide ResNet-50 outperforms the dense one on ImageNet."
        ),
        modules=("sparsetorch.training.random_pruning",),
        reproduce=random_pruning.reproduce,
    ),
    Paper(
        index=33,
        key="granet",
        title="Sparse Training via Boosting Pruning Plasticity with Neuroregeneration",
        date=date(2021, 6, 18),
        axis=Axis.CONNECTIONS,
        claim=(
            "Gradual magnitude pruning with zero-cost neuroregeneration (regrowing as many connections as "
            "are pruned) improves pruning plasticity, and its sparse-to-sparse version beats dense-to-sparse "
            "methods with ResNet-50 on ImageNet without extending training time."
        ),
        modules=("sparsetorch.training.granet", "sparsetorch.training.gmp"),
        reproduce=granet.reproduce,
    ),
    Paper(
        index=40,
        key="cts",
        title="Winning the Lottery by Preserving Network Training Dynamics with Concrete Ticket Search",
        date=date(2025, 12, 7),
        axis=Axis.CONNECTIONS,
        claim=(
            "Concrete Ticket Search finds subnetworks near initialization that pass sanity checks and match "
            "or beat lottery ticket rewinding, e.g. 99.3% sparsity at 74.0% accuracy in 7.9 minutes for "
            "ResNet-20 on CIFAR-10 versus 68.3% in 95.2 minutes for LTR."
        ),
        modules=("sparsetorch.training.cts",),
        reproduce=cts.reproduce,
    ),
    Paper(
        index=46,
        key="sr-ste",
        title="Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch",
        date=date(2021, 2, 8),
        axis=Axis.CONNECTIONS,
        claim=(
            "N:M fine-grained structured sparse networks can be trained from scratch, with the "
            "sparse-refined straight-through estimator (SR-STE) correcting the approximated gradients of "
            "vanilla STE, and a 2:4 sparse network gets a 2x speed-up on A100 GPUs without performance drop."
        ),
        modules=("sparsetorch.training.sr_ste",),
        reproduce=sr_ste.reproduce,
    ),
    Paper(
        index=50,
        key="sparse-ift",
        title="Sparse Iso-FLOP Transformations for Maximizing Training Efficiency",
        date=date(2023, 3, 20),
        axis=Axis.CONNECTIONS,
        claim=(
            "Replacing dense layers with sparse iso-FLOP transformations raises accuracy at the same FLOPs, "
            "+3.5% for ResNet-18 on ImageNet and -0.4 perplexity for GPT-3 Small on WikiText-103, matching "
            "dense models that use 2x or more FLOPs."
        ),
        modules=("sparsetorch.training.sparse_ift",),
        reproduce=sparse_ift.reproduce,
    ),
    Paper(
        index=53,
        key="wgsef",
        title="Learning k-Level Structured Sparse Neural Networks Using Group Envelope Regularization",
        date=date(2022, 12, 25),
        axis=Axis.CONNECTIONS,
        claim=(
            "The weighted group sparse envelope function regularizer, trained by proximal gradient with a "
            "worst-case linear-time proximal operator, reaches a preset structured sparsity level at "
            "convergence with negligible accuracy loss or even gains, reducing inference latency."
        ),
        modules=("sparsetorch.training.wgsef",),
        reproduce=wgsef.reproduce,
    ),
    Paper(
        index=4,
        key="random-search-nas",
        title="Random Search as a Baseline for Sparse Neural Network Architecture Search",
        date=date(2024, 3, 13),
        axis=Axis.CONNECTIONS,
        claim=(
            "Sparse subnetworks found by random search over the nodes of an overparameterized network "
            "neither perform better nor converge faster than random sparse networks at the same sparsity, "
            "while even highly sparse networks keep much of the dense performance."
        ),
        modules=("sparsetorch.search.space", "sparsetorch.search.random_search"),
        reproduce=random_search_nas.reproduce,
    ),
    Paper(
        index=20,
        key="dass",
        title="DASS: Differentiable Architecture Search for Sparse neural networks",
        date=date(2022, 7, 14),
        axis=Axis.CONNECTIONS,
        claim=(
            "Searching architectures with sparse SparseConv/SparseLinear operations and a sparsity-aware "
            "objective raises the accuracy of sparse MobileNet-v2 from 73.44% to 81.35% (+7.91%) with 3.87x "
            "faster inference."
        ),
        modules=("sparsetorch.search.space", "sparsetorch.search.dass"),
        reproduce=dass.reproduce,
    ),
    Paper(
        index=54,
        key="rigl",
        title="Rigging the Lottery: Making All Tickets Winners",
        date=date(2019, 11, 25),
        axis=Axis.CONNECTIONS,
        claim=(
            "Dynamic sparse training that drops the smallest weights and regrows those with the largest "
            "gradient (RigL) beats SET and static sparse training at the same sparsity and training cost, "
            "e.g. a 90%-sparse ERK ResNet-50 on ImageNet."
        ),
        modules=("sparsetorch.training.rigl", "sparsetorch.papers.rigl"),
        reproduce=rigl.reproduce,
        entry_points=("training:rigl",),
        seed=False,  # a reference reproduction beside the 53 seed papers
    ),
)
