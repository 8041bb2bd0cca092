"""A small MNAR-ratings simulator with a MAR test set (the Coat / Yahoo! R3 protocol, seed 004).

World (``simulate_ratings`` in the config): users belong to ``n_groups`` latent taste groups (user
factors = group centre + noise); items have factors and a Zipf-like popularity. Every (user, item)
pair has one true rating
    rating = clip(round(3 + 1.5 x_u.y_v / sqrt(d) + noise), 1, 5)
Which ratings are observed (missing not at random) depends on the user's group, the item and the
rating itself:
    observation logit = a + pop_v + group_exposure · A[g_u, v] + self_selection · (rating − 3)
with A a group × item affinity (each group is shown — and rates — its own items), ``a`` set by
bisection so that the observed density is ``density``. The MAR test set gives ``test_items`` items
per test user drawn uniformly at random, with their true ratings, whatever was observed.

``simulate_ratings`` returns DataFrames ``train`` (MNAR, observed pairs, with the true observation
probability ``gt_observe_prob``) and ``test`` (MAR) with columns user_id, item_id, rating, and each
user's ``group``. ``simulate_to_files`` is the entry point of the ``simulated_ratings`` source
(``pipeline.inputs``), what ``ctrcvr simulate`` runs: ``<out>/ratings/{train,test}.csv``
(``user,item,rating`` lines, no header, read by the ratings reader) and ``<out>/simulation.json``. The true observation probabilities are
not written: the triplet format has no column for them and the generated unobserved rows could not
carry them; the MAR test split is the unbiased ground truth the evaluation uses.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd

from pipeline.config import SimulateRatingsConfig
from pipeline.simulators._common import bisect, sigmoid
from transforms.schema import LabelsConfig

log = logging.getLogger(__name__)
TRIPLET_FILES = {"train": "ratings/train.csv", "test": "ratings/test.csv"}  # under the simulation's directory
SUMMARY_FILE = "simulation.json"


def simulate_ratings(world: SimulateRatingsConfig, seed: int) -> dict[str, pd.DataFrame]:
    """{'train': MNAR observed ratings, 'test': MAR ratings}; a deterministic function of world and seed."""
    rng = np.random.default_rng(seed)
    u, v, d = world.n_users, world.n_items, world.latent_dim
    group = rng.integers(world.n_groups, size=u)
    centres = rng.normal(0.0, 1.0, (world.n_groups, d))
    x = centres[group] + rng.normal(0.0, 0.5, (u, d))
    y = rng.normal(0.0, 1.0, (v, d))
    rating = np.rint(np.clip(3.0 + 1.5 * (x @ y.T) / np.sqrt(d) + rng.normal(0.0, 0.5, (u, v)), 1, 5))
    pop = np.log(1.0 / np.arange(1, v + 1) ** 0.8)[rng.permutation(v)]
    affinity = rng.normal(0.0, 1.0, (world.n_groups, v))
    logit = pop[None, :] + world.group_exposure * affinity[group] + world.self_selection * (rating - 3.0)
    a = bisect(lambda b: float(sigmoid(b + logit).mean()), world.density, lo=-30.0, hi=30.0)
    propensity = sigmoid(a + logit)
    ou, ov = np.nonzero(rng.random((u, v)) < propensity)
    train = pd.DataFrame({"user_id": ou, "item_id": ov, "rating": rating[ou, ov],
                          "gt_observe_prob": propensity[ou, ov]})
    test_users = rng.choice(u, size=int(round(world.test_users * u)), replace=False)
    tv = np.stack([rng.choice(v, size=world.test_items, replace=False) for _ in test_users])
    tu = np.repeat(test_users, world.test_items)
    test = pd.DataFrame({"user_id": tu, "item_id": tv.ravel(), "rating": rating[tu, tv.ravel()]})
    return {"train": train, "test": test, "group": pd.Series(group, name="group")}


def write_triplets(frames: dict[str, pd.DataFrame], out_dir: Union[str, Path]) -> dict[str, Path]:
    """``out_dir/{train,test}.csv``: one ``user,item,rating`` line per rating, no header."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("train", "test"):
        paths[name] = out / f"{name}.csv"
        frames[name][["user_id", "item_id", "rating"]].astype(int).to_csv(paths[name], header=False, index=False)
    return paths


def simulate_to_files(world: SimulateRatingsConfig, labels: LabelsConfig, out_dir: Union[str, Path],
                      seed: int) -> dict:
    """Simulates one world into ``out_dir`` (``TRIPLET_FILES`` + ``simulation.json``); returns the summary.
    ``labels.rating_threshold`` decides the positive rates of the summary. Guarding ``out_dir`` is the
    caller's job (``ctrcvr.output_dir``)."""
    out = Path(out_dir)
    rating_threshold = labels.rating_threshold
    frames = simulate_ratings(world, seed)
    write_triplets(frames, out / Path(TRIPLET_FILES["train"]).parent)
    train, test = frames["train"], frames["test"]
    summary = {
        "seed": seed, "files": dict(TRIPLET_FILES),
        "mnar_ratings": len(train), "mar_ratings": len(test),
        "observed_density": len(train) / (world.n_users * world.n_items),
        "mnar_rating_mean": float(train["rating"].mean()), "mar_rating_mean": float(test["rating"].mean()),
        "mnar_positive_rate": float((train["rating"] > rating_threshold).mean()),
        "mar_positive_rate": float((test["rating"] > rating_threshold).mean()),
        "config": world.model_dump(mode="json"),
    }
    summary["selection_bias_ratio"] = summary["mnar_positive_rate"] / max(summary["mar_positive_rate"], 1e-12)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    log.info("simulated %d MNAR and %d MAR ratings into %s", len(train), len(test), out)
    return summary


def announce(world: SimulateRatingsConfig, labels: LabelsConfig) -> str:
    """What a run will simulate, for the run log."""
    return "MNAR + MAR ratings"


def describe(summary: dict) -> str:
    """The summary in one line, for the run log."""
    return (f"{summary['mnar_ratings']} MNAR ratings (density {summary['observed_density']:.3f}), "
            f"{summary['mar_ratings']} MAR; positive rate MNAR {summary['mnar_positive_rate']:.3f} "
            f"vs MAR {summary['mar_positive_rate']:.3f}")
