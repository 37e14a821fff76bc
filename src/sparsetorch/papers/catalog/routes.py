"""Papers on the routes axis: which experts, tokens, channels, keys, adapters or models are computed.

Data only: `sparsetorch.papers.catalog` registers these entries. Claims are drawn from the abstracts
in `papers.md`; see `sparsetorch.papers.base` for the fields.
"""

from __future__ import annotations

from datetime import date

from sparsetorch.papers import graph_of_tokens_moe, language_family_moe, magnet
from sparsetorch.papers import roma as roma_paper
from sparsetorch.papers import ssr as ssr_paper
from sparsetorch.papers.base import Axis, Paper

CATALOG: tuple[Paper, ...] = (
    Paper(
        index=5,
        key="sparsed",
        title="SparseD: Sparse Attention for Diffusion Language Models",
        date=date(2025, 9, 28),
        axis=Axis.ROUTES,
        claim=(
            "Reusing head-specific sparse attention patterns computed once, with full attention only in the "
            "early denoising steps, accelerates diffusion language models losslessly, up to 1.50x over "
            "FlashAttention at 64k context with 1,024 denoising steps."
        ),
    ),
    Paper(
        index=6,
        key="dtr",
        title="Denoising Task Routing for Diffusion Models",
        date=date(2023, 10, 10),
        axis=Axis.ROUTES,
        claim=(
            "Routing each denoising timestep through a sliding window of task-specific channels, with more "
            "channels at higher timesteps, consistently improves diffusion models and speeds up their "
            "convergence without adding parameters."
        ),
    ),
    Paper(
        index=7,
        key="brain-encoder",
        title="Transformer brain encoders explain human high-level visual responses",
        date=date(2025, 5, 22),
        axis=Axis.ROUTES,
        claim=(
            "Attention-based routing of retinotopic features to category-selective areas predicts brain "
            "activity during natural scene viewing significantly better than alternative encoding models, "
            "across feature basis models and modalities, with a directly interpretable routing signal."
        ),
    ),
    Paper(
        index=10,
        key="ftp",
        title="FTP: A Fine-grained Token-wise Pruner for Large Language Models via Token Routing",
        date=date(2024, 12, 16),
        axis=Axis.ROUTES,
        claim=(
            "A learnable router that skips less important tokens across blocks, with a searched sparsity "
            "schedule, beats BlockPruner and ShortGPT by about 10 points of accuracy retention on LLaMA2-7B "
            "and Qwen1.5-7B at comparable token sparsity."
        ),
    ),
    Paper(
        index=21,
        key="routing-experts-cl",
        title=(
            "Dynamic Routing Between Experts: A Data-Efficient Approach to Continual Learning in "
            "Vision-Language Models"
        ),
        date=date(2025, 11, 3),
        axis=Axis.ROUTES,
        claim=(
            "Routing between experts lets InternVL-2 (2B and 8B) learn new tasks sequentially while keeping "
            "its performance on general benchmarks such as ChartQA, MMBench and DocVQA and improving "
            "specialized tasks, without concurrent access to all task data."
        ),
    ),
    Paper(
        index=23,
        key="routing-transformer",
        title="Efficient Content-Based Sparse Attention with Routing Transformers",
        date=date(2020, 3, 12),
        axis=Axis.ROUTES,
        claim=(
            "Online k-means routing attention reduces attention complexity from O(n^2 d) to O(n^1.5 d) and "
            "beats comparable sparse attention models on Wikitext-103 (15.8 vs 18.3 perplexity) and "
            "ImageNet-64 (3.43 vs 3.44 bits/dim)."
        ),
    ),
    Paper(
        index=25,
        key="graph-of-tokens-moe",
        title="Improving Routing in Sparse Mixture of Experts with Graph of Tokens",
        date=date(2025, 5, 1),
        axis=Axis.ROUTES,
        claim=(
            "Similarity- and attention-aware routing, which makes tokens' expert choices depend on each "
            "other, provably lowers the entropy of expert selection, reducing routing fluctuations and "
            "improving accuracy and robustness over softmax-gated MoE."
        ),
        modules=("sparsetorch.routing.graph_of_tokens", "sparsetorch.models.moe_variants"),
        reproduce=graph_of_tokens_moe.reproduce,
        entry_points=("gate:similarity-aware", "gate:attention-aware"),
    ),
    Paper(
        index=29,
        key="language-family-moe",
        title=(
            "Efficiently Democratizing Medical LLMs for 50 Languages via a Mixture of Language Family Experts"
        ),
        date=date(2024, 10, 14),
        axis=Axis.ROUTES,
        claim=(
            "Applying sparse language-family expert routing only in the later layers (Post-MoE), where "
            "information flow becomes language-specific, improves the generalization of medical LLMs to "
            "other languages and scales to 50 languages without additional parameters."
        ),
        modules=("sparsetorch.routing.language_family", "sparsetorch.models.moe_variants"),
        reproduce=language_family_moe.reproduce,
        entry_points=("gate:forced-expert",),
    ),
    Paper(
        index=31,
        key="tryage",
        title="Tryage: Real-time, intelligent Routing of User Prompts to Large Language Models",
        date=date(2023, 8, 22),
        axis=Axis.ROUTES,
        claim=(
            "A perceptive router that predicts each model's performance on a prompt selects the optimal "
            "model from a library with 50.9% accuracy, versus 23.6% for GPT-3.5 Turbo and 10.8% for Gorilla."
        ),
    ),
    Paper(
        index=34,
        key="informed-routing",
        title="Informed Routing in LLMs: Smarter Token-Level Computation for Faster Inference",
        date=date(2025, 10, 10),
        axis=Axis.ROUTES,
        claim=(
            "Choosing per token whether to execute a unit or approximate it with a lightweight feature "
            "forecaster gives state-of-the-art efficiency-performance trade-offs across sparsity levels, "
            "matching fully fine-tuned baselines without final LoRA fine-tuning and cutting training time by "
            "over 50%."
        ),
    ),
    Paper(
        index=35,
        key="roma",
        title="Routing Manifold Alignment Improves Generalization of Mixture-of-Experts LLMs",
        date=date(2025, 11, 10),
        axis=Axis.ROUTES,
        claim=(
            "Fine-tuning only the routers so that each sample's routing weights move toward those of its "
            "successful neighbours in a task-embedding space narrows the 10-20% accuracy gap between "
            "existing MoE LLM routers and optimal routing."
        ),
        modules=(
            "sparsetorch.routing.roma",
            "sparsetorch.routing.oracle",
            "sparsetorch.routing.language_family",
        ),
        reproduce=roma_paper.reproduce,
        entry_points=("sparsetorch.routing.roma:finetune_routers",),
    ),
    Paper(
        index=36,
        key="magnet",
        title=(
            "Modality-Guided Mixture of Graph Experts with Entropy-Triggered Routing for Multimodal "
            "Recommendation"
        ),
        date=date(2026, 2, 24),
        axis=Axis.ROUTES,
        claim=(
            "Modality-guided graph experts with two-stage entropy-triggered routing, which moves training "
            "from coverage to specialization and prevents expert collapse, consistently improve multimodal "
            "recommendation over strong baselines."
        ),
        modules=("sparsetorch.routing.magnet",),
        reproduce=magnet.reproduce,
        entry_points=("sparsetorch.routing.magnet:EntropyTriggeredSchedule",),
    ),
    Paper(
        index=37,
        key="ssr",
        title="Selective Sinkhorn Routing for Improved Sparse Mixture of Experts",
        date=date(2025, 11, 11),
        axis=Axis.ROUTES,
        claim=(
            "Replacing auxiliary balancing losses with lightweight, selectively applied Sinkhorn "
            "optimal-transport routing gives sparse MoE faster training, higher accuracy and greater "
            "robustness to input corruption in language modeling and image classification."
        ),
        modules=("sparsetorch.routing.ssr", "sparsetorch.models.moe_gpt", "sparsetorch.models.moe_train"),
        reproduce=ssr_paper.reproduce,
        entry_points=("gate:ssr",),
    ),
    Paper(
        index=38,
        key="configurable-fm",
        title="Configurable Foundation Models: Building LLMs from a Modular Perspective",
        date=date(2024, 9, 4),
        axis=Axis.ROUTES,
        claim=(
            "LLMs can be built and used as configurable sets of bricks (emergent and customized functional "
            "modules) that support retrieval and routing, merging, updating and growing, and their FFN "
            "layers show functional neuron specialization and partitions."
        ),
    ),
    Paper(
        index=39,
        key="duo-llm",
        title="Duo-LLM: A Framework for Studying Adaptive Computation in Large Language Models",
        date=date(2024, 10, 1),
        axis=Axis.ROUTES,
        claim=(
            "With small and big FFN modules per layer and oracle routing as reference, trained routers prove "
            "suboptimal, and activating the big module in just one layer outperforms using big modules in "
            "all layers."
        ),
    ),
    Paper(
        index=45,
        key="mhr",
        title="Multi-Head Adapter Routing for Cross-Task Generalization",
        date=date(2022, 11, 7),
        axis=Axis.ROUTES,
        claim=(
            "Multi-head adapter routing (MHR) outperforms Polytropon at a comparable parameter budget, "
            "fine-tuning only its router (MHR-z) stays competitive, and fine-tuning the average of the "
            "adapters without routing (MHR-mu) is an effective single-adapter method."
        ),
    ),
    Paper(
        index=47,
        key="s2ft",
        title="S^{2}FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured Sparsity",
        date=date(2024, 12, 9),
        axis=Axis.ROUTES,
        claim=(
            "Fine-tuning a few selected heads and channels as dense co-permuted submatrices beats LoRA by "
            "4.6% on commonsense and 1.3% on arithmetic reasoning, surpasses full fine-tuning by 11.5% in "
            "out-of-domain generalization, and saves up to 3x training memory at 1.5-2.7x lower latency than "
            "full fine-tuning."
        ),
    ),
    Paper(
        index=48,
        key="biformer",
        title="BiFormer: Vision Transformer with Bi-Level Routing Attention",
        date=date(2023, 3, 15),
        axis=Axis.ROUTES,
        claim=(
            "Bi-level routing attention, which filters key-value pairs at region level before token-to-token "
            "attention within the routed regions, saves computation and memory using only dense matrix "
            "multiplications and performs well on image classification, detection and segmentation."
        ),
    ),
    Paper(
        index=49,
        key="flylora",
        title=(
            "FlyLoRA: Boosting Task Decoupling and Parameter Efficiency via Implicit Rank-Wise "
            "Mixture-of-Experts"
        ),
        date=date(2025, 10, 9),
        axis=Axis.ROUTES,
        claim=(
            "Rank-wise expert activation with a frozen sparse random down-projection serving as an implicit "
            "router consistently improves over existing methods across four domains and mitigates inter-task "
            "interference in model merging."
        ),
    ),
)
