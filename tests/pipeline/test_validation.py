"""RowValidator: every bad row is rejected with its reason, good rows are typed, nothing vanishes."""
import numpy as np
import pyarrow as pa
import pytest

from pipeline.validation import RowValidator, to_record_batches

KINDS = {"user": "string", "price": "float", "click": "int", "conversion": "int"}


def _validator(**kw):
    return RowValidator(kinds={**KINDS, **kw.pop("kinds", {})}, defaults=kw.pop("defaults", {}),
                        selection="click", outcome="conversion", **kw)


def _table(rows, columns=tuple(KINDS), kind=pa.string()):
    return pa.table({c: pa.array([r[i] for r in rows], kind) for i, c in enumerate(columns)})


def test_good_rows_are_typed_and_kept():
    clean, rejects, _ = _validator().validate(_table([["u1", "2.5", "1", "1"], ["u2", " 0 ", "0", "0"]]), "f.csv")
    assert rejects == []
    assert clean.column("price").type == pa.float32() and clean.column("click").type == pa.int64()
    assert clean.column("user").to_pylist() == [b"u1", b"u2"] and clean.column("price").to_pylist() == [2.5, 0.0]


@pytest.mark.parametrize("row, reason", [
    (["", "1", "1", "0"], "missing_value:user"),
    ([" \t", "1", "1", "0"], "missing_value:user"),
    (["u", "abc", "1", "0"], "wrong_type:price"),
    (["u", "inf", "1", "0"], "non_finite:price"),
    (["u", "NaN", "1", "0"], "non_finite:price"),
    (["u", "1", "2", "0"], "label_out_of_range:click"),
    (["u", "1", "0.5", "0"], "wrong_type:click"),
    (["u", "1", "", "0"], "missing_value:click"),
    (["u", "1", "0", "1"], "conversion_without_click"),
])
def test_each_bad_row_gets_its_reason(row, reason):
    clean, rejects, _ = _validator().validate(_table([["ok", "1", "0", "0"], row]), "f.csv", rows=10)
    assert clean.num_rows == 1 and len(rejects) == 1
    assert rejects[0].reason == reason and rejects[0].row == 11 and rejects[0].source == "f.csv"
    assert rejects[0].raw["user"] == row[0]


def test_undecodable_bytes_are_their_own_reason_and_survive_into_the_reject_json():
    table = _table([[b"ok", b"1", b"0", b"0"], [b"\xff\xfe", b"1", b"0", b"0"], [b"u", b"\xff", b"0", b"0"]],
                   kind=pa.binary())
    clean, rejects, _ = _validator().validate(table, "f.csv", rows=np.array([2, 3, 5]))
    assert [(r.row, r.reason) for r in rejects] == [(3, "bad_encoding:user"), (5, "bad_encoding:price")]
    assert '"user": "\\\\xff\\\\xfe"' in rejects[0].to_json()


def test_conversion_without_click_can_be_fixed_and_is_counted():
    clean, rejects, fixes = _validator(conversion_without_click="fix").validate(_table([["u", "1", "0", "1"]]), "f")
    assert rejects == [] and clean.column("conversion").to_pylist() == [0]
    assert fixes == {"fixed:conversion_without_click": 1}


def test_default_fills_a_missing_numeric_and_a_missing_categorical():
    clean, rejects, _ = _validator(defaults={"price": 3.0, "user": "none"}).validate(_table([["", "", "0", "0"]]), "f")
    assert rejects == [] and clean.column("price").to_pylist() == [3.0]
    assert clean.column("user").to_pylist() == [b"none"]


def test_typed_columns_from_parquet_are_checked_without_text_parsing():
    table = pa.table({"user": pa.array([7, 8, None]), "price": pa.array([1.0, float("nan"), 2.0]),
                      "click": pa.array([1, 0, 0]), "conversion": pa.array([0, 0, 0])})
    clean, rejects, _ = _validator().validate(table, "f.parquet")
    assert clean.column("user").to_pylist() == [b"7"]
    assert [(r.row, r.reason) for r in rejects] == [(1, "non_finite:price"), (2, "missing_value:user")]


def test_multivalued_text_is_split_and_may_be_empty():
    v = _validator(kinds={"tags": "string_list"}, separators={"tags": "|"})
    table = _table([["u", "1", "0", "0", "a|b| c"], ["u", "1", "0", "0", ""]], columns=(*KINDS, "tags"))
    clean, rejects, _ = v.validate(table, "f")
    assert rejects == [] and clean.column("tags").to_pylist() == [[b"a", b"b", b"c"], []]


@pytest.mark.parametrize("responded, rating, reason", [
    ("1", "4", None), ("0", "", None), ("0", "3", "rating_without_response"),
    ("1", "", "missing_value:rating"), ("1", "6", "label_out_of_range:rating"),
    ("2", "", "label_out_of_range:responded"),
])
def test_survey_rules(responded, rating, reason):
    v = RowValidator(kinds={"user": "string", "responded": "int", "rating": "float"}, task="survey",
                     selection="responded", outcome="rating", optional=("rating",))
    clean, rejects, _ = v.validate(_table([["u", responded, rating]], columns=("user", "responded", "rating")), "f")
    assert [r.reason for r in rejects] == ([reason] if reason else [])
    if not reason:
        assert clean.column("rating").to_pylist() == [float(rating or 0)]


def test_ratings_labels_are_derived_from_the_rating():
    v = RowValidator(kinds={"user": "string", "rating": "float", "observed": "int", "label": "int"}, task="ratings",
                     selection="observed", outcome="label", rating_column="rating", rating_threshold=3)
    table = _table([["u", r] for r in ("5", "3", "0", "4", "9")], columns=("user", "rating"))
    clean, rejects, _ = v.validate(table, "f")
    assert [r.reason for r in rejects] == ["label_out_of_range:rating"]
    assert clean.column("observed").to_pylist() == [1, 1, 0, 1] and clean.column("label").to_pylist() == [1, 0, 0, 1]


def test_record_batches_are_list_columns_in_schema_order_with_constants():
    v = _validator()
    clean, _, _ = v.validate(_table([["u1", "2.5", "1", "1"]] * 5), "f.csv")
    schema = v.arrow_schema(["price", "user"]).append(pa.field("split", pa.list_(pa.binary())))
    batches = list(to_record_batches(clean, schema, rows=2, constants={"split": "eval"}))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert batches[0].schema.names == ["price", "user", "split"]
    assert batches[0].column(1).to_pylist() == [[b"u1"], [b"u1"]]
    assert batches[2].column(2).to_pylist() == [[b"eval"]]
