"""Ratings benchmark (seed 004 Table 1 and Fig. 2): ``ctrcvr compare`` on ``configs/c_ips.yaml``, plus a K sweep.

A thin wrapper over the CLI's code path: the variants (MF, user-level IPS, C-IPS K=1, C-IPS) are the
config's ``compare.models``; ``--k-sweep 2,4,8,10`` adds C-IPS at those K. Simulating the MNAR + MAR
world, preprocessing, training (``trainer.train``, c_ips's own loop) and evaluating (MAR test split,
SNIPS on the MNAR eval split) are exactly what ``ctrcvr compare --config configs/c_ips.yaml`` does;
the summary table, per-seed ``runs.csv`` and plots land in ``--out``, and ``ratings_k_sweep.png``
plots MAR MAP@5 / NDCG@5 against K (seed 004 Fig. 2).

    python benchmarks/ratings.py --seeds 3 --k-sweep 2,4,8,10 --out /tmp/ratings_bench [--set model.c_ips.rounds=2]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ctrcvr  # noqa: E402,F401
import pandas as pd  # noqa: E402

from ctrcvr.compare import compare  # noqa: E402
from ctrcvr.config import config_from_dict, load_config  # noqa: E402

SWEEP_METRICS = ("mar_map@5", "mar_ndcg@5")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "c_ips.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="/tmp/ctrcvr_ratings_bench")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--k-sweep", default="", help="also run C-IPS at these K, e.g. 2,4,8,10 (seed 004 Fig. 2)")
    args = parser.parse_args(argv)
    raw = load_config(args.config, [*args.overrides, f"compare.seeds={args.seeds}"]).model_dump(mode="json")
    for k in filter(None, args.k_sweep.split(",")):
        raw["compare"]["models"].append({"label": f"C-IPS K={int(k)}", "model": "c_ips",
                                         "set": {"model.c_ips.propensity": "cluster", "model.c_ips.n_clusters": int(k)}})
    config = config_from_dict(raw, source=args.config)
    result = compare(config, args.out, overwrite=True)
    print(f"\n## Ratings benchmark ({args.seeds} seeds, {config.simulate_ratings.n_users} users x "
          f"{config.simulate_ratings.n_items} items, density {config.simulate_ratings.density}); mean ± std\n")
    print(result["table"])
    if args.k_sweep:
        print(f"\nK sweep plot: {_plot_k_sweep(pd.read_csv(Path(args.out) / 'runs.csv'), Path(args.out))}")
    print(f"per-seed rows: {result['files']['runs']}")
    return 0


def _plot_k_sweep(runs: pd.DataFrame, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = runs["run"].map(lambda label: int(m.group(1)) if (m := re.fullmatch(r"C-IPS K=(\d+)", label)) else None)
    points = runs[ks.notna()].assign(K=ks[ks.notna()].astype(int))
    fig, axes = plt.subplots(1, len(SWEEP_METRICS), figsize=(4.5 * len(SWEEP_METRICS), 3.5))
    for ax, metric in zip(axes, SWEEP_METRICS):
        stats = points.groupby("K")[metric].agg(["mean", "std"]).fillna(0.0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3)
        ax.set_xlabel("K (user clusters)")
        ax.set_title(f"{metric} on the MAR test split")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "ratings_k_sweep.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
