"""CVR-family metrics on a hand-made frame: the BMSE diagnostic of pCTR as the propensity."""
import pandas as pd
import pytest

from trainer.config import ModelConfig, TrainerSpec
from transforms.schema import LabelsConfig
from trainer.evaluation.cvr import cvr_metrics


def test_cvr_metrics_report_bmse_of_pctr_with_phi_one_and_phi_pcvr():
    frame = pd.DataFrame({"click": [1, 0, 1, 0], "conversion": [1, 0, 0, 0], "pctr": [0.5, 0.5, 0.25, 0.75],
                          "pcvr": [1.0, 1.0, 1.0, 0.0]})
    frame["pctcvr"] = frame["pctr"] * frame["pcvr"]
    out = cvr_metrics(frame, TrainerSpec(features=(), labels=LabelsConfig(), model=ModelConfig()))
    # o/p̂ − (1 − o)/(1 − p̂) = [2, −2, 4, −4]; φ = 1: mean 0; φ = pCVR: (2 − 2 + 4 + 0)/4 = 1
    assert out["bmse_1"] == pytest.approx(0.0) and out["bmse_r"] == pytest.approx(1.0)
