"""The trainer's view of the preprocessed data: TFRecord shards per split, parsed into batches.

:class:`TrainingData` binds a :class:`trainer.config.TrainerSpec` to one preprocess output
(``data_dir`` with the transform output and ``train/``, ``eval/``, ``test/`` shards); estimators'
``build`` and ``fit`` read the data through it.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import json
import logging
import os
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from trainer.config import TrainConfig, TrainerSpec
from transforms.errors import UserError
from transforms.schema import cardinality, transformed_name

log = logging.getLogger("trainer")


def split_files(data_dir, split: str) -> list[str]:
    """The TFRecord shards the preprocessing job wrote for ``split``."""
    files = sorted(glob.glob(f"{data_dir}/{split}/*.tfrecord.gz"))
    if not files:
        raise FileNotFoundError(f"no {split} shards under {data_dir}/{split}/ (run `ctrcvr preprocess` first)")
    return files


def has_split(data_dir, split: str) -> bool:
    return any(Path(data_dir, split).glob("*.tfrecord.gz"))


def split_rows(data_dir) -> dict[str, int]:
    """Rows per split, from the preprocess report (``report.json``); empty when there is none."""
    path = Path(data_dir) / "report.json"
    if not path.is_file():
        return {}
    return {split: s["rows"] for split, s in json.loads(path.read_text())["splits"].items()}


def physical_memory() -> int:
    """This machine's RAM in bytes (0 when the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _tensor_bytes(column) -> int:
    if isinstance(column, tf.RaggedTensor):
        return _tensor_bytes(column.flat_values) + sum(_tensor_bytes(s) for s in column.nested_row_splits)
    return int(np.prod(column.shape)) * column.dtype.size


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


def load_examples(files: list[str], feature_spec: Mapping[str, object], batch_size: int = 65_536) -> dict:
    """Every record of ``files`` parsed, as one tensor per column (a ``tf.RaggedTensor`` for a
    variable-length feature), in file order: what :func:`in_memory_dataset` batches from."""
    parts: dict[str, list] = {k: [] for k in feature_spec}
    for batch in make_dataset(files, feature_spec, batch_size):
        for k, v in batch.items():
            parts[k].append(tf.RaggedTensor.from_sparse(v) if isinstance(v, tf.SparseTensor) else v)
    return {k: tf.concat(v, axis=0) for k, v in parts.items()}


def in_memory_dataset(columns: Mapping[str, tf.Tensor], batch_size: int, seed: int, repeat: bool = False,
                      drop_remainder: bool = False) -> tf.data.Dataset:
    """``train.cache_examples``: batches gathered from parsed columns in memory, in a new random order (a full
    permutation of the rows, not a shuffle buffer) on every pass. Pass k's order is a function of ``seed``
    and k alone, so every multi_worker_mirrored worker sees the same batches and keeps its share (DATA
    sharding). Ragged columns come out as ``tf.SparseTensor``, as ``tf.io.parse_example`` gives them."""
    rows = int(next(iter(columns.values())).shape[0])
    full = rows // batch_size * batch_size

    def one_pass(pass_seed):
        order = tf.random.experimental.stateless_shuffle(tf.range(rows, dtype=tf.int64),
                                                         seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)]))
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(order[:full], [-1, batch_size]))
        if full < rows and not drop_remainder:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        return batches

    def gather(index):
        out = {}
        for name, column in columns.items():
            picked = tf.gather(column, index)
            out[name] = picked.to_sparse() if isinstance(picked, tf.RaggedTensor) else picked
        return out

    passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = (passes if repeat else passes.take(1)).flat_map(one_pass)
    return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def examples_bytes(feature_spec: Mapping[str, object], rows: int) -> int:
    """Memory of ``rows`` parsed rows' fixed-length columns (variable-length ones not counted)."""
    per_row = sum(tf.as_dtype(f.dtype).size * int(np.prod(f.shape or [1])) for f in feature_spec.values()
                  if isinstance(f, tf.io.FixedLenFeature))
    return per_row * rows


def check_examples_fit(feature_spec: Mapping[str, object], rows: int, memory: Optional[int] = None) -> None:
    """``train.cache_examples``: a clear error, before loading, when ``rows`` parsed rows would take more than
    half of ``memory`` (default: this machine's RAM; unknown RAM is not checked)."""
    need, have = examples_bytes(feature_spec, rows), physical_memory() if memory is None else memory
    if have and need > have / 2:
        raise UserError(f"the train split's {rows:,} parsed rows need about {_size(need)}, more than half of "
                        f"this machine's {_size(have)}: turn train.cache_examples off (or use "
                        "train.cache_records, the compressed records)", key="train.cache_examples")


def _size(n: int) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n:,} bytes"


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
        if split == "train" and shuffle and cfg.cache_examples:
            ds = in_memory_dataset(self.cached_examples, batch_size, self.spec.seed, repeat=repeat)
            return ds.with_options(input_options(cfg))
        ds = make_dataset(split_files(self.data_dir, self._shards(split)), self.feature_spec, batch_size,
                          cfg.shuffle_buffer if shuffle else 0, seed=self.spec.seed, repeat=repeat,
                          deterministic=cfg.deterministic or deterministic,
                          cache=cfg.cache_records and split == "train")
        keep = self._slice(split)
        if keep is not None:
            ds = (ds.map(keep).unbatch().filter(lambda row: row["_keep"])
                  .map(lambda row: {k: v for k, v in row.items() if k != "_keep"}).batch(batch_size))
        return ds.with_options(input_options(cfg))

    @functools.cached_property
    def cached_examples(self) -> dict:
        """``train.cache_examples``: the train split parsed into memory once (every fit of this data reuses
        it), after checking its estimated size against the machine's memory."""
        rows = split_rows(self.data_dir).get("train")
        if rows is not None:
            check_examples_fit(self.feature_spec, rows)
        started = time.perf_counter()
        columns = load_examples(split_files(self.data_dir, "train"), self.feature_spec)
        size = sum(_tensor_bytes(c) for c in columns.values())
        log.info("train.cache_examples: %s train rows, %d columns parsed into memory (%.1f MB) in %.1fs",
                 f"{int(next(iter(columns.values())).shape[0]):,}", len(columns), size / 1e6,
                 time.perf_counter() - started)
        return columns

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
