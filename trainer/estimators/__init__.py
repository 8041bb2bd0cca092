"""The estimator registry: ``model.name`` in the config -> estimator class.

Explicit on purpose: adding an estimator means adding its module and one line here.
"""
from __future__ import annotations

import difflib

from trainer.estimators.base import Estimator, Labels
from trainer.estimators.esmm import Esmm

REGISTRY: dict[str, type[Estimator]] = {cls.name: cls for cls in (Esmm,)}


def get_estimator(name: str) -> type[Estimator]:
    """The estimator class registered as ``name``; a clear error naming the closest one if absent."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"model.name: unknown estimator {name!r}{hint}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["Estimator", "Labels", "REGISTRY", "get_estimator"]
