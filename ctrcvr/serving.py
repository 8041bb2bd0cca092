"""Serving helpers: ``serve-check`` and a development REST server speaking TF Serving's contract.

Production serving is TF Serving. This module lets people check an export and develop
clients without it: the server implements the REST predict API
(``POST /v1/models/<name>[/versions/<v>]:predict`` with row ``instances`` or columnar
``inputs``, ``{"b64": ...}`` binary values), model status and metadata, and answers bad
requests with a 4xx and a JSON ``error``, as TF Serving does. A multivalued feature of
``predict_raw`` takes a list of values per row, of any length (the server pads them; TF Serving
wants the client to pad with ``""``). It is for development only.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Optional

import ctrcvr  # noqa: F401
import numpy as np

log = logging.getLogger(__name__)
PROBABILITY_OUTPUTS = ("pctr", "pcvr", "pctcvr", "response_rate")


class RequestError(ValueError):
    """A client error: reported as HTTP 400 (or ``status``) with a JSON error body."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- model discovery
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
        raise FileNotFoundError(f"{path}: neither a SavedModel nor a directory of integer versions")
    return path / str(found[-1])


# --------------------------------------------------------------------------- serve-check
def serve_check(model_dir, signature: str = "serving_default") -> dict:
    """Loads the SavedModel with the session loader TF Serving and ``saved_model_cli`` use,
    replays every warmup request through the signature it names, by tensor name, and checks the
    outputs; requests of different signatures on the same rows (``serving_default`` on tf.Examples,
    ``predict_raw`` on raw tensors) must agree. ``signature`` must be among the replayed ones.

    Returns a summary; raises ``AssertionError`` describing the first failed check.
    """
    import tensorflow as tf
    from trainer.export import read_warmup_requests

    version_dir = resolve_version_dir(model_dir)
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


# --------------------------------------------------------------------------- REST predict contract
@dataclasses.dataclass
class ServedModel:
    """One loaded version and its signatures."""

    name: str
    version: int
    path: Path
    loaded: Any

    @classmethod
    def load(cls, name: str, version_dir: Path) -> "ServedModel":
        import tensorflow as tf
        return cls(name, int(version_dir.name), version_dir, tf.saved_model.load(str(version_dir)))

    def signature(self, name: Optional[str]):
        name = name or "serving_default"
        if name not in self.loaded.signatures:
            raise RequestError(f"Serving signature name: \"{name}\" not found in signature def "
                               f"(has {sorted(self.loaded.signatures)})", 400)
        return self.loaded.signatures[name]

    def predict(self, body: dict) -> dict:
        """A TF Serving REST predict body -> its response body."""
        fn = self.signature(body.get("signature_name"))
        specs = fn.structured_input_signature[1]
        row_format = "instances" in body
        if row_format == ("inputs" in body):
            raise RequestError("the request needs exactly one of 'instances' (row) or 'inputs' (columnar)")
        columns = _rows_to_columns(body["instances"], specs) if row_format else _columnar(body["inputs"], specs)
        tensors = {name: _to_tensor(values, specs[name], name) for name, values in columns.items()}
        try:
            outputs = {k: v.numpy() for k, v in fn(**tensors).items()}
        except Exception as err:  # malformed serialized examples etc.: the client's fault
            raise RequestError(_short(err)) from None
        return _response(outputs, row_format)

    def metadata(self) -> dict:
        sigs = {}
        for name, fn in self.loaded.signatures.items():
            sigs[name] = {
                "inputs": {k: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                           for k, s in fn.structured_input_signature[1].items()},
                "outputs": {k: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
                            for k, s in fn.structured_outputs.items()},
                "method_name": "tensorflow/serving/predict"}
        return {"model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
                "metadata": {"signature_def": {"signature_def": sigs}}}


