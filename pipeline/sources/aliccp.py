"""The raw Ali-CCP release (Tianchi 408): skeleton rows joined with their common features, in Beam.

    sample_skeleton_*.csv   sample_id,click,conversion,common_feature_md5,feature_num,feature_list
    common_features_*.csv   common_feature_md5,feature_num,feature_list

``feature_list`` is items separated by ``\\x01``, each ``field_id\\x02feature_id\\x03value``. A
configured column ``F`` (a field id, e.g. ``205`` or ``109_14``) holds the feature ids of field F:
one for a single-valued field, the list of all of them for a multivalued feature; a column ``DF``
holds the sum of field F's values (as in the processed release's D-columns). Fields missing from
a row are empty (the feature's ``default`` applies, a multivalued feature is an empty list).

Both sides are parsed a whole chunk at a time (Arrow compute), cut into ``join_buckets`` by a hash
of the md5, and joined per bucket after a CoGroupByKey with a vectorised index lookup, so no
per-row Python runs anywhere. Rejects: ``malformed_feature_list`` (an item without its \\x02/\\x03
separators, or undecodable), ``feature_num_mismatch`` (feature_num is not the item count),
``missing_common_features`` (no common-features row has the skeleton's md5). A bad common-features
line is counted under ``common_features:`` in the report and written to the rejects file; the
skeleton rows that needed it are then rejected as ``missing_common_features``.

As a source (``aliccp_raw``): the skeleton files are the configured train / eval / test files,
``read_raw`` is the job's reading step (the keyed join), ``sample_raw`` gives a skeleton file's
first rows with their own features parsed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.formats import Reader
from pipeline.sources.files import expand_patterns, first_rows, text_frame
from pipeline.validation import Reject

SKELETON = ("sample_id", "click", "conversion", "common_feature_md5", "feature_num", "feature_list")
COMMON = ("common_feature_md5", "feature_num", "feature_list")
MD5 = "common_feature_md5"
_ITEM = r"^(?P<field>[^\x01\x02\x03]+)\x02(?P<fid>[^\x01\x02\x03]*)\x03(?P<value>[^\x01\x02\x03]*)$"


def skeleton_reader(data, path, columns=None) -> Reader:
    """The reader of a skeleton file (no header)."""
    return Reader("csv", header=False, names=SKELETON)


def read_raw(data, features, inputs: list, columns: list[str], rows: int) -> "ReadAliccpRaw":
    """The job's reading step for ``inputs`` (the skeleton files): PBegin -> (chunks, rejects)."""
    return ReadAliccpRaw(inputs, expand_patterns(data.aliccp.common_features), columns,
                         {f.name for f in features if f.multivalued}, rows, data.aliccp.join_buckets)


def sample_raw(data, path: str, n: int):
    """The first ``n`` skeleton rows of ``path`` with their own (not the common) features parsed."""
    skeleton = first_rows(skeleton_reader(data, path), path, n)
    if skeleton is None:
        return None
    fields = sorted({item.split("\x02")[0] for line in skeleton.column("feature_list").to_pylist()
                     for item in line.decode("utf-8", "replace").split("\x01") if "\x02" in item})
    columns, _ = parse_feature_lists(skeleton, fields, set())
    return text_frame(pa.table({"sample_id": skeleton.column("sample_id"), **columns}))


