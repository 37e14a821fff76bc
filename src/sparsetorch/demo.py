"""The main job on the embedded default, until the bench lands: magnitude pruning of LeNet-300-100.

Trains LeNet-300-100 on Fashion-MNIST once (seeded recipe, cached as safetensors), prunes a copy
by magnitude to each target sparsity, and prints each report and a summary of test accuracy.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from sparsetorch.evaluation import classification_metrics
from sparsetorch.pruning import PruneReport, prune


def run_demo(
    sparsities: Sequence[float] = (0.5, 0.8, 0.9),
    *,
    distribution: str = "uniform",
    console: Console | None = None,
) -> list[tuple[float, float, PruneReport | None]]:
    """Prune the cached reference LeNet-300-100 at each sparsity; return (sparsity, accuracy, report) rows."""
    from sparsetorch.data import load_fashion_mnist
    from sparsetorch.models.pretrained import pretrained

    console = console or Console()
    model = pretrained("lenet-300-100")
    x, y = load_fashion_mnist("test").tensors
    dense = classification_metrics(model, x, y)["accuracy"]
    rows: list[tuple[float, float, PruneReport | None]] = [(0.0, dense, None)]
    for sparsity in sparsities:
        pruned = copy.deepcopy(model)
        rep = prune(pruned, "magnitude", sparsity, distribution=distribution)
        rows.append((sparsity, classification_metrics(pruned, x, y)["accuracy"], rep))
        console.print(rep)

    table = Table(
        title="LeNet-300-100 on Fashion-MNIST (test, 10,000 images): magnitude pruning, no retraining"
    )
    for name in ("target", "achieved sparsity", "nonzeros", "test accuracy", "Δ vs dense", "bytes speedup"):
        table.add_column(name, justify="right")
    for sparsity, acc, rep in rows:
        table.add_row(
            "dense" if rep is None else f"{sparsity:.0%}",
            "0.0%" if rep is None else f"{rep.sparsity:.1%}",
            "-" if rep is None else f"{rep.report.nonzeros:,}",
            f"{acc:.2%}",
            f"{(acc - dense) * 100:+.2f} pt",
            "1.00x" if rep is None else f"{rep.report.memory_speedup:.2f}x",
        )
    console.print(table)
    return rows
