"""The ratings task end to end on a tiny simulated world: simulate MNAR + MAR triplets, preprocess
with generated unobserved pairs, train c_ips through the common trainer, evaluate on the MAR test
split, export, and serve the export in a fresh process; oracle models pin the evaluation wiring;
compare runs variants and CVR estimators on the same data."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import yaml

from ctrcvr import workflow
from ctrcvr.config import load_config
from ctrcvr.serving.check import serve_check
from pipeline.simulators.ratings import TRIPLET_FILES
from tests.conftest import REPO
from trainer.evaluation import evaluate
from ctrcvr.serving.client import to_raw_examples
from trainer.evaluation.ranking import ranking_metrics
from trainer.train import load_trained_model
from ctrcvr.workflow import trainer_spec
from transforms.schema import Schema

TINY_RATINGS = [
    "simulate_ratings.n_users=80", "simulate_ratings.n_items=40", "simulate_ratings.density=0.15",
    "simulate_ratings.test_items=8", "data.ratings.unobserved=2", "data.split.eval_fraction=0.2",
    "model.c_ips.rounds=1", "model.c_ips.cluster_epochs=1", "model.c_ips.rec_epochs=3", "model.c_ips.n_clusters=3",
    "model.c_ips.hidden_units=[16]", "preprocess.num_shards=1", "compare.seeds=1",
]
SERVE_IN_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    examples = [r.numpy() for r in tf.data.TFRecordDataset(sys.argv[2])]
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    print(json.dumps({k: v.numpy().reshape(-1).tolist() for k, v in serve(examples=tf.constant(examples)).items()}))
""")


@pytest.fixture(scope="module")
def ratings_run(tmp_path_factory):
    config = load_config(REPO / "configs" / "c_ips.yaml", TINY_RATINGS)
    out = tmp_path_factory.mktemp("ratings_run")
    result = workflow.run(config, out, overwrite=True)
    return {"dir": out, "data": out / "data" / "transformed", "config": config, "result": result}


def test_simulated_ratings_are_preprocessed_with_generated_unobserved_pairs(ratings_run):
    out, config = ratings_run["dir"], ratings_run["config"]
    train_lines = (out / "data" / "raw" / TRIPLET_FILES["train"]).read_text().splitlines()
    test_lines = (out / "data" / "raw" / TRIPLET_FILES["test"]).read_text().splitlines()
    assert len(test_lines) == round(80 * config.simulate_ratings.test_users) * 8
    report = json.loads((ratings_run["data"] / "report.json").read_text())
    assert report["rows_read"] == len(train_lines) + len(test_lines) and report["rows_rejected"] == 0
    assert report["reconciled"] and report["rows_generated"] > 0
    assert report["rows_read"] + report["rows_generated"] == report["rows_written"]
    splits = report["splits"]
    assert splits["test"]["generated"] == 0 and splits["test"]["rows"] == len(test_lines)
    assert splits["train"]["generated"] > 0 and splits["eval"]["generated"] > 0


def test_c_ips_is_evaluated_on_the_mar_split_and_reloads_to_the_same_metrics(ratings_run):
    metrics = ratings_run["result"]["metrics"]["c_ips"]
    for k in (1, 3, 5):
        for name in ("ndcg", "dcg", "recall", "map"):
            assert 0 <= metrics[f"mar_{name}@{k}"] <= 1 and 0 <= metrics[f"snips_{name}@{k}"] <= 1
    assert metrics["mar_rows"] + metrics["validation_rows"] == 320 and 0 < metrics["mar_auc"] < 1
    assert 0 < metrics["validation_rows"] < 0.15 * 320, "eval.validation_fraction (5 %) of the MAR split"
    assert "bmse_1" not in metrics, "c_ips predicts no observation propensity"
    reloaded = load_trained_model(trainer_spec(ratings_run["config"]), ratings_run["data"], ratings_run["dir"] / "model")
    assert evaluate(reloaded, trainer_spec(ratings_run["config"]), ratings_run["data"]) == metrics


GOLDEN = 0.6180339887


class _Oracle(tf.Module):
    """A model that knows the labels: relevance = r + tie-break(item) (relevant items first, ties
    broken by the item's id), or its opposite; with ``propensity``, pctr = 0.95 o + 0.05 (1 − o)."""

    def __init__(self, invert=False, propensity=False):
        super().__init__()
        self.invert, self.propensity = invert, propensity

    def predict_named(self, features):
        r = tf.cast(features["label"], tf.float32)
        tie_break = 0.5 * tf.math.floormod(tf.cast(features["item_id_xf"], tf.float32) * GOLDEN, 1.0)
        out = {"relevance": (1.0 - r if self.invert else r) + tie_break}
        if self.propensity:
            out["pctr"] = 0.05 + 0.9 * tf.cast(features["observed"], tf.float32)
        return out


