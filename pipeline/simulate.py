"""Causal simulator of exposure -> click -> conversion logs, plus satisfaction surveys.

The world
    Users carry attributes (``user_age`` 0..6, ``user_gender`` 0..2, ``user_city`` 0..19), an
    activity weight (lognormal) and latent factors; items carry ``item_category`` 0..29,
    ``item_brand`` 0..99, a lognormal ``item_price`` whose level depends on the category, a
    Zipf-like popularity and latent factors. Each exposure draws a user by activity, an item by
    popularity and a context: ``day`` (exposures are in day order), ``hour`` (daily cycle),
    ``device`` ("ios"/"android"/"pc") and ``position`` 1..20 (top slots more frequent).

Structural equations (sigma = logistic function, d = latent_dim, x.y = dot product / sqrt(d))
    Z   = (alpha_u + beta_i + z_u . z_i) / sqrt(3)   confounder, unit variance, a function of (user, item)
    H   ~ N(0, 1) per exposure                         hidden confounder, revealed by no column
    click logit = a_ctr + c_u + c_i + 0.8 p_u.q_i + position/device/hour effects
                  + selection_bias * Z + hidden_confounding * H
    conversion logit = a_cvr + v_u + v_i + 0.8 r_u.s_i + age/category/price effects
                  + selection_bias * Z + hidden_confounding * H
    gt_ctr = sigma(click logit), gt_cvr = sigma(conversion logit) = P(conversion | do(click))
    click ~ Bernoulli(gt_ctr), gt_conversion ~ Bernoulli(gt_cvr), conversion = click * gt_conversion

    Click drivers and conversion drivers are drawn independently, so Z and H are their only
    common causes: with selection_bias = hidden_confounding = 0 the clicked exposures are a
    random sample as far as conversion is concerned (mean gt_cvr among clicks / mean gt_cvr over
    all exposures = 1 up to noise); with selection_bias = 1 it is about 1.6-1.7. The intercepts
    are calibrated by bisection on a deterministic pilot sample so that the mean gt_ctr is
    ``ctr`` and E[gt_ctr * gt_cvr] / E[gt_ctr] (conversion rate among clicks) is ``cvr``.

Surveys (response bias, seed 000)
    A ``survey_share`` of the clicked exposures gets a survey impression. True satisfaction
    gt_satisfaction = 1 + 4 sigma(t_u + t_i + 0.6 m_u.n_i + 0.5 r_u.s_i + noise) lies in (1, 5)
    and shares the conversion factors r, s. The response probability is
    gt_response_prob = sigma(b + response_satisfaction_slope * (gt_satisfaction - 3) + device
    effect + noise), with b calibrated so its mean over survey impressions is ``response_rate``;
    responded ~ Bernoulli, and rating = round(clip(gt_satisfaction + noise, 1, 5)) for responders
    (null otherwise). With a positive slope responders are more satisfied than the population.

Output
    ``out_dir/exposures/part-NNNNN.{csv,parquet}`` and ``out_dir/surveys/part-NNNNN.{csv,parquet}``,
    one shard per chunk of ``chunk_rows`` exposures, and ``out_dir/simulation.json`` (the summary
    :func:`simulate` returns). The world uses the RNG stream (seed, 0), the pilot (seed, 2) and
    chunk k its own stream (seed, 1, k), so the files are a deterministic function of the seed
    and the config.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ctrcvr.config import SimulateConfig

log = logging.getLogger(__name__)

CONTEXT_COLUMNS = ["day", "user_id", "item_id", "user_age", "user_gender", "user_city", "item_category",
                   "item_brand", "item_price", "hour", "device", "position"]
EXPOSURE_COLUMNS = ["exposure_id", *CONTEXT_COLUMNS, "click", "conversion", "gt_ctr", "gt_cvr", "gt_conversion"]
SURVEY_COLUMNS = ["survey_id", "exposure_id", *CONTEXT_COLUMNS, "responded", "rating", "gt_satisfaction",
                  "gt_response_prob"]
DEVICES = np.array(["ios", "android", "pc"])

_DEVICE_P = np.array([0.45, 0.40, 0.15])
_DEVICE_CLICK = np.array([0.10, 0.0, -0.25])
_DEVICE_RESPONSE = np.array([0.0, -0.10, 0.20])
_HOURS = np.arange(24)
_HOUR_P = (1 + 0.6 * np.cos(2 * np.pi * (_HOURS - 20) / 24)) / 24
_POSITION_P = 1 / np.sqrt(np.arange(1, 21)) / np.sum(1 / np.sqrt(np.arange(1, 21)))
_PILOT_ROWS = 200_000


@dataclass
class _World:
    """Users and items: attributes, sampling weights and latent factors (small, in memory)."""

    user_p: np.ndarray
    item_p: np.ndarray
    user_age: np.ndarray
    user_gender: np.ndarray
    user_city: np.ndarray
    item_category: np.ndarray
    item_brand: np.ndarray
    item_price: np.ndarray
    click_u: np.ndarray  # per-user / per-item offsets and factor matrices of each mechanism
    click_i: np.ndarray
    click_uf: np.ndarray
    click_if: np.ndarray
    conv_u: np.ndarray
    conv_i: np.ndarray
    conv_uf: np.ndarray
    conv_if: np.ndarray
    z_u: np.ndarray
    z_i: np.ndarray
    z_uf: np.ndarray
    z_if: np.ndarray
    sat_u: np.ndarray
    sat_i: np.ndarray
    sat_uf: np.ndarray
    sat_if: np.ndarray


def simulate(config: SimulateConfig, out_dir: Union[str, Path], seed: int, overwrite: bool = False) -> dict:
    """Simulates ``config.n_exposures`` exposures (and their surveys) into ``out_dir``; returns the summary."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    started = time.perf_counter()
    world = _make_world(config, np.random.default_rng([seed, 0]))
    intercepts = _calibrate(world, config, np.random.default_rng([seed, 2]))
    log.info("calibrated intercepts %s", intercepts)
    totals, files = _Totals(), {"exposures": {f: [] for f in config.formats}, "surveys": {f: [] for f in config.formats}}
    n = config.n_exposures
    for k, start in enumerate(range(0, n, config.chunk_rows)):
        stop = min(start + config.chunk_rows, n)
        rng = np.random.default_rng([seed, 1, k])
        exposures, surveys = _simulate_chunk(world, config, intercepts, rng, start, stop, totals.surveys)
        totals.add(exposures, surveys)
        for name, frame in (("exposures", exposures), ("surveys", surveys)):
            for fmt, path in _write_shard(frame, out / name, k, config.formats).items():
                files[name][fmt].append(path.relative_to(out).as_posix())
        elapsed = time.perf_counter() - started
        log.info("chunk %d: %d / %d rows (%.0f rows/s)", k, stop, n, stop / max(elapsed, 1e-9))
    summary = totals.summary(intercepts, files, seed, config)
    (out / "simulation.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("simulated %d exposures in %.1f s into %s", n, time.perf_counter() - started, out)
    return summary


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"output directory {out} is not empty; choose a new directory "
                                  "or pass overwrite=True to replace a previous simulation there")
        for name in ("exposures", "surveys"):  # only what this module writes
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "simulation.json").unlink(missing_ok=True)
    (out / "exposures").mkdir(parents=True, exist_ok=True)
    (out / "surveys").mkdir(parents=True, exist_ok=True)


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def _make_world(c: SimulateConfig, rng: np.random.Generator) -> _World:
    nu, ni, d = c.n_users, c.n_items, c.latent_dim
    age = rng.choice(7, nu, p=[0.08, 0.22, 0.25, 0.20, 0.13, 0.08, 0.04])
    gender = rng.choice(3, nu, p=[0.48, 0.48, 0.04])
    category = rng.choice(30, ni, p=_zipf(30, 0.7))
    cat_level = rng.normal(np.log(40.0), 0.8, 30)
    log_price = cat_level[category] + rng.normal(0.0, 0.4, ni)
    activity = rng.lognormal(0.0, 1.0, nu)
    age_effect, cat_effect = rng.normal(0.0, 0.25, 7), rng.normal(0.0, 0.3, 30)
    price_effect = -0.3 * (log_price - cat_level[category]) / 0.4 - 0.2 * (cat_level[category] - np.log(40.0)) / 0.8
    gauss = lambda n, s=1.0: rng.normal(0.0, s, n)  # noqa: E731
    return _World(
        user_p=activity / activity.sum(), item_p=_zipf(ni, 0.9)[rng.permutation(ni)],
        user_age=age, user_gender=gender, user_city=rng.choice(20, nu, p=_zipf(20, 1.0)),
        item_category=category, item_brand=rng.integers(0, 100, ni),
        item_price=np.maximum(np.round(np.exp(log_price), 2), 0.01),
        click_u=gauss(nu, 0.5) + np.array([0.0, 0.1, -0.1])[gender], click_i=gauss(ni, 0.5),
        click_uf=gauss((nu, d)), click_if=gauss((ni, d)),
        conv_u=gauss(nu, 0.4) + age_effect[age], conv_i=gauss(ni, 0.4) + cat_effect[category] + price_effect,
        conv_uf=gauss((nu, d)), conv_if=gauss((ni, d)),
        z_u=gauss(nu), z_i=gauss(ni), z_uf=gauss((nu, d)), z_if=gauss((ni, d)),
        sat_u=gauss(nu, 0.5), sat_i=gauss(ni, 0.7), sat_uf=gauss((nu, d)), sat_if=gauss((ni, d)))


