"""One progress reporter for every training loop (the Keras fit and estimators' own loops).

Within an epoch (or any unit a loop calls an epoch: a DEC epoch, a recommender epoch) a line every
``every_seconds`` with step, examples/s, the loss terms and the ETA; a line per epoch; and the epoch's
terms as TensorBoard scalars under ``<model_dir>/tensorboard/{train,validation}`` (``epoch_<term>``,
the names Keras' TensorBoard callback uses)::

    progress = Progress("my_estimator", model_dir, total_epochs=n)
    progress.start_epoch("round 1/3 DEC", steps=30)
    progress.step(batch_size, {"clustering": loss})      # per step
    progress.end_epoch({"clustering": mean_loss})
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf
import tf_keras

log = logging.getLogger("trainer")
TENSORBOARD = "tensorboard"


class Progress:
    def __init__(self, name: str, model_dir=None, total_epochs: Optional[int] = None, every_seconds: float = 15.0):
        self.name, self.total_epochs, self._every = name, total_epochs, every_seconds
        self._writers = {}
        if model_dir is not None:
            root = Path(model_dir) / TENSORBOARD
            self._writers = {kind: tf.summary.create_file_writer(str(root / kind)) for kind in ("train", "validation")}
        self._epochs_done, self._run_start = 0, time.time()
        self._label, self._steps, self._total_steps = "epoch", 0, None

    def at_epoch(self, done: int) -> None:
        """The loop starts after ``done`` epochs (a fit resumed from its backup): numbering follows."""
        self._epochs_done = done

    def start_epoch(self, label: Optional[str] = None, steps: Optional[int] = None) -> None:
        n = self._epochs_done + 1
        self._label = label or (f"epoch {n}/{self.total_epochs}" if self.total_epochs else f"epoch {n}")
        self._start = self._last = time.time()
        self._steps, self._examples, self._total_steps = 0, 0, steps

    def step(self, examples: int, terms: Mapping, steps: int = 1) -> None:
        """``steps`` train steps of ``examples`` examples in all have run since the last call."""
        self._steps += steps
        self._examples += examples
        now = time.time()
        if now - self._last >= self._every:
            self._last = now
            steps = f"{self._steps}/{self._total_steps}" if self._total_steps else str(self._steps)
            log.info("%s %s step %s: %s, %.0f examples/s%s", self.name, self._label, steps, format_terms(terms),
                     self._examples / (now - self._start), self._eta(now))

    def end_epoch(self, terms: Mapping, validation: Optional[Mapping] = None) -> None:
        now = time.time()
        seconds = now - self._start
        self._epochs_done += 1
        shown = format_terms(terms) + (f" | val {format_terms(validation)}" if validation else "")
        log.info("%s %s done in %.1fs (%d steps, %.0f examples/s): %s%s", self.name, self._label, seconds,
                 self._steps, self._examples / max(seconds, 1e-9), shown, self._eta(now, epoch_done=True))
        for kind, values in (("train", terms), ("validation", validation or {})):
            if kind in self._writers and values:
                with self._writers[kind].as_default():
                    for key, value in values.items():
                        tf.summary.scalar(f"epoch_{key}", float(np.asarray(value)), step=self._epochs_done - 1)
                self._writers[kind].flush()

    def _eta(self, now: float, epoch_done: bool = False) -> str:
        """Time left in the run (whole epochs at the mean pace so far), or in this epoch if steps are known."""
        left = None
        if self.total_epochs and self._epochs_done:
            per_epoch = (now - self._run_start) / (self._epochs_done + (0 if epoch_done else self._fraction()))
            left = per_epoch * (self.total_epochs - self._epochs_done - (0 if epoch_done else self._fraction()))
        elif self._total_steps and self._steps and not epoch_done:
            left = (now - self._start) / self._steps * (self._total_steps - self._steps)
        return "" if left is None else f", ETA {_clock(max(left, 0.0))}"

    def _fraction(self) -> float:
        return min(self._steps / self._total_steps, 1.0) if self._total_steps else 0.0


class ProgressCallback(tf_keras.callbacks.Callback):
    """The Keras fit's adapter: steps and epochs to :class:`Progress` (``val_*`` logs as validation)."""

    def __init__(self, progress: Progress, batch_size: int):
        super().__init__()
        self._supports_tf_logs = True  # logs stay tensors: converted only when a line is printed
        self._progress, self._batch_size, self._steps = progress, batch_size, None

    def on_epoch_begin(self, epoch, logs=None):
        self._progress.at_epoch(epoch)  # Keras' own epoch index: a resumed fit starts after its backup's
        self._progress.start_epoch(steps=(self.params or {}).get("steps") or self._steps)
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        # ``batch`` is the index of the last step run: with train.steps_per_execution = N, every N-th
        done, self._seen = batch + 1 - self._seen, batch + 1
        self._progress.step(self._batch_size * done, logs or {}, steps=done)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._steps = self._progress._steps  # an epoch's length, for the next epochs' ETA
        self._progress.end_epoch({k: v for k, v in logs.items() if not k.startswith("val_")},
                                 {k[4:]: v for k, v in logs.items() if k.startswith("val_")})


def format_terms(terms: Optional[Mapping]) -> str:
    return " ".join(f"{k}={float(np.asarray(_local(v))):.4f}" for k, v in sorted((_local(terms) or {}).items()))


def _local(value):
    """A value of this process: a parameter-server step's RemoteValue fetched (only when a line is printed)."""
    return value.fetch() if hasattr(value, "fetch") else value


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"
