"""Hash collisions of every hashed feature, counted on the train split at preprocessing.

A hashed feature (``transform: hash``, ``hash_buckets: N``) maps its values to N buckets, so distinct
values may share an embedding row. This branch of the job counts, per hashed feature, the distinct raw
values of the train split and the distinct buckets they fall in (the same ``to_hash_bucket_fast`` the
transform applies; multivalued values trimmed and empty ones dropped, as ``clean_values`` does), as the
Beam counters ``hash:<feature>:values`` / ``:buckets`` / ``:size``. The report
(:func:`pipeline.report.collision_report`) shows them with the collision rate 1 − buckets / values: the share
of the distinct values that share their row with another one.
"""
from __future__ import annotations

from typing import Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from pipeline.read import NAMESPACE
from transforms.schema import FeatureConfig


class CountHashCollisions(beam.PTransform):
    """Record batches of the train split -> nothing; the counts go to the job's counters."""

    def __init__(self, features: Sequence[FeatureConfig]):
        super().__init__()
        self._features = tuple((f.name, f.hash_buckets, f.multivalued) for f in features)

    def expand(self, batches):
        names = tuple(name for name, _, _ in self._features)
        return (batches | "DistinctValues" >> beam.Map(_distinct, self._features)
                | "Union" >> beam.CombineGlobally(_UnionSets(len(names)))
                | "Count" >> beam.Map(_count, self._features))


def _distinct(batch: pa.RecordBatch, features) -> list[set]:
    out = []
    for name, _, multivalued in features:
        column = batch.column(batch.schema.get_field_index(name))
        while pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = column.flatten()
        values = pc.unique(column.drop_null()).to_pylist()
        values = {v.encode() if isinstance(v, str) else v for v in values}
        if multivalued:
            values = {v.strip() for v in values} - {b""}
        out.append(values)
    return out


class _UnionSets(beam.CombineFn):
    def __init__(self, n: int):
        self._n = n

    def create_accumulator(self):
        return [set() for _ in range(self._n)]

    def add_input(self, accumulator, sets):
        for mine, theirs in zip(accumulator, sets):
            mine |= theirs
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator


def _count(sets: list[set], features) -> None:
    import tensorflow as tf
    for (name, buckets, _), values in zip(features, sets):
        ids = tf.strings.to_hash_bucket_fast(tf.constant(sorted(values), tf.string), buckets).numpy() if values else []
        Metrics.counter(NAMESPACE, f"hash:{name}:values").inc(len(values))
        Metrics.counter(NAMESPACE, f"hash:{name}:buckets").inc(len(set(ids)))
        Metrics.counter(NAMESPACE, f"hash:{name}:size").inc(buckets)

