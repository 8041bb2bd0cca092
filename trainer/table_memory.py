"""The memory of every embedding table, estimated and checked before training starts.

    bytes(table) = rows × dim × 4 (float32) × 3 (the table, and Adam's m and v slots)

summed over the embedding groups the estimator builds (one shared group Φ, or one per tower for
estimators that share nothing). Where it must fit (``train.distribute.task_memory_gb`` = B):

    none, mirrored, multi_worker_mirrored   every replica holds every table:   Σ ≤ B
    parameter_server                         the tables are split over the PS:  Σ ≤ B × number of PS

A budget exceeded is a :class:`transforms.errors.UserError` naming the largest tables and the ways out
(hash the feature into fewer buckets, cap its vocabulary with ``top_k``, a smaller ``embedding_dim``,
more parameter servers).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Mapping, Optional, Sequence

from transforms.errors import UserError
from transforms.schema import FeatureConfig

log = logging.getLogger("trainer")
BYTES_PER_FLOAT = 4
ADAM_COPIES = 3  # the table, m and v
GB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class TableMemory:
    feature: str
    rows: int
    dim: int
    groups: int

    @property
    def bytes(self) -> int:
        return self.rows * self.dim * BYTES_PER_FLOAT * ADAM_COPIES * self.groups


def table_memory(features: Sequence[FeatureConfig], cardinalities: Mapping[str, int], embedding_dim: int,
                 groups: int = 1, dims: Optional[Mapping[str, int]] = None) -> list[TableMemory]:
    """One entry per embedded feature, largest first; ``dims`` the sizes a backbone asks for (mf's p_u, q_i)."""
    dims = dims or {}
    tables = [TableMemory(f.name, cardinalities[f.name], dims.get(f.name) or f.embedding_dim or embedding_dim, groups)
              for f in features if f.is_embedded and f.name in cardinalities]
    return sorted(tables, key=lambda t: -t.bytes)


def check_table_memory(tables: Sequence[TableMemory], distribution: str, task_memory_gb: float,
                       n_ps: Optional[int] = None) -> int:
    """Logs the estimate per table and its total; raises UserError when it exceeds the strategy's budget.
    Returns the total in bytes."""
    total = sum(t.bytes for t in tables)
    holders = n_ps if distribution == "parameter_server" and n_ps else 1
    budget = task_memory_gb * GB * holders
    where = (f"{holders} parameter server(s) × {task_memory_gb:g} GB" if distribution == "parameter_server"
             else f"one task ({task_memory_gb:g} GB; {distribution}: every replica holds every table)")
    log.info("embedding tables (rows × dim × 4 B × 3 with Adam's slots): %s; total %s of %s",
             ", ".join(f"{t.feature} {t.rows:,}×{t.dim}{'×' + str(t.groups) if t.groups > 1 else ''} = "
                       f"{_size(t.bytes)}" for t in tables), _size(total), where)
    if total > budget:
        largest = ", ".join(f"{t.feature} ({t.rows:,} rows, {_size(t.bytes)})" for t in tables[:3])
        raise UserError(
            f"the embedding tables need {_size(total)} with Adam's slots, more than {where} = {_size(budget)}; "
            f"largest: {largest}. Hash the feature into fewer buckets (transform: hash, hash_buckets), cap its "
            f"vocabulary (top_k), lower embedding_dim, or train with parameter_server on more PS tasks",
            key="train.distribute.task_memory_gb")
    return total


def _size(n: float) -> str:
    for unit, scale in (("GB", GB), ("MB", 1024 ** 2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"
