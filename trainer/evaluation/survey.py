"""Survey evaluation (seed 000 §4, Fig. 5): response-head AUC and calibration, satisfaction error
overall and per decile of the predicted response propensity.

Input: one row per survey impression with the named outputs (``satisfaction``, and ``response_rate``
for two-head models), the ``responded`` label and, on simulated surveys, the truth
``gt_satisfaction`` / ``gt_response_prob`` for EVERY impression, responded or not. The satisfaction
error is measured against that truth, so it covers exactly the non-responders a response-only
model never sees.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from trainer.config import TrainerSpec
from trainer.estimators.params import SurveyConfig
from trainer.evaluation import metrics as m
from trainer.evaluation.predict import predict_split

TRUE_SATISFACTION, TRUE_RESPONSE = "gt_satisfaction", "gt_response_prob"


def survey_task_metrics(model, spec: TrainerSpec, data_dir) -> dict[str, float]:
    """:func:`survey_metrics` of ``model``'s predictions on the eval split."""
    frame = predict_split(model, spec, data_dir)
    return survey_metrics(frame, spec.model.survey, responded=spec.labels.selection)


def satisfaction_target(frame: pd.DataFrame, config: SurveyConfig) -> np.ndarray:
    """What ``satisfaction`` estimates: the true rating, or 1[true rating > threshold] when classifying."""
    truth = frame[TRUE_SATISFACTION].to_numpy(np.float64)
    if config.satisfaction_task == "classification":
        return (truth > config.satisfied_threshold).astype(np.float64)
    return truth


def survey_metrics(frame: pd.DataFrame, config: SurveyConfig, responded: str = "responded") -> dict[str, float]:
    """Response AUC / log loss / calibration (when the model has a response head); satisfaction MSE
    on all impressions, responders and non-responders (when the truth is known)."""
    o = frame[responded].to_numpy(np.float64)
    out: dict[str, float] = {"rows": int(len(frame)), "responses": int(o.sum())}
    if "response_rate" in frame:
        p = frame["response_rate"].to_numpy(np.float64)
        out.update(response_auc=m.auc(o, p), response_logloss=m.log_loss(o, p),
                   response_mean_pred=float(p.mean()), response_rate=float(o.mean()),
                   response_ece=m.expected_calibration_error(o, p))
        if TRUE_RESPONSE in frame:
            out["response_ece_vs_truth"] = m.expected_calibration_error(frame[TRUE_RESPONSE], p)
    if TRUE_SATISFACTION in frame:
        err = np.square(frame["satisfaction"].to_numpy(np.float64) - satisfaction_target(frame, config))
        out.update(satisfaction_mse=float(err.mean()), satisfaction_mse_responders=_mean(err[o > 0.5]),
                   satisfaction_mse_nonresponders=_mean(err[o <= 0.5]),
                   satisfaction_bias=float(frame["satisfaction"].mean() - satisfaction_target(frame, config).mean()))
    return m.rounded(out)


def mse_by_decile(frame: pd.DataFrame, config: SurveyConfig, propensity: pd.Series | np.ndarray,
                  bins: int = 10) -> pd.DataFrame:
    """Satisfaction MSE against the truth per equal-count bin of ``propensity`` (lowest first).

    Pass the same propensity (e.g. the IPW model's predicted response rate) for every model so the
    slices match, as in seed 000 Fig. 5.
    """
    p = np.asarray(propensity, dtype=np.float64)
    err = np.square(frame["satisfaction"].to_numpy(np.float64) - satisfaction_target(frame, config))
    order = np.argsort(p, kind="stable")
    rows = [{"decile": i + 1, "propensity_lo": float(p[idx].min()), "propensity_hi": float(p[idx].max()),
             "rows": len(idx), "mse": float(err[idx].mean())}
            for i, idx in enumerate(np.array_split(order, bins))]
    return pd.DataFrame(rows)


def plot_mse_by_decile(tables: Mapping[str, pd.DataFrame], path, title: Optional[str] = None) -> Path:
    """A PNG of MSE per propensity decile, one line per model (mean ± sd when a table holds several seeds)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, table in tables.items():
        stats = table.groupby("decile")["mse"].agg(["mean", "std"]).reset_index()
        ax.errorbar(stats["decile"], stats["mean"], yerr=stats["std"].fillna(0.0), marker="o", capsize=3, label=name)
    ax.set_xlabel("decile of predicted response propensity (1 = lowest)")
    ax.set_ylabel("satisfaction MSE vs ground truth")
    ax.set_xticks(range(1, 11))
    ax.set_title(title or "Satisfaction error by response propensity")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")
