"""The TFRecord sink: every row lands once in its split's shards, whichever thread encoded it."""
import glob

import apache_beam as beam
import pyarrow as pa
import pytest
import tensorflow as tf

from pipeline import sink


@pytest.mark.parametrize("max_pending", [0, 4])  # 0: every batch encoded on the producing thread
def test_batches_are_dealt_to_their_split_shards_and_finalized(tmp_path, monkeypatch, max_pending):
    monkeypatch.setattr(sink, "_MAX_PENDING", max_pending)
    batches = [pa.RecordBatch.from_arrays(
        [pa.array([[i * 10 + j] for j in range(i + 1)], pa.list_(pa.int64())),
         pa.array([[split.encode()]] * (i + 1), pa.list_(pa.binary()))], names=["x", "__split__"])
        for i, split in enumerate(["train", "eval", "train", "train", "eval"])]
    with beam.Pipeline("FnApiRunner") as p:
        _ = (p | beam.Create([(b, {}) for b in batches])
             | sink.WriteTFRecordShards(str(tmp_path), "__split__", num_shards=2))
    read = {}
    for split in ("train", "eval"):
        files = sorted(glob.glob(f"{tmp_path}/{split}/part-*-of-*.tfrecord.gz"))
        assert len(files) == 2 and not glob.glob(f"{tmp_path}/{split}/.temp/*")
        records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
        read[split] = sorted(tf.io.parse_example(records, {"x": tf.io.FixedLenFeature([], tf.int64)})["x"]
                             .numpy().tolist())
    assert read == {"train": [0, 20, 21, 22, 30, 31, 32, 33], "eval": [10, 11, 40, 41, 42, 43, 44]}
