"""``fas export --onnx``: onnxruntime gives PyTorch's outputs (within 1e-4) on the same frames for CLIPC8, PDLE and
OA-Net (with its generator's cues), at a batch size other than the traced one; the sidecar carries what runs
around the graph; ``fas predict --onnx`` and ``load_predictor(FILE.onnx)`` run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fas.data.faces import decode_image
from fas.data.video import sample_frames
from tests.test_predict import METRICS, build_models, face_crop, predict, write_media

METHODS = ("clipc8", "pdle", "agfas")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("export_models"))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return write_media(tmp_path_factory.mktemp("export_media"))


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory) -> dict[str, Path]:
    from fas.cli import main

    root = tmp_path_factory.mktemp("onnx")
    for name in METHODS:
        assert main(["export", str(models[name]), "--onnx", str(root / f"{name}.onnx")]) == 0
    return {name: root / f"{name}.onnx" for name in METHODS}


@pytest.fixture(scope="module")
def crops(media) -> list[bytes]:
    """Three face-stage crops (two selfies and a video frame): a batch of 3, the graph was traced with 2."""
    rgbs = [decode_image(media[k].read_bytes()) for k in ("selfie", "other")] + [sample_frames(media["video"], 1)[0][1]]
    return [face_crop(rgb)[0] for rgb in rgbs]


def columns(models, name: str, crops: list[bytes]) -> list:
    if name != "agfas":
        return [crops]
    from fas.cues import CueGenerator

    meta = json.loads((models[name] / "model_config.json").read_text())
    return [crops, CueGenerator(str(models[name] / "generator"), meta["cue"])(crops)]


@pytest.mark.parametrize("name", METHODS)
def test_onnxruntime_equals_pytorch(models, exported, crops, name):
    from fas.methods import load_predictor
    from fas.onnx_predictor import OnnxPredictor

    torch_predictor, onnx_predictor = load_predictor(models[name], "cpu"), load_predictor(exported[name])
    assert isinstance(onnx_predictor, OnnxPredictor)
    inputs = columns(models, name, crops)
    want, got = torch_predictor.predict(*inputs), onnx_predictor.predict(*inputs)
    assert set(got) == set(want) and len(got["score"]) == 3
    for key, value in want.items():
        if np.issubdtype(value.dtype, np.floating):
            assert np.abs(got[key] - value).max() <= 1e-4, key
        else:
            assert np.array_equal(got[key], value), key


def test_sidecar(models, exported):
    for name in METHODS:
        sidecar = json.loads(exported[name].with_suffix(".json").read_text())
        assert sidecar["meta"] == json.loads((models[name] / "model_config.json").read_text())
        assert (sidecar["threshold"], sidecar["threshold_rule"]) == (METRICS["threshold"], METRICS["threshold_rule"])
    agfas = json.loads(exported["agfas"].with_suffix(".json").read_text())
    assert agfas["inputs"] == ["image", "cue"] and agfas["generator"] == str((models["agfas"] / "generator").resolve())
    clip = json.loads(exported["clipc8"].with_suffix(".json").read_text())
    assert clip["inputs"] == ["image"] and clip["outputs"] == ["probs", "category", "score"]


def test_predict_with_onnx(models, exported, media):
    paths = (media["video"],)
    plain = predict(models, "agfas", *paths, frames=2)
    onnx = predict(models, "agfas", *paths, frames=2, onnx=str(exported["agfas"]))
    assert onnx["onnx"] == str(exported["agfas"]) and len(onnx["rows"]) == len(plain["rows"]) == 3
    for a, b in zip(plain["rows"], onnx["rows"]):
        assert (a["path"], a["level"], a["frame"], a["box"]) == (b["path"], b["level"], b["frame"], b["box"])
        assert abs(a["score"] - b["score"]) <= 1e-4


def test_export_errors(models, exported, media, tmp_path):
    from fas.cli import main
    from fas.onnx_predictor import OnnxPredictor

    assert main(["export", str(models["pdle"]), "--onnx", str(tmp_path / "pdle.bin")]) == 2
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported["pdle"].read_bytes())
    with pytest.raises(ValueError, match="sidecar"):
        OnnxPredictor.load(lonely)
    with pytest.raises(ValueError, match="another model"):
        predict(models, "clipc8", media["selfie"], onnx=str(exported["pdle"]))


def test_a_serve_model_entry_scores_with_its_onnx_file(models, exported, media):
    """``onnx:`` in a Serve model entry: the card keeps the folder's threshold and generator, its version is the
    ONNX file's, and the served computation (what a model replica loads: ``card.weights``) scores with onnxruntime
    as PyTorch does; a file exported from another model is refused at start."""
    from fas.config import ConfigError
    from fas.onnx_predictor import OnnxPredictor
    from fas.serve.config import ModelEntry, load_model_card
    from fas.serve.load import InProcessPipeline

    entry = ModelEntry(name="agfas", path=str(models["agfas"]), onnx=str(exported["agfas"]))
    card, plain_card = load_model_card(entry), load_model_card(ModelEntry(name="agfas", path=str(models["agfas"])))
    assert card.weights == str(exported["agfas"]) and card.version != plain_card.version
    assert (card.threshold, card.generator) == (plain_card.threshold, plain_card.generator)
    args = {"models": [{"name": "agfas", "path": str(models["agfas"]), "onnx": str(exported["agfas"])}],
            "face": {"detector": "haar", "size": 128}}
    served = InProcessPipeline(args)
    assert isinstance(served.models["agfas"].predictor, OnnxPredictor)
    image = media["selfie"].read_bytes()
    plain = InProcessPipeline({**args, "models": [{"name": "agfas", "path": str(models["agfas"])}]})
    assert abs(served(image)["score"] - plain(image)["score"]) <= 1e-4
    with pytest.raises(ConfigError, match="exported from another model"):
        load_model_card(ModelEntry(name="x", path=str(models["agfas"]), onnx=str(exported["pdle"])))