def parse_feature_lists(table: pa.Table, columns: list[str], multivalued: set[str]):
    """``feature_num`` + ``feature_list`` -> {column: array} for ``columns``, and per-row reasons.

    Returns (columns dict, reason array of object: None for good rows).
    """
    n = table.num_rows
    reason = np.full(n, None, dtype=object)
    try:
        text = table.column("feature_list").combine_chunks().cast(pa.string())
    except pa.ArrowInvalid:  # undecodable bytes: find the rows, parse the rest
        raw = table.column("feature_list").to_pylist()
        ok = [_decodes(v) for v in raw]
        reason[~np.array(ok)] = "malformed_feature_list"
        text = pa.array([v.decode() if good else "" for v, good in zip(raw, ok)], pa.string())
    items = pc.split_pattern(text, "\x01")
    flat = pc.list_flatten(items)
    parent = pc.list_parent_indices(items).to_numpy()
    nonempty = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    flat, parent = flat.filter(pa.array(nonempty)), parent[nonempty]
    parts = pc.extract_regex(flat, _ITEM)
    valid = parts.is_valid().to_numpy(zero_copy_only=False)
    bad_rows = np.unique(parent[~valid])
    reason[bad_rows] = np.where(reason[bad_rows] == None, "malformed_feature_list", reason[bad_rows])  # noqa: E711
    counts = np.bincount(parent, minlength=n)
    declared = _to_float(table.column("feature_num").combine_chunks())
    mismatch = (declared != counts) & (reason == None)  # noqa: E711
    reason[mismatch] = "feature_num_mismatch"
    field, fid = parts.field("field"), parts.field("fid")
    value = pa.array(np.nan_to_num(_to_float(parts.field("value"))))  # an empty or bad value counts as 0
    return {c: _column(c, field, fid, value, parent, valid, n, c in multivalued) for c in columns}, reason


def _to_float(values: pa.Array) -> np.ndarray:
    """Text -> float64, nan where it is not a number (vectorised; pandas only if some value is bad)."""
    try:
        text = values.cast(pa.string())
        return pc.if_else(pc.equal(text, ""), None, text).cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        words = pd.Series([_text(v) for v in values.to_pylist()], dtype=object)
        return pd.to_numeric(words, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _column(column: str, field, fid, value, parent, valid, n: int, multivalued: bool) -> pa.Array:
    is_value = column.startswith("D") and not column[1:2].isalpha()
    wanted = column[1:] if is_value else column
    hit = pc.fill_null(pc.equal(field, wanted), False).to_numpy(zero_copy_only=False) & valid
    rows = parent[hit]
    if is_value:
        sums = np.bincount(rows, weights=value.filter(pa.array(hit)).to_numpy(zero_copy_only=False), minlength=n)
        present = np.bincount(rows, minlength=n) > 0
        return pa.array(sums, mask=~present)
    ids = fid.filter(pa.array(hit)).cast(pa.binary())
    if multivalued:
        counts = np.bincount(rows, minlength=n)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        lists = pa.ListArray.from_arrays(offsets, ids)
        return pc.if_else(pa.array(counts > 0), lists, pa.scalar(None, lists.type))
    first = np.full(n, -1, dtype=np.int64)
    unique_rows, first_hit = np.unique(rows, return_index=True)
    first[unique_rows] = first_hit
    return ids.take(pa.array(first, mask=first < 0))


class _ReadSide(beam.DoFn):
    """A skeleton or common-features file -> (bucket, part) pairs of parsed, wide chunks."""

    def __init__(self, side: str, columns: list[str], multivalued: set[str], rows: int, buckets: int):
        self._side, self._columns, self._multivalued = side, columns, multivalued
        self._rows, self._buckets = rows, buckets
        self._reader = Reader("csv", header=False, names=SKELETON if side == "skeleton" else COMMON)

    def process(self, element):
        path, split = element if self._side == "skeleton" else (element, None)
        for chunk in self._reader.chunks(path, self._rows):
            parsed, reason = parse_feature_lists(chunk.table, self._columns, self._multivalued)
            keep = [c for c in (SKELETON[:4] if self._side == "skeleton" else (MD5,))]
            wide = pa.table({**{c: chunk.table.column(c) for c in keep}, **parsed})
            rejects = list(chunk.rejects) + [Reject(path, int(chunk.rows[i]), reason[i], _raw(chunk.table, i))
                                             for i in np.flatnonzero(reason != None)]  # noqa: E711
            good = pa.array(reason == None)  # noqa: E711
            wide, rows = wide.filter(good), chunk.rows[good.to_numpy(zero_copy_only=False)]
            if self._side == "common":
                Metrics.counter("ctrcvr", "common_features:rows_read").inc(chunk.table.num_rows + len(chunk.rejects))
                for reject in rejects:
                    Metrics.counter("ctrcvr", f"common_features:rejected:{reject.reason}").inc()
                    yield beam.pvalue.TaggedOutput("rejects", reject.to_json())
                rejects = []
            yield from self._buckets_of(path, split, wide, rows, rejects)

    def _buckets_of(self, path, split, wide, rows, rejects):
        keys = wide.column(MD5).cast(pa.string()).to_numpy(zero_copy_only=False).astype(object)
        bucket = pd.util.hash_array(keys, categorize=False) % self._buckets if len(keys) else np.array([], int)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(self._buckets + 1))
        for b in range(self._buckets):
            mine = order[bounds[b]:bounds[b + 1]]
            carried = rejects if b == 0 else []
            if len(mine) or carried:  # take() copies: a pickled slice would carry its parent's buffers
                yield int(b), (path, split, wide.take(pa.array(mine)), rows[mine], carried)


