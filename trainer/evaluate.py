"""Evaluation of a trained model on the eval split, with ground truth when known.

CVR family: :func:`cvr_metrics`; surveys: :mod:`trainer.survey_eval`; explicit ratings (MAR test
split, SNIPS on the MNAR eval split, propensity diagnostics): :mod:`trainer.ratings_eval`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr.config import Config
from trainer import metrics as m
from trainer.input import make_dataset, split_files
from transforms.schema import transformed_name

log = logging.getLogger(__name__)


def predict_split(model, config: Config, data_dir, split: str = "eval", extra: Sequence[str] = ()) -> pd.DataFrame:
    """Named predictions next to labels, keys, ground truth and the ``extra`` columns, one row per example."""
    tft_output = tft.TFTransformOutput(str(data_dir))
    ds = make_dataset(split_files(data_dir, split), tft_output.transformed_feature_spec(), config.eval.batch_size)
    keep = [config.labels.selection, config.labels.outcome, *config.labels.ground_truth, *config.labels.keys, *extra]
    predict = tf.function(model.predict_named)
    columns: dict[str, list[np.ndarray]] = {}
    for batch in ds:
        outputs = {k: v.numpy() for k, v in predict(batch).items()}
        outputs.update({k: batch[k].numpy() for k in keep if k in batch})
        for k, v in outputs.items():
            columns.setdefault(k, []).append(v.reshape(len(v), -1)[:, 0])
    frame = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
    for key in config.labels.keys:
        if key in frame and frame[key].dtype == object:
            frame[key] = frame[key].str.decode("utf-8")
    return frame


def cvr_metrics(frame: pd.DataFrame, config: Config) -> dict[str, float]:
    """CTR / CVR / CTCVR AUC, GAUC by user, log loss; BMSE of pCTR as propensity (seed 002 §3.3,
    o = click, φ = 1 and φ = r̂ = pCVR); entire-space CVR metrics from ground truth."""
    o, r = frame[config.labels.selection].to_numpy(), frame[config.labels.outcome].to_numpy()
    clicked = o > 0.5
    out = {
        "rows": int(len(frame)), "clicks": int(clicked.sum()), "conversions": int(r.sum()),
        "ctr_auc": m.auc(o, frame["pctr"]),
        "cvr_auc_clicked": m.auc(r[clicked], frame["pcvr"][clicked]),
        "ctcvr_auc": m.auc(r, frame["pctcvr"]),
        "ctr_logloss": m.log_loss(o, frame["pctr"]),
        "cvr_logloss_clicked": m.log_loss(r[clicked], frame["pcvr"][clicked]),
        "ctcvr_logloss": m.log_loss(r, frame["pctcvr"]),
        "bmse_1": m.bmse(o, frame["pctr"]),
        "bmse_r": m.bmse(o, frame["pctr"], frame["pcvr"]),
    }
    group = config.eval.group_by
    if group in frame:
        out["ctr_gauc"] = m.gauc(frame[group], o, frame["pctr"])
        out["ctcvr_gauc"] = m.gauc(frame[group], r, frame["pctcvr"])
    if "gt_conversion" in frame:
        out["cvr_auc_entire_space"] = m.auc(frame["gt_conversion"], frame["pcvr"])
    if "gt_cvr" in frame:
        out["cvr_bias"] = float(frame["pcvr"].mean() - frame["gt_cvr"].mean())
        out["cvr_mae_vs_truth"] = float(np.abs(frame["pcvr"] - frame["gt_cvr"]).mean())
        out["cvr_calibration_error"] = m.expected_calibration_error(frame["gt_cvr"], frame["pcvr"])
        for name in config.eval.calibration_slices:
            out[f"cvr_log_bias_sd_by_{name}"] = m.sliced_log_bias_sd(
                frame[transformed_name(name)], frame["pcvr"], frame["gt_cvr"])
    return {k: (round(float(v), 6) if isinstance(v, float) else v) for k, v in out.items()}


def evaluate(model, config: Config, data_dir, out_dir=None) -> dict[str, float]:
    """Evaluates on the eval split (ratings: and the MAR test split); writes ``metrics.json`` to ``out_dir``."""
    if config.labels.task == "ratings":
        from trainer.ratings_eval import ratings_metrics
        return _write(ratings_metrics(model, config, data_dir), out_dir)
    slices = [transformed_name(name) for name in config.eval.calibration_slices]
    frame = predict_split(model, config, data_dir, extra=slices)
    if config.labels.task == "survey":
        from trainer.survey_eval import survey_metrics
        results = survey_metrics(frame, config.model.survey, responded=config.labels.selection)
    else:
        results = cvr_metrics(frame, config)
    return _write(results, out_dir)


def _write(results: dict, out_dir) -> dict:
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(results, indent=2))
    return results


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one column per model, one row per metric."""
    names = list(results)
    keys = [k for k in next(iter(results.values()))]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        cells = [_cell(results[n].get(k)) for n in names]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)
