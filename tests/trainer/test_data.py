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


# train.cache_examples: the split parsed into memory once, every pass a new full permutation

def _in_memory(files, seed=3, batch=32, repeat=False, spec=SPEC):
    from trainer.data import in_memory_dataset, load_examples
    return in_memory_dataset(load_examples(files, spec), batch, seed=seed, repeat=repeat)


def test_cached_examples_give_every_row_once_per_epoch_in_a_new_order(tmp_path):
    files = _shards(tmp_path)
    ds = _in_memory(files)  # 200 rows, batches of 32: six full batches and one of 8
    for f in files:  # parsed before the first epoch: the shards are never read again
        tf.io.gfile.remove(f)
    epochs = [_ids(ds) for _ in range(3)]
    assert all(sorted(e) == list(range(200)) for e in epochs)  # a permutation, not a shuffle buffer's sample
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
    assert [len(b["id"]) for b in ds] == [32] * 6 + [8]
    assert epochs[0][:20] != list(range(20)) and epochs[0][:20] != sorted(epochs[0][:20])  # not file order


def test_cached_examples_order_is_a_function_of_the_seed(tmp_path):
    files = _shards(tmp_path)
    a, b, other = _in_memory(files, seed=5), _in_memory(files, seed=5), _in_memory(files, seed=6)
    assert [_ids(a) for _ in range(2)] == [_ids(b) for _ in range(2)]  # every worker / rerun sees the same batches
    assert _ids(_in_memory(files, seed=5)) != _ids(other)


def test_cached_examples_repeated_are_back_to_back_permutations(tmp_path):
    files = _shards(tmp_path)
    ds = _in_memory(files, batch=50, repeat=True)  # Keras' steps_per_epoch path
    ids = [int(i) for batch in ds.take(8) for i in batch["id"].numpy()]
    first, second = ids[:200], ids[200:]
    assert sorted(first) == sorted(second) == list(range(200)) and first != second


def test_cached_examples_keep_variable_length_columns_row_by_row(tmp_path):
    path = str(tmp_path / "part-00000.tfrecord.gz")
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for i in range(40):  # row i: id i, tags [i, i+1000] for odd i, none for even i
            tags = [i, i + 1000] if i % 2 else []
            feature = {"id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                       "tags": tf.train.Feature(int64_list=tf.train.Int64List(value=tags))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    spec = {**SPEC, "tags": tf.io.VarLenFeature(tf.int64)}
    seen = 0
    for batch in _in_memory([path], batch=16, spec=spec):
        assert isinstance(batch["tags"], tf.SparseTensor)  # as tf.io.parse_example gives it to the model
        rows = tf.sparse.to_dense(batch["tags"], default_value=-1).numpy()
        for i, row in zip(batch["id"].numpy(), rows):
            assert [t for t in row if t >= 0] == ([i, i + 1000] if i % 2 else [])
            seen += 1
    assert seen == 40


def test_cached_examples_refuse_a_split_larger_than_half_the_memory():
    from trainer.data import check_examples_fit, examples_bytes
    from transforms.errors import UserError
    spec = {"a": tf.io.FixedLenFeature([], tf.int64), "b": tf.io.FixedLenFeature([3], tf.float32)}
    assert examples_bytes(spec, 1000) == 1000 * (8 + 3 * 4)
    check_examples_fit(spec, 1000, memory=40_000)  # 20 kB of 40 kB: fits
    with pytest.raises(UserError, match="20,001 parsed rows") as err:
        check_examples_fit(spec, 20_001, memory=800_000)
    assert err.value.key == "train.cache_examples"
