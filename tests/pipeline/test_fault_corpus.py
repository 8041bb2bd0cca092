"""The fault corpus: bad rows and bad files, each with its exact outcome — written, rejected with its
reason and true physical line, or a one-line ``UserError`` naming the file (and the column or line).

One Beam job reads a CSV holding every kind of bad row (checked line by line against the rejects
file), a Parquet file with bad rows, a header-only CSV and a zero-row Parquet file; the report must
reconcile against a physical line count. File-level faults are read directly (no Beam), except the
ones only the job can see (a nested Parquet column, an empty train split), which also check that a
failed run leaves nothing that looks complete.
"""
import collections
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ctrcvr import workflow
from ctrcvr.config import config_from_dict
from ctrcvr.output_dir import SUCCESS
from pipeline.formats import Reader
from pipeline.job import PreprocessFailed
from pipeline.sources.files import file_reader
from tests.pipeline.helpers import by_key, read_split, vocabulary
from transforms.errors import UserError

HEADER = b"exposure_id,user_id,item_id,device,item_price,tags,click,conversion"
W = "written"
# (physical line bytes, outcome): the row's key when it is written, else its reject reason
ROWS = [
    (b"1,u1,i1,ios,10.5,a|b,1,1", W),
    (b"2,u2,i2, android ,3,b,0,0", W),                           # categorical trimmed: android
    (b'3,u3,i3,ios,2,"a|c",1,0', W),                             # a quoted field
    (b'4,"u""4",i1,ios,2,a,0,0', W),                             # "" inside quotes is a quote
    (b'5,"u5,x",i1,ios,2,a,0,0', W),                             # the delimiter inside quotes
    (b'6,u6,i1,5" screen,2,a,0,0', W),                           # a quote inside a field is text
    (b"7,u7,i1,ios,,a,0,0", W),                                  # empty price: its default
    (b"8,u8,i1,ios,1e2,a,1,0\r", W),                             # CRLF line end
    (b"9,,i1,ios,2,a,0,0", "missing_value:user_id"),
    (b"10,   ,i1,ios,2,a,0,0", "missing_value:user_id"),
    (b"11,u1,,ios,2,a,0,0", "missing_value:item_id"),
    (b",u1,i1,ios,2,a,0,0", "missing_value:exposure_id"),
    (b"13,u1,i1,ios,abc,a,0,0", "wrong_type:item_price"),
    (b"14,u1,i1,ios,0x10,a,0,0", "wrong_type:item_price"),
    (b"15,u1,i1,ios,inf,a,0,0", "non_finite:item_price"),
    (b"16,u1,i1,ios,NaN,a,0,0", "non_finite:item_price"),
    (b"17,u1,i1,ios,1e300,a,0,0", "out_of_range:item_price"),
    (b"18,u1,i1,ios,3.5e38,a,0,0", "out_of_range:item_price"),
    (b"19,u1,i1,ios,-3.5e38,a,0,0", "out_of_range:item_price"),
    (b"20,u1,i1,ios,2,a,2,0", "label_out_of_range:click"),
    (b"21,u1,i1,ios,2,a,0.5,0", "wrong_type:click"),
    (b"22,u1,i1,ios,2,a,yes,0", "wrong_type:click"),
    (b"23,u1,i1,ios,2,a,1,-1", "label_out_of_range:conversion"),
    (b"24,u1,i1,ios,2,a,1,", "missing_value:conversion"),
    (b"25,u1,i1,ios,2,a,0,1", "conversion_without_click"),
    (b"", "empty_line"),
    (b"   ", "empty_line"),
    (b",,,,,,,", "empty_line"),
    (b"29,u1,i1,ios,2", "truncated_line"),
    (b"30,u1,i1,ios,2,a,0,0,extra", "extra_fields"),
    (b"31,\xff\xfeu,i1,ios,2,a,0,0", "bad_encoding:user_id"),
    (b"32,u1,i1,\xc3(,2,a,0,0", "bad_encoding:device"),
    (b"33,u1,i1,ios,2,a\xff,0,0", "bad_encoding:tags"),
    (b'34,"u34,i1,ios,2,a,0,0', "unbalanced_quote"),            # a stray quote swallows nothing
    (b"35,u35,i1,ios,2,a,1,1", W),
    (b'36,"u36', "unbalanced_quote"),                            # a newline inside quotes: both lines
    (b'x",i1,ios,2,a,0', "truncated_line"),
    (b"38,u38,i2,pc,4,c,1,1", W),                                # its line number is still 38 + 1
    (b"39,u39,i2,pc,4,c,0,0", W),
]
PARQUET_ROWS = [  # (row, outcome); Parquet rows are numbered from 0
    ({"exposure_id": "p0", "user_id": "u1", "device": " ios ", "item_price": 1.5, "click": 1, "conversion": 0}, W),
    ({"exposure_id": "p1", "user_id": "u1", "device": "ios", "item_price": 1e300, "click": 0, "conversion": 0},
     "out_of_range:item_price"),
    ({"exposure_id": "p2", "user_id": "u1", "device": "ios", "item_price": float("nan"), "click": 0,
      "conversion": 0}, "non_finite:item_price"),
    ({"exposure_id": "p3", "user_id": None, "device": "ios", "item_price": 1.0, "click": 0, "conversion": 0},
     "missing_value:user_id"),
    ({"exposure_id": "p4", "user_id": "u2", "device": "pc", "item_price": 2.0, "click": 2, "conversion": 0},
     "label_out_of_range:click"),
]
FEATURES = [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"},
            {"name": "device", "kind": "categorical"},
            {"name": "item_price", "kind": "numeric", "transform": "log1p", "default": 0.0},
            {"name": "tags", "kind": "categorical", "multivalued": True}]


