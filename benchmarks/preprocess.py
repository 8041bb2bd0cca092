"""Preprocessing throughput: the full Beam/TFT job on simulated exposures, against pandas.

    python benchmarks/preprocess.py                      # 200k and 1M exposures, + Ali-CCP raw (200k)
    python benchmarks/preprocess.py --rows 1000000 --aliccp-rows 0 --runner local

For each size: simulate (``pipeline.simulators.exposures.simulate``, default config, Parquet), then run
``ctrcvr preprocess`` in a fresh process and report the job's rows/s (``report.json``: from the
job's start to its report, TF/Beam imports excluded), the process wall time (imports included),
its CPU seconds (user + system, children included: less sensitive than wall time to other
processes on the machine) and the peak resident memory of the process tree, sampled from /proc.
The baseline does the same vocabulary encoding and scaling in this process with pyarrow +
pandas (read, frequency-ordered factorize of the 10 categoricals, log1p z-score of the price;
no validation, no TFRecord writing; best of 3), right after each job, so each ratio compares two
measurements taken under the same load. ``--repeat N`` runs every size N times and also prints
the median. Then the Ali-CCP raw join (``configs/aliccp_raw.yaml``) on a generated raw-format
skeleton + common-features pair. Run it alone on the machine (``uptime``); the load average is
printed with every run. Results also go to benchmarks/out/preprocess.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="200000,1000000", help="exposure counts, comma separated")
    parser.add_argument("--aliccp-rows", type=int, default=200_000, help="raw skeleton rows (0: skip)")
    parser.add_argument("--runner", default="local", choices=["local", "local-multiprocess"])
    parser.add_argument("--work-dir", default=None, help="where to put data (default: a temp dir, removed)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (the median is printed too)")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="ctrcvr-bench-"))
    print(f"load average: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()}); work dir {work}")
    results = {"runner": args.runner, "load_average_at_start": os.getloadavg()[0], "exposures": []}
    for n in [int(x) for x in args.rows.split(",") if x]:
        raw = work / f"sim-{n}"
        _simulate(n, raw)
        runs = []
        for _ in range(args.repeat):
            job = _run_job(["--config", str(REPO / "configs/default.yaml"), "--input", str(raw)], work / f"xf-{n}",
                           [f"preprocess.runner={args.runner}"])
            baseline = _pandas_baseline(raw)
            runs.append({"rows": n, **job, "pandas_seconds": baseline,
                         "ratio_vs_pandas": round(job["job_seconds"] / baseline, 1)})
            print(f"{n:>9,} exposures: job {job['job_seconds']:.1f} s = {job['rows_per_second']:,.0f} rows/s "
                  f"(process {job['process_seconds']:.1f} s incl. imports, {job['cpu_seconds']:.1f} CPU s), peak RSS "
                  f"{job['peak_rss_mb']:,.0f} MB; pandas {baseline:.2f} s; job / pandas = "
                  f"{runs[-1]['ratio_vs_pandas']:.0f}x; load {job['load_average']:.2f}", flush=True)
        results["exposures"] += runs
        if len(runs) > 1:
            median = {k: float(np.median([r[k] for r in runs])) for k in
                      ("job_seconds", "rows_per_second", "cpu_seconds", "ratio_vs_pandas")}
            results.setdefault("medians", {})[str(n)] = median
            print(f"{n:>9,} exposures, median of {len(runs)}: job {median['job_seconds']:.1f} s = "
                  f"{median['rows_per_second']:,.0f} rows/s, {median['cpu_seconds']:.1f} CPU s, "
                  f"job / pandas = {median['ratio_vs_pandas']:.0f}x")
    if args.aliccp_rows:
        raw = work / "aliccp_raw"
        skeleton, common = _write_aliccp_raw(raw, args.aliccp_rows)
        job = _run_job(["--config", str(REPO / "configs/aliccp_raw.yaml")], work / "xf-aliccp",
                       [f"data.train_files=[{skeleton}]", "data.eval_files=[]", "data.split.by=hash",
                        "data.split.key=sample_id", f"data.aliccp.common_features=[{common}]",
                        f"preprocess.runner={args.runner}"])
        results["aliccp_raw"] = {"rows": args.aliccp_rows, **job}
        print(f"{args.aliccp_rows:>9,} Ali-CCP raw skeleton rows (joined with {args.aliccp_rows // 20:,} common rows): "
              f"job {job['job_seconds']:.1f} s = {job['rows_per_second']:,.0f} rows/s, peak RSS "
              f"{job['peak_rss_mb']:,.0f} MB")
    results["load_average_at_end"] = os.getloadavg()[0]
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "preprocess.json").write_text(json.dumps(results, indent=2))
    print(f"load average at the end: {results['load_average_at_end']:.2f}; results in {out / 'preprocess.json'}")
    if not args.work_dir:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _simulate(n: int, out: Path) -> None:
    from ctrcvr.config import load_config
    from ctrcvr.output_dir import prepare_output_dir
    from pipeline.simulators.exposures import simulate
    config = load_config(REPO / "configs/default.yaml", [f"simulate.n_exposures={n}", "simulate.formats=[parquet]"])
    started = time.time()
    simulate(config.simulate, prepare_output_dir(out, overwrite=True), seed=config.seed)
    print(f"simulated {n:,} exposures in {time.time() - started:.1f} s")


def _run_job(args: list[str], out: Path, overrides: list[str]) -> dict:
    command = [sys.executable, "-m", "ctrcvr.cli", "preprocess", *args, "--output-dir", str(out), "--overwrite",
               "--log-level", "WARNING"] + [a for o in overrides for a in ("--set", o)]
    started, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = _PeakRss(process.pid)
    output = process.communicate()[0]
    seconds, after = time.time() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    peak.stop()
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if process.returncode != 0:
        raise RuntimeError(f"preprocess failed ({process.returncode}):\n{output[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    return {"job_seconds": report["seconds"], "rows_per_second": report["rows_per_second"],
            "process_seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "load_average": os.getloadavg()[0],
            "peak_rss_mb": round(peak.peak / 2 ** 20, 1),
            "rows_read": report["rows_read"], "rows_rejected": report["rows_rejected"]}


class _PeakRss:
    """Peak summed RSS of a process and all its descendants, sampled every 100 ms from /proc."""

    def __init__(self, pid: int):
        self.peak, self._pid, self._done = 0, pid, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(self._pid)))
            self._done.wait(0.1)


def _tree(pid: int) -> list[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
        i += 1
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pandas_baseline(raw: Path, repeat: int = 3) -> float:
    """The same vocabularies (frequency order) and scaling, in memory with pyarrow + pandas: the best
    of ``repeat`` runs (it takes well under a second, so one run is at the mercy of other processes)."""
    return min(_pandas_once(raw) for _ in range(repeat))


def _pandas_once(raw: Path) -> float:
    import pandas as pd
    import pyarrow.parquet as pq
    categorical = ["user_id", "item_id", "user_age", "user_gender", "user_city", "item_category", "item_brand",
                   "device", "position", "hour"]
    started = time.time()
    frame = pq.read_table(sorted(raw.glob("exposures/*.parquet")), columns=[*categorical, "item_price"]).to_pandas()
    encoded = {}
    for name in categorical:
        counts = frame[name].value_counts()  # vocabulary ordered by frequency, as TFT orders it
        encoded[name] = frame[name].map(pd.Series(np.arange(len(counts)), index=counts.index)).to_numpy()
    price = np.log1p(np.maximum(frame["item_price"].to_numpy(), 0.0))
    encoded["item_price"] = (price - price.mean()) / price.std()
    return round(time.time() - started, 3)


def _write_aliccp_raw(folder: Path, n: int) -> tuple[Path, Path]:
    """A skeleton of ``n`` rows and n/20 common-features rows in the raw release's format."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_common = max(n // 20, 1)

    def items(pairs):
        return "\x01".join(f"{f}\x02{i}\x03{v:.3g}" for f, i, v in pairs)

    with open(folder / "common_features_train.csv", "w") as f:
        for m in range(n_common):
            pairs = [("101", m, 1.0), *((str(field), rng.integers(1000), 1.0) for field in (121, 122, 124, 125))]
            pairs += [("109_14", t, rng.random()) for t in rng.integers(0, 5000, rng.integers(1, 8))]
            pairs += [("110_14", t, rng.random()) for t in rng.integers(0, 5000, rng.integers(0, 5))]
            f.write(f"md5_{m:08d},{len(pairs)},{items(pairs)}\n")
    with open(folder / "sample_skeleton_train.csv", "w") as f:
        md5 = rng.integers(0, n_common, n)
        click = rng.random(n) < 0.05
        buy = click & (rng.random(n) < 0.1)
        for k in range(n):
            pairs = [("205", rng.integers(50_000), 1.0), ("206", rng.integers(500), 1.0),
                     ("216", rng.integers(2000), 1.0), ("508", rng.integers(9000), rng.random()),
                     ("853", rng.integers(9000), rng.random())]
            f.write(f"s{k},{int(click[k])},{int(buy[k])},md5_{md5[k]:08d},{len(pairs)},{items(pairs)}\n")
    return folder / "sample_skeleton_train.csv", folder / "common_features_train.csv"


if __name__ == "__main__":
    sys.exit(main())
