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

import dataclasses
import errno
import logging
import socket
from pathlib import Path
from typing import Any, Optional

from aiohttp import web

from ctrcvr.serving.check import versions
from ctrcvr.serving.contract import (OutputError, RequestError, dump, parse_body, request_tensors, response_body,
                                     signature_name)
from transforms.errors import UserError

log = logging.getLogger(__name__)

# aiohttp answers a request line or header beyond these limits itself, before any middleware, with a
# plain-text 400 (its low-level parser has no hook for the body): they are set high enough that such a
# request is never a real client's. Within them, a long URL is routed (a JSON 404) and many headers are
# read as usual.
HTTP_LIMITS = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024, "max_headers": 1024}

_NAME = r"{name:[^/:]+}"
_VERSION = r"{version:[^/:]+}"


def make_app(models: dict[str, dict[int, ServedModel]]) -> web.Application:
    """The aiohttp application over already-loaded models."""
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_errors_as_json],
                          handler_args=HTTP_LIMITS)
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
    """Loads the models and serves until interrupted. The address is taken first, so a port in use
    fails at once (a :class:`UserError` naming host:port), before the models are loaded."""
    sock = listen(host, port)
    try:
        app = make_app(load_models(model_dirs))
    except BaseException:
        sock.close()
        raise
    names = ", ".join(app["models"])
    print(f"ctrcvr dev server (not for production; use TF Serving there): models {names} "
          f"on http://{host}:{port}/v1/models/<name>:predict", flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port; an address in use, a host that does not resolve or a port one may
    not bind is a :class:`UserError` naming host:port."""
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        if sock is not None:
            sock.close()
        reason = ("the address is already in use (is a server running there? choose another --port)"
                  if err.errno == errno.EADDRINUSE else err.strerror or str(err))
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


@web.middleware
async def _errors_as_json(request, handler):
    try:
        return await handler(request)
    except RequestError as err:
        return _json({"error": str(err)}, status=err.status)
    except OutputError as err:
        log.error("%s on %s", err, request.path)
        return _json({"error": str(err)}, status=500)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        detail = err.text if err.text and not err.text.startswith(f"{err.status}:") else err.reason
        return _json({"error": detail}, status=err.status)  # e.g. 413 names the size limit
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
    return _json(model.predict(parse_body(await request.read())))


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
        """A TF Serving REST predict body -> its response body (the checks: :mod:`ctrcvr.serving.contract`)."""
        import tensorflow as tf
        fn = self.signature(signature_name(body))
        tensors, row_format = request_tensors(body, fn.structured_input_signature[1])
        try:
            outputs = {k: v.numpy() for k, v in fn(**tensors).items()}
        except (tf.errors.InvalidArgumentError, ValueError) as err:  # e.g. a feature of the wrong type
            raise RequestError(_short(err)) from None
        return response_body(outputs, row_format)

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


def load_models(model_dirs: list[str]) -> dict[str, dict[int, ServedModel]]:
    """{model name: {version: ServedModel}} from model base directories (name = directory name)."""
    models: dict[str, dict[int, ServedModel]] = {}
    for d in model_dirs:
        base = Path(d)
        if (base / "saved_model.pb").is_file():
            base, found = base.parent, [int(base.name)]
        else:
            found = versions(base) if base.is_dir() else []
        if not found:
            what = "no such directory" if not base.exists() else "no SavedModel versions found"
            raise UserError(f"{what} (expected <model base>/<integer version>/saved_model.pb)", file=d)
        models[base.name] = {v: ServedModel.load(base.name, base / str(v)) for v in found}
        log.info("loaded model %r versions %s from %s", base.name, found, base)
    return models




def _short(err: Exception) -> str:
    """The line of a (TensorFlow) error that tells the client what was wrong."""
    lines = [ln.strip() for ln in str(getattr(err, "message", err)).splitlines() if ln.strip()]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    useful = [ln for ln in lines if not ln.startswith(noise)]
    return ((useful or lines or [type(err).__name__])[0])[:500]
