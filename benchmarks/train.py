"""Training throughput: ESMM and Multi-DR with the seed-003 Ali-CCP architecture, from TFRecord shards.

    .venv/bin/python benchmarks/train.py [--rows 300000] [--epochs 3] [--workdir DIR] [--models esmm,multi_dr]
        [--backbones mlp,dcn,mmoe] [--optimizers adam,lazy_adam] [--cache-records] [--cache-examples]
        [--in-memory] [--steps-per-execution N] [--op-threads default,1x2] [--deepctr DIR]

Architecture (seed 003 §4.5.1): 20 categorical fields × 18-dim embeddings, one table per field;
towers 512-256-128-32-1; batch 1024; lr 2e-4; ``train.optimizer`` adam (legacy, fused; embedding gradients
densified, ``train.dense_embedding_gradients``) and/or lazy_adam (sparse gradients, the looked-up rows
only); TensorFlow's op pools at their defaults and/or sized by ``--op-threads`` (``train.intra_op_threads``
x ``train.inter_op_threads``, each setting timed in its own process); the input pipeline in a private
one-thread pool (``train.input_threads: 1``: on 2 cores TensorFlow's shared pool competes with the train step).
Data: ``--rows`` synthetic transformed examples written as gzip TFRecord shards in the layout the
preprocessing job writes (``<field>_xf`` int64 ids, ``click``, ``conversion``), read back through
:func:`trainer.data.make_dataset` with the default shuffle buffer and :func:`trainer.data.input_options`
(or, ``--cache-examples``, :func:`trainer.data.load_examples` + :func:`trainer.data.in_memory_dataset`),
as the Keras fit (``trainer.model.keras_fit``) reads them. Table sizes are fixed (≈ 181k rows in all);
ids are Zipf-like.

Reported per model: examples/s (median over epochs, after a warm-up epoch that traces and
fills the shuffle buffer), the dense FLOP rate of the towers (3 × 2 × Σ kernel sizes per
example: forward + two backward matmuls) and its fraction of two matmul ceilings measured in the
same run with TensorFlow's default pools (1024×512 @ 512×512 in a tf.function, see :func:`matmul_ceiling`). Target (issue 14):
≥ 65 % of the in-graph ceiling and ≥ 1.3× DeepCTR's ESMM (``--deepctr``) for ESMM from TFRecords.
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
from trainer.data import in_memory_dataset, input_options, load_examples, make_dataset  # noqa: E402
from trainer.model.keras_fit import make_optimizer  # noqa: E402
from trainer.model.layers import FeatureEmbedding  # noqa: E402
from trainer.model.multitask import MultiTaskModel, build_backbones  # noqa: E402
from trainer.threads import apply_op_threads  # noqa: E402

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


def benchmark(name: str, files: list[str], rows: int, epochs: int, source: str = "tfrecords",
              input_threads: Optional[int] = 1, steps_per_execution: int = 1, backbone: str = "mlp",
              dense_gradients: bool = True, optimizer: str = "adam") -> dict:
    """Examples/s of one model, its input being ``source``: ``tfrecords`` (streamed, shuffle buffer),
    ``tfr+cache`` (``train.cache_records``), ``examples`` (``train.cache_examples``), or ``memory`` (the warm-up
    epoch's parsed batches replayed in the same order: the model step alone, a reference, not a training input)."""
    gradients = {"dense_embedding_gradients": dense_gradients} if optimizer == "adam" else {}
    config = config_from_dict({
        "features": [{"name": f, "kind": "categorical"} for f in FIELDS],
        "model": {"name": name, "embedding_dim": 18, "tower": {"units": [512, 256, 128, 32]},
                  "backbone": backbone},
        "train": {"batch_size": 1024, "learning_rate": 2e-4, "optimizer": optimizer, **gradients,
                  "input_threads": input_threads, "cache_records": source == "tfr+cache",
                  "cache_examples": source == "examples"}})
    spec = {f"{f}_xf": tf.io.FixedLenFeature([], tf.int64) for f in FIELDS}
    spec.update(click=tf.io.FixedLenFeature([], tf.int64), conversion=tf.io.FixedLenFeature([], tf.int64))
    started = time.perf_counter()
    if config.train.cache_examples:  # as TrainingData.dataset reads the train split with it
        dataset = in_memory_dataset(load_examples(files, spec), 1024, seed=0, drop_remainder=True)
    else:
        dataset = make_dataset(files, spec, 1024, config.train.shuffle_buffer, seed=0, drop_remainder=True,
                               cache=config.train.cache_records)
    load_s = time.perf_counter() - started
    dataset = dataset.with_options(input_options(config.train))
    if source == "memory":  # parsed batches cached by the warm-up epoch: the model step alone, for reference
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
    return {"model": name if backbone == "mlp" else f"{name}/{backbone}", "optimizer": optimizer, "source": source,
            "examples_per_s": float(np.median(rates)), "epochs_examples_per_s": rates,
            "train_flop_per_example": 6 * macs, "first_epoch_s": timer.seconds[0], "load_s": load_s}


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
    """What deepctr's version check gets instead of PyPI: a not-OK answer, which it ignores quietly (an
    exception would make it print a line into the benchmark's output)."""
    import types
    return types.SimpleNamespace(status_code=503, text="")


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
    args = _parser().parse_args()
    settings = (args.op_threads or "default").split(",")
    for threads in settings:
        if threads != "default":
            _op_threads(threads)  # a typo fails here, not after the ceilings
    if args.child_results:  # the models timed under --op-threads, in their own process (see _timed_in_child)
        intra, inter = _op_threads(args.op_threads)
        apply_op_threads(config_from_dict({"train": {"intra_op_threads": intra,  # before any op runs
                                                     "inter_op_threads": inter}}).train)
    tf_keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        if args.child_results:
            files = sorted(str(p) for p in work.glob("part-*.tfrecord.gz"))
            results = time_models(args, files, args.op_threads)
            if args.deepctr:
                results.append(time_deepctr(args, files, threads=args.op_threads))
            Path(args.child_results).write_text(json.dumps(results))
            return
        started = time.perf_counter()
        files = sorted(str(p) for p in work.glob("part-*.tfrecord.gz")) or write_shards(work, args.rows)
        print(f"shards: {len(files)} files, {args.rows} rows ({time.perf_counter() - started:.0f}s)", flush=True)
        ceilings = matmul_ceiling()
        print(f"matmul ceiling (1024x512 @ 512x512, tf.function, TensorFlow's default thread pools): "
              f"{ceilings['per_call']:.1f} GFLOP/s per call, {ceilings['in_graph']:.1f} GFLOP/s in one graph "
              "(stricter)", flush=True)
        print(f"input pipeline alone: {input_only(files, args.rows):,.0f} examples/s", flush=True)
        peers = [time_deepctr(args, files)] if args.deepctr else []
        results = []
        for threads in settings:
            if threads == "default":
                results += time_models(args, files, "default")
                continue
            timed = _timed_in_child(work, threads)
            peers += [r for r in timed if r["model"] == "deepctr_esmm"]
            results += [r for r in timed if r["model"] != "deepctr_esmm"]
        for r in results:
            _add_ceiling_fractions(r, ceilings)
        if peers:
            _compare_with_deepctr(results, peers)
        print(json.dumps(results + peers, indent=2))


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--cache-examples", action="store_true",
                        help="also time each model with train.cache_examples (the shards parsed into memory before "
                             "training, every epoch a new permutation of the rows; the load time is reported)")
    parser.add_argument("--sparse-embedding-gradients", action="store_true",
                        help="adam: train.dense_embedding_gradients false (IndexedSlices to Adam) instead of true")
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="Keras steps_per_execution: train steps per tf.function call (default 1)")
    parser.add_argument("--op-threads", metavar="INTRAxINTER[,...]",
                        help="time the models with train.intra_op_threads x train.inter_op_threads, e.g. "
                             "default,1x2: each setting but default in a child process (TensorFlow's pools are "
                             "process-wide); the ceilings are measured with the default pools, DeepCTR with the "
                             "defaults and with each setting (the speed-ups are against its fastest run)")
    parser.add_argument("--child-results", help=argparse.SUPPRESS)  # set by --op-threads for its child process
    parser.add_argument("--deepctr", metavar="DIR",
                        help="also time DeepCTR 0.9.4's ESMM in memory, imported from DIR (e.g. after "
                             "`pip install --no-deps --target DIR deepctr==0.9.4`; not a project dependency)")
    return parser


