"""The catalog of the 53 seed papers from `papers.md` (and reference reproductions such as RigL).

One module per axis (`connections`, `activations`, `routes`, `temporal` for time, `foundations`
for the foundations and execution) holds a `CATALOG` tuple of `Paper`s, registered into `PAPERS` at
import. Every entry stays here for good: a paper with a reproduction points `reproduce=` at
`sparsetorch/papers/<key>.py` and names its `modules` and `entry_points`; the key, index, title,
date and claim never change.
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
