"""Every vocabulary of the dataset from one TFT analyzer: a single pass, a single combine.

``tft.vocabulary`` builds one analyzer — a dozen Beam stages, a graph phase — per feature, and
that fixed cost dominated the job on a million rows (about 1.3 s of CPU per vocabulary feature
on a 2-core machine). Here each batch is reduced in the TF graph to its unique tokens and their
counts, per feature, as TFT does; one Beam ``CombineGlobally`` sums the counts of all
features together; each vocabulary is then ordered like ``tft.vocabulary`` orders it (count
descending, then token descending), cut by ``frequency_threshold`` and ``top_k`` (or, with ``fixed_file``, a previous day's vocabulary
kept token for token: ``preprocess.fixed_vocabulary_from``), and written as
a text file named after the feature, so ``TFTransformOutput.vocabulary_size_by_name(name)`` and
``vocabulary_file_by_name(name)`` work as with ``compute_and_apply_vocabulary(vocab_filename=name)``.
Empty strings and tokens holding newlines are left out (they would break a text vocabulary),
as TFT leaves them out; they map to the OOV bucket. An empty vocabulary gets TFT's dummy token.

Every vocabulary is applied through one lookup table too. Each table is a resource of the
transform SavedModel whose creator and initializer functions TF traces when the model is saved
and again when it is loaded (by the Beam job and by every serving model): about 0.1 s of CPU per
table and per job, a third of the job's fixed cost with ten vocabularies. The one table maps
``<i>:<token>`` (``i`` the feature's index) to its line in a combined file written beside the
per-feature ones; a feature's id is that line minus the lines of the features before it, and an
unknown token takes TFT's OOV bucket (``vocabulary size + to_hash_bucket_fast(token, buckets)``),
so the ids are the ones ``tft.apply_vocabulary`` gives, and TFT still records each feature's
id range in the schema (``apply_vocabulary(lookup_fn=...)``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Mapping, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow.python.framework import ops

_EMPTY_VOCABULARY_TOKEN = tft.analyzers.get_empy_vocabulary_dummy_value(tf.string)[1]  # TFT's, for an empty one


@dataclasses.dataclass(frozen=True)
class VocabularySpec:
    """One vocabulary: its file name (the feature name), TFT's selection options and OOV buckets."""

    name: str
    top_k: Optional[int] = None
    frequency_threshold: Optional[int] = None
    num_oov_buckets: int = 1
    fixed_file: Optional[str] = None  # a previous vocabulary file kept as it is (preprocess.fixed_vocabulary_from)


COMBINED = "_all_vocabularies"  # file name of the combined vocabulary the one lookup table reads


def apply_vocabularies(tensors: Mapping[str, tf.Tensor], specs: Sequence[VocabularySpec]) -> dict[str, tf.Tensor]:
    """Vocabulary ids ``{name: ids}`` of ``tensors[name]`` (dense or sparse strings), as
    ``tft.compute_and_apply_vocabulary(vocab_filename=name)`` gives them: one analyzer, one table."""
    if any(spec.name == COMBINED for spec in specs):
        raise ValueError(f"a vocabulary feature cannot be named {COMBINED!r}: that file holds every vocabulary")
    inputs = []
    for spec in specs:
        x = tensors[spec.name]
        values = x.values if isinstance(x, tf.SparseTensor) else tf.reshape(x, [-1])
        unique, _, counts = tf.unique_with_counts(values, out_idx=tf.int64)
        inputs += [unique, counts]
    paths = tft.experimental.ptransform_analyzer(
        inputs, _CountAndWrite(tuple(specs)), output_dtypes=[tf.string] * (len(specs) + 1),
        output_shapes=[[]] * (len(specs) + 1), output_asset_default_values=[b"__placeholder__"] * (len(specs) + 1),
        name="vocabularies")
    table = _OneTable(len(specs))  # paths[:-1], the per-feature files, are assets for vocabulary_file_by_name
    return {spec.name: tft.apply_vocabulary(tensors[spec.name], paths[-1], num_oov_buckets=spec.num_oov_buckets,
                                            lookup_fn=table.lookup_fn(i, spec.num_oov_buckets))
            for i, spec in enumerate(specs)}


