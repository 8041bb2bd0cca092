"""The short-video world written as a log (``data.source: simulated_video``): what ``ctrcvr simulate`` runs.

``simulate_to_files(config, out_dir, seed)`` draws :func:`pipeline.simulators.video.simulate_video`
and writes it as ``out_dir/questionnaire/part-NNNNN.{parquet,csv}``, ``config.shard_requests`` requests
per shard in time order, and ``out_dir/simulation.json`` (rates, answer counts, the world). The
columns are ``pipeline.simulators.video.COLUMNS``: the ``questionnaire`` task's raw columns (request
id, user, item, context, behaviour, ``answer`` empty when none) and the ground truth.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Union

import numpy as np

from pipeline.simulators.exposures import _write_shard
from pipeline.simulators.video import COLUMNS, simulate_video
from pipeline.video_config import SimulateVideoConfig

log = logging.getLogger(__name__)
TABLE = "questionnaire"   # the folder of shards under out_dir
SUMMARY_FILE = "simulation.json"


def simulate_to_files(config: SimulateVideoConfig, out_dir: Union[str, Path], seed: int) -> dict:
    """Simulates the world into ``out_dir`` (guarding it is the caller's job); returns the summary."""
    started, out = time.perf_counter(), Path(out_dir)
    (out / TABLE).mkdir(parents=True, exist_ok=True)
    frame = simulate_video(config.world(), seed)
    per_shard = config.shard_requests * config.candidates_per_request
    files = {fmt: [] for fmt in config.formats}
    for k, start in enumerate(range(0, len(frame), per_shard)):
        for fmt, path in _write_shard(frame.iloc[start:start + per_shard], out / TABLE, k, config.formats).items():
            files[fmt].append(path.relative_to(out).as_posix())
    summary = {"seed": seed, **_rates(frame), "columns": COLUMNS, "files": files,
               "config": config.model_dump(mode="json")}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    log.info("simulated %d rows (%d requests) in %.1f s into %s", len(frame), summary["requests"],
             time.perf_counter() - started, out)
    return summary


def announce(config: SimulateVideoConfig) -> str:
    """What a run will simulate, for the run log."""
    return f"{config.n_requests} video requests x {config.candidates_per_request} candidates"


def describe(summary: dict) -> str:
    """The summary in one line, for the run log."""
    return (f"{summary['rows']} rows, play rate {summary['play_rate']:.3f}, {summary['questionnaires_shown']} "
            f"questionnaires shown, {summary['answers']} answered ({summary['satisfied']} satisfied, "
            f"{summary['dissatisfied']} dissatisfied, {summary['uncertain']} uncertain)")


def _rates(frame) -> dict:
    answers = frame["answer"].to_numpy()
    counts = {a: int((answers == a).sum()) for a in ("satisfied", "dissatisfied", "uncertain")}
    played = frame["play"].to_numpy() == 1
    return {"rows": int(len(frame)), "requests": int(frame["request_id"].nunique()),
            "days": int(frame["day"].nunique()), "play_rate": float(played.mean()),
            "like_rate_among_plays": float(frame["like"].to_numpy()[played].mean()) if played.any() else None,
            "questionnaires_shown": int(frame["questionnaire_shown"].sum()), "answers": int(sum(counts.values())),
            **counts, "mean_gt_satisfaction": float(np.mean(frame["gt_satisfaction"]))}
