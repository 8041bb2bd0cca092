"""The trainer's view of the preprocessed data: TFRecord shards per split, parsed into batches.

:class:`TrainingData` binds a :class:`trainer.config.TrainerSpec` to one preprocess output
(``data_dir`` with the transform output and ``train/``, ``eval/``, ``test/`` shards); estimators'
``build`` and ``fit`` read the data through it.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer.config import TrainConfig, TrainerSpec
from transforms.schema import cardinality, transformed_name


def split_files(data_dir, split: str) -> list[str]:
    """The TFRecord shards the preprocessing job wrote for ``split``."""
    files = sorted(glob.glob(f"{data_dir}/{split}/*.tfrecord.gz"))
    if not files:
        raise FileNotFoundError(f"no {split} shards under {data_dir}/{split}/ (run `ctrcvr preprocess` first)")
    return files


def has_split(data_dir, split: str) -> bool:
    return any(Path(data_dir, split).glob("*.tfrecord.gz"))


def make_dataset(files: list[str], feature_spec: Mapping[str, tf.io.FixedLenFeature], batch_size: int,
                 shuffle_buffer: int = 0, seed: Optional[int] = None, repeat: bool = False,
                 drop_remainder: bool = False, deterministic: bool = False) -> tf.data.Dataset:
    """Batches of parsed feature dicts; shuffling interleaves shards and then records (in whatever order
    shards are read, unless ``deterministic``: then the order is a function of ``seed`` alone)."""
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_buffer:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                             cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                             deterministic=deterministic or not shuffle_buffer)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda records: tf.io.parse_example(records, feature_spec), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def input_options(cfg: TrainConfig) -> tf.data.Options:
    """tf.data options of the training input: a private thread pool when ``train.input_threads`` is set."""
    options = tf.data.Options()
    if cfg.deterministic:
        options.deterministic = True
    if cfg.input_threads:
        options.threading.private_threadpool_size = cfg.input_threads
        options.threading.max_intra_op_parallelism = 1
    return options


@dataclasses.dataclass(frozen=True)
class PairColumns:
    """The transformed id columns of the user and the item of (user, item) data, and their table sizes."""

    user: str
    item: str
    n_users: int
    n_items: int


class TrainingData:
    """One preprocess output as the trainer reads it."""

    def __init__(self, spec: TrainerSpec, data_dir):
        self.spec = spec
        self.data_dir = str(data_dir)

    @functools.cached_property
    def tft_output(self) -> tft.TFTransformOutput:
        return tft.TFTransformOutput(self.data_dir)

    @property
    def feature_spec(self) -> dict:
        return self.tft_output.transformed_feature_spec()

    def dataset(self, split: str, batch_size: int, shuffle: bool = False, repeat: bool = False) -> tf.data.Dataset:
        """Batches of ``split``; shuffled with ``train.shuffle_buffer`` and the seed when ``shuffle``."""
        cfg = self.spec.train
        ds = make_dataset(split_files(self.data_dir, split), self.feature_spec, batch_size,
                          cfg.shuffle_buffer if shuffle else 0, seed=self.spec.seed, repeat=repeat,
                          deterministic=cfg.deterministic)
        return ds.with_options(input_options(cfg))

    def has_split(self, split: str) -> bool:
        return has_split(self.data_dir, split)

    def cardinalities(self) -> dict[str, int]:
        """Table size of every embedded feature, from the transform output (never from the config)."""
        return {f.name: cardinality(f, self.tft_output) for f in self.spec.features if f.is_embedded}

    def pair_columns(self) -> PairColumns:
        """The user and item columns of (user, item) data (``spec.pair_features``)."""
        if self.spec.pair_features is None:
            raise ValueError("this estimator needs (user, item) data: the ratings task's user and item columns")
        features = {f.name: f for f in self.spec.features}
        for name in self.spec.pair_features:
            if name not in features or features[name].kind != "categorical" or features[name].multivalued:
                raise ValueError(f"{name!r} is the user / item column of the ratings data: declare it "
                                 f"in features as a (single-valued) categorical feature")
        user, item = self.spec.pair_features
        return PairColumns(transformed_name(user), transformed_name(item),
                           cardinality(features[user], self.tft_output), cardinality(features[item], self.tft_output))

    def read_columns(self, split: str, columns: Sequence[str], batch_size: int = 65_536) -> dict[str, np.ndarray]:
        """The named columns of every row of ``split``, in file order, as flat numpy arrays."""
        spec = self.feature_spec
        missing = [c for c in columns if c not in spec]
        if missing:
            raise KeyError(f"the preprocessed data has no column(s) {', '.join(missing)}")
        ds = make_dataset(split_files(self.data_dir, split), {c: spec[c] for c in columns}, batch_size)
        parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        for batch in ds:
            for c in columns:
                parts[c].append(batch[c].numpy().reshape(-1))
        return {c: np.concatenate(v) if v else np.array([]) for c, v in parts.items()}
