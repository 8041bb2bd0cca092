"""configs/coat.yaml, yahoo_r3.yaml and yahoo_r3_implicit.yaml run unchanged (only the file paths and the
epochs set) on made-up files in the real formats (tests/fixtures/coat, tests/fixtures/yahoo_r3): preprocess,
one tiny training with full-matrix blocks and selection, evaluation on the MAR validation and test splits;
``ctrcvr tune`` picks a point on the validation split and evaluates the test split once."""
import json

import pytest

from ctrcvr import workflow
from ctrcvr.config import load_config
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures"
FILES = {
    "coat": (FIXTURES / "coat" / "train.ascii", FIXTURES / "coat" / "test.ascii"),
    "yahoo_r3": tuple(FIXTURES / "yahoo_r3" / f"ydata-ymusic-rating-study-v1_0-{s}.txt" for s in ("train", "test")),
}


def _config(name, *extra):
    train, test = FILES["coat" if name == "coat" else "yahoo_r3"]
    return load_config(REPO / "configs" / f"{name}.yaml",
                       [f"data.train_files=[{train}]", f"data.test_files=[{test}]", "train.epochs=2", *extra])


@pytest.fixture(scope="module")
def coat_data(tmp_path_factory):
    config = _config("coat")
    return config, workflow.prepare_data(config, tmp_path_factory.mktemp("coat") / "data")


def test_coat_config_reads_the_matrices_and_trains_mf_over_the_full_matrix(coat_data, tmp_path):
    config, data = coat_data
    report = json.loads((data / "report.json").read_text())
    train_cells = sum(v != "0" for line in FILES["coat"][0].read_text().split("\n") for v in line.split())
    test_cells = sum(v != "0" for line in FILES["coat"][1].read_text().split("\n") for v in line.split())
    assert report["rows_read"] == train_cells + test_cells and report["rows_rejected"] == 0
    assert report["rows_generated"] == 0, "full_matrix training: no unobserved row goes through Beam"
    model = workflow.train(config, data, tmp_path / "model")
    metrics = workflow.evaluate(config, data, tmp_path / "model", model=model)
    assert metrics["validation_rows"] + metrics["mar_rows"] == test_cells
    assert 0 <= metrics["mar_auc"] <= 1 and 0 <= metrics["mar_ndcg@5"] <= 1


@pytest.mark.parametrize("name", ["yahoo_r3", "yahoo_r3_implicit"])
def test_yahoo_configs_read_the_tab_separated_one_based_triplets_and_train(name, tmp_path):
    config = _config(name)
    data = workflow.prepare_data(config, tmp_path / "data")
    report = json.loads((data / "report.json").read_text())
    lines = sum(len(p.read_text().splitlines()) for p in FILES["yahoo_r3"])
    assert report["rows_read"] == lines and report["rows_rejected"] == 0
    model = workflow.train(config, data, tmp_path / "model")
    metrics = workflow.evaluate(config, data, tmp_path / "model", model=model)
    assert 0 <= metrics["mar_dcg@5"] <= 1
    if name == "yahoo_r3_implicit":
        assert "mar_rare_dcg@5" in metrics and metrics["mar_rare_rows"] < metrics["mar_rows"]


def test_tune_selects_on_validation_and_evaluates_the_test_split_once(coat_data, tmp_path):
    from ctrcvr.tune import tune
    config, data = coat_data
    config = _config("coat", "model.name=base", "tune.space={train.learning_rate: [0.001, 0.01]}",
                     "eval.validation_fraction=0.4")
    result = tune(config, tmp_path / "tune", data_dir=data)  # the slice is a view of the test shards: no re-preprocess
    trials = [json.loads(p.read_text()) for p in (tmp_path / "tune" / "trials").glob("*/seed*/metrics.json")]
    assert len(trials) == 2 and all("mar_auc" not in t and "validation_auc" in t for t in trials)
    assert "mar_auc" in result["test"] and result["chosen"]["train.learning_rate"] in (0.001, 0.01)
    chosen = load_config(tmp_path / "tune" / "chosen.yaml")
    assert chosen.train.learning_rate == result["chosen"]["train.learning_rate"] and chosen.eval.test
