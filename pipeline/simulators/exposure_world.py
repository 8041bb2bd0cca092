"""The exposures world: users, items, and the structural equations of clicks, conversions and surveys.

World: users have ``user_age`` 0..6, ``user_gender`` 0..2, ``user_city`` 0..19, a lognormal activity
weight and latent factors; items have ``item_category`` 0..29, ``item_brand`` 0..99, a lognormal
``item_price`` with a category-dependent level, a Zipf-like popularity and latent factors. An exposure
draws a user by activity, an item by popularity, and a context: ``day`` (ids are in day order),
``hour`` (daily cycle), ``device`` ("ios"/"android"/"pc"), ``position`` 1..20 (top slots more frequent).

Structural equations (sigma = logistic, a.b = factor dot product / sqrt(latent_dim), sb = ``selection_bias``,
hc = ``hidden_confounding``, k = ``position_selectivity``):
    Z = 0.85 (alpha_u + beta_i) / sqrt(2)            confounder: the user's purchase intent and the item's
                                                     deal quality (seed 003 §3.3), a function of (user, item)
    H ~ N(0, 1) per exposure                          hidden confounder, in no column
    m(position) = 1 + k (log(position) / log(20) - 1/2)   selectivity: deep clicks are more deliberate
    click logit      = a_ctr + c_u + c_i + 0.8 p_u.q_i + position/device/hour effects + sb m Z + hc H
    conversion logit = a_cvr + v_u + v_i + 0.8 r_u.s_i + age/category/price effects   + sb Z   + hc H
    gt_ctr = sigma(click logit); gt_cvr = sigma(conversion logit) = P(conversion | do(click))
    click ~ Bernoulli(gt_ctr); gt_conversion ~ Bernoulli(gt_cvr); conversion = click * gt_conversion
Click and conversion drivers are drawn independently (their chance correlation in the finite world
is removed, see ``_decorrelate``), so Z and H are their only common causes. With sb = hc = 0, mean
gt_cvr among clicks / mean gt_cvr overall is 1 up to noise (sd across seeds ~0.015 for 300 users x
200 items, ~0.007 for the default world, ~0.05 with latent_dim=1); with sb = 1 and the default rates
it is ~1.7 (sd 0.08 across seeds), with sb = 0.5 ~1.15.
Why k: with rare clicks a logistic click model tilts every cell of the features by about the same
factor exp(sb m Var Z), so a selection that is equally strong everywhere inflates the click-space
CVR by a near-constant odds ratio: calibration suffers, rankings (AUC) barely do. With k > 0 the
inflation grows with the position (k = 1.5: ratio ~1.2 in slots 1-2, ~2.3 in slots 10-20 while the
true CVR does not depend on the position), so a CVR model fitted on clicks learns a spurious
position effect: a bias that changes the ranking, and that inverse-propensity weighting can undo.
a_ctr and a_cvr are set by bisection on a deterministic pilot sample so that mean gt_ctr = ``ctr``
and E[gt_ctr gt_cvr] / E[gt_ctr] (the conversion rate among clicks) = ``cvr``.

Surveys (response bias, seed 000): a ``survey_share`` of clicked exposures gets a survey impression.
gt_satisfaction = 1 + 4 sigma(t_u + t_i + 0.6 m_u.n_i + 0.5 r_u.s_i + noise) in (1, 5) (shares the
conversion factors); gt_response_prob = sigma(b + response_satisfaction_slope (gt_satisfaction - 3)
+ device effect + noise), b calibrated so its mean over impressions is ``response_rate``; responded ~
Bernoulli; rating = round(clip(gt_satisfaction + noise, 1, 5)) for responders, null otherwise.

Which columns the simulation writes, and in which files, is ``pipeline.simulators.exposures``.
"""
from __future__ import annotations

import numpy as np

from pipeline.config import SimulateConfig
from pipeline.simulators._common import bisect, sigmoid

_DEVICE_P, _DEVICE_CLICK, _DEVICE_RESPONSE = [0.45, 0.40, 0.15], np.array([0.1, 0.0, -0.25]), np.array([0.0, -0.1, 0.2])
_HOUR_P = (1 + 0.6 * np.cos(2 * np.pi * (np.arange(24) - 20) / 24)) / 24
_POSITION_P = np.arange(1, 21) ** -0.5 / np.sum(np.arange(1, 21) ** -0.5)
_PILOT_ROWS = 200_000
_Z_SD = 0.85  # standard deviation of the confounder Z: selection_bias=1 gives a ratio of about 1.8
_MECHANISMS = ("click", "conv", "z", "sat")  # each has a per-user and a per-item offset
_FACTOR_MECHANISMS = ("click", "conv", "sat")  # these also have latent factors (user . item affinity)
_FACTOR_WEIGHT = 0.8  # of the factor product in the click and the conversion logit


