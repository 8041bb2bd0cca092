"""The questionnaire task (EASQ, seed 001) through the Beam job: the short-video simulator's log, and a
user's own CSV log with one row of each bad kind. Each fixture runs the job once (about 6 s)."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

from ctrcvr.config import config_from_dict
from pipeline.simulators.video import VideoWorld
from pipeline.simulators.video_files import simulate_to_files
from pipeline.video_config import SimulateVideoConfig
from tests.pipeline.helpers import FIXTURES, by_key, read_split, rejects, run_job

FEATURES = [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"},
            {"name": "device", "kind": "categorical"},
            {"name": "item_duration_s", "kind": "numeric", "transform": "log1p", "default": 20.0}]
CSV = FIXTURES / "questionnaire.csv"
BAD_ROWS = {4: "unknown_answer", 5: "label_out_of_range:watch_ratio", 6: "missing_value:request_id",
            8: "answer_without_questionnaire"}  # physical line -> reason


def test_the_config_section_mirrors_the_world():
    fields = {f.name: f.default for f in dataclasses.fields(VideoWorld)}
    section = SimulateVideoConfig()
    assert {k: getattr(section, k) for k in fields} == fields
    assert section.world() == VideoWorld()
    with pytest.raises(ValueError, match="candidates_per_request"):
        SimulateVideoConfig(n_items=5, candidates_per_request=10)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    config = config_from_dict({
        "simulate_video": {"n_users": 60, "n_items": 80, "n_requests": 300, "n_days": 3, "shard_requests": 100,
                           "formats": ["csv", "parquet"]},
        "data": {"source": "simulated_video", "split": {"by": "day", "eval_days": [2]}},
        "features": FEATURES, "labels": {"task": "questionnaire", "keys": ["user_id"]},
        "preprocess": {"num_shards": 1}})
    summary = simulate_to_files(config.simulate_video, root / "raw", seed=3)
    report, failure = run_job(config, root / "out", raw_dir=root / "raw")
    assert failure is None
    return {"summary": summary, "report": report, "out": root / "out", "raw": root / "raw"}


def test_a_simulated_log_is_split_by_day_with_labels_derived_from_the_answers(simulated):
    out, summary = simulated["out"], simulated["summary"]
    assert sorted(p.name for p in (simulated["raw"] / "questionnaire").iterdir()) == [
        f"part-0000{k}.{fmt}" for k in range(3) for fmt in ("csv", "parquet")]
    assert simulated["report"]["rows_written"] == summary["rows"] == 3000 and simulated["report"]["rows_rejected"] == 0
    raw = pd.concat(pd.read_parquet(p) for p in sorted((simulated["raw"] / "questionnaire").glob("*.parquet")))
    grade = raw["answer"].map({"": 0, "dissatisfied": 0, "uncertain": 1, "satisfied": 2})
    for split, days in (("train", {0, 1}), ("eval", {2})):
        rows = read_split(out, split)
        assert set(rows["day"]) == days
        got = pd.DataFrame({k: rows[k] for k in ("request_id", "answered", "answer_grade", "play", "watch_ratio")})
        want = raw[raw["day"].isin(days)]
        assert len(got) == len(want)
        got = got.assign(request_id=got["request_id"].astype(int)).sort_values(["request_id", "answer_grade"])
        assert got["answered"].sum() == (want["answer"] != "").sum()
        assert got["answer_grade"].sum() == grade[raw["day"].isin(days)].sum()
        assert got["play"].sum() == want["play"].sum()
        np.testing.assert_allclose(got["watch_ratio"].sum(), want["watch_ratio"].sum(), rtol=1e-5)
    assert {"gt_satisfaction", "gt_answer_prob_satisfied", "questionnaire_shown", "watch_seconds", "like",
            "user_id_xf", "item_duration_s_xf"} <= set(read_split(out, "train"))
    assert summary["answers"] == summary["satisfied"] + summary["dissatisfied"] + summary["uncertain"] > 0


@pytest.fixture(scope="module")
def own_log(tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "out"
    config = config_from_dict({
        "data": {"source": "csv", "train_files": [str(CSV)], "split": {"by": "day", "eval_days": [1]}},
        "features": FEATURES,
        "labels": {"task": "questionnaire", "ground_truth": [], "keys": ["user_id", "item_id"]},
        "preprocess": {"num_shards": 1, "max_reject_fraction": 0.6}})
    report, failure = run_job(config, out)
    return {"out": out, "report": report, "failure": failure}


def test_an_own_csv_log_counts_each_bad_row_kind_as_a_reject(own_log):
    report, out = own_log["report"], own_log["out"]
    assert own_log["failure"] is None
    assert report["rows_read"] == 8 and report["rows_written"] == 4 and report["reconciled"]
    assert report["rejected_by_reason"] == {reason: 1 for reason in BAD_ROWS.values()}
    assert {r["row"]: r["reason"] for r in rejects(out)} == BAD_ROWS
    rows = {**by_key(read_split(out, "train"), "item_id"), **{
        f"day1/{k}": v for k, v in by_key(read_split(out, "eval"), "item_id").items()}}
    assert {k: (r["request_id"], r["answered"], r["answer_grade"]) for k, r in rows.items()} == {
        "i1": ("r1", 1, 2), "i2": ("r1", 0, 0), "day1/i3": ("r3", 1, 0), "day1/i1": ("r4", 1, 1)}
