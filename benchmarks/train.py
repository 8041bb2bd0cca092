"""Training throughput: ESMM and Multi-DR with the seed-003 Ali-CCP architecture, from TFRecord shards.

    .venv/bin/python benchmarks/train.py [--rows 300000] [--epochs 3] [--workdir DIR] [--models esmm,multi_dr]
        [--backbones mlp,dcn,mmoe] [--cache-records] [--in-memory] [--deepctr DIR]

Architecture (seed 003 §4.5.1): 20 categorical fields × 18-dim embeddings, one table per field;
towers 512-256-128-32-1; batch 1024; legacy (fused) Adam, lr 2e-4; embedding gradients densified
(``train.dense_embedding_gradients``); the input pipeline in a private one-thread pool
(``train.input_threads: 1``: on 2 cores TensorFlow's shared pool competes with the train step).
Data: ``--rows`` synthetic transformed examples written as gzip TFRecord shards in the layout the
preprocessing job writes (``<field>_xf`` int64 ids, ``click``, ``conversion``), read back through
:func:`trainer.data.make_dataset` with the default shuffle buffer and :func:`trainer.data.input_options`,
as the Keras fit (``trainer.model.keras_fit``) reads them. Table sizes are fixed (≈ 181k rows in all); ids are Zipf-like.

Reported per model: examples/s (median over epochs, after a warm-up epoch that traces and
fills the shuffle buffer), the dense FLOP rate of the towers (3 × 2 × Σ kernel sizes per
example: forward + two backward matmuls) and its fraction of a matmul ceiling measured in the
same process (1024×512 @ 512×512 in a tf.function, see :func:`matmul_ceiling`). Target: ≥ 65 % of
the ceiling for ESMM.
Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctrcvr.console import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # no native start-up noise in the benchmark's output
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from ctrcvr.config import config_from_dict  # noqa: E402
from trainer.estimators import get_estimator  # noqa: E402
from trainer.data import input_options, make_dataset  # noqa: E402
from trainer.model.keras_fit import make_optimizer  # noqa: E402
from trainer.model.layers import FeatureEmbedding  # noqa: E402
from trainer.model.multitask import MultiTaskModel, build_backbones  # noqa: E402

CARDINALITIES = [50_000, 50_000, 30_000, 20_000, 10_000, 8_000, 5_000, 3_000, 2_000, 1_000,
                 500, 300, 200, 100, 100, 50, 30, 24, 10, 5]  # + 1 OOV bucket each
FIELDS = [f"f{i:02d}" for i in range(len(CARDINALITIES))]
SHARDS = 4


def matmul_ceiling(blocks: int = 5) -> dict[str, float]:
    """GFLOP/s of a 1024×512 @ 512×512 float32 matmul in a tf.function, best of ``blocks`` timed blocks.

    ``per_call``: the function computes one matmul and is called 100 times per block (the BRIEF's
    ≈ 125 GFLOP/s figure and its 66 % target are against this); ``in_graph``: 50 matmuls in one call,
    no per-call overhead — a stricter ceiling, also reported.
    """
    a, b = tf.random.normal([1024, 512]), tf.random.normal([512, 512])
    flop = 2 * 1024 * 512 * 512

    @tf.function
    def one(a, b):
        return tf.matmul(a, b)

    @tf.function
    def fifty(a, b):
        acc = tf.zeros([1024, 512])
        for _ in tf.range(50):
            acc += tf.matmul(a, b)
        return acc

    def best(fn, calls, flop_per_call):
        fn(a, b).numpy()
        rates = []
        for _ in range(blocks):
            start = time.perf_counter()
            for _ in range(calls):
                out = fn(a, b)
            out.numpy()
            rates.append(flop_per_call * calls / (time.perf_counter() - start) / 1e9)
        return max(rates)

    return {"per_call": best(one, 100, flop), "in_graph": best(fifty, 1, 50 * flop)}


def write_shards(out: Path, rows: int, seed: int = 0) -> list[str]:
    """Synthetic transformed examples, gzip TFRecords, as the preprocessing job writes them."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = {f: np.minimum(rng.zipf(1.3, rows) - 1, c) for f, c in zip(FIELDS, CARDINALITIES)}
    logit = sum(rng.normal(0, 0.3, c + 1)[ids[f]] for f, c in zip(FIELDS, CARDINALITIES))
    click = (rng.random(rows) < 1 / (1 + np.exp(3.2 - logit))).astype(np.int64)
    conversion = click * (rng.random(rows) < 0.1)
    files = []
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)
    for s in range(SHARDS):
        path = out / f"part-{s:05d}.tfrecord.gz"
        with tf.io.TFRecordWriter(str(path), options) as writer:
            for i in range(s, rows, SHARDS):
                feature = {f"{f}_xf": _int(ids[f][i]) for f in FIELDS}
                feature.update(click=_int(click[i]), conversion=_int(conversion[i]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        files.append(str(path))
    return files


def _int(v) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))


