"""tf.data input: gzip TFRecord shards of transformed examples, parsed a whole batch at a time."""
from __future__ import annotations

import glob
from typing import Mapping, Optional

import tensorflow as tf


def split_files(data_dir, split: str) -> list[str]:
    """The TFRecord shards the preprocessing job wrote for ``split``."""
    files = sorted(glob.glob(f"{data_dir}/{split}/*.tfrecord.gz"))
    if not files:
        raise FileNotFoundError(f"no {split} shards under {data_dir}/{split}/ (run `ctrcvr preprocess` first)")
    return files


def make_dataset(files: list[str], feature_spec: Mapping[str, tf.io.FixedLenFeature], batch_size: int,
                 shuffle_buffer: int = 0, seed: Optional[int] = None, repeat: bool = False,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of parsed feature dicts; shuffling interleaves shards and then records."""
    files_ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_buffer:
        files_ds = files_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = files_ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                             cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                             deterministic=not shuffle_buffer)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda records: tf.io.parse_example(records, feature_spec), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
