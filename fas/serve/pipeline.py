"""The serving steps as plain Python, shared by the Serve deployments and the in-process baseline of the load job.

``FacePipeline`` turns encoded bytes into the crops the models need (same code as the data plane),
``present`` turns one row of a predictor's output into JSON, ``fuse`` applies the fusion rule and thresholds.
"""

from __future__ import annotations

import numpy as np

from fas.data.faces import decode_image, detect_and_crop, encode_image, make_detector
from fas.serve.config import FaceConfig, FusionConfig, ModelCard


class InvalidImage(ValueError):
    """Bytes that passed the ingress checks but that OpenCV cannot decode (a 400, not a server error)."""


class FacePipeline:
    """Detect once, then crop: ``face`` (largest face, or the whole frame when there is none) and ``frame``."""

    def __init__(self, cfg: FaceConfig, kinds: set[str]):
        self.cfg = cfg
        self.kinds = kinds
        self.detector = make_detector(cfg.detector, cfg.detector_weights)
        self.whole = make_detector("none")

    def _crop(self, detector, rgb: np.ndarray):
        return detect_and_crop(detector, rgb, margin=self.cfg.margin, size=self.cfg.size, no_face="keep")

    def __call__(self, data: bytes) -> dict:
        try:
            rgb = decode_image(data)
        except ValueError as exc:
            raise InvalidImage(str(exc)) from None
        face = self._crop(self.detector, rgb)
        inputs = {}
        if "face" in self.kinds:
            inputs["face"] = encode_image(face.crop)
        if "frame" in self.kinds:
            inputs["frame"] = encode_image(self._crop(self.whole, rgb).crop)
        return {"detected": face.detected, "box": list(face.box) if face.detected else None,
                "num_faces": face.num_faces, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                "inputs": inputs}


def present(out: dict[str, np.ndarray], i: int, categories: tuple[str, ...] | None) -> dict:
    """Row ``i`` of a predictor's output as JSON: ``score`` always; class outputs by name when the model has them."""
    row = {"score": float(out["score"][i])}
    for key, values in out.items():
        if key == "score":
            continue
        if key == "probs" and categories:
            row["probs"] = {c: float(p) for c, p in zip(categories, values[i])}
        elif key == "category" and categories:
            row["category"] = categories[int(values[i])]
        else:
            row[key] = np.asarray(values[i]).tolist()
    return row


def fusion_weights(cards: list[ModelCard], fusion: FusionConfig) -> np.ndarray:
    """Normalised weights: equal for ``mean``, the configured ones for ``weighted_mean``."""
    weights = np.array([c.weight if fusion.rule == "weighted_mean" else 1.0 for c in cards])
    return weights / weights.sum()


def fused_threshold(cards: list[ModelCard], fusion: FusionConfig) -> float:
    """The configured threshold, else the fusion rule applied to the models' own (evaluated) thresholds."""
    if fusion.threshold is not None:
        return float(fusion.threshold)
    return float(fusion_weights(cards, fusion) @ np.array([c.threshold for c in cards]))


def fuse(results: dict[str, dict], cards: dict[str, ModelCard], fusion: FusionConfig) -> dict:
    """Fused score and decision; each model's own decision at its own threshold is added to its result."""
    used = [cards[n] for n in results]
    score = float(fusion_weights(used, fusion) @ np.array([results[c.name]["score"] for c in used]))
    threshold = fused_threshold(used, fusion)
    models = {c.name: {**results[c.name], "threshold": c.threshold,
                       "live": bool(results[c.name]["score"] >= c.threshold)} for c in used}
    return {"score": score, "threshold": threshold, "live": score >= threshold, "rule": fusion.rule, "models": models}
