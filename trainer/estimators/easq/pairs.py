"""Pair formation for EASQ's pairwise losses (B+ of eq. 11, D+ of eqs. 15–16); numpy, deterministic.

A pair (i, j) means "row i is preferred to row j"; pair arrays are int64 [P, 2] sorted row-major.

- Behaviour pairs (B+): within one request (or one user), a row with a higher behaviour grade (like >
  valid play > neither) is preferred: ``within_group_pairs(request_id, behaviour_grades(play, like))``.
- Questionnaire pairs (D+): answers reach ≈ 0.5 % × 2 % of views, so two answers of one user rarely
  meet in a batch. ``QuestionnaireBuffer`` keeps each user's most recent answered rows (their features)
  and pairs every new answer with them; the buffered rows are appended to the batch and scored by the
  current model. ``request_pairs`` is the request-level alternative: an answered-satisfied row beats
  the unanswered candidates of its request (the weaker side), besides answered-vs-answered pairs.
- ``uncertain`` answers: left out of pairs by default (``uncertain="exclude"``); ``"middle"`` grades
  them between dissatisfied and satisfied.
"""
from __future__ import annotations

from collections import deque
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

ANSWER_GRADES = {"dissatisfied": 0.0, "uncertain": 1.0, "satisfied": 2.0}
UNCERTAIN_MODES = ("exclude", "middle")


def answer_grades(answers, uncertain: str = "exclude") -> np.ndarray:
    """Questionnaire label s per row: dissatisfied 0 < (uncertain 1) < satisfied 2; NaN = no usable answer."""
    if uncertain not in UNCERTAIN_MODES:
        raise ValueError(f"uncertain must be one of {UNCERTAIN_MODES}, got {uncertain!r}")
    answers = np.asarray(answers).astype(str)
    unknown = set(np.unique(answers)) - set(ANSWER_GRADES) - {""}
    if unknown:
        raise ValueError(f"unknown questionnaire answers {sorted(unknown)}; known: {sorted(ANSWER_GRADES)}")
    grades = np.full(len(answers), np.nan)
    for answer, grade in ANSWER_GRADES.items():
        if answer != "uncertain" or uncertain == "middle":
            grades[answers == answer] = grade
    return grades


def behaviour_grades(play, like) -> np.ndarray:
    """Behaviour label y per row: 0 = no valid play, 1 = valid play, 2 = liked (a like implies a play)."""
    play, like = np.asarray(play, dtype=float), np.asarray(like, dtype=float)
    return np.maximum(play, like) + like


def within_group_pairs(groups, grades) -> np.ndarray:
    """All (i, j) with groups[i] == groups[j] and grades[i] > grades[j]; NaN grades never pair."""
    groups, grades = np.asarray(groups), np.asarray(grades, dtype=float)
    keep = np.nonzero(np.isfinite(grades))[0]
    if len(keep) == 0:
        return np.zeros((0, 2), np.int64)
    order = keep[np.argsort(groups[keep], kind="stable")]
    _, start, size = np.unique(groups[order], return_index=True, return_counts=True)
    left = np.repeat(np.arange(len(order)), np.repeat(size, size))            # every row, |group| times
    first = np.repeat(start, size * size)
    within = np.arange(len(left)) - np.repeat(np.cumsum(size * size) - size * size, size * size)
    right = first + within % np.repeat(size, size * size)
    i, j = order[left], order[right]
    pairs = np.stack([i, j], axis=1)[grades[i] > grades[j]]
    return _sorted(pairs)


def within_group_pairs_tf(groups: tf.Tensor, grades: tf.Tensor) -> tf.Tensor:
    """In-graph twin of ``within_group_pairs`` (a [B, B] mask; for batches of a few thousand rows)."""
    grades = tf.cast(grades, tf.float32)
    valid = tf.math.is_finite(grades)
    mask = (tf.equal(groups[:, None], groups[None, :]) & (grades[:, None] > grades[None, :])
            & valid[:, None] & valid[None, :])
    return tf.where(mask)  # int64 [P, 2], row-major


