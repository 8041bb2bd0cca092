"""DCG@K / Recall@K / MAP@K and their SNIPS estimates on hand-computed rankings."""
import math

import numpy as np
import pytest

from trainer.evaluation.ranking import popularity_propensity, ranking_metrics

# user 1 ranks items by score: [irrelevant, relevant, relevant]; user 2 has no relevant item (skipped).
USERS = [1, 1, 1, 2, 2]
SCORES = [0.9, 0.8, 0.1, 0.5, 0.4]
REL = [0, 1, 1, 0, 0]


def test_plain_metrics_on_a_hand_computed_ranking():
    m = ranking_metrics(USERS, SCORES, REL, ks=(1, 3))
    assert m["DCG@1"] == 0.0 and m["Recall@1"] == 0.0 and m["MAP@1"] == 0.0
    assert m["DCG@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 2)
    assert m["Recall@3"] == pytest.approx(1.0)
    assert m["MAP@3"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_snips_weights_relevant_items_by_inverse_propensity():
    m = ranking_metrics(USERS, SCORES, REL, ks=(2, 3), weights=np.array([1.0, 1.0, 3.0, 1.0, 1.0]))
    assert m["Recall@2"] == pytest.approx(1 / 4)
    assert m["DCG@3"] == pytest.approx((1 / math.log2(3) + 3 / math.log2(4)) / 4)
    # Uniform weights of any size give the plain metric: SNIPS is self-normalised.
    assert ranking_metrics(USERS, SCORES, REL, weights=np.full(5, 7.0)) == pytest.approx(
        ranking_metrics(USERS, SCORES, REL))


def test_a_perfect_ranking_scores_one_on_recall_and_map():
    m = ranking_metrics([1, 1, 1], [3.0, 2.0, 1.0], [1, 1, 0], ks=(2,))
    assert m["Recall@2"] == pytest.approx(1.0) and m["MAP@2"] == pytest.approx(1.0)


def test_popularity_propensity():
    p = popularity_propensity(np.array([0, 0, 0, 0, 1]), np.array([0, 1, 2]), n_items=3, power=1.0)
    np.testing.assert_allclose(p, [1.0, 0.25, 0.25])  # unseen item floored at one count


def test_ndcg_is_dcg_over_the_ideal_dcg_of_the_users_items():
    # user 1's ideal order puts its 2 relevant items first: IDCG@3 = 1 + 1/log2(3)
    m = ranking_metrics(USERS, SCORES, REL, ks=(1, 2, 3))
    assert m["NDCG@1"] == 0.0
    assert m["NDCG@2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["NDCG@3"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    # Rel-MF's DCG divides by the number of relevant items instead, so a perfect ranking is below 1
    perfect = ranking_metrics([1, 1, 1], [3.0, 2.0, 1.0], [1, 1, 0], ks=(3,))
    assert perfect["NDCG@3"] == pytest.approx(1.0)
    assert perfect["DCG@3"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_weighted_ndcg_uses_the_ideal_order_of_the_weighted_gains():
    # gains w·rel of user 1 by score: [0, 1, 3]; ideal [3, 1, 0]
    m = ranking_metrics(USERS, SCORES, REL, ks=(3,), weights=np.array([1.0, 1.0, 3.0, 1.0, 1.0]))
    assert m["NDCG@3"] == pytest.approx((1 / math.log2(3) + 3 / math.log2(4)) / (3 + 1 / math.log2(3)))
    two_users = ranking_metrics([1, 1, 2, 2], [0.9, 0.1, 0.9, 0.1], [0, 1, 1, 0], ks=(1,))
    assert two_users["NDCG@1"] == pytest.approx(0.5), "the mean over users of 0 and 1"
