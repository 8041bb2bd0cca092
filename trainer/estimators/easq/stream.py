"""A split of questionnaire data in memory, in time order, cut into batches of whole requests.

The preprocessing job does not keep row order (its shards are shuffled), so the rows are sorted
here by ``day``, then ``request_id`` (as integers when every id is one, else as text), then file order.
A batch is a run of whole requests of about ``batch_size`` rows that never crosses a day, so
behaviour pairs (within a request) are complete and a day ends on a batch boundary (per-day
metrics, checkpoints, exports). The log's user is the ``user_id`` key column (raw text), so
users a vocabulary merges into OOV are still told apart.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from trainer.estimators.easq.pairs import behaviour_grades

USER, REQUEST, DAY = "user_id", "request_id", "day"
BEHAVIOUR = ("play", "like", "watch_ratio", "watch_seconds")
GROUND_TRUTH = "gt_satisfaction"


@dataclasses.dataclass
class Stream:
    features: dict          # transformed feature columns, time order
    columns: dict           # labels (as answered, answer_grade), behaviour, keys, ground truth; time order
    request: np.ndarray     # int request code per row, increasing with time
    user: np.ndarray        # int user code per row
    bounds: np.ndarray      # batch k is rows bounds[k]:bounds[k + 1]

    @property
    def n_batches(self) -> int:
        return len(self.bounds) - 1

    def day_of_batch(self, k: int) -> int:
        return int(self.columns[DAY][self.bounds[k]])

    def rows(self, k: int) -> slice:
        return slice(int(self.bounds[k]), int(self.bounds[k + 1]))

    def answer_grades(self, uncertain: str) -> np.ndarray:
        """Questionnaire grade per row: 0 dissatisfied, (1 uncertain), 2 satisfied, NaN no usable answer."""
        grade = self.columns["answer_grade"].astype(float)
        usable = (self.columns["answered"] == 1) & ((grade != 1) | (uncertain == "middle"))
        return np.where(usable, grade, np.nan)

    def main_grades(self, target: str) -> np.ndarray:
        """What orders B+: behaviour (like 2 > valid play 1 > none 0), or gt_satisfaction (oracle)."""
        if target == "gt_satisfaction":
            if GROUND_TRUTH not in self.columns:
                raise ValueError("model.easq.main_target gt_satisfaction needs the simulator's gt_satisfaction "
                                 "column; the data have none")
            return self.columns[GROUND_TRUTH].astype(float)
        return behaviour_grades(self.columns["play"], self.columns["like"])


def load_stream(data, split: str, batch_size: int, feature_names) -> Stream:
    """``split`` of ``data`` (a ``trainer.data.TrainingData``) sorted in time order and cut into batches."""
    labels = data.spec.labels
    spec = data.feature_spec
    wanted = [labels.selection, labels.outcome, USER, REQUEST, DAY, *BEHAVIOUR, *labels.ground_truth]
    columns = data.read_columns(split, [*feature_names, *dict.fromkeys(c for c in wanted if c in spec)])
    missing = [c for c in (USER, REQUEST, DAY, "play", "like") if c not in columns]
    if missing:
        raise ValueError(f"easq reads questionnaire data (labels.task: questionnaire, {USER} a key); "
                         f"the preprocessed data have no {', '.join(missing)}")
    for role, name in ((labels.selection, "answered"), (labels.outcome, "answer_grade")):
        columns[name] = columns.pop(role)  # the loop and the metrics read the roles by these names
    request = _text(columns[REQUEST])
    try:
        request_key = request.astype(np.int64)
    except ValueError:
        request_key = request
    order = np.lexsort((np.arange(len(request)), request_key, columns[DAY]))
    columns = {k: v[order] for k, v in columns.items()}
    request_key = request_key[order]
    day = columns[DAY]
    change = np.ones(len(day), bool)
    change[1:] = (request_key[1:] != request_key[:-1]) | (day[1:] != day[:-1])
    starts = np.flatnonzero(change)
    bounds = [0]
    for s in starts[1:]:
        if s - bounds[-1] >= batch_size or day[s] != day[bounds[-1]]:
            bounds.append(int(s))
    bounds.append(len(day))
    features = {k: columns.pop(k) for k in feature_names}
    user = np.unique(_text(columns[USER]), return_inverse=True)[1]
    return Stream(features, columns, np.cumsum(change) - 1, user, np.asarray(bounds if len(day) else [0]))


def _text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values])