def _zipf(n: int, exponent: float) -> np.ndarray:
    return np.arange(1, n + 1) ** -exponent / np.sum(np.arange(1, n + 1) ** -exponent)


def make_world(c: SimulateConfig, rng: np.random.Generator) -> tuple[dict, dict]:
    """User and item tables: attributes, sampling weights ``p``, and per mechanism an offset and factors."""
    nu, ni, d = c.n_users, c.n_items, c.latent_dim
    users = {"age": rng.choice(7, nu, p=[0.08, 0.22, 0.25, 0.20, 0.13, 0.08, 0.04]),
             "gender": rng.choice(3, nu, p=[0.48, 0.48, 0.04]), "city": rng.choice(20, nu, p=_zipf(20, 1.0))}
    activity = rng.lognormal(0.0, 1.0, nu)
    users["p"] = activity / activity.sum()
    items = {"category": rng.choice(30, ni, p=_zipf(30, 0.7)), "brand": rng.integers(0, 100, ni),
             "p": _zipf(ni, 0.9)[rng.permutation(ni)]}
    level = rng.normal(np.log(40.0), 0.8, 30)[items["category"]]  # category price level
    log_price = level + rng.normal(0.0, 0.4, ni)
    items["price"] = np.maximum(np.round(np.exp(log_price), 2), 0.01)
    for table, n, sd in ((users, nu, (0.5, 0.4, 1.0, 0.5)), (items, ni, (0.5, 0.4, 1.0, 0.7))):
        for mechanism, scale in zip(_MECHANISMS, sd):
            table[mechanism] = rng.normal(0.0, scale, n)
            if mechanism in _FACTOR_MECHANISMS:
                table[mechanism + "_f"] = rng.standard_normal((n, d))
    users["click"] += np.array([0.0, 0.1, -0.1])[users["gender"]]
    users["conv"] += rng.normal(0.0, 0.25, 7)[users["age"]]
    items["conv"] += (rng.normal(0.0, 0.3, 30)[items["category"]] - 0.3 * (log_price - level) / 0.4
                      - 0.2 * (level - np.log(40.0)) / 0.8)
    return _decorrelate(users, items, rng)


def _decorrelate(users: dict, items: dict, rng: np.random.Generator) -> tuple[dict, dict]:
    """Removes the chance correlation of click and conversion drivers in this finite world.

    Under the exposure weights: factors are centred, conversion factors made orthogonal to click
    factors, and per user (per item) the click offset is shifted by -beta * (its log mean conversion
    odds), beta chosen so that its mean click odds and mean conversion odds are uncorrelated.
    """
    for table in (users, items):
        for mechanism in _FACTOR_MECHANISMS:
            table[mechanism + "_f"] = table[mechanism + "_f"] - table["p"] @ table[mechanism + "_f"]
        click, conv, root = table["click_f"], table["conv_f"], np.sqrt(table["p"])[:, None]
        table["conv_f"] = conv - click @ np.linalg.lstsq(click * root, conv * root, rcond=None)[0]
    for table, other in ((users, items), (items, users)):
        n = len(other["p"])
        ref = np.arange(n) if n <= 2048 else rng.choice(n, 1024, p=other["p"])  # exact, or a sample
        weights = other["p"][ref] if n <= 2048 else np.ones(1024)
        a, b = (_log_mean_odds(table, other, m, ref, weights / weights.sum()) for m in ("click", "conv"))
        p, x = table["p"], b - table["p"] @ b
        beta = bisect(lambda s: (p @ np.exp(a - s * x)) * (p @ np.exp(b)) - p @ np.exp(a - s * x + b), 0.0, -3.0, 3.0)
        table["click"] = table["click"] - beta * x
    return users, items


