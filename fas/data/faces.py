"""The face stage: pluggable detectors, crop with margin, resize. Shared by the data plane and Serve.

Detectors (``make_detector(name, weights)``):
- ``none``: keep the whole frame (CLIPC8 keeps the background on purpose).
- ``haar``: OpenCV's frontal-face Haar cascade shipped inside opencv-python-headless 4.x; works offline.
- ``yunet``: OpenCV's ``FaceDetectorYN`` (a CNN detector) from an ONNX weights file given by path.

Several faces in one frame: the largest box is kept (documented policy, also used by Serve).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


class DetectorError(ValueError):
    """A detector cannot be built (unknown name, missing weights)."""


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Face boxes, largest first; an empty list when there is no face."""


class WholeFrame:
    """No detection: the whole frame is the crop."""

    name = "none"

    def detect(self, rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        return [(0, 0, w, h)]


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


class HaarDetector:
    """OpenCV Haar cascade: fast, CPU-only and offline, less accurate than CNN detectors on hard poses."""

    name = "haar"

    def __init__(self, weights: str | None = None, min_size: int = 24, min_neighbors: int = 4):
        path = weights or (cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DetectorError(f"cannot load Haar cascade {path}; install opencv-python-headless<5 (it ships them)")
        self.min_size = min_size
        self.min_neighbors = min_neighbors

    def detect(self, rgb: np.ndarray) -> list[Box]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        return _largest_first([(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found])


class YuNetDetector:
    """OpenCV's CNN face detector (``FaceDetectorYN``) from the ONNX file at ``weights``."""

    name = "yunet"

    def __init__(self, weights: str | None, score_threshold: float = 0.7):
        if not weights or not Path(weights).is_file():
            raise DetectorError(
                f"yunet needs its ONNX weights file (face_detection_yunet_2023mar.onnx from the OpenCV model zoo); "
                f"got {weights!r}: download it on a machine with internet and pass its path as detector_weights"
            )
        self.model = cv2.FaceDetectorYN.create(str(weights), "", (320, 320), score_threshold)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        return [box for box, _ in self.detect_faces(rgb)]

    def detect_faces(self, rgb: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """Boxes with their five landmarks (right eye, left eye, nose tip, right and left mouth corners; 5 x 2
        pixels), largest face first."""
        h, w = rgb.shape[:2]
        self.model.setInputSize((w, h))
        _, faces = self.model.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        found = [((int(f[0]), int(f[1]), int(f[0] + f[2]), int(f[1] + f[3])), np.asarray(f[4:14]).reshape(5, 2))
                 for f in ([] if faces is None else faces)]
        return sorted(found, key=lambda face: (face[0][2] - face[0][0]) * (face[0][3] - face[0][1]), reverse=True)


DETECTORS = {"none": WholeFrame, "haar": HaarDetector, "yunet": YuNetDetector}


def make_detector(name: str, weights: str | None = None) -> FaceDetector:
    if name not in DETECTORS:
        raise DetectorError(f"unknown face detector {name!r}; choose one of {sorted(DETECTORS)}")
    return DETECTORS[name]() if name == "none" else DETECTORS[name](weights)


def expand_box(box: Box, margin: float, width: int, height: int) -> Box:
    """A square box around ``box`` grown by ``margin`` of its size on each side (may exceed the image)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2)))


def crop_resize(rgb: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Crop ``box`` (padding by edge replication where it leaves the image) and resize to ``size``×``size``."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = rgb[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


@dataclasses.dataclass
class FaceResult:
    crop: np.ndarray | None  # None: no face and the policy drops the frame
    detected: bool
    box: Box | None
    num_faces: int
    landmarks: np.ndarray | None = None  # five points (5 x 2) of the kept face, from detectors that give them
    crop_box: Box | None = None  # the part of the frame the crop shows: the grown face box, or the whole frame

    def crop_landmarks(self) -> np.ndarray | None:
        """The landmarks in the crop's pixels (5 x 2 float32), None where the detector gives none."""
        if self.landmarks is None or self.crop is None:
            return None
        return points_in_crop(self.landmarks, self.crop_box, self.crop.shape[0])


def points_in_crop(points, crop_box: Box, size: float) -> np.ndarray:
    """Frame pixel coordinates (N x 2) -> the pixel coordinates of the ``size`` x ``size`` crop of ``crop_box``."""
    x0, y0, x1, y1 = crop_box
    scale = np.array([size / (x1 - x0), size / (y1 - y0)])
    return ((np.asarray(points, np.float64).reshape(-1, 2) - (x0, y0)) * scale).astype(np.float32)


def gives_landmarks(detector: FaceDetector) -> bool:
    return hasattr(detector, "detect_faces")


def detect_and_crop(detector: FaceDetector, rgb: np.ndarray, *, margin: float, size: int, no_face: str) -> FaceResult:
    """Run the detector and crop the largest face; frames without a face follow ``no_face`` (drop|keep)."""
    h, w = rgb.shape[:2]
    if detector.name == "none":
        return FaceResult(resize_whole(rgb, size), False, (0, 0, w, h), 0, crop_box=(0, 0, w, h))
    faces = detector.detect_faces(rgb) if gives_landmarks(detector) else [(b, None) for b in detector.detect(rgb)]
    if faces:
        box, landmarks = faces[0]
        grown = expand_box(box, margin, w, h)
        return FaceResult(crop_resize(rgb, grown, size), True, box, len(faces), landmarks, grown)
    if no_face == "keep":
        return FaceResult(resize_whole(rgb, size), False, None, 0, crop_box=(0, 0, w, h))
    return FaceResult(None, False, None, 0)


def resize_whole(rgb: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if min(rgb.shape[:2]) > size else cv2.INTER_LINEAR)


def encode_image(rgb: np.ndarray, fmt: str = "jpg", quality: int = 95) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpg" else []
    ok, buf = cv2.imencode(f".{fmt}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"cannot encode image as {fmt}")
    return buf.tobytes()


def decode_image(data: bytes) -> np.ndarray:
    """Encoded bytes -> RGB uint8; ``ValueError`` when the bytes are not a decodable image."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError("bytes are not a decodable image")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
