"""The serving steps as plain Python, shared by the Serve deployments and the in-process baseline of the load job.

``FacePipeline`` turns encoded bytes into the crops the models need (same code as the data plane),
``present`` turns one row of a predictor's output into JSON, ``fuse`` applies the fusion rule and thresholds.
"""

from __future__ import annotations

import threading

import numpy as np

from fas.data.faces import decode_image, detect_and_crop, encode_image, make_detector
from fas.quality import QualityConfig, quality_warnings
from fas.serve.config import FaceConfig, FusionConfig, ModelCard


class InvalidImage(ValueError):
    """Bytes that passed the ingress checks but that OpenCV cannot decode (a 400, not a server error)."""


class FacePipeline:
    """Detect once, then crop: ``face`` (largest face, or the whole frame when there is none) and ``frame``; the
    capture-quality warnings are measured here, where the decoded frame is."""

    def __init__(self, cfg: FaceConfig, kinds: set[str], quality: QualityConfig | None = None):
        self.cfg = cfg
        self.quality = quality or QualityConfig()
        self.kinds = kinds
        self.detector = make_detector(cfg.detector, cfg.detector_weights)
        self.whole = make_detector("none")

    def _crop(self, detector, rgb: np.ndarray):
        return detect_and_crop(detector, rgb, margin=self.cfg.margin, size=self.cfg.size, no_face="keep")

    @staticmethod
    def decode(data: bytes) -> np.ndarray:
        try:
            return decode_image(data)
        except ValueError as exc:
            raise InvalidImage(str(exc)) from None

    def frame(self, rgb: np.ndarray) -> bytes:
        """The whole frame at the crop size: it needs no detection, so its models need not wait for one."""
        return encode_image(self._crop(self.whole, rgb).crop)

    def face(self, rgb: np.ndarray) -> dict:
        """Detection, and the face crop when a model reads one (``inputs`` holds ``face`` only)."""
        face = self._crop(self.detector, rgb)
        landmarks = face.landmarks.tolist() if face.detected and face.landmarks is not None else None
        out = {"detected": face.detected, "box": list(face.box) if face.detected else None,
               "landmarks": landmarks, "num_faces": face.num_faces, "width": int(rgb.shape[1]),
               "height": int(rgb.shape[0]), "inputs": {"face": encode_image(face.crop)} if "face" in self.kinds else {}}
        out["warnings"] = quality_warnings(rgb, out, self.quality)
        return out

    def __call__(self, data: bytes) -> dict:
        rgb = self.decode(data)
        out = self.face(rgb)
        if "frame" in self.kinds:
            out["inputs"]["frame"] = self.frame(rgb)
        return out


class ThreadLocalFace:
    """A ``FacePipeline`` per calling thread: OpenCV's detectors are not thread-safe (one Haar cascade shared by
    concurrent calls returns boxes that differ by a pixel from call to call; YuNet mutates its input size), and
    the ingress and the face deployment both run the stage in a thread pool so that their event loop keeps going.
    """

    def __init__(self, cfg: FaceConfig, kinds: set[str], quality: QualityConfig | None = None):
        self.cfg, self.kinds, self.quality = cfg, set(kinds), quality
        self.local = threading.local()
        self.pipeline()  # a bad detector config fails at startup, not on the first request

    def pipeline(self) -> FacePipeline:
        if not hasattr(self.local, "pipeline"):
            self.local.pipeline = FacePipeline(self.cfg, self.kinds, self.quality)
        return self.local.pipeline

    def __call__(self, data: bytes) -> dict:
        return self.pipeline()(data)

    def start(self, data: bytes) -> tuple[np.ndarray, dict[str, bytes]]:
        """The decoded frame and the inputs that need no detection (``frame``), to send before detecting."""
        pipeline = self.pipeline()
        rgb = pipeline.decode(data)
        return rgb, ({"frame": pipeline.frame(rgb)} if "frame" in self.kinds else {})

    def face(self, rgb: np.ndarray) -> dict:
        return self.pipeline().face(rgb)


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
