"""Estimators: the registry (TensorFlow-free, :mod:`trainer.estimators.registry`), the protocol
(:mod:`trainer.estimators.interface`) and one module per estimator."""
from trainer.estimators.registry import ESTIMATORS, EstimatorSpec, Sweep, find_sweep, get_estimator

__all__ = ["ESTIMATORS", "EstimatorSpec", "Sweep", "find_sweep", "get_estimator"]
