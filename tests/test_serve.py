"""The liveness endpoint over real HTTP on 127.0.0.1: the graph, every bad input, the policies, the load job.

One Serve instance per module with three applications built from tiny model folders made here: ``/`` (every
model the fixture builds, weighted fusion, answering policies, small limits), ``/strict`` (one model, the reject
policies) and ``/remote`` (one model, the face stage as a deployment of its own instead of inside the ingress).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from fas.data.faces import decode_image, detect_and_crop, encode_image, make_detector
from fas.quality import CODES
from fas.serve.config import parse_app_config
from fas.serve.bench import free_port
from fas.serve.load import serving_port

METRICS = {"threshold": 0.5, "threshold_rule": "dev_eer"}
LIMITS = {"max_bytes": 300_000, "max_pixels": 1_500_000, "min_side": 32}
TINY_CPU = {"ray_actor_options": {"num_cpus": 0.05}}


def build_clipc8_folder(folder: Path, seed: int) -> None:
    import torch

    from fas.methods.base import write_model_folder
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.model import create_clipc8
    from fas.methods.clipc8.task import portable_meta

    torch.manual_seed(seed)
    model, pre = create_clipc8("clipc8-tiny", None)
    write_model_folder(folder, model.state_dict(), portable_meta(CLIPC8Config(model="clipc8-tiny"), pre))


def build_pdle_folder(folder: Path, seed: int) -> None:
    import torch

    from fas.methods.base import write_model_folder
    from fas.methods.pdle.config import PDLEConfig
    from fas.methods.pdle.model import create_pdle
    from fas.methods.pdle.task import portable_meta

    torch.manual_seed(seed)
    cfg = PDLEConfig(model="pdle-tiny", pretrained=None, image_size=64, crop_size=56)
    write_model_folder(folder, create_pdle(cfg.model, None, cfg.num_levels).state_dict(), portable_meta(cfg))


def build_agfas_folder(folder: Path, seed: int) -> None:
    """An untrained tiny OA-Net plus the tiny generator that makes its cues (as the agfas quickstart publishes)."""
    import torch

    from fas.methods.base import write_model_folder
    from fas.methods.dfg.config import DFGConfig
    from fas.methods.dfg.generator import save_generator
    from fas.methods.dfg.model import create_generator
    from fas.methods.oanet.config import OANetConfig
    from fas.methods.oanet.model import create_oanet
    from fas.methods.oanet.task import portable_meta

    torch.manual_seed(seed)
    generator_cfg = DFGConfig(model="dfg-tiny")
    (folder / "generator").mkdir()
    save_generator(create_generator("dfg-tiny"), generator_cfg, folder / "generator")
    cfg = OANetConfig(model="oanet-tiny", pretrained=None, cue_pretrained=None,
                      cue={"generator": "generator", "noise_step": 801, "ddim_steps": 3, "seed": 0})
    write_model_folder(folder, create_oanet(cfg.model, None, cfg.mode, None).state_dict(), portable_meta(cfg))


# name -> (builder, input kind, fusion weight): every entry is served; a new method is one more line
MODEL_FOLDERS = {
    "clipc8_frame": (build_clipc8_folder, "frame", 1.0),
    "clipc8_face": (build_clipc8_folder, "face", 3.0),
    "pdle": (build_pdle_folder, "face", 1.0),
    "agfas": (build_agfas_folder, "face", 1.0),
}


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    folders = {}
    for seed, (name, (build, _, _)) in enumerate(MODEL_FOLDERS.items()):
        folders[name] = root / name
        folders[name].mkdir()
        build(folders[name], seed)
        (folders[name] / "metrics.json").write_text(json.dumps(METRICS))
    return folders


def app_args(folders: dict[str, Path], **overrides) -> dict:
    models = [{"name": n, "path": str(p), "input": MODEL_FOLDERS[n][1], "weight": MODEL_FOLDERS[n][2],
               "max_batch_size": 4, "deployment": TINY_CPU,
               # a wait long enough that a burst meets in one batch on a loaded 2-core machine
               "batch_wait_timeout_s": 0.1,
               "generator_deployment": TINY_CPU} for n, p in folders.items()]
    args = {"models": models, "face": {"detector": "haar", "size": 128}, "fusion": {"rule": "weighted_mean"},
            "limits": LIMITS, "ingress_deployment": TINY_CPU}
    args.update(overrides)
    return args


def attending_folder(folders: dict[str, Path], mask: str) -> Path:
    """A copy of the AG-FAS folder whose cross-attention reads the cue (an untrained OA-Net's output projections
    start at zero and ignore it), its cues said to be masked by ``mask`` (DFG†: ``landmarks``) or not."""
    import torch

    copy = folders["agfas"].parent / f"agfas_attending_{mask}"
    if not copy.exists():
        shutil.copytree(folders["agfas"], copy)
        state, rng = torch.load(copy / "model.pt", weights_only=True), torch.Generator().manual_seed(0)
        for key in [k for k in state if k.endswith("attn.out_proj.weight")]:
            state[key] = torch.randn(state[key].shape, generator=rng) * 0.5
        torch.save(state, copy / "model.pt")
        meta = json.loads((copy / "model_config.json").read_text())
        meta["cue"]["mask"] = mask
        (copy / "model_config.json").write_text(json.dumps(meta))
        from fas.integrity import write_checksums  # a deliberate edit: recorded as the new published state

        write_checksums(copy, ("model.pt", "model_config.json"))
    return copy


def masked_args(folders: dict[str, Path], mask: str = "landmarks") -> dict:
    """The attending AG-FAS model alone, its cues masked to the face (DFG†) or not."""
    args = app_args({"agfas": folders["agfas"]})
    args["models"][0]["path"] = str(attending_folder(folders, mask))
    return args



@pytest.fixture(scope="module")
def served(ray_local, model_folders):
    """Serve on a free loopback port with the main, the strict and the remote application; yields the base URL."""
    from ray import serve

    from fas.serve.app import build_app

    port = serving_port(free_port())  # the running Serve's port when one runs
    strict_face = {"detector": "haar", "no_face": "reject", "multiple_faces": "reject"}
    first = dict(list(model_folders.items())[:1])
    serve.run(build_app(app_args(model_folders)), name="liveness", route_prefix="/")
    serve.run(build_app(app_args(first, face=strict_face)), name="strict", route_prefix="/strict")
    # a configured fusion.deployment (no deployment any more) is accepted, as configs written before keep working
    remote = app_args(first, face={"detector": "haar", "size": 128, "deployment": TINY_CPU},
                      fusion={"rule": "weighted_mean", "deployment": TINY_CPU})
    serve.run(build_app(remote), name="remote", route_prefix="/remote")
    serve.run(build_app(masked_args(model_folders)), name="masked", route_prefix="/masked")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


# ---------------------------------------------------------------- images
def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb as seen before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def pil_bytes(rgb: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def jpeg(astronaut_rgb) -> bytes:
    return encode_image(astronaut_rgb, "jpg")


def post_file(url: str, data: bytes, field: str = "image", name: str = "capture.jpg") -> requests.Response:
    return requests.post(f"{url}/v1/liveness", files={field: (name, data, "image/jpeg")}, timeout=60)


def post_json(url: str, payload) -> requests.Response:
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return requests.post(f"{url}/v1/liveness", data=body, headers={"Content-Type": "application/json"}, timeout=60)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- happy path
def check_answer(body: dict, folders: dict, response: requests.Response | None = None) -> None:
    """The documented contract: per-model results, decision rule, fusion, versions; with the HTTP ``response``,
    the service's own latency fits inside the round trip the client saw."""
    assert set(body["models"]) == set(folders) == set(body["model_versions"])
    for name, result in body["models"].items():
        build = MODEL_FOLDERS[name][0]
        if build is build_clipc8_folder:  # the score is the probability of the bona fide category
            assert result["score"] == pytest.approx(result["probs"]["real"], abs=1e-6)
        elif build is build_pdle_folder:  # the expected liveness level, sum_i c_i p_i with c_i = 0, 1/K, ..., 1
            levels = np.asarray(result["levels"])
            assert result["score"] == pytest.approx(float(levels @ np.linspace(0.0, 1.0, len(levels))), abs=1e-5)
        else:  # OA-Net answers only its softmax probability of "real": nothing else in the answer to relate it to
            assert 0.0 <= result["score"] <= 1.0
        assert result["live"] == (result["score"] >= result["threshold"])
        assert result["input"] == MODEL_FOLDERS[name][1]
        assert body["model_versions"][name] == result["version"]
        if result["probs"] is not None:  # models with classes (CLIPC8) name them; the others answer null
            assert sum(result["probs"].values()) == pytest.approx(1.0, abs=1e-4)
            assert len(result["probs"]) == 8 and result["category"] == max(result["probs"], key=result["probs"].get)
    weights = {n: MODEL_FOLDERS[n][2] for n in folders}
    expected = sum(weights[n] * r["score"] for n, r in body["models"].items()) / sum(weights.values())
    assert body["score"] == pytest.approx(expected, abs=1e-6)
    assert body["threshold"] == pytest.approx(0.5) and body["fusion"] == "weighted_mean"
    assert body["live"] == (body["score"] >= body["threshold"])
    if response is not None:  # time in the service is part of the client's round trip
        assert 0 < body["latency_ms"] <= response.elapsed.total_seconds() * 1000
    else:
        assert body["latency_ms"] > 0
    # no uncertain band configured here: the three-way decision is the two-way one; warnings in their fixed order
    assert body["decision"] == ("live" if body["live"] else "spoof")
    codes = [w["code"] for w in body["warnings"]]
    assert codes == [c for c in CODES if c in codes] and all(w["detail"] for w in body["warnings"])
    assert (body["face"]["detected"] is False) == ("no_face" in codes)
    if response is not None:  # the request id in the answer is the one of the X-Request-ID header
        assert body["request_id"] == response.headers["X-Request-ID"]


