"""Short-video world for EASQ (seed 001): behaviour is a proxy of satisfaction, questionnaires are sparse.

A log in time order over ``n_days`` days: ``n_requests`` requests, each a user (drawn by activity) and
``candidates_per_request`` distinct items (drawn by popularity) in ``position`` 0..C-1.

Latent structure (d = ``latent_dim``, ρ = ``behaviour_satisfaction_agreement``, t = day, cb_i ∈ {0, 1}):
    interest I(u,i,t) = e_i + 0.9 p_u(t)·a_i/√d + pull·cb_i         appeal subspace (a, p) + clickbait pull
    satisfaction S(u,i,t) = q_i + 0.9 τ_u(t)·b_i/√d − letdown·cb_i   quality subspace (b, τ), independent of (a, p)
    appeal A = ρ S + √(1 − ρ²) I                                     ρ = 1: behaviour driven by S itself
p_u(t), τ_u(t) drift as a stationary AR(1): x(t) = √(1 − δ²) x(t−1) + δ ε, δ = ``drift_per_day``.
Item factors lean on the item's category, user factors on the age group, quality q_i on the author, and
clickbait is a property of authors, so the features (not only the ids) carry the signal.

Behaviour (σ = logistic; intercepts found by bisection so the rates hit ``play_rate`` / ``like_rate``):
    play ~ Bernoulli σ(b_play + A − 0.08 position + 0.1 [device = ios])     a valid play
    watch_ratio = σ(0.5 + 0.8 A − 0.35 log(duration/20) + N(0, 0.7²)) if played, else 0;
    watch_seconds = watch_ratio · item_duration_s
    like ~ Bernoulli σ(b_like + 1.2 A) if played, else 0
Questionnaire (§4.2.3): only after a qualifying view (play and (watch_seconds ≥ 7 or watch_ratio ≥ 0.5));
shown on a ``questionnaire_share`` of those, answered with P = σ(b_ans + response_bias·S), b_ans set so the
mean over shown questionnaires is ``answer_rate``. The answer reads S + logistic noise (scale
``answer_noise``) against ±``uncertain_band``:
    P(satisfied) = σ((S − band)/noise) = ``gt_answer_prob_satisfied``,  P(dissatisfied) = σ((−band − S)/noise),
    P(uncertain) = the rest.
Ground truth, never features: ``gt_satisfaction`` = σ(S), ``gt_answer_prob_satisfied``, ``gt_appeal`` = A.

RNG streams: catalogue (seed, 0), log (seed, 1); the frame is a pure function of (world, seed).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS = ["request_id", "day", "hour", "user_id", "item_id", "position", "user_age_group", "user_gender",
           "device", "item_category", "item_author", "item_duration_s", "play", "watch_ratio", "watch_seconds",
           "like", "questionnaire_shown", "answer", "gt_satisfaction", "gt_answer_prob_satisfied", "gt_appeal"]
GROUND_TRUTH_COLUMNS = ["gt_satisfaction", "gt_answer_prob_satisfied", "gt_appeal"]
ANSWERS = ("satisfied", "dissatisfied", "uncertain")
DEVICES = np.array(["android", "ios"])
_N_AGE_GROUPS, _N_CATEGORIES, _ITEMS_PER_AUTHOR, _FACTOR_WEIGHT = 6, 20, 8, 0.9


@dataclass(frozen=True)
class VideoWorld:
    """The knobs of the short-video world; defaults make a 200k-row log with enough answers for a 2-core run."""

    n_users: int = 2_000                       # users, drawn per request by a lognormal activity
    n_items: int = 1_500                       # videos, drawn by a Zipf-like popularity
    n_days: int = 7                            # requests are spread evenly over days, in time order
    n_requests: int = 20_000                   # requests (a feed page each)
    candidates_per_request: int = 10           # distinct items per request, ``position`` 0..C-1
    latent_dim: int = 8                        # d of the appeal and the quality subspaces
    popularity_exponent: float = 0.8           # Zipf exponent of item popularity
    behaviour_satisfaction_agreement: float = 0.5  # ρ ∈ [0, 1]: 1 = behaviour driven by satisfaction itself
    clickbait_share: float = 0.08              # share of authors (and so of items) that are clickbait
    clickbait_pull: float = 2.0                # clickbait's push on interest I (draws plays)
    clickbait_letdown: float = 1.5             # clickbait's cut of satisfaction S
    play_rate: float = 0.35                    # mean P(valid play) over candidates
    like_rate: float = 0.08                    # mean P(like | play)
    questionnaire_share: float = 0.20          # share of qualifying views that show a questionnaire (paper ≈ 0.005)
    answer_rate: float = 0.30                  # mean P(answer | shown) (paper < 0.02)
    response_bias: float = 0.0                 # slope of the answer logit on S: > 0 = satisfied users answer more
    answer_noise: float = 0.5                  # scale of the logistic noise on S read by the answer
    uncertain_band: float = 0.4                # |S + noise| below this answers "uncertain"
    drift_per_day: float = 0.1                 # δ of the user factors' daily AR(1) drift (0 = no drift)
    min_watch_seconds: float = 7.0             # a qualifying view: watched at least this long ...
    min_watch_ratio: float = 0.5               # ... or at least this share of the video

    def __post_init__(self):
        for name in ("behaviour_satisfaction_agreement", "clickbait_share", "play_rate", "like_rate",
                     "questionnaire_share", "answer_rate", "drift_per_day", "min_watch_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"VideoWorld.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.candidates_per_request > self.n_items:
            raise ValueError("VideoWorld.candidates_per_request must not exceed n_items")
        if min(self.n_users, self.n_items, self.n_days, self.n_requests, self.candidates_per_request,
               self.latent_dim) < 1 or self.answer_noise <= 0:
            raise ValueError("VideoWorld sizes must be >= 1 and answer_noise > 0")

    @classmethod
    def paper_rates(cls, **overrides) -> "VideoWorld":
        """The paper's questionnaire rates (§4.2.4): shown on ≈ 0.5 % of views, < 2 % of those answered."""
        return cls(**{"questionnaire_share": 0.005, "answer_rate": 0.02, **overrides})

    def replace(self, **changes) -> "VideoWorld":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VideoCatalogue:
    """The latent world (ground truth for tests and diagnostics; nothing here is a feature)."""

    item_quality: np.ndarray       # [items] E_u S(u,i) = q_i − letdown·cb_i (the factor term has mean ≈ 0)
    item_interest: np.ndarray      # [items] e_i + pull·cb_i
    item_appeal: np.ndarray        # [items] ρ·item_quality + √(1−ρ²)·item_interest
    item_clickbait: np.ndarray     # [items] bool
    user_interest: np.ndarray      # [days, users, d] p_u(t)
    user_taste: np.ndarray         # [days, users, d] τ_u(t)
    tables: dict                   # the rest: attributes, factors, sampling weights


