"""The feature and label declaration every stage reads: one record per feature, the label roles of each task,
and the :class:`Schema` of raw and transformed columns derived from them.

This is the ground floor: ``preprocessing_fn`` (transforms), validation (pipeline) and the model (trainer)
all read these records, so a feature is declared once, in the config, and nowhere else.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from transforms.errors import reject_bool_as_number


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated, ``true`` is not a number."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value, info):
        return reject_bool_as_number(cls.model_fields[info.field_name].annotation, value)


class FeatureConfig(Section):
    """One feature, declared once; read by preprocessing_fn and by the model."""

    name: str
    kind: Literal["categorical", "numeric"]
    transform: Optional[Literal["vocabulary", "hash", "zscore", "log1p", "bucketize", "identity"]] = None
    top_k: Optional[int] = Field(None, gt=0)
    frequency_threshold: Optional[int] = Field(None, ge=0)
    num_oov_buckets: int = Field(1, ge=1)
    hash_buckets: Optional[int] = Field(None, gt=0)
    num_buckets: Optional[int] = Field(None, gt=1)
    default: Optional[Union[float, str]] = None
    embedding_dim: Optional[int] = Field(None, gt=0)
    multivalued: bool = Field(False, description="categorical only: a variable-length list of values per row "
                                                 "(the model mean-pools their embeddings)")
    separator: str = Field("|", min_length=1, description="multivalued: separator of the values in a text cell")

    @model_validator(mode="after")
    def _check_transform(self):
        if self.multivalued and self.kind != "categorical":
            raise ValueError("only categorical features can be multivalued")
        allowed = {"categorical": ("vocabulary", "hash"),
                   "numeric": ("zscore", "log1p", "bucketize", "identity")}[self.kind]
        if self.transform is None:
            self.__dict__["transform"] = allowed[0]
        elif self.transform not in allowed:
            raise ValueError(f"transform {self.transform!r} does not apply to a {self.kind} feature "
                             f"(choose one of {', '.join(allowed)})")
        if self.transform == "hash" and not self.hash_buckets:
            raise ValueError("transform 'hash' needs hash_buckets")
        if self.transform == "bucketize" and not self.num_buckets:
            raise ValueError("transform 'bucketize' needs num_buckets")
        return self

    @property
    def is_embedded(self) -> bool:
        """Whether the model looks this feature up in an embedding table."""
        return self.kind == "categorical" or self.transform == "bucketize"


@dataclasses.dataclass(frozen=True)
class Task:
    """What one kind of data means: the names of its two label roles and its ground-truth columns.

    Every task has the same two roles: ``selection`` is o, the 0/1 event that decides whether the
    outcome is seen (a click, a survey response, a rating given); ``outcome`` is r, seen only when
    o = 1. Stages that treat tasks differently look the task up in their own table keyed by
    ``Task.name`` (validation rules in ``pipeline.tasks``, metrics in ``trainer.evaluation``);
    nothing tests a task name by string.
    """

    name: str
    selection: str
    outcome: str
    ground_truth: tuple[str, ...]
    description: str
    outcome_kind: Literal["int", "float"] = "int"  # the raw outcome column's type (a survey rating is a float)
    columns: tuple[tuple[str, str], ...] = ()  # the task's own raw columns (name, kind), passed through


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("conversion", "click", "conversion", ("gt_ctr", "gt_cvr", "gt_conversion"),
         "exposure -> click -> conversion logs: the conversion is seen only after a click"),
    Task("survey", "responded", "rating", ("gt_satisfaction", "gt_response_prob"),
         "survey impression -> response -> rating: the rating is seen only if the user responds", "float"),
    Task("ratings", "observed", "label", ("rating",),
         "explicit ratings, MNAR train (+ MAR test): the label is seen only for rated pairs"),
    # o = answered, r = the answer's grade, both derived from the raw ``answer`` column (pipeline.tasks)
    Task("questionnaire", "answered", "answer_grade", ("gt_satisfaction", "gt_answer_prob_satisfied"),
         "short-video requests -> behaviour -> sparse questionnaire: the answer is seen only if answered",
         columns=(("request_id", "string"), ("day", "int"), ("play", "int"), ("like", "int"),
                  ("watch_ratio", "float"), ("watch_seconds", "float"), ("questionnaire_shown", "int"))),
)}


def get_task(name: str) -> Task:
    """The task registered as ``name``; a clear error listing the known ones otherwise."""
    if name not in TASKS:
        raise KeyError(f"labels.task: unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


_RENAMED = {"click": "selection", "conversion": "outcome"}


class LabelsConfig(Section):
    """Label, key and ground-truth columns: passed through untouched, never features.

    Two roles, whatever the task (see :class:`Task`): ``selection`` is the column of o (click,
    survey response, rating observed), always 0/1; ``outcome`` the column of r, seen only when
    o = 1 (conversion 0/1; survey rating in ``rating_range``, empty when not responded; ratings:
    1 if the rating is above ``rating_threshold``). ``task`` sets the defaults of both and of
    ``ground_truth``.
    """

    task: str = "conversion"
    selection: str = Field("click", description="column of o, the selection event (default: the task's name "
                           "for it: click, responded, observed)")
    outcome: str = Field("conversion", description="column of r, seen only when o = 1 (default: conversion, "
                         "rating, label)")
    ground_truth: list[str] = ["gt_ctr", "gt_cvr", "gt_conversion"]
    keys: list[str] = ["user_id"]
    rating_range: tuple[float, float] = (1.0, 5.0)
    rating_threshold: float = Field(3.0, description="ratings: label = 1 if rating > rating_threshold")

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data):
        if not isinstance(data, dict):
            return data
        renamed = sorted(set(data) & set(_RENAMED))
        if renamed:
            raise ValueError("; ".join(f"labels.{old} was renamed labels.{_RENAMED[old]}" for old in renamed))
        task = TASKS.get(data.get("task", "conversion"))
        if task is None:
            raise ValueError(f"unknown task {data.get('task')!r}; known: {', '.join(TASKS)}")
        defaults = {"selection": task.selection, "outcome": task.outcome, "ground_truth": list(task.ground_truth)}
        return {**defaults, **data}

    @property
    def spec(self) -> Task:
        """The :class:`Task` record of ``task``."""
        return TASKS[self.task]

    @model_validator(mode="after")
    def _check_range(self):
        if self.rating_range[0] > self.rating_range[1]:
            raise ValueError(f"rating_range {self.rating_range} is empty")
        return self


# --------------------------------------------------------------------------- the schema stages read
TRANSFORMED_SUFFIX = "_xf"
ColumnKind = Literal["string", "string_list", "float", "int"]


def transformed_name(name: str) -> str:
    """The name a feature carries after preprocessing (labels keep theirs)."""
    return name + TRANSFORMED_SUFFIX


@dataclasses.dataclass(frozen=True)
class Schema:
    """What the transform stage needs to know about the raw columns, read from the config."""

    features: tuple[FeatureConfig, ...]
    labels: tuple[str, ...]
    ground_truth: tuple[str, ...]
    keys: tuple[str, ...]
    task: str = "conversion"

    @classmethod
    def from_config(cls, config) -> "Schema":
        """From anything with ``features`` and ``labels`` sections (the root config, or a stage's view)."""
        lab = config.labels
        keys = tuple(k for k in lab.keys)
        return cls(tuple(config.features), (lab.selection, lab.outcome), tuple(lab.ground_truth), keys, lab.task)

    @property
    def task_columns(self) -> tuple[tuple[str, str], ...]:
        """The task's own raw columns besides its labels (``Task.columns``: the questionnaire's behaviour)."""
        return TASKS[self.task].columns

    @property
    def passthrough(self) -> tuple[str, ...]:
        """Columns copied to the output unchanged: labels, the task's columns, ground truth, keys."""
        own = tuple(name for name, _ in self.task_columns if name not in self.labels)
        head = self.labels + own + self.ground_truth
        return head + tuple(k for k in self.keys if k not in head)

    def column_kinds(self) -> dict[str, ColumnKind]:
        """The kind of every raw column the pipeline reads: string, string_list, float or int.

        Labels are int (0/1), except a survey rating (float, 0 when there is no response).
        """
        kinds: dict[str, ColumnKind] = {
            f.name: ("string_list" if f.multivalued else "string") if f.kind == "categorical" else "float"
            for f in self.features}
        kinds.update({name: "int" for name in self.labels})
        kinds[self.labels[1]] = TASKS[self.task].outcome_kind
        kinds.update(dict(self.task_columns))
        kinds.update({name: "float" for name in self.ground_truth})
        kinds.update({name: "string" for name in self.keys if name not in kinds})
        return kinds

    def column_types(self) -> dict:
        """The tf dtype of every raw column the pipeline reads."""
        dtypes = _dtypes()
        return {name: dtypes[kind] for name, kind in self.column_kinds().items()}

    def raw_feature_spec(self) -> dict:
        """Spec of the raw metadata written next to ``transform_fn`` (no defaults: TFT forbids them)."""
        import tensorflow as tf
        _DTYPES = _dtypes()
        return {name: tf.io.VarLenFeature(tf.string) if kind == "string_list"
                else tf.io.FixedLenFeature([], _DTYPES[kind]) for name, kind in self.column_kinds().items()}

    def serving_feature_spec(self) -> dict:
        """Spec the serving signature parses: features only, each with a default so it may be omitted
        (a multivalued feature that is omitted is an empty list)."""
        import tensorflow as tf
        spec = {}
        for f in self.features:
            if f.multivalued:
                spec[f.name] = tf.io.VarLenFeature(tf.string)
            elif f.kind == "categorical":
                spec[f.name] = tf.io.FixedLenFeature([], tf.string, default_value=str(f.default or ""))
            else:
                spec[f.name] = tf.io.FixedLenFeature([], tf.float32, default_value=float(f.default or 0.0))
        return spec


def cardinality(feature: FeatureConfig, tft_output) -> int:
    """Embedding-table rows for an embedded feature, read from the transform output."""
    if feature.transform == "vocabulary":
        return tft_output.vocabulary_size_by_name(feature.name) + feature.num_oov_buckets
    if feature.transform == "hash":
        return feature.hash_buckets
    if feature.transform == "bucketize":
        return feature.num_buckets + 1
    raise ValueError(f"feature {feature.name!r} ({feature.transform}) is not embedded")


def embedded_features(features: Sequence[FeatureConfig]) -> list[FeatureConfig]:
    """The features the model looks up in embedding tables."""
    return [f for f in features if f.is_embedded]


def dense_features(features: Sequence[FeatureConfig]) -> list[FeatureConfig]:
    """The features the model reads as numbers."""
    return [f for f in features if not f.is_embedded]


def _dtypes() -> dict:
    import tensorflow as tf
    return {"string": tf.string, "string_list": tf.string, "float": tf.float32, "int": tf.int64}
