"""A small MNAR-ratings simulator with a MAR test set (the Coat / Yahoo! R3 protocol, seed 004).

World: users belong to ``n_groups`` latent taste groups (user factors = group centre + noise); items
have factors and a Zipf-like popularity. Every (user, item) pair has one true rating
    rating = clip(round(3 + 1.5 x_u.y_v / sqrt(d) + noise), 1, 5)
Which ratings are observed (missing not at random) depends on the user's group, the item and the
rating itself:
    observation logit = a + pop_v + group_exposure · A[g_u, v] + self_selection · (rating − 3)
with A a group × item affinity (each group is shown — and rates — its own items), ``a`` set by
bisection so that the observed density is ``density``. The MAR test set gives ``test_items`` items
per test user drawn uniformly at random, with their true ratings, whatever was observed.

Output (``simulate_ratings``): DataFrames ``train`` (MNAR, observed pairs; plus the true observation
probability ``gt_observe_prob``) and ``test`` (MAR) with columns user_id, item_id, rating, and each
user's ``group``; ``write_triplets`` writes them as ``user,item,rating`` lines.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class RatingsWorld:
    n_users: int = 600
    n_items: int = 300
    n_groups: int = 6
    latent_dim: int = 4
    density: float = 0.05           # share of (user, item) pairs observed in the MNAR set
    group_exposure: float = 1.5     # how strongly a group's affinity drives what it rates
    self_selection: float = 0.8     # log-odds of observing per rating point (0 = MAR given exposure)
    test_items: int = 10            # MAR items per test user
    test_users: float = 0.5         # share of users in the MAR test set


def simulate_ratings(world: RatingsWorld, seed: int) -> dict[str, pd.DataFrame]:
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
    a = _bisect(lambda b: float(_sigmoid(b + logit).mean()), world.density)
    propensity = _sigmoid(a + logit)
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


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _bisect(mean_at, target: float, lo: float = -30.0, hi: float = 30.0) -> float:
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_at(mid) < target else (lo, mid)
    return (lo + hi) / 2
