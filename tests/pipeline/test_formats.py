"""File formats: row numbers are physical lines and malformed lines are rejects."""
import gzip

from pipeline.formats import Reader
from tests.pipeline.helpers import read_all


def test_csv_rows_carry_their_physical_line_and_bad_lines_are_rejects(tmp_path):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n\n3\n4,5\n6,7,8\n9,10\n,\n11,12\n"))
    table, lines, rejects = read_all(Reader("csv"), path, rows=2)
    assert table["a"] == [b"1", b"4", b"9", b"11"] and lines.tolist() == [2, 5, 7, 9]
    assert sorted((r.row, r.reason) for r in rejects) == [(3, "empty_line"), (4, "truncated_line"),
                                                          (6, "extra_fields"), (8, "empty_line")]
    assert next(r for r in rejects if r.row == 6).raw == {"line": "6,7,8", "expected_fields": 2, "found_fields": 3}