def _rows_to_columns(instances, specs) -> dict[str, list]:
    if not isinstance(instances, list):
        raise RequestError("'instances' must be a list")
    names = list(specs)
    if len(names) == 1 and not all(isinstance(i, dict) and names[0] in i for i in instances):
        return {names[0]: [_decode(i) for i in instances]}
    columns: dict[str, list] = {n: [] for n in names}
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(f"instance {i} must be an object with keys {names}")
        missing = [n for n in names if n not in instance]
        if missing:
            raise RequestError(f"instance {i} is missing input(s) {missing}")
        for n in names:
            columns[n].append(_decode(instance[n]))
    return columns


def _columnar(inputs, specs) -> dict[str, list]:
    names = list(specs)
    if not isinstance(inputs, dict) or (len(names) == 1 and names[0] not in inputs):
        if len(names) != 1:
            raise RequestError(f"'inputs' must be an object with keys {names}")
        inputs = {names[0]: inputs}
    missing = [n for n in names if n not in inputs]
    if missing:
        raise RequestError(f"'inputs' is missing {missing}")
    return {n: [_decode(v) for v in _as_list(inputs[n], n)] for n in names}


def _as_list(values, name):
    if not isinstance(values, list):
        raise RequestError(f"input {name!r} must be a list")
    return values


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RequestError(f"binary values are written {{\"b64\": ...}}; got keys {sorted(value)}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (ValueError, TypeError) as err:
            raise RequestError(f"invalid base64: {err}") from None
    return value


def _to_tensor(values: list, spec, name: str):
    """One input's values -> its tensor. A ``[batch, None]`` string input (a multivalued feature of
    ``predict_raw``) takes a list of values per row, of any length: rows are padded with ``""``
    (no value) to the longest, so a client need not pad as TF Serving's own REST API wants."""
    import tensorflow as tf
    if spec.shape.rank == 2 and spec.dtype == tf.string:
        if not all(isinstance(v, list) for v in values):
            raise RequestError(f"input {name!r} is multivalued: give a list of values per row, e.g. [\"a\", \"b\"] "
                               "or [] for none")
        from trainer.export import padded_matrix
        return tf.constant(padded_matrix([[_as_bytes(x, name) for x in v] for v in values]), dtype=tf.string)
    try:
        if spec.dtype == tf.string:
            values = [_as_bytes(v, name) for v in values]
            return tf.constant(values, dtype=tf.string, shape=[len(values)])
        return tf.constant(np.asarray(values, dtype=spec.dtype.as_numpy_dtype).reshape([len(values)]))
    except (ValueError, TypeError) as err:
        raise RequestError(f"input {name!r}: {_short(err)}") from None


def _as_bytes(value, name: str) -> bytes:
    if value is None or isinstance(value, (list, dict)):
        raise RequestError(f"input {name!r}: expected a string or a number, got a {type(value).__name__}")
    return value if isinstance(value, bytes) else str(value).encode()


def _response(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    if not row_format:
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
    batch = len(next(iter(outputs.values()))) if outputs else 0
    return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(batch)]}


def _short(err: Exception) -> str:
    """The line of a (TensorFlow) error that tells the client what was wrong."""
    lines = [ln.strip() for ln in str(getattr(err, "message", err)).splitlines() if ln.strip()]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    useful = [ln for ln in lines if not ln.startswith(noise)]
    return ((useful or lines or [type(err).__name__])[0])[:500]


def load_models(model_dirs: list[str]) -> dict[str, dict[int, ServedModel]]:
    """{model name: {version: ServedModel}} from model base directories (name = directory name)."""
    models: dict[str, dict[int, ServedModel]] = {}
    for d in model_dirs:
        base = Path(d)
        if (base / "saved_model.pb").is_file():
            base, found = base.parent, [int(base.name)]
        else:
            found = versions(base)
        if not found:
            raise FileNotFoundError(f"{d}: no SavedModel versions found")
        models[base.name] = {v: ServedModel.load(base.name, base / str(v)) for v in found}
        log.info("loaded model %r versions %s from %s", base.name, found, base)
    return models


def dump(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))
