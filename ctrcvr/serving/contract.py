"""The REST predict contract of the dev server, in one place: a request body is checked and turned into a
signature's input tensors, outputs into a response body, and every fault of the client's is a
:class:`RequestError` (HTTP 4xx, JSON ``{"error": ...}``) naming what was wrong.

A request (``POST /v1/models/<name>[/versions/<v>]:predict``) is refused with 400 when:

- the body is not a JSON object, or nests deeper than :data:`MAX_DEPTH` levels inside an input value;
- ``signature_name`` is not a string (or names no signature), or it has not exactly one of
  ``instances`` (rows) and ``inputs`` (columns), or either is empty;
- an instance or ``inputs`` lacks an input of the signature, or has a key that is not one;
- a numeric input holds a non-number (a string, ``true``, ``null``), NaN, an infinity or a value
  beyond its dtype (``1e39`` for float32);
- a string input holds ``null``, a boolean, a non-finite number or a nested list (a multivalued
  feature of ``predict_raw`` takes one flat list per row);
- a serialized ``tf.Example`` (``examples``) is not one: it fails to parse, or parses only by
  reading fields an Example does not have (random bytes, NULs), or a float feature holds NaN / inf.

Outputs are encoded as TF Serving does: numbers as JSON numbers, strings as text, and bytes (an output
named ``*_bytes``, or one that is not UTF-8) as ``{"b64": ...}``. A non-finite output is never sent
(it is not JSON): it is a 500 JSON error naming the output.
"""
from __future__ import annotations

import base64
import json
import math
from typing import Optional

import numpy as np

from ctrcvr.serving.client import padded_matrix
from ctrcvr.serving.warmup import EXAMPLES_INPUT
from transforms.errors import UserError

MAX_DEPTH = 8  # levels of lists / objects inside one input value (a multivalued b64 row needs 3)


class RequestError(UserError):
    """A client error: reported as HTTP 400 (or ``status``) with a JSON error body."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status

    def __reduce__(self):
        return type(self), (self.message, self.status)


class OutputError(RuntimeError):
    """The model answered something that cannot be sent (a non-finite value): HTTP 500, JSON error."""


def parse_body(data: bytes) -> dict:
    """The JSON object of a request body."""
    try:
        body = json.loads(data)
    except RecursionError:
        raise RequestError("JSON Parse error: the body nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise RequestError(f"JSON Parse error: {err}") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def signature_name(body: dict) -> Optional[str]:
    name = body.get("signature_name")
    if name is not None and not isinstance(name, str):
        raise RequestError(f"'signature_name' must be a string, got {_json_type(name)}")
    return name


def request_tensors(body: dict, specs: dict) -> tuple[dict, bool]:
    """({input name: tensor} for a signature's input ``specs``, whether the request is in row format)."""
    row_format = "instances" in body
    if row_format == ("inputs" in body):
        raise RequestError("the request needs exactly one of 'instances' (row) or 'inputs' (columnar)")
    columns = _rows_to_columns(body["instances"], specs) if row_format else _columnar(body["inputs"], specs)
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) > 1:
        raise RequestError(f"'inputs' lists differ in length: {sizes}")
    return {name: _to_tensor(values, specs[name], name) for name, values in columns.items()}, row_format


