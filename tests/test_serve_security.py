"""API keys, request ids, overload, quality warnings, the three-way decision and explanations of the liveness
endpoint: a real Serve application on 127.0.0.1 (one tiny CLIPC8 model), plus the pieces without Ray.

The application has keys from a keys file and from an environment variable, an uncertain band that holds every
score, and a model deployment that takes one call at a time with a queue of one, so that a burst overflows it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from PIL import Image

from fas.config import ConfigError
from fas.data.faces import decode_image, encode_image
from fas.quality import CODES, QualityConfig
from fas.serve.auth import ApiKeys, hash_key, main, read_keys_file, route_path, warn_if_exposed
from fas.serve.config import AuthConfig, FaceConfig, parse_app_config
from fas.serve.pipeline import FacePipeline
from fas.serve.validation import BadInput
from tests.test_serve import METRICS, TINY_CPU, build_clipc8_folder, free_port
from fas.serve.load import serving_port

FILE_KEY = "file-key-0123456789"
ENV_KEYS = ("env-key-one", "env-key-two")
ENV_NAME = "FAS_TEST_SECURITY_KEYS"
RETRY_AFTER_S = 2


# ---------------------------------------------------------------- pieces without Ray
def test_keys_file_holds_digests_and_comments(tmp_path):
    file = tmp_path / "keys.txt"
    file.write_text(f"# service keys\n\n{hash_key(FILE_KEY)}  # the web page\n{hash_key('other').upper()[7:]}\n")
    with pytest.raises(ConfigError, match=r"keys.txt:4 is not 'sha256:<64 hex digits>'"):
        read_keys_file(file)  # a digest without its prefix is refused like a plain key
    file.write_text(f"# service keys\n\n{hash_key(FILE_KEY)}  # the web page\n")
    assert read_keys_file(file) == [hashlib.sha256(FILE_KEY.encode()).digest()]
    file.write_text("a-plain-key\n")
    with pytest.raises(ConfigError, match=r"keys.txt:1 .*never plain keys"):
        read_keys_file(file)
    with pytest.raises(ConfigError, match="does not exist"):
        read_keys_file(tmp_path / "missing.txt")


def test_keys_from_file_and_environment_are_checked(tmp_path):
    file = tmp_path / "keys.txt"
    file.write_text(hash_key(FILE_KEY) + "\n")
    keys = ApiKeys.load(AuthConfig(api_keys_file=str(file), api_keys_env="K"), {"K": " a-key , ,b-key "})
    assert len(keys.digests) == 3 and keys.enabled
    for good in ({"authorization": f"Bearer {FILE_KEY}"}, {"x-api-key": "a-key"}, {"authorization": "bearer b-key"}):
        keys.check(good)
    cases = [({}, 401, "missing_api_key"), ({"authorization": "Basic abc"}, 401, "bad_authorization"),
             ({"authorization": "Bearer "}, 401, "bad_authorization"), ({"x-api-key": "c-key"}, 403, "invalid_api_key")]
    for headers, status, code in cases:
        with pytest.raises(BadInput) as error:
            keys.check(headers)
        assert (error.value.status, error.value.code) == (status, code)
    ApiKeys.load(AuthConfig(api_keys_env="K"), {}).check({})  # no key configured: open


def test_key_helper_prints_the_line_of_a_key(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(FILE_KEY + "\n"))
    assert main(["-"]) == 0
    assert capsys.readouterr().out.strip() == "sha256:" + hashlib.sha256(FILE_KEY.encode()).hexdigest()
    assert main([]) == 0
    key, line = (row.split(":", 1)[1].strip() for row in capsys.readouterr().out.splitlines())
    assert line == hash_key(key) and len(key) >= 40


def test_loud_warning_only_when_exposed_without_keys(monkeypatch):
    from fas.serve import auth

    said = []
    monkeypatch.setattr(auth.log, "warning", lambda *args: said.append(args[0] % args[1:]))
    keyed = ApiKeys((b"x" * 32,))
    assert [warn_if_exposed(h, k, AuthConfig()) for h, k in [("127.0.0.1", ApiKeys()), ("localhost", ApiKeys()),
                                                             ("::1", ApiKeys()), (None, ApiKeys()),
                                                             ("0.0.0.0", keyed)]] == [False] * 5
    assert warn_if_exposed("0.0.0.0", ApiKeys(), AuthConfig()) and len(said) == 1
    assert "0.0.0.0" in said[0] and "FAS_API_KEYS" in said[0]


def test_route_path_strips_the_route_prefix():
    assert route_path({"path": "/strict/v1/liveness", "root_path": "/strict"}) == "/v1/liveness"
    assert route_path({"path": "/v1/liveness", "root_path": ""}) == "/v1/liveness"
    assert route_path({"path": "/stricter/v1/x", "root_path": "/strict"}) == "/stricter/v1/x"


def test_overload_settings_are_checked():
    with pytest.raises(ConfigError, match="overload.max_queued_requests"):
        parse_app_config({"models": [{"name": "a", "path": "x"}], "overload": {"max_queued_requests": 0}})


# ---------------------------------------------------------------- quality warnings (the face stage, in-process)
def dark(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) * 0.15).astype(np.uint8)


def tiny_face(rgb: np.ndarray) -> np.ndarray:
    """The astronaut at half scale in the middle of a grey 512 px frame: the face is about 50 px across."""
    canvas = np.full_like(rgb, 128)
    canvas[128:384, 128:384] = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)
    return canvas


def blurred(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), 4)


def cut(rgb: np.ndarray) -> np.ndarray:
    """The frame ends just under the chin."""
    return np.ascontiguousarray(rgb[:150])


@pytest.fixture(scope="module")
def face_stage():
    return FacePipeline(FaceConfig(detector="haar", size=128), {"face"}, QualityConfig())


@pytest.mark.parametrize("transform, codes", [
    (lambda rgb: rgb, []),
    (dark, ["too_dark"]),
    (tiny_face, ["face_too_small"]),
    (blurred, ["blurred"]),
    (cut, ["face_cut_by_border"]),
    (lambda rgb: np.full_like(rgb, 250), ["no_face", "blurred", "too_bright"]),
], ids=["astronaut", "dark", "tiny_face", "blurred", "cut", "blank_bright"])
def test_face_stage_warns_about_capture_quality(face_stage, astronaut_rgb, transform, codes):
    face = face_stage.face(transform(astronaut_rgb))
    assert [w["code"] for w in face["warnings"]] == codes
    assert all(w["detail"] for w in face["warnings"])


# ---------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def secured(ray_local, tmp_path_factory):
    """One application with keys (file + environment), an uncertain band over every score and a model deployment
    that holds one call and queues one more; yields the base URL."""
    from ray import serve

    from fas.serve.app import build_app

    root = tmp_path_factory.mktemp("secured")
    build_clipc8_folder(root / "clipc8", seed=0)
    (root / "clipc8" / "metrics.json").write_text(json.dumps(METRICS))
    (root / "keys.txt").write_text(f"# test keys\n{hash_key(FILE_KEY)}\n")
    args = {"models": [{"name": "clipc8", "path": str(root / "clipc8"), "input": "frame", "max_batch_size": 1,
                        "deployment": {**TINY_CPU, "max_ongoing_requests": 1}}],
            "face": {"detector": "haar", "size": 128}, "ingress_deployment": TINY_CPU,
            "quality": {"uncertain_band": [0.0, 1.0]},
            "auth": {"api_keys_file": str(root / "keys.txt"), "api_keys_env": ENV_NAME},
            "overload": {"max_queued_requests": 1, "retry_after_s": RETRY_AFTER_S}}
    os.environ[ENV_NAME] = ",".join(ENV_KEYS)  # read when the application is built (here, in this process)
    try:
        app = build_app(args)
    finally:
        del os.environ[ENV_NAME]
    port = serving_port(free_port())  # the running Serve's port when one runs
    serve.run(app, name="secured", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="module")
def jpeg(astronaut_rgb_module) -> bytes:
    return encode_image(astronaut_rgb_module, "jpg")


@pytest.fixture(scope="module")
def astronaut_rgb_module():
    from skimage import data

    return data.astronaut()


def post(url: str, data: bytes, headers: dict | None = None, params: dict | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/liveness", files={"image": ("capture.jpg", data, "image/jpeg")},
                         headers=headers or {}, params=params, timeout=60)


BEARER = {"Authorization": f"Bearer {FILE_KEY}"}


def test_keys_guard_v1_and_leave_health_and_docs_open(secured, jpeg):
    missing = post(secured, jpeg)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"] == "missing_api_key"
    wrong = post(secured, jpeg, {"X-API-Key": "not-a-key"})
    assert wrong.status_code == 403 and wrong.json() == {"error": "invalid_api_key",
                                                         "detail": "the API key is not valid for this service"}
    for headers in (BEARER, {"X-API-Key": FILE_KEY}, {"Authorization": f"Bearer {ENV_KEYS[1]}"}):
        answer = post(secured, jpeg, headers)
        assert answer.status_code == 200, answer.text
    assert requests.get(f"{secured}/v1/models", timeout=30).status_code == 401
    assert requests.get(f"{secured}/v1/models", headers={"X-API-Key": ENV_KEYS[0]}, timeout=30).status_code == 200
    for open_path in ("/healthz", "/docs", "/openapi.json"):
        assert requests.get(f"{secured}{open_path}", timeout=30).status_code == 200


def test_request_id_is_echoed_and_logged_without_the_image(secured, jpeg, ray_local):
    mine = f"h2-{uuid.uuid4().hex}"
    answer = post(secured, jpeg, {**BEARER, "X-Request-ID": mine})
    assert answer.status_code == 200 and answer.json()["request_id"] == mine
    assert answer.headers["X-Request-ID"] == mine
    made = post(secured, jpeg, BEARER)
    assert made.json()["request_id"] == made.headers["X-Request-ID"] != mine
    assert re.fullmatch(r"[0-9a-f-]{32,36}", made.json()["request_id"])
    logs = Path(ray_local._private.worker._global_node.get_logs_dir_path()) / "serve"
    lines = [line for f in logs.glob("replica_secured_LivenessIngress_*.log") for line in f.read_text().splitlines()
             if f"request {mine}:" in line]
    assert len(lines) == 1 and "JPEG 512x512" in lines[0] and "-> uncertain" in lines[0]
    text = "".join(f.read_text() for f in logs.glob("replica_secured_*.log"))
    assert base64.b64encode(jpeg[200:260]).decode()[:40] not in text


def test_uncertain_band_and_quality_warnings_in_the_answer(secured, astronaut_rgb_module):
    image = encode_image(dark(astronaut_rgb_module), "png")
    answer = post(secured, image, BEARER)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    stage = FacePipeline(FaceConfig(detector="haar", size=128), {"face"}, QualityConfig())
    assert body["warnings"] == stage.face(decode_image(image))["warnings"]  # the served stage, same thresholds
    assert [w["code"] for w in body["warnings"]] == ["too_dark"]
    assert body["decision"] == "uncertain" and body["live"] == (body["score"] >= body["threshold"])
    assert set(CODES) >= {w["code"] for w in body["warnings"]}


def test_explanations_only_on_request(secured, jpeg):
    plain = post(secured, jpeg, BEARER).json()["models"]["clipc8"]
    assert plain["explanation"] is None
    by_query = post(secured, jpeg, BEARER, {"explain": "1"}).json()["models"]["clipc8"]
    by_json = requests.post(f"{secured}/v1/liveness", json={"image": base64.b64encode(jpeg).decode(),
                                                            "explain": True}, headers=BEARER, timeout=60)
    assert by_json.status_code == 200, by_json.text
    for result in (by_query, by_json.json()["models"]["clipc8"]):
        explanation = result["explanation"]
        assert explanation["probs"] == pytest.approx(plain["probs"], abs=1e-6)
        assert explanation["category"] == plain["category"] and explanation["method"] == "clipc8"
        assert set(explanation["images"]) == {"probs"}
        chart = Image.open(io.BytesIO(base64.b64decode(explanation["images"]["probs"])))
        assert chart.format == "PNG" and chart.size[0] == 480
    bad = post(secured, jpeg, BEARER, {"explain": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_explain"
    bad_json = requests.post(f"{secured}/v1/liveness", json={"image": base64.b64encode(jpeg).decode(),
                                                             "explain": "yes"}, headers=BEARER, timeout=60)
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "bad_explain"


def test_overload_is_a_503_with_retry_after(secured, astronaut_rgb_module):
    """One call in the model, one queued: the rest of a burst is refused at once, with a JSON reason."""
    image = encode_image(astronaut_rgb_module[::4, ::4], "png")
    answers = []
    with ThreadPoolExecutor(16) as pool:
        for _ in range(3):  # on a loaded machine a burst may reach the model spread out and never fill its queue
            answers += pool.map(lambda _: post(secured, image, BEARER), range(16))
            if any(a.status_code == 503 for a in answers):
                break
    codes = [a.status_code for a in answers]
    assert set(codes) == {200, 503}, codes
    for refused in (a for a in answers if a.status_code == 503):
        assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
        assert refused.json()["error"] == "overloaded" and "model clipc8" in refused.json()["detail"]
    assert post(secured, image, BEARER).status_code == 200  # the burst is over: answered again
