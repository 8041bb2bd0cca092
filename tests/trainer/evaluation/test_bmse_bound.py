"""The BMSE diagnostic is bounded: p̂ is clipped to [0.01, 0.99] (weights at most 100)."""
import numpy as np
import pytest

from trainer.evaluation.metrics import BMSE_P_MIN, bmse


def test_one_near_zero_propensity_no_longer_explodes_bmse():
    o = np.zeros(1000)
    o[0] = 1.0
    p = np.full(1000, 0.001)
    p[0] = 1e-6  # an observed row the model thought impossible
    unclipped = ((1 / 1e-6 - 999 / (1 - 0.001)) / 1000) ** 2  # what eps = 1e-6 reported: ~1e6
    assert unclipped > 9e5
    expected = ((1 / BMSE_P_MIN - 999 / (1 - BMSE_P_MIN)) / 1000) ** 2
    assert bmse(o, p) == pytest.approx(expected) and bmse(o, p) < (1 / BMSE_P_MIN) ** 2


def test_the_clip_leaves_ordinary_propensities_alone():
    o = np.array([1.0, 0.0, 1.0, 0.0])
    assert bmse(o, np.array([0.25, 0.5, 0.25, 0.5])) == pytest.approx(((4 - 2 + 4 - 2) / 4) ** 2)
