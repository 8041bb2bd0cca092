"""Survey benchmark (seed 000 Fig. 5): survey_ipw vs survey_standalone on simulated surveys.

For each seed: simulate surveys, hold out 20 % of the impressions, train every variant on the rest
(in memory: the same MultiTaskModel and estimators as ``ctrcvr train``, features encoded with
pandas instead of TFT), then measure the satisfaction MSE against the true satisfaction of EVERY
held-out impression, overall and per decile of the IPW model's predicted response propensity
(the same slices for every model). Prints Markdown tables and writes a PNG.

    python benchmarks/survey.py --seeds 3 --out /tmp/survey_bench [--set simulate.n_exposures=600000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import ctrcvr  # noqa: E402,F401
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from ctrcvr.tables import markdown  # noqa: E402
from ctrcvr.config import Config, load_config  # noqa: E402
from ctrcvr.output_dir import prepare_output_dir  # noqa: E402
from pipeline.simulators.exposures import simulate  # noqa: E402
from trainer.estimators import get_estimator  # noqa: E402
from trainer.model.layers import FeatureEmbedding  # noqa: E402
from trainer.model.multitask import MultiTaskModel  # noqa: E402
from trainer.evaluation.survey import mse_by_decile, plot_mse_by_decile, survey_metrics  # noqa: E402
from transforms.schema import transformed_name  # noqa: E402

VARIANTS = {  # label -> config overrides
    "standalone": ["model.name=survey_standalone", "model.ipw.clip_percentiles=null"],  # reads no model.ipw
    "ipw (clip p25-p75)": ["model.name=survey_ipw"],
    "ipw (unclipped, tau 0.01)": ["model.name=survey_ipw", "model.ipw.clip_percentiles=null", "model.ipw.tau=0.01"],
}
PROPENSITY_FROM = "ipw (clip p25-p75)"  # whose predicted response rate defines the deciles


def encode(train: pd.DataFrame, test: pd.DataFrame, config: Config):
    """Vocabulary ids (fit on train, OOV = last id) and z-scored log1p numerics, as the TFT stage does."""
    sizes, out = {}, ({}, {})
    for f in config.features:
        if f.is_embedded:
            vocab = pd.Index(train[f.name].astype(str).unique())
            sizes[f.name] = len(vocab) + 1
            for frame, enc in zip((train, test), out):
                ids = vocab.get_indexer(frame[f.name].astype(str))
                enc[transformed_name(f.name)] = np.where(ids < 0, len(vocab), ids).astype(np.int64)
        else:
            x = np.log1p(np.maximum(train[f.name].to_numpy(np.float64), 0.0))
            mu, sd = x.mean(), x.std() or 1.0
            for frame, enc in zip((train, test), out):
                v = np.log1p(np.maximum(frame[f.name].fillna(0.0).to_numpy(np.float64), 0.0))
                enc[transformed_name(f.name)] = ((v - mu) / sd).astype(np.float32)
    for frame, enc in zip((train, test), out):
        enc[config.labels.selection] = frame[config.labels.selection].to_numpy(np.float32)
        rating = frame[config.labels.outcome].astype("float64").fillna(0.0)  # 0 when not responded
        enc[config.labels.outcome] = rating.to_numpy(np.float32)
    return sizes, out[0], out[1]


def fit_predict(config: Config, sizes, train_x, test_x, seed: int) -> dict[str, np.ndarray]:
    tf_keras.utils.set_random_seed(seed)
    estimator = get_estimator(config.model.name).create(config.model)
    model = MultiTaskModel(lambda g: FeatureEmbedding(config.features, sizes, config.model.embedding_dim,
                                                      name=f"embedding_{g}"), estimator, config.labels)
    cfg = config.train
    ds = (tf.data.Dataset.from_tensor_slices(train_x).shuffle(200_000, seed=seed)
          .batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(cfg.learning_rate))
    model.fit(ds, epochs=cfg.epochs, verbose=0)
    parts = [{k: v.numpy() for k, v in model.predict_named(b).items()}
             for b in tf.data.Dataset.from_tensor_slices(test_x).batch(8192)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def run_seed(base: Config, overrides: list[str], config_path: Path, seed: int, out: Path):
    sim_dir = out / f"sim_seed{seed}"
    simulate(base.simulate.model_copy(update={"formats": ["parquet"]}), prepare_output_dir(sim_dir, overwrite=True),
             seed=seed)
    surveys = pd.concat(pd.read_parquet(p) for p in sorted((sim_dir / "surveys").glob("*.parquet")))
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(surveys)) < base.data.split.eval_fraction
    train, test = surveys[~is_test].reset_index(drop=True), surveys[is_test].reset_index(drop=True)
    sizes, train_x, test_x = encode(train, test, base)
    frames = {}
    for label, extra in VARIANTS.items():
        config = load_config(config_path, [*overrides, *extra])
        t0 = time.time()
        preds = fit_predict(config, sizes, train_x, test_x, seed)
        frames[label] = test[["responded", "gt_satisfaction", "gt_response_prob"]].assign(**preds)
        print(f"seed {seed} {label}: {time.time() - t0:.0f}s", flush=True)
    propensity = frames[PROPENSITY_FROM]["response_rate"]
    rows, deciles, true_deciles = [], {}, {}
    for label, frame in frames.items():
        metrics = survey_metrics(frame, base.model.survey)
        deciles[label] = mse_by_decile(frame, base.model.survey, propensity).assign(seed=seed)
        true_deciles[label] = mse_by_decile(frame, base.model.survey, frame["gt_response_prob"]).assign(seed=seed)
        rows.append({"model": label, "seed": seed, **metrics,
                     "mse_lowest_decile": deciles[label]["mse"].iloc[0],
                     "mse_top_decile": deciles[label]["mse"].iloc[-1],
                     "mse_lowest_true_decile": true_deciles[label]["mse"].iloc[0]})
    return rows, deciles


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "survey_ipw.yaml"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="/tmp/ctrcvr_survey_bench")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_config(args.config, args.overrides)
    rows, deciles = [], {}
    for seed in range(base.seed, base.seed + args.seeds):
        seed_rows, seed_deciles = run_seed(base, args.overrides, Path(args.config), seed, out)
        rows += seed_rows
        for label, table in seed_deciles.items():
            deciles.setdefault(label, []).append(table)
    results = pd.DataFrame(rows)
    cols = ["satisfaction_mse", "mse_lowest_decile", "mse_top_decile", "mse_lowest_true_decile",
            "satisfaction_mse_responders", "satisfaction_mse_nonresponders", "satisfaction_bias",
            "response_auc", "response_ece_vs_truth"]
    summary = results.groupby("model", sort=False)[cols].agg(lambda x: f"{x.mean():.4f} ± {x.std():.4f}")
    per_decile = {k: pd.concat(v) for k, v in deciles.items()}
    decile_table = pd.DataFrame({k: v.groupby("decile")["mse"].mean() for k, v in per_decile.items()})
    print(f"\n## Survey benchmark: {args.seeds} seeds, {int(results['rows'].iloc[0])} held-out impressions "
          f"({int(results['responses'].iloc[0])} responses) per seed; mean ± sd over seeds\n")
    print(markdown(summary))
    print(f"\n## Satisfaction MSE per decile of predicted response propensity ({PROPENSITY_FROM}), mean over seeds\n")
    print(markdown(decile_table))
    png = plot_mse_by_decile(per_decile, out / "survey_mse_by_decile.png")
    results.to_csv(out / "survey_results.csv", index=False)
    (out / "survey_summary.json").write_text(json.dumps({"summary": summary.to_dict(),
                                                         "deciles": decile_table.to_dict()}, indent=2))
    print(f"\nplot: {png}\nper-seed rows: {out / 'survey_results.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
