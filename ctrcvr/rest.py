"""Development REST server on aiohttp, speaking TF Serving's REST API (predict, status, metadata).

For developing and testing clients without docker. Production serving stays TF Serving.
Binds to loopback by default; every bad request gets a 4xx with ``{"error": ...}`` and the
server keeps answering.
"""
from __future__ import annotations

import json
import logging

from aiohttp import web

from ctrcvr.serving import RequestError, ServedModel, dump, load_models

log = logging.getLogger(__name__)
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
