"""``serve-check``: load an export the way TF Serving does, replay its warmup requests, check the outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ctrcvr.serving.warmup import read_warmup_requests
from transforms.errors import UserError

PROBABILITY_OUTPUTS = ("pctr", "pcvr", "pctcvr", "response_rate")


def versions(model_base) -> list[int]:
    """Integer versions under a model base directory, newest last."""
    return sorted(int(p.name) for p in Path(model_base).iterdir()
                  if p.name.isdigit() and (p / "saved_model.pb").is_file())


def resolve_version_dir(path) -> Path:
    """A version directory from either a version directory or a model base (newest version)."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    found = versions(path) if path.is_dir() else []
    if not found:
        what = "no such directory" if not path.exists() else "neither a SavedModel version directory nor a model base"
        raise UserError(f"{what} (expected <model base>/<integer version>/saved_model.pb)", file=path)
    return path / str(found[-1])


def serve_check(model_dir, signature: str = "serving_default") -> dict:
    """Loads the SavedModel with the session loader TF Serving and ``saved_model_cli`` use,
    replays every warmup request through the signature it names, by tensor name, and checks the
    outputs; requests of different signatures on the same rows (``serving_default`` on tf.Examples,
    ``predict_raw`` on raw tensors) must agree. ``signature`` must be among the replayed ones.

    Returns a summary; raises ``AssertionError`` describing the first failed check, ``UserError`` when
    ``model_dir`` holds no SavedModel.
    """
    version_dir = resolve_version_dir(model_dir)  # before the slow import: a wrong path fails at once
    import tensorflow as tf

    requests = read_warmup_requests(version_dir)
    assert requests, f"{version_dir}: no warmup requests in assets.extra/"
    replayed: dict[tuple[str, int], dict] = {}
    examples = 0
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        for request in requests:
            name = request.model_spec.signature_name or "serving_default"
            assert name in meta.signature_def, f"no signature {name!r}; has {sorted(meta.signature_def)}"
            sig = meta.signature_def[name]
            unknown = sorted(set(request.inputs) - set(sig.inputs))
            assert not unknown, f"signature {name!r} has no input(s) {unknown}; has {sorted(sig.inputs)}"
            feed = {sig.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
            batch = len(next(iter(feed.values())))
            outputs = session.run({k: info.name for k, info in sig.outputs.items()}, feed_dict=feed)
            _check_outputs(outputs, batch)
            _check_agreement(replayed, name, batch, outputs)
            examples += batch
    signatures = sorted({name for name, _ in replayed})
    assert signature in signatures, f"no warmup request for signature {signature!r} (replayed: {signatures})"
    return {"version_dir": str(version_dir), "signatures": sorted(meta.signature_def), "replayed": signatures,
            "outputs": sorted(meta.signature_def[signature].outputs), "warmup_requests": len(requests),
            "examples": examples, "ok": True}


def _check_agreement(replayed: dict, name: str, batch: int, outputs: dict) -> None:
    """Outputs of another signature on a batch of the same size must match: the export writes one
    request per signature on the same warmup rows."""
    for (other, size), theirs in replayed.items():
        if size == batch and other != name:
            for key in sorted(set(outputs) & set(theirs)):
                np.testing.assert_allclose(outputs[key], theirs[key], rtol=1e-5, atol=1e-7,
                                           err_msg=f"{name!r} and {other!r} disagree on {key!r}")
    replayed[(name, batch)] = outputs


def _check_outputs(outputs: dict, batch: int) -> None:
    for name, value in outputs.items():
        assert value.shape[:1] == (batch,), f"output {name!r} has shape {value.shape}, expected ({batch}, ...)"
        assert np.all(np.isfinite(value)), f"output {name!r} has non-finite values"
        if name in PROBABILITY_OUTPUTS:
            assert np.all((value >= 0) & (value <= 1)), f"output {name!r} leaves [0, 1]"
    if {"pctr", "pcvr", "pctcvr"} <= set(outputs):
        np.testing.assert_allclose(outputs["pctcvr"], outputs["pctr"] * outputs["pcvr"], rtol=1e-5,
                                   err_msg="pctcvr must equal pctr * pcvr")
