"""The ratings sources' reader: comma, tab and whitespace triplets, the dense matrix."""
import pytest

from ctrcvr.config import config_from_dict
from pipeline.inputs import reader_for
from tests.pipeline.helpers import FIXTURES, read_all as _all


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