def _log_mean_odds(table: dict, other: dict, mechanism: str, ref: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ``table``: log of the weighted mean over ``ref`` rows of ``other`` of exp(mechanism logit)."""
    d, out = table[mechanism + "_f"].shape[1], np.empty(len(table["p"]))
    for s in range(0, len(out), 4096):
        logit = (table[mechanism][s:s + 4096, None] + other[mechanism][ref][None, :] + _FACTOR_WEIGHT
                 * table[mechanism + "_f"][s:s + 4096] @ other[mechanism + "_f"][ref].T / np.sqrt(d))
        top = logit.max(axis=1)
        out[s:s + 4096] = top + np.log(np.exp(logit - top[:, None]) @ weights)
    return out


def _dot(users: dict, items: dict, mechanism: str, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """(user factors . item factors) / sqrt(d): unit variance."""
    left, right = users[mechanism + "_f"], items[mechanism + "_f"]
    return np.einsum("ij,ij->i", left[u], right[i]) / np.sqrt(left.shape[1])


def _term(users: dict, items: dict, mechanism: str, u: np.ndarray, i: np.ndarray, weight: float) -> np.ndarray:
    return users[mechanism][u] + items[mechanism][i] + weight * _dot(users, items, mechanism, u, i)


def draw_exposures(users: dict, items: dict, c: SimulateConfig, rng: np.random.Generator,
                    ids: np.ndarray, n_total: int) -> dict:
    n = len(ids)
    u, i = rng.choice(len(users["p"]), n, p=users["p"]), rng.choice(len(items["p"]), n, p=items["p"])
    return {"exposure_id": ids.astype(np.int64), "day": ids * c.n_days // n_total, "user_id": u, "item_id": i,
            "user_age": users["age"][u], "user_gender": users["gender"][u], "user_city": users["city"][u],
            "item_category": items["category"][i], "item_brand": items["brand"][i], "item_price": items["price"][i],
            "hour": rng.choice(24, n, p=_HOUR_P), "device": rng.choice(3, n, p=_DEVICE_P),
            "position": rng.choice(20, n, p=_POSITION_P) + 1, "hidden": rng.standard_normal(n)}


def logits(users: dict, items: dict, c: SimulateConfig, e: dict) -> tuple[np.ndarray, np.ndarray]:
    """Click and conversion logits without their intercepts."""
    u, i = e["user_id"], e["item_id"]
    z = _Z_SD * (users["z"][u] + items["z"][i]) / np.sqrt(2.0)
    hidden = c.hidden_confounding * e["hidden"]
    context = (-0.6 * np.log(e["position"]) + _DEVICE_CLICK[e["device"]]
               + 0.2 * np.cos(2 * np.pi * (e["hour"] - 21) / 24))
    click = _term(users, items, "click", u, i, _FACTOR_WEIGHT) + context
    conversion = _term(users, items, "conv", u, i, _FACTOR_WEIGHT)
    return (click + c.selection_bias * selectivity(e["position"], c.position_selectivity) * z + hidden,
            conversion + c.selection_bias * z + hidden)


def selectivity(position: np.ndarray, k: float) -> np.ndarray:
    """How strongly the confounder drives a click at this position: 1 + k (depth − 1/2), with
    depth = log(position) / log(20) from 0 (top slot) to 1 (slot 20). k > 0: clicks deep in the
    list are more deliberate (driven more by purchase intent) than clicks at the top."""
    depth = np.log(position) / np.log(20.0)
    return 1.0 + k * (depth - 0.5)


def response_logit(users: dict, items: dict, c: SimulateConfig, e: dict, rng: np.random.Generator):
    """True satisfaction (shares the conversion factors) and the response logit without its intercept."""
    u, i, n = e["user_id"], e["item_id"], len(e["user_id"])
    x = _term(users, items, "sat", u, i, 0.6) + 0.5 * _dot(users, items, "conv", u, i) + rng.normal(0.0, 0.3, n)
    satisfaction = 1.0 + 4.0 * sigmoid(x)
    logit = c.response_satisfaction_slope * (satisfaction - 3.0) + _DEVICE_RESPONSE[e["device"]]
    return satisfaction, logit + rng.normal(0.0, 0.3, n)


def calibrate(users: dict, items: dict, c: SimulateConfig, rng: np.random.Generator) -> dict:
    """Intercepts hitting the target CTR, CVR among clicks and response rate on a pilot sample."""
    e = draw_exposures(users, items, c, rng, np.arange(_PILOT_ROWS), _PILOT_ROWS)
    click, conv = logits(users, items, c, e)
    a_ctr = bisect(lambda a: sigmoid(a + click).mean(), c.ctr)
    ctr = sigmoid(a_ctr + click)  # surveys follow clicks, so clicks weight the pilot
    a_cvr = bisect(lambda a: np.average(sigmoid(a + conv), weights=ctr), c.cvr)
    response = response_logit(users, items, c, e, rng)[1]
    b = bisect(lambda b: np.average(sigmoid(b + response), weights=ctr), c.response_rate)
    return {"a_ctr": a_ctr, "a_cvr": a_cvr, "b_response": b}
