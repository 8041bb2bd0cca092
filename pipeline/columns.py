"""Typing one raw column, a whole Arrow array at a time: text, lists of text, numbers.

Each function returns the typed values and masks (missing, undecodable); ``flag(reason, mask)``
is the validator's way of rejecting rows (see ``pipeline.validation``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def parse_numbers(values: pa.Array, name: str, flag) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (nan where unusable) and the missing mask; flags wrong types and non-finite."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_boolean(values.type):
        missing = values.is_null().to_numpy(zero_copy_only=False)
        numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        numbers = np.where(missing, np.nan, numbers)
        flag(f"non_finite:{name}", ~missing & ~np.isfinite(numbers))
        return numbers, missing
    text, bad_encoding = as_text(values)
    flag(f"bad_encoding:{name}", bad_encoding)
    text = pc.utf8_trim_whitespace(text)
    missing = is_missing(text)
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


def as_text(values: pa.Array, categorical: bool = False) -> tuple[pa.Array, np.ndarray]:
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


def to_list(values: pa.Array, separator: str, flag_bad) -> pa.Array:
    """A string_list column -> list<binary>: list columns as they are, text split on ``separator``;
    empty cells are empty lists."""
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        flat, _ = as_text(pc.list_flatten(values))
        lists = pa.ListArray.from_arrays(_offsets(values), flat.cast(pa.binary()))
        return pc.if_else(values.is_null(), pa.scalar([], pa.list_(pa.binary())), lists)
    text, bad = as_text(values)
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


def is_textual(kind: pa.DataType) -> bool:
    """Whether a column holds text (which may be blank), not numbers (which are present or null)."""
    return not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


def is_missing(text: pa.Array) -> np.ndarray:
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
