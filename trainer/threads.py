"""``train.intra_op_threads`` / ``train.inter_op_threads``: TensorFlow's two op thread pools.

TensorFlow fixes both pools when it first runs an op, for the whole process. ``ctrcvr`` applies the
configured sizes as soon as the config is read (before preprocessing or training runs anything);
:func:`apply_op_threads` is also called by :func:`trainer.train.train` for library use, and says which
key to change when the process already runs with other sizes instead of silently keeping them.
"""
from __future__ import annotations

import logging

from trainer.config import TrainConfig
from transforms.errors import UserError

log = logging.getLogger("trainer")


def apply_op_threads(cfg: TrainConfig) -> None:
    """Sizes the intra-op (threads inside one op, e.g. a matmul) and inter-op (ops run side by side)
    pools as ``cfg`` asks; unset keys leave TensorFlow's defaults (one thread per core each)."""
    import tensorflow as tf
    wanted = {"intra_op_threads": (cfg.intra_op_threads, tf.config.threading.get_intra_op_parallelism_threads,
                                   tf.config.threading.set_intra_op_parallelism_threads),
              "inter_op_threads": (cfg.inter_op_threads, tf.config.threading.get_inter_op_parallelism_threads,
                                   tf.config.threading.set_inter_op_parallelism_threads)}
    for key, (threads, get, set_) in wanted.items():
        if threads is None or get() == threads:
            continue
        try:
            set_(threads)
        except RuntimeError:  # TensorFlow has started: the pools are fixed for this process
            now = get() or "TensorFlow's default"
            raise UserError(f"TensorFlow already runs in this process with {now} {key.replace('_', '-')} "
                            f"(fixed once the first op runs); set train.{key} before anything runs TensorFlow "
                            "(ctrcvr does it when it reads the config) or start a new process",
                            key=f"train.{key}") from None
        log.debug("train.%s: %d", key, threads)
