"""Reading the input once: the first pass spills what it validated, the second reads it back, and the
job writes exactly what it writes when it reads the input twice."""
import json

import pyarrow as pa
import pytest
from apache_beam.pvalue import TaggedOutput

from pipeline.config import PreprocessSections
from pipeline.job import build_pipeline, make_validator
from pipeline.read import SPLIT_COLUMN, ReadValidateSplit
from pipeline.spill import SpillFile, read_spilled
from tests.pipeline.helpers import BAD_CONFIG, BAD_CSV, GOOD_IDS, read_split, rejects, run_job
from transforms.schema import Schema

import tensorflow_transform.beam as tft_beam  # noqa: E402
from apache_beam.runners.portability.fn_api_runner import FnApiRunner  # noqa: E402


def test_a_spill_file_gives_back_its_batches_and_is_made_only_when_written(tmp_path):
    schema = pa.schema([("x", pa.list_(pa.int64())), ("s", pa.list_(pa.binary()))])
    batches = [pa.RecordBatch.from_arrays([pa.array([[i], [i + 1]], schema[0].type), pa.array([[b"a"], [b""]])],
                                          schema=schema) for i in range(3)]
    spill = SpillFile(str(tmp_path), schema)
    for batch in batches:
        spill.write(batch)
    path = spill.close()
    assert [b.to_pylist() for b in read_spilled(path)] == [b.to_pylist() for b in batches]
    assert SpillFile(str(tmp_path / "none"), schema).close() is None and not (tmp_path / "none").exists()


def test_the_first_pass_spills_every_split_and_hands_on_the_train_rows_only(tmp_path):
    schema = Schema.from_config(BAD_CONFIG)
    validator = make_validator(PreprocessSections.of(BAD_CONFIG), schema)
    arrow = validator.arrow_schema(list(schema.raw_feature_spec())).append(pa.field(SPLIT_COLUMN, pa.list_(pa.binary())))
    labels = (BAD_CONFIG.labels.selection, BAD_CONFIG.labels.outcome)
    read = ReadValidateSplit(BAD_CONFIG.data, list(validator.kinds), validator, BAD_CONFIG.data.split,
                             BAD_CONFIG.preprocess.batch_rows, labels, arrow, count=True,
                             spill_dir=str(tmp_path), downstream=("train",))
    out = list(read.process((str(BAD_CSV), None)))
    handed_on = [o for o in out if isinstance(o, pa.RecordBatch)]
    spilled = [o.value for o in out if isinstance(o, TaggedOutput) and o.tag == "spilled"]
    assert len(spilled) == 1 and sum(o.tag == "rejects" for o in out if isinstance(o, TaggedOutput)) == 15

    def ids(batches):
        return {(b.column(SPLIT_COLUMN)[i].as_py()[0], b.column("exposure_id")[i].as_py()[0])
                for b in batches for i in range(b.num_rows)}
    everything = ids(read_spilled(spilled[0]))
    assert {key.decode() for _, key in everything} == GOOD_IDS and {s for s, _ in everything} == {b"train", b"eval"}
    assert ids(handed_on) == {(s, k) for s, k in everything if s == b"train"}


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    runs = {}
    for read_once in (True, False):
        config = BAD_CONFIG.model_copy(deep=True)
        config.preprocess.read_once = read_once
        out = tmp_path_factory.mktemp(f"read_once_{read_once}") / "out"
        report, failure = run_job(config, out)
        runs[read_once] = {"out": out, "report": report, "failure": failure}
    return runs


def test_reading_once_or_twice_writes_the_same_rows_rejects_and_report(both_ways):
    once, twice = both_ways[True], both_ways[False]
    for split in ("train", "eval"):
        assert read_split(once["out"], split) == read_split(twice["out"], split)
    assert rejects(once["out"]) == rejects(twice["out"]) and len(rejects(once["out"])) == 15
    assert _timeless(once["report"]) == _timeless(twice["report"]) and once["report"]["reconciled"]
    message = str(once["failure"]).replace(str(once["out"]), "<out>")  # too many rejects: the same message
    assert message == str(twice["failure"]).replace(str(twice["out"]), "<out>") and "15 of 19" in message


def _timeless(report: dict) -> dict:
    # the failure message names the run's own output dir, compared apart (above)
    return json.loads(json.dumps({k: v for k, v in report.items() if k not in ("seconds", "rows_per_second", "failure")}))


def test_no_temporary_files_are_left_behind(both_ways):
    for run in both_ways.values():
        assert not list(run["out"].glob("tft-*")) and not list(run["out"].rglob("*.arrow"))


def test_the_read_back_batches_stream_through_the_transform_in_one_stage(tmp_path):
    """The runner must not materialise the second pass's batches (memory would grow with the rows):
    reading them back, transforming and writing are one fused stage, as the local runner plans it."""
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), passthrough_keys={SPLIT_COLUMN}):
        pipeline = build_pipeline(PreprocessSections.of(BAD_CONFIG), [(str(BAD_CSV), None)], str(tmp_path / "out"),
                                  spill_dir=str(tmp_path / "spill"))
        _, stages = FnApiRunner().create_stages(pipeline.to_runner_api())
    names = [{t.unique_name for t in stage.transforms} for stage in stages]
    reading = [n for n in names if "ReadSpilled" in n]
    assert len(reading) == 1 and {"Transform/Transform", "Write/WriteBundles"} <= reading[0]
    assert not any("ReadValidateSplit" in n for n in reading[0])
