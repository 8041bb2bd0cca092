"""The short-video world (pipeline/simulators/video.py): questionnaire rules, rates, the agreement knob, drift.

Small worlds (≤ 60k rows) so the whole file runs in a few seconds; seeds are fixed and every bound
is several standard errors wide.
"""
import numpy as np
import pandas as pd
import pytest

from pipeline.simulators.video import (ANSWERS, COLUMNS, GROUND_TRUTH_COLUMNS, VideoWorld, make_catalogue,
                                       simulate_video)

SMALL = VideoWorld(n_users=400, n_items=300, n_requests=4_000, candidates_per_request=8, n_days=4)


def _spearman(a, b) -> float:
    return float(np.corrcoef(pd.Series(a).rank(), pd.Series(b).rank())[0, 1])


@pytest.fixture(scope="module")
def log():
    return simulate_video(SMALL, seed=3)


def test_same_seed_same_frame_and_another_seed_differs(log):
    pd.testing.assert_frame_equal(log, simulate_video(SMALL, seed=3))
    assert not log["play"].equals(simulate_video(SMALL, seed=4)["play"])


def test_columns_time_order_and_ground_truth_present(log):
    assert list(log.columns) == COLUMNS
    assert set(GROUND_TRUTH_COLUMNS) <= set(log.columns)
    assert len(log) == SMALL.n_requests * SMALL.candidates_per_request
    assert log["request_id"].is_monotonic_increasing and log["day"].is_monotonic_increasing
    assert sorted(log["day"].unique()) == list(range(SMALL.n_days))
    assert log.groupby("request_id")["item_id"].nunique().eq(SMALL.candidates_per_request).all()
    assert log["watch_ratio"].between(0, 1).all() and log["gt_satisfaction"].between(0, 1).all()
    assert (log.loc[log.play == 0, ["watch_ratio", "watch_seconds", "like"]] == 0).all().all()


def test_questionnaires_follow_only_qualifying_views(log):
    shown = log[log.questionnaire_shown == 1]
    assert len(shown) > 100
    assert (shown.play == 1).all()
    assert ((shown.watch_seconds >= 7) | (shown.watch_ratio >= 0.5)).all()
    answered = log[log.answer != ""]
    assert (answered.questionnaire_shown == 1).all()
    assert set(answered.answer) == set(ANSWERS)


def test_shown_and_answer_rates_match_the_configuration():
    world = SMALL.replace(n_requests=6_000, questionnaire_share=0.3, answer_rate=0.4)
    x = simulate_video(world, seed=5)
    qualifying = (x.play == 1) & ((x.watch_seconds >= 7) | (x.watch_ratio >= 0.5))
    shown_rate = x.questionnaire_shown[qualifying].mean()
    answer_rate = (x.answer[x.questionnaire_shown == 1] != "").mean()
    assert shown_rate == pytest.approx(0.3, abs=0.02)
    assert answer_rate == pytest.approx(0.4, abs=0.03)
    assert x.play.mean() == pytest.approx(world.play_rate, abs=0.01)
    assert x.like[x.play == 1].mean() == pytest.approx(world.like_rate, abs=0.01)


def test_paper_rates_preset_is_sparse():
    paper = VideoWorld.paper_rates()
    assert (paper.questionnaire_share, paper.answer_rate) == (0.005, 0.02)
    assert VideoWorld().questionnaire_share > paper.questionnaire_share


def test_response_bias_makes_satisfied_users_answer_more():
    world = SMALL.replace(n_requests=6_000, questionnaire_share=1.0, response_bias=2.0)
    x = simulate_video(world, seed=6)
    shown = x[x.questionnaire_shown == 1]
    gap = shown.gt_satisfaction[shown.answer != ""].mean() - shown.gt_satisfaction.mean()
    assert gap > 0.03
    unbiased = simulate_video(world.replace(response_bias=0.0), seed=6)
    shown = unbiased[unbiased.questionnaire_shown == 1]
    assert abs(shown.gt_satisfaction[shown.answer != ""].mean() - shown.gt_satisfaction.mean()) < 0.02