def test_liveness_multipart_astronaut(served, model_folders, jpeg):
    response = post_file(served, jpeg)
    assert response.status_code == 200, response.text
    body = response.json()
    check_answer(body, model_folders, response)
    # the box is what the served face stage (same detector, margin and crop size) finds in this image in-process
    face = parse_app_config(app_args(model_folders)).face
    expected = detect_and_crop(make_detector(face.detector, face.detector_weights), decode_image(jpeg),
                               margin=face.margin, size=face.size, no_face="keep")
    assert expected.detected and expected.num_faces == 1
    assert body["face"] == {"detected": True, "box": [int(v) for v in expected.box], "num_faces": 1, "used": "face"}
    assert body["image"] == {"format": "JPEG", "width": 512, "height": 512}


def test_liveness_json_matches_multipart(served, model_folders, jpeg):
    by_file = post_file(served, jpeg).json()
    by_json = post_json(served, {"image": b64(jpeg)})
    assert by_json.status_code == 200, by_json.text
    check_answer(by_json.json(), model_folders, by_json)
    assert by_json.json()["score"] == pytest.approx(by_file["score"], abs=1e-5)
    data_url = post_json(served, {"image": "data:image/jpeg;base64," + base64.encodebytes(jpeg).decode()})
    assert data_url.status_code == 200 and data_url.json()["score"] == pytest.approx(by_file["score"], abs=1e-5)


