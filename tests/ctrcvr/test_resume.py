"""Interrupted training: ``kill -9`` during ``ctrcvr train``, then the same command resumes from the
backup's epoch and finishes; ``evaluate`` on the unfinished model is one line; ``evaluate`` does not
overwrite ``metrics.json`` unasked; ``train.deterministic`` gives identical metrics twice."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from ctrcvr import workflow
from ctrcvr.config import config_from_dict
from ctrcvr.output_dir import SUCCESS
from ctrcvr.resume import backup_epochs
from tests.conftest import REPO
from transforms.errors import UserError

EPOCHS = 60


def _raw(n=400, seed=0):
    rng = np.random.default_rng(seed)
    lines = ["exposure_id,user_id,item_id,device,item_price,click,conversion"]
    for i in range(n):
        click = int(rng.random() < 0.4)
        lines.append(f"{i},u{rng.integers(20)},i{rng.integers(15)},{rng.choice(['ios', 'pc'])},"
                     f"{rng.random() * 10:.2f},{click},{int(click and rng.random() < 0.5)}")
    return "\n".join(lines) + "\n"


def _config_dict(csv, **train):
    return {"data": {"source": "csv", "train_files": [str(csv)],
                     "split": {"by": "hash", "key": "exposure_id", "eval_fraction": 0.25}},
            "features": [{"name": "user_id", "kind": "categorical"}, {"name": "item_id", "kind": "categorical"},
                         {"name": "device", "kind": "categorical"},
                         {"name": "item_price", "kind": "numeric", "transform": "log1p"}],
            "labels": {"ground_truth": [], "keys": ["exposure_id"]},
            "preprocess": {"num_shards": 2},
            "eval": {"group_by": "user_id"},
            "train": {"batch_size": 16, "shuffle_buffer": 64, "epochs": EPOCHS, **train}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    csv = root / "rows.csv"
    csv.write_text(_raw())
    config_file = root / "config.yaml"
    config_file.write_text(yaml.safe_dump(_config_dict(csv)))
    workflow.preprocess(config_from_dict(_config_dict(csv)), root / "data")
    return {"root": root, "csv": csv, "config_file": config_file, "data": root / "data"}


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return [sys.executable, "-m", "ctrcvr.cli", *args], env


def test_kill_9_during_train_then_the_same_command_resumes_from_the_backup_and_finishes(data):
    model = data["root"] / "model"
    command, env = _cli("train", "--config", str(data["config_file"]), "--data-dir", str(data["data"]),
                        "--model-dir", str(model))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (model / "backup").is_dir() and (backup_epochs(model) or 0) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = backup_epochs(model)
    assert done is not None and 3 <= done < EPOCHS and not (model / SUCCESS).exists()

    config = config_from_dict(_config_dict(data["csv"]))
    with pytest.raises(UserError, match="training did not finish; re-run the same `ctrcvr train`"):
        workflow.evaluate(config, data["data"], model)  # was a NotFoundError traceback

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stderr
    assert "resuming the unfinished training" in log and f"{done} epoch(s) done" in log
    epochs = [int(n) for n in __import__("re").findall(rf"epoch (\d+)/{EPOCHS} done", log)]
    assert epochs == list(range(done + 1, EPOCHS + 1))  # continues from the saved epoch, to the end
    assert (model / SUCCESS).exists() and (model / "weights" / "final.index").exists()

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "holds a finished training" in again.stderr.strip().splitlines()[-1]


def test_evaluate_refuses_to_overwrite_metrics_json_unless_asked(data, tmp_path):
    model = data["root"] / "model"
    if not (model / SUCCESS).exists():
        pytest.skip("needs the model the resume test trained")
    config = config_from_dict(_config_dict(data["csv"]))
    (model / "metrics.json").write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match="metrics.json exists; pass --overwrite"):
        workflow.evaluate(config, data["data"], model)
    assert json.loads((model / "metrics.json").read_text()) == {"mine": 1}
    metrics = workflow.evaluate(config, data["data"], model, overwrite=True)
    assert json.loads((model / "metrics.json").read_text()) == metrics


def test_train_deterministic_gives_identical_metrics_twice(data):
    """In a subprocess: op determinism is process-wide and cannot be turned off again."""
    config = _config_dict(data["csv"], epochs=2, deterministic=True)
    script = f"""
import json, sys
from ctrcvr import workflow
from ctrcvr.config import config_from_dict
config = config_from_dict({config!r})
out = []
for name in ("a", "b"):
    model = workflow.train(config, {str(data["data"])!r}, {str(data["root"])!r} + "/det_" + name)
    out.append(workflow.evaluate(config, {str(data["data"])!r}, None, model=model, out_dir={str(data["root"])!r} + "/det_" + name))
print(json.dumps(out))
"""
    _, env = _cli()
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = json.loads(result.stdout.strip().splitlines()[-1])
    assert first == second and np.isfinite(first["cvr_auc_clicked"])
