"""The video route over real HTTP on 127.0.0.1: real MP4, AVI, MOV and WebM files written with PyAV, each sampled
frame answered as the image route answers it, the video's score aggregated as evaluation aggregates, and every bad
video a 4xx with a reason.

The module fixture ``video_served`` (one Serve instance: ``/`` with two CLIPC8 models, ``/strict`` rejecting
frames without a face) is imported by tests/test_web_page.py.
"""

from __future__ import annotations

import base64
import io
import json
from collections import defaultdict
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image

from fas.data.faces import encode_image
from fas.data.video import sample_frames
from fas.eval.aggregate import aggregate_by_video
from tests.test_serve import LIMITS, METRICS, app_args, build_clipc8_folder, free_port
from fas.serve.load import serving_port

VIDEO_LIMITS = {**LIMITS, "video_max_bytes": 1_000_000, "video_max_seconds": 5.0, "video_max_frames": 100}
VIDEO_MODELS = ("clipc8_frame", "clipc8_face")  # names of tests.test_serve.MODEL_FOLDERS: input kind + weight
FRAMES = 24  # frames written per test video; the app samples VideoConfig's default (10)


# ---------------------------------------------------------------- videos written with PyAV
def face_frames(rgb: np.ndarray, count: int = FRAMES, size: int = 256) -> list[np.ndarray]:
    """The astronaut at ``size`` px, brighter frame after frame: a face in every frame, no two frames alike."""
    base = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    return [np.clip(base + 4 * i - 40, 0, 255).astype(np.uint8) for i in range(count)]


def write_frames(path: Path, frames: list[np.ndarray], codec: str, rate: int = 10, pix_fmt: str = "yuv420p") -> Path:
    """``frames`` encoded with ``codec`` into the container that ``path``'s suffix names."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


# name -> (file suffix, encoder, pixel format, FFmpeg decoder name the service reports)
FORMATS = {
    "mp4": (".mp4", "libx264", "yuv420p", "h264"),
    "avi": (".avi", "mjpeg", "yuvj420p", "mjpeg"),
    "mov": (".mov", "mpeg4", "yuv420p", "mpeg4"),
    "webm": (".webm", "libvpx-vp9", "yuv420p", "vp9"),
}


def flat(side: int, count: int) -> list[np.ndarray]:
    """Frames without a face (a grey ramp)."""
    ramp = np.tile(np.linspace(0, 255, side, dtype=np.uint8)[None, :, None], (side, 1, 3))
    return [ramp] * count


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    from skimage import data

    root = tmp_path_factory.mktemp("videos")
    frames = face_frames(data.astronaut())
    out = {name: write_frames(root / f"face{suffix}", frames, codec, pix_fmt=pix_fmt)
           for name, (suffix, codec, pix_fmt, _) in FORMATS.items()}
    out["mkv"] = write_frames(root / "face.mkv", frames[:4], "mpeg4")
    out["ffv1"] = write_frames(root / "face_ffv1.avi", frames[:4], "ffv1")
    out["too_long"] = write_frames(root / "long.mp4", flat(64, 60), "mpeg4")  # 6 s at 10 fps, over 5 s
    out["too_many_frames"] = write_frames(root / "many.webm", flat(64, 120), "libvpx", rate=30)  # 4 s, 120 > 100
    out["too_many_pixels"] = write_frames(root / "big.avi", flat(1300, 1), "mjpeg", pix_fmt="yuvj420p")
    out["too_small"] = write_frames(root / "small.avi", flat(16, 2), "mjpeg", pix_fmt="yuvj420p")
    out["no_face"] = write_frames(root / "blank.avi", flat(128, 3), "mjpeg", pix_fmt="yuvj420p")
    gif = io.BytesIO()
    Image.fromarray(frames[0]).save(gif, "GIF", save_all=True, append_images=[Image.fromarray(f) for f in frames[1:4]])
    (root / "face.gif").write_bytes(gif.getvalue())
    out["gif"] = root / "face.gif"
    return out


# ---------------------------------------------------------------- the app
def serve_video_apps(root: Path, strict: bool, models: tuple[str, ...] = VIDEO_MODELS):
    """Serve on a free loopback port: ``/`` (CLIPC8 ``models``, video limits) and, with ``strict``, ``/strict``
    (its last model; rejects frames without a face); yields the base URL, then shuts Serve down."""
    from ray import serve

    from fas.serve.app import build_app

    folders = {}
    for seed, name in enumerate(models):
        folders[name] = root / name
        folders[name].mkdir()
        build_clipc8_folder(folders[name], seed)
        (folders[name] / "metrics.json").write_text(json.dumps(METRICS))
    port = serving_port(free_port())  # the running Serve's port when one runs
    serve.run(build_app(app_args(folders, limits=VIDEO_LIMITS)), name="video", route_prefix="/")
    if strict:
        rejecting = app_args({models[-1]: folders[models[-1]]}, limits=VIDEO_LIMITS,
                             face={"detector": "haar", "size": 128, "no_face": "reject"})
        serve.run(build_app(rejecting), name="strict", route_prefix="/strict")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="module")
def video_served(ray_local, tmp_path_factory):
    yield from serve_video_apps(tmp_path_factory.mktemp("video_models"), strict=True)


def post_video(url: str, data: bytes, name: str = "clip.bin", field: str = "video") -> requests.Response:
    """The file name says nothing about the container: the service sniffs the bytes."""
    return requests.post(f"{url}/v1/liveness/video", files={field: (name, data, "application/octet-stream")},
                         timeout=120)


def post_video_json(url: str, payload) -> requests.Response:
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return requests.post(f"{url}/v1/liveness/video", data=body, headers={"Content-Type": "application/json"},
                         timeout=120)


def post_png(url: str, rgb: np.ndarray) -> dict:
    response = requests.post(f"{url}/v1/liveness", files={"image": ("frame.png", encode_image(rgb, "png"))},
                             timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def evaluation_mean(scores: list[float]) -> float:
    """What ``fas metrics --video-level`` makes of one video's frame scores."""
    return float(aggregate_by_video(pd.DataFrame({"video": "v", "label": 1, "score": scores}))["score"].iloc[0])


