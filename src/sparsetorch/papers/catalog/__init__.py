"""The catalog of the 53 seed papers from `papers.md`, registered into `PAPERS` at import.

One module per axis group holds a `CATALOG` tuple of planned `Paper`s. When a paper gains a
reproduction, its entry moves out of the catalog into `sparsetorch/papers/<key>.py`, which
registers it with `reproduce=...`; the key, index, title, date and claim stay the same.
"""

from __future__ import annotations

from sparsetorch.papers.base import Paper
from sparsetorch.papers.catalog import activations, connections, foundations, routes, temporal
from sparsetorch.papers.registry import register_paper

__all__ = ["CATALOG"]

CATALOG: tuple[Paper, ...] = tuple(
    sorted(
        (
            *connections.CATALOG,
            *activations.CATALOG,
            *routes.CATALOG,
            *temporal.CATALOG,
            *foundations.CATALOG,
        ),
        key=lambda p: p.index,
    )
)

for _paper in CATALOG:
    register_paper(_paper)
