"""The exposure simulator's output as input (``simulated``), and survey logs (``survey``).

``simulated`` reads the Parquet shards of the simulator's table for the task (``exposures`` for
conversion, ``surveys`` for survey: ``pipeline.simulators.exposures.TABLE_OF_TASK``) under the
directory it wrote (``--input``). ``survey`` reads the configured files, or, when there are none
and a simulator directory is given, its ``surveys`` table.
"""
from __future__ import annotations

from typing import Optional

from pipeline.simulators.exposures import SURVEYS, TABLE_OF_TASK
from pipeline.sources.files import expand_patterns, resolve_files


def resolve_simulated(data, raw_dir=None, task: str = "conversion", seed: Optional[int] = None) -> list[tuple]:
    """``(shard, None)`` for every shard of the task's table under ``raw_dir``."""
    if raw_dir is None:
        raise ValueError(f"data.source is {data.source!r}: give the simulator's output directory (--input)")
    if task not in TABLE_OF_TASK:
        raise ValueError(f"data.source {data.source!r} simulates {', '.join(TABLE_OF_TASK)} data, not labels.task "
                         f"{task!r}")
    return _shards(raw_dir, TABLE_OF_TASK[task])


def resolve_survey(data, raw_dir=None, task: Optional[str] = None, seed: Optional[int] = None) -> list[tuple]:
    """The configured survey files; without any, the simulator's surveys under ``raw_dir``."""
    if not data.train_files and raw_dir:
        return _shards(raw_dir, SURVEYS)
    return resolve_files(data)


def _shards(raw_dir, table: str) -> list[tuple]:
    return [(p, None) for p in expand_patterns([f"{raw_dir}/{table}/*.parquet"])]
