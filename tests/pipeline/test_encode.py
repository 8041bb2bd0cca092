"""The vectorised tf.Example/TFRecord encoder writes exactly what the C++ encoder + TFRecord framing do."""
import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf
from tfx_bsl.coders import example_coder

from pipeline.encode import encode_tfrecords, frame_records

ENCODER = example_coder.RecordBatchToExamplesEncoder()


def _read(data: bytes, tmp_path) -> list[bytes]:
    path = tmp_path / "x.tfrecord"
    path.write_bytes(data)
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]  # checks both CRCs of every record


def _batch():
    return pa.RecordBatch.from_arrays([
        pa.array([[-1], [0], [2 ** 62], [127], [128], [300]], pa.large_list(pa.int64())),
        pa.array([[b""], [b"x"], [b"y" * 90], [b"\x00\xff"], [b"abc"], [b"z"]], pa.large_list(pa.large_binary())),
        pa.array([[1.5], [-0.0], [float("inf")], [3e38], [1e-45], [np.nan]], pa.large_list(pa.float32())),
        pa.array([[1], [2], [3], [4], [5], [6]], pa.list_(pa.int64())),
    ], names=["user_id_xf", "user_id", "price_xf", "click"])


@pytest.mark.parametrize("rows", [slice(0, 6), slice(1, 4), slice(5, 6)])
def test_fast_path_matches_the_cpp_encoder_record_for_record(rows, tmp_path):
    batch = _batch().slice(rows.start, rows.stop - rows.start)
    ours = _read(encode_tfrecords(batch, ENCODER.encode), tmp_path)
    theirs = ENCODER.encode(batch)
    assert len(ours) == len(theirs) == batch.num_rows
    for a, b in zip(ours, theirs):
        assert tf.train.Example.FromString(a) == tf.train.Example.FromString(b)


@pytest.mark.parametrize("lists", [[[3, 300], [], [7], [2 ** 40, -1, 0]], [[], []], [[1] * 40, [5]]])
def test_variable_length_integer_lists_match_the_cpp_encoder(lists, tmp_path):
    batch = pa.RecordBatch.from_arrays([pa.array(lists, pa.large_list(pa.int64())),
                                        pa.array([[1.0]] * len(lists), pa.large_list(pa.float32()))],
                                       names=["tags_xf", "price_xf"])
    for part in (batch, batch.slice(1)):
        ours = _read(encode_tfrecords(part, ENCODER.encode), tmp_path)
        assert [tf.train.Example.FromString(r) for r in ours] == [
            tf.train.Example.FromString(r) for r in ENCODER.encode(part)]


def test_variable_length_string_lists_take_the_cpp_encoder(tmp_path):
    batch = pa.RecordBatch.from_arrays([pa.array([[b"a", b"b"], [], [b"c"]], pa.large_list(pa.large_binary()))],
                                       names=["tags_xf"])
    ours = _read(encode_tfrecords(batch, ENCODER.encode), tmp_path)
    assert ours == ENCODER.encode(batch)
    parsed = tf.io.parse_example(ours, {"tags_xf": tf.io.VarLenFeature(tf.string)})["tags_xf"]
    assert tf.sparse.to_dense(parsed, b"").numpy().tolist() == [[b"a", b"b"], [b"", b""], [b"c", b""]]


def test_frame_records_is_what_tf_reads(tmp_path):
    assert _read(frame_records([b"abc", b"", b"x" * 1000]), tmp_path) == [b"abc", b"", b"x" * 1000]
