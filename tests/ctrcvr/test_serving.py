"""Serving: the export against TF Serving's contract, checked with the tools that are here —
the development REST server in a subprocess on loopback, saved_model_cli, the session loader —
plus the hermetic check (the export works after the preprocessing output is deleted)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from ctrcvr import workflow
from ctrcvr.serving.check import serve_check
from ctrcvr.serving.client import to_raw_examples
from ctrcvr.serving.warmup import read_warmup_requests
from tests.ctrcvr.conftest import version_dir as _version_dir
from tests.rest_client import ENV, post
from transforms.schema import Schema


def _raw_rows(run, n=5):
    path = sorted((run["dir"] / "data" / "raw" / "exposures").glob("*.parquet"))[0]
    return pd.read_parquet(path).head(n)


def _in_process(version, examples):
    fn = tf.saved_model.load(str(version)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(examples=tf.constant(examples)).items()}


def test_rest_row_and_columnar_b64_round_trip_matches_the_signature(server, tiny_run):
    _, version = _version_dir(tiny_run)
    examples = to_raw_examples(_raw_rows(tiny_run), Schema.from_config(tiny_run["config"]))
    expected = _in_process(version, examples)
    b64 = [{"b64": base64.b64encode(e).decode()} for e in examples]

    status, rows = post(server + "/v1/models/esmm:predict", {"instances": b64})
    assert status == 200 and len(rows["predictions"]) == len(examples)
    np.testing.assert_allclose([p["pctr"] for p in rows["predictions"]], expected["pctr"], rtol=1e-5)

    status, cols = post(f"{server}/v1/models/esmm/versions/{version.name}:predict", {"inputs": b64})
    assert status == 200 and set(cols["outputs"]) == {"pctr", "pcvr", "pctcvr"}
    np.testing.assert_allclose(cols["outputs"]["pctcvr"], expected["pctcvr"], rtol=1e-5)


def test_rest_raw_tensor_signature_matches_examples_signature(server, tiny_run):
    _, version = _version_dir(tiny_run)
    config = tiny_run["config"]
    rows = _raw_rows(tiny_run, 3)
    feature_names = [f.name for f in config.features]
    instances = [{k: (str(v) if f.kind == "categorical" else float(v)) for f in config.features
                  for k, v in [(f.name, r[f.name])]} for _, r in rows[feature_names].iterrows()]
    status, body = post(server + "/v1/models/esmm:predict", {"signature_name": "predict_raw", "instances": instances})
    assert status == 200, body
    expected = _in_process(version, to_raw_examples(rows, Schema.from_config(config)))
    np.testing.assert_allclose([p["pcvr"] for p in body["predictions"]], expected["pcvr"], rtol=1e-5)


def test_status_metadata_and_empty_batch(server):
    with urllib.request.urlopen(server + "/v1/models/esmm") as r:
        assert json.loads(r.read())["model_version_status"][0]["state"] == "AVAILABLE"
    with urllib.request.urlopen(server + "/v1/models/esmm/metadata") as r:
        sigs = json.loads(r.read())["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "predict_raw", "transform_features"} <= set(sigs)
    assert set(sigs["serving_default"]["outputs"]) == {"pctr", "pcvr", "pctcvr"}
    status, body = post(server + "/v1/models/esmm:predict", {"instances": []})  # TF Serving refuses it too
    assert status == 400 and "'instances' is empty" in body["error"]


@pytest.mark.parametrize("path, body, code", [
    ("/v1/models/esmm:predict", b"{not json", 400),
    ("/v1/models/esmm:predict", {"instances": [{"b64": "bm90IGFuIGV4YW1wbGU="}]}, 400),   # not a tf.Example
    ("/v1/models/esmm:predict", {"instances": [{"b64": "***"}]}, 400),                      # invalid base64
    ("/v1/models/esmm:predict", {"instances": [{"b64": "AA==", "x": 1}]}, 400),
    ("/v1/models/esmm:predict", {"signature_name": "nope", "instances": []}, 400),
    ("/v1/models/esmm:predict", {"instances": [], "inputs": []}, 400),
    ("/v1/models/esmm:predict", {"signature_name": "predict_raw", "instances": [{"user_id": "1"}]}, 400),
    ("/v1/models/esmm:predict", {"signature_name": "predict_raw", "inputs": {"user_id": "1"}}, 400),
    ("/v1/models/esmm:predict", [1, 2], 400),
    ("/v1/models/missing:predict", {"instances": []}, 404),
    ("/v1/models/esmm/versions/1:predict", {"instances": []}, 404),
])
def test_malformed_requests_get_4xx_json_and_the_server_keeps_answering(server, path, body, code):
    status, answer = post(server + path, body)
    assert status == code and isinstance(answer.get("error"), str) and answer["error"]
    with urllib.request.urlopen(server + "/v1/models/esmm") as r:
        assert r.status == 200


def test_saved_model_cli_run_gives_the_python_outputs(tiny_run, tmp_path):
    _, version = _version_dir(tiny_run)
    examples = '[{"user_id":["5"],"item_id":["7"],"item_price":[12.5],"device":["ios"]},{"user_id":["never-seen"]}]'
    cli = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    proc = subprocess.run([cli, "run", "--dir", str(version), "--tag_set", "serve", "--signature_def",
                           "serving_default", "--input_examples", f"examples={examples}", "--outdir", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.DataFrame([{"user_id": "5", "item_id": "7", "item_price": 12.5, "device": "ios"},
                         {"user_id": "never-seen"}])
    expected = _in_process(version, to_raw_examples(rows, Schema.from_config(tiny_run["config"])))
    for name in ("pctr", "pcvr", "pctcvr"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected[name], rtol=1e-5)


def test_serve_check_replays_real_warmup_rows(tiny_run):
    base, version = _version_dir(tiny_run)
    requests = read_warmup_requests(version)
    n = tiny_run["config"].export.warmup_examples
    assert [(r.model_spec.signature_name, len(r.inputs["examples"].string_val)) for r in requests[:2]] == [
        ("serving_default", 1), ("serving_default", n)]
    assert requests[2].model_spec.signature_name == "predict_raw" and len(requests[2].inputs["user_id"].string_val) == n
    summary = serve_check(base)
    assert summary["ok"] and summary["outputs"] == ["pctcvr", "pctr", "pcvr"]
    assert summary["replayed"] == ["predict_raw", "serving_default"] and summary["examples"] == 1 + 2 * n
    assert {"serving_default", "predict_raw", "transform_features"} <= set(summary["signatures"])


def test_export_is_hermetic_and_never_overwrites_a_version(tiny_run, tmp_path):
    config, out = tiny_run["config"], tiny_run["dir"]
    data_copy = tmp_path / "transformed"
    shutil.copytree(out / "data" / "transformed", data_copy)
    root = tmp_path / "serving"
    first = workflow.export(config, data_copy, out / "model", root, raw_dir=out / "data" / "raw")
    second = workflow.export(config, data_copy, out / "model", root, raw_dir=out / "data" / "raw")
    assert first != second and int(second.name) > int(first.name) and (first / "saved_model.pb").is_file()
    shutil.rmtree(data_copy)                       # the preprocessing output is gone ...
    moved = tmp_path / "elsewhere"
    shutil.move(str(second), moved)                # ... and the model dir moved: it must still serve
    script = ("import sys, tensorflow as tf; m = tf.saved_model.load(sys.argv[1]); "
              "e = tf.train.Example(); e.features.feature['user_id'].bytes_list.value.append(b'5'); "
              "print(float(m.signatures['serving_default'](examples=tf.constant([e.SerializeToString()]))['pctr'][0]))")
    proc = subprocess.run([sys.executable, "-c", script, str(moved)], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 0.0 < float(proc.stdout.strip().splitlines()[-1]) < 1.0
