"""Shared by the Beam job tests: run the job quietly, read its output back the way the trainer does."""
import glob
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr.config import config_from_dict
from pipeline.config import PreprocessSections
from pipeline.inputs import resolve_inputs
from pipeline.job import PreprocessFailed, run_preprocess

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "tests" / "fixtures"

# The bad-input corpus (exposure logs, conversion task) and what must become of each line.
BAD_CSV = FIXTURES / "bad_exposures.csv"
BAD_LINES = {  # physical line -> why it must be rejected (see the fixture)
    5: "missing_value:user_id", 6: "wrong_type:item_price", 7: "non_finite:item_price",
    8: "label_out_of_range:click", 9: "conversion_without_click", 10: "empty_line", 11: "truncated_line",
    12: "extra_fields", 13: "bad_encoding:user_id", 14: "wrong_type:click", 15: "missing_value:conversion",
    16: "missing_value:user_id", 17: "non_finite:item_price", 18: "label_out_of_range:conversion",
    20: "missing_value:item_id",
}
GOOD_IDS = {"1", "2", "3", "17"}
BAD_CONFIG = config_from_dict({
    "data": {"source": "csv", "train_files": [str(BAD_CSV)],
             "split": {"by": "hash", "key": "exposure_id", "eval_fraction": 0.3}},
    "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"},
                 {"name": "device", "kind": "categorical"},
                 {"name": "item_price", "kind": "numeric", "transform": "log1p", "default": 0.0},
                 {"name": "tags", "kind": "categorical", "multivalued": True}],
    "labels": {"ground_truth": [], "keys": ["exposure_id"]},
    "preprocess": {"num_shards": 1, "max_reject_fraction": 0.5},
})


def run_job(config, out, raw_dir=None):
    """Runs the job; returns (report, the PreprocessFailed raised or None)."""
    try:
        run_preprocess(PreprocessSections.of(config),
                       resolve_inputs(config.data, raw_dir, task=config.labels.task, seed=config.seed), out)
        failure = None
    except PreprocessFailed as err:
        failure = err
    return json.loads((Path(out) / "report.json").read_text()), failure


def read_all(reader, path, rows=4):
    """Every chunk ``reader`` reads from ``path``: ({column: values}, row numbers, rejects)."""
    chunks = list(reader.chunks(str(path), rows))
    table = {c: sum((ch.table.column(c).to_pylist() for ch in chunks), []) for c in chunks[0].table.column_names}
    return table, np.concatenate([ch.rows for ch in chunks]), [r for ch in chunks for r in ch.rejects]


def read_split(out, split: str) -> dict:
    """The split's TFRecords parsed with the transform output's spec: {name: list per row}."""
    spec = tft.TFTransformOutput(str(out)).transformed_feature_spec()
    files = sorted(glob.glob(f"{out}/{split}/part-*.tfrecord.gz"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    parsed = tf.io.parse_example(tf.constant(records, tf.string), spec) if records else {}
    rows = {}
    for name, value in parsed.items():
        if isinstance(value, tf.SparseTensor):
            rows[name] = [[] for _ in range(len(records))]
            for (i, _), v in zip(value.indices.numpy(), value.values.numpy()):
                rows[name][i].append(v)
        else:
            rows[name] = [v.decode() if isinstance(v, bytes) else v for v in value.numpy().tolist()]
    return rows


def rejects(out) -> list[dict]:
    lines = (Path(out) / "rejects" / "rejects-00000-of-00001.jsonl").read_text().splitlines()
    return sorted((json.loads(line) for line in lines if line), key=lambda r: (r["source"], r["row"]))


def vocabulary(out, name: str) -> list[str]:
    return [t.decode() for t in tft.TFTransformOutput(str(out)).vocabulary_by_name(name)]


def by_key(rows: dict, key: str) -> dict:
    """Rows re-indexed by a passthrough key: {key value: {column: value}}."""
    return {k: {c: v[i] for c, v in rows.items()} for i, k in enumerate(rows.get(key, []))}


