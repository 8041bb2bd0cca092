"""The estimator registry: ``model.name`` -> :class:`EstimatorSpec`, one explicit line per estimator.

A spec is what the rest of the program may know about an estimator without TensorFlow: the parameter
groups it reads (config validation), the validation metrics it reports (early stopping), its sweepable
knobs (``compare``), whether it trains on the simulator's potential outcome; and where its
implementation lives, imported on first use. See :mod:`trainer.estimators.interface` for the protocol
the implementation follows.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

from transforms.errors import did_you_mean
from trainer.estimators.params import EasqGroup
from trainer.estimators.params import (Balancing, CIps, Counterfactual, HeuristicImputation, Imputation,
                                       ImputationWeight, Oversampling, RelMf, Survey, Towers, TwoStagePropensity, Undersampling,
                                       Weighting)

# The validation metrics an estimator may declare (computed in trainer.model.validation); early stopping
# may monitor val_loss, val_<term> and val_<metric> of these.
CTCVR_LOGLOSS = "ctcvr_logloss"
CVR_SNIPS_LOGLOSS = "cvr_snips_logloss"
CVR_VALIDATION = (CTCVR_LOGLOSS, CVR_SNIPS_LOGLOSS)
DEFAULT_ESTIMATOR = "esmm"  # model.name when a config names none


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweepable knob: ``overrides(value)`` are the dotted config keys one sweep point sets; ``axis``
    labels a plot's x axis, ``symbol`` a run (``<estimator> <symbol>=<value>``)."""

    axis: str
    symbol: str
    overrides: Callable[[float], dict[str, Any]]


@dataclasses.dataclass(frozen=True, eq=False)
class EstimatorSpec:
    """One registered estimator. ``implementation`` is ``"module:Class"`` (imported by :meth:`load`)."""

    name: str
    implementation: str
    params: tuple[type, ...]
    validation_metrics: tuple[str, ...] = ()
    sweeps: Mapping[str, Sweep] = dataclasses.field(default_factory=dict)
    needs_potential_outcome: bool = False
    online: bool = False  # it has an online loop (train.mode: online)

    def load(self) -> type:
        """The implementing class (imports TensorFlow)."""
        module, _, cls = self.implementation.partition(":")
        return getattr(importlib.import_module(module), cls)

    def create(self, params):
        """An estimator instance reading ``params`` (a :class:`trainer.config.ModelConfig`)."""
        return self.load()(params, self)

    def reads(self, key: str) -> bool:
        """Whether ``model.<key>`` is one of this estimator's parameters."""
        return key in ("name", "embedding_dim") or any(key in group.model_fields for group in self.params)


_MT = "trainer.estimators"
# seed 001 Fig. 6: K1, K2, λ1, λ2
EASQ_SWEEPS = {"main_experts": Sweep("K1 (main-task experts)", "K1",
                                     lambda v: {"model.easq.main_experts": int(v)}),
               "satisfaction_experts": Sweep("K2 (satisfaction experts)", "K2",
                                             lambda v: {"model.easq.satisfaction_experts": int(v)}),
               "lambda1": Sweep("λ1 (weight of L_satis)", "λ1", lambda v: {"model.easq.lambda1": v}),
               "lambda2": Sweep("λ2 (weight of L_DPO)", "λ2", lambda v: {"model.easq.lambda2": v})}
_CVR = (Towers, Weighting)              # every CVR-family estimator: towers, and 1/p̂ for cvr_snips_logloss
_DR = (*_CVR, Undersampling, Imputation)


def _spec(name: str, implementation: str, params=_CVR, validation=CVR_VALIDATION, **kwargs) -> EstimatorSpec:
    return EstimatorSpec(name, f"{_MT}.{implementation}", params, validation, **kwargs)


ESTIMATORS: dict[str, EstimatorSpec] = {s.name: s for s in (
    _spec("base", "naive_cvr:NaiveCvr"),
    _spec("oversampling", "oversampling:Oversampling", (*_CVR, Oversampling)),
    _spec("naive_imputation", "naive_imputation:NaiveImputation"),
    _spec("esmm", "esmm:Esmm"),
    _spec("naive_ipw", "naive_ipw:NaiveIpw"),
    _spec("multi_ipw", "multi_ipw:MultiIpw", sweeps={"tau_percent": Sweep(
        "τ% (IPW bound)", "τ%", lambda v: {"model.ipw.tau": None, "model.ipw.tau_percent": v})}),
    _spec("multi_dr", "multi_dr:MultiDr", (*_DR, ImputationWeight), sweeps={"undersample": Sweep(
        "λ (negative sampling rate)", "λ", lambda v: {"model.undersample_rate": v})}),
    _spec("joint_learning_dr", "joint_learning_dr:JointLearningDr", _DR),
    _spec("heuristic_dr", "heuristic_dr:HeuristicDr", (*_CVR, Undersampling, HeuristicImputation)),
    _spec("escm2_ipw", "escm2_ipw:Escm2Ipw", (*_CVR, Counterfactual)),
    _spec("escm2_dr", "escm2_dr:Escm2Dr", (*_DR, ImputationWeight, Counterfactual)),
    _spec("ips_v2", "ips_v2:IpsV2", (*_CVR, Balancing)),
    _spec("dr_v2", "dr_v2:DrV2", (*_DR, ImputationWeight, Balancing)),
    _spec("ips", "ips:Ips", (*_CVR, TwoStagePropensity)),
    _spec("dr_jl", "dr_jl:DrJl", (*_DR, TwoStagePropensity)),
    _spec("oracle", "oracle:Oracle", needs_potential_outcome=True),
    _spec("survey_ipw", "survey:SurveyIpw", (Towers, Weighting, Survey), ()),
    _spec("survey_standalone", "survey:SurveyStandalone", (Towers, Survey), ()),
    _spec("c_ips", "c_ips:CIps", (Weighting, CIps), ()),
    _spec("rel_mf", "rel_mf:RelMf", (Towers, Weighting, RelMf), ()),
    _spec("easq", "easq.estimator:EasqEstimator", (EasqGroup,), (), sweeps=EASQ_SWEEPS, online=True),
)}


def get_estimator(name: str) -> EstimatorSpec:
    """The estimator registered as ``name``; a clear error naming the closest one if absent."""
    if name not in ESTIMATORS:
        hint = did_you_mean(name, ESTIMATORS)
        raise KeyError(f"model.name: unknown estimator {name!r}{hint}; known: {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name]


def readers_of(key: str) -> list[str]:
    """The estimators that read ``model.<key>``."""
    return [s.name for s in ESTIMATORS.values() if s.reads(key)]


def find_sweep(knob: str) -> tuple[EstimatorSpec, Sweep]:
    """The estimator that declares the sweepable ``knob``, and the sweep."""
    owners = [(s, s.sweeps[knob]) for s in ESTIMATORS.values() if knob in s.sweeps]
    if not owners:
        known = sorted(k for s in ESTIMATORS.values() for k in s.sweeps)
        raise KeyError(f"no estimator declares a sweep {knob!r}; known: {', '.join(known)}")
    return owners[0]
