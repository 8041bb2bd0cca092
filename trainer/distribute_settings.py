"""``train.distribute``: the settings of ``train.distribution`` (TF-free, validated with the config).

    train:
      distribution: parameter_server     # none | mirrored | multi_worker_mirrored | parameter_server
      distribute:
        partitioner: min_size            # how parameter_server shards variables across the PS tasks
        min_shard_bytes: 262144          # min_size: no shard smaller than this (small variables stay whole)
        max_shards: null                 # at most this many shards per variable (default: the number of PS)
        task_memory_gb: 8                # what one task may hold of embedding tables + Adam slots

See ``docs/distributed.md`` and :mod:`trainer.distribute`.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from transforms.schema import Section

STRATEGIES = ("none", "mirrored", "multi_worker_mirrored", "parameter_server")
Strategy = Literal["none", "mirrored", "multi_worker_mirrored", "parameter_server"]


class DistributeConfig(Section):
    partitioner: Literal["min_size", "fixed"] = Field(
        "min_size", description="parameter_server: tf.distribute.experimental.partitioners.MinSizePartitioner "
        "(shards of at least min_shard_bytes, at most max_shards) or FixedShardsPartitioner (max_shards shards "
        "of every variable whose first dimension allows it)")
    min_shard_bytes: int = Field(256 << 10, gt=0, description="min_size: the smallest shard, in bytes")
    max_shards: Optional[int] = Field(None, gt=0, description="shards per variable (default: the number of "
                                      "parameter servers)")
    task_memory_gb: float = Field(
        8.0, gt=0, description="memory one task may give the embedding tables and their Adam slots (rows × dim "
        "× 4 bytes × 3); the estimate is checked before training: against one task for none / mirrored / "
        "multi_worker_mirrored (every replica holds every table), against the sum over the parameter servers "
        "for parameter_server")


def writes_outputs(task_type: Optional[str], task_id: Optional[int], jobs) -> bool:
    """Whether a multi_worker_mirrored task writes the training's outputs (the model dir): the ``chief``, or
    worker 0 of a cluster without one (``jobs``: the cluster's job names). TF-free: the CLI decides before
    TensorFlow starts which task prepares the model dir."""
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and int(task_id or 0) == 0 and "chief" not in jobs


def tf_config_writes_outputs(environ=None) -> bool:
    """:func:`writes_outputs` for this process's ``TF_CONFIG`` (no TF_CONFIG: one process, it writes)."""
    import json
    import os
    raw = (environ if environ is not None else os.environ).get("TF_CONFIG")
    if not raw:
        return True
    config = json.loads(raw)
    task = config.get("task") or {}
    return writes_outputs(task.get("type"), task.get("index"), config.get("cluster") or {})
