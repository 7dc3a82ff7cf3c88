"""Serving pieces without Ray: config checks and startup errors, fusion, input validation, output presentation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fas.config import ConfigError
from fas.data.faces import encode_image
from fas.serve.config import FusionConfig, LimitsConfig, ModelCard, ModelEntry, load_model_card, parse_app_config
from fas.serve.pipeline import fuse, fused_threshold, present
from fas.serve.validation import BadInput, check_image, image_from_json


def card(name: str, threshold: float, weight: float = 1.0) -> ModelCard:
    return ModelCard(name, "/x", "m", "m-0", threshold, "dev_eer", "face", weight, None)


def test_missing_model_folder_names_it_and_says_what_to_run(tmp_path):
    with pytest.raises(ConfigError, match=r"runs/quickstart/models/pdle.*fas quickstart"):
        load_model_card(ModelEntry(name="pdle", path="runs/quickstart/models/pdle"))


def test_missing_metrics_needs_a_threshold(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "model_config.json").write_text(json.dumps({"method": "clipc8", "categories": ["real", "print"]}))
    with pytest.raises(ConfigError, match="metrics.json is missing"):
        load_model_card(ModelEntry(name="m", path=str(tmp_path)))
    got = load_model_card(ModelEntry(name="m", path=str(tmp_path), threshold=0.7))
    assert (got.threshold, got.threshold_rule, got.categories) == (0.7, "config", ("real", "print"))
    assert got.version.startswith("clipc8-") and len(got.version) == len("clipc8-") + 12
    (tmp_path / "metrics.json").write_text(json.dumps({"threshold": 0.3, "threshold_rule": "dev_bpcer:0.05"}))
    assert load_model_card(ModelEntry(name="m", path=str(tmp_path))).threshold_rule == "dev_bpcer:0.05"


@pytest.mark.parametrize("args, message", [
    ({}, "at least one model"),
    ({"models": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}, "unique"),
    ({"models": [{"name": "a b", "path": "x"}]}, "must match"),
    ({"models": [{"name": "a", "path": "x", "input": "crop"}]}, "input"),
    ({"models": [{"name": "a", "path": "x", "max_batch_size": 16, "deployment": {"max_ongoing_requests": 8}}]},
     "max_ongoing_requests"),
    ({"models": [{"name": "a", "path": "x"}], "fusion": {"rule": "max"}}, "fusion.rule"),
    ({"models": [{"name": "a", "path": "x"}], "face": {"detector": "none", "no_face": "reject"}}, "detector 'none'"),
    ({"models": [{"name": "a", "path": "x"}], "limits": {"max_byte": 1}}, "unknown keys"),
])
def test_config_errors(args, message):
    with pytest.raises(ConfigError, match=message):
        parse_app_config(args)


def test_fusion_rules_and_thresholds():
    cards = {"a": card("a", 0.4, weight=1.0), "b": card("b", 0.7, weight=3.0)}
    results = {"a": {"score": 0.2}, "b": {"score": 1.0}}
    mean = fuse(results, cards, FusionConfig(rule="mean"))
    assert mean["score"] == pytest.approx(0.6) and mean["threshold"] == pytest.approx(0.55) and mean["live"]
    assert mean["models"]["a"]["live"] is False and mean["models"]["b"]["live"] is True
    weighted = fuse(results, cards, FusionConfig(rule="weighted_mean"))
    assert weighted["score"] == pytest.approx(0.8) and weighted["threshold"] == pytest.approx(0.625)
    fixed = fuse(results, cards, FusionConfig(rule="mean", threshold=0.65))
    assert fixed["threshold"] == 0.65 and not fixed["live"]
    assert fused_threshold(list(cards.values()), FusionConfig(rule="weighted_mean")) == pytest.approx(0.625)


def test_present_names_classes_and_keeps_extras():
    out = {"score": np.array([0.9]), "category": np.array([1]), "probs": np.array([[0.25, 0.75]]),
           "levels": np.array([[0.1, 0.9]])}
    row = present(out, 0, ("real", "print"))
    assert row == {"score": 0.9, "category": "print", "probs": {"real": 0.25, "print": 0.75}, "levels": [0.1, 0.9]}
    assert present({"score": np.array([0.5])}, 0, None) == {"score": 0.5}


def test_check_image_orders_cheap_checks_first(astronaut_rgb):
    limits = LimitsConfig(max_bytes=50, max_pixels=100, min_side=1)
    with pytest.raises(BadInput) as too_large:  # byte limit first: the header is never parsed
        check_image(encode_image(astronaut_rgb), limits)
    assert too_large.value.status == 413 and too_large.value.code == "too_large"
    info = check_image(encode_image(astronaut_rgb), LimitsConfig())
    assert (info.format, info.width, info.height) == ("JPEG", 512, 512)


def test_json_image_accepts_wrapped_base64_and_data_urls():
    import base64

    data = bytes(range(200))
    assert image_from_json(json.dumps({"image": base64.encodebytes(data).decode()}).encode()) == data
    assert image_from_json(json.dumps({"image": "data:image/png;base64," + base64.b64encode(data).decode()})) == data


@pytest.mark.parametrize("name,models", [
    ("config.yaml", [("clipc8", "runs/quickstart/models/clipc8")]),
    ("config_fused.yaml", [("clipc8", "runs/quickstart/models/clipc8"), ("pdle", "runs/quickstart/models/pdle"),
                           ("agfas", "runs/quickstart/models/agfas")])])
def test_repo_serve_configs_are_valid(name, models):
    """serve/*.yaml pass Serve's own schema and our builder's config checks (model folders aside); the default
    serves what the default quickstart trains."""
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    doc = yaml.safe_load((Path(__file__).parent.parent / "serve" / name).read_text())
    ServeDeploySchema.model_validate(doc)
    (app,) = doc["applications"]
    cfg = parse_app_config(app["args"])
    assert app["import_path"] == "fas.serve.app:build_app" and doc["http_options"]["host"] == "127.0.0.1"
    assert [(m.name, m.path) for m in cfg.models] == models


def private_deployments(monkeypatch):
    """A private copy of fas.serve.deployments for calling a replica class in-process: the batch queue made here
    holds a weakref that would make the real class unpicklable for the Serve deployments of later tests."""
    import importlib.util

    import fas.serve.deployments

    spec = importlib.util.spec_from_file_location("deployments_copy", fas.serve.deployments.__file__)
    deployments = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deployments)
    monkeypatch.setattr(deployments, "match_torch_threads", lambda: 1)  # no Ray worker here to read CPUs from
    # @serve.batch reads the replica's max_ongoing_requests only to warn; there is no replica here
    monkeypatch.setattr("ray.serve.batching._BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests",
                        lambda self: None)
    return deployments


def test_model_server_scores_a_lone_call_at_once_and_batches_a_burst(tmp_path, monkeypatch, astronaut_rgb):
    """Idle replica: the call is scored alone, without waiting for a batch; calls that arrive while it runs
    meet in one batch (the batch wait here is long, so only the bypass can answer the first call alone)."""
    import asyncio

    from tests.test_serve import build_pdle_folder

    deployments = private_deployments(monkeypatch)
    build_pdle_folder(tmp_path, seed=0)
    (tmp_path / "metrics.json").write_text(json.dumps({"threshold": 0.5}))
    server = deployments.ModelServer.func_or_class(load_model_card(ModelEntry(name="m", path=str(tmp_path))), 4, 0.3)
    calls, predict = [], server.predictor.predict
    monkeypatch.setattr(server.predictor, "predict", lambda images: calls.append(len(images)) or predict(images))
    crop = encode_image(astronaut_rgb[:128, :128])

    async def scenario():
        alone = await server(crop)
        return alone, await asyncio.gather(*(server(crop) for _ in range(4)))

    alone, burst = asyncio.run(scenario())
    assert alone["batch_size"] == 1 and [r["batch_size"] for r in burst] == [1, 3, 3, 3]
    assert calls == [1, 1, 3] and server.in_flight == 0
    assert [r["score"] for r in burst] == pytest.approx([alone["score"]] * 4, abs=1e-6)


def test_thread_local_face_gives_each_thread_its_own_detector():
    """OpenCV detectors are not thread-safe: the ingress's worker threads must not share one."""
    from concurrent.futures import ThreadPoolExecutor

    from fas.serve.config import FaceConfig
    from fas.serve.pipeline import ThreadLocalFace

    face = ThreadLocalFace(FaceConfig(detector="haar"), {"face"})
    assert face.pipeline() is face.pipeline()
    with ThreadPoolExecutor(2) as pool:
        others = list(pool.map(lambda _: id(face.pipeline()), range(2)))
    assert id(face.pipeline()) not in others


def test_model_server_explains_agfas_with_the_heatmap_of_the_cue_it_scored(tmp_path, monkeypatch, astronaut_rgb):
    """explain=True adds fas.explain's numbers and the cue heat-map (base64 PNG) of the very cue the model
    scored; the score is the one answered without explain, and without explain nothing is added."""
    import asyncio
    import base64

    from fas.cues import CueGenerator, decode_cues
    from fas.data.faces import decode_image
    from tests.test_serve import build_agfas_folder

    deployments = private_deployments(monkeypatch)
    build_agfas_folder(tmp_path, seed=0)
    (tmp_path / "metrics.json").write_text(json.dumps({"threshold": 0.5}))
    card = load_model_card(ModelEntry(name="agfas", path=str(tmp_path)))
    generator, cues = CueGenerator(card.generator, card.cue), []

    class LocalCues:  # the generator deployment's handle, in this process
        async def remote(self, image, geometry=None):
            cues.append(generator([image], None)[0])
            return cues[-1]

    server = deployments.ModelServer.func_or_class(card, 2, 0.01, LocalCues())
    crop = encode_image(astronaut_rgb[:256, 128:384])
    plain, explained = asyncio.run(server(crop)), asyncio.run(server(crop, explain=True))
    assert "explanation" not in plain and explained["score"] == pytest.approx(plain["score"], abs=1e-6)
    explanation = explained["explanation"]
    assert set(explanation["images"]) == {"cue"} and explanation["method"] == card.method
    cue = decode_cues([cues[1]])[0]
    assert explanation["cue_rms"] == pytest.approx(float(np.sqrt(np.mean(np.square(cue)))), rel=1e-5)
    heatmap = decode_image(base64.b64decode(explanation["images"]["cue"]))
    assert heatmap.shape == (cue.shape[1], cue.shape[2], 3)


def test_quality_section_of_the_app_config():
    """``quality:`` in the app config reaches the face stage and the decision band."""
    cfg = parse_app_config({"models": [{"name": "a", "path": "x"}],
                            "quality": {"min_face_px": 100, "uncertain_band": [0.4, 0.6]}})
    assert cfg.quality.min_face_px == 100 and cfg.quality.uncertain_band == [0.4, 0.6]
    with pytest.raises(ValueError, match="uncertain_band"):
        parse_app_config({"models": [{"name": "a", "path": "x"}], "quality": {"uncertain_band": [0.6, 0.4]}})


def test_a_load_phase_that_answered_nothing_has_no_ratio_and_the_table_says_so():
    """Serve answering only 500s must leave the report readable (the load job once died dividing None here)."""
    from fas.serve.load import compare, figure

    failed, local = {"req_per_s": 0.0, "p50_ms": None}, {"req_per_s": 5.0, "p50_ms": 3.0}
    assert compare(failed, local) == {"throughput_ratio": None, "p50_latency_ratio": None}
    assert compare({"req_per_s": 2.0, "p50_ms": 6.0}, local) == {"throughput_ratio": 0.4, "p50_latency_ratio": 2.0}
    assert (figure(None, 8, 1), figure(1.25, 8, 1)) == ("       -", "     1.2")
