"""Tests of the causal simulator (pipeline/simulators/exposures.py): bias knobs, levels, surveys, files.

Tolerances come from the spread over 16 seeds of the same tiny configs (measured once):
unbiased run: selection-bias ratio 0.996 +- 0.016, ctr 0.200 +- 0.002, cvr among clicks
0.100 +- 0.002, responders' minus all impressions' satisfaction 0.000 +- 0.012, response rate
0.201 +- 0.003; biased run: ratio 1.71 +- 0.10 (min 1.43), ctr 0.040 +- 0.0012, ctr-weighted
gt_cvr 0.0203 +- 0.0006, satisfaction gap 0.61 +- 0.06. Every bound is 4-5 sd wide, seeds are fixed.
"""
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import SimulateConfig
from pipeline.simulators.exposures import EXPOSURE_COLUMNS, SURVEY_COLUMNS, simulate

WORLD = dict(n_users=300, n_items=200, survey_share=1.0, response_rate=0.2, formats=["parquet"])
BIASED = dict(WORLD, n_exposures=40_000, chunk_rows=20_000)  # default ctr, cvr, selection_bias=1, slope=1
UNBIASED = dict(WORLD, n_exposures=50_000, chunk_rows=25_000, selection_bias=0.0, hidden_confounding=0.0,
                ctr=0.2, cvr=0.1, response_satisfaction_slope=0.0)
TINY = dict(n_users=50, n_items=40, n_exposures=2_500, chunk_rows=1_000, ctr=0.3, response_rate=0.3)


def _run(tmp_path_factory, name, seed=11, **overrides):
    out = tmp_path_factory.mktemp(name)
    summary = simulate(SimulateConfig(**overrides), out, seed=seed)
    return out, summary


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    return _run(tmp_path_factory, "biased", **BIASED)


@pytest.fixture(scope="module")
def unbiased(tmp_path_factory):
    return _run(tmp_path_factory, "unbiased", **UNBIASED)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _run(tmp_path_factory, "tiny", **TINY)


def _read(out, kind, fmt="parquet"):
    files = sorted((out / kind).glob(f"part-*.{fmt}"))
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    return pd.concat([read(f) for f in files], ignore_index=True)


# ----------------------------------------------------------------------------- selection bias
def test_default_selection_bias_makes_clicked_exposures_convert_more(biased):
    out, summary = biased
    assert SimulateConfig().selection_bias == 1.0  # BIASED keeps the default knob
    x = _read(out, "exposures")
    ratio = x.loc[x.click == 1, "gt_cvr"].mean() / x["gt_cvr"].mean()
    assert ratio >= 1.3
    assert summary["selection_bias_ratio"] == pytest.approx(ratio)


def test_without_confounding_clicks_are_a_random_sample_for_conversion(unbiased):
    _, summary = unbiased
    assert summary["selection_bias_ratio"] == pytest.approx(1.0, abs=0.08)
    assert summary["selection_bias_ratio_expected"] == pytest.approx(1.0, abs=0.08)


def test_hidden_confounding_alone_also_biases(tmp_path_factory):
    _, summary = _run(tmp_path_factory, "hidden", **dict(BIASED, selection_bias=0.0, hidden_confounding=1.0))
    assert summary["selection_bias_ratio"] >= 1.3


def test_position_selectivity_makes_the_bias_grow_down_the_list_while_the_truth_stays_flat(tmp_path_factory, biased):
    out, _ = _run(tmp_path_factory, "selective", **dict(BIASED, position_selectivity=2.0))
    x = _read(out, "exposures")
    top, deep = x[x.position <= 2], x[x.position >= 10]
    ratio = {name: part.loc[part.click == 1, "gt_cvr"].mean() / part["gt_cvr"].mean()
             for name, part in (("top", top), ("deep", deep))}
    assert ratio["deep"] > ratio["top"] + 0.6  # measured over seeds 11-13: +0.99 to +1.44
    assert deep["gt_cvr"].mean() == pytest.approx(top["gt_cvr"].mean(), rel=0.1)  # no causal position effect
    flat = _read(biased[0], "exposures")
    flat_ratio = [part.loc[part.click == 1, "gt_cvr"].mean() / part["gt_cvr"].mean()
                  for part in (flat[flat.position <= 2], flat[flat.position >= 10])]
    # k = 0: about the same tilt at every position (measured +0.01 to +0.40 in this small world)
    assert ratio["deep"] - ratio["top"] > flat_ratio[1] - flat_ratio[0] + 0.5


# ----------------------------------------------------------------------------- levels
def test_levels_hit_their_targets_without_bias(unbiased):
    _, summary = unbiased
    assert summary["ctr"] == pytest.approx(0.2, abs=0.01)
    assert summary["cvr_among_clicks"] == pytest.approx(0.1, abs=0.01)
    assert summary["response_rate"] == pytest.approx(0.2, abs=0.015)


