"""AG-FAS's "DFG†" (Table IV): the anomalous cue kept inside the face region and zeroed on the background.

The face region of a crop comes from one of three sources, named per frame in the cue cache's ``cue_mask_source``:

- ``parsing``: the face classes of the face-parsing BiSeNet (``fas.models.face_parsing.FACE_CLASSES``), the
  paper's way; needs its weights (``79999_iter.pth`` or an ONNX export).
- ``landmarks``: no weights, the detector's five points: their convex hull grown to the face outline, an ellipse
  whose axes follow the face (the eye line and the eye-to-mouth axis): half-width ``FACE_HALF_WIDTH`` eye distances,
  half-height ``FACE_HALF_HEIGHT`` eye-to-mouth distances, centred ``FACE_CENTRE`` of the eye-to-mouth distance
  below the eyes (a frontal face's outline around the usual five-point layout), clipped to the crop.
- ``box``: a frame without landmarks: the ellipse inscribed in the detector's face box inside the crop; a frame
  with no box (no detector, or no face found and the whole frame kept) uses the whole crop as its box.

A parsing mask with less than ``MIN_FACE_FRACTION`` of the crop (the parser found no face, e.g. on a whole-frame crop
or a damaged print) and a degenerate landmark ellipse give way to the next source, and the frame's source says so:
a cue of zeros would read as a perfect reconstruction, i.e. as a real face.

The masked cue is standardised over the face pixels only (mean and unbiased std of the residual there, then zero
outside): the background residual, which DFG† drops, then does not scale the face's cue either (a screen bezel with
a large residual would otherwise shrink it), and the face pixels keep the zero mean and unit variance that OA-Net
sees in plain DFG's cues; outside, zero is that mean, "no anomaly". ``cue_rms`` is the residual's RMS over the face
pixels.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import torch

MASKS = ("none", "parsing", "landmarks")
FACE_HALF_WIDTH = 1.1  # in eye distances (a frontal face is about 2.2 eye distances wide at the cheekbones)
FACE_HALF_HEIGHT = 1.25  # in eye-to-mouth distances (forehead to chin: about 2.5 of them)
FACE_CENTRE = 0.33  # of the eye-to-mouth distance below the eye line
MIN_FACE_FRACTION = 0.01


@dataclasses.dataclass(frozen=True)
class FaceGeometry:
    """Where the face lies in a crop, in the crop's normalised coordinates ([0, 1] from its left/top edge)."""

    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1; the whole crop when unknown
    landmarks: tuple[tuple[float, float], ...] | None = None  # five points, YuNet's order


def check_mask(mask: str) -> None:
    if mask not in MASKS:
        raise ValueError(f"cue mask must be one of {MASKS}, not {mask!r}")


def box_in_crop(box, shown) -> tuple[float, float, float, float]:
    """A face box (frame pixels) in the normalised coordinates of the crop that shows the frame's ``shown`` box."""
    from fas.data.faces import points_in_crop

    return tuple(float(v) for v in points_in_crop(np.reshape(box, (2, 2)), shown, 1.0).reshape(-1))


def geometry_from_row(detected: bool, face_box, landmarks, margin: float, size: int) -> FaceGeometry:
    """A frame cache row's face: ``face_box`` (frame pixels) inside the crop the box grown by ``margin`` shows, and
    ``landmarks`` (the crop's pixels, ``size`` wide, flat x, y pairs)."""
    from fas.data.faces import expand_box

    points = None if landmarks is None else tuple(map(tuple, np.asarray(landmarks, float).reshape(5, 2) / size))
    if not detected or face_box is None:  # the crop is the whole frame
        return FaceGeometry(landmarks=points)
    return FaceGeometry(box_in_crop(face_box, expand_box(tuple(face_box), margin, 0, 0)), points)


def row_geometries(rows, margin: float, size: int) -> list[FaceGeometry]:
    """The face geometry of every row of a frame cache table (a cache made before ``landmarks`` existed: boxes)."""
    marks = rows["landmarks"].to_pylist() if "landmarks" in rows.column_names else [None] * rows.num_rows
    return [geometry_from_row(d, b, m, margin, size) for d, b, m in zip(rows["face_detected"].to_pylist(),
                                                                       rows["face_box"].to_pylist(), marks)]


def geometry_from_face(face: dict, margin: float, crop: str = "face") -> FaceGeometry:
    """The face stage's answer (``fas.serve.pipeline.FacePipeline.face``: ``box`` and, where it gives them,
    ``landmarks`` in frame pixels) for its ``face`` crop, or for the whole-frame ``frame`` crop."""
    from fas.data.faces import expand_box, points_in_crop

    if not face.get("detected") or face.get("box") is None:
        return FaceGeometry()
    box, points = tuple(face["box"]), face.get("landmarks")
    shown = expand_box(box, margin, 0, 0) if crop == "face" else (0, 0, face["width"], face["height"])
    return FaceGeometry(box_in_crop(box, shown),
                        None if points is None else tuple(map(tuple, points_in_crop(points, shown, 1.0).tolist())))


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel's centre (pixel i spans [i, i + 1)), each (size, size)."""
    centres = np.arange(size) + 0.5
    return np.meshgrid(centres, centres)