def benchmark(name: str, files: list[str], rows: int, epochs: int, in_memory: bool = False,
              input_threads: Optional[int] = 1, steps_per_execution: int = 1, backbone: str = "mlp",
              cache_records: bool = False, dense_gradients: bool = True, optimizer: str = "adam") -> dict:
    gradients = {"dense_embedding_gradients": dense_gradients} if optimizer == "adam" else {}
    config = config_from_dict({
        "features": [{"name": f, "kind": "categorical"} for f in FIELDS],
        "model": {"name": name, "embedding_dim": 18, "tower": {"units": [512, 256, 128, 32]},
                  "backbone": backbone},
        "train": {"batch_size": 1024, "learning_rate": 2e-4, "optimizer": optimizer, **gradients,
                  "input_threads": input_threads, "cache_records": cache_records}})
    spec = {f"{f}_xf": tf.io.FixedLenFeature([], tf.int64) for f in FIELDS}
    spec.update(click=tf.io.FixedLenFeature([], tf.int64), conversion=tf.io.FixedLenFeature([], tf.int64))
    dataset = make_dataset(files, spec, 1024, config.train.shuffle_buffer, seed=0, drop_remainder=True,
                           cache=config.train.cache_records)
    dataset = dataset.with_options(input_options(config.train))
    if in_memory:  # parsed batches cached by the warm-up epoch: the model step alone, for reference
        dataset = dataset.cache()
    sizes = {f: c + 1 for f, c in zip(FIELDS, CARDINALITIES)}
    estimator = get_estimator(name).create(config.model.switch_to(name))
    model = MultiTaskModel(lambda g: FeatureEmbedding(config.features, sizes, 18, name=f"embedding_{g}"),
                           estimator, config.labels, config.train.densify_embedding_gradients,
                           backbones=build_backbones(estimator, config.features, sizes), name=name)
    model(next(iter(dataset)))
    model.compile(optimizer=make_optimizer(config.train), steps_per_execution=steps_per_execution)
    timer = EpochTimer()
    steps = rows // 1024
    model.fit(dataset.repeat(), epochs=epochs + 1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    rates = [steps * 1024 / s for s in timer.seconds[1:]]  # epoch 1 traces and fills the shuffle buffer
    layers = {id(t): t for t in model.towers.values()}.values()  # a per-group backbone serves several towers
    macs = sum(int(np.prod(v.shape)) for t in layers for v in t.trainable_variables if "kernel" in v.name)
    return {"model": name if backbone == "mlp" else f"{name}/{backbone}", "optimizer": optimizer,
            "examples_per_s": float(np.median(rates)), "epochs_examples_per_s": rates,
            "train_flop_per_example": 6 * macs, "first_epoch_s": timer.seconds[0]}


class EpochTimer(tf_keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def deepctr_esmm(path: str, files: list[str], rows: int, epochs: int) -> dict:
    """DeepCTR 0.9.4's ESMM (importable from ``path``, a ``pip install --target`` dir: never a project
    dependency) on the same rows and architecture, from numpy arrays in memory, as its users fit it:
    ``compile("adam", binary_crossentropy × 2)``, lr 2e-4, batch 1024. Examples/s as :func:`benchmark`."""
    sys.path.insert(0, path)
    import requests
    requests.get = _no_network  # deepctr's import starts a thread asking pypi for a newer version
    from deepctr.feature_column import SparseFeat
    from deepctr.models import ESMM
    spec = {f"{f}_xf": tf.io.FixedLenFeature([], tf.int64) for f in FIELDS}
    spec.update(click=tf.io.FixedLenFeature([], tf.int64), conversion=tf.io.FixedLenFeature([], tf.int64))
    columns: dict[str, list] = {k: [] for k in spec}
    for batch in make_dataset(files, spec, 65_536):
        for k in spec:
            columns[k].append(batch[k].numpy())
    data = {k: np.concatenate(v) for k, v in columns.items()}
    x = {f: data[f"{f}_xf"] for f in FIELDS}
    y = [data["click"].astype(np.float32), (data["click"] * data["conversion"]).astype(np.float32)]
    model = ESMM([SparseFeat(f, c + 1, embedding_dim=18) for f, c in zip(FIELDS, CARDINALITIES)],
                 tower_dnn_hidden_units=(512, 256, 128, 32))
    model.compile(tf_keras.optimizers.Adam(2e-4), loss=["binary_crossentropy", "binary_crossentropy"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=1024, epochs=epochs + 1, callbacks=[timer], verbose=0, shuffle=True)
    rates = [len(data["click"]) / s for s in timer.seconds[1:]]
    return {"model": "deepctr_esmm", "source": "memory", "examples_per_s": float(np.median(rates)),
            "epochs_examples_per_s": rates}


def _no_network(*args, **kwargs):
    raise OSError("benchmark: no network")


def input_only(files: list[str], rows: int) -> float:
    """Examples/s of the input pipeline alone (read, decompress, shuffle, batch, parse)."""
    spec = {f"{f}_xf": tf.io.FixedLenFeature([], tf.int64) for f in FIELDS}
    spec.update(click=tf.io.FixedLenFeature([], tf.int64), conversion=tf.io.FixedLenFeature([], tf.int64))
    ds = make_dataset(files, spec, 1024, 20_000, seed=0, drop_remainder=True)
    for _ in ds:
        pass
    start = time.perf_counter()
    n = sum(1 for _ in ds)
    return n * 1024 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--models", default="esmm,multi_dr")
    parser.add_argument("--backbones", default="mlp", help="model.backbone values to time each model on, "
                        "e.g. mlp,dcn,mmoe (default: mlp); FLOP rates count the dense kernels only")
    parser.add_argument("--workdir", help="keep the shards here (default: a temporary directory)")
    parser.add_argument("--input-threads", type=int, default=1,
                        help="train.input_threads (0 = TensorFlow's shared pool); default 1")
    parser.add_argument("--in-memory", action="store_true",
                        help="also time each model on parsed batches cached in memory (no input pipeline)")
    parser.add_argument("--cache-records", action="store_true",
                        help="also time each model from TFRecords with train.cache_records (the serialized "
                             "records kept in memory after the warm-up epoch; later epochs still reshuffle)")
    parser.add_argument("--optimizers", default="adam",
                        help="train.optimizer values to time each model with, e.g. adam,lazy_adam (default: adam)")
    parser.add_argument("--sparse-embedding-gradients", action="store_true",
                        help="adam: train.dense_embedding_gradients false (IndexedSlices to Adam) instead of true")
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="Keras steps_per_execution: train steps per tf.function call (default 1)")
    parser.add_argument("--deepctr", metavar="DIR",
                        help="also time DeepCTR 0.9.4's ESMM in memory, imported from DIR (e.g. after "
                             "`pip install --no-deps --target DIR deepctr==0.9.4`; not a project dependency)")
    args = parser.parse_args()
    tf_keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        started = time.perf_counter()
        files = sorted(str(p) for p in work.glob("part-*.tfrecord.gz")) or write_shards(work, args.rows)
        print(f"shards: {len(files)} files, {args.rows} rows ({time.perf_counter() - started:.0f}s)", flush=True)
        ceilings = matmul_ceiling()
        ceiling = ceilings["per_call"]
        print(f"matmul ceiling (1024x512 @ 512x512, tf.function): {ceiling:.1f} GFLOP/s per call, "
              f"{ceilings['in_graph']:.1f} GFLOP/s in one graph (stricter)", flush=True)
        print(f"input pipeline alone: {input_only(files, args.rows):,.0f} examples/s", flush=True)
        results = []
        runs = [(n, b, o) for n in args.models.split(",") for b in args.backbones.split(",")
                for o in args.optimizers.split(",")]
        for name, backbone, optimizer in runs:
            sources = [("tfrecords", False, False)] + [("tfr+cache", False, True)] * args.cache_records \
                + [("memory", True, False)] * args.in_memory
            for source, in_memory, cache in sources:
                r = benchmark(name, files, args.rows, args.epochs, in_memory, args.input_threads or None,
                              args.steps_per_execution, backbone, cache, not args.sparse_embedding_gradients,
                              optimizer)
                gflops = r["examples_per_s"] * r["train_flop_per_example"] / 1e9
                r.update(source=source, tower_gflop_per_s=gflops,
                         fraction_of_ceiling=gflops / ceiling, ceiling_gflop_per_s=ceiling,
                         fraction_of_in_graph_ceiling=gflops / ceilings["in_graph"],
                         in_graph_ceiling_gflop_per_s=ceilings["in_graph"])
                results.append(r)
                print(f"{r['model']:10s} {r.get('optimizer', 'adam'):9s} {r['source']:9s} {r['examples_per_s']:>9,.0f} examples/s (epochs: "
                      f"{', '.join(f'{x:,.0f}' for x in r['epochs_examples_per_s'])}), {gflops:.1f} GFLOP/s = "
                      f"{100 * r['fraction_of_ceiling']:.1f} % of the ceiling "
                      f"({100 * r['fraction_of_in_graph_ceiling']:.1f} % of the in-graph one)", flush=True)
        if args.deepctr:
            peer = deepctr_esmm(args.deepctr, files, args.rows, args.epochs)
            results.append(peer)
            print(f"deepctr    adam      memory    {peer['examples_per_s']:>9,.0f} examples/s (epochs: "
                  f"{', '.join(f'{x:,.0f}' for x in peer['epochs_examples_per_s'])})", flush=True)
            for r in results[:-1]:
                r["speedup_vs_deepctr_esmm"] = r["examples_per_s"] / peer["examples_per_s"]
                print(f"{r['model']:10s} {r.get('optimizer', 'adam'):9s} {r['source']:9s} {r['speedup_vs_deepctr_esmm']:.2f}x DeepCTR's ESMM "
                      f"(in memory), {100 * r['fraction_of_in_graph_ceiling']:.1f} % of the in-graph ceiling")
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
