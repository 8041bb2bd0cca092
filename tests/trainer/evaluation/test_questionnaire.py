"""Questionnaire metrics (seed 001 Table 1 + the simulator's ground truth) on hand-computable frames."""
import math

import numpy as np
import pandas as pd
import pytest

from trainer.evaluation.questionnaire import questionnaire_metrics, request_ndcg, table1_metrics


def _frame():
    # user a: satisfied x (score 0.2) vs dissatisfied y (0.9) and z (0.1) -> the positive ranks 2nd of 3
    # user b: satisfied p (0.7) vs dissatisfied q (0.3) -> 1st of 2; an uncertain r and an unanswered s
    return pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "b", "b", "b"], "request_id": [1, 1, 2, 3, 3, 3, 3],
        "answered": [1, 1, 1, 1, 1, 1, 0], "answer_grade": [2, 0, 0, 2, 0, 1, 0],
        "score": [0.2, 0.9, 0.1, 0.7, 0.3, 0.5, 0.0], "satisfaction": [0.0] * 7,
        "play": [1, 1, 0, 1, 0, 1, 0], "watch_seconds": [5.0, 9.0, 0.0, 7.0, 0.0, 3.0, 0.0],
        "gt_satisfaction": [0.9, 0.1, 0.5, 0.8, 0.2, 0.6, 0.4]})


def test_table1_groups_one_positive_with_its_users_negatives():
    got = table1_metrics(_frame(), uncertain="exclude")
    a = {"ndcg": 1 / math.log2(3), "hr1": 0.0, "mrr": 0.5}      # rank 2
    b = {"ndcg": 1.0, "hr1": 1.0, "mrr": 1.0}                  # rank 1
    assert got["q_users"] == 2 and got["q_groups"] == 2
    assert got["q_ndcg@5"] == pytest.approx((a["ndcg"] + b["ndcg"]) / 2)
    assert got["q_hr@1"] == pytest.approx(0.5) and got["q_hr@5"] == 1.0
    assert got["q_mrr"] == pytest.approx(0.75)


def test_uncertain_in_the_middle_adds_groups_with_gains_2_pow_rel_minus_1():
    got = table1_metrics(_frame(), uncertain="middle")
    # user b: p (rel 2) vs {r (rel 1, 0.5), q (0, 0.3)} ranks 1st: NDCG 1; r vs {q} ranks 1st: NDCG 1
    assert got["q_groups"] == 3 and got["q_hr@1"] == pytest.approx((0.0 + 1.0) / 2)


def test_ground_truth_ndcg_over_requests_and_the_behaviour_metrics():
    frame = _frame()
    # request 3: scores p .7, r .5, q .3, s 0 -> gains .8 .6 .2 .4; ideal .8 .6 .4 .2
    d = [1 / math.log2(k + 2) for k in range(4)]
    req3 = (0.8 * d[0] + 0.6 * d[1] + 0.2 * d[2] + 0.4 * d[3]) / (0.8 * d[0] + 0.6 * d[1] + 0.4 * d[2] + 0.2 * d[3])
    req1 = (0.1 * d[0] + 0.9 * d[1]) / (0.9 * d[0] + 0.1 * d[1])
    got = request_ndcg(np.array([1, 1, 2, 3, 3, 3, 3]), frame["score"].to_numpy(), frame["gt_satisfaction"].to_numpy(), 10)
    assert got == pytest.approx((req1 + 1.0 + req3) / 3)
    metrics = questionnaire_metrics(frame)
    assert metrics["top_watch_seconds"] == pytest.approx((9.0 + 0.0 + 7.0) / 3)
    assert metrics["top_gt_satisfaction"] == pytest.approx((0.1 + 0.5 + 0.8) / 3, abs=1e-6)
    assert 0.0 <= metrics["play_auc"] <= 1.0


def test_without_any_pair_the_table1_metrics_are_nan_not_an_error():
    frame = _frame().assign(answer_grade=2)
    got = table1_metrics(frame)
    assert got["q_users"] == 0 and np.isnan(got["q_mrr"])
