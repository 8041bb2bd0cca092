"""The dev server's REST error contract, on a corpus of malformed requests (``ctrcvr.serving.contract``):
each gets its exact 4xx status and a JSON body whose ``error`` names the problem, never a 500 or a
NaN, and the server answers a valid request right after. One server for the whole file."""
import base64
import http.client
import json
import math
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from ctrcvr.serving.contract import OutputError, RequestError, dump, parse_body, response_body
from tests.rest_client import post

PREDICT = "/v1/models/esmm:predict"


def _example(**features) -> bytes:
    example = tf.train.Example()
    for name, value in features.items():
        feature = example.features.feature[name]
        if isinstance(value, float):
            feature.float_list.value.append(value)
        else:
            feature.bytes_list.value.append(value.encode())
    return example.SerializeToString()


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


GOOD = {"instances": [_b64(_example(user_id="5", item_price=12.5))]}
RAW = {"user_id": "5", "item_id": "7", "item_price": 12.5, "device": "ios", "user_age": "2", "user_gender": "1",
       "user_city": "3", "item_category": "4", "item_brand": "5", "position": "1", "hour": "9"}


def _raw(**changes) -> dict:
    instance = {**RAW, **changes}
    return {"signature_name": "predict_raw", "instances": [{k: v for k, v in instance.items() if v is not ...}]}


def _raw_text(replace: str) -> bytes:
    """A predict_raw body whose item_price is the JSON token ``replace`` (NaN, Infinity: not JSON)."""
    return json.dumps(_raw(item_price=0.5)).replace("0.5", replace).encode()


def _deep(levels: int) -> bytes:
    return b'{"instances": ' + b"[" * levels + b"]" * levels + b"}"


MALFORMED = [  # (id, path, body, status, a part of the error)
    ("not-json", PREDICT, b"{not json", 400, "JSON Parse error"),
    ("empty-body", PREDICT, b"", 400, "JSON Parse error"),
    ("not-utf8", PREDICT, b"\xff\xfe{}", 400, "JSON Parse error"),
    ("body-a-list", PREDICT, [1, 2], 400, "must be a JSON object"),
    ("signature-a-list", PREDICT, {**GOOD, "signature_name": ["serving_default"]}, 400,
     "'signature_name' must be a string, got a list"),
    ("signature-a-number", PREDICT, {**GOOD, "signature_name": 5}, 400, "'signature_name' must be a string"),
    ("signature-unknown", PREDICT, {**GOOD, "signature_name": "nope"}, 400, '"nope" not found'),
    ("instances-and-inputs", PREDICT, {**GOOD, "inputs": GOOD["instances"]}, 400, "exactly one of"),
    ("neither", PREDICT, {}, 400, "exactly one of"),
    ("instances-empty", PREDICT, {"instances": []}, 400, "'instances' is empty"),
    ("inputs-empty", PREDICT, {"inputs": []}, 400, "'examples' is empty"),
    ("instances-an-object", PREDICT, {"instances": GOOD["instances"][0]}, 400, "'instances' must be a list"),
    ("nested-900", PREDICT, _deep(900), 400, "nested deeper than 8 levels"),
    ("nested-100000", PREDICT, _deep(100_000), 400, "nests too deeply"),
    ("b64-invalid", PREDICT, {"instances": [{"b64": "***"}]}, 400, "invalid base64"),
    ("b64-extra-key", PREDICT, {"instances": [{"b64": "AA==", "x": 1}]}, 400, 'binary values are written {"b64"'),
    ("b64-a-number", PREDICT, {"instances": [{"b64": 5}]}, 400, '"b64" must be a base64 string'),
    ("example-nuls", PREDICT, {"instances": [_b64(b"\0" * 1_000_000)]}, 400, "not a serialized tf.Example"),
    ("example-text", PREDICT, {"instances": ["hello world"]}, 400, "not a serialized tf.Example"),
    ("example-unknown-field", PREDICT, {"instances": [_b64(b"\x10\x01")]}, 400, "fields an Example has not"),
    ("example-nan", PREDICT, {"instances": [_b64(_example(item_price=math.nan))]}, 400,
     "feature 'item_price' holds a non-finite value"),
    ("example-inf", PREDICT, {"instances": [_b64(_example(item_price=math.inf))]}, 400,
     "feature 'item_price' holds a non-finite value"),
    ("example-wrong-type", PREDICT, {"instances": [_b64(_example(user_id=1.0))]}, 400, "user_id"),
    ("example-null", PREDICT, {"instances": [None]}, 400, "expected a string, got null"),
    ("example-boolean", PREDICT, {"instances": [True]}, 400, "expected a string, got a boolean"),
    ("raw-null", PREDICT, _raw(item_price=None), 400, "input 'item_price', instance 0: expected a number, got null"),
    ("raw-nan", PREDICT, _raw_text("NaN"), 400, "input 'item_price', instance 0: nan is not a finite number"),
    ("raw-inf", PREDICT, _raw_text("-Infinity"), 400, "input 'item_price', instance 0: -inf is not a finite"),
    ("raw-beyond-float32", PREDICT, _raw(item_price=1e39), 400, "input 'item_price', instance 0: 1e+39 is beyond float32"),
    ("raw-string-number", PREDICT, _raw(item_price="12.5"), 400, "input 'item_price', instance 0: expected a number"),
    ("raw-boolean-number", PREDICT, _raw(item_price=True), 400, "expected a number, got a boolean"),
    ("raw-missing", PREDICT, _raw(device=...), 400, "instance 0 is missing input(s) ['device']"),
    ("raw-unknown-key", PREDICT, _raw(colour="red"), 400, "instance 0 has unknown input(s) ['colour']"),
    ("raw-string-null", PREDICT, _raw(user_id=None), 400, "input 'user_id', instance 0: expected a string, got null"),
    ("raw-string-a-list", PREDICT, _raw(user_id=["5"]), 400, "input 'user_id', instance 0: expected a string"),
    ("raw-columns-differ", PREDICT, {"signature_name": "predict_raw",
                                     "inputs": {**{k: [v] for k, v in RAW.items()}, "hour": ["1", "2"]}},
     400, "'inputs' lists differ in length"),
    ("raw-columns-unknown", PREDICT, {"signature_name": "predict_raw",
                                      "inputs": {**{k: [v] for k, v in RAW.items()}, "colour": ["red"]}},
     400, "'inputs' has unknown input(s) ['colour']"),
    ("raw-inputs-a-list", PREDICT, {"signature_name": "predict_raw", "inputs": [1]}, 400,
     "'inputs' must be an object"),
    ("model-unknown", "/v1/models/missing:predict", GOOD, 404, "Servable not found for request: Latest(missing)"),
    ("version-unknown", "/v1/models/esmm/versions/1:predict", GOOD, 404, "Specific(esmm, 1)"),
    ("version-not-a-number", "/v1/models/esmm/versions/abc:predict", GOOD, 404, "Specific(esmm, abc)"),
    ("no-such-route", "/v1/nothing", GOOD, 404, "Not Found"),
]