def test_levels_hit_their_targets_under_selection_bias(biased):
    out, summary = biased
    x = _read(out, "exposures")
    assert summary["ctr"] == pytest.approx(0.04, abs=0.006)
    assert x["gt_ctr"].mean() == pytest.approx(0.04, abs=0.003)
    assert np.average(x["gt_cvr"], weights=x["gt_ctr"]) == pytest.approx(0.02, abs=0.003)
    assert summary["mean_gt_cvr_all"] < 0.015  # the entire-space CVR is well below the clicked one


# ----------------------------------------------------------------------------- surveys
def test_responders_are_more_satisfied_when_response_depends_on_satisfaction(biased):
    out, summary = biased
    s = _read(out, "surveys")
    gap = s.loc[s.responded == 1, "gt_satisfaction"].mean() - s["gt_satisfaction"].mean()
    assert gap > 0.25
    assert summary["mean_gt_satisfaction_responders"] - summary["mean_gt_satisfaction_all"] == pytest.approx(gap)
    assert s["gt_satisfaction"].between(1, 5).all()


def test_responders_are_representative_when_slope_is_zero(unbiased):
    _, summary = unbiased
    gap = summary["mean_gt_satisfaction_responders"] - summary["mean_gt_satisfaction_all"]
    assert abs(gap) < 0.06


# ----------------------------------------------------------------------------- columns and consistency
def test_exposure_columns_and_label_consistency(tiny):
    out, summary = tiny
    x = _read(out, "exposures")
    assert list(x.columns) == EXPOSURE_COLUMNS
    assert x["exposure_id"].tolist() == list(range(TINY["n_exposures"]))
    assert (x["conversion"] == x["click"] * x["gt_conversion"]).all()
    assert x["gt_conversion"].sum() > x["conversion"].sum() > 0  # potential outcomes exist without clicks
    assert set(x["device"]) == {"ios", "android", "pc"}
    assert x["position"].between(1, 20).all() and x["hour"].between(0, 23).all()
    assert set(x["day"]) == set(range(7)) and x["day"].is_monotonic_increasing
    assert (x["item_price"] > 0).all() and x["gt_ctr"].between(0, 1).all()
    assert summary["rows"] == len(x) and summary["clicks"] == x["click"].sum()


def test_surveys_follow_clicks_and_rating_is_null_iff_not_responded(tiny):
    out, _ = tiny
    x, s = _read(out, "exposures"), _read(out, "surveys")
    assert list(s.columns) == SURVEY_COLUMNS
    assert str(s["rating"].dtype) == "Int64"
    assert (s["rating"].isna() == (s["responded"] == 0)).all()
    assert s["responded"].sum() > 0 and s["rating"].dropna().between(1, 5).all()
    assert s["survey_id"].tolist() == list(range(len(s)))
    clicked = x.set_index("exposure_id").loc[s["exposure_id"]]
    assert (clicked["click"] == 1).all() and (clicked["user_id"].to_numpy() == s["user_id"].to_numpy()).all()


def test_csv_and_parquet_hold_the_same_rows(tiny):
    out, _ = tiny
    for kind in ("exposures", "surveys"):
        csv, parquet = _read(out, kind, "csv"), _read(out, kind, "parquet")
        pd.testing.assert_frame_equal(csv, parquet, check_dtype=False)
    assert (out / "exposures" / "part-00000.csv").read_text().startswith(",".join(EXPOSURE_COLUMNS) + "\n")


def test_one_shard_per_chunk_and_summary_lists_them(tiny):
    out, summary = tiny
    chunks = -(-TINY["n_exposures"] // TINY["chunk_rows"])
    assert summary["chunks"] == chunks == 3
    for kind in ("exposures", "surveys"):
        for fmt in ("csv", "parquet"):
            on_disk = sorted(p.relative_to(out).as_posix() for p in (out / kind).glob(f"*.{fmt}"))
            assert len(on_disk) == chunks and summary["files"][kind][fmt] == on_disk
    assert json.loads((out / "simulation.json").read_text()) == summary


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_other_seed_other_data(tiny, tmp_path):
    out, _ = tiny
    simulate(SimulateConfig(**TINY), tmp_path / "again", seed=11)
    for path in sorted(out.rglob("*.*")):
        assert (tmp_path / "again" / path.relative_to(out)).read_bytes() == path.read_bytes(), path
    simulate(SimulateConfig(**TINY), tmp_path / "other", seed=12)
    assert not _read(out, "exposures").equals(_read(tmp_path / "other", "exposures"))
