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
                 drop_remainder: bool = False, deterministic: bool = False, cache: bool = False) -> tf.data.Dataset:
    """Batches of parsed feature dicts; shuffling interleaves shards and then records (in whatever order
    shards are read, unless ``deterministic``: then the order is a function of ``seed`` alone).
    ``cache``: the serialized records are kept in memory after the first pass (read and un-gzipped once;
    the shard order of later epochs is the first one's, the record shuffle still changes every epoch)."""
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_buffer:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                             cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                             deterministic=deterministic or not shuffle_buffer)
    if cache:
        ds = ds.cache()
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

    def dataset(self, split: str, batch_size: int, shuffle: bool = False, repeat: bool = False,
                deterministic: bool = False) -> tf.data.Dataset:
        """Batches of ``split``; shuffled with ``train.shuffle_buffer`` and the seed when ``shuffle``
        (in an order that is a function of the seed alone when ``deterministic`` or ``train.deterministic``).
        ``validation`` and ``test`` are the two slices of the MAR test shards (:mod:`trainer.pairs`);
        ``train`` with ``train.input: full_matrix`` is every (user, item) pair in blocks."""
        cfg = self.spec.train
        if split == "train" and cfg.input == "full_matrix":
            ds = self.full_matrix(shuffle=shuffle)
            return (ds.repeat() if repeat else ds).with_options(input_options(cfg))
        ds = make_dataset(split_files(self.data_dir, self._shards(split)), self.feature_spec, batch_size,
                          cfg.shuffle_buffer if shuffle else 0, seed=self.spec.seed, repeat=repeat,
                          deterministic=cfg.deterministic or deterministic,
                          cache=cfg.cache_records and split == "train")
        keep = self._slice(split)
        if keep is not None:
            ds = (ds.map(keep).unbatch().filter(lambda row: row["_keep"])
                  .map(lambda row: {k: v for k, v in row.items() if k != "_keep"}).batch(batch_size))
        return ds.with_options(input_options(cfg))

    def has_split(self, split: str) -> bool:
        if split == "validation":
            return self._validation_fraction() > 0 and has_split(self.data_dir, "test")
        return has_split(self.data_dir, split)

    def _validation_fraction(self) -> float:
        return self.spec.eval.validation_fraction if self.spec.labels.task == "ratings" else 0.0

    def _shards(self, split: str) -> str:
        return "test" if split == "validation" else split

    def _slice(self, split: str):
        """None, or a batch map adding ``_keep`` (the rows of ``split`` among the test shards)."""
        fraction = self._validation_fraction()
        if split not in ("validation", "test") or fraction <= 0:
            if split == "validation":
                raise ValueError("no validation split: set eval.validation_fraction > 0 (ratings data with "
                                 "MAR test_files)")
            return None
        from trainer.pairs import BUCKETS, tf_pair_bucket
        columns, cut = self.pair_columns(), int(round(fraction * BUCKETS))

        def keep(batch):
            inside = tf_pair_bucket(tf.reshape(batch[columns.user], [-1]), tf.reshape(batch[columns.item], [-1])) < cut
            return {**batch, "_keep": inside if split == "validation" else ~inside}
        return keep

    def observed_matrix(self, split: str = "train"):
        """The observed ratings (o = 1) of ``split`` as dense matrices (:class:`trainer.pairs.ObservedMatrix`)."""
        from trainer.pairs import ObservedMatrix
        columns, labels = self.pair_columns(), self.spec.labels
        rows = self.read_columns(split, [columns.user, columns.item, labels.selection, labels.outcome])
        seen = rows[labels.selection] > 0.5
        return ObservedMatrix.from_pairs(rows[columns.user][seen].astype(np.int64),
                                         rows[columns.item][seen].astype(np.int64), rows[labels.outcome][seen],
                                         columns.n_users, columns.n_items)

    def full_matrix(self, shuffle: bool = True) -> tf.data.Dataset:
        """``train.input: full_matrix``: every pair in blocks, as batches of the transformed columns."""
        from trainer.pairs import full_matrix_dataset
        columns, labels = self.pair_columns(), self.spec.labels
        others = [f.name for f in self.spec.features if f.name not in self.spec.pair_features]
        if others:
            raise ValueError(f"train.input: full_matrix streams (user, item) pairs only; the features "
                             f"{', '.join(others)} are not pair columns")
        names = {"user": columns.user, "item": columns.item, "o": labels.selection, "r": labels.outcome}
        ds = full_matrix_dataset(self.observed_matrix("train"), self.spec.train.block, self.spec.seed, shuffle)
        return ds.map(lambda b: {names[k]: v for k, v in b.items()})

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
        keep = self._slice(split)
        wanted = list(columns)
        if keep is not None:
            pair = self.pair_columns()
            wanted += [c for c in (pair.user, pair.item) if c not in wanted]
        ds = make_dataset(split_files(self.data_dir, self._shards(split)), {c: spec[c] for c in wanted}, batch_size)
        parts: dict[str, list[np.ndarray]] = {c: [] for c in wanted}
        for batch in ds:
            for c in wanted:
                parts[c].append(batch[c].numpy().reshape(-1))
        out = {c: np.concatenate(v) if v else np.array([]) for c, v in parts.items()}
        if keep is not None:
            from trainer.pairs import validation_mask
            mask = validation_mask(out[pair.user], out[pair.item], self._validation_fraction())
            out = {c: v[mask if split == "validation" else ~mask] for c, v in out.items()}
        return {c: out[c] for c in columns}
