"""The whole chain on a tiny config: counts reconcile, metrics exist, and the export — loaded in a
separate process the way a server would — reproduces the trained model's predictions from raw
tf.Examples, including for an id never seen in training."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from ctrcvr import workflow
from ctrcvr.serving.client import to_raw_examples
from trainer.train import load_trained_model
from transforms.schema import Schema

SERVE_IN_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    examples = [r.numpy() for r in tf.data.TFRecordDataset(sys.argv[2])]
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    out = serve(examples=tf.constant(examples))
    print(json.dumps({k: v.numpy().reshape(-1).tolist() for k, v in out.items()}))
""")


def test_run_writes_every_output_and_counts_reconcile(tiny_run):
    out = tiny_run["dir"]
    report = json.loads((out / "data" / "transformed" / "report.json").read_text())
    assert report["reconciled"] and report["rows_rejected"] == 0
    assert report["rows_read"] == report["rows_written"] == tiny_run["config"].simulate.n_exposures
    assert report["splits"]["eval"]["rows"] > 0 and report["splits"]["train"]["rows"] > report["splits"]["eval"]["rows"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("ctr_auc", "cvr_auc_clicked", "ctcvr_auc", "ctr_gauc", "cvr_auc_entire_space", "cvr_bias"):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert metrics["ctr_auc"] > 0.55, "one epoch on the simulator must beat random CTR ranking"
    versions = [p for p in (out / "serving" / "esmm").iterdir() if p.name.isdigit()]
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()
    assert (versions[0] / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert 'name: "esmm"' in (out / "serving" / "models.config").read_text()
    assert (out / "config.resolved.yaml").is_file()


def test_run_trains_the_side_by_side_models_and_plots_their_calibration(tiny_run):
    out = tiny_run["dir"]
    by_model = json.loads((out / "metrics_by_model.json").read_text())
    assert list(by_model) == ["esmm", *tiny_run["config"].run_models]
    for name in tiny_run["config"].run_models:
        assert (out / "models" / name / "config.resolved.yaml").is_file(), name
        assert json.loads((out / "models" / name / "metrics.json").read_text()) == by_model[name]
    plot = tiny_run["result"]["outputs"]["calibration_by_position"]
    assert plot.endswith("calibration_by_position.png") and (out / "calibration_by_position.png").stat().st_size > 10_000


def test_run_refuses_a_non_empty_output_dir(tiny_run):
    with pytest.raises(FileExistsError, match="--overwrite"):
        workflow.run(tiny_run["config"], tiny_run["dir"])


def test_export_in_fresh_process_matches_training_process_and_handles_unseen_ids(tiny_run, tmp_path):
    config, out = tiny_run["config"], tiny_run["dir"]
    data_dir = out / "data" / "transformed"
    raw = pd.read_parquet(sorted((out / "data" / "raw" / "exposures").glob("*.parquet"))[0]).head(32)
    unseen = raw.head(1).assign(user_id=987654321, item_id=123456789)
    rows = pd.concat([raw, unseen], ignore_index=True)
    schema = Schema.from_config(config)
    examples = to_raw_examples(rows, schema)

    # In the training process: parse, apply the TFT graph, run the trained model.
    model = load_trained_model(workflow.trainer_spec(config), data_dir, out / "model")
    tft_output = tft.TFTransformOutput(str(data_dir))
    transformed = tft_output.transform_raw_features(
        tf.io.parse_example(tf.constant(examples), schema.serving_feature_spec()))
    expected = {k: v.numpy().reshape(-1) for k, v in model.predict_named(transformed).items()}
    vocab = tft_output.vocabulary_size_by_name("user_id")
    assert int(transformed["user_id_xf"].numpy()[-1]) == vocab, "an unseen user must map to the OOV bucket"

    # In a fresh process: load the SavedModel and call its signature, as TF Serving does.
    path = tmp_path / "examples.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for e in examples:
            writer.write(e)
    version = next(p for p in (out / "serving" / "esmm").iterdir() if p.name.isdigit())
    proc = subprocess.run([sys.executable, "-c", SERVE_IN_FRESH_PROCESS, str(version), str(path)],
                          capture_output=True, text=True, timeout=300,
                          env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(served) == {"pctr", "pcvr", "pctcvr"}
    for name in ("pctr", "pcvr", "pctcvr"):
        np.testing.assert_allclose(served[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert np.all((np.array(served["pctr"]) > 0) & (np.array(served["pctr"]) < 1))
    np.testing.assert_allclose(served["pctcvr"], np.array(served["pctr"]) * np.array(served["pcvr"]), rtol=1e-5)


def test_help_of_the_cli_and_of_every_command_renders():
    """argparse formats help lazily (a stray % in a help string only fails when --help is asked)."""
    from ctrcvr.cli import _parser
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices
    for argv in [["--help"], *([name, "--help"] for name in commands)]:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 0, argv


def test_steps_per_execution_runs_every_step_in_fewer_calls(tiny_run, tmp_path, caplog):
    """train.steps_per_execution = 4: the compiled step runs 4 train steps per call, every step of every
    epoch still updates the model (the optimiser's step count is the epochs' batches), and the metrics match
    the report's rows (the splits' sizes come from it)."""
    from ctrcvr import workflow
    from trainer.data import TrainingData
    config = tiny_run["config"]
    config = config.model_copy(update={"train": config.train.model_copy(update={"steps_per_execution": 4,
                                                                               "epochs": 2})})
    data_dir = tiny_run["dir"] / "data" / "transformed"
    with caplog.at_level("INFO", logger="trainer"):
        model = workflow.train(config, data_dir, tmp_path / "model")
    steps = sum(1 for _ in TrainingData(workflow.trainer_spec(config), data_dir).dataset("train", config.train.batch_size))
    assert int(model._steps_per_execution.numpy()) == 4 and steps > 4
    assert int(model.optimizer.iterations.numpy()) == 2 * steps * len(model.estimator.updates)
    done = [r.getMessage() for r in caplog.records if " done in " in r.getMessage()]
    assert len(done) == 2 and all(f"({steps} steps," in line for line in done), done  # progress counts every step


def test_cache_examples_trains_every_row_of_every_epoch(tiny_run, tmp_path, caplog):
    """train.cache_examples: the train split is parsed into memory once (all the report's rows), and every
    epoch still runs every batch of it (the optimiser's step count is epochs x batches)."""
    from trainer.data import TrainingData
    config = tiny_run["config"]
    config = config.model_copy(update={"train": config.train.model_copy(update={"cache_examples": True,
                                                                               "epochs": 2})})
    data_dir = tiny_run["dir"] / "data" / "transformed"
    with caplog.at_level("INFO", logger="trainer"):
        model = workflow.train(config, data_dir, tmp_path / "model")
    rows = json.loads((data_dir / "report.json").read_text())["splits"]["train"]["rows"]
    loaded = [r.getMessage() for r in caplog.records if "train.cache_examples:" in r.getMessage()]
    assert len(loaded) == 1 and f" {rows:,} train rows" in loaded[0], loaded  # parsed once, not per epoch
    steps = -(-rows // config.train.batch_size)
    assert int(model.optimizer.iterations.numpy()) == 2 * steps * len(model.estimator.updates)


CLI_THEN_THREADS = textwrap.dedent("""
    import sys
    from ctrcvr.cli import main
    code = main(sys.argv[1:])
    import tensorflow as tf
    print("threads", tf.config.threading.get_intra_op_parallelism_threads(),
          tf.config.threading.get_inter_op_parallelism_threads())
    sys.exit(code)
""")


def test_op_threads_from_the_config_size_the_process_pools(tiny_run, tmp_path):
    """train.intra_op_threads / inter_op_threads set through `ctrcvr train` are the pools TensorFlow ran with."""
    from tests.conftest import DEFAULT_CONFIG, TINY
    sets = [a for s in [*TINY, "train.epochs=1", "train.intra_op_threads=1", "train.inter_op_threads=2"]
            for a in ("--set", s)]
    proc = subprocess.run([sys.executable, "-c", CLI_THEN_THREADS, "train", "--config", str(DEFAULT_CONFIG), *sets,
                           "--data-dir", str(tiny_run["dir"] / "data" / "transformed"),
                           "--model-dir", str(tmp_path / "model")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "threads 1 2"
