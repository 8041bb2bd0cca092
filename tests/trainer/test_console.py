"""A clean console: train, evaluate and export log progress, not TensorFlow / Keras warnings."""
import logging

import pytest

from ctrcvr import workflow

FRAMEWORK_LOGGERS = ("tensorflow", "tf_keras", "keras", "absl")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def framework_warnings():
    handler = _Collect()
    loggers = [logging.getLogger(name) for name in ("", *FRAMEWORK_LOGGERS)]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


def test_train_evaluate_export_emit_no_framework_warning(tiny_run, tmp_path, framework_warnings, caplog):
    config = tiny_run["config"].model_copy(update={"train": tiny_run["config"].train.model_copy(
        update={"epochs": 2, "steps_per_epoch": 3})})
    data = tiny_run["dir"] / "data" / "transformed"
    with caplog.at_level(logging.INFO, logger="trainer"):
        model = workflow.train(config, data, tmp_path / "model")
        workflow.evaluate(config, data, tmp_path / "model", model=model)
        workflow.evaluate(config, data, tmp_path / "model", overwrite=True)  # a reloaded model: a second predict function
        workflow.export(config, data, tmp_path / "model", tmp_path / "serving", model=model)
    framework = sorted({f"{r.name}: {r.getMessage()}" for r in framework_warnings
                        if r.name.split(".")[0] in FRAMEWORK_LOGGERS})
    assert framework == []
    epochs = [r.getMessage() for r in caplog.records if r.name == "trainer" and " done in " in r.getMessage()]
    assert len(epochs) == 2 and all("examples/s" in line and "val " in line for line in epochs)
    assert "ETA" in epochs[0], "known epochs: the run's time left"
    assert any((tmp_path / "model" / "tensorboard" / "validation").iterdir())


def test_only_keras_step_functions_traced_once_per_model_are_silenced():
    from trainer.model.keras_fit import CrossModelTracingFilter

    def record(message):
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    keep = CrossModelTracingFilter().filter
    assert not keep(record("6 out of the last 198 calls to <function Model.make_train_function.<locals>."
                           "train_function at 0x1> triggered tf.function retracing. Tracing is expensive"))
    assert keep(record("5 out of the last 17 calls to <bound method MultiTaskModel.predict_named of <x>> "
                       "triggered tf.function retracing. Tracing is expensive"))
    assert keep(record("Model's `__init__()` arguments contain non-serializable objects."))