def ellipse_mask(centre, half_axes, angle: float, size: int) -> np.ndarray:
    """(size, size) uint8: 1 where a pixel's centre lies in the ellipse (``angle`` in radians, from the x axis)."""
    xs, ys = _pixel_centres(size)
    dx, dy = xs - centre[0], ys - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = (dx * c + dy * s) / max(half_axes[0], 1e-6), (dy * c - dx * s) / max(half_axes[1], 1e-6)
    return (u * u + v * v <= 1).astype(np.uint8)


def hull_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) uint8: 1 where a pixel's centre lies in the convex hull of ``points`` (pixels)."""
    hull = cv2.convexHull(np.asarray(points, np.float32)).reshape(-1, 2).astype(np.float64)
    xs, ys = _pixel_centres(size)
    sides = np.stack([(q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0])
                      for p, q in zip(hull, np.roll(hull, -1, axis=0))])
    return ((sides >= 0).all(axis=0) | (sides <= 0).all(axis=0)).astype(np.uint8)


def box_mask(box, size: int) -> np.ndarray:
    """The ellipse inscribed in ``box`` (normalised x0, y0, x1, y1), clipped to the crop: (size, size) uint8 0/1."""
    x0, y0, x1, y1 = (v * size for v in box)
    return ellipse_mask(((x0 + x1) / 2, (y0 + y1) / 2), ((x1 - x0) / 2, (y1 - y0) / 2), 0.0, size)


def landmark_mask(landmarks, size: int) -> np.ndarray:
    """The five points' convex hull grown to the face outline (the module's ellipse), clipped to the crop."""
    points = np.asarray(landmarks, np.float64).reshape(5, 2) * size
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    across, down = points[1] - points[0], mouth - eyes
    half_axes = (FACE_HALF_WIDTH * np.hypot(*across), FACE_HALF_HEIGHT * np.hypot(*down))
    outline = ellipse_mask(eyes + FACE_CENTRE * down, half_axes, math.atan2(across[1], across[0]), size)
    return outline | hull_mask(points, size)


def geometric_mask(geometry: FaceGeometry, size: int) -> tuple[np.ndarray, str]:
    """The landmark mask where the frame has landmarks (and it is not degenerate), else the box's ellipse."""
    if geometry.landmarks is not None:
        mask = landmark_mask(geometry.landmarks, size)
        if mask.mean() >= MIN_FACE_FRACTION:
            return mask, "landmarks"
    return box_mask(geometry.box, size), "box"


class FaceMasker:
    """Crops (RGB uint8 at the cue's size) + their face geometry -> (masks, sources), by the configured source."""

    def __init__(self, mask: str, parsing_weights: str | None = None, device: str | torch.device = "cpu"):
        check_mask(mask)
        if mask == "parsing" and not parsing_weights:
            from fas.models.face_parsing import WEIGHTS_HOWTO

            raise ValueError(f"cue mask 'parsing' needs parsing_weights (--parsing-weights FILE): {WEIGHTS_HOWTO}")
        self.mask = mask
        self.parser = None
        if mask == "parsing":
            from fas.models.face_parsing import load_face_parser

            self.parser = load_face_parser(parsing_weights, device)

    def __call__(self, arrays, geometries) -> tuple[list[np.ndarray], list[str]]:
        size = arrays[0].shape[0]
        fallback = [geometric_mask(g or FaceGeometry(), size) for g in geometries]
        if self.parser is None:
            return [m for m, _ in fallback], [s for _, s in fallback]
        from fas.models.face_parsing import face_masks

        parsed = face_masks(self.parser, arrays, size).astype(np.uint8)
        chosen = [(p, "parsing") if p.mean() >= MIN_FACE_FRACTION else f for p, f in zip(parsed, fallback)]
        return [m for m, _ in chosen], [s for _, s in chosen]


def masked_cue(images: torch.Tensor, reconstruction: torch.Tensor,
               masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cue standardised over the face pixels and zero outside, residual RMS over the face pixels) per image;
    ``masks`` (B, S, S) of 0/1. Without a mask this is ``model.anomalous_cue``."""
    residual = images.float() - reconstruction.float()
    weight = masks.to(residual).unsqueeze(1).expand_as(residual).flatten(1)
    flat = residual.flatten(1)
    count = weight.sum(dim=1, keepdim=True)
    mean = (flat * weight).sum(dim=1, keepdim=True) / count
    std = (((flat - mean) * weight).pow(2).sum(dim=1, keepdim=True) / (count - 1).clamp_min(1)).sqrt()
    cue = (flat - mean) / std.clamp_min(1e-6) * weight
    rms = ((flat.pow(2) * weight).sum(dim=1) / count[:, 0]).sqrt()
    return cue.view_as(residual), rms


def encode_mask(mask: np.ndarray) -> bytes:
    """A 0/1 mask as PNG bytes (0/255, so that it shows as an image)."""
    ok, buf = cv2.imencode(".png", (np.asarray(mask) > 0).astype(np.uint8) * 255)
    if not ok:
        raise ValueError("cannot encode the cue mask as PNG")
    return buf.tobytes()


def decode_masks(blobs) -> np.ndarray:
    """``cue_mask`` column values -> bool array (B, S, S)."""
    return np.stack([cv2.imdecode(np.frombuffer(bytes(b), np.uint8), cv2.IMREAD_GRAYSCALE) > 127 for b in blobs])