class _JoinBucket(beam.DoFn):
    """One bucket's skeleton parts joined with its common-features rows (first row per md5 wins)."""

    def __init__(self, columns: list[str]):
        self._columns = columns

    def process(self, element):
        _, groups = element
        commons = [part[2] for part in groups["common"] if part[2].num_rows]
        common = pa.concat_tables(commons) if commons else None
        if common is not None:
            md5 = common.column(MD5).combine_chunks()
            Metrics.counter("ctrcvr", "common_features:duplicate_md5").inc(len(md5) - len(pc.unique(md5)))
        for (path, split), (skeleton, rows, rejects) in _by_file(groups["skeleton"]).items():
            if skeleton.num_rows == 0:
                yield path, split, skeleton, rows, rejects
                continue
            index = (pc.index_in(skeleton.column(MD5), value_set=common.column(MD5).combine_chunks())
                     if common is not None else pa.nulls(skeleton.num_rows, pa.int32()))
            matched = index.is_valid().to_numpy(zero_copy_only=False)
            rejects = list(rejects) + [Reject(path, int(rows[i]), "missing_common_features", _raw(skeleton, i))
                                       for i in np.flatnonzero(~matched)]
            skeleton, rows, index = skeleton.filter(pa.array(matched)), rows[matched], index.filter(pa.array(matched))
            joined = {c: skeleton.column(c) for c in SKELETON[:4]}
            for c in self._columns:
                mine = skeleton.column(c).combine_chunks()
                theirs = common.column(c).combine_chunks().take(index) if common is not None else mine
                joined[c] = pc.coalesce(mine, theirs)
            yield path, split, pa.table(joined), rows, rejects


class ReadAliccpRaw(beam.PTransform):
    """PBegin -> (chunks, common-features rejects): chunks are (path, split, table, rows, rejects)."""

    def __init__(self, skeletons: list, commons: list[str], columns: list[str], multivalued: set[str],
                 rows: int, buckets: int):
        super().__init__()
        self._skeletons, self._commons = skeletons, commons
        self._columns = [c for c in columns if c not in SKELETON]
        self._multivalued, self._rows, self._buckets = multivalued, rows, buckets

    def expand(self, p):
        args = (self._columns, self._multivalued, self._rows, self._buckets)
        skeleton = (p | "ListSkeleton" >> beam.Create(self._skeletons)
                    | "ReadSkeleton" >> beam.ParDo(_ReadSide("skeleton", *args)))
        common = (p | "ListCommon" >> beam.Create(self._commons)
                  | "ReadCommon" >> beam.ParDo(_ReadSide("common", *args)).with_outputs("rejects", main="parts"))
        chunks = ({"skeleton": skeleton, "common": common.parts} | "JoinOnMd5" >> beam.CoGroupByKey()
                  | "JoinBucket" >> beam.ParDo(_JoinBucket(self._columns)))
        return chunks, common.rejects


def _by_file(parts) -> dict:
    """A bucket's skeleton parts, concatenated per input file (bigger batches downstream)."""
    files: dict = {}
    for path, split, table, rows, rejects in parts:
        files.setdefault((path, split), []).append((table, rows, rejects))
    return {key: (pa.concat_tables([t for t, _, _ in group]), np.concatenate([r for _, r, _ in group]),
                  [x for _, _, rej in group for x in rej]) for key, group in files.items()}


def _raw(table: pa.Table, i: int) -> dict:
    return {k: (v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v)
            for k, v in table.slice(i, 1).to_pylist()[0].items()}


def _decodes(value) -> bool:
    try:
        value.decode("utf-8")
        return True
    except (UnicodeDecodeError, AttributeError):
        return value is None


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