def response_body(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """A predict response: ``predictions`` (one object per row) or ``outputs`` (one list per output)."""
    for name, value in outputs.items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            rows = np.flatnonzero(~np.isfinite(value).reshape(len(value), -1).all(axis=1))
            raise OutputError(f"the model's output {name!r} is not finite for instance(s) {rows[:10].tolist()}")
    encoded = {name: _encode(value, name) for name, value in outputs.items()}
    if not row_format:
        return {"outputs": encoded}
    batch = len(next(iter(encoded.values()))) if encoded else 0
    return {"predictions": [{name: values[i] for name, values in encoded.items()} for i in range(batch)]}


def dump(body: dict) -> str:
    """JSON text; NaN and infinities are refused (they are not JSON)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- requests
def _rows_to_columns(instances, specs) -> dict[str, list]:
    if not isinstance(instances, list):
        raise RequestError(f"'instances' must be a list, got {_json_type(instances)}")
    if not instances:
        raise RequestError("'instances' is empty: give at least one instance")
    names = list(specs)
    if len(names) == 1 and not all(isinstance(i, dict) and names[0] in i for i in instances):
        return {names[0]: [_decode(v, names[0]) for v in instances]}
    columns: dict[str, list] = {n: [] for n in names}
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(f"instance {i} must be an object with keys {names}")
        _check_keys(instance, names, f"instance {i}")
        for n in names:
            columns[n].append(_decode(instance[n], n))
    return columns


def _columnar(inputs, specs) -> dict[str, list]:
    names = list(specs)
    if not isinstance(inputs, dict) or (len(names) == 1 and names[0] not in inputs):
        if len(names) != 1:
            raise RequestError(f"'inputs' must be an object with keys {names}")
        inputs = {names[0]: inputs}
    _check_keys(inputs, names, "'inputs'")
    columns = {}
    for n in names:
        if not isinstance(inputs[n], list):
            raise RequestError(f"input {n!r} must be a list, got {_json_type(inputs[n])}")
        if not inputs[n]:
            raise RequestError(f"input {n!r} is empty: give at least one value")
        columns[n] = [_decode(v, n) for v in inputs[n]]
    return columns


def _check_keys(given: dict, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in given]
    if missing:
        raise RequestError(f"{what} is missing input(s) {missing}")
    unknown = sorted(k for k in given if k not in names)
    if unknown:
        raise RequestError(f"{what} has unknown input(s) {unknown}; the signature takes {names}")


def _decode(value, name: str, depth: int = 0):
    """JSON -> Python values; ``{"b64": ...}`` -> bytes."""
    if depth > MAX_DEPTH:
        raise RequestError(f"input {name!r}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_decode(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise RequestError(f"input {name!r}: binary values are written {{\"b64\": ...}}; got keys "
                               f"{sorted(value)[:10]}")
        if not isinstance(value["b64"], str):
            raise RequestError(f"input {name!r}: \"b64\" must be a base64 string")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as err:
            raise RequestError(f"input {name!r}: invalid base64: {err}") from None
    return value


def _to_tensor(values: list, spec, name: str):
    """One input's values -> its tensor. A ``[batch, None]`` string input (a multivalued feature of
    ``predict_raw``) takes a list of values per row, of any length: rows are padded with ``""``
    (no value) to the longest, so a client need not pad as TF Serving's own REST API wants."""
    import tensorflow as tf
    if spec.dtype == tf.string and spec.shape.rank == 2:
        if not all(isinstance(v, list) for v in values):
            raise RequestError(f"input {name!r} is multivalued: give a list of values per row, e.g. [\"a\", \"b\"] "
                               "or [] for none")
        return tf.constant(padded_matrix([[_as_bytes(x, name, i) for x in v] for i, v in enumerate(values)]),
                           dtype=tf.string)
    if spec.shape.rank != 1:
        raise RequestError(f"input {name!r}: the dev server feeds [batch] and [batch, values] inputs only")
    if spec.dtype == tf.string:
        strings = [_as_bytes(v, name, i) for i, v in enumerate(values)]
        if name == EXAMPLES_INPUT:
            for i, data in enumerate(strings):
                _check_example(data, i)
        return tf.constant(strings, dtype=tf.string, shape=[len(strings)])
    return tf.constant(_numbers(values, spec.dtype.as_numpy_dtype, name))


def _numbers(values: list, dtype, name: str) -> np.ndarray:
    kind = "an integer" if np.issubdtype(dtype, np.integer) else "a number"
    limits = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    for i, v in enumerate(values):
        ok = isinstance(v, int) if kind == "an integer" else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok:
            raise RequestError(f"input {name!r}, instance {i}: expected {kind}, got {_json_type(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise RequestError(f"input {name!r}, instance {i}: {v} is not a finite number")
        if not limits.min <= v <= limits.max:
            raise RequestError(f"input {name!r}, instance {i}: {v} is beyond {np.dtype(dtype).name} "
                               f"(at most {limits.max:g} in magnitude)")
    return np.asarray(values, dtype=dtype)


def _as_bytes(value, name: str, row: int) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value).encode()
    raise RequestError(f"input {name!r}, instance {row}: expected a string, got {_json_type(value)}")


def _check_example(data: bytes, row: int) -> None:
    """``data`` is a serialized tf.Example: it parses, every field read is one an Example has (bytes that
    are not an Example parse, if at all, only as unknown fields), and its float values are finite."""
    from google.protobuf import message, unknown_fields
    from tensorflow.core.example import example_pb2
    try:
        example = example_pb2.Example.FromString(data)
    except message.DecodeError:
        raise RequestError(f"instance {row} is not a serialized tf.Example (it does not parse)") from None
    features = example.features.feature
    parts = [example, example.features, *features.values()]
    parts += [getattr(f, f.WhichOneof("kind")) for f in features.values() if f.WhichOneof("kind")]
    if any(len(unknown_fields.UnknownFieldSet(p)) for p in parts):
        raise RequestError(f"instance {row} is not a serialized tf.Example (it holds fields an Example has not)")
    for key, feature in features.items():
        if feature.WhichOneof("kind") == "float_list" and not np.all(np.isfinite(feature.float_list.value)):
            raise RequestError(f"instance {row}: feature {key!r} holds a non-finite value (NaN or inf)")


# --------------------------------------------------------------------------- responses
def _encode(value: np.ndarray, name: str) -> list:
    if value.dtype.kind in "OSU":
        as_bytes = name.endswith("_bytes")
        return np.vectorize(lambda v: _encode_string(v, as_bytes), otypes=[object])(value).tolist()
    return value.tolist()


def _encode_string(value, as_bytes: bool):
    data = value if isinstance(value, bytes) else str(value).encode()
    if not as_bytes:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(data).decode()}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object",
             bytes: "binary ({\"b64\"})"}
    return names.get(type(value), type(value).__name__)
