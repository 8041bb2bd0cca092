"""The Beam job end to end on tiny inputs: a bad-input corpus where every row is accounted for,
survey and ratings TFRecords read back, the real Ali-CCP sample.

Each module fixture runs the job once (5-10 s each on the local runner); tests share them.
"""
import collections
import csv

import numpy as np
import pytest

from ctrcvr.config import load_config
from pipeline.job import PreprocessFailed
from tests.conftest import REAL_DATA
from tests.pipeline.helpers import (BAD_CONFIG, BAD_CSV, BAD_LINES, FIXTURES, GOOD_IDS, REPO, by_key, read_split,
                                    rejects, run_job, vocabulary)

@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "out"
    report, failure = run_job(BAD_CONFIG, out)
    return {"out": out, "report": report, "failure": failure}


def test_bad_corpus_every_row_is_read_written_or_rejected_for_its_reason(bad_run):
    report, out = bad_run["report"], bad_run["out"]
    data_lines = BAD_CSV.read_bytes().rstrip(b"\n").count(b"\n")  # lines after the header
    assert report["rows_read"] == data_lines == len(GOOD_IDS) + len(BAD_LINES)
    assert report["rows_written"] == len(GOOD_IDS) and report["reconciled"]
    assert report["rejected_by_reason"] == dict(collections.Counter(BAD_LINES.values()))
    assert len(set(BAD_LINES.values())) >= 10  # kinds of bad rows
    found = rejects(out)
    assert {r["row"]: r["reason"] for r in found} == BAD_LINES and len(found) == len(BAD_LINES)
    assert all(r["source"] == str(BAD_CSV) for r in found)
    by_line = {r["row"]: r["raw"] for r in found}
    assert by_line[11]["line"] == "9,u4,i2,ios,2.5" and by_line[6]["item_price"] == "abc"
    assert by_line[13]["user_id"] == "\\xff\\xfeu"  # undecodable bytes kept, escaped


def test_too_many_rejects_fail_the_job_with_a_clear_message(bad_run):
    failure = bad_run["failure"]
    assert isinstance(failure, PreprocessFailed)
    message = str(failure)
    assert "15 of 19 rows rejected" in message and "max_reject_fraction=50.00%" in message
    assert "rejects-00000-of-00001.jsonl" in message


def test_good_rows_are_transformed_and_labels_keys_pass_through(bad_run):
    out = bad_run["out"]
    rows = {**by_key(read_split(out, "train"), "exposure_id"), **by_key(read_split(out, "eval"), "exposure_id")}
    assert set(rows) == GOOD_IDS
    assert {k: (r["click"], r["conversion"]) for k, r in rows.items()} == {
        "1": (1, 1), "2": (0, 0), "3": (1, 0), "17": (0, 0)}
    train = read_split(out, "train")
    tags = vocabulary(out, "tags")
    expected = {"1": ["a", "b"], "2": ["b"], "3": ["a", "c", "d"], "17": ["c"]}
    for key, row in rows.items():
        decoded = [tags[i] if i < len(tags) else "<oov>" for i in row["tags_xf"]]
        assert decoded == [t if (t in tags) else "<oov>" for t in expected[key]]
    assert set(train) >= {"user_id_xf", "tags_xf", "item_price_xf", "click", "conversion", "exposure_id"}
    assert not {"click_xf", "conversion_xf", "exposure_id_xf"} & set(train)
    report = bad_run["report"]["splits"]
    assert report["train"]["rows"] + report["eval"]["rows"] == len(GOOD_IDS)


# ---------------------------------------------------------------------- survey
@pytest.fixture(scope="module")
def survey_run(tmp_path_factory):
    config = load_config(REPO / "configs" / "survey.yaml", [
        "data.source=survey", f"data.train_files=[{FIXTURES / 'surveys.csv'}]", "labels.keys=[survey_id]",
        "preprocess.max_reject_fraction=0.5", "preprocess.num_shards=1"])
    out = tmp_path_factory.mktemp("survey") / "out"
    report, failure = run_job(config, out)
    return {"out": out, "report": report, "failure": failure}


