"""Ali-CCP raw: feature lists parsed a chunk at a time, and the skeleton / common-features join in Beam."""
import pyarrow as pa
import pytest

from ctrcvr.config import config_from_dict
from pipeline.sources.aliccp import parse_feature_lists
from tests.pipeline.helpers import FIXTURES, by_key, read_split, rejects, run_job, vocabulary

RAW = FIXTURES / "aliccp_raw"


def _items(*triples) -> bytes:
    return b"\x01".join(f"{f}\x02{i}\x03{v}".encode() for f, i, v in triples)


def test_parse_single_multi_and_value_columns_and_flag_bad_rows():
    table = pa.table({
        "feature_num": pa.array([b"4", b"1", b"2", b"1", b"0"]),
        "feature_list": pa.array([
            _items(("205", "i1", 1), ("109_14", "a", 2), ("109_14", "b", 0.5), ("508", "x", 0.25)),
            _items(("205", "i2", 1)),
            _items(("205", "i3", 1)),                # feature_num says 2
            b"205\x02i4",                              # no \x03: malformed
            b""]),
    })
    columns, reason = parse_feature_lists(table, ["205", "109_14", "D109_14", "D508"], {"109_14"})
    assert reason.tolist() == [None, None, "feature_num_mismatch", "malformed_feature_list", None]
    assert columns["205"].to_pylist()[:2] == [b"i1", b"i2"] and columns["205"].to_pylist()[4] is None
    assert columns["109_14"].to_pylist()[:2] == [[b"a", b"b"], None]
    assert columns["D109_14"].to_pylist()[:2] == [2.5, None] and columns["D508"].to_pylist()[0] == 0.25


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    config = config_from_dict({
        "data": {"source": "aliccp_raw", "train_files": [str(RAW / "sample_skeleton_train.csv")],
                 "aliccp": {"common_features": [str(RAW / "common_features_*.csv")], "join_buckets": 3},
                 "split": {"by": "hash", "key": "sample_id", "eval_fraction": 0.3}},
        "features": [{"name": "101", "kind": "categorical"}, {"name": "121", "kind": "categorical", "default": "none"},
                     {"name": "205", "kind": "categorical"}, {"name": "206", "kind": "categorical", "default": "none"},
                     {"name": "109_14", "kind": "categorical", "multivalued": True},
                     {"name": "110_14", "kind": "categorical", "multivalued": True},
                     {"name": "D508", "kind": "numeric", "transform": "identity", "default": 0.0}],
        "labels": {"ground_truth": [], "keys": ["sample_id"]},
        "preprocess": {"num_shards": 1, "max_reject_fraction": 0.9},
    })
    out = tmp_path_factory.mktemp("aliccp_raw") / "out"
    report, failure = run_job(config, out)
    rows = {**by_key(read_split(out, "train"), "sample_id"), **by_key(read_split(out, "eval"), "sample_id")}
    return {"out": out, "report": report, "failure": failure, "rows": rows}


def test_join_accounts_for_every_skeleton_row(raw_run):
    report = raw_run["report"]
    assert raw_run["failure"] is None and report["reconciled"]
    assert report["rows_read"] == 10 and report["rows_written"] == 5
    assert {r["row"]: r["reason"] for r in rejects(raw_run["out"]) if "skeleton" in r["source"]} == {
        4: "conversion_without_click", 5: "missing_common_features", 7: "feature_num_mismatch",
        8: "malformed_feature_list", 9: "truncated_line"}
    assert report["common_features"] == {"rows_read": 4, "rejected:malformed_feature_list": 1, "duplicate_md5": 1}


def test_joined_rows_carry_user_side_features_and_multivalued_lists(raw_run):
    out, rows = raw_run["out"], raw_run["rows"]
    assert set(rows) == {"s1", "s2", "s3", "s6", "s10"}
    words = {name: vocabulary(out, name) for name in ("101", "109_14", "206")}

    def decode(name, ids):
        return [words[name][i] for i in ids] if isinstance(ids, list) else words[name][ids]

    assert decode("101", rows["s1"]["101_xf"]) == "u1"  # the first common row of md5 A wins
    assert decode("101", rows["s3"]["101_xf"]) == "u2"
    assert sorted(decode("109_14", rows["s1"]["109_14_xf"])) == ["t1", "t2", "t3"]
    assert decode("109_14", rows["s10"]["109_14_xf"]) == ["t2"]
    assert rows["s1"]["110_14_xf"] == [] and rows["s1"]["D508_xf"] == pytest.approx(0.75)
    assert rows["s6"]["D508_xf"] == 0.0 and decode("206", rows["s10"]["206_xf"]) == "none"
    assert {k: (r["click"], r["conversion"]) for k, r in rows.items()} == {
        "s1": (1, 1), "s2": (1, 0), "s3": (0, 0), "s6": (0, 0), "s10": (0, 0)}


def test_the_model_mean_pools_a_multivalued_feature_read_from_the_tfrecords(raw_run):
    import glob

    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    from transforms.schema import FeatureConfig
    from trainer.model.layers import FeatureEmbedding
    from transforms.schema import cardinality

    out = raw_run["out"]
    output = tft.TFTransformOutput(str(out))
    features = [FeatureConfig(name="109_14", kind="categorical", multivalued=True),
                FeatureConfig(name="205", kind="categorical")]
    layer = FeatureEmbedding(features, {f.name: cardinality(f, output) for f in features}, embedding_dim=3)
    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(glob.glob(f"{out}/*/part-*.tfrecord.gz")),
                                                          compression_type="GZIP")]
    batch = tf.io.parse_example(records, output.transformed_feature_spec())
    vectors = layer(batch).numpy()
    assert vectors.shape == (len(records), 6)
    table = layer.tables["109_14"].embeddings.numpy()
    ids = tf.sparse.to_dense(batch["109_14_xf"], default_value=-1).numpy()
    for row, row_ids in zip(vectors, ids):
        np.testing.assert_allclose(row[:3], table[row_ids[row_ids >= 0]].mean(axis=0), rtol=1e-5)
