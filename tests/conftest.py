"""Test-wide setup and shared fixtures.

Keras 2 must be selected before any test imports TensorFlow. The ``tiny_run`` fixture runs
the whole chain (simulate -> Beam/TFT -> ESMM -> evaluate -> export) once per session on a
tiny config; tests that need a trained model or an export share it.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "default.yaml"
REAL_DATA = REPO / "tests" / "fixtures"  # real data samples (Ali-CCP), vendored so a clean clone tests them

TINY = [
    "simulate.n_exposures=20000", "simulate.n_users=300", "simulate.n_items=200",
    "simulate.chunk_rows=10000", "train.epochs=3", "train.batch_size=256",
    "preprocess.num_shards=2",
]


@pytest.fixture(scope="session")
def tiny_config():
    from ctrcvr.config import load_config
    return load_config(DEFAULT_CONFIG, TINY)


@pytest.fixture(scope="session")
def tiny_run(tiny_config, tmp_path_factory):
    """Output of ``ctrcvr run`` on the tiny config: {'dir', 'result', 'config'}."""
    from ctrcvr import workflow
    out = tmp_path_factory.mktemp("tiny_run")
    result = workflow.run(tiny_config, out, overwrite=True)
    return {"dir": out, "result": result, "config": tiny_config}
