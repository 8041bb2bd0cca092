"""The multi-task model every multi-task estimator shares: layers, losses, propensity weighting, validation metrics, its Keras fit."""