def make_catalogue(world: VideoWorld, seed: int) -> VideoCatalogue:
    """Users, items and their latent factors per day; stream (seed, 0)."""
    w, rng, d = world, np.random.default_rng([seed, 0]), world.latent_dim
    age = rng.choice(_N_AGE_GROUPS, w.n_users, p=[0.15, 0.25, 0.25, 0.17, 0.11, 0.07])
    gender = rng.choice(3, w.n_users, p=[0.49, 0.49, 0.02])
    activity = rng.lognormal(0.0, 0.8, w.n_users)
    category = rng.choice(_N_CATEGORIES, w.n_items, p=_zipf(_N_CATEGORIES, 0.6))
    n_authors = max(1, w.n_items // _ITEMS_PER_AUTHOR)
    author = rng.integers(0, n_authors, w.n_items)
    author_clickbait = rng.random(n_authors) < w.clickbait_share
    clickbait = author_clickbait[author]
    duration = np.clip(np.round(rng.lognormal(np.log(20.0), 0.8, w.n_items), 1), 3.0, 300.0)
    popularity = _zipf(w.n_items, w.popularity_exponent)[rng.permutation(w.n_items)]
    a = 0.6 * rng.standard_normal((_N_CATEGORIES, d))[category] + 0.8 * rng.standard_normal((w.n_items, d))
    b = 0.6 * rng.standard_normal((_N_CATEGORIES, d))[category] + 0.8 * rng.standard_normal((w.n_items, d))
    q = 0.5 * rng.standard_normal(n_authors)[author] + 0.6 * rng.standard_normal(w.n_items)
    e = 0.3 * rng.standard_normal(_N_CATEGORIES)[category] + 0.7 * rng.standard_normal(w.n_items)
    quality = q - w.clickbait_letdown * clickbait
    interest = e + w.clickbait_pull * clickbait
    rho = w.behaviour_satisfaction_agreement
    interest_u = _drift(0.5 * rng.standard_normal((_N_AGE_GROUPS, d))[age]
                        + 0.85 * rng.standard_normal((w.n_users, d)), w, rng)
    taste_u = _drift(rng.standard_normal((w.n_users, d)), w, rng)
    tables = {"age": age, "gender": gender, "p_user": activity / activity.sum(), "category": category,
              "author": author, "duration": duration, "p_item": popularity, "a": a, "b": b, "q": q, "e": e,
              "clickbait": clickbait}
    return VideoCatalogue(item_quality=quality, item_interest=interest,
                          item_appeal=rho * quality + np.sqrt(1.0 - rho ** 2) * interest,
                          item_clickbait=clickbait, user_interest=interest_u, user_taste=taste_u, tables=tables)


def simulate_video(world: VideoWorld, seed: int) -> pd.DataFrame:
    """The log: one row per (request, candidate), in time order (request_id, then position)."""
    w, cat = world, make_catalogue(world, seed)
    t, rng = cat.tables, np.random.default_rng([seed, 1])
    c, n_req = w.candidates_per_request, w.n_requests
    request = np.arange(n_req)
    day_r = request * w.n_days // n_req
    first = np.searchsorted(day_r, np.arange(w.n_days))
    per_day = np.diff(np.append(first, n_req))
    hour_r = (request - first[day_r]) * 24 // np.maximum(per_day[day_r], 1)
    user_r = rng.choice(w.n_users, n_req, p=t["p_user"])
    device_r = (rng.random(n_req) < 0.45).astype(int)
    items = _distinct_candidates(rng, t["p_item"], n_req, c)

    u, i = np.repeat(user_r, c), items.reshape(-1)
    day, position = np.repeat(day_r, c), np.tile(np.arange(c), n_req)
    device = np.repeat(device_r, c)
    scale = _FACTOR_WEIGHT / np.sqrt(w.latent_dim)
    s = t["q"][i] - w.clickbait_letdown * t["clickbait"][i] + scale * np.einsum(
        "nd,nd->n", cat.user_taste[day, u], t["b"][i])
    interest = t["e"][i] + w.clickbait_pull * t["clickbait"][i] + scale * np.einsum(
        "nd,nd->n", cat.user_interest[day, u], t["a"][i])
    rho = w.behaviour_satisfaction_agreement
    appeal = rho * s + np.sqrt(1.0 - rho ** 2) * interest

    play_logit = appeal - 0.08 * position + 0.1 * device
    play = rng.random(len(u)) < _sigmoid(play_logit + _intercept(play_logit, w.play_rate))
    duration = t["duration"][i]
    ratio = _sigmoid(0.5 + 0.8 * appeal - 0.35 * np.log(duration / 20.0) + rng.normal(0.0, 0.7, len(u)))
    watch_ratio = np.where(play, np.round(ratio, 4), 0.0)
    watch_seconds = np.round(watch_ratio * duration, 2)
    like_logit = 1.2 * appeal
    like = play & (rng.random(len(u)) < _sigmoid(like_logit + _intercept(like_logit[play], w.like_rate)))

    qualifying = play & ((watch_seconds >= w.min_watch_seconds) | (watch_ratio >= w.min_watch_ratio))
    shown = qualifying & (rng.random(len(u)) < w.questionnaire_share)
    answer_logit = w.response_bias * s
    p_answer = _sigmoid(answer_logit + _intercept(answer_logit[shown], w.answer_rate))
    answered = shown & (rng.random(len(u)) < p_answer)
    p_sat = _sigmoid((s - w.uncertain_band) / w.answer_noise)
    p_dis = _sigmoid((-w.uncertain_band - s) / w.answer_noise)
    draw = rng.random(len(u))
    answer = np.where(draw < p_sat, ANSWERS[0], np.where(draw < p_sat + p_dis, ANSWERS[1], ANSWERS[2]))
    answer = np.where(answered, answer, "")

    frame = pd.DataFrame({
        "request_id": np.repeat(request, c).astype(np.int64), "day": day, "hour": np.repeat(hour_r, c),
        "user_id": u, "item_id": i, "position": position, "user_age_group": t["age"][u],
        "user_gender": t["gender"][u], "device": DEVICES[device], "item_category": t["category"][i],
        "item_author": t["author"][i], "item_duration_s": duration, "play": play.astype(np.int64),
        "watch_ratio": watch_ratio, "watch_seconds": watch_seconds, "like": like.astype(np.int64),
        "questionnaire_shown": shown.astype(np.int64), "answer": answer,
        "gt_satisfaction": _sigmoid(s), "gt_answer_prob_satisfied": p_sat, "gt_appeal": appeal})
    return frame[COLUMNS]


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, n + 1) ** -exponent
    return weights / weights.sum()


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _drift(start: np.ndarray, w: VideoWorld, rng: np.random.Generator) -> np.ndarray:
    """[days, users, d]: day 0 is ``start``, then x(t) = √(1 − δ²) x(t−1) + δ ε (unit variance kept)."""
    out = np.empty((w.n_days, *start.shape))
    out[0] = start
    keep = np.sqrt(1.0 - w.drift_per_day ** 2)
    for day in range(1, w.n_days):
        out[day] = keep * out[day - 1] + w.drift_per_day * rng.standard_normal(start.shape)
    return out


