"""The workflow guards every output directory before a stage writes into it: a non-empty one is
refused unless ``overwrite``, which replaces what was there."""
import pytest

from ctrcvr import workflow
from ctrcvr.config import config_from_dict
from tests.pipeline.helpers import BAD_CONFIG

TINY_WORLD = dict(n_users=50, n_items=40, n_exposures=1_500, chunk_rows=1_000, ctr=0.3, response_rate=0.3,
                  formats=["csv", "parquet"])


def test_simulate_refuses_a_non_empty_directory_unless_overwrite(tmp_path):
    config = config_from_dict({"simulate": TINY_WORLD, "seed": 1})
    (tmp_path / "empty").mkdir()
    workflow.simulate(config, tmp_path / "empty")  # an existing empty directory is fine
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        workflow.simulate(config, tmp_path / "busy")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]
    smaller = config_from_dict({"simulate": dict(TINY_WORLD, n_exposures=500), "seed": 1})
    summary = workflow.simulate(smaller, tmp_path / "empty", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "empty" / "exposures").iterdir()) == [
        "part-00000.csv", "part-00000.parquet"]  # stale shards of the earlier run are gone
    assert summary["rows"] == 500


def test_simulate_names_the_simulated_sources_for_a_source_that_is_not(tmp_path):
    config = config_from_dict({"data": {"source": "csv"}})
    with pytest.raises(ValueError, match="'csv' is not simulated.*simulated, simulated_ratings"):
        workflow.simulate(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_preprocess_refuses_a_non_empty_output_dir_without_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        workflow.preprocess(BAD_CONFIG, out)
    assert [p.name for p in out.iterdir()] == ["report.json"] and (out / "report.json").read_text() == "{}"
