"""The conversion task's metrics: CTR / CVR / CTCVR AUC, GAUC by user, log loss, BMSE of pCTR as a
propensity, and, where the simulator knows the truth, entire-space CVR metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.config import TrainerSpec
from trainer.evaluation import metrics as m
from trainer.evaluation.predict import predict_split
from transforms.schema import transformed_name


def conversion_metrics(model, spec: TrainerSpec, data_dir) -> dict[str, float]:
    """:func:`cvr_metrics` of ``model``'s predictions on the eval split."""
    slices = [transformed_name(name) for name in spec.eval.calibration_slices]
    return cvr_metrics(predict_split(model, spec, data_dir, extra=slices), spec)


def cvr_metrics(frame: pd.DataFrame, spec: TrainerSpec) -> dict[str, float]:
    """CTR / CVR / CTCVR AUC, GAUC by user, log loss; BMSE of pCTR as propensity (seed 002 §3.3,
    o = click, φ = 1 and φ = r̂ = pCVR); entire-space CVR metrics from ground truth."""
    o, r = frame[spec.labels.selection].to_numpy(), frame[spec.labels.outcome].to_numpy()
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
    group = spec.eval.group_by
    if group in frame:
        out["ctr_gauc"] = m.gauc(frame[group], o, frame["pctr"])
        out["ctcvr_gauc"] = m.gauc(frame[group], r, frame["pctcvr"])
    if "gt_conversion" in frame:
        out["cvr_auc_entire_space"] = m.auc(frame["gt_conversion"], frame["pcvr"])
    if "gt_cvr" in frame:
        out["cvr_bias"] = float(frame["pcvr"].mean() - frame["gt_cvr"].mean())
        out["cvr_mae_vs_truth"] = float(np.abs(frame["pcvr"] - frame["gt_cvr"]).mean())
        out["cvr_calibration_error"] = m.expected_calibration_error(frame["gt_cvr"], frame["pcvr"])
        for name in spec.eval.calibration_slices:
            out[f"cvr_log_bias_sd_by_{name}"] = m.sliced_log_bias_sd(
                frame[transformed_name(name)], frame["pcvr"], frame["gt_cvr"])
    return m.rounded(out)