@pytest.mark.parametrize("path, body, status, error", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_request_gets_its_4xx_and_a_json_error_naming_it(server, path, body, status, error):
    answer = post(server + path, body)
    assert answer[0] == status and error in answer[1]["error"], answer
    assert _still_answers(server)


def _still_answers(server) -> bool:
    status, body = post(server + PREDICT, GOOD)
    return status == 200 and 0 < body["predictions"][0]["pctr"] < 1


def test_the_corpus_is_large_enough():
    assert len(MALFORMED) >= 20 and len({m[0] for m in MALFORMED}) == len(MALFORMED)


def test_transform_features_answers_with_strings_as_text(server):
    status, body = post(server + PREDICT, {"signature_name": "transform_features", **GOOD})
    assert status == 200, body
    row = body["predictions"][0]
    assert row["user_id"] == "5" and isinstance(row["user_id_xf"], int) and isinstance(row["item_price_xf"], float)
    status, body = post(server + PREDICT, {"signature_name": "transform_features", "inputs": GOOD["instances"]})
    assert status == 200 and body["outputs"]["user_id"] == ["5"]


def test_an_empty_example_is_an_example_and_takes_the_defaults(server):
    status, body = post(server + PREDICT, {"instances": [_b64(b"")]})
    assert status == 200 and 0 < body["predictions"][0]["pctr"] < 1


def _raw_http(server, method: str, path: str, headers=None):
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_long_urls_many_headers_and_wrong_methods_get_json(server):
    status, kind, body = _raw_http(server, "GET", "/v1/models/esmm/" + "x" * 20_000)
    assert (status, json.loads(body)) == (404, {"error": "Not Found"}) and kind.startswith("application/json")
    status, _, body = _raw_http(server, "GET", "/v1/models/esmm", {f"X-Header-{i}": "v" for i in range(200)})
    assert status == 200 and json.loads(body)["model_version_status"]
    status, kind, body = _raw_http(server, "GET", PREDICT)
    assert status == 405 and json.loads(body)["error"] == "Method Not Allowed"
    # beyond aiohttp's (raised) limits its parser answers before the app: 400, plain text (rest.HTTP_LIMITS)
    status, _, _ = _raw_http(server, "GET", "/v1/models/esmm/" + "x" * 70_000)
    assert status == 400 and _still_answers(server)


# ---------------------------------------------------------------- the contract in process (no server)
def test_a_non_finite_output_is_a_server_error_never_a_nan_in_json():
    with pytest.raises(OutputError, match=r"output 'pctr' is not finite for instance\(s\) \[1\]"):
        response_body({"pctr": np.array([0.5, np.nan], np.float32)}, row_format=True)
    with pytest.raises(ValueError):
        dump({"x": math.nan})


def test_outputs_are_encoded_as_tf_serving_does():
    outputs = {"id": np.array([b"a", b"\xff"], object), "key_bytes": np.array([b"a", b"b"], object),
               "n": np.array([1, 2]), "p": np.array([0.5, 0.25], np.float32)}
    assert response_body(outputs, row_format=False) == {"outputs": {
        "id": ["a", {"b64": "/w=="}], "key_bytes": [{"b64": "YQ=="}, {"b64": "Yg=="}], "n": [1, 2], "p": [0.5, 0.25]}}
    assert response_body(outputs, row_format=True)["predictions"][1] == {
        "id": {"b64": "/w=="}, "key_bytes": {"b64": "Yg=="}, "n": 2, "p": 0.25}


def test_request_errors_are_user_errors_that_survive_pickling():
    import pickle
    with pytest.raises(RequestError) as err:
        parse_body(b"[]")
    copy = pickle.loads(pickle.dumps(err.value))
    assert (str(copy), copy.status) == ("the request body must be a JSON object", 400)
    assert isinstance(err.value, ValueError)
