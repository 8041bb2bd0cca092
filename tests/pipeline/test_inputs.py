"""The source registry: input resolution, sample rows, and one record per source."""
from pathlib import Path

import pytest

from ctrcvr.config import ConfigError, config_from_dict
from pipeline.inputs import SOURCES, UnknownSource, get_source, resolve_inputs, sample_rows
from tests.pipeline.helpers import FIXTURES


def test_resolve_inputs_tags_files_with_their_split(tmp_path):
    for name in ("a.csv", "b.csv", "t.csv"):
        (tmp_path / name).write_text("x\n1\n")
    data = config_from_dict({"data": {"source": "csv", "train_files": [str(tmp_path / "[ab].csv")],
                                      "test_files": [str(tmp_path / "t.csv")]}}).data
    assert [(Path(p).name, s) for p, s in resolve_inputs(data)] == [("a.csv", None), ("b.csv", None), ("t.csv", "test")]
    by_files = config_from_dict({"data": {"source": "csv", "train_files": [str(tmp_path / "a.csv")],
                                          "eval_files": [str(tmp_path / "b.csv")], "split": {"by": "files"}}}).data
    assert [s for _, s in resolve_inputs(by_files)] == ["train", "eval"]
    with pytest.raises(FileNotFoundError, match="no input file matches"):
        resolve_inputs(config_from_dict({"data": {"source": "csv", "train_files": [str(tmp_path / "nope*")]}}).data)


def test_simulated_source_reads_exposures_or_surveys_by_task(tmp_path):
    for folder in ("exposures", "surveys"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part-00000.parquet").write_bytes(b"")
    data = config_from_dict({}).data
    assert "exposures" in resolve_inputs(data, tmp_path)[0][0]
    assert "surveys" in resolve_inputs(data, tmp_path, task="survey")[0][0]


def test_sample_rows_decodes_text_and_parses_aliccp_skeleton_features():
    rows = sample_rows(config_from_dict({"data": {"source": "csv"}}).data, str(FIXTURES / "surveys.csv"), 3)
    assert rows["user_id"].tolist() == ["u1", "u2", "u1"] and rows["rating"].tolist() == ["4", "", "5"]
    raw = config_from_dict({"data": {"source": "aliccp_raw"}}).data
    rows = sample_rows(raw, str(FIXTURES / "aliccp_raw/sample_skeleton_train.csv"), 2)
    assert rows["205"].tolist() == ["i1", "i2"] and rows["sample_id"].tolist() == ["s1", "s2"]


def test_every_source_is_one_record_whose_functions_import():
    import importlib
    for name, source in SOURCES.items():
        assert get_source(name) is source and source.name == name and source.description
        for fn in (source.resolve, source.reader, source.sample, source.beam_read,
                   *((source.simulator.run, source.simulator.announce, source.simulator.describe)
                     if source.simulated else ())):
            if fn is not None:
                assert callable(getattr(importlib.import_module(fn.module), fn.name)), (name, fn)
    assert [n for n, s in SOURCES.items() if s.simulated] == ["simulated", "simulated_ratings", "simulated_video"]
    assert get_source("simulated_video").reads == ("simulate_video",)
    assert get_source("simulated_ratings").reads == ("simulate_ratings", "labels")


def test_an_unknown_source_is_a_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError, match=r"data\.source.*unknown data\.source 'csvv'; known sources: simulated, csv"):
        config_from_dict({"data": {"source": "csvv"}})
    with pytest.raises(UnknownSource, match="known sources"):
        get_source("nope")


def test_a_simulator_runs_with_the_sections_it_reads_and_describes_its_run(tmp_path):
    config = config_from_dict({"data": {"source": "simulated_ratings"}, "labels": {"task": "ratings"},
                               "simulate_ratings": {"n_users": 30, "n_items": 12, "test_items": 3}})
    source = get_source(config.data.source)
    summary = source.simulate(tmp_path, 3, simulate_ratings=config.simulate_ratings, labels=config.labels)
    assert (tmp_path / "ratings" / "train.csv").is_file() and summary["seed"] == 3
    assert source.announce(simulate_ratings=config.simulate_ratings, labels=config.labels) == "MNAR + MAR ratings"
    assert source.describe(summary).startswith(f"{summary['mnar_ratings']} MNAR ratings (density ")
    with pytest.raises(TypeError, match="missing labels"):
        source.simulate(tmp_path, 3, simulate_ratings=config.simulate_ratings)
    with pytest.raises(ValueError, match="'csv' is not simulated; the simulated sources are simulated, "
                                         "simulated_ratings"):
        get_source("csv").simulate(tmp_path, 3)


def test_the_registry_imports_neither_beam_nor_tensorflow():
    import subprocess
    import sys
    code = ("import sys, pipeline.inputs, pipeline.config; "
            "print(sorted(m for m in ('apache_beam', 'tensorflow', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
