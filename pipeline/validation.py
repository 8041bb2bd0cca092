"""Row validation with a dead-letter output: every row is either clean or a counted reject.

Works on whole Arrow tables with ``pyarrow.compute`` (no per-row Python on the happy path).
A rejected row keeps its source file, its row number there, the first reason it failed and
its raw values, so it can be inspected and replayed. Reasons (``:<column>`` names the column):

    missing_value:<c>     empty or null, and the column has no default
    wrong_type:<c>        not a number (numeric columns) or not an integer (int columns)
    non_finite:<c>        nan / inf in a numeric column
    out_of_range:<c>      a number the column's dtype cannot hold (beyond float32 for a float feature,
                          e.g. 1e300 or 3.5e38, which would become inf in the transform; beyond int64)
    bad_encoding:<c>      bytes that are not UTF-8
    label_out_of_range:<c>  a 0/1 label that is neither, a rating outside ``rating_range``
    conversion_without_click    conversion = 1 on an unclicked row (or fixed, see config)
    rating_without_response     a survey rating on a row that did not respond (or fixed)

The label rules of each task are in ``pipeline.tasks``; typing one column is ``pipeline.columns``.
Readers add their own reasons: ``empty_line``, ``truncated_line``, ``extra_fields`` (``formats``),
``missing_common_features``, ``malformed_feature_list``, ``feature_num_mismatch`` (``sources.aliccp``).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Iterator, Literal, Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.columns import as_text, is_missing, is_textual, parse_numbers, to_list
from pipeline.tasks import PipelineTask, get_pipeline_task
from transforms.errors import UserError

ColumnKind = Literal["string", "string_list", "float", "int"]
_ARROW_TYPES = {"string": pa.binary(), "string_list": pa.binary(), "float": pa.float32(), "int": pa.int64()}


@dataclasses.dataclass(frozen=True)
class Reject:
    """One rejected row: where it came from (``row``: 1-based line of a text file, header included,
    or 0-based row of a Parquet file), why, and what it said."""

    source: str
    row: int
    reason: str
    raw: dict

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=_jsonable, sort_keys=True, ensure_ascii=False)


@dataclasses.dataclass(frozen=True)
class RowValidator:
    """Checks and types the columns the pipeline needs.

    ``kinds`` maps every needed column to string / string_list / float / int; ``defaults`` fills a
    missing value instead of rejecting the row; ``separators`` splits the text of string_list
    columns. ``task`` names the label rules (``pipeline.tasks``); ``selection`` and ``outcome`` are
    the columns of the two label roles (o and r), which a task that derives its labels computes from
    ``rating_column``; ``optional`` columns may be empty (the label rules decide, e.g. a survey rating).
    """

    kinds: Mapping[str, ColumnKind]
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
    separators: Mapping[str, str] = dataclasses.field(default_factory=dict)
    task: str = "conversion"
    selection: Optional[str] = None
    outcome: Optional[str] = None
    conversion_without_click: Literal["reject", "fix"] = "reject"
    rating_without_response: Literal["reject", "fix"] = "reject"
    rating_range: tuple[float, float] = (1.0, 5.0)
    rating_threshold: float = 3.0
    rating_column: Optional[str] = None
    optional: tuple[str, ...] = ()

    def arrow_schema(self, columns=None) -> pa.Schema:
        """Schema of the record batches TFT reads (list columns, as TFT wants) for ``columns``."""
        return pa.schema([(name, pa.list_(_ARROW_TYPES[self.kinds[name]])) for name in (columns or self.kinds)])

    @property
    def rules(self) -> PipelineTask:
        """The label rules of ``task``."""
        return get_pipeline_task(self.task)

    @property
    def derived(self) -> tuple[str, ...]:
        """Columns computed here rather than read: the labels of a task that derives them (ratings)."""
        return (self.selection, self.outcome) if self.rules.derives_labels else ()

    def missing_columns(self, columns) -> list[str]:
        present = set(columns)
        return [name for name in self.kinds if name not in present and name not in self.derived]

    def validate(self, table: pa.Table, source: str, rows=0):
        """Returns (clean typed ``pa.Table`` of flat columns, list of Reject, counts of fixes by kind).

        ``rows`` is the row number of every input row, or that of the first one.
        """
        n = table.num_rows
        rows = np.arange(rows, rows + n) if np.isscalar(rows) else np.asarray(rows)
        reasons: list[str] = []
        code = np.zeros(n, dtype=np.int32)

        def flag(why: str, mask: np.ndarray) -> None:
            hit = mask & (code == 0)
            if hit.any():
                reasons.append(why)
                code[hit] = len(reasons)

        typed, missing = {}, {}
        for name, kind in self.kinds.items():
            if name in self.derived:
                continue
            typed[name], missing[name] = self._column(table.column(name), name, kind, flag, source)
        fixes = self._labels(typed, missing, flag)
        bad = np.flatnonzero(code)
        rejects = []
        if len(bad):
            raw = table.take(pa.array(bad)).to_pylist()
            rejects = [Reject(source, int(rows[i]), reasons[code[i] - 1], r) for i, r in zip(bad, raw)]
        ok = pa.array(code == 0)
        clean = pa.table({name: typed[name] for name in self.kinds}).filter(ok) if len(bad) else \
            pa.table({name: typed[name] for name in self.kinds})
        return clean, rejects, fixes

    # ------------------------------------------------------------------ columns
    def _column(self, values, name: str, kind: ColumnKind, flag, source=None):
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        _check_arrow_type(values.type, name, kind, source)
        if kind == "string_list":
            return to_list(values, self.separators.get(name, "|"), lambda m: flag(f"bad_encoding:{name}", m)), None
        if kind == "string":
            text, bad_encoding = as_text(values, categorical=True)
            flag(f"bad_encoding:{name}", bad_encoding)
            text = pc.utf8_trim_whitespace(text)  # " android " is android, as labels and numbers are trimmed
            missing = is_missing(text) if is_textual(values.type) else values.is_null().to_numpy(
                zero_copy_only=False)
            if name in self.defaults:
                text = pc.if_else(pa.array(missing), pa.scalar(str(self.defaults[name])), text)
            else:
                flag(f"missing_value:{name}", missing)
            return text.cast(pa.binary()), missing
        numbers, missing = parse_numbers(values, name, flag)
        if kind == "int":
            flag(f"wrong_type:{name}", np.isfinite(numbers) & (numbers != np.round(numbers)))
        beyond = np.isfinite(numbers) & (np.abs(numbers) > _LIMITS[kind])
        flag(f"out_of_range:{name}", beyond)
        numbers = np.where(beyond, np.nan, numbers)  # rejected: never cast to inf
        if name in self.defaults:
            numbers = np.where(missing, float(self.defaults[name]), numbers)
        elif name not in self.optional:
            flag(f"missing_value:{name}", missing)
        numbers = np.nan_to_num(numbers, nan=0.0, posinf=0.0, neginf=0.0)
        return (numbers.astype(np.int64) if kind == "int" else numbers.astype(np.float32)), missing

    def _labels(self, typed: dict, missing: dict, flag) -> dict[str, int]:
        rules = self.rules
        if not rules.derives_labels and (self.selection is None or self.outcome is None):
            return {}
        return rules.label_rules(self, typed, missing, flag)


# The largest magnitude each kind holds: a float beyond float32 would become inf in the transform.
_LIMITS = {"float": float(np.finfo(np.float32).max), "int": float(2 ** 63 - 1024), "string": np.inf,
           "string_list": np.inf}


def _check_arrow_type(kind_of: pa.DataType, name: str, kind: ColumnKind, source) -> None:
    """A column whose every value is of the wrong shape (a Parquet list or struct where one value is
    declared, a struct or map anywhere) is the file's fault, not a row's: a :class:`UserError`."""
    nested = pa.types.is_nested(kind_of)
    is_list = pa.types.is_list(kind_of) or pa.types.is_large_list(kind_of)
    if nested and not (kind == "string_list" and is_list and not pa.types.is_nested(kind_of.value_type)):
        wanted = {"string_list": "a list of values or text with separators", "string": "one value per row",
                  "float": "one number per row", "int": "one integer per row"}[kind]
        raise UserError(f"column of type {kind_of} where the config declares {wanted}", file=source, key=name)


def to_record_batches(clean: pa.Table, schema: pa.Schema, rows: int,
                      constants: Optional[Mapping[str, str]] = None) -> Iterator[pa.RecordBatch]:
    """Clean flat columns -> Arrow record batches of list columns (one element, or the row's
    values for a string_list column), ``rows`` at a time, in ``schema``'s column order.
    ``constants`` fills the named columns with one value (e.g. the split)."""
    constants = constants or {}
    for start in range(0, clean.num_rows, rows):
        part = clean.slice(start, rows)
        offsets = pa.array(np.arange(part.num_rows + 1, dtype=np.int32))
        arrays = []
        for field in schema:
            if field.name in constants:
                value = pa.array([constants[field.name].encode()], field.type.value_type)
                arrays.append(pa.ListArray.from_arrays(offsets, value.take(np.zeros(part.num_rows, np.int64))))
                continue
            column = part.column(field.name).combine_chunks()
            if pa.types.is_list(column.type):
                arrays.append(column.cast(field.type))
            else:
                arrays.append(pa.ListArray.from_arrays(offsets, column.cast(field.type.value_type)))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
