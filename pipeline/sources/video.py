"""The short-video simulator's log as input (``simulated_video``): the Parquet shards of its
``questionnaire`` table under the directory it wrote (``--input``)."""
from __future__ import annotations

from typing import Optional

from pipeline.simulators.video_files import TABLE
from pipeline.sources.files import expand_patterns


def resolve_video(data, raw_dir=None, task: str = "questionnaire", seed: Optional[int] = None) -> list[tuple]:
    """``(shard, None)`` for every Parquet shard under ``raw_dir/questionnaire/`` (the split is per row)."""
    if raw_dir is None:
        raise ValueError(f"data.source is {data.source!r}: give the simulator's output directory (--input)")
    if task != "questionnaire":
        raise ValueError(f"data.source {data.source!r} simulates questionnaire data, not labels.task {task!r}")
    return [(p, None) for p in expand_patterns([f"{raw_dir}/{TABLE}/*.parquet"])]
