"""EASQ training throughput (seed 001 Algorithm 1): online test-then-train against the offline multi-task model.

On the same preprocessed data, in one process: EASQ with ``train.mode: online`` (one pass over the
train days in time order, metrics and a checkpoint per day) and the Imputation-Network-style multi-task
variant (a satisfaction head on a shared bottom, no LoRA, no DPO) trained offline for one epoch. Both
go through ``trainer.train.train`` (the estimator's own loop). Reported: train rows / wall second of
each fit, the first (tracing) batch included, as the user pays it. Simulating and preprocessing are
``ctrcvr``'s own (``workflow.prepare_data``) and are not timed.

    python benchmarks/easq.py --out /tmp/easq_bench [--set simulate_video.n_requests=20000]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ctrcvr  # noqa: E402,F401

from ctrcvr import workflow  # noqa: E402
from ctrcvr.config import load_config  # noqa: E402

OFFLINE_MULTITASK = ["model.easq.lora=false", "model.easq.shared_bottom=true", "model.easq.lambda2=0.0",
                     "train.mode=offline", "train.epochs=1"]
ONLINE = ["train.mode=online"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "easq.yaml"))
    parser.add_argument("--out", default="/tmp/ctrcvr_easq_bench")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    base = load_config(args.config, args.overrides)
    data = workflow.prepare_data(base, out / "data")
    from trainer.data import TrainingData
    rows = sum(1 for _ in TrainingData(workflow.trainer_spec(base), data).dataset("train", 65536).unbatch())
    results = {"train_rows": rows}
    for name, overrides in (("easq online (test-then-train)", ONLINE),
                            ("imputation network offline, 1 epoch", OFFLINE_MULTITASK)):
        config = load_config(args.config, [*args.overrides, *overrides])
        started = time.perf_counter()
        workflow.train(config, data, out / name.split()[0] / name.split()[1])
        seconds = time.perf_counter() - started
        results[name] = {"seconds": round(seconds, 2), "examples_per_second": round(rows / seconds)}
    print(json.dumps(results, indent=2))
    (out / "benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
