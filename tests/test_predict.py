"""``fas predict``: the same scores as the model's predictor and the served computation, per frame and per video,
the threshold options, unreadable files reported and counted, the output formats and the explanation files.

Tiny untrained model folders (tests/test_serve.py's builders) and real media written here: a generated selfie the
Haar detector finds a face in, a PyAV video, a corrupt image, a truncated video.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fas.data.faces import decode_image
from fas.data.video import sample_frames, uniform_indices
from fas.predict import CSV_COLUMNS, PredictConfig, run_predict
from fas.quality import QualityConfig, decide, quality_warnings
from fas.serve.config import FaceConfig
from fas.serve.pipeline import FacePipeline
from tests.conftest import write_truncated, write_video
from tests.test_serve import METRICS, build_agfas_folder, build_clipc8_folder, build_pdle_folder

BUILDERS = {"clipc8": build_clipc8_folder, "pdle": build_pdle_folder, "agfas": build_agfas_folder}


def build_models(root: Path) -> dict[str, Path]:
    """The tiny untrained folders of CLIPC8, PDLE and AG-FAS (OA-Net + generator), threshold 0.5."""
    for seed, (name, build) in enumerate(BUILDERS.items()):
        (root / name).mkdir()
        build(root / name, seed)
        (root / name / "metrics.json").write_text(json.dumps(METRICS))
    return {name: root / name for name in BUILDERS}


def write_media(root: Path) -> dict[str, Path]:
    """Two generated selfies (faces/), a 12-frame PyAV video (clips/), a corrupt image and a truncated video (bad/)."""
    from fas.serve.load import default_image

    (root / "faces").mkdir()
    (root / "faces" / "selfie.jpg").write_bytes(default_image(seed=0))
    (root / "faces" / "other.jpg").write_bytes(default_image(size=320, seed=1))
    video = write_video(root / "clips" / "clip.mp4", num_frames=12, size=96)
    (root / "bad").mkdir()
    (root / "bad" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    write_truncated(root / "bad" / "cut.mp4", video, keep=0.2)
    return {"dir": root, "selfie": root / "faces" / "selfie.jpg", "other": root / "faces" / "other.jpg",
            "video": video, "broken": root / "bad" / "broken.jpg", "cut": root / "bad" / "cut.mp4"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("predict_models"))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return write_media(tmp_path_factory.mktemp("predict_media"))


def predict(models, name: str, *paths, **options) -> dict:
    return run_predict(PredictConfig(model=str(models[name]), paths=[str(p) for p in paths], **options))


def face_crop(rgb: np.ndarray) -> tuple[bytes, dict]:
    face = FacePipeline(FaceConfig(), {"face"}).face(rgb)
    return face["inputs"]["face"], face


@pytest.mark.parametrize("name", ["clipc8", "pdle"])
def test_image_score_is_the_predictors_on_the_same_crop(models, media, name, monkeypatch):
    import ray

    from fas.methods import load_predictor

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("fas predict started a Ray cluster"))
    row, = predict(models, name, media["selfie"])["rows"]
    crop, face = face_crop(decode_image(media["selfie"].read_bytes()))
    expected = load_predictor(models[name], "cpu").predict([crop])
    assert face["detected"] and row["box"] == face["box"] and row["level"] == "image" and row["error"] == ""
    assert row["score"] == pytest.approx(float(expected["score"][0]), abs=1e-7)
    assert row["decision"] == decide(row["score"], METRICS["threshold"])
    if name == "pdle":  # the level distribution travels with the score; its expectation is the score
        levels = np.asarray(row["outputs"]["levels"])
        assert levels @ np.linspace(0, 1, len(levels)) == pytest.approx(row["score"], abs=1e-6)
    else:
        assert set(row["outputs"]["probs"]) == set(json.loads((models[name] / "model_config.json").read_text())[
            "categories"])


def test_agfas_scores_as_the_served_computation(models, media):
    """OA-Net with its generator's cues: the in-process Serve pipeline gives the same score for the same image."""
    from fas.serve.load import InProcessPipeline

    row, = predict(models, "agfas", media["selfie"])["rows"]
    served = InProcessPipeline({"models": [{"name": "agfas", "path": str(models["agfas"]), "input": "face"}]})
    assert row["score"] == pytest.approx(served(media["selfie"].read_bytes())["models"]["agfas"]["score"], abs=1e-7)


