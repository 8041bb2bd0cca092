"""What each task means to preprocessing: how validation reads, checks and derives its two labels.

Every task has the same two label roles (``transforms.schema.Task``): ``selection`` o, always 0/1,
and ``outcome`` r, seen only when o = 1. This table says what the pipeline does with them:

    conversion  o and r are 0/1 columns; r = 1 on a row with o = 0 is ``conversion_without_click``
                (rejected, or fixed to r = 0: ``preprocess.conversion_without_click``)
    survey      o is 0/1; r is a rating in ``labels.rating_range`` when o = 1 and empty when o = 0
                (a rating there is ``rating_without_response``: rejected, or dropped); r is written
                as 0 on rows without a response
    ratings     o and r are derived from the rating column of ``data.ratings.columns``: o = 1 if
                the rating is not 0 (0 = unrated), r = 1 if o and rating > ``labels.rating_threshold``;
                a rating outside ``rating_range`` is ``label_out_of_range``

    questionnaire  o (``answered``) and r (``answer_grade``) are derived from the text column
                ``answer`` (``PipelineTask.label_source``): o = 1 if it is not empty; r = 2 satisfied,
                1 uncertain, 0 dissatisfied (0 when o = 0). An answer that is none of these is
                ``unknown_answer``; an answer on a row with ``questionnaire_shown`` = 0 is
                ``answer_without_questionnaire``; the behaviour columns of ``Task.columns``: play,
                like and questionnaire_shown are 0/1 and a ``watch_ratio`` outside [0, 1] is
                ``label_out_of_range:watch_ratio`` (a missing ``request_id`` is ``missing_value``)

A new task is one more :class:`PipelineTask` in ``PIPELINE_TASKS`` and one
more ``Task`` in ``transforms.schema.TASKS``; nothing else in the pipeline names a task.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

Flag = Callable[[str, np.ndarray], None]  # flag(reason, mask): reject the masked rows not rejected yet
# rules(v, typed, missing, flag) -> fixes; v is the pipeline.validation.RowValidator (its label settings)
LabelRules = Callable[[Any, dict, dict, Flag], dict]


@dataclasses.dataclass(frozen=True)
class PipelineTask:
    """A task as preprocessing sees it.

    ``label_rules(validator, typed, missing, flag)`` checks (and derives) the label columns of a
    typed table in place and returns the counts of the rows it fixed; ``derives_labels``: o and r
    are computed from the rating column instead of read; ``optional_outcome``: the outcome column
    may be empty (the rules decide when that is right).
    """

    name: str
    label_rules: LabelRules
    derives_labels: bool = False
    optional_outcome: bool = False
    label_source: Optional[tuple[str, str]] = None  # (column, kind) the labels are derived from, if not ratings'

    def rating_column(self, data) -> Optional[str]:
        """The column the labels are derived from (``label_source``, else ``data.ratings.columns``' third),
        or None."""
        if not self.derives_labels:
            return None
        return self.label_source[0] if self.label_source else data.ratings.columns[2]

    @property
    def source_kind(self) -> str:
        """The kind the label source column is read as (a rating: float; an answer: string, may be empty)."""
        return self.label_source[1] if self.label_source else "float"


def _binary(typed: dict, name: str, flag: Flag) -> None:
    flag(f"label_out_of_range:{name}", ~np.isin(typed[name], (0, 1)))


def _conversion_rules(v: Any, typed: dict, missing: dict, flag: Flag) -> dict:
    o, r = v.selection, v.outcome
    _binary(typed, o, flag)
    _binary(typed, r, flag)
    orphan = (typed[r] == 1) & (typed[o] == 0)
    if v.conversion_without_click == "reject":
        flag("conversion_without_click", orphan)
        return {}
    typed[r] = np.where(orphan, 0, typed[r])
    return {"fixed:conversion_without_click": int(orphan.sum())}


def _survey_rules(v: Any, typed: dict, missing: dict, flag: Flag) -> dict:
    o, r = v.selection, v.outcome
    _binary(typed, o, flag)
    responded, rating, absent = typed[o] == 1, typed[r], missing[r]
    lo, hi = v.rating_range
    flag(f"missing_value:{r}", responded & absent)
    flag(f"label_out_of_range:{r}", responded & ~absent & ((rating < lo) | (rating > hi)))
    stray = ~responded & ~absent
    fixes = {}
    if v.rating_without_response == "reject":
        flag("rating_without_response", stray)
    else:
        fixes["fixed:rating_without_response"] = int(stray.sum())
    typed[r] = np.where(responded, rating, 0).astype(np.float32)
    return fixes


def _ratings_rules(v: Any, typed: dict, missing: dict, flag: Flag) -> dict:
    rating = typed[v.rating_column].astype(np.float64)
    observed = rating != 0
    lo, hi = v.rating_range
    flag(f"label_out_of_range:{v.rating_column}", observed & ((rating < lo) | (rating > hi)))
    typed[v.selection] = observed.astype(np.int64)
    typed[v.outcome] = (observed & (rating > v.rating_threshold)).astype(np.int64)
    return {}


ANSWER_GRADES = {"dissatisfied": 0, "uncertain": 1, "satisfied": 2}  # the questionnaire's r


def _questionnaire_rules(v: Any, typed: dict, missing: dict, flag: Flag) -> dict:
    answer = np.array([a.decode("utf-8").strip() if a is not None else "" for a in
                       typed[v.rating_column].to_pylist()], dtype=object)
    for name in ("play", "like", "questionnaire_shown"):
        _binary(typed, name, flag)
    ratio = typed["watch_ratio"]
    flag("label_out_of_range:watch_ratio", (ratio < 0.0) | (ratio > 1.0))
    answered = answer != ""
    flag("unknown_answer", answered & ~np.isin(answer, list(ANSWER_GRADES)))
    flag("answer_without_questionnaire", answered & (typed["questionnaire_shown"] == 0))
    grade = np.zeros(len(answer), np.int64)
    for text, value in ANSWER_GRADES.items():
        grade[answer == text] = value
    typed[v.selection], typed[v.outcome] = answered.astype(np.int64), grade
    return {}


PIPELINE_TASKS: dict[str, PipelineTask] = {t.name: t for t in (
    PipelineTask("conversion", _conversion_rules),
    PipelineTask("survey", _survey_rules, optional_outcome=True),
    PipelineTask("ratings", _ratings_rules, derives_labels=True),
    PipelineTask("questionnaire", _questionnaire_rules, derives_labels=True, label_source=("answer", "string")),
)}


def get_pipeline_task(name: str) -> PipelineTask:
    """The pipeline's record of task ``name``; a clear error listing the known ones otherwise."""
    if name not in PIPELINE_TASKS:
        raise KeyError(f"labels.task: the pipeline knows no task {name!r}; known: {', '.join(PIPELINE_TASKS)}")
    return PIPELINE_TASKS[name]
