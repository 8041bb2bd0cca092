"""The estimator registry: ``model.name`` in the config -> estimator class.

Explicit on purpose: adding an estimator means adding its module and one line here.
"""
from __future__ import annotations

import difflib

from trainer.estimators.base import Estimator, Labels, Update
from trainer.estimators.base_cvr import BaseCvr
from trainer.estimators.c_ips import CIps
from trainer.estimators.dr_v2 import DrV2
from trainer.estimators.escm2_dr import Escm2Dr
from trainer.estimators.escm2_ipw import Escm2Ipw
from trainer.estimators.esmm import Esmm
from trainer.estimators.heuristic_dr import HeuristicDr
from trainer.estimators.ips_v2 import IpsV2
from trainer.estimators.joint_learning_dr import JointLearningDr
from trainer.estimators.multi_dr import MultiDr
from trainer.estimators.multi_ipw import MultiIpw
from trainer.estimators.naive_imputation import NaiveImputation
from trainer.estimators.naive_ipw import NaiveIpw
from trainer.estimators.oracle import Oracle
from trainer.estimators.oversampling import Oversampling
from trainer.estimators.survey import SurveyIpw, SurveyStandalone
from trainer.own_loop import OwnLoopEstimator

REGISTRY: dict[str, type[Estimator]] = {cls.name: cls for cls in (
    BaseCvr, Oversampling, NaiveImputation, Esmm, NaiveIpw, MultiIpw, MultiDr, JointLearningDr, HeuristicDr,
    Escm2Ipw, Escm2Dr, IpsV2, DrV2, Oracle,
    SurveyIpw, SurveyStandalone)}
# Estimators with their own training loop (trainer.own_loop), trained by trainer.train all the same.
OWN_LOOP_REGISTRY: dict[str, type[OwnLoopEstimator]] = {cls.name: cls for cls in (CIps,)}


def get_estimator(name: str) -> type:
    """The estimator class registered as ``name``; a clear error naming the closest one if absent."""
    known = {**REGISTRY, **OWN_LOOP_REGISTRY}
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"model.name: unknown estimator {name!r}{hint}; known: {', '.join(sorted(known))}")
    return known[name]


__all__ = ["Estimator", "Labels", "OWN_LOOP_REGISTRY", "REGISTRY", "Update", "get_estimator"]