def test_survey_tfrecords_are_written_and_read_back(survey_run):
    out, report = survey_run["out"], survey_run["report"]
    assert survey_run["failure"] is None and report["reconciled"] and report["rows_read"] == 10
    rows = {**by_key(read_split(out, "train"), "survey_id"), **by_key(read_split(out, "eval"), "survey_id")}
    assert {k: (r["responded"], r["rating"]) for k, r in rows.items()} == {
        "1": (1, 4.0), "2": (0, 0.0), "3": (1, 5.0), "8": (0, 0.0), "9": (1, 1.0), "10": (0, 0.0)}
    assert rows["1"]["gt_satisfaction"] == pytest.approx(4.2) and rows["9"]["gt_response_prob"] == pytest.approx(0.01)
    assert {"user_id_xf", "item_price_xf", "device_xf"} <= set(rows["1"]) and "rating_xf" not in rows["1"]
    assert {r["row"]: r["reason"] for r in rejects(out)} == {
        5: "rating_without_response", 6: "missing_value:rating", 7: "label_out_of_range:rating",
        8: "label_out_of_range:responded"}
    split = report["splits"]["train"]
    assert {"responded_rate", "rating_mean_given_responded"} <= set(split)


# ---------------------------------------------------------------------- ratings
def test_ratings_mnar_train_and_mar_test_become_train_eval_and_test(tmp_path):
    config = load_config(REPO / "configs" / "ratings.yaml", [
        f"data.train_files=[{FIXTURES / 'ratings/train.csv'}]", f"data.test_files=[{FIXTURES / 'ratings/test.tsv'}]",
        "preprocess.max_reject_fraction=0.5", "preprocess.num_shards=1"])
    report, failure = run_job(config, tmp_path / "out")
    assert failure is None and report["reconciled"] and report["rows_read"] == 11 + 4
    assert report["splits"]["train"]["rows"] + report["splits"]["eval"]["rows"] == 9
    assert report["splits"]["test"]["rows"] == 4
    assert {r["row"]: r["reason"] for r in rejects(tmp_path / "out")} == {
        10: "label_out_of_range:rating", 11: "wrong_type:rating"}
    test = read_split(tmp_path / "out", "test")
    got = sorted(zip(test["user_id"], test["rating"], test["observed"], test["label"]))
    assert got == [("0", 1.0, 1, 0), ("1", 4.0, 1, 1), ("2", 5.0, 1, 1), ("3", 2.0, 1, 0)]


# ---------------------------------------------------------------------- Ali-CCP processed (real rows)
def test_real_aliccp_sample_train_val_test_files(tmp_path):
    files = {s: REAL_DATA / "aliccp" / f"ali_ccp_{s}_sample.csv" for s in ("train", "val", "test")}
    config = load_config(REPO / "configs" / "aliccp.yaml", [
        f"data.train_files=[{files['train']}]", f"data.eval_files=[{files['val']}]",
        f"data.test_files=[{files['test']}]", "preprocess.num_shards=1"])
    report, failure = run_job(config, tmp_path / "out")
    counts = {s: list(csv.DictReader(open(f))) for s, f in files.items()}
    assert failure is None and report["rows_rejected"] == 0 and report["reconciled"]
    assert report["rows_read"] == sum(len(rows) for rows in counts.values())
    for split, name in (("train", "train"), ("eval", "val"), ("test", "test")):
        back = read_split(tmp_path / "out", split)
        raw = counts[name]
        assert len(back["click"]) == len(raw) == report["splits"][split]["rows"]
        assert sum(back["click"]) == sum(int(r["click"]) for r in raw)
        assert sum(back["purchase"]) == sum(int(r["purchase"]) for r in raw)
    assert report["vocabulary_sizes"]["205"] > 10 and set(report["vocabulary_sizes"]) == {
        f.name for f in config.features if f.kind == "categorical"}
    d508 = np.array(read_split(tmp_path / "out", "train")["D508_xf"])
    assert abs(d508.mean()) < 1e-5 and abs(d508.std() - 1) < 1e-3  # z-scored on train