def time_models(args, files: list[str], threads: str) -> list[dict]:
    """Every (model, backbone, optimizer, source) combination the flags ask for, printed as it finishes."""
    results = []
    sources = ["tfrecords"] + ["tfr+cache"] * args.cache_records + ["examples"] * args.cache_examples \
        + ["memory"] * args.in_memory
    for name in args.models.split(","):
        for backbone in args.backbones.split(","):
            for optimizer in args.optimizers.split(","):
                for source in sources:
                    r = benchmark(name, files, args.rows, args.epochs, source, args.input_threads or None,
                                  args.steps_per_execution, backbone, not args.sparse_embedding_gradients,
                                  optimizer)
                    r["op_threads"] = threads
                    results.append(r)
                    print(f"{_label(r)} {r['examples_per_s']:>9,.0f} examples/s (epochs: "
                          f"{', '.join(f'{x:,.0f}' for x in r['epochs_examples_per_s'])})", flush=True)
    return results


def time_deepctr(args, files: list[str], threads: Optional[str] = None) -> dict:
    peer = deepctr_esmm(args.deepctr, files, args.rows, args.epochs)
    peer["op_threads"] = threads or "default"
    print(f"{_label(peer)} {peer['examples_per_s']:>9,.0f} examples/s (epochs: "
          f"{', '.join(f'{x:,.0f}' for x in peer['epochs_examples_per_s'])})", flush=True)
    return peer


