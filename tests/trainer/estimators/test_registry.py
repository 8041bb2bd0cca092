"""The registry and the parameter groups: names, declared knobs and metrics, a key the estimator does not
read is an error naming who reads it, and none of it imports TensorFlow."""
import subprocess
import sys

import pytest
from pydantic import ValidationError

from trainer.config import ModelConfig
from trainer.estimators import ESTIMATORS, find_sweep, get_estimator
from trainer.estimators.interface import Estimator, MultiTaskEstimator


def test_unknown_names_get_a_did_you_mean():
    with pytest.raises(KeyError, match="did you mean 'multi_dr'"):
        get_estimator("multi_rd")
    with pytest.raises(ValidationError, match="unknown estimator 'esm' \\(did you mean 'esmm'\\?\\)"):
        ModelConfig(name="esm")


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_spec_points_at_an_implementation_of_the_protocol(name):
    spec = get_estimator(name)
    cls = spec.load()
    assert issubclass(cls, Estimator)
    assert spec.create(ModelConfig(name=name)).name == name
    if spec.validation_metrics:
        assert issubclass(cls, MultiTaskEstimator), "validation metrics are the multi-task model's"


def test_sweeps_are_declared_by_their_estimator():
    spec, sweep = find_sweep("tau_percent")
    assert spec.name == "multi_ipw" and sweep.overrides(0.5) == {"model.ipw.tau": None, "model.ipw.tau_percent": 0.5}
    spec, sweep = find_sweep("undersample")
    assert spec.name == "multi_dr" and sweep.overrides(1.5) == {"model.undersample_rate": 1.5}
    with pytest.raises(KeyError, match="known: lambda1, lambda2, main_experts, satisfaction_experts, tau_percent, undersample"):
        find_sweep("tau")


@pytest.mark.parametrize("key, value, readers", [
    ("oversample_k", 3, "oversampling"),
    ("heuristic_eta", 0.01, "heuristic_dr"),
    ("counterfactual_weight", 0.5, "escm2_ipw, escm2_dr"),
    ("imputation_weight", 0.5, "multi_dr, escm2_dr, dr_v2"),
    ("undersample_rate", 1.5, "multi_dr, joint_learning_dr, heuristic_dr, escm2_dr, dr_v2, dr_jl"),
    ("bmse", {"phi": "K"}, "ips_v2, dr_v2"),
    ("survey", {"satisfaction_task": "classification"}, "survey_ipw, survey_standalone"),
    ("c_ips", {"n_clusters": 2}, "c_ips"),
])
def test_a_key_the_estimator_does_not_read_names_who_reads_it(key, value, readers):
    with pytest.raises(ValidationError, match=f"{key}\n.*read by {readers}, not by 'esmm'"):
        ModelConfig(name="esmm", **{key: value})


def test_defaults_pass_and_switching_estimators_resets_what_the_new_one_does_not_read():
    resolved = ModelConfig(name="multi_dr", undersample_rate=2.0).model_dump()
    ModelConfig(**{**resolved, "name": "multi_dr"})  # a resolved config, every key spelled out, loads back
    assert ModelConfig(name="esmm", oversample_k=5).oversample_k == 5, "the default value is no error"
    esmm = ModelConfig(name="multi_dr", undersample_rate=2.0, embedding_dim=4).switch_to("esmm")
    assert esmm.name == "esmm" and esmm.undersample_rate is None and esmm.embedding_dim == 4
    with pytest.raises(ValidationError, match="model.ipw|ipw"):
        ModelConfig(name="survey_standalone", ipw={"tau": 0.1})


def test_loading_a_config_imports_no_tensorflow():
    code = ("import sys; from ctrcvr.config import load_config; load_config('configs/ratings_mnar.yaml'); "
            "from trainer.estimators import get_estimator; get_estimator('c_ips').sweeps; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("tests.conftest").conftest.REPO))
