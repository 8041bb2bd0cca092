"""Export of a model with multivalued features, end to end: a tiny CSV (a ``|``-separated vocabulary
feature, a ``;``-separated hashed one) -> Beam/TFT -> a few ESMM steps -> SavedModel. The served
predictions on raw rows must equal the trained model's on the rows the Beam job wrote, loaded in
this process, in fresh ones through the session loader (``serve-check``, saved_model_cli) and the dev
REST server;
including rows whose multivalued feature is empty, absent, or only holds an unseen value (OOV)."""
import base64
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr import workflow
from ctrcvr.config import config_from_dict
from ctrcvr.serving.check import serve_check
from pipeline.config import PreprocessSections
from pipeline.inputs import resolve_inputs, sample_rows
from pipeline.job import run_preprocess
from ctrcvr.serving.client import PADDING, to_raw_examples, to_raw_tensors
from ctrcvr.serving.warmup import read_warmup_requests, warmup_requests, write_warmup_requests
from trainer.train import train
from tests.rest_client import ENV, dev_server, post
from transforms.schema import Schema

TAGS = [f"t{i}" for i in range(8)]
OUTPUTS = ("pctr", "pcvr", "pctcvr")


def _write_csv(path, n, seed, eval_only_tag=None):
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        tags = list(rng.choice(TAGS, rng.integers(0, 4), replace=False))
        if eval_only_tag and k % 5 == 0:
            tags = [eval_only_tag] + tags[:1] if k % 10 else [eval_only_tag]   # OOV alone, or with a known tag
        click = int(rng.random() < 0.3)
        rows.append({"exposure_id": f"{path.stem}-{k}", "user_id": f"u{rng.integers(20)}",
                     "item_price": round(float(rng.exponential(10)), 2),
                     "tags": " | ".join(tags) if k % 7 else "|".join(tags),    # spaces around some separators
                     "topics": ";".join(f"p{x}" for x in rng.integers(0, 30, rng.integers(0, 3))),
                     "click": click, "conversion": int(click and rng.random() < 0.3)})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multivalued_export")
    train_csv = _write_csv(tmp / "train.csv", 400, 0)
    eval_csv = _write_csv(tmp / "eval.csv", 40, 1, eval_only_tag="never-seen-in-train")
    config = config_from_dict({
        "data": {"source": "csv", "train_files": [str(train_csv)], "eval_files": [str(eval_csv)],
                 "split": {"by": "files"}},
        "features": [{"name": "user_id", "kind": "categorical"},
                     {"name": "tags", "kind": "categorical", "multivalued": True},
                     {"name": "topics", "kind": "categorical", "multivalued": True, "separator": ";",
                      "transform": "hash", "hash_buckets": 50},
                     {"name": "item_price", "kind": "numeric", "transform": "log1p", "default": 0.0}],
        "labels": {"ground_truth": [], "keys": ["exposure_id"]},
        "preprocess": {"num_shards": 1},
        "model": {"name": "esmm", "embedding_dim": 4, "tower": {"units": [8]}},
        "train": {"epochs": 2, "batch_size": 64, "shuffle_buffer": 0},
        "eval": {"group_by": "user_id"},
        "export": {"warmup_examples": 6},
    })
    data, model_dir, root = tmp / "xf", tmp / "model", tmp / "serving"
    run_preprocess(PreprocessSections.of(config), resolve_inputs(config.data), data)
    model = train(workflow.trainer_spec(config), data, model_dir)
    version = workflow.export(config, data, model_dir, root, model=model)
    rows = sample_rows(config.data, str(eval_csv), 40)   # raw rows as the reader gives them (text cells)
    return {"config": config, "data": data, "version": version, "model": model, "rows": rows,
            "schema": Schema.from_config(config)}


def test_raw_cells_text_lists_and_missing_values_become_the_clients_inputs():
    schema = Schema.from_config(config_from_dict({
        "features": [{"name": "tags", "kind": "categorical", "multivalued": True, "separator": ";"},
                     {"name": "city", "kind": "categorical", "default": "none"},
                     {"name": "price", "kind": "numeric", "default": 1.5}],
        "labels": {"ground_truth": [], "keys": []}}))
    rows = pd.DataFrame({"tags": ["a; b;;", np.array([b"c"], dtype=object), None, ["d", " "]],
                         "city": ["x", None, "y", 7], "price": [2.0, np.nan, 3.0, 4.0]})
    raw = to_raw_tensors(rows, schema)
    assert raw["tags"].tolist() == [[b"a", b"b"], [b"c", PADDING], [PADDING, PADDING], [b"d", PADDING]]
    assert raw["city"].tolist() == [b"x", b"none", b"y", b"7"] and raw["price"].tolist() == [2.0, 1.5, 3.0, 4.0]
    examples = [tf.train.Example.FromString(e).features.feature for e in to_raw_examples(rows, schema)]
    assert [list(e["tags"].bytes_list.value) if "tags" in e else None for e in examples] == [
        [b"a", b"b"], [b"c"], None, [b"d"]]
    assert "city" not in examples[1] and "price" not in examples[1]


