"""The training input (trainer/data.py): ``train.cache_records`` keeps the serialized records after the
first pass, and every epoch is still the whole split, reshuffled."""
import pytest
import tensorflow as tf

from trainer.data import make_dataset

SPEC = {"id": tf.io.FixedLenFeature([], tf.int64)}


def _shards(tmp_path, n=200, shards=2) -> list[str]:
    files = []
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for s in range(shards):
        path = str(tmp_path / f"part-{s:05d}.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options) as writer:
            for i in range(s, n, shards):
                feature = {"id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        files.append(path)
    return files


def _ids(dataset) -> list[int]:
    """One full pass (an epoch, as Keras iterates a dataset without repeat)."""
    return [int(i) for batch in dataset for i in batch["id"].numpy()]


def test_cached_records_are_read_once_and_every_epoch_is_the_whole_split_reshuffled(tmp_path):
    files = _shards(tmp_path)
    ds = make_dataset(files, SPEC, 20, shuffle_buffer=200, seed=3, cache=True)
    first = _ids(ds)
    for f in files:  # the shards are gone: later epochs can only come from the cache
        tf.io.gfile.remove(f)
    second, third = _ids(ds), _ids(ds)
    assert sorted(first) == sorted(second) == sorted(third) == list(range(200))
    assert first != second != third  # reshuffled every epoch


def test_without_the_cache_every_epoch_reads_the_shards(tmp_path):
    files = _shards(tmp_path)
    ds = make_dataset(files, SPEC, 20, shuffle_buffer=200, seed=3)
    assert sorted(_ids(ds)) == list(range(200))
    for f in files:
        tf.io.gfile.remove(f)
    with pytest.raises(tf.errors.NotFoundError):
        _ids(ds)
