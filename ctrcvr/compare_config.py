"""The ``compare`` and ``tune`` sections: which estimators (or named variants) and knob sweeps ``ctrcvr
compare`` trains on the same data, over how many seeds, and which metrics it tabulates
(:mod:`ctrcvr.compare`); which config keys ``ctrcvr tune`` searches and how it selects (:mod:`ctrcvr.tune`)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_serializer, field_validator, model_validator

from transforms.schema import Section


class CompareVariant(Section):
    """One ``compare.models`` entry with config overrides, e.g.
    ``{label: "C-IPS K=1", model: c_ips, set: {model.c_ips.n_clusters: 1}}``; ``set`` takes dotted keys
    under ``model.``, ``train.`` or ``eval.`` (the data are the same for every run)."""

    label: Optional[str] = Field(None, description="its name in tables (default: the model name)")
    model: str
    set: dict[str, Any] = {}
    space: dict[str, list[Any]] = Field(
        {}, description="with compare.tune: keys searched for this entry besides tune.space, e.g. "
                        "{model.bmse.weight: [0.005, 0.05, 0.5]}")

    @property
    def name(self) -> str:
        return self.label or self.model


class SweepConfig(Section):
    """One sweep of a knob an estimator declares (its ``sweeps``), e.g. seed 003 Fig. 6:
    ``{model: multi_ipw, knob: tau_percent, values: [0.25, 0.5, 0.75, 0.9]}``."""

    model: str
    knob: str = Field(description="a knob the estimator declares (ctrcvr compare lists them on a typo)")
    values: list[float] = Field(min_length=1)
    seeds: Optional[int] = Field(None, ge=1, description="seeds per point (default: compare.seeds)")


_RENAMED_COMPARE = {"tau_percent_sweep": "sweeps: [{model: ..., knob: tau_percent, values: [...]}]",
                    "undersample_sweep": "sweeps: [{model: ..., knob: undersample, values: [...]}]",
                    "sweep_seeds": "sweeps[i].seeds"}


class CompareConfig(Section):
    """``ctrcvr compare``: estimators × seeds trained on the same preprocessed data, then tabulated."""

    models: list[CompareVariant] = Field(
        [], validate_default=True,
        description="estimator names, or named variants {label, model, set: {dotted.key: value}}")
    seeds: int = Field(3, ge=1, description="training seeds per model: config.seed, config.seed + 1, ...")
    metrics: list[str] = Field(
        ["cvr_auc_entire_space", "ctcvr_auc", "cvr_bias", "cvr_mae_vs_truth", "cvr_auc_clicked", "ctr_auc",
         "cvr_calibration_error"], description="table columns, in order; the first four are plotted")
    sweeps: list[SweepConfig] = Field([], description="knob sweeps, each plotted against its values")
    tune: bool = Field(False, description="tune every entry first: the tune.space grid (+ the entry's own "
                       "space) scored by tune.metric on the validation split, tune.seeds seeds per point; "
                       "then its compare.seeds runs at the chosen point (seed 002: every method tuned)")

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data):
        renamed = sorted(set(data) & set(_RENAMED_COMPARE)) if isinstance(data, dict) else []
        if renamed:
            raise ValueError("; ".join(f"compare.{k} was replaced by compare.{_RENAMED_COMPARE[k]}" for k in renamed))
        return data

    @field_validator("models", mode="before")
    @classmethod
    def _names_are_variants(cls, value):
        return [{"model": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_serializer("models")
    def _plain_names(self, models: list[CompareVariant]):
        return [m.model if m.label is None and not m.set and not m.space else m.model_dump() for m in models]

    @model_validator(mode="after")
    def _unique_labels(self):
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"compare.models: two entries are named {', '.join(map(repr, dupes))}; "
                             "give the variants distinct labels")
        return self


class TuneConfig(Section):
    """``ctrcvr tune``: grid or random search over named config keys, selected on the validation split."""

    method: Literal["grid", "random"] = Field("grid", description="grid: every combination of space; random: "
                                              "trials points drawn from it (seeded by config.seed)")
    space: dict[str, list[Any]] = Field(
        {}, description="dotted key (under model., train., eval.) -> the values to try, e.g. "
        "{train.learning_rate: [0.001, 0.005], model.mf.weight_decay: [0, 1e-4]}")
    trials: Optional[int] = Field(None, ge=1, description="random: points drawn; grid: at most this many (null: all)")
    seeds: int = Field(1, ge=1, description="training seeds per point; the score is their mean")
    metric: str = Field("validation_auc", description="the selection metric, computed on the validation split "
                        "(validation_*) or the MNAR eval split (snips_*, eval_*); never a test (mar_*) metric")
    higher_is_better: bool = True

    @field_validator("metric")
    @classmethod
    def _not_on_test(cls, metric):
        if metric.startswith("mar_"):
            raise ValueError(f"tune.metric={metric!r} reads the MAR test split; select on validation_* or snips_*")
        return metric