def request_pairs(request_ids, grades, dissatisfied_below_unanswered: bool = False) -> np.ndarray:
    """Request-level questionnaire pairs: answered pairs by grade, and answered-satisfied > unanswered.

    ``grades`` as from ``answer_grades`` (NaN = unanswered or excluded). An excluded ``uncertain``
    answer is NaN too, so pass the rows' answers through ``answer_grades`` first and drop excluded rows
    if they must not count as unanswered. With ``dissatisfied_below_unanswered`` an unanswered candidate
    also beats an answered-dissatisfied one.
    """
    request_ids, grades = np.asarray(request_ids), np.asarray(grades, dtype=float)
    answered = within_group_pairs(request_ids, grades)
    top, bottom = ANSWER_GRADES["satisfied"], ANSWER_GRADES["dissatisfied"]
    proxy = np.where(np.isnan(grades), 1.5, np.nan)                  # unanswered: between the answers
    proxy = np.where(grades == top, 2.0, proxy)
    if dissatisfied_below_unanswered:
        proxy = np.where(grades == bottom, 0.0, proxy)
    mixed = within_group_pairs(request_ids, proxy)
    is_answered = np.isfinite(grades)
    mixed = mixed[is_answered[mixed[:, 0]] != is_answered[mixed[:, 1]]]  # answered vs unanswered only
    return _sorted(np.concatenate([answered, mixed]))


class PairedBatch(NamedTuple):
    extra: dict               # buffered rows to append after the batch's rows (same keys as the payload)
    extra_grades: np.ndarray  # their questionnaire grades
    pairs: np.ndarray         # int64 [P, 2] into the concatenation [batch rows; extra rows]


class QuestionnaireBuffer:
    """Per-user buffer of the most recent answered rows, so sparse answers still form same-user pairs.

    ``pair_batch`` pairs each answered row of the batch with the other answered rows of its user in the
    batch and with that user's buffered answers of a different grade, then adds the batch's answered
    rows to the buffer (so a row never pairs with itself). Each user keeps at most ``capacity`` rows; a
    row older than ``max_age`` batches is dropped. The payload is any dict of per-row arrays (raw
    features, or x), returned for the extra rows so the caller scores them with the current model.
    """

    def __init__(self, capacity: int = 8, max_age: Optional[int] = None):
        if capacity < 1:
            raise ValueError("QuestionnaireBuffer capacity must be >= 1")
        self.capacity, self.max_age = capacity, max_age
        self._rows: dict = {}   # user -> deque of (batch number, grade, {key: value})
        self._batch = 0

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def pair_batch(self, user_ids, grades, payload: dict) -> PairedBatch:
        user_ids, grades = np.asarray(user_ids), np.asarray(grades, dtype=float)
        n, answered = len(user_ids), np.nonzero(np.isfinite(grades))[0]
        pairs = [within_group_pairs(user_ids, grades)]
        extra_rows, extra_grades, slot = [], [], {}
        for b in answered:
            for k, (_, grade, row) in enumerate(self._live(user_ids[b])):
                if grade == grades[b]:
                    continue
                key = (_key(user_ids[b]), k)
                if key not in slot:
                    slot[key] = n + len(extra_rows)
                    extra_rows.append(row)
                    extra_grades.append(grade)
                e = slot[key]
                pairs.append(np.array([[b, e] if grades[b] > grade else [e, b]], np.int64))
        for b in answered:
            rows = self._rows.setdefault(_key(user_ids[b]), deque(maxlen=self.capacity))
            rows.append((self._batch, float(grades[b]), {k: np.asarray(v)[b] for k, v in payload.items()}))
        self._batch += 1
        extra = {k: (np.stack([r[k] for r in extra_rows]) if extra_rows else np.asarray(v)[:0])
                 for k, v in payload.items()}
        return PairedBatch(extra, np.asarray(extra_grades, dtype=float), _sorted(np.concatenate(pairs)))

    def _live(self, user) -> list:
        rows = self._rows.get(_key(user), ())
        if self.max_age is None:
            return list(rows)
        return [r for r in rows if self._batch - r[0] <= self.max_age]


def _key(user):
    return user.item() if hasattr(user, "item") else user


def _sorted(pairs: np.ndarray) -> np.ndarray:
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