# ---------------------------------------------------------------- happy path
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_video_frames_are_answered_as_images(video_served, videos, fmt):
    """Each format: the frames the data plane samples, each scored as the image route scores it, aggregated."""
    response = post_video(video_served, videos[fmt].read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["video"] == {"format": fmt, "codec": FORMATS[fmt][3], "width": 256, "height": 256, "frames": FRAMES,
                             "seconds": pytest.approx(FRAMES / 10, abs=0.11), "fps": pytest.approx(10.0)}
    sampled = sample_frames(videos[fmt], 10)  # the data plane's default sampling of the same file
    assert [f["index"] for f in body["frames"]] == [i for i, _ in sampled] == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23]
    for frame, (_, rgb) in zip(body["frames"], sampled):
        image = post_png(video_served, rgb)
        assert frame["score"] == pytest.approx(image["score"], abs=1e-5)
        assert frame["face"] == image["face"] and frame["face"]["detected"]
        for name in VIDEO_MODELS:
            assert frame["models"][name]["score"] == pytest.approx(image["models"][name]["score"], abs=1e-5)
        assert frame["image"] == {"format": f"{fmt}/{FORMATS[fmt][3]}", "width": 256, "height": 256}
        assert frame["time_s"] == pytest.approx(frame["index"] / 10, abs=1e-6)
    assert len({round(f["score"], 6) for f in body["frames"]}) > 1  # the frames differ, so sampling matters
    assert body["score"] == evaluation_mean([f["score"] for f in body["frames"]])
    assert body["aggregation"] == "mean" and body["fusion"] == "weighted_mean"
    assert body["threshold"] == pytest.approx(0.5) and body["live"] == (body["score"] >= body["threshold"])
    for name, result in body["models"].items():
        assert result["score"] == evaluation_mean([f["models"][name]["score"] for f in body["frames"]])
        assert result["threshold"] == 0.5 and result["live"] == (result["score"] >= 0.5)
    assert body["model_versions"] == body["frames"][0]["model_versions"] and set(body["models"]) == set(VIDEO_MODELS)
    assert 0 < body["latency_ms"] <= response.elapsed.total_seconds() * 1000


def test_video_as_json_base64(video_served, videos):
    data = videos["avi"].read_bytes()
    by_file = post_video(video_served, data).json()
    by_json = post_video_json(video_served, {"video": base64.b64encode(data).decode()})
    assert by_json.status_code == 200, by_json.text
    assert by_json.json()["score"] == pytest.approx(by_file["score"], abs=1e-5)
    data_url = post_video_json(video_served,
                               {"video": "data:video/x-msvideo;base64," + base64.encodebytes(data).decode()})
    assert data_url.status_code == 200 and data_url.json()["score"] == pytest.approx(by_file["score"], abs=1e-5)