def corpus_config(files, **split):
    return config_from_dict({
        "data": {"source": "csv", "train_files": [str(f) for f in files],
                 "split": {"by": "hash", "key": "exposure_id", "eval_fraction": 0.3, **split}},
        "features": FEATURES, "labels": {"ground_truth": [], "keys": ["exposure_id"]},
        "preprocess": {"num_shards": 1, "max_reject_fraction": 0.9}})


def parquet_table(rows):
    full = [{"item_id": "i1", "tags": ["a"], **r} for r, _ in rows]
    return pa.Table.from_pylist(full, schema=pa.schema([
        ("exposure_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()), ("device", pa.string()),
        ("item_price", pa.float64()), ("tags", pa.list_(pa.string())), ("click", pa.int64()),
        ("conversion", pa.int64())]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    csv = root / "rows.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + HEADER + b"\n" + b"\n".join(line for line, _ in ROWS) + b"\n")  # with a BOM
    (root / "header_only.csv").write_bytes(HEADER)  # no newline after the header
    pq.write_table(parquet_table(PARQUET_ROWS), root / "rows.parquet")
    pq.write_table(parquet_table([]), root / "zero_rows.parquet")
    out = root / "out"
    files = [csv, root / "header_only.csv", root / "rows.parquet", root / "zero_rows.parquet"]
    report = workflow.preprocess(corpus_config(files), out)
    lines = [json.loads(x) for x in (out / "rejects" / "rejects-00000-of-00001.jsonl").read_text().splitlines()]
    return {"root": root, "out": out, "report": report, "csv": csv, "rejects": lines}


def _expected_rejects(csv, parquet):
    expected = {(str(csv), i + 2): o for i, (_, o) in enumerate(ROWS) if o != W}
    expected.update({(str(parquet), i): o for i, (_, o) in enumerate(PARQUET_ROWS) if o != W})
    return expected


def test_every_bad_row_is_rejected_for_its_reason_at_its_physical_line(corpus):
    found = {(r["source"], r["row"]): r["reason"] for r in corpus["rejects"]}
    assert len(found) == len(corpus["rejects"])  # one reject per line
    assert found == _expected_rejects(corpus["csv"], corpus["root"] / "rows.parquet")
    bad = [o for _, o in ROWS + PARQUET_ROWS if o != W]
    assert len(bad) >= 30 and len(set(bad)) >= 18  # bad rows of this many kinds, with this many reasons
    raw = {r["row"]: r["raw"] for r in corpus["rejects"] if r["source"] == str(corpus["csv"])}
    assert raw[35]["line"] == '34,"u34,i1,ios,2,a,0,0'  # the stray quote's line (ROWS[33]), kept whole
    assert raw[38]["line"] == 'x",i1,ios,2,a,0' and raw[11]["user_id"] == "   "  # ROWS[9], at line 9 + 2


def test_rows_read_reconcile_with_a_physical_line_count(corpus):
    report, text = corpus["report"], corpus["csv"].read_bytes()
    data_lines = text.count(b"\n") - 1  # every line ends with \n; the header is not a row
    assert data_lines == len(ROWS)
    assert report["rows_read"] == data_lines + len(PARQUET_ROWS)
    assert report["rows_read"] == report["rows_written"] + report["rows_rejected"] and report["reconciled"]
    assert report["rejected_by_reason"] == dict(collections.Counter(
        o for _, o in ROWS + PARQUET_ROWS if o != W))
    assert (corpus["out"] / SUCCESS).exists()


def test_good_rows_are_written_with_trimmed_and_unquoted_values(corpus):
    out = corpus["out"]
    rows = {**by_key(read_split(out, "train"), "exposure_id"), **by_key(read_split(out, "eval"), "exposure_id")}
    written = {line.split(b",")[0].decode() for line, o in ROWS if o == W} | {"p0"}
    assert set(rows) == written
    devices = vocabulary(out, "device")
    assert "android" in devices and " android " not in devices and " ios " not in devices
    assert '5" screen' in devices
    users = vocabulary(out, "user_id")
    assert 'u"4' in users and "u5,x" in users
    tags = vocabulary(out, "tags")
    assert "c" in tags and '"a' not in tags


def test_gzip_csv_rows_have_the_same_lines_and_reasons(corpus, tmp_path):
    path = tmp_path / "rows.csv.gz"
    path.write_bytes(gzip.compress(corpus["csv"].read_bytes()))
    rejects = [r for chunk in Reader("csv").chunks(str(path), 7) for r in chunk.rejects]
    plain = [r for chunk in Reader("csv").chunks(str(corpus["csv"]), 7) for r in chunk.rejects]
    reader_kinds = {"empty_line", "truncated_line", "extra_fields", "unbalanced_quote"}
    assert sorted((r.row, r.reason) for r in rejects) == sorted((r.row, r.reason) for r in plain) == sorted(
        (i + 2, o) for i, (_, o) in enumerate(ROWS) if o in reader_kinds)


# ---------------------------------------------------------------------- bad files: one line, naming the file
def _gzip_truncated(path):
    path.write_bytes(gzip.compress(HEADER + b"\n" + b"1,u1,i1,ios,1,a,0,0\n" * 5000)[:-64])


BAD_FILES = {  # name -> (write it, what the error says)
    "empty.csv": (lambda p: p.write_bytes(b""), "empty file: no header line"),
    "blank.csv": (lambda p: p.write_bytes(b"\n\n"), "empty file: no header line"),
    "gzip_named.csv": (lambda p: p.write_bytes(gzip.compress(HEADER + b"\n")), "gzip-compressed but not named .gz"),
    "text_named.csv.gz": (lambda p: p.write_bytes(HEADER + b"\n"), "named .gz but is not gzip-compressed"),
    "truncated.csv.gz": (_gzip_truncated, "cannot read it as CSV"),
    "directory.csv": (lambda p: p.mkdir(), "is a directory, not a file"),
    "quote_in_header.csv": (lambda p: p.write_bytes(b'a,"b\n1,2\n'), "header line has an unbalanced quote"),
    "duplicate_header.csv": (lambda p: p.write_bytes(b"a,b,a\n1,2,3\n"), "names 'a' more than once"),
    "zero_bytes.parquet": (lambda p: p.write_bytes(b""), "cannot read it as Parquet"),
    "truncated.parquet": (lambda p: (pq.write_table(parquet_table(PARQUET_ROWS), p),
                                     p.write_bytes(p.read_bytes()[:200])), "cannot read it as Parquet"),
    "text.parquet": (lambda p: p.write_bytes(b"exposure_id\n1\n"), "cannot read it as Parquet"),
    "rows.json": (lambda p: p.write_bytes(b"{}"), "cannot tell the format from the file name"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_one_user_error_naming_it(tmp_path, name):
    write, message = BAD_FILES[name]
    path = tmp_path / name
    write(path)
    data = config_from_dict({"data": {"source": "csv", "train_files": [str(path)]}}).data
    with pytest.raises(UserError) as err:
        list(file_reader(data, str(path)).chunks(str(path), 100))
    assert err.value.file == str(path) and message in err.value.message
    assert "\n" not in str(err.value) and str(err.value).startswith(str(path))


@pytest.mark.parametrize("content", [HEADER, HEADER + b"\n", b"\xef\xbb\xbf" + HEADER + b"\r\n"])
def test_a_header_only_file_has_no_rows_and_no_error(tmp_path, content):
    path = tmp_path / "header.csv"
    path.write_bytes(content)
    assert list(Reader("csv").chunks(str(path), 10)) == []


# ---------------------------------------------------------------------- faults only the job sees
@pytest.mark.parametrize("kind", [pa.list_(pa.int64()), pa.struct([("a", pa.int64())])], ids=["list", "struct"])
def test_a_nested_parquet_column_where_a_value_is_declared_is_an_error_naming_file_and_column(tmp_path, kind):
    path = tmp_path / "nested.parquet"
    table = parquet_table(PARQUET_ROWS[:1])
    value = [[1, 2]] if pa.types.is_list(kind) else [{"a": 1}]
    pq.write_table(table.set_column(table.schema.get_field_index("item_price"), "item_price", pa.array(value, kind)),
                   path)
    from pipeline.validation import RowValidator
    validator = RowValidator(kinds={"item_price": "float"})
    with pytest.raises(UserError) as err:
        validator.validate(pq.read_table(path).select(["item_price"]), str(path))
    assert (err.value.file, err.value.key) == (str(path), "item_price") and str(kind).split("<")[0] + "<" in err.value.message


def test_an_empty_train_split_fails_naming_it_and_leaves_nothing_that_looks_complete(tmp_path):
    header_only = tmp_path / "header_only.csv"
    header_only.write_bytes(HEADER + b"\n")
    out = tmp_path / "out"
    with pytest.raises(PreprocessFailed) as err:
        workflow.preprocess(corpus_config([header_only]), out)
    assert "the train split is empty" in str(err.value) and f"{out}.failed" in str(err.value)
    assert not out.exists()  # the same command is not refused next time
    failed = tmp_path / "out.failed"
    assert "train split is empty" in json.loads((failed / "report.json").read_text())["failure"]
    assert not (failed / SUCCESS).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_an_error_inside_the_job_is_one_line_naming_the_file_and_the_output_is_not_left_behind(tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes(HEADER + b"\n" + b"1,u1,i1,ios,1,a,0,0\n")
    bad = tmp_path / "bad.parquet"
    table = parquet_table(PARQUET_ROWS[:1])
    pq.write_table(table.set_column(table.schema.get_field_index("click"), "click",
                                    pa.array([[1]], pa.list_(pa.int64()))), bad)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        workflow.preprocess(corpus_config([good, bad]), out)
    assert err.value.file == str(bad) and err.value.key == "click" and "while running" not in str(err.value)
    assert not out.exists() and (tmp_path / "out.failed").is_dir()


def test_an_output_dir_that_is_inside_or_contains_an_input_is_refused_before_anything_is_deleted(tmp_path):
    raw = tmp_path / "runs" / "s"
    raw.mkdir(parents=True)
    data = raw / "rows.csv"
    data.write_bytes(HEADER + b"\n1,u1,i1,ios,1,a,0,0\n")
    config = corpus_config([data])
    for out in (raw, raw / "xf", tmp_path / "runs", data):
        with pytest.raises(UserError, match="the output directory (is|contains|lies inside) the input"):
            workflow.preprocess(config, out, raw_dir=raw, overwrite=True)
    assert data.read_bytes() == HEADER + b"\n1,u1,i1,ios,1,a,0,0\n" and os.listdir(raw) == ["rows.csv"]
