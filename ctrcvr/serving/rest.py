"""A development REST server on aiohttp, speaking TF Serving's REST API (predict, status, metadata).

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

import numpy as np
from aiohttp import web

from ctrcvr.serving.check import versions
from ctrcvr.serving.client import padded_matrix

log = logging.getLogger(__name__)


class RequestError(ValueError):
    """A client error: reported as HTTP 400 (or ``status``) with a JSON error body."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status

_NAME = r"{name:[^/:]+}"
_VERSION = r"{version:[^/:]+}"


def make_app(models: dict[str, dict[int, ServedModel]]) -> web.Application:
    """The aiohttp application over already-loaded models."""
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_errors_as_json])
    app["models"] = models
    base, versioned = f"/v1/models/{_NAME}", f"/v1/models/{_NAME}/versions/{_VERSION}"
    app.router.add_post(base + ":predict", _predict)
    app.router.add_post(versioned + ":predict", _predict)
    app.router.add_get(base, _status)
    app.router.add_get(versioned, _status)
    app.router.add_get(base + "/metadata", _metadata)
    app.router.add_get(versioned + "/metadata", _metadata)
    return app


def serve(model_dirs: list[str], host: str = "127.0.0.1", port: int = 8501) -> None:
    """Loads the models and serves until interrupted."""
    app = make_app(load_models(model_dirs))
    names = ", ".join(app["models"])
    print(f"ctrcvr dev server (not for production; use TF Serving there): models {names} "
          f"on http://{host}:{port}/v1/models/<name>:predict", flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)


@web.middleware
async def _errors_as_json(request, handler):
    try:
        return await handler(request)
    except RequestError as err:
        return _json({"error": str(err)}, status=err.status)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        return _json({"error": err.reason}, status=err.status)
    except Exception as err:  # never die on a request
        log.exception("internal error on %s", request.path)
        return _json({"error": f"internal error: {type(err).__name__}: {err}"}, status=500)


def _model(request) -> ServedModel:
    name = request.match_info["name"]
    versions = request.app["models"].get(name)
    if not versions:
        raise RequestError(f"Servable not found for request: Latest({name})", 404)
    version = request.match_info.get("version")
    if version is None:
        return versions[max(versions)]
    if not version.isdigit() or int(version) not in versions:
        raise RequestError(f"Servable not found for request: Specific({name}, {version})", 404)
    return versions[int(version)]


async def _predict(request):
    model = _model(request)
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(f"JSON Parse error: {err}") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return _json(model.predict(body))


async def _status(request):
    name = request.match_info["name"]
    _model(request)
    wanted = request.match_info.get("version")
    listed = [v for v in request.app["models"][name] if wanted is None or str(v) == wanted]
    return _json({"model_version_status": [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in sorted(listed, reverse=True)]})


async def _metadata(request):
    return _json(_model(request).metadata())


def _json(body: dict, status: int = 200):
    return web.Response(text=dump(body), status=status, content_type="application/json")


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