@pytest.mark.parametrize("how", ["mean", "max"])
def test_video_frames_and_aggregate(models, media, how):
    from fas.methods import load_predictor

    rows = predict(models, "pdle", media["video"], frames=4, aggregation=how)["rows"]
    *frames, video = rows
    assert [r["frame"] for r in frames] == uniform_indices(12, 4) and [r["level"] for r in frames] == ["frame"] * 4
    sampled = sample_frames(media["video"], 4)
    crops = [face_crop(rgb)[0] for _, rgb in sampled]
    expected = load_predictor(models["pdle"], "cpu").predict(crops)["score"]
    assert [r["score"] for r in frames] == pytest.approx(expected.tolist(), abs=1e-7)
    scores = np.array([r["score"] for r in frames])
    assert video["level"] == "video" and video["frames"] == 4
    assert video["score"] == pytest.approx(float(scores.mean() if how == "mean" else scores.max()), rel=1e-12)
    assert video["decision"] == decide(video["score"], METRICS["threshold"])
    # the frames are flat grey (no face): each frame carries its warnings, the video counts them
    for row, (_, rgb) in zip(frames, sampled):
        assert row["warnings"] == quality_warnings(rgb, face_crop(rgb)[1], QualityConfig())
    assert video["warnings"][0]["code"] == "no_face" and video["warnings"][0]["detail"].startswith("4 of 4 frames")


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_unreadable_files_are_reported_counted_and_others_go_on(models, media, capsys):
    from fas.cli import main

    missing = media["dir"] / "nowhere.png"
    code = main(["predict", str(models["clipc8"]), str(media["selfie"]), str(media["broken"]), str(media["cut"]),
                 str(missing), "--csv"])
    out = capsys.readouterr().out
    rows = read_csv(out)
    assert code == 0 and tuple(rows[0]) == CSV_COLUMNS
    assert [(r["path"], r["level"], bool(r["error"])) for r in rows] == [
        (str(media["selfie"]), "image", False), (str(media["broken"]), "image", True),
        (str(media["cut"]), "video", True), (str(missing), "image", True)]
    assert "not a decodable image" in rows[1]["error"] and "No such file" in rows[3]["error"]
    assert rows[1]["score"] == rows[1]["decision"] == ""
    assert main(["predict", str(models["clipc8"]), str(media["broken"]), str(missing)]) == 1  # nothing readable
    assert capsys.readouterr().out.splitlines()[-1].startswith("2 inputs, 0 read, 2 unreadable")


def test_folders_globs_and_json(models, media, capsys):
    from fas.cli import main

    assert main(["predict", str(models["clipc8"]), str(media["dir"] / "faces"), str(media["dir"] / "clips" / "*.mp4"),
                 "--json", "--frames", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["level"]) for r in report["rows"]] == [
        (str(media["other"]), "image"), (str(media["selfie"]), "image"),
        (str(media["video"]), "frame"), (str(media["video"]), "frame"), (str(media["video"]), "video")]
    assert (report["inputs"], report["read"], report["errors"]) == (3, 3, 0)
    assert report["threshold"] == METRICS["threshold"] and report["threshold_rule"] == METRICS["threshold_rule"]


def test_threshold_options(models, media, tmp_path, capsys):
    from fas.cli import main

    report = predict(models, "clipc8", media["selfie"], threshold=0.0, quality=QualityConfig(uncertain_band=None))
    assert report["threshold"] == 0.0 and report["rows"][0]["decision"] == "live"
    banded = predict(models, "clipc8", media["selfie"], quality=QualityConfig(uncertain_band=[0.0, 1.0]))
    assert banded["rows"][0]["decision"] == "uncertain"
    # no dev scores in the folder: a clear error naming what is missing
    assert main(["predict", str(models["clipc8"]), str(media["selfie"]), "--operating-point", "bpcer=0.01"]) == 2
    err = capsys.readouterr().err
    assert "scores.csv" in err and "metrics.json" in err and "--threshold" in err
    # the evaluation's scores: the highest threshold whose dev BPCER <= 25% (reals 0.2 0.4 0.6 0.8 -> 0.4)
    scores = tmp_path / "scores.csv"
    scores.write_text("split,label,score\n" + "".join(f"dev,1,{s}\n" for s in (0.2, 0.4, 0.6, 0.8))
                      + "dev,0,0.1\ndev,0,0.3\ntest,1,0.05\n")
    report = predict(models, "clipc8", media["selfie"], operating_point="bpcer=0.25", dev_scores=str(scores))
    assert report["threshold"] == 0.4 and report["threshold_rule"] == "dev_bpcer(0.25)"
    with pytest.raises(ValueError, match="bpcer=FRACTION"):
        predict(models, "clipc8", media["selfie"], operating_point="apcer=0.1")


