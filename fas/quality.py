"""Capture-quality warnings and the optional three-way decision, shared by Serve and ``fas predict``.

A liveness score on a face that is too small, blurred, badly lit or cut by the frame is a score the model was not
trained to give: the answer says so beside the decision instead of refusing (none of the warnings is fatal). The
measures are the usual ones of capture-quality checks (ISO/IEC 29794-5 lists the same factors): the face box's
size and position from the face stage, the variance of the Laplacian for focus, the mean luma for exposure, all
on the face region at a fixed side so the thresholds do not depend on the camera's resolution. The Laplacian's
variance is taken of the region scaled to unit contrast: raw, it falls with the square of the contrast, and a dark
but sharp face would read as blurred (the astronaut's face: 273 sharp, 8 at 15 % brightness, 10 blurred by a
2-pixel Gaussian; normalised 0.11, 0.14 and 0.005).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

CODES = ("no_face", "several_faces", "face_too_small", "blurred", "too_dark", "too_bright", "face_cut_by_border")
DECISIONS = ("live", "spoof", "uncertain")
MEASURE_SIDE = 128  # the face region is measured at this side (pixels)


@dataclasses.dataclass
class QualityConfig:
    """Thresholds of the warnings (``quality:`` in the Serve config, ``--quality-*`` of ``fas predict``)."""

    min_face_px: int = 64  # face_too_small: shorter side of the detected box below this many pixels
    blur_min_variance: float = 0.02  # blurred: variance of the Laplacian of the face region (gray, 128 px, unit
    # contrast) below
    dark_max_mean: float = 50.0  # too_dark: mean luma (0-255) of the face region below
    bright_min_mean: float = 205.0  # too_bright: mean luma above
    border_px: int = 2  # face_cut_by_border: the detected box reaches within this many pixels of an image edge
    uncertain_band: list[float] | None = None  # [low, high]: a score inside the band is decided "uncertain"

    def __post_init__(self):
        if self.uncertain_band is not None:
            try:
                band = [float(v) for v in self.uncertain_band] if isinstance(self.uncertain_band, list) else []
            except (TypeError, ValueError):
                band = []
            if len(band) != 2 or not band[0] <= band[1]:
                raise ValueError(f"quality.uncertain_band must be [low, high] with low <= high, got "
                                 f"{self.uncertain_band!r}")
            self.uncertain_band = band


def face_region(rgb: np.ndarray, box) -> np.ndarray:
    """The box's pixels (clipped to the image) as gray at ``MEASURE_SIDE``; the whole frame when there is no box."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (0, 0, w, h) if box is None else box
    x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))
    region = rgb[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else rgb
    gray = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_AREA)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian of ``gray`` scaled to unit standard deviation: low when edges are soft (defocus,
    motion) whatever the exposure; 0 for a flat region."""
    spread = float(gray.std())
    if spread < 1e-6:
        return 0.0
    return float(cv2.Laplacian(gray.astype(np.float64) / spread, cv2.CV_64F).var())


def quality_warnings(rgb: np.ndarray, face: dict, cfg: QualityConfig) -> list[dict]:
    """``[{code, detail}]`` for the frame ``rgb`` and the face stage's answer ``face`` (``detected``, ``box`` as
    x0, y0, x1, y1 in ``rgb``, ``num_faces``), in the order of ``CODES``."""
    warnings = []
    box = face.get("box") if face.get("detected") else None
    if box is None:
        warnings.append({"code": "no_face", "detail": "no face was found; the whole frame was scored"})
    elif face.get("num_faces", 1) > 1:
        warnings.append({"code": "several_faces",
                         "detail": f"{face['num_faces']} faces were found; the largest was scored"})
    if box is not None:
        side = min(box[2] - box[0], box[3] - box[1])
        if side < cfg.min_face_px:
            warnings.append({"code": "face_too_small",
                             "detail": f"the face is {side} px across, under {cfg.min_face_px} px"})
    gray = face_region(rgb, box)
    variance, luma = sharpness(gray), float(gray.mean())
    if variance < cfg.blur_min_variance:
        warnings.append({"code": "blurred", "detail": f"variance of the Laplacian {variance:.3f} (at unit contrast) "
                                                      f"is under {cfg.blur_min_variance:g}"})
    if luma < cfg.dark_max_mean:
        warnings.append({"code": "too_dark", "detail": f"mean brightness {luma:.0f} is under {cfg.dark_max_mean:g}"})
    elif luma > cfg.bright_min_mean:
        warnings.append({"code": "too_bright",
                         "detail": f"mean brightness {luma:.0f} is over {cfg.bright_min_mean:g}"})
    if box is not None and cut_by_border(box, rgb.shape[1], rgb.shape[0], cfg.border_px):
        warnings.append({"code": "face_cut_by_border", "detail": "the face reaches the edge of the image"})
    return warnings


def cut_by_border(box, width: int, height: int, border_px: int) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= border_px or y0 <= border_px or x1 >= width - border_px or y1 >= height - border_px


def decide(score: float, threshold: float, band: list[float] | None = None) -> str:
    """``live`` at or over the threshold, else ``spoof``; ``uncertain`` when a band is given and holds the score."""
    if band is not None and band[0] <= score <= band[1]:
        return "uncertain"
    return "live" if score >= threshold else "spoof"
