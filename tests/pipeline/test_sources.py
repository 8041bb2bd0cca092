"""Readers: row numbers are physical lines, malformed lines are rejects, ratings formats, input resolution."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from ctrcvr.config import config_from_dict
from pipeline.sources import Reader, reader_for, resolve_inputs, sample_rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _all(reader, path, rows=4):
    chunks = list(reader.chunks(str(path), rows))
    table = {c: sum((ch.table.column(c).to_pylist() for ch in chunks), []) for c in chunks[0].table.column_names}
    return table, np.concatenate([ch.rows for ch in chunks]), [r for ch in chunks for r in ch.rejects]


def test_csv_rows_carry_their_physical_line_and_bad_lines_are_rejects(tmp_path):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n\n3\n4,5\n6,7,8\n9,10\n,\n11,12\n"))
    table, lines, rejects = _all(Reader("csv"), path, rows=2)
    assert table["a"] == [b"1", b"4", b"9", b"11"] and lines.tolist() == [2, 5, 7, 9]
    assert sorted((r.row, r.reason) for r in rejects) == [(3, "empty_line"), (4, "truncated_line"),
                                                          (6, "extra_fields"), (8, "empty_line")]
    assert next(r for r in rejects if r.row == 6).raw == {"line": "6,7,8", "expected_fields": 2, "found_fields": 3}


def test_ratings_triplets_comma_and_tab_without_header():
    data = config_from_dict({"data": {"source": "ratings"}}).data
    table, lines, rejects = _all(reader_for(data, str(FIXTURES / "ratings/test.tsv")), FIXTURES / "ratings/test.tsv")
    assert table["user_id"] == [b"0", b"1", b"2", b"3"] and table["rating"] == [b"1", b"4", b"5", b"2"]
    table, _, _ = _all(reader_for(data, str(FIXTURES / "ratings/train.csv")), FIXTURES / "ratings/train.csv", rows=100)
    assert len(table["rating"]) == 11 and table["rating"][-1] == b"x"  # validation, not the reader, judges values


def test_ratings_triplets_split_on_any_whitespace(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("1 2   5\n3\t4 1\n\n7 8\n")
    data = config_from_dict({"data": {"source": "ratings"}}).data
    table, lines, rejects = _all(reader_for(data, str(path)), path)
    assert table == {"user_id": [b"1", b"3"], "item_id": [b"2", b"4"], "rating": [b"5", b"1"]}
    assert lines.tolist() == [1, 2]
    assert [(r.row, r.reason) for r in rejects] == [(3, "empty_line"), (4, "truncated_line")]


def test_ratings_matrix_keeps_rated_cells_and_rejects_short_rows():
    data = config_from_dict({"data": {"source": "ratings", "ratings": {"format": "matrix"}}}).data
    path = FIXTURES / "ratings/matrix.ascii"
    table, lines, rejects = _all(reader_for(data, str(path)), path, rows=3)
    assert list(zip(table["user_id"], table["item_id"], table["rating"])) == [
        ("0", "0", b"5"), ("0", "3", b"3"), ("1", "2", b"4"), ("4", "0", b"2"), ("4", "2", b"5"), ("4", "3", b"1")]
    assert lines.tolist() == [1, 1, 2, 5, 5, 5]
    assert [(r.row, r.reason) for r in rejects] == [(3, "truncated_line")]
    with pytest.raises(ValueError, match="keep_missing was replaced by unobserved: all"):
        config_from_dict({"data": {"source": "ratings", "ratings": {"format": "matrix", "keep_missing": True}}})


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
