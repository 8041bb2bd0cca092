"""Evaluation per task, from a table: ``labels.task`` -> the metrics function of that task.

Every metrics function takes ``(model, spec, data_dir)`` and returns ``{metric: value}``:
    conversion  :func:`trainer.evaluation.cvr.conversion_metrics`   (eval split)
    survey      :func:`trainer.evaluation.survey.survey_task_metrics` (eval split)
    ratings     :func:`trainer.evaluation.ratings.ratings_metrics`  (MAR test split + MNAR eval split)
    questionnaire :func:`trainer.evaluation.questionnaire.questionnaire_task_metrics` (eval split)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from trainer.config import TrainerSpec
from trainer.evaluation.cvr import conversion_metrics
from trainer.evaluation.questionnaire import questionnaire_task_metrics
from trainer.evaluation.ratings import ratings_metrics
from trainer.evaluation.survey import survey_task_metrics

METRICS = "metrics.json"
TASK_METRICS: dict[str, Callable[..., dict]] = {
    "conversion": conversion_metrics,
    "survey": survey_task_metrics,
    "ratings": ratings_metrics,
    "questionnaire": questionnaire_task_metrics,
}


def evaluate(model, spec: TrainerSpec, data_dir, out_dir=None) -> dict[str, float]:
    """The task's metrics of ``model`` on ``data_dir``; written to ``out_dir/metrics.json`` when given."""
    task = spec.labels.task
    if task not in TASK_METRICS:
        raise KeyError(f"labels.task={task!r}: no evaluation for this task; known: {', '.join(TASK_METRICS)}")
    results = TASK_METRICS[task](model, spec, data_dir)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / METRICS).write_text(json.dumps(results, indent=2))
    return results
