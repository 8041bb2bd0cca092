"""Transformed record batches -> gzip TFRecord shards of ``tf.Example``s, streaming, whole batches at a time.

Beam's ``WriteToTFRecord`` handles one element per example and, with a fixed shard count,
groups every example by shard first, which holds the whole split in memory on a local runner.
Here each bundle deals whole record batches round robin to ``num_shards`` gzip files; a background
thread encodes each batch at once (``pipeline.encode``, TFRecord framing included), deflates and
writes it, so a second core does that work while TFT transforms the next batch. Files are written
under a temporary name; a final step, after every bundle has finished, renames the files of the bundles that succeeded to
``part-SSSSS-of-NNNNN.tfrecord.gz`` and deletes whatever failed attempts left behind, as Beam's
own file sinks do. Only file names are grouped, so memory does not grow with the row count.

One sink serves every split: each record batch names its split in a constant ``split_column``
(TFT passes it through untouched), which picks the ``<directory>/<split>/`` it is written to.

Deflate is the sink's largest cost. Levels 1-3 use ISA-L's deflate (``isal``), which writes the
same gzip format about 4x faster than zlib's fastest level, at a size within a few percent of
it (1M simulated rows: 1.6 GB/s vs 0.4 GB/s, ratio 7.5 vs 7.8); levels 4-9 use zlib.
"""
from __future__ import annotations

import concurrent.futures
import uuid
import zlib

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from tfx_bsl.coders import example_coder

from pipeline.encode import encode_tfrecords, tfrecord_chunks

SUFFIX = ".tfrecord.gz"
TEMP = ".temp"
_MAX_PENDING = 4  # batches queued for the writer thread before the producer waits
ISAL_MAX_LEVEL = 3  # ISA-L's deflate levels are 0-3


class WriteTFRecordShards(beam.PTransform):
    """Writes ``(record_batch, _)`` elements to ``directory/<split>/part-*.tfrecord.gz``; returns the paths.

    The split of a batch is the value of its ``split_column`` (dropped before encoding).
    ``counter`` names the Beam counter of rows written, ``{split}`` replaced by the split.
    """

    def __init__(self, directory: str, split_column: str, num_shards: int = 4, compression_level: int = 1,
                 counter: tuple[str, str] = ("ctrcvr", "{split}:written")):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._split_column = split_column
        self._num_shards = num_shards
        self._level = compression_level
        self._counter = counter

    def expand(self, pcoll):
        return (pcoll
                | "WriteBundles" >> beam.ParDo(_WriteBundles(self._directory, self._split_column, self._num_shards,
                                                             self._level, self._counter))
                | "Collect" >> beam.GroupByKey()
                | "Finalize" >> beam.FlatMap(_finalize, self._directory))


class _GzipFile:
    """One gzip output file; ``executor`` encodes (unless that is done), compresses and writes
    batches in submission order (numpy and zlib release the GIL: this overlaps with the transform)."""

    def __init__(self, path: str, level: int, executor: concurrent.futures.Executor):
        self.path = path
        self._executor = executor
        self._handle = FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)
        self._deflate = gzip_compressor(level)

    def write(self, batch, encode):
        """``batch``: a record batch, or its TFRecord bytes already encoded."""
        return self._executor.submit(self._write, batch, encode)

    def close(self):
        return self._executor.submit(self._close)

    def _write(self, batch, encode) -> None:
        for data in [batch] if isinstance(batch, bytes) else tfrecord_chunks(batch, encode):
            self._handle.write(self._deflate.compress(data))

    def _close(self) -> None:
        self._handle.write(self._deflate.flush())
        self._handle.close()


def gzip_compressor(level: int):
    """A compressor object writing one gzip stream (wbits 31): ISA-L's for levels 1-3, zlib's above."""
    if level <= ISAL_MAX_LEVEL:
        from isal import isal_zlib
        return isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
    return zlib.compressobj(level, zlib.DEFLATED, 31)


class _WriteBundles(beam.DoFn):
    def __init__(self, directory: str, split_column: str, num_shards: int, level: int, counter: tuple[str, str]):
        self._directory, self._split_column = directory, split_column
        self._num_shards, self._level, self._counter = num_shards, level, counter

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder()  # this thread's
        self._writer_encoder = example_coder.RecordBatchToExamplesEncoder()  # the writer thread's
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tfrecord-gzip")

    def start_bundle(self):
        self._files: dict[str, list[_GzipFile]] = {}
        self._next: dict[str, int] = {}
        self._pending: list[concurrent.futures.Future] = []
        self._bundle = uuid.uuid4().hex

    def process(self, element):
        batch = element[0] if isinstance(element, tuple) else element
        if batch.num_rows == 0:
            return
        index = batch.schema.get_field_index(self._split_column)
        split = batch.column(index)[0].as_py()[0].decode()
        files, k = self._files.setdefault(split, []), self._next.get(split, 0)
        if len(files) < self._num_shards:
            name = f"{self._directory}/{split}/{TEMP}/{self._bundle}-{len(files):05d}{SUFFIX}"
            files.append(_GzipFile(name, self._level, self._executor))
        payload = batch.drop_columns([self._split_column])
        self._settle()
        if len(self._pending) >= _MAX_PENDING:  # the writer is behind: encode here rather than wait
            payload = encode_tfrecords(payload, self._encoder.encode)
        self._pending.append(files[k].write(payload, self._writer_encoder.encode))
        while len(self._pending) > _MAX_PENDING:
            self._pending.pop(0).result()
        self._next[split] = (k + 1) % self._num_shards
        Metrics.counter(self._counter[0], self._counter[1].format(split=split)).inc(batch.num_rows)

    def finish_bundle(self):
        closing = [f.close() for files in self._files.values() for f in files]
        for future in self._pending + closing:
            future.result()
        for split, files in self._files.items():
            for f in files:
                yield GlobalWindows.windowed_value((split, f.path))

    def teardown(self):
        self._executor.shutdown(wait=True)

    def _settle(self) -> None:
        """Forgets finished writes (re-raising a failed one)."""
        while self._pending and self._pending[0].done():
            self._pending.pop(0).result()


def _finalize(keyed, directory: str):
    """Temporary files of successful bundles -> part-SSSSS-of-NNNNN names; leftovers deleted."""
    split, paths = keyed
    paths = sorted(paths)
    folder = f"{directory}/{split}"
    finals = [f"{folder}/part-{i:05d}-of-{len(paths):05d}{SUFFIX}" for i in range(len(paths))]
    if paths:
        FileSystems.rename(paths, finals)
    leftovers = [m.path for r in FileSystems.match([f"{folder}/{TEMP}/*"]) for m in r.metadata_list]
    if leftovers:  # files of failed bundle attempts
        FileSystems.delete(leftovers)
    if "://" not in folder and FileSystems.exists(f"{folder}/{TEMP}"):
        FileSystems.delete([f"{folder}/{TEMP}"])
    yield from finals
