"""The estimator registry: ``model.name`` in the config -> estimator class.

Explicit on purpose: adding an estimator means adding its module and one line here.
"""
from __future__ import annotations

import difflib

from trainer.estimators.base import Estimator, Labels, Update
from trainer.estimators.base_cvr import BaseCvr
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

REGISTRY: dict[str, type[Estimator]] = {cls.name: cls for cls in (
    BaseCvr, Oversampling, NaiveImputation, Esmm, NaiveIpw, MultiIpw, MultiDr, JointLearningDr, HeuristicDr,
    Escm2Ipw, Escm2Dr, IpsV2, DrV2, Oracle,
    SurveyIpw, SurveyStandalone)}


def get_estimator(name: str) -> type[Estimator]:
    """The estimator class registered as ``name``; a clear error naming the closest one if absent."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"model.name: unknown estimator {name!r}{hint}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["Estimator", "Labels", "REGISTRY", "Update", "get_estimator"]
