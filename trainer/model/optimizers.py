"""The optimisers of the Keras fit: ``train.optimizer`` names one.

``adam``: the legacy (fused) Keras Adam. Densified embedding gradients
(``train.dense_embedding_gradients``) make it update every row of every table on every step, moments
included: on the seed-003 architecture that is a third of the train step (``benchmarks/train.py``).

``lazy_adam``: Adam whose sparse update touches only the rows a batch looked up: their moments and
values, exactly as Adam would; the rows a batch did not look up keep their moments and their values,
where Adam would decay the moments and keep moving the values on the old momentum. It is the
optimiser of TensorFlow Addons' ``LazyAdam`` (no longer maintained, not built for this TensorFlow) and
PyTorch's ``SparseAdam``, and the usual choice for id tables of industrial size. Dense variables
(towers, experts) get plain Adam. It needs the embedding gradients as ``tf.IndexedSlices``, so it goes
with sparse embedding gradients (``train.dense_embedding_gradients`` unset or false).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras

OPTIMIZERS = ("adam", "lazy_adam")


class LazyAdam(tf_keras.optimizers.legacy.Adam):
    """Adam on the looked-up rows only (see the module docstring); dense gradients: plain Adam.

    For a row looked up at step t with gradient g (duplicates within a batch summed first by the base
    class), with lr_t = lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ), the dense kernel's bias correction:
    m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²,  θ ← θ − lr_t · m / (√v + ε).
    """

    def __init__(self, learning_rate=0.001, name: str = "LazyAdam", **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam has no amsgrad variant")
        super().__init__(learning_rate, name=name, **kwargs)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        coefficients = ((apply_state or {}).get((var_device, var_dtype))
                        or self._fallback_apply_state(var_device, var_dtype))
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m_rows = coefficients["beta_1_t"] * tf.gather(m, indices) + coefficients["one_minus_beta_1_t"] * grad
        v_rows = coefficients["beta_2_t"] * tf.gather(v, indices) + coefficients["one_minus_beta_2_t"] * grad * grad
        step = coefficients["lr"] * m_rows / (tf.sqrt(v_rows) + coefficients["epsilon"])
        return tf.group(
            tf.raw_ops.ResourceScatterUpdate(resource=m.handle, indices=indices, updates=m_rows),
            tf.raw_ops.ResourceScatterUpdate(resource=v.handle, indices=indices, updates=v_rows),
            tf.raw_ops.ResourceScatterSub(resource=var.handle, indices=indices, updates=step))


def make_optimizer(name: str, learning_rate: float):
    """The optimiser ``train.optimizer`` names, at ``train.learning_rate``."""
    if name == "adam":
        return tf_keras.optimizers.legacy.Adam(learning_rate)
    if name == "lazy_adam":
        return LazyAdam(learning_rate)
    raise ValueError(f"train.optimizer={name!r}: choose one of {', '.join(OPTIMIZERS)}")
