"""Helpers every simulator shares: the logistic function and calibration by bisection."""
from __future__ import annotations

from typing import Callable

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written with tanh so that no input overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def bisect(mean_at: Callable[[float], float], target: float, lo: float = -40.0, hi: float = 40.0) -> float:
    """Where the increasing function ``mean_at`` equals ``target`` (an intercept set so that a mean rate
    hits its target), to within (hi - lo) / 2^61."""
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_at(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)
