"""Serving latency: p50 / p99 at batch 1 and 256, in process and through the REST server,
against calling the Keras model directly on already-transformed features — all in one run.

    .venv/bin/python benchmarks/serve.py [--requests 300] [--workdir DIR]

Trains a small ESMM on simulated data first (about a minute) unless --workdir already holds
a finished ``ctrcvr run``. Targets: in-process p50 <= 1 ms at batch 1, >= 50k examples/s at
batch 256, REST p50 <= 3 ms at batch 1.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from ctrcvr import workflow  # noqa: E402
from ctrcvr.config import load_config  # noqa: E402
from ctrcvr.serving.client import to_raw_examples  # noqa: E402
from trainer.train import load_trained_model  # noqa: E402
from transforms.schema import Schema  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SMALL = ["simulate.n_exposures=60000", "train.epochs=1"]


def timed(fn, repeats: int) -> np.ndarray:
    for _ in range(min(20, repeats)):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out * 1e3


def summary(name: str, batch: int, ms: np.ndarray) -> dict:
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    return {"path": name, "batch": batch, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
            "examples_per_s": round(batch / (p50 / 1e3))}


def start_server(model_base: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ctrcvr.cli", "serve", "--model-dir", str(model_base),
                             "--port", str(port), "--log-level", "WARNING"],
                            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models/esmm")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                return proc, conn
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the REST server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    config = load_config(REPO / "configs" / "default.yaml", SMALL)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ctrcvr-serve-bench-"))
    if not (work / "outputs.json").is_file():
        print(f"training a small ESMM under {work} ...", flush=True)
        workflow.run(config, work, overwrite=True)
    data_dir, model_base = work / "data" / "transformed", work / "serving" / "esmm"
    version = max((p for p in model_base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    raw = pd.read_parquet(sorted((work / "data" / "raw" / "exposures").glob("*.parquet"))[0]).head(256)
    schema = Schema.from_config(config)
    examples = {1: to_raw_examples(raw.head(1), schema), 256: to_raw_examples(raw, schema)}

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    model = load_trained_model(workflow.trainer_spec(config), data_dir, work / "model")
    tft_output = tft.TFTransformOutput(str(data_dir))
    keras_direct = tf.function(model.predict_named)
    results = []
    proc, conn = start_server(model_base)
    try:
        for batch in (1, 256):
            batch_examples = tf.constant(examples[batch])
            transformed = tft_output.transform_raw_features(
                tf.io.parse_example(batch_examples, schema.serving_feature_spec()))
            results.append(summary("keras model, transformed input (baseline)", batch,
                                   timed(lambda: keras_direct(transformed), args.requests)))
            results.append(summary("SavedModel signature, raw tf.Examples", batch,
                                   timed(lambda: serve(examples=batch_examples), args.requests)))
            body = json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in examples[batch]]})

            def rest_call():
                conn.request("POST", "/v1/models/esmm:predict", body=body,
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                assert response.status == 200, response.read()
                response.read()
            results.append(summary("REST dev server (loopback, keep-alive)", batch, timed(rest_call, args.requests)))
    finally:
        proc.terminate()
    print(f"\n{'path':45s} {'batch':>5s} {'p50 ms':>8s} {'p99 ms':>8s} {'ex/s':>9s} {'p50 / baseline':>15s}")
    for r in results:
        base = next(b for b in results if b["batch"] == r["batch"] and "baseline" in b["path"])
        print(f"{r['path']:45s} {r['batch']:5d} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['examples_per_s']:9d} "
              f"{r['p50_ms'] / base['p50_ms']:15.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