class _OneTable:
    """The lookup table of the combined vocabulary (built on the first lookup of a trace).

    The file holds, for each feature ``i`` in turn, a line ``<i>:`` and then ``<i>:<token>`` per
    token, and a last line ``<n>:``: a feature's ids start one line after its own ``<i>:`` line
    and end before the next feature's. (A token is never empty, so ``<i>:`` is no token's key; an
    empty value looks up that line and is out of the feature's range: OOV, as in TFT.) Once the
    vocabulary exists (the path is known when the graph is traced) the table and those bounds are
    made at trace time, so the traced graph holds one lookup per feature and constants.
    """

    def __init__(self, n: int):
        self._n = n
        self._table = self._bounds = None

    def lookup_fn(self, index: int, num_oov_buckets: int):
        """``tft.apply_vocabulary``'s ``lookup_fn`` for feature ``index``: (ids, size of the ids' range)."""
        def lookup(x, path):
            table, bounds = self._get(path)
            first, end = bounds[index] + 1, bounds[index + 1]
            values = x.values if isinstance(x, tf.SparseTensor) else x
            found = table.lookup(tf.strings.join([f"{index}:", values]))
            oov = (end - first) + tf.strings.to_hash_bucket_fast(values, num_oov_buckets)
            ids = tf.where(found >= first, found - first, oov)
            if isinstance(x, tf.SparseTensor):
                ids = tf.SparseTensor(x.indices, ids, x.dense_shape)
            return ids, tf.convert_to_tensor(end - first + num_oov_buckets, tf.int64)
        return lookup

    def _get(self, path):
        if self._table is None:
            with contextlib.ExitStack() as stack:
                known = tf.inside_function() and isinstance(path, (ops.EagerTensor, str))
                if known:
                    stack.enter_context(tf.init_scope())  # as TFT does: initialised once, not on every call
                self._table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
                    path, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                    tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)
                bounds = self._table.lookup(tf.constant([f"{i}:" for i in range(self._n + 1)]))
                self._bounds = [int(b) for b in bounds.numpy()] if known else tf.unstack(bounds)
        return self._table, self._bounds


def ordered_vocabulary(counts: Mapping[bytes, int], spec: VocabularySpec) -> list[bytes]:
    """Tokens as ``tft.vocabulary`` orders them: count descending, ties by token descending."""
    items = [(n, token) for token, n in counts.items() if n >= (spec.frequency_threshold or 0)]
    items.sort(reverse=True)
    tokens = [token for _, token in items]
    return tokens[:spec.top_k] if spec.top_k else tokens


class _SumCounts(beam.CombineFn):
    """Batches of (unique tokens, counts) per feature -> one {token: count} per feature."""

    def __init__(self, n: int):
        self._n = n

    def create_accumulator(self):
        return [{} for _ in range(self._n)]

    def add_input(self, accumulator, batch):
        for i, counts in enumerate(accumulator):
            unique, n = batch[2 * i], batch[2 * i + 1]
            for token, count in zip(unique.tolist(), n.tolist()):
                if token and b"\n" not in token and b"\r" not in token:  # what TFT leaves out of text files
                    counts[token] = counts.get(token, 0) + count
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for mine, theirs in zip(merged, accumulator):
                for token, count in theirs.items():
                    mine[token] = mine.get(token, 0) + count
        return merged

    def extract_output(self, accumulator):
        return accumulator


class _CountAndWrite(tft_beam.experimental.PTransformAnalyzer):
    """The analyzer's Beam side: sum the counts, write one ordered text vocabulary per spec and the
    combined one the table reads; outputs their paths (the combined one last)."""

    def __init__(self, specs: tuple[VocabularySpec, ...]):
        super().__init__()
        self._specs = specs

    def expand(self, pcoll):
        tags = [f"path{i}" for i in range(len(self._specs) + 1)]
        paths = (pcoll | "SumCounts" >> beam.CombineGlobally(_SumCounts(len(self._specs)))
                 | "Write" >> beam.FlatMap(_write_all, self._specs, self.base_temp_dir, tags).with_outputs(*tags))
        return tuple(paths[tag] for tag in tags)


def _write_all(counts: list[dict], specs, directory: str, tags: list[str]):
    tf.io.gfile.makedirs(directory)
    paths, combined = [], []
    for i, (spec, feature_counts) in enumerate(zip(specs, counts)):
        tokens = (_read_lines(spec.fixed_file) if spec.fixed_file else ordered_vocabulary(feature_counts, spec)) or [
            _EMPTY_VOCABULARY_TOKEN]
        paths.append(_write_lines(os.path.join(directory, spec.name), tokens))
        prefix = f"{i}:".encode()
        combined += [prefix, *(prefix + token for token in tokens)]
    combined.append(f"{len(specs)}:".encode())
    paths.append(_write_lines(os.path.join(directory, COMBINED), combined))
    for tag, path in zip(tags, paths):
        yield beam.pvalue.TaggedOutput(tag, path)


def _write_lines(path: str, lines: list[bytes]) -> bytes:
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return path.encode()


def _read_lines(path: str) -> list[bytes]:
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\r\n") for line in f]
