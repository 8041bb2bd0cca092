"""Row validation with a dead-letter output: every row is either clean or a counted reject.

Works on whole Arrow tables with ``pyarrow.compute`` (no per-row Python on the happy path).
A rejected row keeps its source file, its row number there, the first reason it failed and
its raw values, so it can be inspected and replayed. Reasons (``:<column>`` names the column):

    missing_value:<c>     empty or null, and the column has no default
    wrong_type:<c>        not a number (numeric columns) or not an integer (int columns)
    non_finite:<c>        nan / inf in a numeric column
    bad_encoding:<c>      bytes that are not UTF-8
    label_out_of_range:<c>  a 0/1 label that is neither, a rating outside ``rating_range``
    conversion_without_click    conversion = 1 on an unclicked row (or fixed, see config)
    rating_without_response     a survey rating on a row that did not respond (or fixed)

Readers add their own: ``empty_line``, ``truncated_line``, ``extra_fields`` (see ``sources``),
``missing_common_features``, ``malformed_feature_list``, ``feature_num_mismatch`` (``aliccp``).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Iterator, Literal, Mapping, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    columns. The label rules depend on ``task`` (conversion, survey or ratings): ``click`` and
    ``conversion`` name the two label roles (o and r); a ``ratings`` task derives both from
    ``rating_column``; ``optional`` columns may be empty (the label rules decide, e.g. a survey rating).
    """

    kinds: Mapping[str, ColumnKind]
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
    separators: Mapping[str, str] = dataclasses.field(default_factory=dict)
    task: str = "conversion"
    click: Optional[str] = None
    conversion: Optional[str] = None
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
    def derived(self) -> tuple[str, ...]:
        """Columns computed here rather than read: the ratings labels (from the rating)."""
        return (self.click, self.conversion) if self.task == "ratings" else ()

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
            typed[name], missing[name] = self._column(table.column(name), name, kind, flag)
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
    def _column(self, values, name: str, kind: ColumnKind, flag):
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        if kind == "string_list":
            return _to_list(values, self.separators.get(name, "|"), lambda m: flag(f"bad_encoding:{name}", m)), None
        if kind == "string":
            text, bad_encoding = _as_text(values, categorical=True)
            flag(f"bad_encoding:{name}", bad_encoding)
            missing = _is_missing(text) if _is_textual(values.type) else values.is_null().to_numpy(
                zero_copy_only=False)
            if name in self.defaults:
                text = pc.if_else(pa.array(missing), pa.scalar(str(self.defaults[name])), text)
            else:
                flag(f"missing_value:{name}", missing)
            return text.cast(pa.binary()), missing
        numbers, missing = self._numbers(values, name, flag)
        if kind == "int":
            flag(f"wrong_type:{name}", np.isfinite(numbers) & (numbers != np.round(numbers)))
        if name in self.defaults:
            numbers = np.where(missing, float(self.defaults[name]), numbers)
        elif name not in self.optional:
            flag(f"missing_value:{name}", missing)
        numbers = np.nan_to_num(numbers, nan=0.0, posinf=0.0, neginf=0.0)
        return (numbers.astype(np.int64) if kind == "int" else numbers.astype(np.float32)), missing

    def _numbers(self, values: pa.Array, name: str, flag) -> tuple[np.ndarray, np.ndarray]:
        """float64 values (nan where unusable) and the missing mask; flags wrong types and non-finite."""
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type):
            missing = values.is_null().to_numpy(zero_copy_only=False)
            numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            numbers = np.where(missing, np.nan, numbers)
            flag(f"non_finite:{name}", ~missing & ~np.isfinite(numbers))
            return numbers, missing
        text, bad_encoding = _as_text(values)
        flag(f"bad_encoding:{name}", bad_encoding)
        text = pc.utf8_trim_whitespace(text)
        missing = _is_missing(text)
        present = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)
        try:
            numbers = present.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # some value is not a number: the slow path
            words = pc.utf8_lower(present).to_numpy(zero_copy_only=False)
            numbers = pd.to_numeric(pd.Series(words, dtype=object), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
            numbers = np.where(np.isnan(numbers), _named_numbers(words), numbers)
        nan_word = _is_nan_word(present)
        flag(f"wrong_type:{name}", ~missing & np.isnan(numbers) & ~nan_word)
        flag(f"non_finite:{name}", ~missing & (np.isinf(numbers) | nan_word))
        return np.where(missing, np.nan, numbers), missing

    # ------------------------------------------------------------------ labels
    def _labels(self, typed: dict, missing: dict, flag) -> dict[str, int]:
        o, r = self.click, self.conversion
        if self.task == "ratings":
            rating = typed[self.rating_column].astype(np.float64)
            observed = rating != 0
            lo, hi = self.rating_range
            flag(f"label_out_of_range:{self.rating_column}", observed & ((rating < lo) | (rating > hi)))
            typed[o] = observed.astype(np.int64)
            typed[r] = (observed & (rating > self.rating_threshold)).astype(np.int64)
            return {}
        if o is None or r is None:
            return {}
        flag(f"label_out_of_range:{o}", ~np.isin(typed[o], (0, 1)))
        if self.task == "survey":
            return self._survey(typed, missing, flag)
        flag(f"label_out_of_range:{r}", ~np.isin(typed[r], (0, 1)))
        orphan = (typed[r] == 1) & (typed[o] == 0)
        if self.conversion_without_click == "reject":
            flag("conversion_without_click", orphan)
            return {}
        typed[r] = np.where(orphan, 0, typed[r])
        return {"fixed:conversion_without_click": int(orphan.sum())}

    def _survey(self, typed: dict, missing: dict, flag) -> dict[str, int]:
        o, r = self.click, self.conversion
        responded, rating, absent = typed[o] == 1, typed[r], missing[r]
        lo, hi = self.rating_range
        flag(f"missing_value:{r}", responded & absent)
        flag(f"label_out_of_range:{r}", responded & ~absent & ((rating < lo) | (rating > hi)))
        stray = ~responded & ~absent
        fixes = {}
        if self.rating_without_response == "reject":
            flag("rating_without_response", stray)
        else:
            fixes["fixed:rating_without_response"] = int(stray.sum())
        typed[r] = np.where(responded, rating, 0).astype(np.float32)
        return fixes


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


# ---------------------------------------------------------------------- helpers
def _as_text(values: pa.Array, categorical: bool = False) -> tuple[pa.Array, np.ndarray]:
    """Any column -> utf8 strings (null where undecodable) and the mask of undecodable values."""
    n = len(values)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_null(values.type):
        return pa.nulls(n, pa.string()), np.zeros(n, dtype=bool)
    if pa.types.is_floating(values.type) and categorical:
        whole = pc.fill_null(pc.equal(values, pc.round(values)), True)
        if pc.all(whole).as_py():
            values = values.cast(pa.int64())
    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
        try:
            return values.cast(pa.string()), np.zeros(n, dtype=bool)
        except pa.ArrowInvalid:  # undecodable bytes somewhere: find them, value by value
            decoded = [_decode(v) for v in values.to_pylist()]
            bad = np.array([d is False for d in decoded])
            return pa.array([None if d is False else d for d in decoded], pa.string()), bad
    return values.cast(pa.string()), np.zeros(n, dtype=bool)


def _to_list(values: pa.Array, separator: str, flag_bad) -> pa.Array:
    """A string_list column -> list<binary>: list columns as they are, text split on ``separator``;
    empty cells are empty lists."""
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        flat, _ = _as_text(pc.list_flatten(values))
        lists = pa.ListArray.from_arrays(_offsets(values), flat.cast(pa.binary()))
        return pc.if_else(values.is_null(), pa.scalar([], pa.list_(pa.binary())), lists)
    text, bad = _as_text(values)
    flag_bad(bad)
    parts = pc.split_pattern(pc.fill_null(text, ""), separator)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    keep = pc.greater(pc.utf8_length(flat), 0)
    parents = pc.list_parent_indices(parts).to_numpy()[keep.to_numpy(zero_copy_only=False)]
    counts = np.bincount(parents, minlength=len(values))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(keep).cast(pa.binary()))


def _offsets(lists: pa.Array) -> pa.Array:
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))


def _is_textual(kind: pa.DataType) -> bool:
    """Whether a column holds text (which may be blank), not numbers (which are present or null)."""
    return not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


def _is_missing(text: pa.Array) -> np.ndarray:
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    return pc.fill_null(empty, True).to_numpy(zero_copy_only=False)


def _is_nan_word(text: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.equal(pc.utf8_lower(text), "nan"), False).to_numpy(zero_copy_only=False)


def _named_numbers(words: np.ndarray) -> np.ndarray:
    table = {"nan": np.nan, "inf": np.inf, "+inf": np.inf, "-inf": -np.inf, "infinity": np.inf,
             "+infinity": np.inf, "-infinity": -np.inf}
    return np.array([table.get(w, np.nan) if isinstance(w, str) else np.nan for w in words], dtype=np.float64)


def _decode(value):
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return False


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