def _dot(left: np.ndarray, right: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Row-wise user.item factor product, scaled to unit variance."""
    return np.einsum("ij,ij->i", left[users], right[items]) / np.sqrt(left.shape[1])


def _draw_exposures(w: _World, c: SimulateConfig, rng: np.random.Generator, ids: np.ndarray, n_total: int) -> dict:
    n = len(ids)
    users = rng.choice(len(w.user_p), n, p=w.user_p)
    items = rng.choice(len(w.item_p), n, p=w.item_p)
    return {"exposure_id": ids.astype(np.int64), "day": ids * c.n_days // n_total, "user_id": users,
            "item_id": items, "user_age": w.user_age[users], "user_gender": w.user_gender[users],
            "user_city": w.user_city[users], "item_category": w.item_category[items],
            "item_brand": w.item_brand[items], "item_price": w.item_price[items],
            "hour": rng.choice(24, n, p=_HOUR_P), "device": rng.choice(3, n, p=_DEVICE_P),
            "position": rng.choice(20, n, p=_POSITION_P) + 1, "hidden": rng.standard_normal(n)}


def _logits(w: _World, c: SimulateConfig, e: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Click and conversion logits without intercepts, and the conversion factor term."""
    u, i = e["user_id"], e["item_id"]
    z = (w.z_u[u] + w.z_i[i] + _dot(w.z_uf, w.z_if, u, i)) / np.sqrt(3.0)
    shared = c.selection_bias * z + c.hidden_confounding * e["hidden"]
    context = (-0.6 * np.log(e["position"]) + _DEVICE_CLICK[e["device"]]
               + 0.2 * np.cos(2 * np.pi * (e["hour"] - 21) / 24))
    click = w.click_u[u] + w.click_i[i] + 0.8 * _dot(w.click_uf, w.click_if, u, i) + context + shared
    conv_factors = _dot(w.conv_uf, w.conv_if, u, i)
    conv = w.conv_u[u] + w.conv_i[i] + 0.8 * conv_factors + shared
    return click, conv, conv_factors


def _satisfaction(w: _World, e: dict, conv_factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u, i = e["user_id"], e["item_id"]
    x = (w.sat_u[u] + w.sat_i[i] + 0.6 * _dot(w.sat_uf, w.sat_if, u, i) + 0.5 * conv_factors
         + rng.normal(0.0, 0.3, len(u)))
    return 1.0 + 4.0 / (1.0 + np.exp(-x))


def _response_logit(c: SimulateConfig, satisfaction: np.ndarray, device: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    return (c.response_satisfaction_slope * (satisfaction - 3.0) + _DEVICE_RESPONSE[device]
            + rng.normal(0.0, 0.3, len(device)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bisect(mean_at: Callable[[float], float], target: float, lo: float = -40.0, hi: float = 40.0) -> float:
    """The intercept at which the (increasing) ``mean_at`` equals ``target``."""
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_at(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def _calibrate(w: _World, c: SimulateConfig, rng: np.random.Generator) -> dict:
    """Intercepts hitting the target CTR, CVR among clicks and response rate on a pilot sample."""
    e = _draw_exposures(w, c, rng, np.arange(_PILOT_ROWS), _PILOT_ROWS)
    click, conv, conv_factors = _logits(w, c, e)
    a_ctr = _bisect(lambda a: _sigmoid(a + click).mean(), c.ctr)
    ctr = _sigmoid(a_ctr + click)  # surveys follow clicks, so clicks weight the pilot
    a_cvr = _bisect(lambda a: np.average(_sigmoid(a + conv), weights=ctr), c.cvr)
    response = _response_logit(c, _satisfaction(w, e, conv_factors, rng), e["device"], rng)
    b = _bisect(lambda b: np.average(_sigmoid(b + response), weights=ctr), c.response_rate)
    return {"a_ctr": a_ctr, "a_cvr": a_cvr, "b_response": b}


def _simulate_chunk(w: _World, c: SimulateConfig, intercepts: dict, rng: np.random.Generator,
                    start: int, stop: int, first_survey_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    e = _draw_exposures(w, c, rng, np.arange(start, stop), c.n_exposures)
    click_logit, conv_logit, conv_factors = _logits(w, c, e)
    gt_ctr, gt_cvr = _sigmoid(intercepts["a_ctr"] + click_logit), _sigmoid(intercepts["a_cvr"] + conv_logit)
    n = stop - start
    click = (rng.random(n) < gt_ctr).astype(np.int64)
    gt_conversion = (rng.random(n) < gt_cvr).astype(np.int64)
    surveyed = np.flatnonzero((click == 1) & (rng.random(n) < c.survey_share))
    context = {k: np.asarray(e[k]) for k in ("exposure_id", *CONTEXT_COLUMNS)}
    exposures = {**context, "click": click, "conversion": click * gt_conversion, "gt_ctr": gt_ctr,
                 "gt_cvr": gt_cvr, "gt_conversion": gt_conversion}
    s = {k: v[surveyed] for k, v in e.items()}
    satisfaction = _satisfaction(w, s, conv_factors[surveyed], rng)
    prob = _sigmoid(intercepts["b_response"] + _response_logit(c, satisfaction, s["device"], rng))
    responded = (rng.random(len(surveyed)) < prob).astype(np.int64)
    rating = np.rint(np.clip(satisfaction + rng.normal(0.0, 0.3, len(surveyed)), 1, 5)).astype(np.int64)
    surveys = {"survey_id": first_survey_id + np.arange(len(surveyed), dtype=np.int64),
               **{k: v[surveyed] for k, v in context.items()}, "responded": responded,
               "rating": pd.arrays.IntegerArray(rating, mask=responded == 0),
               "gt_satisfaction": satisfaction, "gt_response_prob": prob}
    return _frame(exposures, EXPOSURE_COLUMNS), _frame(surveys, SURVEY_COLUMNS)


def _frame(columns: dict, order: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({k: columns[k] for k in order})
    frame["device"] = DEVICES[np.asarray(columns["device"], dtype=np.int64)]
    ints = [k for k in order if k not in ("device", "rating", "item_price") and not k.startswith("gt_")]
    return frame.astype({k: np.int64 for k in ints + ["gt_conversion"] if k in frame})


def _write_shard(frame: pd.DataFrame, folder: Path, k: int, formats: list[str]) -> dict[str, Path]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
                                  for f in table.schema], metadata=table.schema.metadata))
    paths = {}
    for fmt in formats:
        paths[fmt] = folder / f"part-{k:05d}.{fmt}"
        if fmt == "csv":
            pacsv.write_csv(table, paths[fmt], pacsv.WriteOptions(quoting_style="needed"))
        else:
            pq.write_table(table, paths[fmt])
    return paths


@dataclass
class _Totals:
    rows: int = 0
    clicks: int = 0
    conversions: int = 0
    sum_gt_ctr: float = 0.0
    sum_gt_cvr: float = 0.0
    sum_gt_cvr_clicked: float = 0.0
    sum_ctr_cvr: float = 0.0
    surveys: int = 0
    responses: int = 0
    sum_response_prob: float = 0.0
    sum_satisfaction: float = 0.0
    sum_satisfaction_responders: float = 0.0

    def add(self, x: pd.DataFrame, s: pd.DataFrame) -> None:
        clicked, responded = x["click"].to_numpy() == 1, s["responded"].to_numpy() == 1
        gt_ctr, gt_cvr, sat = x["gt_ctr"].to_numpy(), x["gt_cvr"].to_numpy(), s["gt_satisfaction"].to_numpy()
        for name, value in (("rows", len(x)), ("clicks", clicked.sum()), ("conversions", x["conversion"].sum()),
                            ("sum_gt_ctr", gt_ctr.sum()), ("sum_gt_cvr", gt_cvr.sum()),
                            ("sum_gt_cvr_clicked", gt_cvr[clicked].sum()), ("sum_ctr_cvr", (gt_ctr * gt_cvr).sum()),
                            ("surveys", len(s)), ("responses", responded.sum()),
                            ("sum_response_prob", s["gt_response_prob"].sum()), ("sum_satisfaction", sat.sum()),
                            ("sum_satisfaction_responders", sat[responded].sum())):
            setattr(self, name, getattr(self, name) + (value.item() if isinstance(value, np.generic) else value))

    def summary(self, intercepts: dict, files: dict, seed: int, config: SimulateConfig) -> dict:
        ratio = lambda a, b: a / b if b else float("nan")  # noqa: E731
        mean_cvr = ratio(self.sum_gt_cvr, self.rows)
        return {
            "seed": seed, "rows": self.rows, "chunks": len(next(iter(files["exposures"].values()), [])),
            "clicks": self.clicks, "conversions": self.conversions, "ctr": ratio(self.clicks, self.rows),
            "cvr_among_clicks": ratio(self.conversions, self.clicks), "mean_gt_ctr": ratio(self.sum_gt_ctr, self.rows),
            "mean_gt_cvr_all": mean_cvr, "mean_gt_cvr_clicked": ratio(self.sum_gt_cvr_clicked, self.clicks),
            "selection_bias_ratio": ratio(ratio(self.sum_gt_cvr_clicked, self.clicks), mean_cvr),
            "selection_bias_ratio_expected": ratio(ratio(self.sum_ctr_cvr, self.sum_gt_ctr), mean_cvr),
            "surveys": self.surveys, "responses": self.responses,
            "response_rate": ratio(self.responses, self.surveys),
            "mean_gt_response_prob": ratio(self.sum_response_prob, self.surveys),
            "mean_gt_satisfaction_all": ratio(self.sum_satisfaction, self.surveys),
            "mean_gt_satisfaction_responders": ratio(self.sum_satisfaction_responders, self.responses),
            "intercepts": intercepts, "columns": {"exposures": EXPOSURE_COLUMNS, "surveys": SURVEY_COLUMNS},
            "files": files, "config": config.model_dump(mode="json"),
        }