def _oracle_scores(frame, relevant, vocabulary):
    """The oracle's scores for raw rows, computed from the raw item ids and the item vocabulary
    (an item outside it has the one OOV id, the vocabulary size)."""
    index = {v.decode(): k for k, v in enumerate(vocabulary)}
    ids = np.array([index.get(str(i), len(vocabulary)) for i in frame["i"]], np.float32)
    return relevant + 0.5 * np.mod(ids * np.float32(GOLDEN), np.float32(1.0))


def test_the_evaluation_reads_the_right_splits_and_weights_as_recomputed_from_the_raw_files(ratings_run):
    """MAR metrics from the raw test file; SNIPS from the raw MNAR file split by the same hash, with
    Rel-MF's propensity counted on the raw train rows; BMSE from the eval split's counts."""
    import pyarrow as pa
    from pipeline.splits import eval_mask
    from trainer.evaluation.ranking import popularity_propensity
    from trainer.pairs import validation_mask
    config, data, raw = ratings_run["config"], ratings_run["data"], ratings_run["dir"] / "data" / "raw"
    vocabulary = tft.TFTransformOutput(str(data)).vocabulary_by_name("item_id")
    threshold, ks = config.labels.rating_threshold, (1, 3, 5)
    got = evaluate(_Oracle(propensity=True), trainer_spec(config), data)

    test = pd.read_csv(raw / TRIPLET_FILES["test"], names=["u", "i", "rating"])
    users = {v.decode(): k for k, v in enumerate(tft.TFTransformOutput(str(data)).vocabulary_by_name("user_id"))}
    items = {v.decode(): k for k, v in enumerate(vocabulary)}
    in_validation = validation_mask([users.get(str(u), len(users)) for u in test["u"]],
                                    [items.get(str(i), len(items)) for i in test["i"]], config.eval.validation_fraction)
    test = test[~in_validation]  # the MAR validation slice (trainer.pairs) is not part of the test metrics
    relevant = (test["rating"] > threshold).to_numpy(np.float32)
    mar = ranking_metrics(test["u"], _oracle_scores(test, relevant, vocabulary), relevant, ks)
    mnar = pd.read_csv(raw / TRIPLET_FILES["train"], names=["u", "i", "rating"])
    in_eval = eval_mask(pa.table({"user_id": mnar["u"].astype(str), "item_id": mnar["i"].astype(str)}),
                        config.data.split, None)
    train, val = mnar[~in_eval], mnar[in_eval]
    counts = train["i"].value_counts()
    p_pop = (np.maximum(val["i"].map(counts).fillna(0).to_numpy(), 1) / counts.max()) ** config.eval.snips_power
    val_rel = (val["rating"] > threshold).to_numpy(np.float32)
    snips = ranking_metrics(val["u"], _oracle_scores(val, val_rel, vocabulary), val_rel, ks, weights=1 / p_pop)
    assert got["eval_observed"] == len(val) and got["mar_rows"] == len(test)
    for name, value in mar.items():
        assert got[f"mar_{name.lower()}"] == pytest.approx(value, abs=2e-6), name
    for name, value in snips.items():
        assert got[f"snips_{name.lower()}"] == pytest.approx(value, abs=2e-6), name
    assert got["mar_auc"] == 1.0 and got["propensity_auc"] == 1.0
    assert all(got[f"mar_ndcg@{k}"] == pytest.approx(1.0) for k in ks), "relevant items first is the ideal order"
    np.testing.assert_allclose(popularity_propensity(np.array([0, 0, 1]), np.array([0, 1]), 2, 0.5),
                               [1.0, 0.5 ** 0.5])
    n, n_obs = got["eval_rows"], got["eval_observed"]
    assert got["bmse_1"] == pytest.approx(((n_obs - (n - n_obs)) / (0.95 * n)) ** 2, rel=1e-4)
    assert evaluate(_Oracle(invert=True), trainer_spec(config), data)["mar_auc"] == 0.0


