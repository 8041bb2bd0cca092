"""The easq estimator through the protocol on a tiny simulated log: registry, offline fit and reload,
no answers = behaviour-only, online test-then-train stopped after a day and resumed, export + serve-check."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from ctrcvr import workflow
from ctrcvr.config import ConfigError, config_from_dict
from ctrcvr.serving.check import serve_check, versions
from tests.trainer.estimators.easq_data import prepare
from trainer.estimators import get_estimator
from trainer.estimators.easq.fit import PROGRESSIVE, fit_easq
from trainer.estimators.easq.stream import load_stream
from trainer.progress import Progress
from trainer.train import build_model, load_trained_model, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    config, data, raw = prepare(tmp_path_factory.mktemp("video") / "data")
    return {"config": config, "data": data, "raw": raw}


def test_easq_is_registered_with_its_knobs_and_an_online_loop():
    spec = get_estimator("easq")
    assert spec.online and spec.reads("easq") and not spec.reads("ipw")
    assert set(spec.sweeps) == {"main_experts", "satisfaction_experts", "lambda1", "lambda2"}
    assert spec.sweeps["main_experts"].overrides(4.0) == {"model.easq.main_experts": 4}
    with pytest.raises(ConfigError, match="has no online loop"):
        config_from_dict({"model": {"name": "esmm"}, "train": {"mode": "online"}})
    with pytest.raises(ConfigError, match="read by easq"):
        config_from_dict({"model": {"name": "esmm", "easq": {"lambda1": 2.0}}})


def test_offline_fit_names_its_outputs_logs_each_day_and_reloads(tiny, tmp_path):
    spec = workflow.trainer_spec(tiny["config"])
    model = train(spec, tiny["data"], tmp_path)
    features = {n: tf.zeros([3], d) for n, d in model.feature_specs.items()}
    out = model.predict_named(features)
    assert set(out) == {"score", "satisfaction"} and out["score"].shape == (3,)
    again = load_trained_model(spec, tiny["data"], tmp_path).predict_named(features)
    np.testing.assert_allclose(again["score"], out["score"], rtol=1e-6)
    days = [json.loads(line) for line in (tmp_path / PROGRESSIVE).read_text().splitlines()]
    assert [d["day"] for d in days] == [0, 1]  # the train days, test-then-train metrics of each
    assert {"q_mrr", "gt_ndcg@10", "play_auc", "main/zero_gate_share", "main/experts_never_used",
            "satisfaction/all_zero_rows_total", "questionnaire_pairs"} <= set(days[0])
    assert sum(d["questionnaire_pairs"] for d in days) > 0
    metrics = workflow.evaluate(tiny["config"], tiny["data"], tmp_path, model=model)
    assert {"q_ndcg@5", "q_ndcg@10", "q_hr@1", "q_hr@5", "q_hr@10", "q_mrr", "gt_ndcg@5", "gt_ndcg@10",
            "play_auc", "top_watch_seconds"} <= set(metrics)


def _fit(config, data, model_dir, answers=True):
    """Fits a fresh model of ``config`` directly on the train stream (``answers=False``: none answered)."""
    spec = workflow.trainer_spec(config)
    tf_keras.utils.set_random_seed(spec.seed)
    estimator, model, training = build_model(spec, data)
    stream = load_stream(training, "train", spec.train.batch_size, list(model.feature_specs))
    if answers:
        return model, stream, estimator.fit(model, training, model_dir)
    stream.columns["answered"][:] = 0
    return model, stream, fit_easq(model, stream, spec.model.easq, spec.train, model_dir, Progress("easq"))


def test_with_no_answers_easq_trains_exactly_as_behaviour_only(tiny, tmp_path):
    easq, stream, _ = _fit(tiny["config"], tiny["data"], tmp_path / "easq", answers=False)
    behaviour = tiny["config"].model_copy(update={"model": tiny["config"].model.model_copy(update={
        "easq": tiny["config"].model.easq.model_copy(update={"lambda1": 0.0, "lambda2": 0.0, "lora": False})})})
    only, _, _ = _fit(behaviour, tiny["data"], tmp_path / "behaviour", answers=False)
    features = {n: tf.constant(v) for n, v in stream.features.items()}
    a, b = easq.predict_named(features)["score"].numpy(), only.predict_named(features)["score"].numpy()
    assert np.std(a) > 1e-4  # it trained
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.any(easq.easq.backbone.lora_b.numpy())  # nothing trained the LoRA


def test_online_stopped_after_a_day_resumes_from_its_checkpoint(tiny, tmp_path):
    export_dir = tmp_path / "serving"
    base = tiny["config"].model_dump(mode="json")
    base["train"].update(mode="online", online={"max_days": 1})
    first_config = config_from_dict(base)
    model, stream, first = _fit(first_config, tiny["data"], tmp_path / "run")
    day0 = sum(stream.day_of_batch(k) == 0 for k in range(stream.n_batches))
    assert first == {"batches": day0, "resumed_from": 0, "total": stream.n_batches}
    base["train"]["online"] = {"max_days": None}
    resumed, _, second = _fit(config_from_dict(base), tiny["data"], tmp_path / "run")
    assert second == {"batches": stream.n_batches, "resumed_from": day0, "total": stream.n_batches}
    base["train"]["online"] = {"export_dir": str(export_dir)}
    whole, _, _ = _fit(config_from_dict(base), tiny["data"], tmp_path / "whole")
    features = {n: tf.constant(v) for n, v in stream.features.items()}
    np.testing.assert_allclose(resumed.predict_named(features)["score"], whole.predict_named(features)["score"],
                               rtol=1e-4, atol=1e-5)  # stopped + resumed = one uninterrupted pass
    assert not np.allclose(model.predict_named(features)["score"], whole.predict_named(features)["score"])
    assert len(versions(export_dir / "easq")) == 2  # a serving version per train day
    days = [json.loads(line)["day"] for line in (tmp_path / "run" / PROGRESSIVE).read_text().splitlines()]
    assert days == [0, 1]  # each day logged once across the two runs


def test_the_export_serves_score_and_satisfaction_from_raw_examples(tiny, tmp_path):
    config = tiny["config"]
    model = workflow.train(config, tiny["data"], tmp_path / "model")
    path = workflow.export(config, tiny["data"], tmp_path / "model", tmp_path / "serving", model=model,
                           raw_dir=tiny["raw"])
    summary = serve_check(path)
    assert summary["ok"] and set(summary["outputs"]) == {"score", "satisfaction"}
    assert {"serving_default", "predict_raw", "transform_features"} <= set(summary["signatures"])
