"""RowValidator: every bad row is rejected with its reason, good rows are typed, nothing vanishes."""
import numpy as np
import pandas as pd
import pytest

from pipeline.validation import RowValidator, to_record_batches

KINDS = {"user": "string", "price": "float", "click": "int", "conversion": "int"}


def _validator(**kw):
    return RowValidator(kinds=KINDS, defaults=kw.pop("defaults", {}), binary_labels=("click", "conversion"),
                        click="click", conversion="conversion", **kw)


def _frame(rows):
    return pd.DataFrame(rows, columns=list(KINDS), dtype="string")


def test_good_rows_are_typed_and_kept():
    clean, rejects, _ = _validator().validate(_frame([["u1", "2.5", "1", "1"], ["u2", "0", "0", "0"]]), "f.csv")
    assert rejects == []
    assert clean["price"].dtype == np.float32 and clean["click"].dtype == np.int64
    assert clean["user"].tolist() == ["u1", "u2"]


@pytest.mark.parametrize("row, reason", [
    (["", "1", "1", "0"], "missing_value:user"),
    (["u", "abc", "1", "0"], "wrong_type:price"),
    (["u", "inf", "1", "0"], "wrong_type:price"),
    (["u", "1", "2", "0"], "label_out_of_range:click"),
    (["u", "1", "0.5", "0"], "wrong_type:click"),
    (["u", "1", "", "0"], "missing_value:click"),
    (["u", "1", "0", "1"], "conversion_without_click"),
])
def test_each_bad_row_gets_its_reason(row, reason):
    clean, rejects, _ = _validator().validate(_frame([["ok", "1", "0", "0"], row]), "f.csv", first_row=10)
    assert len(clean) == 1 and len(rejects) == 1
    assert rejects[0].reason == reason and rejects[0].row == 11 and rejects[0].source == "f.csv"
    assert rejects[0].raw["user"] == row[0]


def test_conversion_without_click_can_be_fixed_and_is_counted():
    clean, rejects, fixes = _validator(conversion_without_click="fix").validate(
        _frame([["u", "1", "0", "1"]]), "f.csv")
    assert rejects == [] and clean["conversion"].tolist() == [0]
    assert fixes == {"fixed:conversion_without_click": 1}


def test_default_fills_a_missing_numeric():
    clean, rejects, _ = _validator(defaults={"price": 3.0}).validate(_frame([["u", "", "0", "0"]]), "f.csv")
    assert rejects == [] and clean["price"].tolist() == [3.0]


def test_record_batches_are_one_element_lists_in_schema_order():
    v = _validator()
    clean, _, _ = v.validate(_frame([["u1", "2.5", "1", "1"]] * 5), "f.csv")
    batches = list(to_record_batches(clean, v.arrow_schema(["price", "user"]), rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert batches[0].schema.names == ["price", "user"]
    assert batches[0].column(1).to_pylist() == [[b"u1"], [b"u1"]]