# ---------------------------------------------------------------- bad videos: a 4xx with a reason, never a 5xx
def _bad_cases(read: dict[str, bytes]) -> dict:
    """id -> (request sender, expected status, expected error code); ``read``: the bytes of the videos."""
    return {
        "not_a_video": (lambda u: post_video(u, b"this is a text file, not a video\n" * 200), 400, "corrupt_video"),
        "truncated_mp4": (lambda u: post_video(u, read["mp4"][: len(read["mp4"]) // 2]), 400, "corrupt_video"),
        "truncated_avi": (lambda u: post_video(u, read["avi"][: len(read["avi"]) * 6 // 10]), 400, "corrupt_video"),
        "empty_file": (lambda u: post_video(u, b""), 400, "empty_video"),
        "mkv_renamed_mp4": (lambda u: post_video(u, read["mkv"], name="clip.mp4"), 415, "unsupported_container"),
        "gif": (lambda u: post_video(u, read["gif"]), 415, "unsupported_container"),
        "png_image": (lambda u: post_video(u, encode_image(np.zeros((64, 64, 3), np.uint8), "png")), 415,
                      "unsupported_container"),
        "ffv1_codec": (lambda u: post_video(u, read["ffv1"], name="clip.avi"), 415, "unsupported_codec"),
        "too_many_bytes": (lambda u: post_video(u, b"\0" * 1_000_001), 413, "too_large"),
        "body_over_cap": (lambda u: post_video_json(u, {"video": "A" * 1_500_000}), 413, "too_large"),
        "too_long": (lambda u: post_video(u, read["too_long"]), 413, "too_long"),
        "too_many_frames": (lambda u: post_video(u, read["too_many_frames"]), 413, "too_many_frames"),
        "too_many_pixels": (lambda u: post_video(u, read["too_many_pixels"]), 413, "too_many_pixels"),
        "too_small": (lambda u: post_video(u, read["too_small"]), 422, "too_small"),
        "text_plain": (lambda u: requests.post(f"{u}/v1/liveness/video", data=read["avi"], timeout=60,
                                               headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        "image_field": (lambda u: post_video(u, read["avi"], field="image"), 400, "missing_video"),
        "json_missing_video": (lambda u: post_video_json(u, {"image": "AAAA"}), 400, "missing_video"),
        "malformed_json": (lambda u: post_video_json(u, '{"video": "abc'), 400, "malformed_json"),
        "bad_base64": (lambda u: post_video_json(u, {"video": "not*base64!"}), 400, "bad_base64"),
    }


BAD_CASES = list(_bad_cases(defaultdict(bytes)))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_video_is_a_4xx_with_reason(video_served, videos, case):
    send, status, code = _bad_cases({name: path.read_bytes() for name, path in videos.items()})[case]
    response = send(video_served)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == code and response.json()["detail"]


def test_frame_without_face_refused_when_configured(video_served, videos):
    response = post_video(f"{video_served}/strict", videos["no_face"].read_bytes())
    assert response.status_code == 422 and response.json()["error"] == "no_face"
    assert response.json()["detail"].startswith("frame 0: ")
    assert post_video(f"{video_served}/strict", videos["avi"].read_bytes()).status_code == 200


def test_openapi_documents_the_video_route(video_served):
    spec = requests.get(f"{video_served}/openapi.json", timeout=30).json()
    route = spec["paths"]["/v1/liveness/video"]["post"]
    content = route["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json"}
    assert all(c["schema"]["required"] == ["video"] for c in content.values())
    assert {"200", "400", "413", "415", "422"} <= set(route["responses"])
    assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/VideoResponse")


def test_video_defaults_follow_the_data_plane_and_evaluation():
    from fas.config import ConfigError
    from fas.data.cache import PrepareConfig
    from fas.serve.config import VideoConfig, parse_app_config

    assert VideoConfig().frames == PrepareConfig().frames and VideoConfig().aggregation == "mean"
    models = [{"name": "m", "path": "/nowhere"}]
    with pytest.raises(ConfigError, match="video.aggregation"):
        parse_app_config({"models": models, "video": {"aggregation": "mode"}})
    with pytest.raises(ConfigError, match="video.frames"):
        parse_app_config({"models": models, "video": {"frames": 0}})