def test_explain_writes_the_explanations(models, media, tmp_path):
    import torch

    from fas.cues import CueGenerator, decode_cues
    from fas.explain import reconstructions, signed_image
    from fas.methods.dfg.model import anomalous_cue
    from fas.preprocess import SIGNED, Preprocess

    out = tmp_path / "explain"
    rows = {name: predict(models, name, media["selfie"], explain=str(out / name))["rows"][0]
            for name in ("clipc8", "pdle", "agfas")}
    clip = json.loads((out / "clipc8" / "000-selfie.explanation.json").read_text())
    assert clip["probs"] == pytest.approx(rows["clipc8"]["outputs"]["probs"])
    assert clip["category"] == rows["clipc8"]["outputs"]["category"]
    pdle = json.loads((out / "pdle" / "000-selfie.explanation.json").read_text())
    assert list(pdle["levels"].values()) == pytest.approx(rows["pdle"]["outputs"]["levels"])
    for name, kinds in {"clipc8": ("crop", "probs"), "pdle": ("crop", "levels"),
                        "agfas": ("crop", "cue", "reconstruction")}.items():
        for kind in kinds:
            assert decode_image((out / name / f"000-selfie.{kind}.png").read_bytes()).ndim == 3
    # the reconstruction shown is the one the cue was made from: input - reconstruction, standardised, is the cue
    meta = json.loads((models["agfas"] / "model_config.json").read_text())
    generator = CueGenerator(str(models["agfas"] / "generator"), meta["cue"])
    crop, _ = face_crop(decode_image(media["selfie"].read_bytes()))
    cue = decode_cues(generator([crop]))
    recon = reconstructions(generator, [crop])
    x = Preprocess(cue.shape[-1], *SIGNED)([crop])
    assert anomalous_cue(x, torch.from_numpy(recon))[0].numpy() == pytest.approx(cue, abs=5e-3)  # cue is float16
    shown = decode_image((out / "agfas" / "000-selfie.reconstruction.png").read_bytes())
    assert np.array_equal(shown, signed_image(recon[0]))


def test_command_line_entry_point(models, media):
    done = subprocess.run([sys.executable, "-m", "fas.cli", "predict", str(models["pdle"]), str(media["selfie"]),
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"][0]["score"] == pytest.approx(
        predict(models, "pdle", media["selfie"])["rows"][0]["score"], abs=1e-7)


def test_a_model_folder_records_the_crop_its_training_cache_was_prepared_with(tmp_path):
    """A CLIPC8 model trained on whole CLASS-8 frames (no detector) must be shown whole frames by `fas predict`,
    Serve and `fas label`, not face crops: the engine adds the cache's crop to the folder's config."""
    from fas.engine.loop import record_crop
    from fas.integrity import verify_folder
    from fas.predict import face_settings

    for detector, expected in (("none", {"input": "frame", "detector": "none", "size": 112}),
                               ("haar", {"input": "face", "detector": "haar", "detector_weights": None,
                                         "margin": 0.3, "size": 96})):
        cache, folder = tmp_path / f"cache_{detector}", tmp_path / f"model_{detector}"
        cache.mkdir()
        config = {"detector": detector, "detector_weights": None, "margin": 0.3,
                  "size": 112 if detector == "none" else 96}
        (cache / "cache.json").write_text(json.dumps({"shards": [], "config": config}))
        build_clipc8_folder(folder, seed=0)
        record_crop(folder, str(cache))
        meta = json.loads((folder / "model_config.json").read_text())
        assert meta["face"] == expected and verify_folder(folder)  # checksums rewritten with the config
        face, kind = face_settings(PredictConfig(model=str(folder)), meta)
        assert kind == expected["input"] and face.detector == detector and face.size == expected["size"]
        record_crop(folder, str(tmp_path / "elsewhere"))  # a recorded crop is kept; no cache record: nothing
        assert json.loads((folder / "model_config.json").read_text())["face"] == expected
