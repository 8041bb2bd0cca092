"""Row validation with a dead-letter output: every row is either clean or a counted reject.

Works on whole pandas chunks (no per-row Python on the happy path). A rejected row keeps
its source file, its row number in that file, the first reason it failed and its raw
values, so it can be inspected and replayed.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Iterator, Literal, Mapping, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

ColumnKind = Literal["string", "float", "int"]
_ARROW_TYPES = {"string": pa.binary(), "float": pa.float32(), "int": pa.int64()}


@dataclasses.dataclass(frozen=True)
class Reject:
    """One rejected row: where it came from, why, and what it said."""

    source: str
    row: int
    reason: str
    raw: dict

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class RowValidator:
    """Checks and types the columns the pipeline needs.

    ``kinds`` maps every needed column to string / float / int; ``defaults`` fills a missing
    value instead of rejecting the row; ``binary_labels`` must be 0 or 1.
    """

    kinds: Mapping[str, ColumnKind]
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)
    binary_labels: tuple[str, ...] = ()
    click: Optional[str] = None
    conversion: Optional[str] = None
    conversion_without_click: Literal["reject", "fix"] = "reject"

    def arrow_schema(self, columns=None) -> pa.Schema:
        """Schema of clean record batches (one-element list columns, as TFT wants) for ``columns``."""
        return pa.schema([(name, pa.list_(_ARROW_TYPES[self.kinds[name]])) for name in (columns or self.kinds)])

    def missing_columns(self, columns) -> list[str]:
        return [name for name in self.kinds if name not in set(columns)]

    def validate(self, frame: pd.DataFrame, source: str, first_row: int = 0):
        """Returns (clean typed DataFrame, list of Reject, counts of fixes by kind)."""
        reason = pd.Series(pd.NA, index=frame.index, dtype="object")
        typed = {}
        for name, kind in self.kinds.items():
            typed[name], bad = self._column(frame[name], name, kind)
            for why, mask in bad.items():
                reason = reason.where(reason.notna() | ~mask, why)
        fixes = self._check_labels(typed, reason)
        ok = reason.isna().to_numpy()
        clean = pd.DataFrame({name: values[ok] for name, values in typed.items()})
        rejects = [Reject(source, first_row + int(i), reason.iat[i], _raw_row(frame, i))
                   for i in np.flatnonzero(~ok)]
        return clean, rejects, fixes

    def _column(self, values: pd.Series, name: str, kind: ColumnKind):
        bad: dict[str, np.ndarray] = {}
        if kind == "string":
            as_text = values.astype("string")
            missing = (as_text.isna() | (as_text.str.strip() == "")).to_numpy()
            if name in self.defaults:
                as_text = as_text.mask(missing, str(self.defaults[name]))
            else:
                bad[f"missing_value:{name}"] = missing
            return as_text.fillna("").to_numpy(dtype=object), bad
        text_missing = values.isna().to_numpy() | (values.astype("string").str.strip() == "").fillna(True).to_numpy()
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        wrong = ~text_missing & ~np.isfinite(numbers)
        if kind == "int":
            wrong |= np.isfinite(numbers) & (numbers != np.round(numbers))
        bad[f"wrong_type:{name}"] = wrong
        if name in self.defaults:
            numbers = np.where(text_missing, float(self.defaults[name]), numbers)
        else:
            bad[f"missing_value:{name}"] = text_missing
        numbers = np.nan_to_num(numbers, nan=0.0, posinf=0.0, neginf=0.0)
        return (numbers.astype(np.int64) if kind == "int" else numbers.astype(np.float32)), bad

    def _check_labels(self, typed: dict, reason: pd.Series) -> dict[str, int]:
        for name in self.binary_labels:
            out_of_range = ~np.isin(typed[name], (0, 1))
            reason.where(reason.notna() | ~out_of_range, f"label_out_of_range:{name}", inplace=True)
        if not (self.click and self.conversion):
            return {}
        orphan = (typed[self.conversion] == 1) & (typed[self.click] == 0) & reason.isna().to_numpy()
        if self.conversion_without_click == "reject":
            reason.where(~orphan, "conversion_without_click", inplace=True)
            return {}
        typed[self.conversion] = np.where(orphan, 0, typed[self.conversion])
        return {"fixed:conversion_without_click": int(orphan.sum())}


def to_record_batches(clean: pd.DataFrame, schema: pa.Schema, rows: int) -> Iterator[pa.RecordBatch]:
    """Clean columns -> Arrow record batches of one-element lists, ``rows`` at a time."""
    for start in range(0, len(clean), rows):
        part = clean.iloc[start:start + rows]
        offsets = pa.array(np.arange(len(part) + 1, dtype=np.int32))
        arrays = [pa.ListArray.from_arrays(offsets, pa.array(part[field.name].to_numpy(), field.type.value_type))
                  for field in schema]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def _raw_row(frame: pd.DataFrame, i: int) -> dict:
    row = frame.iloc[i]
    return {k: (None if (v is None or (isinstance(v, float) and np.isnan(v))) else v) for k, v in row.items()}
