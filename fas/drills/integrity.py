"""Model-folder drills: a published folder's weights or config changed (or cut short) after publishing.

Each drill publishes an untrained tiny PDLE folder (``checksums.json`` included), scores one crop with it, breaks
one file, and then asks every consumer to load it: ``fas predict`` (``LocalPredict``), evaluation (``evaluate``),
Serve start-up (the application builder) and ``load_predictor``. Each must refuse with an error naming the file;
publishing again must restore the very same score. The unprotected case is measured too: the same change in a
folder without ``checksums.json`` (as written before checksums) loads with a warning and scores differently, or,
for a truncated file, is refused by the weights reader.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

from fas.drills import DrillResult, Stopwatch

METRICS = {"threshold": 0.5, "threshold_rule": "dev_eer"}


def publish_pdle(folder: Path) -> Path:
    """An untrained tiny PDLE model folder with an evaluated threshold, written by the method's own writer."""
    import torch

    from fas.methods import get_method
    from fas.methods.base import write_model_folder
    from fas.methods.pdle.model import create_pdle
    from fas.methods.pdle.task import portable_meta

    torch.manual_seed(0)
    cfg = get_method("pdle").load_config(get_method("pdle").tiny_config)
    write_model_folder(folder, create_pdle(cfg.model, None, cfg.num_levels).state_dict(), portable_meta(cfg))
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    return folder


def crop_bytes() -> bytes:
    """One fixed 96x96 JPEG crop to score."""
    import cv2
    import numpy as np

    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def score(folder: Path) -> float:
    from fas.methods import load_predictor

    return float(load_predictor(folder, "cpu").predict([crop_bytes()])["score"][0])


def consumers(folder: Path) -> dict[str, Callable[[], object]]:
    """What loads a model folder, each as a call that should refuse a broken one before doing any work."""
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.methods import load_predictor
    from fas.predict import LocalPredict, PredictConfig
    from fas.serve.app import build
    from fas.serve.config import parse_app_config

    serve_args = {"models": [{"name": "pdle", "path": str(folder), "input": "face"}], "face": {"detector": "haar"}}
    return {"predict": lambda: LocalPredict(PredictConfig(model=str(folder))),
            "evaluate": lambda: evaluate(EvaluateConfig(checkpoint=str(folder), cache=str(folder / "no-cache"),
                                                        out=str(folder.parent / "eval"))),
            "serve": lambda: build(parse_app_config(serve_args)),
            "load_predictor": lambda: load_predictor(folder, "cpu")}


def refusals(folder: Path) -> dict[str, str]:
    """Each consumer's error on ``folder`` ("" when it loaded it)."""
    errors = {}
    for name, call in consumers(folder).items():
        try:
            call()
            errors[name] = ""
        except ValueError as exc:
            errors[name] = str(exc)
    return errors


def unprotected(folder: Path, workdir: Path, tamper: Callable[[Path], None]) -> dict:
    """The same change in a copy without ``checksums.json``: does a load warn, refuse, or score differently?"""
    from fas.integrity import CHECKSUMS_FILE

    legacy = workdir / "legacy"
    shutil.copytree(folder, legacy)
    (legacy / CHECKSUMS_FILE).unlink()
    tamper(legacy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = {"score": score(legacy), "error": ""}
        except ValueError as exc:
            result = {"score": None, "error": str(exc)}
    result["warned"] = any(str(legacy) in str(w.message) for w in caught)
    return result


def integrity_drill(name: str, fault: str, file: str, tamper: Callable[[Path], None], workdir: Path,
                    model_folder: Path | None = None) -> DrillResult:
    """Publish, score, break ``file`` with ``tamper``, try every consumer, publish again and score again."""
    from fas.integrity import sha256_file

    workdir = Path(workdir)
    source = Path(model_folder) if model_folder else publish_pdle(workdir / "checkpoint")
    folder = workdir / "published"
    shutil.copytree(source, folder)
    before_score, before_digest = score(folder), sha256_file(folder / file)
    tamper(folder)
    clock = Stopwatch()
    clock.mark()
    errors = refusals(folder)
    shutil.rmtree(folder)  # the fix the error asks for: publish again
    shutil.copytree(source, folder)
    after_score = score(folder)
    recovery = clock.recovered()
    named = {k: str(folder / file) in e and f"expected sha256 {before_digest}" in e for k, e in errors.items()}
    legacy = unprotected(source, workdir, tamper)
    figures = {"file": file, "digest_published": before_digest, "refused": {k: bool(e) for k, e in errors.items()},
               "error_names_file_and_digest": named, "errors": errors, "score_before": before_score,
               "score_republished": after_score, "unprotected": legacy}
    passed = all(named.values()) and after_score == before_score
    outcome = (f"refused by {sum(named.values())}/{len(named)} loaders (predict, evaluate, Serve start-up, "
               f"load_predictor), each naming {file} and its published sha256; republished folder scores {after_score:.6f} as before")
    return DrillResult(name, fault, outcome, "none (republish)", "none", recovery, passed, figures)


def perturb_weights(folder: Path) -> None:
    """One weight of ``model.pt`` nudged by 1e-3 and saved again: a loadable file that scores differently."""
    import torch

    state = torch.load(folder / "model.pt", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key] = state[key] + 1e-3
    torch.save(state, folder / "model.pt")


def truncate_weights(folder: Path) -> None:
    """``model.pt`` cut to half its bytes (a copy interrupted by a full disk)."""
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data[: len(data) // 2])


def edit_config(folder: Path) -> None:
    """``model_config.json`` still valid JSON, its preprocessing mean changed: every score shifts silently."""
    meta = json.loads((folder / "model_config.json").read_text())
    meta["preprocess"]["mean"] = [m + 0.1 for m in meta["preprocess"]["mean"]]
    (folder / "model_config.json").write_text(json.dumps(meta, indent=2))


def tampered_weights(workdir: Path, model_folder: Path | None = None) -> DrillResult:
    return integrity_drill("tampered_weights", "one weight of model.pt changed by 1e-3 after publishing", "model.pt",
                           perturb_weights, workdir, model_folder)


def truncated_weights(workdir: Path, model_folder: Path | None = None) -> DrillResult:
    return integrity_drill("truncated_weights", "model.pt truncated to half its bytes", "model.pt",
                           truncate_weights, workdir, model_folder)


def tampered_config(workdir: Path, model_folder: Path | None = None) -> DrillResult:
    return integrity_drill("tampered_config", "model_config.json edited (preprocessing mean +0.1)",
                           "model_config.json", edit_config, workdir, model_folder)