def test_answers_read_satisfaction():
    x = simulate_video(SMALL.replace(questionnaire_share=1.0, answer_rate=1.0), seed=7)
    means = x[x.answer != ""].groupby("answer")["gt_satisfaction"].mean()
    assert means["satisfied"] > means["uncertain"] > means["dissatisfied"]
    answered = x[x.answer != ""]
    assert (answered.answer == "satisfied").mean() == pytest.approx(answered.gt_answer_prob_satisfied.mean(), abs=0.03)


def test_full_agreement_makes_behaviour_rank_items_as_satisfaction_does():
    world = SMALL.replace(behaviour_satisfaction_agreement=1.0)
    catalogue = make_catalogue(world, seed=8)
    assert _spearman(catalogue.item_appeal, catalogue.item_quality) == pytest.approx(1.0)
    x = simulate_video(world, seed=8)
    np.testing.assert_allclose(x.gt_appeal, np.log(x.gt_satisfaction / (1 - x.gt_satisfaction)), atol=1e-6)
    per_item = x.groupby("item_id").agg(n=("play", "size"), play=("play", "mean"), sat=("gt_satisfaction", "mean"))
    per_item = per_item[per_item.n >= 60]
    assert _spearman(per_item.play, per_item.sat) > 0.8


def test_no_agreement_decouples_behaviour_from_satisfaction():
    world = SMALL.replace(behaviour_satisfaction_agreement=0.0, clickbait_share=0.0, n_items=1_000)
    catalogue = make_catalogue(world, seed=9)
    assert abs(_spearman(catalogue.item_appeal, catalogue.item_quality)) < 0.1
    x = simulate_video(world.replace(n_items=300), seed=9)
    per_item = x.groupby("item_id").agg(n=("play", "size"), play=("play", "mean"), sat=("gt_satisfaction", "mean"))
    assert abs(_spearman(per_item[per_item.n >= 60].play, per_item[per_item.n >= 60].sat)) < 0.25


def test_clickbait_items_draw_plays_but_disappoint(log):
    clickbait = make_catalogue(SMALL, seed=3).item_clickbait
    assert 0 < clickbait.mean() < 0.3
    is_cb = clickbait[log.item_id.to_numpy()]
    assert log.play[is_cb].mean() > log.play[~is_cb].mean() + 0.1
    assert log.gt_satisfaction[is_cb].mean() < log.gt_satisfaction[~is_cb].mean() - 0.1


def test_preferences_drift_across_days():
    drifting = make_catalogue(SMALL.replace(drift_per_day=0.3), seed=10)
    first, last = drifting.user_taste[0].ravel(), drifting.user_taste[-1].ravel()
    next_day = drifting.user_taste[1].ravel()
    assert np.corrcoef(first, last)[0, 1] < np.corrcoef(first, next_day)[0, 1] < 0.99
    still = make_catalogue(SMALL.replace(drift_per_day=0.0), seed=10)
    np.testing.assert_array_equal(still.user_taste[0], still.user_taste[-1])
    # in the log: the same (user, item) pair is worth a different satisfaction on another day
    x = simulate_video(SMALL.replace(drift_per_day=0.3), seed=10)
    spread = x.groupby(["user_id", "item_id"])["gt_satisfaction"].agg(["std", "size"])
    assert spread.loc[spread["size"] > 1, "std"].mean() > 0.01
    x0 = simulate_video(SMALL.replace(drift_per_day=0.0), seed=10)
    spread0 = x0.groupby(["user_id", "item_id"])["gt_satisfaction"].agg(["std", "size"])
    assert spread0.loc[spread0["size"] > 1, "std"].max() < 1e-12


def test_world_rejects_out_of_range_knobs():
    with pytest.raises(ValueError, match="behaviour_satisfaction_agreement"):
        VideoWorld(behaviour_satisfaction_agreement=1.5)
    with pytest.raises(ValueError, match="candidates_per_request"):
        VideoWorld(n_items=5, candidates_per_request=6)