def _label(r: dict) -> str:
    return (f"{r['model']:12s} {r.get('optimizer', 'adam'):9s} {r['source']:9s} "
            f"threads {r.get('op_threads', 'default'):7s}")


def _op_threads(text: str) -> tuple[int, int]:
    try:
        intra, inter = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--op-threads {text!r}: expected INTRAxINTER, e.g. 1x2") from None
    return intra, inter


def _timed_in_child(work: Path, threads: str) -> list[dict]:
    """The models (and DeepCTR) timed by this benchmark re-run in a new process whose pools are sized
    ``threads`` (INTRAxINTER), on the same shards."""
    import subprocess
    _op_threads(threads)
    out = work / "child-results.json"
    argv, rest = [], iter(sys.argv[1:])
    for a in rest:  # this run's flags, but one thread setting and this run's shards
        if a == "--op-threads":
            next(rest, None)
        elif not a.startswith("--op-threads="):
            argv.append(a)
    if not any(a == "--workdir" or a.startswith("--workdir=") for a in argv):
        argv += ["--workdir", str(work)]
    argv += ["--op-threads", threads]
    subprocess.run([sys.executable, __file__, *argv, "--child-results", str(out)], check=True)
    results = json.loads(out.read_text())
    out.unlink()
    return results


def _add_ceiling_fractions(r: dict, ceilings: dict) -> None:
    gflops = r["examples_per_s"] * r["train_flop_per_example"] / 1e9
    r.update(tower_gflop_per_s=gflops, fraction_of_ceiling=gflops / ceilings["per_call"],
             ceiling_gflop_per_s=ceilings["per_call"], fraction_of_in_graph_ceiling=gflops / ceilings["in_graph"],
             in_graph_ceiling_gflop_per_s=ceilings["in_graph"])
    print(f"{_label(r)} {gflops:.1f} GFLOP/s = {100 * r['fraction_of_ceiling']:.1f} % of the per-call ceiling, "
          f"{100 * r['fraction_of_in_graph_ceiling']:.1f} % of the in-graph one", flush=True)


def _compare_with_deepctr(results: list[dict], peers: list[dict]) -> None:
    """Speed-ups against DeepCTR's faster run (default pools or --op-threads): the stricter baseline."""
    best = max(peers, key=lambda p: p["examples_per_s"])
    for r in results:
        r["speedup_vs_deepctr_esmm"] = r["examples_per_s"] / best["examples_per_s"]
        r["deepctr_op_threads"] = best["op_threads"]
        print(f"{_label(r)} {r['speedup_vs_deepctr_esmm']:.2f}x DeepCTR's ESMM (in memory, threads "
              f"{best['op_threads']}, its faster run)", flush=True)


if __name__ == "__main__":
    main()
