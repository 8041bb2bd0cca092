"""Causal simulator of exposure -> click -> conversion logs, plus satisfaction surveys (seed 003, seed 000).

The world and its structural equations are in ``pipeline.simulators.exposure_world``; this module
draws the exposures chunk by chunk and writes them.

Output: ``out_dir/{exposures,surveys}/part-NNNNN.{csv,parquet}``, one shard per chunk of ``chunk_rows``
exposures, and ``out_dir/simulation.json`` (the summary). RNG streams: world (seed, 0), pilot (seed, 2),
chunk k (seed, 1, k), so the files are a deterministic function of seed and config.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.config import SimulateConfig
from pipeline.simulators._common import sigmoid
from pipeline.simulators.exposure_world import calibrate, draw_exposures, logits, make_world, response_logit

log = logging.getLogger(__name__)

CONTEXT_COLUMNS = ["day", "user_id", "item_id", "user_age", "user_gender", "user_city", "item_category",
                   "item_brand", "item_price", "hour", "device", "position"]
EXPOSURE_COLUMNS = ["exposure_id", *CONTEXT_COLUMNS, "click", "conversion", "gt_ctr", "gt_cvr", "gt_conversion"]
SURVEY_COLUMNS = ["survey_id", "exposure_id", *CONTEXT_COLUMNS, "responded", "rating", "gt_satisfaction",
                  "gt_response_prob"]
DEVICES = np.array(["ios", "android", "pc"])
EXPOSURES, SURVEYS = "exposures", "surveys"  # the two tables, each a folder of shards under out_dir
TABLE_OF_TASK = {"conversion": EXPOSURES, "survey": SURVEYS}  # which table holds the rows of a task
SUMMARY_FILE = "simulation.json"


def simulate(config: SimulateConfig, out_dir: Union[str, Path], seed: int) -> dict:
    """Simulates ``config.n_exposures`` exposures (and their surveys) into ``out_dir``; returns the summary.

    Writes ``out_dir/{exposures,surveys}/`` and ``simulation.json`` (guarding the directory is the
    caller's job: ``ctrcvr.output_dir``).
    """
    out = Path(out_dir)
    for name in (EXPOSURES, SURVEYS):
        (out / name).mkdir(parents=True, exist_ok=True)
    started, n = time.perf_counter(), config.n_exposures
    users, items = make_world(config, np.random.default_rng([seed, 0]))
    intercepts = calibrate(users, items, config, np.random.default_rng([seed, 2]))
    log.info("calibrated intercepts %s", intercepts)
    sums: dict = {}
    files = {name: {fmt: [] for fmt in config.formats} for name in (EXPOSURES, SURVEYS)}
    for k, start in enumerate(range(0, n, config.chunk_rows)):
        stop = min(start + config.chunk_rows, n)
        rng = np.random.default_rng([seed, 1, k])  # chunk k's own stream
        frames = _simulate_chunk(users, items, config, intercepts, rng, start, stop, sums.get("surveys", 0))
        for key, value in _chunk_sums(*frames).items():
            sums[key] = sums.get(key, 0) + value
        for name, frame in zip((EXPOSURES, SURVEYS), frames):
            for fmt, path in _write_shard(frame, out / name, k, config.formats).items():
                files[name][fmt].append(path.relative_to(out).as_posix())
        log.info("chunk %d: %d / %d rows (%.0f rows/s)", k, stop, n, stop / (time.perf_counter() - started))
    summary = {"seed": seed, "chunks": k + 1, **_summarise(sums), "intercepts": intercepts,
               "columns": {EXPOSURES: EXPOSURE_COLUMNS, SURVEYS: SURVEY_COLUMNS}, "files": files,
               "config": config.model_dump(mode="json")}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    log.info("simulated %d exposures in %.1f s into %s", n, time.perf_counter() - started, out)
    return summary


def announce(config: SimulateConfig) -> str:
    """What a run will simulate, for the run log."""
    return f"{config.n_exposures} exposures"


def describe(summary: dict) -> str:
    """The summary in one line, for the run log."""
    return (f"CTR {summary['ctr']:.4f}, CVR among clicks {summary['cvr_among_clicks']:.4f}, "
            f"selection-bias ratio {summary['selection_bias_ratio']:.2f}")


def _simulate_chunk(users: dict, items: dict, c: SimulateConfig, intercepts: dict, rng: np.random.Generator,
                    start: int, stop: int, first_survey_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    e = draw_exposures(users, items, c, rng, np.arange(start, stop), c.n_exposures)
    click_logit, conv_logit = logits(users, items, c, e)
    gt_ctr, gt_cvr = sigmoid(intercepts["a_ctr"] + click_logit), sigmoid(intercepts["a_cvr"] + conv_logit)
    n = stop - start
    click = (rng.random(n) < gt_ctr).astype(np.int64)
    gt_conversion = (rng.random(n) < gt_cvr).astype(np.int64)
    exposures = {**e, "click": click, "conversion": click * gt_conversion, "gt_ctr": gt_ctr, "gt_cvr": gt_cvr,
                 "gt_conversion": gt_conversion}
    surveyed = (click == 1) & (rng.random(n) < c.survey_share)
    s = {k: v[surveyed] for k, v in e.items()}
    satisfaction, logit = response_logit(users, items, c, s, rng)
    prob = sigmoid(intercepts["b_response"] + logit)
    responded = (rng.random(len(prob)) < prob).astype(np.int64)
    rating = np.rint(np.clip(satisfaction + rng.normal(0.0, 0.3, len(prob)), 1, 5)).astype(np.int64)
    surveys = {**s, "survey_id": first_survey_id + np.arange(len(prob)), "responded": responded,
               "rating": pd.arrays.IntegerArray(rating, mask=responded == 0), "gt_satisfaction": satisfaction,
               "gt_response_prob": prob}
    return _frame(exposures, EXPOSURE_COLUMNS), _frame(surveys, SURVEY_COLUMNS)


def _frame(columns: dict, order: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({k: columns[k] for k in order})
    frame["device"] = DEVICES[np.asarray(columns["device"], dtype=np.int64)]
    floats = {"device", "rating", "item_price", "gt_ctr", "gt_cvr", "gt_satisfaction", "gt_response_prob"}
    return frame.astype({k: np.int64 for k in order if k not in floats})


def _write_shard(frame: pd.DataFrame, folder: Path, k: int, formats: list[str]) -> dict[str, Path]:
    table = pa.Table.from_pandas(frame, preserve_index=False)  # strings as plain (not large) utf8:
    table = table.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f
                                  for f in table.schema], metadata=table.schema.metadata))
    paths = {fmt: folder / f"part-{k:05d}.{fmt}" for fmt in formats}
    for fmt, path in paths.items():
        if fmt == "csv":
            pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none", quoting_header="none"))
        else:
            pq.write_table(table, path)
    return paths


def _chunk_sums(x: pd.DataFrame, s: pd.DataFrame) -> dict:
    clicked, responded = x["click"].to_numpy() == 1, s["responded"].to_numpy() == 1
    ctr, cvr, sat = x["gt_ctr"].to_numpy(), x["gt_cvr"].to_numpy(), s["gt_satisfaction"].to_numpy()
    sums = {"rows": len(x), "clicks": clicked.sum(), "conversions": x["conversion"].sum(), "gt_ctr": ctr.sum(),
            "gt_cvr": cvr.sum(), "gt_cvr_clicked": cvr[clicked].sum(), "gt_ctr_cvr": (ctr * cvr).sum(),
            "surveys": len(s), "responses": responded.sum(), "gt_response_prob": s["gt_response_prob"].sum(),
            "gt_satisfaction": sat.sum(), "gt_satisfaction_responders": sat[responded].sum()}
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in sums.items()}


def _div(a, b):
    return a / b if a is not None and b else None


def _summarise(t: dict) -> dict:
    mean_cvr, mean_cvr_clicked = _div(t["gt_cvr"], t["rows"]), _div(t["gt_cvr_clicked"], t["clicks"])
    return {"rows": t["rows"], "clicks": t["clicks"], "conversions": t["conversions"],
            "ctr": _div(t["clicks"], t["rows"]), "cvr_among_clicks": _div(t["conversions"], t["clicks"]),
            "mean_gt_ctr": _div(t["gt_ctr"], t["rows"]), "mean_gt_cvr_all": mean_cvr,
            "mean_gt_cvr_clicked": mean_cvr_clicked, "selection_bias_ratio": _div(mean_cvr_clicked, mean_cvr),
            "selection_bias_ratio_expected": _div(_div(t["gt_ctr_cvr"], t["gt_ctr"]), mean_cvr),  # ctr-weighted
            "surveys": t["surveys"], "responses": t["responses"], "response_rate": _div(t["responses"], t["surveys"]),
            "mean_gt_response_prob": _div(t["gt_response_prob"], t["surveys"]),
            "mean_gt_satisfaction_all": _div(t["gt_satisfaction"], t["surveys"]),
            "mean_gt_satisfaction_responders": _div(t["gt_satisfaction_responders"], t["responses"])}
