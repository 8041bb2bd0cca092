"""preprocessing_fn on four in-memory rows, against exact expected outputs."""
import functools
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam

from ctrcvr.config import config_from_dict
from transforms.schema import Schema, transformed_name
from transforms.preprocessing import preprocessing_fn

CONFIG = config_from_dict({
    "features": [
        {"name": "user", "kind": "categorical"},
        {"name": "city", "kind": "categorical", "frequency_threshold": 2},
        {"name": "price", "kind": "numeric", "transform": "log1p"},
        {"name": "age", "kind": "numeric", "transform": "zscore"},
    ],
    "labels": {"ground_truth": ["gt_cvr"], "keys": ["user"]},
})
ROWS = [
    {"user": b"a", "city": b"x", "price": 0.0, "age": 10.0, "click": 1, "conversion": 1, "gt_cvr": 0.5},
    {"user": b"a", "city": b"x", "price": math.e - 1, "age": 20.0, "click": 0, "conversion": 0, "gt_cvr": 0.1},
    {"user": b"b", "city": b"y", "price": 0.0, "age": 30.0, "click": 1, "conversion": 0, "gt_cvr": 0.2},
    {"user": b"a", "city": b"x", "price": math.e - 1, "age": 40.0, "click": 0, "conversion": 0, "gt_cvr": 0.3},
]


def _analyze_and_transform(config, rows, temp_dir) -> list[dict]:
    """``rows`` through preprocessing_fn, analysed on themselves (TFT's in-memory Beam)."""
    schema = Schema.from_config(config)
    metadata = tft.DatasetMetadata.from_feature_spec(schema.raw_feature_spec())
    with tft_beam.Context(temp_dir=str(temp_dir)):
        (out, _), _ = ((rows, metadata)
                       | tft_beam.AnalyzeAndTransformDataset(functools.partial(preprocessing_fn, schema=schema)))
    return out


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    return sorted(_analyze_and_transform(CONFIG, ROWS, tmp_path_factory.mktemp("tft")), key=lambda r: r["age_xf"])


def test_vocabulary_orders_by_frequency_and_thresholds_to_oov(transformed):
    assert [r[transformed_name("user")] for r in transformed] == [0, 0, 1, 0]   # a (3x) -> 0, b -> 1
    # y appears once < frequency_threshold 2: it is not in the vocabulary and goes to the OOV bucket (1).
    assert [r[transformed_name("city")] for r in transformed] == [0, 0, 1, 0]


def test_numeric_transforms(transformed):
    ages = np.array([r["age_xf"] for r in transformed])
    np.testing.assert_allclose(ages, (np.array([10, 20, 30, 40]) - 25) / np.std([10, 20, 30, 40]), rtol=1e-5)
    logs = np.array([0.0, 1.0, 0.0, 1.0])            # log1p(0) = 0, log1p(e - 1) = 1
    expected = (logs - logs.mean()) / logs.std()
    np.testing.assert_allclose([r["price_xf"] for r in transformed], expected, rtol=1e-5)


def test_labels_ground_truth_and_keys_pass_through_untouched(transformed):
    assert [r["click"] for r in transformed] == [1, 0, 1, 0]
    assert [r["conversion"] for r in transformed] == [1, 0, 0, 0]
    np.testing.assert_allclose([r["gt_cvr"] for r in transformed], [0.5, 0.1, 0.2, 0.3], rtol=1e-6)
    assert [r["user"] for r in transformed] == [b"a", b"a", b"b", b"a"]
    assert not {"click_xf", "conversion_xf", "gt_cvr_xf"} & set(transformed[0])


def test_serving_spec_has_features_only_with_defaults():
    spec = Schema.from_config(CONFIG).serving_feature_spec()
    assert set(spec) == {"user", "city", "price", "age"}
    assert spec["user"].dtype == tf.string and spec["price"].default_value == 0.0


# ---------------------------------------------------------------------- multivalued, hashing, vocabularies
MULTI = config_from_dict({
    "features": [
        {"name": "tags", "kind": "categorical", "multivalued": True},
        {"name": "tag_hash", "kind": "categorical", "multivalued": True, "transform": "hash", "hash_buckets": 7},
        {"name": "item", "kind": "categorical", "transform": "hash", "hash_buckets": 5},
        {"name": "price", "kind": "numeric", "transform": "bucketize", "num_buckets": 2},
    ],
    "labels": {"ground_truth": [], "keys": []},
})
MULTI_ROWS = [
    {"tags": [b"x", b"y"], "tag_hash": [b"x", b"y"], "item": b"i1", "price": 1.0, "click": 1, "conversion": 0},
    {"tags": [], "tag_hash": [], "item": b"i2", "price": 10.0, "click": 0, "conversion": 0},
    {"tags": [b"y"], "tag_hash": [b"y"], "item": b"i1", "price": 100.0, "click": 0, "conversion": 0},
]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return _analyze_and_transform(MULTI, MULTI_ROWS, tmp_path_factory.mktemp("tft"))


def test_multivalued_features_are_variable_length_in_raw_and_serving_specs():
    schema = Schema.from_config(MULTI)
    assert isinstance(schema.raw_feature_spec()["tags"], tf.io.VarLenFeature)
    assert isinstance(schema.serving_feature_spec()["tags"], tf.io.VarLenFeature)
    assert schema.column_kinds()["tags"] == "string_list" and schema.column_kinds()["item"] == "string"


def test_multivalued_vocabulary_and_hash_keep_each_rows_list(multi):
    assert [list(r["tags_xf"]) for r in multi] == [[1, 0], [], [0]]  # y (2x) -> 0, x -> 1
    expected = tf.strings.to_hash_bucket_fast([b"x", b"y"], 7).numpy().tolist()
    assert [list(r["tag_hash_xf"]) for r in multi] == [expected, [], expected[1:]]
    items = tf.strings.to_hash_bucket_fast([b"i1", b"i2", b"i1"], 5).numpy().tolist()
    assert [r["item_xf"] for r in multi] == items


def test_vocabulary_order_threshold_and_top_k_follow_tft():
    from transforms.vocabulary import VocabularySpec, ordered_vocabulary
    counts = {b"a": 3, b"b": 1, b"c": 3, b"d": 2}
    assert ordered_vocabulary(counts, VocabularySpec("f")) == [b"c", b"a", b"d", b"b"]  # ties: token descending
    assert ordered_vocabulary(counts, VocabularySpec("f", frequency_threshold=2)) == [b"c", b"a", b"d"]
    assert ordered_vocabulary(counts, VocabularySpec("f", top_k=2)) == [b"c", b"a"]


def test_quantile_buckets(multi):
    assert [r["price_xf"] for r in multi] == [0, 1, 1]  # 2 quantile buckets: the median splits them