def test_the_c_ips_export_serves_raw_examples_like_the_trained_model(ratings_run, tmp_path):
    config, data, out = ratings_run["config"], ratings_run["data"], ratings_run["dir"]
    version = next(p for p in (out / "serving" / "c_ips").iterdir() if p.name.isdigit())
    summary = serve_check(version)
    assert summary["outputs"] == ["relevance"] and summary["ok"]
    rows = pd.read_csv(out / "data" / "raw" / TRIPLET_FILES["test"], names=["user_id", "item_id", "rating"]).head(24)
    rows = pd.concat([rows, pd.DataFrame({"user_id": [987654], "item_id": [rows["item_id"][0]], "rating": [3]})])
    schema = Schema.from_config(config)
    examples = to_raw_examples(rows.astype(str), schema)
    tft_output = tft.TFTransformOutput(str(data))
    features = tft_output.transform_raw_features(tf.io.parse_example(tf.constant(examples),
                                                                     schema.serving_feature_spec()))
    assert int(features["user_id_xf"][-1]) == tft_output.vocabulary_size_by_name("user_id"), "unseen -> OOV"
    model = load_trained_model(trainer_spec(config), data, out / "model")
    expected = model.predict_named(features)["relevance"].numpy()
    path = tmp_path / "examples.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for e in examples:
            writer.write(e)
    proc = subprocess.run([sys.executable, "-c", SERVE_IN_FRESH_PROCESS, str(version), str(path)],
                          capture_output=True, text=True, timeout=300,
                          env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(served) == {"relevance"}
    np.testing.assert_allclose(served["relevance"], expected, rtol=1e-5, atol=1e-7)
    assert np.all((expected > 0) & (expected < 1)) and np.ptp(expected) > 0


def test_compare_runs_variants_and_cvr_estimators_on_the_ratings(ratings_run, tmp_path):
    from ctrcvr.compare import plan_runs, train_runs, write_outputs
    config = load_config(REPO / "configs" / "c_ips.yaml", TINY_RATINGS + [
        "train.epochs=1", "train.batch_size=512",
        'compare.models=[{label: MF, model: c_ips, set: {model.c_ips.propensity: none}}, '
        '{label: "C-IPS K=1", model: c_ips, set: {model.c_ips.n_clusters: 1}}, esmm, ips_v2]'])
    runs = pd.DataFrame(train_runs(plan_runs(config), ratings_run["data"], tmp_path))
    assert runs["run"].tolist() == ["MF", "C-IPS K=1", "esmm", "ips_v2"]
    assert runs["mar_auc"].notna().all() and runs["snips_ndcg@5"].notna().all()
    assert runs.loc[runs["run"] == "ips_v2", "bmse_1"].notna().all()
    table = write_outputs(runs, config, tmp_path)["table"].splitlines()
    assert table[0].startswith("| model | seeds | mar_auc | mar_ndcg@5 |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| MF", "| C-IPS K=1", "| esmm", "| ips_v2"]


def test_compare_tunes_each_entry_on_the_validation_split_then_trains_its_seeds_at_the_chosen_point(
        ratings_run, tmp_path):
    """compare.tune (seed 002's protocol): every entry is tuned over tune.space + its own space with the test
    split off, the best validation_auc point is chosen per entry, and the entry's runs use that point."""
    from ctrcvr.compare import compare
    config = load_config(REPO / "configs" / "ratings_mf.yaml", TINY_RATINGS[:6] + [
        "train.epochs=2", "compare.seeds=1", "eval.validation_fraction=0.3", "model.mf.embedding_dim=4",
        "tune.space={model.mf.weight_decay: [0.0, 0.3]}", "compare.metrics=[mar_auc, validation_auc]",
        "compare.models=[base, {model: ips_v2, space: {model.bmse.weight: [0.005, 2.0]}}]"])
    out = tmp_path / "tuned"
    result = compare(config, out, data_dir=ratings_run["data"])
    tuning = pd.read_csv(out / "tuning.csv")
    assert tuning.groupby("run").size().to_dict() == {"base": 2, "ips_v2": 4}
    assert "mar_auc" not in tuning or tuning["mar_auc"].isna().all()  # trials never see the test split
    for label, keys in [("base", ["model.mf.weight_decay"]),
                        ("ips_v2", ["model.mf.weight_decay", "model.bmse.weight"])]:
        trials = tuning[tuning["run"] == label]
        best = trials.loc[trials["validation_auc"].idxmax()]
        used = yaml.safe_load((out / "models" / label / "seed0" / "config.resolved.yaml").read_text())
        for key in keys:
            section, *path = key.split(".")
            value = used[section]
            for part in path:
                value = value[part]
            assert value == pytest.approx(best[key]), (label, key)
        assert f"## {label}: chosen" in (out / "tuned.md").read_text()
    runs = pd.read_csv(out / "runs.csv")
    assert runs["mar_auc"].notna().all() and set(result["files"]) >= {"tuning", "tuned_md", "summary_md"}