def _intercept(logits: np.ndarray, rate: float) -> float:
    """b with mean σ(b + logits) = rate (bisection; 0 when there are no rows)."""
    if len(logits) == 0:
        return 0.0
    if rate <= 0.0 or rate >= 1.0:
        return -50.0 if rate <= 0.0 else 50.0
    lo, hi = -30.0, 30.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _sigmoid(mid + logits).mean() < rate else (lo, mid)
    return 0.5 * (lo + hi)


def _distinct_candidates(rng: np.random.Generator, p: np.ndarray, n: int, c: int) -> np.ndarray:
    """[n, c] item ids drawn by ``p``, distinct within each row (duplicates redrawn until none remain)."""
    items = rng.choice(len(p), (n, c), p=p)
    for _ in range(1000):
        order = np.sort(items, axis=1)
        dup_rows = np.nonzero((order[:, 1:] == order[:, :-1]).any(axis=1))[0]
        if len(dup_rows) == 0:
            return items
        sub = items[dup_rows]
        seen = np.zeros_like(sub, dtype=bool)  # True where the value already appeared earlier in the row
        for k in range(1, c):
            seen[:, k] = (sub[:, :k] == sub[:, k:k + 1]).any(axis=1)
        sub[seen] = rng.choice(len(p), int(seen.sum()), p=p)
        items[dup_rows] = sub
    raise RuntimeError("could not draw distinct candidates; lower candidates_per_request or flatten popularity")