def _written(data, keys) -> dict:
    """The transformed features the Beam job wrote for ``keys``, parsed as the trainer parses them."""
    spec = tft.TFTransformOutput(str(data)).transformed_feature_spec()
    files = sorted(str(p) for p in data.glob("*/part-*.tfrecord.gz"))
    records = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        key = tf.io.parse_single_example(record, {"exposure_id": tf.io.FixedLenFeature([], tf.string)})
        records[key["exposure_id"].numpy().decode()] = record.numpy()
    return tf.io.parse_example(tf.constant([records[k] for k in keys]), spec)


def _expected(exported, keys) -> dict:
    return {k: v.numpy() for k, v in exported["model"].predict_named(_written(exported["data"], keys)).items()}


def test_served_predictions_equal_the_trained_models_on_the_rows_the_job_wrote(exported):
    rows, schema = exported["rows"], exported["schema"]
    tags = rows["tags"].tolist()
    assert any(t == "" for t in tags)                                        # rows without any tag ...
    assert "never-seen-in-train" in tags                                    # ... with only an OOV tag ...
    assert any("never-seen-in-train" in t and "|" in t for t in tags)      # ... and OOV next to a known one
    expected = _expected(exported, rows["exposure_id"].tolist())
    fn = tf.saved_model.load(str(exported["version"])).signatures
    by_examples = fn["serving_default"](examples=tf.constant(to_raw_examples(rows, schema)))
    by_tensors = fn["predict_raw"](**{k: tf.constant(v) for k, v in to_raw_tensors(rows, schema).items()})
    for name in OUTPUTS:
        np.testing.assert_allclose(by_examples[name].numpy(), expected[name], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(by_tensors[name].numpy(), expected[name], rtol=1e-5, atol=1e-7)


def test_transform_features_gives_the_lists_the_job_wrote(exported):
    rows = exported["rows"]
    fn = tf.saved_model.load(str(exported["version"])).signatures["transform_features"]
    got = fn(examples=tf.constant(to_raw_examples(rows, exported["schema"])))
    written = _written(exported["data"], rows["exposure_id"].tolist())
    for name in ("tags_xf", "topics_xf"):
        assert isinstance(got[name], tf.SparseTensor)
        assert tf.sparse.to_dense(got[name], -1).numpy().tolist() == tf.sparse.to_dense(written[name], -1).numpy().tolist()
    np.testing.assert_allclose(got["item_price_xf"].numpy(), written["item_price_xf"].numpy(), rtol=1e-6)


def test_absent_empty_padded_and_untrimmed_values_mean_the_same(exported):
    """A multivalued feature left out of the tf.Example, sent empty, padded with "" or with blanks
    around its values: the same list to the model as the training data had."""
    rows, schema = exported["rows"], exported["schema"]
    row = rows[rows["tags"].str.contains(r"\|")].iloc[[0]]
    empty = rows[rows["tags"] == ""].iloc[[0]]
    values = [t.strip().encode() for t in row["tags"].iloc[0].split("|")]
    expected = _expected(exported, [row["exposure_id"].iloc[0], empty["exposure_id"].iloc[0]])

    def example(source, tags):
        e = tf.train.Example.FromString(to_raw_examples(source, schema)[0])
        del e.features.feature["tags"]
        if tags is not None:
            e.features.feature["tags"].bytes_list.value.extend(tags)
        return e.SerializeToString()

    fn = tf.saved_model.load(str(exported["version"])).signatures
    sent = [example(row, [b"  " + values[0], b"", *values[1:], b" "]), example(empty, None), example(empty, [b""])]
    got = fn["serving_default"](examples=tf.constant(sent))
    for name in OUTPUTS:
        np.testing.assert_allclose(got[name].numpy(), expected[name][[0, 1, 1]], rtol=1e-5, atol=1e-7)
    raw = to_raw_tensors(pd.concat([row, empty]), schema)
    raw["tags"] = np.array([[*values, PADDING, PADDING], [PADDING] * (len(values) + 2)], dtype=object)
    got = fn["predict_raw"](**{k: tf.constant(v) for k, v in raw.items()})
    for name in OUTPUTS:
        np.testing.assert_allclose(got[name].numpy(), expected[name], rtol=1e-5, atol=1e-7)


def test_warmup_has_both_signatures_on_real_rows_and_serve_check_agrees(exported):
    requests = read_warmup_requests(exported["version"])
    assert [r.model_spec.signature_name for r in requests] == ["serving_default", "serving_default", "predict_raw"]
    tags = tf.make_ndarray(requests[2].inputs["tags"])
    assert tags.ndim == 2 and tags.shape[0] == exported["config"].export.warmup_examples
    summary = serve_check(exported["version"].parent)
    assert summary["ok"] and summary["replayed"] == ["predict_raw", "serving_default"]
    assert summary["examples"] == 1 + 2 * exported["config"].export.warmup_examples


def test_serve_check_fails_when_the_signatures_disagree(exported, tmp_path):
    copy = tmp_path / "esmm" / exported["version"].name
    shutil.copytree(exported["version"], copy)
    rows, schema = exported["rows"], exported["schema"]
    _, (_, examples), _ = warmup_requests(rows.head(4), schema)
    write_warmup_requests(copy, "esmm", [("serving_default", examples),
                                         ("predict_raw", to_raw_tensors(rows.tail(4), schema))])   # other rows
    with pytest.raises(AssertionError, match="disagree"):
        serve_check(copy)


def test_saved_model_cli_feeds_a_padded_matrix_to_predict_raw(exported, tmp_path):
    """A fresh process and the session loader, as TF Serving loads the model."""
    rows, schema = exported["rows"], exported["schema"]
    raw = to_raw_tensors(rows, schema)
    exprs = ";".join(f"{k}={json.dumps(np.vectorize(bytes.decode)(v).tolist() if v.dtype == object else v.tolist())}"
                     for k, v in raw.items())   # Python literals, as saved_model_cli takes them
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    proc = subprocess.run([cli, "run", "--dir", str(exported["version"]), "--tag_set", "serve", "--signature_def",
                           "predict_raw", "--input_exprs", exprs, "--outdir", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = _expected(exported, rows["exposure_id"].tolist())
    for name in OUTPUTS:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected[name], rtol=1e-5, atol=1e-7)


def test_saved_model_cli_without_a_predict_raw_feature_names_the_feature(exported, tmp_path):
    """A signature input cannot be optional (docs/reliability.md): the session loader's error names it."""
    rows, schema = exported["rows"], exported["schema"]
    raw = {k: v for k, v in to_raw_tensors(rows, schema).items() if k != "item_price"}
    exprs = ";".join(f"{k}={json.dumps(np.vectorize(bytes.decode)(v).tolist() if v.dtype == object else v.tolist())}"
                     for k, v in raw.items())
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    proc = subprocess.run([cli, "run", "--dir", str(exported["version"]), "--tag_set", "serve", "--signature_def",
                           "predict_raw", "--input_exprs", exprs, "--outdir", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert "item_price" in proc.stderr.strip().splitlines()[-1]
    assert "must feed a value for placeholder tensor 'predict_raw_item_price'" in proc.stderr


# ---------------------------------------------------------------------- the development REST server
@pytest.fixture(scope="module")
def server(exported):
    with dev_server(exported["version"].parent, exported["version"].parent.name) as url:
        yield f"{url}/v1/models/{exported['version'].parent.name}:predict"


def _rest_rows(rows):
    """predict_raw instances: a list of any length per multivalued feature (no padding needed)."""
    return [{"user_id": r.user_id, "item_price": float(r.item_price),
             "tags": [t.strip() for t in r.tags.split("|") if t.strip()],
             "topics": [{"b64": base64.b64encode(t.encode()).decode()} for t in r.topics.split(";") if t]}
            for r in rows.itertuples()]


def test_rest_row_and_columnar_lists_for_multivalued_features(server, exported):
    """The dev server, a fresh process: every row, OOV-only and empty ones included."""
    rows = exported["rows"]
    expected = _expected(exported, rows["exposure_id"].tolist())
    instances = _rest_rows(rows)
    assert len({len(i["tags"]) for i in instances}) > 1 and any(not i["tags"] for i in instances)
    status, body = post(server, {"signature_name": "predict_raw", "instances": instances})
    assert status == 200, body
    np.testing.assert_allclose([p["pctcvr"] for p in body["predictions"]], expected["pctcvr"], rtol=1e-5, atol=1e-7)
    columns = {k: [i[k] for i in instances] for k in instances[0]}
    status, body = post(server, {"signature_name": "predict_raw", "inputs": columns})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"]["pctr"], expected["pctr"], rtol=1e-5, atol=1e-7)
    b64 = [{"b64": base64.b64encode(e).decode()} for e in to_raw_examples(rows, exported["schema"])]
    status, body = post(server, {"instances": b64})
    assert status == 200, body
    np.testing.assert_allclose([p["pcvr"] for p in body["predictions"]], expected["pcvr"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("tags", ["t1|t2", [["t1"]], [None]])
def test_rest_rejects_a_multivalued_value_that_is_not_a_list_of_values(server, exported, tags):
    instance = {**_rest_rows(exported["rows"].head(1))[0], "tags": tags}
    status, body = post(server, {"signature_name": "predict_raw", "instances": [instance]})
    assert status == 400 and "tags" in body["error"]