def test_png_accepted(served, astronaut_rgb):
    response = post_file(served, pil_bytes(astronaut_rgb[:256, 96:352], "PNG"), name="capture.png")
    assert response.status_code == 200, response.text
    assert response.json()["image"]["format"] == "PNG" and response.json()["face"]["detected"]


# ---------------------------------------------------------------- bad input: a 4xx with a JSON reason, never a 500
def noise(side: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)


def _bad_cases(jpeg: bytes, rgb: np.ndarray) -> dict:
    """id -> (request sender, expected status, expected error code)."""
    png = encode_image(rgb, "png")
    return {
        "empty_file": (lambda u: post_file(u, b""), 400, "empty_image"),
        "empty_json_body": (lambda u: post_json(u, b""), 400, "empty_body"),
        "empty_multipart_body": (lambda u: requests.post(f"{u}/v1/liveness", data=b"", timeout=60, headers={
            "Content-Type": "multipart/form-data; boundary=x"}), 400, "empty_body"),
        "not_an_image": (lambda u: post_file(u, b"this is a text file, not an image " * 20), 400, "not_an_image"),
        "truncated_jpeg": (lambda u: post_file(u, jpeg[: len(jpeg) // 2]), 400, "corrupt_image"),
        "truncated_jpeg_tail": (lambda u: post_file(u, jpeg[:-64]), 400, "corrupt_image"),
        "truncated_png": (lambda u: post_file(u, png[: len(png) // 3]), 400, "corrupt_image"),
        "gif": (lambda u: post_file(u, pil_bytes(rgb, "GIF")), 415, "unsupported_format"),
        "tiff": (lambda u: post_file(u, pil_bytes(rgb[:128, :128], "TIFF")), 415, "unsupported_format"),
        "bmp": (lambda u: post_file(u, pil_bytes(rgb[:64, :64], "BMP")), 415, "unsupported_format"),
        "too_many_bytes": (lambda u: post_file(u, pil_bytes(noise(330), "PNG")), 413, "too_large"),
        "body_over_cap": (lambda u: post_json(u, {"image": "A" * 600_000}), 413, "too_large"),
        "too_many_pixels": (lambda u: post_file(u, encode_image(np.zeros((1300, 1300, 3), np.uint8))), 413,
                            "too_many_pixels"),
        "bomb_header": (lambda u: post_file(u, png_header(2000, 2000)), 413, "too_many_pixels"),
        "bomb_beyond_pil_limit": (lambda u: post_file(u, png_header(100_000, 100_000)), 413, "too_many_pixels"),
        "too_small": (lambda u: post_file(u, encode_image(rgb[:16, :16])), 422, "too_small"),
        "text_plain": (lambda u: requests.post(f"{u}/v1/liveness", data=jpeg, timeout=60,
                                               headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        "raw_jpeg_body": (lambda u: requests.post(f"{u}/v1/liveness", data=jpeg, timeout=60,
                                                  headers={"Content-Type": "image/jpeg"}), 415,
                          "unsupported_media_type"),
        "no_content_type": (lambda u: requests.post(f"{u}/v1/liveness", data=jpeg, timeout=60), 415,
                            "unsupported_media_type"),
        "malformed_json": (lambda u: post_json(u, '{"image": "abc'), 400, "malformed_json"),
        "json_not_object": (lambda u: post_json(u, [1, 2]), 400, "missing_image"),
        "json_missing_image": (lambda u: post_json(u, {"picture": b64(jpeg)}), 400, "missing_image"),
        "bad_base64": (lambda u: post_json(u, {"image": "not*base64!"}), 400, "bad_base64"),
        "base64_of_text": (lambda u: post_json(u, {"image": b64(b"hello there, no pixels here")}), 400,
                           "not_an_image"),
        "multipart_wrong_field": (lambda u: post_file(u, jpeg, field="photo"), 400, "missing_image"),
        "multipart_text_field": (lambda u: requests.post(f"{u}/v1/liveness", files={"image": (None, "abc")},
                                                         timeout=60), 400, "missing_image"),
        "multipart_no_boundary": (lambda u: requests.post(f"{u}/v1/liveness", data=b"--x\r\ngarbage", timeout=60,
                                                          headers={"Content-Type": "multipart/form-data"}),
                                  400, "malformed_multipart"),
        "multipart_garbage": (lambda u: requests.post(f"{u}/v1/liveness", data=b"--x\r\ngarbage", timeout=60,
                                                      headers={"Content-Type": "multipart/form-data; boundary=x"}),
                              400, "missing_image"),
    }


BAD_CASES = list(_bad_cases(b"", np.zeros((1, 1, 3), np.uint8)))


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_a_4xx_with_reason(served, jpeg, astronaut_rgb, case):
    send, status, code = _bad_cases(jpeg, astronaut_rgb)[case]
    response = send(served)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == code and response.json()["detail"]


def test_still_answers_after_bad_inputs(served, jpeg, astronaut_rgb):
    for send, _, _ in _bad_cases(jpeg, astronaut_rgb).values():
        assert send(served).status_code < 500
    assert post_file(served, jpeg).status_code == 200


# ---------------------------------------------------------------- face policies
def blank_jpeg() -> bytes:
    return encode_image(np.tile(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None], (256, 1, 3)))


def two_faces(rgb: np.ndarray) -> bytes:
    return encode_image(np.concatenate([rgb, rgb[:, ::-1]], axis=1))


def test_no_face_is_decided_on_the_whole_frame(served, model_folders):
    response = post_file(served, blank_jpeg())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["face"] == {"detected": False, "box": None, "num_faces": 0, "used": "whole_frame"}
    check_answer(body, model_folders, response)


def test_several_faces_score_the_largest(served, model_folders, astronaut_rgb):
    image = two_faces(astronaut_rgb)
    response = post_file(served, image)
    assert response.status_code == 200, response.text
    face = response.json()["face"]
    boxes = make_detector("haar").detect(decode_image(image))  # what the face stage sees
    assert face["detected"] and face["num_faces"] == len(boxes) >= 2 and face["box"] == list(boxes[0])


def test_face_stage_in_the_ingress_or_a_deployment_scores_alike(served, model_folders, jpeg):
    """The main application crops in its ingress, the remote one on a FaceStage deployment: same face, same score."""
    name = next(iter(model_folders))
    inside, deployed = post_file(served, jpeg).json(), post_file(f"{served}/remote", jpeg).json()
    assert deployed["face"] == inside["face"] and deployed["face"]["detected"]
    assert deployed["models"][name]["score"] == pytest.approx(inside["models"][name]["score"], abs=1e-6)


def test_masked_cues_are_served_masked_by_the_face_stages_box(served, model_folders, jpeg):
    """A DFG† model's cues are masked in Serve (ingress -> model replica with the face's place in its crop -> cue
    deployment) as the in-process pipeline masks them, and the mask changes the score against unmasked cues."""
    from fas.serve.load import InProcessPipeline

    answer = post_file(f"{served}/masked", jpeg)
    assert answer.status_code == 200, answer.text
    served_score = answer.json()["models"]["agfas"]["score"]
    local = InProcessPipeline(masked_args(model_folders))(jpeg)["models"]["agfas"]["score"]
    unmasked = InProcessPipeline(masked_args(model_folders, "none"))(jpeg)["models"]["agfas"]["score"]
    assert served_score == pytest.approx(local, abs=1e-5)
    assert abs(served_score - unmasked) > 1e-3, (served_score, unmasked)


def test_reject_policies(served, jpeg, astronaut_rgb):
    strict = f"{served}/strict"
    assert post_file(strict, jpeg).status_code == 200
    no_face = post_file(strict, blank_jpeg())
    assert no_face.status_code == 422 and no_face.json()["error"] == "no_face"
    several = post_file(strict, two_faces(astronaut_rgb))
    assert several.status_code == 422 and several.json()["error"] == "multiple_faces"
    # the whole-frame model's call, started before the detector refused, was cancelled; the model still answers
    assert post_file(strict, jpeg).json()["models"][next(iter(MODEL_FOLDERS))]["input"] == "frame"


# ---------------------------------------------------------------- batching, health, listing, docs
def test_concurrent_requests_are_batched(served, jpeg):
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: post_file(served, jpeg), range(24)))
    assert [r.status_code for r in responses] == [200] * 24
    sizes = [m["batch_size"] for r in responses for m in r.json()["models"].values()]
    assert max(sizes) > 1 and max(sizes) <= 4  # the configured max_batch_size
    scores = [r.json()["score"] for r in responses]
    assert max(scores) - min(scores) < 1e-5  # neither batching nor concurrency changes the answer


def test_healthz(served, model_folders):
    response = requests.get(f"{served}/healthz", timeout=30)
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and all(response.json()["deployments"].values())
    assert set(response.json()["deployments"]) == {f"model:{n}" for n in model_folders}  # face: in the ingress
    remote = requests.get(f"{served}/remote/healthz", timeout=30).json()["deployments"]
    assert set(remote) == {"face", f"model:{next(iter(model_folders))}"} and all(remote.values())


def test_models_listing(served, model_folders, jpeg):
    listing = requests.get(f"{served}/v1/models", timeout=30).json()
    versions = post_file(served, jpeg).json()["model_versions"]
    assert [m["name"] for m in listing["models"]] == list(model_folders)
    for card in listing["models"]:
        assert card["version"] == versions[card["name"]] and card["version"].startswith(card["method"] + "-")
        assert card["threshold"] == 0.5 and card["threshold_rule"] == "dev_eer"
    assert listing["fusion"] == {"rule": "weighted_mean", "threshold": pytest.approx(0.5)}
    assert listing["face"]["no_face"] == "whole_frame" and listing["limits"]["formats"] == ["JPEG", "PNG"]


def test_openapi_and_docs(served):
    spec = requests.get(f"{served}/openapi.json", timeout=30).json()
    body = spec["paths"]["/v1/liveness"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert {"/healthz", "/v1/models"} <= set(spec["paths"])
    docs = requests.get(f"{served}/docs", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# ---------------------------------------------------------------- load job, replica kill
@pytest.mark.slow
def test_load_job_survives_a_replica_kill(served, model_folders, tmp_path):
    from ray import serve

    from fas.drills.serve import RunningApp, serve_replica_killed
    from fas.serve.load import LoadConfig, run_load

    name = next(iter(model_folders))
    port = int(served.rsplit(":", 1)[1])
    cfg = LoadConfig(requests=30, concurrency=4, max_seconds=120, port=port, app_name="load", route_prefix="/load",
                     keep=True)
    report = run_load(cfg, app_args(model_folders))
    assert report["serve"]["ok"] == 30 and report["serve"]["failed"] == 0
    assert report["in_process"]["ok"] == 30
    for side in ("serve", "in_process"):  # req/s: the successful answers over the side's wall time
        assert report[side]["req_per_s"] == pytest.approx(report[side]["ok"] / report[side]["wall_s"])
    ratio = report["serve_vs_in_process"]
    assert ratio["throughput_ratio"] == pytest.approx(report["serve"]["req_per_s"] / report["in_process"]["req_per_s"])
    assert ratio["p50_latency_ratio"] == pytest.approx(report["serve"]["p50_ms"] / report["in_process"]["p50_ms"])
    # the kill phase is the serve_replica_killed drill (fas drill), run on the load job's application
    try:
        kill = serve_replica_killed(tmp_path, app=RunningApp(f"{served}/load", "load", name, None))
    finally:
        serve.delete("load")
    assert kill.figures["killed_replica"].startswith(f"SERVE_REPLICA::load#Model_{name}#")
    assert kill.figures["answers_after_kill"] and kill.figures["replaced_after_s"] is not None
    assert kill.figures["sent"] == 30 and kill.figures["failed"] == 0 and kill.passed
